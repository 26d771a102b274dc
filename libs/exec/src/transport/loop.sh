# The job loop of the persistent transport, in POSIX sh: sent to the host on the session's stdin and
# run by sh (remote-loop.ts has the wire format). The words between at-signs are filled in per
# session; where the host has perl, the loop becomes loop.pl at once.
_cmq_M=@MARKER@
_cmq_nl='
'
_cmq_sh=$(command -v sh) || _cmq_sh=/bin/sh
# A perl that cannot even compile the loop fails the session, and the host gets the per-job transport.
if [ @TRY_PERL@ = 1 ] && command -v perl >/dev/null 2>&1; then
  exec perl -e '@PERL@' "$_cmq_M" "$_cmq_sh" @VERSION@ @LANES@
fi
for _cmq_t in base64 mkfifo mkdir rm; do
  command -v "$_cmq_t" >/dev/null 2>&1 || { printf '%s fail the host has no %s command\n' "$_cmq_M" "$_cmq_t"; exit 3; }
done
_cmq_setsid=$(command -v setsid 2>/dev/null) || _cmq_setsid=
_cmq_b64=$(command -v base64)
_cmq_rm=$(command -v rm)
_cmq_rmdir=$(command -v rmdir 2>/dev/null) || _cmq_rmdir=
# where workdirs are relative to: the runner is in the job's directory when it removes it
_cmq_top=$(pwd)
# loops killed with SIGKILL leave their folder: remove the ones of ours whose loop no longer runs
_cmq_tmp=${TMPDIR:-/tmp}
for _cmq_o in "$_cmq_tmp"/cm-persist.*; do
  _cmq_p=${_cmq_o##*/cm-persist.}
  _cmq_p=${_cmq_p%%.*}
  case $_cmq_p in '' | *[!0-9]*) continue ;; esac
  [ -O "$_cmq_o" ] && ! kill -0 "$_cmq_p" 2>/dev/null && rm -rf "$_cmq_o"
done
# a folder left by a killed loop whose pid came round again is not ours: take the next name
_cmq_d=$_cmq_tmp/cm-persist.$$ _cmq_i=0
until mkdir -m 700 "$_cmq_d" 2>/dev/null; do
  _cmq_i=$((_cmq_i + 1))
  [ "$_cmq_i" -lt 100 ] || { printf '%s fail cannot create %s\n' "$_cmq_M" "$_cmq_d"; exit 3; }
  _cmq_d=$_cmq_tmp/cm-persist.$$.$_cmq_i
