#!/usr/bin/env bash
# Every benchmark, one after another (npm run bench). Each starts and stops its own test hosts and
# prints its own table of seconds and ratios against its peers (GNU parallel, xargs, scp, rsync, awk).
#   bash bench/run.sh [exec transport plan fetch hosts-check slurm report]   default: all of them
# Run on a quiet machine: the figures are wall-clock times on 2 cores.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
names=("$@")
((${#names[@]})) || names=(exec transport plan fetch hosts-check slurm report)
rc=0
for n in "${names[@]}"; do
  echo "##### bench/$n.sh"
  bash "$here/$n.sh" || rc=1
  echo
done
exit "$rc"
