# The per-job ssh transport's wrapper, run by the login shell after `set -- JOB TRAILER DIR SPOOL CAP LINGER`:
# "$1" (the job) runs in a new session with stdin from /dev/null; a line TERM or EOF on ssh's stdin
# (cm-exec stopped the job, or died) kills the job's process group, TERM then KILL after the grace. $2
# is printed on stderr only when the job exits 255, so that code is told apart from ssh's own 255.
# $3, when not empty, is the job's directory (absolute): removed when the job ends, with its run's
# folder once that is empty (rmdir: other jobs of the run may still be in it).
# $4, when not empty, is the job's spool (cm-exec --reattach-within; the layout of loop.pl's): the
# job writes its output there and EOF does not stop it. Its first $5 bytes of each stream, start,
# end and status stay there for collect.sh; while ssh is there the wrapper prints them and exits as
# without a spool. Only cm-exec, once it has the job, removes the spool, or the watchdog: $6 s after
# cm-exec was last seen (its ssh session gone and no collect.sh touching the folder), it kills what
# still runs and removes the spool (and $3).
# The async list gets fd 3 (ssh's stdin) explicitly: without job control its stdin is /dev/null.
# Comment lines are not sent; @GRACE_TENTHS@ is filled in per run. _cmq_mkdirs (mkdirs.sh) comes
# ahead of it, with the command (ssh.ts).
exec 3<&0
if [ -n "$4" ]; then
case $4 in /*) ;; *) set -- "$1" "$2" "$3" "$OLDPWD/$4" "$5" "$6" ;; esac
_cmq_mkdirs "$4" && : >"$4/o" && : >"$4/e" || exit 1
t=$(date +%s%N 2>/dev/null); case $t in '' | *[!0-9]*) t=$(($(date +%s) * 1000)) ;; *) t=${t%??????} ;; esac
if command -v setsid >/dev/null 2>&1; then setsid /bin/sh -c "$1" </dev/null >"$4/o" 2>"$4/e" 3<&- & else /bin/sh -c "$1" </dev/null >"$4/o" 2>"$4/e" 3<&- & fi
else
if command -v setsid >/dev/null 2>&1; then setsid /bin/sh -c "$1" </dev/null 3<&- & else /bin/sh -c "$1" </dev/null 3<&- & fi
fi
p=$!
# the job's results outlive the session: so does the wrapper, which writes them
[ -n "$4" ] && printf '%s %s %s\n' "$$" "$p" "$t" >"$4/pid" && trap '' PIPE HUP
# cm-exec is seen while its session is there, then while a collect.sh touches the spool
linger() {
  : >"$4/seen"; i=0
  while [ -d "$4" ]; do
    sleep 1
    if [ -n "$(find "$4" -prune -newer "$4/seen" 2>/dev/null)" ]; then : >"$4/seen"; i=0; else i=$((i+1)); fi
    [ $i -gt "$6" ] && return 1
  done
  return 0
}
unspool() { rm -rf "$4"; rmdir "${4%/*}" 2>/dev/null && rmdir "${4%/*/*}" 2>/dev/null; }
( while read -r l; do [ "$l" = TERM ] && break; done
  if [ -n "$4" ] && [ "$l" != TERM ]; then
    : >"$4/detached"
    linger "$@" || { : >"$4/expired"; kill -KILL -$p || kill -KILL $p; }
    exit 0
  fi
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
if [ -n "$4" ] && [ -e "$4/expired" ]; then
unspool "$@"
elif [ -n "$4" ]; then
g=-; [ $s -gt 128 ] && { g=$(kill -l $s 2>/dev/null) || g=-; }
e=$(date +%s%N 2>/dev/null); case $e in '' | *[!0-9]*) e=$(($(date +%s) * 1000)) ;; *) e=${e%??????} ;; esac
head -c "$5" <"$4/o" >"$4/out"; head -c "$5" <"$4/e" >"$4/err"
printf '%s %s %s %s %s %s\n' $s "$g" "$t" "$e" $(($(wc -c <"$4/o"))) $(($(wc -c <"$4/e"))) >"$4/status.new" && mv -f "$4/status.new" "$4/status"
[ -e "$4/detached" ] || { cat "$4/o"; cat "$4/e" >&2; }
rm -f "$4/o" "$4/e"
# the watchdog of the kept result, until cm-exec (or a collect.sh) has it
( trap '' TERM; linger "$@" || unspool "$@" ) </dev/null >/dev/null 2>&1 &
fi
kill -TERM $w 2>/dev/null; { wait $w; } 2>/dev/null
if [ -n "$3" ]; then cd / && rm -rf "$3"; rmdir "${3%/*}" 2>/dev/null; fi
[ $s -eq 255 ] && printf '%s\n' "$2" >&2
exit $s
