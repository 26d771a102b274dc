# The job loop of the persistent transport, in POSIX sh: sent to the host on the session's stdin and
# run by sh (remote-loop.ts has the wire format). The words between at-signs are filled in per
# session; where the host has perl, the loop becomes loop.pl at once.
_cmq_M=@MARKER@
_cmq_nl='
'
_cmq_sh=$(command -v sh) || _cmq_sh=/bin/sh
# A perl that cannot even compile the loop fails the session, and the host gets the per-job transport.
if [ @TRY_PERL@ = 1 ] && command -v perl >/dev/null 2>&1; then
  exec perl -e '@PERL@' "$_cmq_M" "$_cmq_sh" @VERSION@
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
_cmq_end() {
  trap - EXIT
  for _cmq_f in "$_cmq_d"/*.p; do
    [ -s "$_cmq_f" ] && read -r _cmq_x _cmq_p <"$_cmq_f" && _cmq_kill KILL "$_cmq_p"
  done
  rm -rf "$_cmq_d"
}
trap _cmq_end EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
_cmq_k() {
  printf '%s %s\n' "$1" "$3" >"$_cmq_d/$2.k"
  [ -s "$_cmq_d/$2.p" ] && read -r _cmq_x _cmq_p <"$_cmq_d/$2.p" && [ "$_cmq_x" = "$1" ] && _cmq_kill "$3" "$_cmq_p"
}
_cmq_run() {
  _cmq_n=$1 _cmq_f=$_cmq_d/$2 _cmq_r=$3 _cmq_w=$4 _cmq_c=$5
  shift 5
  (
    # a job that signals its parent must not lose its own status; the job itself gets default handlers
    trap : HUP INT TERM
    # The runner becomes the job's environment (one fork less per job): past this point it uses
    # only quoted expansions, absolute paths and _cmq_ names, which the transport never exports.
    _cmq_x=0
    # twice: another job's clean-up may remove the run's folder between mkdir -p's steps
    { [ -d "$_cmq_w" ] || mkdir -p "$_cmq_w" 2>/dev/null || mkdir -p "$_cmq_w"; } 2>"$_cmq_f.e" && cd "$_cmq_w" 2>>"$_cmq_f.e" || _cmq_x=1
    if [ "$_cmq_x" = 0 ]; then
      while [ $# -gt 1 ]; do export "$1=$2"; shift 2; done
      if [ -n "$_cmq_setsid" ]; then
        "$_cmq_setsid" "$_cmq_sh" -c "$_cmq_c" </dev/null >"$_cmq_f.o" 2>"$_cmq_f.e" 3>&- &
      else
        "$_cmq_sh" -c "$_cmq_c" </dev/null >"$_cmq_f.o" 2>"$_cmq_f.e" 3>&- &
      fi
      _cmq_p=$!
      printf '%s %s\n' "$_cmq_n" "$_cmq_p" >"$_cmq_f.p"
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
      : >"$_cmq_f.o"
      _cmq_rc=1
    fi
    _cmq_s=-
    if [ "$_cmq_rc" -gt 128 ]; then _cmq_s=$(kill -l "$_cmq_rc" 2>/dev/null) || _cmq_s=-; fi
    read -r _cmq_x <&3
    if [ -s "$_cmq_f.o" ]; then printf '%s %s o\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_f.o"; printf '.\n'; fi
    if [ -s "$_cmq_f.e" ]; then printf '%s %s e\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_f.e"; printf '.\n'; fi
    printf '%s %s x %s %s\n' "$_cmq_M" "$_cmq_n" "$_cmq_rc" "${_cmq_s:--}"
    printf '\n' >&3
  ) &
}
printf '%s hello @VERSION@ %s\n' "$_cmq_M" "${_cmq_setsid:--}"
while IFS= read -r _cmq_line; do
  case $_cmq_line in
    'r '*) eval "_cmq_run ${_cmq_line#r }" ;;
    'k '*) eval "_cmq_k ${_cmq_line#k }" ;;
  esac
done
exit 0
