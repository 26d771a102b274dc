#!/usr/bin/env bats
# The benchmark workflow of a new user, on real sshd test hosts: one plan file (examples/bench.cm:
# 3 sizes x 50 repetitions, each run writing a result file) and one pipeline line that stages the
# script, runs the jobs, fetches the result files and shows the mean and p90 per size.

load helpers/common
load helpers/hosts

setup_file() {
  cm_hosts_start 4 2
}

teardown_file() {
  cm_hosts_stop
}

setup() {
  mkdir -p "$BATS_TEST_TMPDIR/work"
  cd "$BATS_TEST_TMPDIR/work" || return 1
}

# The pipeline line as examples/bench.cm's header gives it, run from another folder than the plan's.
pipeline() {
  sed -n 's/^#   \(cm-plan -f examples\/bench.cm .*\)$/\1/p' "$CM_REPO/examples/bench.cm" | sed "s|examples/bench.cm|$CM_REPO/examples/bench.cm|"
}

@test "bench.cm: 150 jobs on 4 hosts, every result file fetched under its parameters, mean and p90 per size" {
  line=$(pipeline)
  [[ $line == *'| cm-reduce --op mean,p90' ]]
  run --separate-stderr bash -o pipefail -c "$line --json"
  assert_equal "$status" 0
  # every run on a test host, every result fetched and verified
  assert_equal "$(jq -c 'select(.kind == "event" and .event == "finished") | .exit' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "150 0"
  assert_equal "$(jq -r 'select(.kind == "event" and .event == "finished") | .host' <<<"$output" | sort -u | paste -sd,)" th1,th2,th3,th4
  assert_equal "$(jq -c 'select(.kind == "fetch" and .direction == "out") | .ok' <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "150 true"
  # a user finds size=4000's files by their parameters, without a lookup
  assert_equal "$(find results -path '*size=4000*' -name time.txt | wc -l)" 50
  assert_equal "$(find results -name time.txt | wc -l)" 150
  # one mean and one p90 per size, each over its 50 runs and labelled with its size
  assert_equal "$(jq -c 'select(.kind == "value" and .partial == false) | [.op, .group.size, .have, .want]' <<<"$output" | sort | tr '\n' ' ')" \
    '["mean","1000",50,50] ["mean","2000",50,50] ["mean","4000",50,50] ["p90","1000",50,50] ["p90","2000",50,50] ["p90","4000",50,50] '
  # the mean of size 4000 is the mean of its 50 fetched files
  want=$(find results -path '*size=4000*' -name time.txt -exec cat {} + | awk '{ s += $1 } END { printf "%.6f", s / NR }')
  got=$(jq -r 'select(.kind == "value" and .op == "mean" and .group.size == "4000") | .value' <<<"$output")
  assert_equal "$(awk -v g="$got" 'BEGIN { printf "%.6f", g }')" "$want"
  # nothing is left on the hosts: each job's folder went once its files were fetched and verified
  for h in 1 2 3 4; do
    assert_equal "$(find "$(cm_host_home "th$h")/.cm/runs" -mindepth 1 2>/dev/null | wc -l)" 0
  done
}

@test "bench.cm on a terminal: a table of the mean and p90 per size, nothing else on stdout" {
  line=$(pipeline)
  run script -qefc "{ $line; } 2>/dev/null" /dev/null
  assert_equal "$status" 0
  lines_shown=$(sed 's/\r$//' <<<"$output")
  assert_equal "$(head -1 <<<"$lines_shown" | tr -s ' ')" 'ID SIZE MEAN P90'
  assert_equal "$(sed 1d <<<"$lines_shown" | awk '{ print $1, $2 }' | paste -sd,)" 'sum:bench 1000,sum:bench 2000,sum:bench 4000'
  assert_equal "$(wc -l <<<"$lines_shown")" 4
}
