#!/usr/bin/env bats
# Runs that outlive cm-exec (--joblog with --reattach-within SECS): jobs keep running on
# their hosts when cm-exec is SIGKILLed, their results wait in .cm/spool/<run>/ there, and
# `--resume` collects them (real times, outputs and exit codes, "reattached": true, not replayed),
# waits for those still running and runs again only what never started or was lost. Real sshd test
# hosts: the persistent transport's perl loop, its POSIX sh loop (CM_REMOTE_LOOP=sh), and the per-job
# ssh transport (CM_EXEC_TRANSPORT=ssh). The fault rows (test/faults/rows/reattach.bash) do
# the same at the issue's size, with a host cut off.

load helpers/common
load helpers/hosts

setup_file() {
  cm_hosts_start 2 4
}

teardown_file() {
  cm_hosts_stop
}

setup() {
  # suites that name these run once per variant: the persistent transport's perl loop, its POSIX
  # sh loop (cm-exec reads CM_REMOTE_LOOP), and the per-job ssh transport
  : "${CM_REMOTE_LOOP:-auto}"
  tr=${CM_EXEC_TRANSPORT:-persistent}
  T=$BATS_TEST_TMPDIR
  tok=cmreat$$x$BATS_TEST_NUMBER
}

# job ID COMMAND [EXTRA-JSON]
job() {
  jq -nc --arg id "$1" --arg c "$2" --argjson x "${3:-{\}}" '{kind:"job",v:1,id:$id,task:"t",command:$c,deps:[]} + $x'
}

# spooled N: the hosts keep N jobs' results, i.e. N jobs run (or ran) there
spooled() {
  (($(find "$(cm_host_home th1)/.cm/spool" "$(cm_host_home th2)/.cm/spool" -name "${2:-pid}" 2>/dev/null | wc -l) >= $1))
}

spool_gone() {
  [[ -z $(find "$(cm_host_home th1)/.cm/spool" "$(cm_host_home th2)/.cm/spool" 2>/dev/null) ]]
}

# first ARGS...: cm-exec in the background on the jobs in $T/jobs; sets pid
first() {
  cm-exec --transport "$tr" -H th1,th2 --run "$tok" --joblog "$T/log" --reattach-within "${WITHIN:-600}" "$@" <"$T/jobs" >"$T/first" 2>"$T/first.err" 3>&- &
  pid=$!
}

killed() {
  kill -KILL "$pid"
  wait "$pid" || true
}

@test "jobs that ended while cm-exec was gone are collected with their real times, outputs and exit codes; running ones are waited for" {
  {
    for i in 1 2 3; do job "quick$i" ": $tok; sleep 1; echo $i >> $T/marker; echo out$i; echo err$i >&2; exit $((i - 1))"; done
    for i in 4 5; do job "slow$i" ": $tok; sleep 4; echo $i >> $T/marker; echo out$i"; done
  } >"$T/jobs"
  first
  wait_for 30 spooled 5
  killed
  # the quick ones end while no cm-exec runs: their status waits on the host
  wait_for 30 spooled 3 status
  local resumed_at
  resumed_at=$(date -u +%FT%T.%3NZ)
  run --separate-stderr cm-exec --transport "$tr" -H th1,th2 --joblog "$T/log" --resume <"$T/jobs"
  assert_equal "$status" 1
  assert_equal "$(sort "$T/marker" | tr '\n' ' ')" "1 2 3 4 5 "
  assert_equal "$(jq -r 'select(.event == "finished") | [.job, .exit, (.stdout | rtrimstr("\n")), (.stderr | rtrimstr("\n")), .reattached, .replayed] | map(tostring) | join(" ")' <<<"$output" | sort)" \
    "$(printf '%s\n' 'quick1 0 out1 err1 true null' 'quick2 1 out2 err2 true null' 'quick3 2 out3 err3 true null' 'slow4 0 out4  true null' 'slow5 0 out5  true null')"
  # the real times: every one started before this run; the quick ones also ended before it
  assert_equal "$(jq -r --arg t "$resumed_at" 'select(.event == "finished" and .start < $t) | .job' <<<"$output" | wc -l)" 5
  assert_equal "$(jq -r --arg t "$resumed_at" 'select(.event == "finished" and .end < $t) | .job' <<<"$output" | sort | tr '\n' ' ')" "quick1 quick2 quick3 "
  assert_equal "$(jq -r 'select(.event == "started") | .reattached' <<<"$output" | sort | uniq -c | tr -s ' ')" " 5 true"
  # one final line per job in the joblog, after the started lines that found them again
  assert_equal "$(jq -r 'select(.event != "started") | .job' "$T/log" | sort | uniq -c | awk '$1 != 1' | wc -l)" 0
  assert_equal "$(jq -r 'select(.event != "started") | .job' "$T/log" | wc -l)" 5
  wait_for 15 spool_gone
  assert_none_left "$tok"
}

