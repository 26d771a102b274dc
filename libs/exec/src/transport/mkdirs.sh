# _cmq_mkdirs DIR: mkdir -p, up to 10 times. Another job's clean-up removes the run's folder whenever
# it is empty, which can fall between mkdir -p's steps again and again when the host is busy with
# tiny jobs (twice was not enough). Sent ahead of the per-job command (ssh.ts) and inside the sh
# loop (loop.sh, @MKDIRS@); loop.pl's mkpath and local.ts do the same in their languages.
_cmq_mkdirs() {
  _cmq_m=1
  until mkdir -p "$1" 2>/dev/null; do
    _cmq_m=$((_cmq_m + 1))
    [ "$_cmq_m" -lt 10 ] || { mkdir -p "$1"; return; }
  done
}
