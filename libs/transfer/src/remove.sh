# cm-fetch on the host, in the login directory, after `set -- WORKDIRS`: removes each job directory
# whose files were fetched and verified, then its run's folder once empty (rmdir: other jobs of the
# run may still be there). Comment lines are not sent.
s=0
for d do
  rm -rf "./$d" || s=1
  rmdir "./${d%/*}" 2>/dev/null
done
exit $s
