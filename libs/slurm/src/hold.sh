# Holds a detached allocation (cm-exec --reattach-within) for as long as a cm-exec is seen, run here,
# away from cm-exec, as `sh -c THIS cm-hold HEARTBEAT SECS ALLOCATION RUN`: every running cm-exec of
# the run touches HEARTBEAT each second; once nobody has for SECS seconds, the results the run's
# steps keep on the nodes (.cm/spool/RUN) are removed and the allocation is cancelled, which ends
# every step in it. A cm-exec that is done removes HEARTBEAT and cancels it itself.
hb=$1; secs=$2; id=$3; run=$4; ref=$hb.seen; quiet=0
touch "$ref"
while [ -e "$hb" ]; do
  if [ "$hb" -nt "$ref" ]; then touch "$ref"; quiet=0; else quiet=$((quiet + 1)); fi
  [ "$quiet" -ge "$secs" ] && break
  sleep 1
done
rm -f "$ref"
[ -e "$hb" ] || exit 0
rm -f "$hb"
nodes=$(squeue -h -j "$id" -o %D)
[ -n "$nodes" ] && [ -n "$run" ] && srun --jobid="$id" --overlap --nodes="$nodes" --ntasks-per-node=1 --quiet \
  sh -c 'cd && rm -rf ".cm/spool/$1" && rmdir .cm/spool' cm-hold "$run" >/dev/null 2>&1
exec scancel "$id"
exit 0
