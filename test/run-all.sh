#!/usr/bin/env bash
# The whole suite, as `npm test` runs it (and .ci/run after `npm ci`): system packages, build,
# typecheck, vitest, bats. Every step runs even when an earlier one failed, so one report shows
# everything; the exit status is 0 only when all passed. The last line is the bats totals,
# "N passed, M failed".
set -uo pipefail

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$CM_REPO" || exit 70
bin=$CM_REPO/node_modules/.bin

summary=$(mktemp "${TMPDIR:-/tmp}/cm-bats-summary.XXXXXX")
trap 'rm -f "$summary"' EXIT

failed=()
steps=()
step() {
  local name=$1 t0 t1 rc
  shift
  echo
  echo "##### $name: $*"
  t0=$(date +%s%N)
  "$@" </dev/null
  rc=$?
  t1=$(date +%s%N)
  ((rc == 0)) || failed+=("$name")
  steps+=("$(printf '%-10s %-4s %6.1fs' "$name" "$( ((rc == 0)) && echo ok || echo FAIL)" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')")")
}

step deps bash test/install-deps.sh
step build node scripts/build.mjs
step typecheck "$bin/tsc" -p tsconfig.json --noEmit
step vitest "$bin/vitest" run
CM_BATS_SUMMARY=$summary step bats bash test/run-bats.sh

echo
echo "steps:"
for s in "${steps[@]}"; do echo "  $s"; done
((${#failed[@]})) && echo "failed steps: ${failed[*]}"
if [[ -s $summary ]]; then cat "$summary"; else echo "0 passed, 0 failed"; fi
((${#failed[@]} == 0))
