#!/usr/bin/env bats
# Examples are tests: every example of README.md and of each command's --help runs here and must give
# what its text says. test/examples/extract.mjs finds the examples; test/examples/table.txt holds, for
# each (keyed by its exact text), how it runs and what to check. An example without an entry fails the
# first test, naming it; an entry whose example is gone fails the second. Adding an example to a doc
# means adding its entry: a `$ EXAMPLE` line and its `check:` lines (the header of table.txt).
#
# Examples that need hosts run on the real loopback test hosts of helpers/hosts.bash, given the names
# and tags the examples use (test/examples/lib.bash). Entries marked `lab: vagrant` or `lab: slurm`
# boot real machines or a cluster: they run only when CM_EXAMPLES_LABS names the lab (a suite that has
# started it sets it; helpers/vagrant-lab.sh, helpers/slurm-lab.sh), and are skipped, saying so, here.

load helpers/common
load helpers/hosts
load examples/lib

TABLE=$BATS_TEST_DIRNAME/examples/table.txt
KEYS=" setup run check lab after xfail not-run "

# EX[i]: the example of entry i; F[i,key]: its fields (repeated keys joined by newlines)
EX=()
declare -gA F=()
TABLE_ERRORS=()
_load_table() {
  local line n=0 i=-1 kv key val
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    if [[ $line == '$ '* ]]; then
      i=$((i + 1))
      EX[i]=${line:2}
    elif [[ $line =~ ^[[:space:]]+([a-z-]+):\ (.*)$ ]]; then
      key=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
      if ((i < 0)) || [[ $KEYS != *" $key "* ]]; then
        TABLE_ERRORS+=("table.txt:$n: unknown key or no example above: $line")
        continue
      fi
      F[$i,$key]+=${F[$i,$key]:+$'\n'}$val
    else
      TABLE_ERRORS+=("table.txt:$n: neither '\$ EXAMPLE', '  key: value' nor a comment: $line")
    fi
  done <"$TABLE"
}
_load_table

setup_file() {
  cm_hosts_start 3 2
  export EXAMPLES_HOSTS_INVENTORY=$CM_INVENTORY
}

teardown_file() {
  cm_hosts_stop
}

teardown() {
  if [[ -n ${EXAMPLE_AFTER-} && -d ${W-} ]]; then
    (cd "$W" && eval "$EXAMPLE_AFTER") || true
  fi
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
  assert_equal "$(printf '%s\n' "${EX[@]}" | sort | uniq -d)" ""
  if ((${#TABLE_ERRORS[@]})); then
    printf '%s\n' "${TABLE_ERRORS[@]}"
    return 1
  fi
}

# _checks_pass CHECKS: every line of CHECKS succeeds (errexit is off in a condition: each line is tested)
_checks_pass() {
  local c
  while IFS= read -r c; do
    eval "$c" || return 1
  done <<<"$1"
}

# run_example I: entry I of the table, in a scratch folder
run_example() {
  local i=$1
  EXAMPLE=${EX[i]}
  export EXAMPLE
  echo "example: $EXAMPLE"
  [[ -z ${F[$i,not-run]-} ]] || skip "not run: ${F[$i,not-run]}"
  local lab=${F[$i,lab]-}
  if [[ -n $lab && ",${CM_EXAMPLES_LABS-}," != *",$lab,"* ]]; then
    skip "needs the $lab lab: runs in a suite that started it, with CM_EXAMPLES_LABS=$lab"
  fi
  W=$BATS_TEST_TMPDIR/w
  mkdir -p "$W" "$BATS_TEST_TMPDIR/home/.ssh"
  chmod 700 "$BATS_TEST_TMPDIR/home/.ssh"
  cp -r "$CM_REPO/examples" "$W/"
  export W HOME=$BATS_TEST_TMPDIR/home
  unset CM_INVENTORY
  cd "$W"
  EXAMPLE_AFTER=${F[$i,after]-}
  eval "${F[$i,setup]-}"
  run --separate-stderr bash -c "${F[$i,run]-$EXAMPLE}"
  printf 'exit: %s\nstderr:\n%s\n' "$status" "$stderr"
  local checks=${F[$i,check]-assert_success}
  if [[ -n ${F[$i,xfail]-} ]]; then
    if (_checks_pass "$checks") >/dev/null 2>&1; then
      echo "this example now gives what its text says: remove the xfail line of its entry"
      return 1
    fi
    skip "fails as written: ${F[$i,xfail]}"
  fi
  eval "$checks"
}

# the description is eval'ed by bats: keep the example's $, quotes and backquotes as they are
_described() {
  local s=$1
  s=${s//\\/\\\\} s=${s//\"/\\\"} s=${s//\$/\\\$} s=${s//\`/\\\`}
  printf '%s' "$s"
}

for _i in "${!EX[@]}"; do
  bats_test_function --description "example: $(_described "${EX[_i]}")" -- run_example "$_i"
done
unset _i
