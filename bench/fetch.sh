#!/usr/bin/env bash
# cm-fetch against plain scp and rsync, same files, same hosts, same run:
#   small: 1,000 jobs x one 4 KiB result file, spread over th1 and th2 (what a sweep leaves behind)
#   big:   one job with one 200 MB output file on th1
#   live:  the same 1,000 jobs run by cm-exec (each writes its 4 KiB file): piped into cm-fetch,
#          which fetches while the run goes on, against cm-exec --keep-workdirs then one rsync -a
#          per host of the run's tree; both timed from the start of cm-exec
# cm-fetch reads one finished event per job, as it would behind cm-exec (each host's server sends
# the jobs queued for it as one archive over one connection per host; --transfers 8; sha256 checked
# against the host; CM_REMOTE_LOOP=sh: one `ssh tar` per batch instead). The peers get their best
# case: one `scp -r` / `rsync -a` per host for the whole tree, the two hosts in parallel.
#
#   bash bench/fetch.sh            (BENCH_SMALL=N and BENCH_BIG_MB=M change the sizes)
set -euo pipefail

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$CM_REPO/node_modules/.bin:$PATH
small=${BENCH_SMALL:-1000}
big_mb=${BENCH_BIG_MB:-200}

work=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench-fetch.XXXXXX")
export CM_TEST_HOSTS_DIR=$work/hosts
# shellcheck source=../test/helpers/hosts.bash
source "$CM_REPO/test/helpers/hosts.bash"
trap 'cm_hosts_stop; rm -rf "$work"' EXIT
cm_hosts_start 2 4 >/dev/null
cfg=$CM_TEST_SSH_CONFIG

echo "setting up: $small files of 4 KiB on th1+th2, one ${big_mb} MB file on th1" >&2
for h in 1 2; do
  cm_ssh "th$h" "for i in \$(seq 0 $((small - 1))); do [ \$((i % 2 + 1)) = $h ] || continue; d=.cm/runs/small/s\$i; mkdir -p \$d; head -c 4096 /dev/urandom > \$d/f.bin; done"
done
cm_ssh th1 "mkdir -p .cm/runs/big/b0 && head -c $((big_mb * 1000000)) /dev/urandom > .cm/runs/big/b0/big.bin"
# "kept": the same folders are fetched again by each repetition (else cm-fetch removes each one once verified)
for ((i = 0; i < small; i++)); do
  printf '{"kind":"event","v":1,"event":"finished","job":"s%d","run":"small","host":"th%d","exit":0,"workdir":".cm/runs/small/s%d","outputs":["f.bin"],"kept":true}\n' "$i" $((i % 2 + 1)) "$i"
done >"$work/small.ndjson"
echo '{"kind":"event","v":1,"event":"finished","job":"b0","run":"big","host":"th1","exit":0,"workdir":".cm/runs/big/b0","outputs":["big.bin"],"kept":true}' >"$work/big.ndjson"

now() { date +%s.%N; }
# time_it LABEL BYTES CMD...: runs CMD, prints seconds and MB/s
declare -A secs
time_it() {
  local label=$1 bytes=$2 t0 t1
  shift 2
  rm -rf "$work/dest" && mkdir -p "$work/dest"
  t0=$(now)
  "$@"
  t1=$(now)
  secs[$label]=$(echo "$t1 - $t0" | bc -l)
  printf '%-34s %8.2f s %9.1f MB/s\n' "$label" "${secs[$label]}" "$(echo "$bytes / 1000000 / ${secs[$label]}" | bc -l)"
}
check_count() { # the copy really happened
  local n
  n=$(find "$work/dest" -type f -name "$1" | wc -l)
  [[ $n == "$2" ]] || { echo "bench: expected $2 files named $1, found $n" >&2; exit 1; }
}

cmfetch() { cm-fetch --transfers 8 --dir "$work/dest" "$@" >"$work/out.ndjson"; }
scp2() { scp -F "$cfg" -q -r th1:.cm/runs/$1 "$work/dest/th1" & scp -F "$cfg" -q -r th2:.cm/runs/$1 "$work/dest/th2" & wait; }
rsync2() { rsync -a -e "ssh -F $cfg" th1:.cm/runs/$1/ "$work/dest/th1/" & rsync -a -e "ssh -F $cfg" th2:.cm/runs/$1/ "$work/dest/th2/" & wait; }

sbytes=$((small * 4096))
bbytes=$((big_mb * 1000000))
echo "== $small small files ($((sbytes / 1024)) KiB)"
time_it "cm-fetch (per job, sha256 checked)" $sbytes cmfetch "$work/small.ndjson"
check_count f.bin "$small"
time_it "cm-fetch --no-verify" $sbytes cmfetch --no-verify "$work/small.ndjson"
check_count f.bin "$small"
time_it "scp -r (one per host)" $sbytes scp2 small
check_count f.bin "$small"
time_it "rsync -a (one per host)" $sbytes rsync2 small
check_count f.bin "$small"
echo "== one ${big_mb} MB file"
time_it "cm-fetch (sha256 checked)" $bbytes cmfetch "$work/big.ndjson"
check_count big.bin 1
time_it "cm-fetch --no-verify" $bbytes cmfetch --no-verify "$work/big.ndjson"
time_it "scp" $bbytes scp -F "$cfg" -q th1:.cm/runs/big/b0/big.bin "$work/dest/"
time_it "rsync" $bbytes rsync -a -e "ssh -F $cfg" th1:.cm/runs/big/b0/big.bin "$work/dest/"
echo "== $small jobs writing 4 KiB each, run by cm-exec on th1+th2 (4 slots each), timed from its start"
printf '@outputs(out.bin)\ndef w(i=1..%d):\n    head -c 4096 /dev/urandom > out.bin\nw\n' "$small" | cm-plan - >"$work/live.ndjson"
live_n=0
# each contender's run gets its own id, so no one fetches another's folders
execrun() { live_n=$((live_n + 1)); cm-exec --run "live$live_n" "$@" <"$work/live.ndjson"; }
exec_only() { execrun --keep-workdirs >"$work/out.ndjson"; }
exec_fetch() { execrun | cm-fetch --transfers 8 --dir "$work/dest" >"$work/out.ndjson"; }
exec_rsync() { execrun --keep-workdirs >"$work/out.ndjson" && rsync2 "live$live_n"; }
time_it "cm-exec alone (no fetch)" $sbytes exec_only
time_it "cm-exec | cm-fetch" $sbytes exec_fetch
check_count out.bin "$small"
time_it "cm-exec, then rsync -a (one per host)" $sbytes exec_rsync
check_count out.bin "$small"
echo "== ratios (time / cm-fetch time; > 1 means cm-fetch is faster)"
for peer in "scp -r (one per host)" "rsync -a (one per host)"; do
  printf 'small, %-26s %6.2f\n' "$peer:" "$(echo "${secs[$peer]} / ${secs["cm-fetch (per job, sha256 checked)"]}" | bc -l)"
done
for peer in scp rsync; do
  printf 'big,   %-26s %6.2f\n' "$peer:" "$(echo "${secs[$peer]} / ${secs["cm-fetch (sha256 checked)"]}" | bc -l)"
done
printf 'live,  %-26s %6.2f\n' "cm-exec, then rsync -a:" "$(echo "${secs["cm-exec, then rsync -a (one per host)"]} / ${secs["cm-exec | cm-fetch"]}" | bc -l)"
