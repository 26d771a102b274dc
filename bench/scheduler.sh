#!/usr/bin/env bash
# The scheduler alone: CPU per job on 16, 256 and 4096 hosts, and on 20k, 200k and 1M jobs, with the
# ratio to the first row of each kind (a job's cost must not grow with the hosts or the records).
# No ssh, no hosts: bench/scheduler.ts drives libs/exec's Scheduler in one node process.
#
#   bash bench/scheduler.sh [JOBS [HOSTS,... [JOBS,... [WAITING,...]]]]
#     default 200000 16,256,4096 20000,200000,1000000 1024,32768 (the last: jobs pinned to a tag of 4
#     hosts, with that many jobs waiting behind them)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mktemp "${TMPDIR:-/tmp}/cm-bench-scheduler.XXXXXX.cjs")
trap 'rm -f "$out"' EXIT
"$REPO/node_modules/.bin/esbuild" --bundle --platform=node --target=node20 --log-level=warning "$REPO/bench/scheduler.ts" --outfile="$out"
node "$out" "$@"
