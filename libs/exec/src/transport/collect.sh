# The per-job ssh transport's collector (cm-exec --resume), run by the login shell after
# `set -- SPOOL TRAILER`: waits for the job wrapper.sh keeps in SPOOL to end, touching the folder so
# that its watchdog knows cm-exec is back, then prints its kept stdout and stderr and, last on
# stderr, TRAILER t START END OUT-BYTES ERR-BYTES STATUS SIGNAME; or TRAILER l REASON when nothing
# on the host will end it (its wrapper is gone). The spool stays: cm-exec removes it once it has the
# job. Comment lines are not sent.
while :; do
  if [ -s "$1/status" ] && read -r s g t e o r <"$1/status"; then
    cat "$1/out"; cat "$1/err" >&2
    printf '%s t %s %s %s %s %s %s\n' "$2" "$t" "$e" "$o" "$r" "$s" "$g" >&2
    exit 0
  fi
  l=0 p=0
  [ -s "$1/pid" ] && read -r l p x <"$1/pid"
  if [ ! -d "$1" ] || [ "$l" = 0 ] || ! kill -0 "$l" 2>/dev/null; then
    # the wrapper that ran it is gone (the host restarted, or it was killed): so is the job
    [ "$p" != 0 ] && { kill -KILL -"$p" || kill -KILL "$p"; } 2>/dev/null
    if [ -d "$1" ]; then x='its loop on the host is gone'; else x='nothing kept on the host'; fi
    printf '%s l %s\n' "$2" "$x" >&2
    exit 0
  fi
  touch "$1"
  sleep 1
done