@test "a job whose loop died with its host runs again; a job that never reached its host runs; each once" {
  {
    job a ": $tok; sleep 30; echo a >> $T/marker" '{"host":"th1"}'
    job b ": $tok; sleep 1; echo b >> $T/marker" '{"host":"th2"}'
  } >"$T/jobs"
  first
  wait_for 30 spooled 2
  killed
  # th1 dies: its loop and the job with it (the spool stays on its disk)
  cm_host_kill 1
  cm_host_restart 1
  jq -c '.command |= sub("sleep 30"; "sleep 0")' "$T/jobs" >"$T/jobs2"
  run --separate-stderr cm-exec --transport "$tr" -H th1,th2 --joblog "$T/log" --resume <"$T/jobs2"
  assert_equal "$status" 0
  assert_equal "$(sort "$T/marker" | tr '\n' ' ')" "a b "
  assert_equal "$(jq -r 'select(.event == "retry") | [.job, .reason] | @tsv' <<<"$output")" "$(printf 'a\tlost on th1: its loop on the host is gone')"
  assert_equal "$(jq -r 'select(.event == "finished") | [.job, (.reattached // false)] | @tsv' <<<"$output" | sort)" "$(printf 'a\tfalse\nb\ttrue')"
  wait_for 15 spool_gone
  assert_none_left "$tok"
}

@test "the host keeps the first --max-output bytes of each stream; the event has the real sizes" {
  job big ": $tok; sleep 1; head -c 100000 /dev/zero | tr '\\\\0' x; head -c 5000 /dev/zero | tr '\\\\0' y >&2" >"$T/jobs"
  first --max-output 1000
  wait_for 30 spooled 1
  killed
  run --separate-stderr cm-exec --transport "$tr" -H th1,th2 --max-output 1000 --joblog "$T/log" --resume <"$T/jobs"
  assert_equal "$status" 0
  assert_equal "$(jq -r 'select(.event == "finished") | [(.stdout | length), .stdout_bytes, (.stderr | length), .stderr_bytes, .truncated] | @tsv' <<<"$output")" \
    "$(printf '1000\t100000\t1000\t5000\ttrue')"
  wait_for 15 spool_gone
}

@test "with no --resume, the loops end after --reattach-within: jobs killed, spools removed, nothing left" {
  for i in 1 2 3; do job "w$i" ": $tok; sleep 600"; done >"$T/jobs"
  WITHIN=1 first
  wait_for 30 spooled 3
  killed
  # still running right after the kill (the jobs' own sh -c, not the ssh clients and shells around them)
  assert_equal "$(left_behind "$tok" | grep -c -- "-c : $tok; sleep 600\$")" 3
  wait_for 20 spool_gone
  assert_none_left "$tok"
}

