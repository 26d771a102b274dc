#!/usr/bin/env bats
# cm-report on real runs (sshd test hosts), its page opened in Debian's headless chromium
# (test/helpers/report-page.cjs, playwright-core with the system browser): the DOM's lanes and bars,
# the failed job marked, no console errors, a screenshot; the live page counting up while a run goes on.
# Screenshots are written under $BATS_TEST_TMPDIR (their paths are printed); CM_REPORT_SCREENSHOT=FILE
# also copies the first test's there (docs/report.png is made so).

load helpers/common
load helpers/hosts

setup_file() {
  cm_hosts_start 2 2
  export CM_EXEC_TRANSPORT=${CM_EXEC_TRANSPORT:-persistent}
}

teardown_file() {
  cm_hosts_stop
}

teardown() {
  # a live run still going: open its gate, then stop what this test started, by pid
  [[ -n ${gate:-} ]] && touch "$gate"
  if [[ -n ${pipeline_pid:-} ]] && kill -0 "$pipeline_pid" 2>/dev/null; then
    wait_for 20 bash -c "! kill -0 $pipeline_pid 2>/dev/null" || kill -- -"$pipeline_pid" 2>/dev/null || true
  fi
  if [[ -n ${page_pid:-} ]] && kill -0 "$page_pid" 2>/dev/null; then kill "$page_pid" 2>/dev/null || true; fi
  true
}

# page URL [ARGS...]: the page's facts as JSON lines (report-page.cjs)
page() {
  node "$CM_REPO/test/helpers/report-page.cjs" "$@"
}

# plan of a sweep on 2 hosts x 2 slots: b.3 fails, c waits for all of b (and is skipped)
sweep_plan() {
  cm-plan -d 'b(n=1..6)=sleep 0.3; [ $n = 4 ] && exit 3; echo $((n * 10))' -d 'c=echo done' 'b; c'
}

@test "a report of a run on 2 hosts x 2 slots: a lane per slot, a bar per attempt, the failed job marked, no console errors" {
  cd "$BATS_TEST_TMPDIR"
  { cm-hosts list --json; sweep_plan; } | cm-exec --transport "$CM_EXEC_TRANSPORT" --run rep1 |
    cm-reduce --op mean --by n --allow-missing | cm-report -o report.html --svg timeline.svg --command 'cm-plan ... | cm-exec | cm-reduce | cm-report' >stream.ndjson
  # the records went through: every event, cm-reduce's values, the host records
  assert_equal "$(jq -r 'select(.event=="finished") | .job' stream.ndjson | sort | tr '\n' ' ')" "b.0 b.1 b.2 b.3 b.4 b.5 "
  assert_equal "$(jq -r 'select(.kind=="host") | .name' stream.ndjson | tr '\n' ' ')" "th1 th2 "
  run page "file://$PWD/report.html" --screenshot "$BATS_TEST_TMPDIR/report.png"
  assert_success
  echo "# screenshot: $BATS_TEST_TMPDIR/report.png" >&3
  [[ -z ${CM_REPORT_SCREENSHOT:-} ]] || cp "$BATS_TEST_TMPDIR/report.png" "$CM_REPORT_SCREENSHOT"
  local f=$output
  assert_equal "$(jq -c .errors <<<"$f")" '[]'
  # host records say 2 slots each: 4 lanes, th1's then th2's
  assert_equal "$(jq -c .laneHosts <<<"$f")" '["th1/1","th1/2","th2/1","th2/2"]'
  assert_equal "$(jq .bars <<<"$f")" 6
  assert_equal "$(jq -c .failed <<<"$f")" '["b.3:failed"]'
  assert_equal "$(jq -c .failedRows <<<"$f")" '["b.3"]'
  assert_equal "$(jq -c '[.counts.jobs, .counts.ok, .counts.failed, .counts.skipped]' <<<"$f")" '[7,5,1,1]'
  # the plan: b then c, from the deps on the queued events; c was skipped
  assert_equal "$(jq .stages <<<"$f")" 2
  # one sweep chart: cm-reduce's mean per n
  assert_equal "$(jq .sweeps <<<"$f")" 1
  assert_equal "$(jq .values <<<"$f")" 6
  # the SVG alone: the same lanes and bars
  assert_equal "$(grep -c '<g class="lane"' timeline.svg)" 4
  assert_equal "$(grep -c '<rect class="bar"' timeline.svg)" 6
}

@test "from a joblog: the report, and GNU parallel's joblog with the failed job's exit code" {
  cd "$BATS_TEST_TMPDIR"
  sweep_plan | cm-exec --transport "$CM_EXEC_TRANSPORT" --joblog run.joblog >/dev/null || true
  run --separate-stderr cm-report -o report.html --parallel-joblog parallel.log run.joblog
  assert_success
  # the joblog's records pass through
  assert_equal "${#lines[@]}" "$(wc -l <run.joblog)"
  assert_equal "$(head -1 parallel.log)" "$(printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand')"
  assert_equal "$(awk -F'\t' 'NR > 1 { print $9 "=" $7 }' parallel.log | sort | tr '\n' ' ')" "b.0=0 b.1=0 b.2=0 b.3=3 b.4=0 b.5=0 "
  run page "file://$PWD/report.html"
  assert_success
  assert_equal "$(jq -c .errors <<<"$output")" '[]'
  # no host records: a host's lanes are the most jobs it ran at once (2 slots each)
  assert_equal "$(jq .lanes <<<"$output")" 4
  assert_equal "$(jq -c .failed <<<"$output")" '["b.3:failed"]'
}

@test "--serve: the live page counts up while the run goes on, the records pass through, and it ends with its input" {
  cd "$BATS_TEST_TMPDIR"
  gate=$BATS_TEST_TMPDIR/gate
  # w.0 ends at once; the 3 others wait for the gate, which the test opens once the page is up
  (cm-plan -d "w(n=1..4)=[ \$n = 1 ] || until [ -e $gate ]; do sleep 0.05; done; echo \$n" +w |
    cm-exec --transport "$CM_EXEC_TRANSPORT" | cm-report --serve | cm-reduce >out.ndjson 2>reduce.err) 2>serve.err &
  pipeline_pid=$!
  wait_for 30 grep -q 'serving http' serve.err
  local url
  url=$(sed -n 's/^cm-report: serving \(http[^ ]*\)$/\1/p' serve.err)
  [[ $url == http://127.0.0.1:* ]]
  # read-only
  run curl -s -o /dev/null -w '%{http_code}' -X POST "$url"
  assert_output 405
  page "$url" --until-done 4 --screenshot "$BATS_TEST_TMPDIR/live.png" --timeout 90 >page.out 2>page.err &
  page_pid=$!
  wait_for 60 bash -c '[[ $(wc -l <page.out) -ge 1 ]]'
  local before
  before=$(head -1 page.out | jq .done)
  # the gated jobs cannot have ended
  ((before <= 1))
  assert_equal "$(head -1 page.out | jq -r .live)" '● live'
  touch "$gate"
  wait "$page_pid" || { cat page.out page.err serve.err >&3; false; }
  echo "# screenshot: $BATS_TEST_TMPDIR/live.png" >&3
  assert_equal "$(tail -1 page.out | jq .done)" 4
  assert_equal "$(jq -c .errors <(tail -1 page.out))" '[]'
  wait "$pipeline_pid"
  # the records went on to cm-reduce: 1 + 2 + 3 + 4
  assert_equal "$(jq -c 'select(.kind=="value") | .value' out.ndjson)" 10
}
