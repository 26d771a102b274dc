# Loaded by every test/*.bats with `load helpers/common`: the repository's binaries first on PATH,
# bats-support and bats-assert from node_modules, $CM_REPO set.

CM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CM_REPO
[[ $PATH == "$CM_REPO/node_modules/.bin:"* ]] || export PATH="$CM_REPO/node_modules/.bin:$PATH"

load "$CM_REPO/node_modules/bats-support/load.bash"
load "$CM_REPO/node_modules/bats-assert/load.bash"

# `run --separate-stderr` and `run !` need bats >= 1.5; saying so silences warning BW02
bats_require_minimum_version 1.5.0

# wait_for SECONDS COMMAND...: runs COMMAND every 20 ms until it succeeds (0) or SECONDS have passed
# (1). Tests wait for the condition they are about to assert, never a fixed time: a slow machine only
# makes them slower, not wrong.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.02
  done
}

# left_behind TOKEN: processes on this machine whose command line holds TOKEN (the test hosts share
# this machine's process table), one per line
left_behind() {
  ps -eo args= | grep -F -- "$1" | grep -v -e grep -e 'ps -eo' || true
}

# none_left TOKEN: no process holds TOKEN any more (for wait_for)
none_left() {
  [[ -z $(left_behind "$1") ]]
}

# assert_none_left TOKEN: no process holding TOKEN is left, waiting up to 20 s for the hosts to reap
# what the run killed; the failure lists the ones still there
assert_none_left() {
  wait_for 20 none_left "$1" || true
  assert_equal "$(left_behind "$1")" ""
}
