#!/usr/bin/env bash
# Plan benchmark: cm-plan turning a sweep of N runs (default 1,000,000) into job records, measured
# for wall time, jobs/s and peak RSS (/usr/bin/time -v), next to peers producing the same number of
# lines in the same run:
#   awk        printf of an equivalent job line per run (the floor: no parsing, no JSON library)
#   parallel   GNU parallel --dry-run expanding a command over a range (when installed; at most
#              PEER_RUNS=2000 runs, as it is slow: compare jobs/s, not wall time)
# and the start time of `cm-plan --help` (hyperfine when installed, else 20 timed runs).
#
#   bench/plan.sh [RUNS]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-1000000}
PLAN=$REPO/node_modules/.bin/cm-plan
[[ -f $REPO/tools/cm-plan/dist/main.cjs ]] || node "$REPO/scripts/build.mjs" cm-plan
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# measure NAME CMD...: wall seconds and peak RSS (kB) of CMD with stdout counted and discarded
measure() {
  local name=$1
  shift
  local start end lines
  start=$(date +%s.%N)
  lines=$(/usr/bin/time -v -o "$tmp/$name.time" "$@" | wc -l)
  end=$(date +%s.%N)
  local wall rss
  wall=$(echo "$end - $start" | bc -l)
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/$name.time")
  printf '%s %s %s %s\n' "$name" "$wall" "$rss" "$lines" >>"$tmp/results"
}

measure cm-plan "$PLAN" -d "bench(i=1..$N)=./bench.sh \$i" +bench
measure awk awk -v n="$N" 'BEGIN { for (k = 0; k < n; k++) printf "{\"kind\":\"job\",\"v\":1,\"id\":\"bench.%d\",\"task\":\"bench\",\"command\":\"./bench.sh $i\",\"deps\":[],\"env\":{\"i\":\"%d\"},\"sweep\":\"bench\",\"index\":%d}\n", k, k + 1, k }'
if command -v parallel >/dev/null; then
  seq 1 "$((N < ${PEER_RUNS:-2000} ? N : ${PEER_RUNS:-2000}))" >"$tmp/args"
  measure parallel parallel --will-cite --dry-run -a "$tmp/args" ./bench.sh
fi

plan_rate=$(awk '$1 == "cm-plan" {print $4 / $2}' "$tmp/results")
printf '%-10s %10s %10s %12s %12s %16s\n' tool lines wall_s jobs_per_s peak_rss_MB jobs_per_s/cm-plan
while read -r name wall rss lines; do
  rate=$(echo "$lines / $wall" | bc -l)
  printf '%-10s %10d %10.2f %12.0f %12.1f %15.2fx\n' "$name" "$lines" "$wall" "$rate" "$(echo "$rss / 1024" | bc -l)" "$(echo "$rate / $plan_rate" | bc -l)"
done <"$tmp/results"

# First record of a million-run sweep: the plan streams, it does not build the list first.
start=$(date +%s.%N)
"$PLAN" -d "bench(i=1..$N)=./bench.sh \$i" +bench | head -1 >/dev/null
printf 'first record of %d-run sweep after: %.3f s\n' "$N" "$(echo "$(date +%s.%N) - $start" | bc -l)"

if command -v hyperfine >/dev/null; then
  hyperfine --warmup 3 --runs 20 --style basic "$PLAN --help" "node -e 0" 2>&1 | grep -E 'Benchmark|Time \(mean|±|faster|slower|node -e 0' || true
else
  start=$(date +%s.%N)
  for _ in $(seq 20); do "$PLAN" --help >/dev/null; done
  printf 'cm-plan --help: %.1f ms mean over 20 runs\n' "$(echo "($(date +%s.%N) - $start) * 50" | bc -l)"
fi
