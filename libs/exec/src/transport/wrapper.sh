# The per-job ssh transport's wrapper, run by the login shell after `set -- JOB TRAILER DIR`: "$1" (the
# job) runs in a new session with stdin from /dev/null; a line TERM or EOF on ssh's stdin (cm-exec
# stopped the job, or died) kills the job's process group, TERM then KILL after the grace. $2 is
# printed on stderr only when the job exits 255, so that code is told apart from ssh's own 255.
# $3, when not empty, is the job's directory (absolute): removed when the job ends, with its run's
# folder once that is empty (rmdir: other jobs of the run may still be in it).
# The async list gets fd 3 (ssh's stdin) explicitly: without job control its stdin is /dev/null.
# Comment lines are not sent; @GRACE_TENTHS@ is filled in per run.
exec 3<&0
if command -v setsid >/dev/null 2>&1; then setsid /bin/sh -c "$1" </dev/null 3<&- & else /bin/sh -c "$1" </dev/null 3<&- & fi
p=$!
( while read -r l; do [ "$l" = TERM ] && break; done
  trap '' TERM
  kill -TERM -$p || kill -TERM $p || exit 0
  i=0
  while kill -0 -$p && [ $i -lt @GRACE_TENTHS@ ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL -$p
) <&3 >/dev/null 2>&1 &
w=$!
exec 3<&-
{ wait $p; } 2>/dev/null; s=$?
# what the job left running in its process group ends with it: nothing outlives a job
kill -KILL -$p 2>/dev/null
kill -TERM $w 2>/dev/null; { wait $w; } 2>/dev/null
if [ -n "$3" ]; then cd / && rm -rf "$3"; rmdir "${3%/*}" 2>/dev/null; fi
[ $s -eq 255 ] && printf '%s\n' "$2" >&2
exit $s
