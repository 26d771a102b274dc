#!/usr/bin/env bash
# Runs the bats suites one file at a time, timing each, and ends with the totals line
# "N passed, M failed" (skipped tests are counted apart).
#
#   bash test/run-bats.sh [FILE.bats...]     default: every test/*.bats
#   CM_BATS_FILTER=REGEX                     only files whose path matches the extended regex
#   CM_BATS_TIMEOUT=SECONDS                  a file still running after this is killed (default 600)
#   CM_BATS_SUMMARY=FILE                     the totals line is also written there (test/run-all.sh)
#
# A file whose tests share nothing (no hosts, no lab) says so with a line "# bats: parallel tests";
# its tests then run side by side, one per CPU (bats --jobs, with GNU parallel).
# After each file, any sshd that test/helpers/hosts.bash started and that is still alive is reported
# as a leak and stopped, by pid, so one careless suite cannot break the next.
set -uo pipefail

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$CM_REPO" || exit 70
bats=$CM_REPO/node_modules/bats/bin/bats
if [[ ! -x $bats ]]; then
  echo "run-bats.sh: $bats not found: run npm ci first" >&2
  exit 4
fi
# shellcheck source=helpers/hosts.bash
source "$CM_REPO/test/helpers/hosts.bash"

if (($#)); then
  files=("$@")
else
  shopt -s nullglob
  files=(test/*.bats)
fi
if [[ -n ${CM_BATS_FILTER:-} ]]; then
  kept=()
  for f in "${files[@]}"; do
    [[ $f =~ $CM_BATS_FILTER ]] && kept+=("$f")
  done
  files=("${kept[@]}")
fi

((${#files[@]})) || echo "run-bats.sh: no .bats file to run${CM_BATS_FILTER:+ (CM_BATS_FILTER=$CM_BATS_FILTER)}" >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/cm-bats.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CM_TEST_PID_LEDGER=$work/pids
: >"$CM_TEST_PID_LEDGER"

# sshd daemons from the ledger still alive: stop them, print how many
stop_leaks() {
  local pid start n=0
  while read -r pid start; do
    if _cm_alive "$pid" "$start"; then
      n=$((n + 1))
      _cm_kill_tree "$pid" "$start" >&2
    fi
  done <"$CM_TEST_PID_LEDGER"
  : >"$CM_TEST_PID_LEDGER"
  echo "$n"
}

child=""
on_signal() {
  trap - INT TERM
  if [[ -n $child ]]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child"
  fi
  stop_leaks >/dev/null
  echo "run-bats.sh: stopped by SIG$1" >&2
  rm -rf "$work"
  exit $((128 + $(kill -l "$1")))
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

limit=${CM_BATS_TIMEOUT:-600}
total_pass=0 total_fail=0 total_skip=0
report=()
# A suite that reads CM_EXEC_TRANSPORT runs once more on the per-job ssh transport, and one that reads
# CM_REMOTE_LOOP once more with the persistent sessions on the POSIX sh loop (hosts without perl), so
# every behaviour test holds on every way a job can reach a host.
runs=()
for f in "${files[@]}"; do
  runs+=("$f")
  grep -q 'CM_EXEC_TRANSPORT:-' "$f" && runs+=("$f@ssh")
  grep -q 'CM_REMOTE_LOOP:-' "$f" && runs+=("$f@sh-loop")
done
for run_ in "${runs[@]}"; do
  f=${run_%@*}
  transport="" loop=""
  [[ $run_ == *@ssh ]] && transport=ssh
  [[ $run_ == *@sh-loop ]] && loop=sh
  jobs=()
  grep -qx '# bats: parallel tests' "$f" && jobs=(--jobs "$(nproc)")
  echo "=== $run_"
  t0=$(date +%s%N)
  : >"$work/out"
  # in the background, so that a signal reaches our trap at once instead of after the file
  CM_EXEC_TRANSPORT=${transport:-${CM_EXEC_TRANSPORT:-}} CM_REMOTE_LOOP=${loop:-${CM_REMOTE_LOOP:-}} timeout --kill-after=10 "$limit" \
    "$bats" --formatter tap --print-output-on-failure --timing "${jobs[@]}" "$f" </dev/null >"$work/out" 2>&1 &
  child=$!
  tail -n +1 -f --pid="$child" "$work/out" &
  tailer=$!
  wait "$child"
  rc=$?
  child=""
  wait "$tailer"
  t1=$(date +%s%N)
  skip=$(grep -cE '^ok [0-9]+ .*# skip' "$work/out")
  pass=$(($(grep -cE '^ok [0-9]+ ' "$work/out") - skip))
  fail=$(grep -cE '^not ok [0-9]+ ' "$work/out")
  note=""
  if ((rc == 124 || rc == 137)); then
    note=" (killed after ${limit}s)"
    ((fail == 0)) && fail=1
  elif ((rc != 0 && fail == 0)); then
    # a syntax error or a failing setup_file before any test reported
    note=" (bats exited $rc)"
    fail=1
  fi
  leaks=$(stop_leaks)
  ((leaks)) && note+=" (leaked $leaks sshd: stopped; call cm_hosts_stop in teardown_file)"
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  line="$run_: $pass passed, $fail failed, $skip skipped, ${secs}s$note"
  echo "=== $line"
  report+=("$secs $line")
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
  total_skip=$((total_skip + skip))
done

echo
echo "bats, per file, slowest first:"
((${#report[@]})) && printf '%s\n' "${report[@]}" | sort -rn -k1,1 | cut -d' ' -f2- | sed 's/^/  /'
((total_skip)) && echo "$total_skip skipped"
summary="$total_pass passed, $total_fail failed"
[[ -n ${CM_BATS_SUMMARY:-} ]] && echo "$summary" >"$CM_BATS_SUMMARY"
echo "$summary"
((total_fail == 0 && ${#files[@]} > 0))
