# cm-exec --clean on a host, run by the login shell in the login directory after `set -- RUN MINUTES`
# (each '' for any): removes the run folders in .cm/runs (RUN's only; with MINUTES, only those in
# which nothing changed for that long) and prints "cm-removed BYTES NAME" for each. A name that is
# no run id, or a symlink, is left alone; .cm/runs itself stays. Comment lines are not sent.
[ -d .cm/runs ] || exit 0
cd .cm/runs || exit 1
m=$2
if [ -n "$1" ]; then set -- "$1"; else set -- *; fi
s=0
for d do
  [ -d "$d" ] && [ ! -h "$d" ] || continue
  case $d in [!A-Za-z0-9_]* | *[!A-Za-z0-9_.:@+=,-]*) continue ;; esac
  # old: nothing in the folder (itself included) changed within MINUTES
  if [ -n "$m" ] && [ -n "$(find "$d" -mmin -"$m" -print 2>/dev/null | head -n 1)" ]; then continue; fi
  k=$(du -sk "$d" 2>/dev/null)
  k=${k%%[!0-9]*}
  if rm -rf "$d"; then printf 'cm-removed %s %s\n' "$(( ${k:-0} * 1024 ))" "$d"; else s=1; fi
done
exit $s
