#!/usr/bin/env bash
# Runs the fault scenarios on real test hosts and prints the table
#   fault | jobs | lost | duplicated | leftover processes | exit code | pass/fail | notes
#   bash test/faults/table.sh [SCENARIO...]    default: all, the load row at full size (10,000 jobs
#                                              over 200 hosts); CM_FAULTS_LOAD="2000 50" makes it smaller
# Exit 0 when every row passed. Needs root (network namespaces, tmpfs) like the other host suites.
set -uo pipefail
CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=$CM_REPO/node_modules/.bin:$PATH
# shellcheck source=../helpers/hosts.bash
source "$CM_REPO/test/helpers/hosts.bash"
# shellcheck source=netns.bash
source "$CM_REPO/test/faults/netns.bash"
# shellcheck source=scenarios.bash
source "$CM_REPO/test/faults/scenarios.bash"
# more rows, one file per subject: each adds its scenario names to FAULT_ROWS
FAULT_ROWS=()
for f in "$CM_REPO"/test/faults/rows/*.bash; do
  # shellcheck disable=SC1090
  source "$f"
done

FT=$(mktemp -d "${TMPDIR:-/tmp}/cm-faults.XXXXXX")
export CM_TEST_HOSTS_DIR=$FT/hosts
export CM_FAULTS_TABLE=$FT/table.tsv
: >"$CM_FAULTS_TABLE"
cleanup() {
  [[ -n ${CM_FAULTS_KEEP:-} ]] && { echo "table.sh: kept $FT" >&2; faults_hosts_stop; return; }
  mountpoint -q "$FT/full" 2>/dev/null && umount "$FT/full"
  faults_hosts_stop
  rm -rf "$FT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

all=(host_down_before sshd_dies drop_before drop_mid_run slow_host hang_timeout big_output forks_children
  ignores_term sigkill_resume sigint head fetch_disk_full fetch_vanished "${FAULT_ROWS[@]}" load)
(($#)) && all=("$@")
faults_hosts_start >/dev/null || exit 1
failed=0
for s in "${all[@]}"; do
  echo "table.sh: $s ..." >&2
  t0=$(date +%s)
  if [[ $s == load ]]; then
    # shellcheck disable=SC2086
    fault_load ${CM_FAULTS_LOAD:-10000 200} || failed=1
  else
    "fault_$s" || failed=1
  fi
  echo "table.sh: $s took $(($(date +%s) - t0)) s" >&2
done
{
  printf 'fault\tjobs\tlost\tduplicated\tleftover\texit\tresult\tnotes\n'
  cat "$CM_FAULTS_TABLE"
} | column -t -s $'\t'
exit "$failed"
