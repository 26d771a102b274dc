#!/usr/bin/env bats
# The persistent ssh-session transport on real sshd test hosts, driven directly (bench/transport.sh
# --driver builds a small node driver: job lines in, one JobOutcome line per job out), so the
# outcome fields (ran, exit, signal, reason) are checked as the scheduler sees them.
# cm-exec's own behaviour suite runs on this transport with CM_EXEC_TRANSPORT=persistent.
# CM_REMOTE_LOOP=sh runs it on the POSIX sh loop instead of the perl loop (test/run-bats.sh runs both).

load helpers/common
load helpers/hosts

setup_file() {
  export CM_REMOTE_LOOP=${CM_REMOTE_LOOP:-auto}
  cm_hosts_start 2 4
  bash "$CM_REPO/bench/transport.sh" --driver "$BATS_FILE_TMPDIR/driver.cjs"
}

teardown_file() {
  cm_hosts_stop
}

# drive: run the job lines of $BATS_TEST_TMPDIR/jobs through the persistent transport on th1 th2
drive() {
  CM_DRIVER_LOGS=$BATS_TEST_TMPDIR node "$BATS_FILE_TMPDIR/driver.cjs" persistent "$CM_TEST_SSH_CONFIG" th1 th2 -- 4 \
    <"$BATS_TEST_TMPDIR/jobs"
}

# job ID HOST COMMAND [EXTRA-JSON]: one driver job line
job() {
  node -e 'const [id, host, command, extra] = process.argv.slice(1);
    console.log(JSON.stringify({ id, host, command, ...JSON.parse(extra || "{}") }))' "$1" "$2" "$3" "${4:-}"
}

# get ID FIELD < outcomes
get() {
  node -e 'const [id, f] = process.argv.slice(1);
    for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
      if (!l) continue; const r = JSON.parse(l);
      if (r.id === id) { const v = r[f]; process.stdout.write(v === undefined ? "undefined" : typeof v === "string" ? v : JSON.stringify(v)); }
    }' "$1" "$2"
}

@test "output that looks like framing, without a final newline, comes back exactly; exit 3 is exit 3" {
  # header-like lines, end-of-block lines and base64 text, as the loop itself writes them
  job frames th1 'printf "cm0123456789abcdef 1 x 0 -\n.\nQUJD\ncm0123456789abcdef 2 o\n.\nlast"; printf "%s" "$CM_JOB" >&2; exit 3' \
    >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr drive
  assert_equal "$status" 0
  assert_equal "$(get frames ran <<<"$output")" true
  assert_equal "$(get frames exit <<<"$output")" 3
  assert_equal "$(get frames signal <<<"$output")" null
  assert_equal "$(get frames stdout <<<"$output")" "$(printf 'cm0123456789abcdef 1 x 0 -\n.\nQUJD\ncm0123456789abcdef 2 o\n.\nlast')"
  assert_equal "$(get frames stdoutBytes <<<"$output")" "$(printf 'cm0123456789abcdef 1 x 0 -\n.\nQUJD\ncm0123456789abcdef 2 o\n.\nlast' | wc -c)"
  assert_equal "$(get frames stderr <<<"$output")" frames
}

@test "10 MB of binary output arrives whole in the log file (sha256 matches the host's)" {
  job big th2 'head -c 10485760 /dev/urandom | tee big.bin; sha256sum big.bin | cut -d" " -f1 >&2' '{"maxOutput":1000}' \
    >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr drive
  assert_equal "$status" 0
  assert_equal "$(get big exit <<<"$output")" 0
  assert_equal "$(get big truncated <<<"$output")" true
  assert_equal "$(get big stdoutBytes <<<"$output")" 10485760
  local log
  log=$(get big log <<<"$output")
  assert_equal "$log" "$BATS_TEST_TMPDIR/big.stdout"
  assert_equal "$(sha256sum <"$log" | cut -d' ' -f1)" "$(get big stderr <<<"$output" | tr -d '\n')"
}

@test "a job that kills its own shell reports 128+9 and the session runs the next job" {
  {
    job self th1 'echo before; kill -9 $$; echo never'
    job next th1 'sleep 0.5; echo after'
  } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr drive
  assert_equal "$status" 0
  assert_equal "$(get self ran <<<"$output")" true
  # the same as the per-job ssh transport: sh says 137, which `exit 137` would also say
  assert_equal "$(get self exit <<<"$output")" 137
  assert_equal "$(get self stdout <<<"$output")" "before"
  assert_equal "$(get next exit <<<"$output")" 0
  assert_equal "$(get next stdout <<<"$output")" "after"
}

@test "a timeout kills the job's whole process group on the host" {
  local tok=cmptimeout$$
  job t th1 "sh -c 'sleep 60; : $tok' & sleep 60; : $tok" '{"timeout":1}' >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr drive
  assert_equal "$status" 0
  assert_equal "$(get t ran <<<"$output")" true
  assert_equal "$(get t timedOut <<<"$output")" true
  assert_equal "$(get t reason <<<"$output")" "timeout after 1s"
  assert_equal "$(get t exit <<<"$output")" 143
  assert_equal "$(get t signal <<<"$output")" SIGTERM
  assert_none_left "$tok"
}

@test "sshd killed mid-run: the jobs in flight there did not run (ran false), the other host's did" {
  {
    for i in 1 2 3; do job "d$i" th2 "touch \$HOME/started.$i; sleep 5; echo $i"; done
    job alive th1 'sleep 2; echo ok'
  } >"$BATS_TEST_TMPDIR/jobs"
  local home
  home=$(cm_host_home th2)
  rm -f "$home"/started.*
  # kill th2 once its three jobs are running (not while the session is still starting)
  (for _ in $(seq 200); do [[ -f $home/started.1 && -f $home/started.2 && -f $home/started.3 ]] && break; sleep 0.1; done
    cm_host_kill 2) 3>&- &
  local killer=$!
  run --separate-stderr drive
  wait "$killer"
  cm_host_restart 2
  assert_equal "$status" 0
  for i in 1 2 3; do
    assert_equal "$(get "d$i" ran <<<"$output")" false
    [[ $(get "d$i" reason <<<"$output") == "session to th2 lost: "* ]]
  done
  assert_equal "$(get alive exit <<<"$output")" 0
  assert_equal "$(get alive stdout <<<"$output")" ok
}

@test "the job's parent on the host is the loop asked for: perl where installed, else sh" {
  job who th1 'ps -o comm= -p $PPID' >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr drive
  assert_equal "$status" 0
  if [[ $CM_REMOTE_LOOP == sh ]]; then
    # the sh loop's runner subshell
    assert_equal "$(get who stdout <<<"$output")" "sh"
  else
    assert_equal "$(get who stdout <<<"$output")" "perl"
  fi
}
