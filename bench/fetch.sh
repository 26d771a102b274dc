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
#   BENCH_ONLY=small|big           only the small files and the live run, or only the big file
#   BENCH_ROUNDS=N                 rounds of the big file (default 3), the contenders in turn
#   BENCH_BASELINE=DIR             also DIR's cm-fetch (another checkout, built), "before" beside "after"
set -euo pipefail

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$CM_REPO/node_modules/.bin:$PATH
small=${BENCH_SMALL:-1000}
big_mb=${BENCH_BIG_MB:-200}
rounds=${BENCH_ROUNDS:-3}
baseline=${BENCH_BASELINE:+$BENCH_BASELINE/node_modules/.bin/cm-fetch}
only=${BENCH_ONLY:-}

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
if [[ -z $only || $only == small ]]; then
echo "== $small small files ($((sbytes / 1024)) KiB)"
time_it "cm-fetch (per job, sha256 checked)" $sbytes cmfetch "$work/small.ndjson"
check_count f.bin "$small"
time_it "cm-fetch --no-verify" $sbytes cmfetch --no-verify "$work/small.ndjson"
check_count f.bin "$small"
if [[ -n $baseline ]]; then
  time_it "baseline cm-fetch (sha256 checked)" $sbytes bash -c '"$0" --transfers 8 --dir "$1" "$2" >/dev/null' "$baseline" "$work/dest" "$work/small.ndjson"
  check_count f.bin "$small"
fi
time_it "scp -r (one per host)" $sbytes scp2 small
check_count f.bin "$small"
time_it "rsync -a (one per host)" $sbytes rsync2 small
check_count f.bin "$small"
fi
if [[ -z $only || $only == big ]]; then
echo "== one ${big_mb} MB file"
echo "$rounds interleaved rounds, the median by wall time; CPU s by bench/cpu-split.pl (host: the test sshds' trees, ctl: the command's tree with its ssh master); load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A B_WALL B_HOST B_CTL
# big_run LABEL CMD...: one run under cpu-split.pl, into the dest folder emptied first
big_run() {
  local label=$1 wall host ctl
  shift
  rm -rf "$work/dest" && mkdir -p "$work/dest"
  sleep 0.3
  perl "$CM_REPO/bench/cpu-split.pl" "$work/split" "$CM_TEST_HOSTS_DIR/pids" "$work/nomatch" -- "$@" >"$work/out.ndjson"
  read -r wall host ctl _ <"$work/split"
  B_WALL[$label]+="$wall " B_HOST[$label]+="$host " B_CTL[$label]+="$ctl "
}
big_labels=("cm-fetch (sha256 checked)" "cm-fetch --no-verify" "scp" "rsync")
[[ -z $baseline ]] || big_labels+=("baseline cm-fetch (sha256)")
for ((r = 0; r < rounds; r++)); do
  big_run "${big_labels[0]}" cm-fetch --transfers 8 --dir "$work/dest" "$work/big.ndjson"
  check_count big.bin 1
  big_run "${big_labels[1]}" cm-fetch --transfers 8 --no-verify --dir "$work/dest" "$work/big.ndjson"
  big_run "${big_labels[2]}" scp -F "$cfg" -q th1:.cm/runs/big/b0/big.bin "$work/dest/"
  check_count big.bin 1
  big_run "${big_labels[3]}" rsync -a -e "ssh -F $cfg" th1:.cm/runs/big/b0/big.bin "$work/dest/"
  if [[ -n $baseline ]]; then
    big_run "${big_labels[4]}" "$baseline" --transfers 8 --dir "$work/dest" "$work/big.ndjson"
    check_count big.bin 1
  fi
done
printf '%-34s %8s %9s %9s %9s  %s\n' '' wall_s MB/s host_s ctl_s 'every run: wall_s'
for label in "${big_labels[@]}"; do
  read -r w h c < <(awk -v w="${B_WALL[$label]}" -v h="${B_HOST[$label]}" -v c="${B_CTL[$label]}" 'BEGIN {
    n = split(w, W, " "); split(h, H, " "); split(c, C, " ")
    for (i = 1; i <= n; i++) idx[i] = i
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (W[idx[j]] < W[idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
    k = idx[int((n + 1) / 2)]; print W[k], H[k], C[k] }')
  secs[$label]=$(echo "$w / 1000" | bc -l)
  printf '%-34s %8.2f %9.1f %9.2f %9.2f  %s\n' "$label" "${secs[$label]}" "$(echo "$bbytes / 1000 / $w" | bc -l)" \
    "$(echo "$h / 1000" | bc -l)" "$(echo "$c / 1000" | bc -l)" "$(awk -v w="${B_WALL[$label]}" 'BEGIN { n = split(w, W, " "); for (i = 1; i <= n; i++) printf "%.2f ", W[i] / 1000 }')"
done
fi
if [[ -z $only || $only == small ]]; then
echo "== $small jobs writing 4 KiB each, run by cm-exec on th1+th2 (4 slots each), timed from its start"
printf '@outputs(out.bin)\ndef w(i=1..%d):\n    head -c 4096 /dev/urandom > out.bin\nw\n' "$small" | cm-plan - >"$work/live.ndjson"
live_n=0
# each contender's run gets its own id, so no one fetches another's folders
execrun() { live_n=$((live_n + 1)); cm-exec --run "live$live_n" "$@" <"$work/live.ndjson"; }
exec_only() { execrun --keep-workdirs >"$work/out.ndjson"; }
exec_fetch() { execrun | cm-fetch --transfers 8 --dir "$work/dest" >"$work/out.ndjson"; }
exec_baseline() { execrun | "$baseline" --transfers 8 --dir "$work/dest" >"$work/out.ndjson"; }
exec_rsync() { execrun --keep-workdirs >"$work/out.ndjson" && rsync2 "live$live_n"; }
time_it "cm-exec alone (no fetch)" $sbytes exec_only
time_it "cm-exec | cm-fetch" $sbytes exec_fetch
check_count out.bin "$small"
if [[ -n $baseline ]]; then
  time_it "cm-exec | baseline cm-fetch" $sbytes exec_baseline
  check_count out.bin "$small"
fi
time_it "cm-exec, then rsync -a (one per host)" $sbytes exec_rsync
check_count out.bin "$small"
fi
echo "== ratios (time / cm-fetch time; > 1 means cm-fetch is faster)"
ratio() { [[ -n ${secs[$2]:-} && -n ${secs[$3]:-} ]] && printf '%-6s %-26s %6.2f\n' "$1," "$2:" "$(echo "${secs[$2]} / ${secs[$3]}" | bc -l)"; return 0; }
ratio small "scp -r (one per host)" "cm-fetch (per job, sha256 checked)"
ratio small "rsync -a (one per host)" "cm-fetch (per job, sha256 checked)"
ratio big scp "cm-fetch (sha256 checked)"
ratio big rsync "cm-fetch (sha256 checked)"
ratio live "cm-exec, then rsync -a (one per host)" "cm-exec | cm-fetch"
