# The runner of test/examples/table.txt, shared by test/examples.bats (entries without a lab, on the
# loopback test hosts) and test/examples-vagrant.bats (entries with `lab: vagrant`, on the real
# Vagrant lab). A .bats file loads this and calls `register_examples LAB` ("" for no lab) at its top.

EXAMPLES_TABLE=$CM_REPO/test/examples/table.txt
EXAMPLES_KEYS=" setup run check lab session after xfail not-run "

# EX[i]: the example of entry i; F[i,key]: its fields (repeated keys joined by newlines)
EX=()
declare -gA F=()
TABLE_ERRORS=()
load_examples_table() {
  local line n=0 i=-1 key val
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    if [[ $line == '$ '* ]]; then
      i=$((i + 1))
      EX[i]=${line:2}
    elif [[ $line =~ ^[[:space:]]+([a-z-]+):\ (.*)$ ]]; then
      key=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
      if ((i < 0)) || [[ $EXAMPLES_KEYS != *" $key "* ]]; then
        TABLE_ERRORS+=("table.txt:$n: unknown key or no example above: $line")
        continue
      fi
      F[$i,$key]+=${F[$i,$key]:+$'\n'}$val
    else
      TABLE_ERRORS+=("table.txt:$n: neither '\$ EXAMPLE', '  key: value' nor a comment: $line")
    fi
  done <"$EXAMPLES_TABLE"
}

# _checks_pass CHECKS: every line of CHECKS succeeds (errexit is off in a condition: each line is tested)
_checks_pass() {
  local c
  while IFS= read -r c; do
    eval "$c" || return 1
  done <<<"$1"
}

# _scratch DIR: DIR/w (a copy of the repository's examples/) and DIR/home (an empty ~/.ssh), once
_scratch() {
  W=$1/w
  [[ -d $W ]] && return 0
  mkdir -p "$W" "$1/home/.ssh"
  chmod 700 "$1/home/.ssh"
  cp -r "$CM_REPO/examples" "$W/"
}

# run_example I: entry I of the table, in a scratch folder of its own, or in its session's folder
run_example() {
  local i=$1 session=${F[$1,session]-}
  EXAMPLE=${EX[i]}
  export EXAMPLE
  echo "example: $EXAMPLE"
  [[ -z ${F[$i,not-run]-} ]] || skip "not run: ${F[$i,not-run]}"
  if [[ -n $session ]]; then
    _scratch "$BATS_FILE_TMPDIR/session-$session"
  else
    _scratch "$BATS_TEST_TMPDIR"
  fi
  export W HOME=${W%/w}/home
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

# the teardown of an example: its `after:` lines, also when it failed
example_teardown() {
  if [[ -n ${EXAMPLE_AFTER-} && -d ${W-} ]]; then
    (cd "$W" && eval "$EXAMPLE_AFTER") || true
  fi
}

# the description is eval'ed by bats: keep the example's $, quotes and backquotes as they are
_described() {
  local s=$1
  s=${s//\\/\\\\} s=${s//\"/\\\"} s=${s//\$/\\\$} s=${s//\`/\\\`}
  printf '%s' "$s"
}

# register_examples LAB: one test per entry whose lab is LAB ("": entries without a lab), in table order
register_examples() {
  local i prefix="example: "
  [[ -z $1 ]] || prefix="example ($1 lab): "
  for i in "${!EX[@]}"; do
    [[ ${F[$i,lab]-} == "$1" ]] || continue
    bats_test_function --description "$prefix$(_described "${EX[i]}")" -- run_example "$i"
  done
}

load_examples_table