done
mkfifo "$_cmq_d/lock" || { printf '%s fail cannot create %s/lock\n' "$_cmq_M" "$_cmq_d"; exit 3; }
exec 3<>"$_cmq_d/lock"
printf '\n' >&3
_cmq_kill() { kill -"$1" -"$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null; }
# _cmq_mkdirs (mkdirs.sh), filled in per session
@MKDIRS@
_cmq_end() {
  trap - EXIT
  for _cmq_f in "$_cmq_d"/*.p; do
    [ -s "$_cmq_f" ] && read -r _cmq_x _cmq_p <"$_cmq_f" && _cmq_kill KILL "$_cmq_p"
  done
  rm -rf "$_cmq_d"
}
trap _cmq_end EXIT
# HUP (sshd lost the connection) ends the read below: the loop then detaches as at end of input
trap : HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
_cmq_k() {
  # a job another loop runs (request a): its pid file in the spool names its process group
  if [ -s "$_cmq_d/$1.a" ] && read -r _cmq_y <"$_cmq_d/$1.a" && [ -s "$_cmq_y/pid" ] && read -r _cmq_x _cmq_p _cmq_y <"$_cmq_y/pid"; then
    _cmq_kill "$3" "$_cmq_p"
    return
  fi
  printf '%s %s\n' "$1" "$3" >"$_cmq_d/$2.k"
  [ -s "$_cmq_d/$2.p" ] && read -r _cmq_x _cmq_p <"$_cmq_d/$2.p" && [ "$_cmq_x" = "$1" ] && _cmq_kill "$3" "$_cmq_p"
}
# Detached runs (cm-exec --reattach-within), as in loop.pl: a job sent with a spool (request s) keeps
# its first <cap> bytes of stdout and stderr, its start, end and status in that folder; it outlives
# the session, and the loop waits for a collector <linger> s after a controller was last seen.
_cmq_linger=0
_cmq_ms() {
  _cmq_t=$(date +%s%N 2>/dev/null)
  case $_cmq_t in '' | *[!0-9]*) _cmq_t=$(($(date +%s) * 1000)) ;; *) _cmq_t=${_cmq_t%??????} ;; esac
}
_cmq_s() {
  # the runner is in the job's directory when it makes the spool: relative to the login directory
  case $4 in /*) printf '%s\n' "$4" ;; *) printf '%s/%s\n' "$_cmq_top" "$4" ;; esac >"$_cmq_d/$1.sp"
  printf '%s\n' "$2" >"$_cmq_d/$1.cap"
  [ "$3" -gt "$_cmq_linger" ] 2>/dev/null && _cmq_linger=$3
  :
}
# the spool folder, then its run's folder and the spool root once empty
_cmq_unspool() {
  "$_cmq_rm" -rf "$1"
  [ -n "$_cmq_rmdir" ] && "$_cmq_rmdir" "${1%/*}" 2>/dev/null && "$_cmq_rmdir" "${1%/*/*}" 2>/dev/null
  :
}
_cmq_c() {
  for _cmq_x in "$_cmq_d/$1.sp" "$_cmq_d/$1.a"; do
    [ -s "$_cmq_x" ] && read -r _cmq_y <"$_cmq_x" && _cmq_unspool "$_cmq_y"
  done
  "$_cmq_rm" -f "$_cmq_d/$1.sp" "$_cmq_d/$1.a" "$_cmq_d/$1.cap" "$_cmq_d/$1.r" "$_cmq_d/$1.w" "$_cmq_d/$1.aw"
}
# A job another loop ran (request a): its frames once it has ended, "l" when that loop is gone.
_cmq_a() {
  printf '%s\n' "$2" >"$_cmq_d/$1.a"
  (
    trap '' PIPE
    _cmq_n=$1 _cmq_sd=$2
    while :; do
      if [ -s "$_cmq_sd/status" ] && read -r _cmq_rc _cmq_sg _cmq_t0 _cmq_t1 _cmq_ob _cmq_eb <"$_cmq_sd/status"; then
        read -r _cmq_x <&3
        if [ -s "$_cmq_sd/out" ]; then printf '%s %s o\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_sd/out"; printf '.\n'; fi
        if [ -s "$_cmq_sd/err" ]; then printf '%s %s e\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_sd/err"; printf '.\n'; fi
        printf '%s %s t %s %s %s %s\n%s %s x %s %s\n' "$_cmq_M" "$_cmq_n" "$_cmq_t0" "$_cmq_t1" "$_cmq_ob" "$_cmq_eb" "$_cmq_M" "$_cmq_n" "$_cmq_rc" "$_cmq_sg"
        printf '\n' >&3
        exit 0
      fi
      _cmq_l=0 _cmq_g=0
      [ -s "$_cmq_sd/pid" ] && read -r _cmq_l _cmq_g _cmq_x <"$_cmq_sd/pid"
      if [ ! -d "$_cmq_sd" ] || [ "$_cmq_l" = 0 ] || ! kill -0 "$_cmq_l" 2>/dev/null; then
        # the loop that ran it is gone (the host restarted, or it was killed): so is the job
        [ "$_cmq_g" != 0 ] && _cmq_kill KILL "$_cmq_g"
        if [ -d "$_cmq_sd" ]; then _cmq_x='its loop on the host is gone'; else _cmq_x='nothing kept on the host'; fi
        read -r _cmq_y <&3
        printf '%s %s l %s\n' "$_cmq_M" "$_cmq_n" "$_cmq_x"
        printf '\n' >&3
        exit 0
      fi
      # seen by the loop that keeps it: a controller waits for this job
      touch "$_cmq_sd" 2>/dev/null
      sleep 0.2 2>/dev/null || sleep 1
    done
  ) &
  printf '%s\n' "$!" >"$_cmq_d/$1.aw"
}
_cmq_run() {
  _cmq_n=$1 _cmq_f=$_cmq_d/$2 _cmq_r=$3 _cmq_w=$4 _cmq_c=$5
  shift 5
  _cmq_sd= _cmq_cap=0
  if [ -s "$_cmq_d/$_cmq_n.sp" ]; then
    read -r _cmq_sd <"$_cmq_d/$_cmq_n.sp"
    read -r _cmq_cap <"$_cmq_d/$_cmq_n.cap"
  fi
  [ "$_cmq_r" = 1 ] && [ -n "$_cmq_sd" ] && printf '%s\n' "$_cmq_w" >"$_cmq_d/$_cmq_n.w"
  (
    # a job that signals its parent must not lose its own status; the job itself gets default handlers
    trap : HUP INT TERM
    # The runner becomes the job's environment (one fork less per job): past this point it uses
    # only quoted expansions, absolute paths and _cmq_ names, which the transport never exports.
    _cmq_x=0 _cmq_o=$_cmq_f.o _cmq_e=$_cmq_f.e
    { [ -d "$_cmq_w" ] || _cmq_mkdirs "$_cmq_w"; } 2>"$_cmq_e" && cd "$_cmq_w" 2>>"$_cmq_e" || _cmq_x=1
    if [ "$_cmq_x" = 0 ] && [ -n "$_cmq_sd" ]; then
      # the job writes into its spool: it goes on writing there when the session ends
      _cmq_mkdirs "$_cmq_sd" 2>>"$_cmq_e" && : >"$_cmq_sd/o" 2>>"$_cmq_e" || _cmq_x=1
      [ "$_cmq_x" = 0 ] && _cmq_o=$_cmq_sd/o _cmq_e=$_cmq_sd/e
    fi
    if [ "$_cmq_x" = 0 ]; then
      while [ $# -gt 1 ]; do export "$1=$2"; shift 2; done
      [ -n "$_cmq_sd" ] && _cmq_ms && _cmq_t0=$_cmq_t
      if [ -n "$_cmq_setsid" ]; then
        "$_cmq_setsid" "$_cmq_sh" -c "$_cmq_c" </dev/null >"$_cmq_o" 2>"$_cmq_e" 3>&- &
      else
        "$_cmq_sh" -c "$_cmq_c" </dev/null >"$_cmq_o" 2>"$_cmq_e" 3>&- &
      fi
      _cmq_p=$!
      # a session that ends while the job runs must not end the runner when it ships the frames
      trap '' PIPE
      printf '%s %s\n' "$_cmq_n" "$_cmq_p" >"$_cmq_f.p"
      [ -n "$_cmq_sd" ] && printf '%s %s %s\n' "$$" "$_cmq_p" "$_cmq_t0" >"$_cmq_sd/pid"
      if [ -s "$_cmq_f.k" ] && read -r _cmq_x _cmq_s <"$_cmq_f.k" && [ "$_cmq_x" = "$_cmq_n" ]; then
        _cmq_kill "$_cmq_s" "$_cmq_p"
      fi
      wait "$_cmq_p"
      _cmq_rc=$?
      while kill -0 "$_cmq_p" 2>/dev/null; do wait "$_cmq_p"; _cmq_rc=$?; done
      # what the job left running in its process group ends with it, as with the per-job transport
      [ -n "$_cmq_setsid" ] && kill -KILL -"$_cmq_p" 2>/dev/null
      : >"$_cmq_f.p"
      # a job nothing downstream reads from leaves nothing behind; its run's folder goes once empty
      if [ "$_cmq_r" = 1 ] && cd "$_cmq_top"; then
        "$_cmq_rm" -rf "$_cmq_w" 2>/dev/null
        [ -n "$_cmq_rmdir" ] && "$_cmq_rmdir" "${_cmq_w%/*}" 2>/dev/null
      fi
    else
      # like the per-job transport's mkdir -p DIR && cd DIR && sh -c ...: status 1, the reason on stderr
      : >"$_cmq_o"
      _cmq_rc=1
    fi
    _cmq_s=-
    if [ "$_cmq_rc" -gt 128 ]; then _cmq_s=$(kill -l "$_cmq_rc" 2>/dev/null) || _cmq_s=-; fi
    if [ "$_cmq_o" = "$_cmq_sd/o" ]; then
      # kept: the first <cap> bytes of each stream and the whole sizes, then the status line,
      # written whole and renamed (a collector sees a status line or none)
      _cmq_ms
      _cmq_ob=$(($(wc -c <"$_cmq_o"))) _cmq_eb=$(($(wc -c <"$_cmq_e")))
      head -c "$_cmq_cap" <"$_cmq_o" >"$_cmq_sd/out"
      head -c "$_cmq_cap" <"$_cmq_e" >"$_cmq_sd/err"
      printf '%s %s %s %s %s %s\n' "$_cmq_rc" "${_cmq_s:--}" "$_cmq_t0" "$_cmq_t" "$_cmq_ob" "$_cmq_eb" >"$_cmq_sd/status.new" &&
        mv -f "$_cmq_sd/status.new" "$_cmq_sd/status"
    fi
    # a detached loop's session may still be open (this runner holds it): its controller is leaving,
    # and the kept job waits for the next one
    if [ ! -e "$_cmq_d/detached" ]; then
      read -r _cmq_x <&3
      if [ -s "$_cmq_o" ]; then printf '%s %s o\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_o"; printf '.\n'; fi
      if [ -s "$_cmq_e" ]; then printf '%s %s e\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_e"; printf '.\n'; fi
      printf '%s %s x %s %s\n' "$_cmq_M" "$_cmq_n" "$_cmq_rc" "${_cmq_s:--}"
      printf '\n' >&3
    fi
    [ "$_cmq_o" = "$_cmq_sd/o" ] && "$_cmq_rm" -f "$_cmq_o" "$_cmq_e"
  ) &
  [ -n "$_cmq_sd" ] && printf '%s\n' "$!" >"$_cmq_d/$_cmq_n.r"
  :
}
# The controller is gone (stdin closed). Without kept jobs the loop ends, and its jobs with it.
# Jobs with a spool keep running; the loop ends when every kept result was collected, or when no
# controller was seen for <linger> s (a collecting session touches the spool folders it waits on):
# then it kills what still runs and removes what it kept.
_cmq_detach() {
  _cmq_any=
  for _cmq_x in "$_cmq_d"/*.sp; do [ -s "$_cmq_x" ] && _cmq_any=1; done
  [ -n "$_cmq_any" ] || exit 0
  : >"$_cmq_d/detached"
  exec </dev/null >/dev/null 2>&1
  # collections for the controller that left
  for _cmq_x in "$_cmq_d"/*.aw; do [ -s "$_cmq_x" ] && read -r _cmq_y <"$_cmq_x" && kill -KILL "$_cmq_y" 2>/dev/null; done
  # the jobs without a spool end as they would without --reattach-within
  for _cmq_x in "$_cmq_d"/*.p; do
    [ -s "$_cmq_x" ] && read -r _cmq_n _cmq_p <"$_cmq_x" && [ ! -s "$_cmq_d/$_cmq_n.sp" ] && _cmq_kill KILL "$_cmq_p"
  done
  : >"$_cmq_d/seen"
  _cmq_idle=0
  while :; do
    sleep 1
    _cmq_any=
    for _cmq_x in "$_cmq_d"/*.sp; do
      [ -s "$_cmq_x" ] && read -r _cmq_y <"$_cmq_x" || continue
      if [ -d "$_cmq_y" ]; then
        _cmq_any=1
        [ -n "$(find "$_cmq_y" -prune -newer "$_cmq_d/seen" 2>/dev/null)" ] && : >"$_cmq_d/seen" && _cmq_idle=-1
      else
        "$_cmq_rm" -f "$_cmq_x"
      fi
    done
    [ -n "$_cmq_any" ] || break
    _cmq_idle=$((_cmq_idle + 1))
    [ "$_cmq_idle" -gt "$_cmq_linger" ] || continue
    for _cmq_x in "$_cmq_d"/*.r; do [ -s "$_cmq_x" ] && read -r _cmq_y <"$_cmq_x" && kill -KILL "$_cmq_y" 2>/dev/null; done
    for _cmq_x in "$_cmq_d"/*.p; do [ -s "$_cmq_x" ] && read -r _cmq_n _cmq_p <"$_cmq_x" && _cmq_kill KILL "$_cmq_p"; done
    for _cmq_x in "$_cmq_d"/*.sp; do [ -s "$_cmq_x" ] && read -r _cmq_y <"$_cmq_x" && _cmq_unspool "$_cmq_y"; done
    for _cmq_x in "$_cmq_d"/*.w; do
      [ -s "$_cmq_x" ] && read -r _cmq_y <"$_cmq_x" && cd "$_cmq_top" && "$_cmq_rm" -rf "$_cmq_y" && { [ -z "$_cmq_rmdir" ] || "$_cmq_rmdir" "${_cmq_y%/*}" 2>/dev/null; }
    done
    break
  done
  exit 0
}
printf '%s hello @VERSION@ %s\n' "$_cmq_M" "${_cmq_setsid:--}"
while IFS= read -r _cmq_line; do
  case $_cmq_line in
    'r '*) eval "_cmq_run ${_cmq_line#r }" ;;
    'k '*) eval "_cmq_k ${_cmq_line#k }" ;;
    's '*) eval "_cmq_s ${_cmq_line#s }" ;;
    'a '*) eval "_cmq_a ${_cmq_line#a }" ;;
    'c '*) eval "_cmq_c ${_cmq_line#c }" ;;
  esac
done
_cmq_detach