@test "without --reattach-within (or with 0): jobs end with cm-exec, and the joblog has no started lines" {
  for i in 1 2; do job "w$i" ": $tok; sleep 600"; done >"$T/jobs"
  WITHIN=0 first
  wait_for 30 eval '[[ $(left_behind "$tok" | grep -c "sleep 600") -ge 2 ]]'
  killed
  assert_none_left "$tok"
  assert_equal "$(wc -c <"$T/log")" 0
  assert spool_gone
}

@test "a run with --joblog that ends normally leaves no spool and no loop on its hosts" {
  for i in 1 2 3 4; do job "w$i" ": $tok; echo $i"; done >"$T/jobs"
  run --separate-stderr cm-exec --transport "$tr" -H th1,th2 --joblog "$T/log" --reattach-within 600 <"$T/jobs"
  assert_equal "$status" 0
  assert_equal "$(jq -r 'select(.event == "started") | .spool' "$T/log" | wc -l)" 4
  assert spool_gone
  assert_none_left "$tok"
}

@test "--status from another terminal: what runs where and for how long, what ended; NDJSON in a pipe" {
  {
    job done1 ": $tok; echo 1" '{"host":"th1"}'
    job long1 ": $tok; sleep 600" '{"host":"th1"}'
    job long2 ": $tok; sleep 600" '{"host":"th2"}'
  } >"$T/jobs"
  first
  wait_for 30 eval '[[ $(jq -r "select(.event == \"finished\") | .job" "$T/log" 2>/dev/null) == done1 ]] && spooled 2'
  run --separate-stderr cm-exec --status --joblog "$T/log"
  assert_equal "$status" 0
  assert_equal "$(jq -r '[.event, .job, (.host // "-")] | @tsv' <<<"$output" | sort)" "$(printf 'finished\tdone1\tth1\nstarted\tlong1\tth1\nstarted\tlong2\tth2')"
  # for people (script gives it a terminal)
  run script -qec "cm-exec --status --joblog $T/log" /dev/null
  assert_equal "$status" 0
  assert_line --regexp '^HOST +JOB +ATTEMPT +RUNNING FOR'
  assert_line --regexp '^th1 +long1 +1 +[0-9]+s'
  assert_line --regexp '^th2 +long2 +1 +[0-9]+s'
  assert_line --partial '2 running on 2 hosts; ended: 1 ok, 0 failed, 0 gave up, 0 skipped'
  # looking disturbed nothing: the run goes on
  kill -0 "$pid"
  kill -TERM "$pid"
  wait "$pid" || true
  assert_none_left "$tok"
}

@test "--status and --reattach-within need --joblog; --status names a joblog that is not there" {
  run --separate-stderr cm-exec --status
  assert_equal "$status" 2
  assert_equal "$stderr" "cm-exec: --status needs --joblog FILE"
  run --separate-stderr cm-exec --reattach-within 10 </dev/null
  assert_equal "$status" 2
  run --separate-stderr cm-exec --status --joblog "$T/nothing.log"
  assert_equal "$status" 3
  assert_equal "$stderr" "cm-exec: --status: no joblog $T/nothing.log"
}

@test "SIGHUP (the terminal is gone): cm-exec exits 129, its running jobs go on, --resume collects them" {
  for i in 1 2 3; do job "w$i" ": $tok; sleep 2; echo $i >> $T/marker; echo $i"; done >"$T/jobs"
  first
  wait_for 30 spooled 3
  kill -HUP "$pid"
  local rc=0
  wait "$pid" || rc=$?
  assert_equal "$rc" 129
  assert_equal "$(grep -c 'keep running on their hosts' "$T/first.err")" 1
  run --separate-stderr cm-exec --transport "$tr" -H th1,th2 --joblog "$T/log" --resume <"$T/jobs"
  assert_equal "$status" 0
  assert_equal "$(sort "$T/marker" | tr '\n' ' ')" "1 2 3 "
  assert_equal "$(jq -r 'select(.event == "finished") | .reattached' <<<"$output" | sort | uniq -c | tr -s ' ')" " 3 true"
  wait_for 15 spool_gone
  assert_none_left "$tok"
}

