#!/usr/bin/env bash
# Every benchmark, one after another (npm run bench). Each starts and stops its own test hosts and
# prints its own table of seconds and ratios against its peers (GNU parallel, xargs, scp, rsync, awk).
#   bash bench/run.sh [exec transport scale scheduler plan fetch hosts-check slurm report]   default: all of them
# (scale runs 1,000,000 jobs: most of the time is there.) Run on a quiet machine: wall times are
# noisy on 2 cores; transport, exec and scale also print CPU per job, split between hosts and controller.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
names=("$@")
((${#names[@]})) || names=(exec transport scale scheduler plan fetch hosts-check slurm report)
rc=0
for n in "${names[@]}"; do
  echo "##### bench/$n.sh"
  bash "$here/$n.sh" || rc=1
  echo
done
exit "$rc"
