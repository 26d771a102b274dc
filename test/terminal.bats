#!/usr/bin/env bats
# cm-exec for the person at a terminal, on real sshd test hosts: `script` (util-linux) gives the
# command a TTY for stdin, stdout and stderr, as a person's shell would.

load helpers/common
load helpers/hosts

setup_file() {
  cm_hosts_start 3 2
}

teardown_file() {
  cm_hosts_stop
}

# tty CMD: runs the shell command CMD on a terminal; its whole screen output (stdout and stderr
# together, as a person sees them) in $output
tty() {
  run script -qefc "$1" /dev/null
}

# screen < raw: the lines a terminal shows: "\r" and "\e[K" rewrite the line, so the text after the
# last one is what stays; carriage returns script adds before "\n" go too
screen() {
  sed -e 's/\r$//' -e 's/.*\r\x1b\[K//' -e 's/.*\r//'
}

# glued < raw: every piece of a line (between carriage returns) that holds the progress line's text
# together with anything else; empty when nothing was glued
glued() {
  sed -e 's/\r$//' | tr '\r' '\n' | sed -e 's/^\x1b\[K//' |
    grep -E '[0-9]+/[0-9]+ done, [0-9]+ running' |
    grep -vE '^cm-exec: [0-9]+/[0-9]+ done, [0-9]+ running, [0-9]+ failed \| ((th[0-9]+ ([0-9]+/[0-9]+|down) ?)+)( \.\.\.)?( eta [0-9]+s)?$' || true
}

# squares N FAIL: jobs sq.0 .. sq.N-1 printing i*i (slowly enough for the progress line to show);
# job number FAIL says two lines on stderr and exits 3
squares() {
  cm-plan -d "sq(i=1..$1)=echo \$((i*i)); [ \$i = $2 ] && { echo first >&2; echo bad news >&2; exit 3; }; sleep 0.4" +sq
}

@test "on a terminal: each job's output tagged JOB HOST, the failed job with its stderr, a summary with a line per host" {
  squares 12 4 >"$BATS_TEST_TMPDIR/jobs"
  tty "cm-exec <'$BATS_TEST_TMPDIR/jobs'"
  assert_equal "$status" 1
  local shown
  shown=$(screen <<<"$output")
  # stdout: job output, not records; lines tagged as parallel --tag does
  refute_output --partial '"kind":"event"'
  assert_equal "$(grep -cE $'^sq\\.[0-9]+ th[123]\t[0-9]+$' <<<"$shown")" 12
  grep -qE $'^sq\\.5 th[123]\t36$' <<<"$shown"
  # the failed job's stderr is tagged the same way, and described at the end
  grep -qE $'^sq\\.3 th[123]\tbad news$' <<<"$shown"
  grep -qE '^cm-exec: sq\.3 failed on th[123]: exit 3$' <<<"$shown"
  grep -qxF 'cm-exec:   | first' <<<"$shown"
  grep -qxF 'cm-exec:   | bad news' <<<"$shown"
  grep -qE '^cm-exec: 11 ok, 1 failed, 0 gave up, 0 skipped \(of 12 jobs\) in [0-9.]+s$' <<<"$shown"
  for h in th1 th2 th3; do grep -qE "^cm-exec:   $h: [0-9]+ ok, [01] failed, busy [0-9.]+s$" <<<"$shown"; done
  # the progress line was shown, and is gone at the end
  assert_output --partial ' running, '
  [[ $(tail -1 <<<"$shown") == 'cm-exec:   th3: '* ]]
  assert_equal "$(glued <<<"$output")" ''
}

@test "no glued lines: records on a terminal (--json) and messages never share a line with the progress line" {
  squares 16 7 >"$BATS_TEST_TMPDIR/jobs"
  tty "cm-exec --json -v <'$BATS_TEST_TMPDIR/jobs'"
  assert_equal "$status" 1
  assert_output --partial ' running, '
  local shown
  shown=$(screen <<<"$output")
  assert_equal "$(grep -c '"event":"finished"' <<<"$shown")" 16
  # every record is a whole line on the screen
  assert_equal "$(grep -F '"kind":"event"' <<<"$shown" | grep -cv '^{.*}$')" 0
  grep -qE '^cm-exec: sq\.6 on th[123]: exit 3 in' <<<"$shown"
  assert_equal "$(glued <<<"$output")" ''
}

