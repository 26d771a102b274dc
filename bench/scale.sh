#!/usr/bin/env bash
# N tiny jobs through the whole pipeline on K loopback test hosts x S slots:
#   cm-plan -d 'e(i=1..N)=echo $i' +e | cm-exec | cm-reduce --table
# while bench/rss-peak.pl samples the resident set of every process of the pipeline and of the hosts'
# sessions, loops and jobs every 0.5 s. Checks the sum (N(N+1)/2), and prints jobs/s, CPU per job
# split between the hosts and the controller (bench/cpu-split.pl), and the peak RSS of each command
# against the 200 MB budget. Exit 1 when the sum is wrong or the pipeline failed.
#
#   bash bench/scale.sh [N [HOSTS [SLOTS]]]     default 1000000 16 4
#   TRANSPORT=ssh bash bench/scale.sh 2000      another cm-exec transport (default: its own)
#   RSS_LIMIT_MB=200                             the budget every process must stay under
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$REPO/node_modules/.bin:$PATH"
N=${1:-1000000} K=${2:-16} SLOTS=${3:-4}
LIMIT_MB=${RSS_LIMIT_MB:-200}

CM_TEST_HOSTS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench-scale.XXXXXX")
export CM_TEST_HOSTS_DIR
# a port of its own: bats runs on this machine hold port 22 of the 127.0.1x blocks
export CM_TEST_HOSTS_PORT=${CM_TEST_HOSTS_PORT:-2293}
# shellcheck source=../test/helpers/hosts.bash
source "$REPO/test/helpers/hosts.bash"
WORK=$CM_TEST_HOSTS_DIR/work
mkdir -p "$WORK"
cleanup() {
  cm_hosts_stop
  rm -rf "$CM_TEST_HOSTS_DIR"
}
trap cleanup EXIT
cm_hosts_start "$K" "$SLOTS" >&2 || exit 4

want=$(awk -v n="$N" 'BEGIN { printf "%.0f", n * (n + 1) / 2 }')
transport=()
[[ -n ${TRANSPORT:-} ]] && transport=(--transport "$TRANSPORT")
export N WORK
# the pipeline; the table of values is all that reaches a file, so the run needs no disk for events
pipeline='cm-plan -d "e(i=1..$N)=echo \$i" +e | cm-exec -q --logs "$WORK/logs" "$@" | cm-reduce --table >"$WORK/values"'

echo "scale: $N jobs on $K hosts x $SLOTS slots ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
perl "$REPO/bench/cpu-split.pl" "$WORK/split" "$CM_TEST_HOSTS_DIR/pids" "$CM_TEST_HOSTS_DIR" -- \
  perl "$REPO/bench/rss-peak.pl" "$WORK/rss" "$CM_TEST_HOSTS_DIR/pids" -- \
  bash -o pipefail -c "$pipeline" bash "${transport[@]}"
rc=$?
read -r wall host ctl mach _ self <"$WORK/split"
sum=$(awk '$1 == "sum:e" { print $2 }' "$WORK/values")

status=0
if ((rc != 0)); then
  echo "bench: the pipeline exited $rc" >&2
  status=1
fi
if [[ $sum != "$want" ]]; then
  echo "bench: sum '$sum', want $want" >&2
  status=1
fi
over=$(awk -v l="$LIMIT_MB" '$3 / 1024 >= l { printf "%s %s %.0f MB; ", $1, $2, $3 / 1024 }' "$WORK/rss")
[[ -z $over ]] || echo "bench: over $LIMIT_MB MB RSS: $over" >&2

printf '%s tiny jobs (echo $i) through cm-plan | cm-exec%s | cm-reduce on %s hosts x %s slots, %s CPUs, load %s\n' \
  "$N" "${TRANSPORT:+ --transport $TRANSPORT}" "$K" "$SLOTS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
awk -v n="$N" -v w="$wall" -v h="$host" -v c="$ctl" -v m="$mach" -v s="$self" -v sum="$sum" -v want="$want" 'BEGIN {
  printf "wall %.1f s, %.0f jobs/s; sum %s (want %s)\n", w / 1000, n * 1000 / w, sum, want
  printf "CPU per job: hosts %.3f ms, controller %.3f ms, machine %.3f ms (other %.3f ms)\n", h / n, c / n, (m - s) / n, (m - s - h - c) / n
}'
printf '%-11s %-24s %12s %10s\n' side command peak_rss_MB processes
awk '{ printf "%-11s %-24s %12.1f %10d\n", $1, $2, $3 / 1024, $4 }' "$WORK/rss"
if [[ -z $over ]]; then
  echo "every process under $LIMIT_MB MB RSS: yes"
else
  echo "every process under $LIMIT_MB MB RSS: no"
fi
exit "$status"
