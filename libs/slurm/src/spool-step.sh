# A cm job in a Slurm step of a detached allocation (--reattach-within), as `sh -c THIS cm-slurm
# run SPOOL CAP WORKDIR COMMAND`, and the step of a later cm-exec that collects it, as `sh -c THIS
# cm-slurm collect SPOOL`. The job's streams go to SPOOL (under $HOME on the node: its first CAP
# bytes each, and their whole sizes), then its times and status, so that it keeps running and its
# results wait there if srun, or the cm-exec behind it, dies. Whichever step ends up holding the
# results prints a line "cm-slurm-ended START_MS END_MS EXIT OUT_BYTES ERR_BYTES OUT_KEPT ERR_KEPT" on stderr and
# waits for a line on stdin: with one, it replays the kept stdout and stderr and waits for a second
# line, after which the spool goes. With none (stdin ends: nobody is there any more), the spool stays
# for a --resume; the allocation's end (its watchdog) bounds how long.
printf 'cm-slurm-started %s\n' "$SLURMD_NODENAME" >&2
cd || exit 1
mode=$1 sp=$2
now() { date +%s%3N; }
# the first $1 bytes into $2, the count of the rest into $3 (head -c reads no more than it keeps)
keep() {
  trap '' TERM INT HUP
  head -c "$1" >"$2"
  wc -c >"$3"
}
report() {
  printf 'cm-slurm-ended %s %s %s %s %s %s %s\n' "$(cat "$sp/start")" "$(cat "$sp/end")" "$(cat "$sp/exit")" \
    "$(cat "$sp/outbytes")" "$(cat "$sp/errbytes")" "$(wc -c <"$sp/stdout")" "$(wc -c <"$sp/stderr")" >&2
  read -r go || exit 0
  cat "$sp/stdout"
  cat "$sp/stderr" >&2
  read -r gone || exit 0
  rm -rf "$sp"
  rmdir "${sp%/*}" .cm/spool 2>/dev/null
  exit 0
}
if [ "$mode" = collect ]; then
  [ -d "$sp" ] || { echo 'cm-slurm-lost no results kept' >&2; exit 0; }
  while [ ! -e "$sp/exit" ]; do
    kill -0 "$(cat "$sp/pid" 2>/dev/null)" 2>/dev/null || [ -e "$sp/exit" ] || { rm -rf "$sp"; rmdir "${sp%/*}" .cm/spool 2>/dev/null; echo 'cm-slurm-lost the job was ended before it finished' >&2; exit 0; }
    sleep 0.5
  done
  report
fi
cap=$3 wd=$4 cmd=$5
mkdir -p "$sp" "$wd" || exit 1
echo $$ >"$sp/pid"
now >"$sp/start"
# a stop (srun passes SIGTERM on) ends the job: the shells and keepers around it live on to keep
# and report its end (a subshell gets the default action back; the job's own is the default)
trap 'true' TERM INT HUP
{
  {
    trap 'true' TERM INT HUP
    { (cd "$wd" && exec sh -c "$cmd") </dev/null 2>&1 1>&3 3>&-; echo $? >"$sp/status"; } 2>/dev/null | keep "$cap" "$sp/stderr" "$sp/errrest"
  } 3>&1 | keep "$cap" "$sp/stdout" "$sp/outrest"
}
echo $(($(wc -c <"$sp/stdout") + $(cat "$sp/outrest"))) >"$sp/outbytes"
echo $(($(wc -c <"$sp/stderr") + $(cat "$sp/errrest"))) >"$sp/errbytes"
rm -f "$sp/outrest" "$sp/errrest"
now >"$sp/end"
mv "$sp/status" "$sp/exit"
report