@test "in a pipe: NDJSON only; stderr holds the failed jobs and the counts, and nothing when all went well" {
  squares 4 2 >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr cm-exec <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 1
  assert_equal "$(grep -vc '^{"kind":".*}$' <<<"$output")" 0
  grep -qE '^cm-exec: sq\.1 failed on th[123]: exit 3$' <<<"$stderr"
  assert_equal "$(sed -n '2,$p' <<<"$stderr")" "$(printf '%s\n' 'cm-exec:   | first' 'cm-exec:   | bad news' 'cm-exec: 3 ok, 1 failed, 0 gave up, 0 skipped (of 4 jobs)')"
  squares 4 0 | cm-exec >/dev/null 2>"$BATS_TEST_TMPDIR/err"
  assert_equal "$(cat "$BATS_TEST_TMPDIR/err")" ''
}

@test "a hint on stderr when stdin is a terminal" {
  tty "cm-exec </dev/tty"
  assert_equal "$status" 0
  assert_line --index 0 --partial 'cm-exec: reading job records from this terminal (e.g. cm-plan -f examples/assignment.cm | cm-exec); Ctrl-D ends'
  run --separate-stderr cm-exec </dev/null
  assert_equal "$stderr" ''
}

# interrupted LOG-OPTION...: starts cm-exec on a terminal with 20 long jobs, waits for its first
# started events in the joblog's folder's out file, SIGINTs it by pid, and leaves the screen in $output
interrupted() {
  local d=$BATS_TEST_TMPDIR
  cm-plan -d "slow(i=1..20)=sleep 60; : cmint$$" +slow >"$d/jobs"
  cd "$d"
  script -qefc "echo \$\$ >'$d/pid'; exec cm-exec --json -H th1,th2 $* <'$d/jobs'" /dev/null >"$d/screen" 2>&1 &
  local script_pid=$!
  started4() { [[ $(grep -c '"event":"started"' "$d/screen" 2>/dev/null) -ge 4 ]]; }
  wait_for 30 started4
  kill -INT "$(cat "$d/pid")"
  wait "$script_pid" || true
  output=$(screen <"$d/screen")
}

@test "after SIGINT: what was killed, with hosts, and the exact command that resumes" {
  interrupted --joblog "'my run.log'"
  grep -qE '^cm-exec: interrupted by SIGINT: killed 4 running jobs \(slow\.[0-9]+ on th[12], (slow\.[0-9]+ on th[12](, )?){3}\); 16 not started$' <<<"$output"
  grep -qxF "cm-exec: to run what is left, give the same job records to: cm-exec --json -H th1,th2 --joblog 'my run.log' --resume" <<<"$output"
  assert_none_left "cmint$$"
  # that command finishes the run: the 20 jobs run again (nothing had ended), in the same run
  cm-plan -d 'slow(i=1..20)=echo done' +slow | (cd "$BATS_TEST_TMPDIR" && cm-exec --json -H th1,th2 --joblog 'my run.log' --resume) >"$BATS_TEST_TMPDIR/again"
  assert_equal "$(grep -c '"exit":0' "$BATS_TEST_TMPDIR/again")" 20
}

@test "after SIGINT without --joblog: nothing was logged, and how to make a run resumable" {
  interrupted
  grep -qxF 'cm-exec: nothing was logged: --joblog FILE makes a run resumable (then --resume finishes what is left)' <<<"$output"
  assert_none_left "cmint$$"
}

@test "cm-fetch on a terminal: a line per job as its files land, under their parameters, and the totals; --json gives records" {
  cd "$BATS_TEST_TMPDIR"
  printf '@outputs(n.txt)\ndef w(size=[1, 2], rep=1..3):\n    echo $((size * rep)) > n.txt\nw\n' | cm-plan - --run tf1 >jobs
  tty "cm-exec -q <jobs | cm-fetch"
  assert_equal "$status" 0
  local shown
  shown=$(screen <<<"$output")
  refute_output --partial '"kind":'
  assert_equal "$(grep -cE '^fetched  w\.[0-5]  th[123]  1 file, 2 B  results/tf1/w/size=[12]/rep=[123]/n\.txt$' <<<"$shown")" 6
  grep -qxF 'cm-fetch: 6 jobs fetched (6 files, 12 B)' <<<"$shown"
  assert_equal "$(cat results/tf1/w/size=2/rep=3/n.txt)" 6
  printf '@outputs(n.txt)\ndef w(size=[1, 2], rep=1..3):\n    echo $((size * rep)) > n.txt\nw\n' | cm-plan - --run tf2 >jobs
  tty "cm-exec -q <jobs | cm-fetch --json"
  assert_equal "$status" 0
  assert_equal "$(screen <<<"$output" | grep -c '^{"kind":"fetch".*"ok":true')" 6
}
