# cm-fetch on the host, in the login directory: one big file, after `f=./PATH v=0|1`, sent raw on
# stdout, which is the local temp file itself (the ssh master writes it there: cm-fetch never copies
# the bytes). With v=1, openssl hashes it at the same time in a second read (the SHA instructions; the
# page cache serves both reads) and prints its sha256 on stderr. Comment lines are not sent.
if [ "$v" = 1 ]; then openssl dgst -sha256 -r "$f" >&2 & fi
cat "$f"
s=$?
wait
exit $s
