# Fixtures and checks for test/examples.bats; the table (test/examples/table.txt) calls these.
#
# Every example runs in its own scratch folder $W (with a copy of examples/ and a scratch $HOME that
# has an empty ~/.ssh), through `bash -c` as a person's shell would, with no inventory: the embedded
# default (localhost) unless its entry sets one up. Nothing an example does reaches a non-loopback
# address: the hosts named in examples are the loopback test hosts of helpers/hosts.bash.

# test_hosts TAG...: ./cm.yaml holds the test hosts th1..th3 (real sshds on loopback), tagged test and TAG...
test_hosts() {
  local tags="test${*:+, }$(IFS=,; echo "${*}" | sed 's/,/, /g')"
  sed "s/tags: \[test\]/tags: [$tags]/" "$EXAMPLES_HOSTS_INVENTORY" >"$W/cm.yaml"
}

# dead_host NAME TAG: a host tagged TAG that is down (loopback, nothing listens on its port)
dead_host() {
  printf '  %s:\n    address: 127.0.9.254\n    port: 1\n    tags: [%s]\n' "$1" "$2" >>"$W/cm.yaml"
}

# plan_file NAME FILE: NAME in $W is a copy of FILE from the repository (a user's plan file)
plan_file() {
  cp "$CM_REPO/$2" "$W/$1"
}

# crash_plan FILE: a plan of 4 quick jobs and 2 that wait for $W/gate; value 1+2+3+4+10+20 = 40
crash_plan() {
  cat >"$W/$1" <<PLAN
def quick(i=1..4):
    echo \$i
def gated(i=1..2):
    while [ ! -e $W/gate ]; do sleep 0.05; done; echo \$((i * 10))
quick | gated
+quick + gated
PLAN
}

_finished_in() {
  [[ -f $1 ]] && (($(grep -c '"event":"finished"' "$1") >= $2))
}

# after_crash PLAN: "after a crash": cm-exec --joblog run.log on PLAN's jobs (also left in jobs.ndjson)
# is SIGKILLed once the 4 quick jobs are in the joblog; then the gated ones may finish
after_crash() {
  cm-plan -f "$W/$1" >"$W/jobs.ndjson"
  cm-exec --joblog "$W/run.log" <"$W/jobs.ndjson" >"$W/crashed.ndjson" 2>/dev/null &
  local pid=$!
  wait_for 60 _finished_in "$W/run.log" 4
  kill -KILL "$pid"
  wait "$pid" || true
  assert_equal "$(grep -c '"event":"finished"' "$W/run.log")" 4
  touch "$W/gate"
}

# last_value [FIELD]: FIELD (default .value) of the last value record of $output
last_value() {
  grep '"kind":"value"' <<<"$output" | tail -1 | jq -c "${1:-.value}"
}

# records KIND [EVENT]: how many records of KIND (and EVENT) $output holds
records() {
  if [[ -n ${2-} ]]; then jq -c "select(.kind==\"$1\" and .event==\"$2\")" <<<"$output" | wc -l
  else jq -c "select(.kind==\"$1\")" <<<"$output" | wc -l; fi
}

# all_json: every line of $output is one JSON object
all_json() {
  local n
  # one jq for all lines (one per line costs seconds); as many objects as lines: one record a line
  n=$(jq -c 'select(type=="object")' <<<"$output" | wc -l)
  assert_equal "$n" "${#lines[@]}"
}

# on_tty COMMAND: runs COMMAND (a shell line) with stdout and stderr on a terminal, as a person sees
# it; $output is what the terminal showed: of a line redrawn after a carriage return (a progress
# line, then a job's output), what stays on screen, without the erase-line codes
on_tty() {
  script -qefc "$1" /dev/null </dev/null | awk '{ sub(/\r$/, ""); n = split($0, part, "\r"); s = part[n]; gsub(/\033\[K/, "", s); print s }'
  return "${PIPESTATUS[0]}"
}

# readme_shown LINE: the lines README.md shows after the session line LINE (up to the next $ line)
readme_shown() {
  awk -v want="$1" '
    $0 == want { on = 1; next }
    on && (/^\$ / || /^```/) { exit }
    on { print }' "$CM_REPO/README.md"
}

# hosts_in FILE [SELECTOR]: the names of the inventory's hosts, comma-separated
hosts_in() {
  cm-hosts list ${2:+"$2"} --json -i "$1" | jq -r .name | paste -sd, -
}
