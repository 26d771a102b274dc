#!/usr/bin/env bats
# Examples are tests: every example of README.md and of each command's --help runs here and must give
# what its text says. test/examples/extract.mjs finds the examples; test/examples/table.txt holds, for
# each (keyed by its exact text), how it runs and what to check. An example without an entry fails the
# first test, naming it; an entry whose example is gone fails the second. Adding an example to a doc
# means adding its entry: a `$ EXAMPLE` line and its `check:` lines (the header of table.txt).
#
# Examples that need hosts run on the real loopback test hosts of helpers/hosts.bash, given the names
# and tags the examples use (test/examples/lib.bash). Entries marked `lab: vagrant` boot real machines:
# test/examples-vagrant.bats runs those, in the Vagrant lab; this file runs every other entry
# (test/examples/runner.bash loads the table and runs an entry).

load helpers/common
load helpers/hosts
load examples/lib
load examples/runner

register_examples ""

setup_file() {
  cm_hosts_start 3 2
  export EXAMPLES_HOSTS_INVENTORY=$CM_INVENTORY
}

teardown_file() {
  cm_hosts_stop
}

teardown() {
  example_teardown
}

@test "every example of README.md and of each --help has an entry in test/examples/table.txt" {
  local src ex missing=() have
  have=$(printf '%s\n' "${EX[@]}")
  while IFS=$'\t' read -r src ex; do
    grep -qxF -- "$ex" <<<"$have" || missing+=("$src: $ex")
  done < <(node "$BATS_TEST_DIRNAME/examples/extract.mjs")
  if ((${#missing[@]})); then
    echo "these examples have no entry in test/examples/table.txt (add a line '\$ EXAMPLE' with its checks):"
    printf '  %s\n' "${missing[@]}"
    return 1
  fi
}

@test "every entry of test/examples/table.txt is an example of README.md or a --help, once" {
  local all ex stale=()
  all=$(node "$BATS_TEST_DIRNAME/examples/extract.mjs" | cut -f2-)
  for ex in "${EX[@]}"; do
    grep -qxF -- "$ex" <<<"$all" || stale+=("$ex")
  done
  if ((${#stale[@]})); then
    echo "these entries of test/examples/table.txt match no example any more (the doc changed: update or remove them):"
    printf '  %s\n' "${stale[@]}"
    return 1
  fi
  # once per lab: an example may also have a `lab:` entry that runs it on real machines
  local i keyed=()
  for i in "${!EX[@]}"; do keyed+=("${F[$i,lab]-}:${EX[i]}"); done
  assert_equal "$(printf '%s\n' "${keyed[@]}" | sort | uniq -d)" ""
  # a lab no suite runs would leave its entries unrun
  for i in "${!EX[@]}"; do
    [[ -z ${F[$i,lab]-} || ${F[$i,lab]} == vagrant ]] || TABLE_ERRORS+=("lab ${F[$i,lab]}: no suite runs it: ${EX[i]}")
  done
  if ((${#TABLE_ERRORS[@]})); then
    printf '%s\n' "${TABLE_ERRORS[@]}"
    return 1
  fi
}
