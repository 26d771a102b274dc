#!/usr/bin/env bats
# cm-exec on real sshd test hosts: slots, ordering, failover, crash + resume, timeouts, errors.
# CM_EXEC_TRANSPORT=ssh runs the same behaviour tests on the per-job transport, CM_REMOTE_LOOP=sh on the
# persistent transport's POSIX sh loop instead of its perl loop (test/run-bats.sh runs all three).

load helpers/common
load helpers/hosts

setup_file() {
  cm_hosts_start 3 2
  export CM_EXEC_TRANSPORT=${CM_EXEC_TRANSPORT:-persistent}
  export CM_REMOTE_LOOP=${CM_REMOTE_LOOP:-auto}
}

teardown_file() {
  cm_hosts_stop
}

# job ID COMMAND [EXTRA-JSON-FIELDS]: one job record
job() {
  node -e 'const [id, cmd, extra] = process.argv.slice(1);
    console.log(JSON.stringify({kind: "job", v: 1, id, task: id.replace(/\..*/, ""), command: cmd, deps: [], ...JSON.parse(extra || "{}")}))' "$1" "$2" "${3:-}"
}

# field EVENT FIELD < events: the FIELD of every EVENT event, one per line
field() {
  node -e 'const [ev, f] = process.argv.slice(1); let t = require("fs").readFileSync(0, "utf8");
    for (const l of t.split("\n")) { if (!l) continue; const r = JSON.parse(l); if (r.event === ev) console.log(typeof r[f] === "object" ? JSON.stringify(r[f]) : r[f]); }' "$1" "$2"
}

exec_() {
  cm-exec --transport "$CM_EXEC_TRANSPORT" "$@"
}

@test "slots are never exceeded: the largest number of concurrent jobs per host equals its slots" {
  local d=/tmp/cm-exec-slots.$$.$BATS_TEST_NUMBER
  mkdir -p "$d"
  # a mkdir lock around a shared counter per host; each job records the highest count it saw
  local cmd="d=$d/\$(hostname); mkdir -p \$d
lock() { until mkdir \$d/lock 2>/dev/null; do sleep 0.01; done; }
lock; n=\$((\$(cat \$d/n 2>/dev/null || echo 0) + 1)); echo \$n > \$d/n
m=\$(cat \$d/max 2>/dev/null || echo 0); [ \$n -gt \$m ] && echo \$n > \$d/max; rmdir \$d/lock
sleep 0.3
lock; n=\$((\$(cat \$d/n) - 1)); echo \$n > \$d/n; rmdir \$d/lock"
  for i in $(seq 1 24); do job "s$i" "$cmd"; done >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  assert_equal "$(field finished exit <<<"$output" | grep -c '^0$')" 24
  for h in th1 th2 th3; do
    assert_equal "$(cat "$d/$h/max")" 2
    assert_equal "$(cat "$d/$h/n")" 0
  done
  # the scheduler's own account agrees: no started event reports more than 2 running
  assert_equal "$(field started running <<<"$output" | sort -n | tail -1)" 2
  rm -rf "$d"
}

@test "--jobs caps the whole run below the sum of slots" {
  for i in $(seq 1 8); do job "g$i" 'sleep 0.2'; done >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ --jobs 1 <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  # with one job at a time, every start follows the previous job's final event
  node -e 'let run = 0, max = 0; for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
    if (!l) continue; const r = JSON.parse(l); if (r.event === "started") max = Math.max(max, ++run); if (r.event === "finished") run--; }
    if (max !== 1) { console.error("max", max); process.exit(1); }' <<<"$output"
}

@test "a job whose pinned host is full waits while a later job starts elsewhere (--help: the host with the most free slots)" {
  local flag=$BATS_TEST_TMPDIR/flag
  # p1 and p2 fill th1's 2 slots until u has run; p3 may only run on th1. Were u to wait behind p3,
  # p1 and p2 would wait for it to the end of their 30 s and fail.
  local wait="i=0; while [ ! -e $flag ] && [ \$i -lt 600 ]; do sleep 0.05; i=\$((i + 1)); done; [ -e $flag ]"
  {
    job p1 "$wait" '{"host":"th1"}'
    job p2 "$wait" '{"host":"th1"}'
    job p3 'echo p3' '{"host":"th1"}'
    job u "touch $flag"
  } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  assert_equal "$(field finished exit <<<"$output" | sort | uniq -c | awk '{ print $1, $2 }')" "4 0"
  assert_equal "$(field started job <<<"$output" | tr '\n' ' ')" "p1 p2 u p3 "
  # u went to a host with both slots free, not th1
  assert_equal "$(field started host <<<"$output" | tr '\n' ' ')" "th1 th1 th2 th1 "
}

@test "; ordering holds: a dependant starts only after its dependency finished, on any host" {
  local d=/tmp/cm-exec-order.$$
  mkdir -p "$d"
  {
    job a "sleep 0.5; touch $d/a.done; echo 1"
    job b "test -f $d/a.done && echo 2" '{"deps":["a"]}'
    job c "test -f $d/a.done && echo 3" '{"deps":["a"]}'
    job d "echo 4" '{"deps":["b","c"]}'
    job e "exit 7"
    job f "echo never" '{"deps":["e"]}'
  } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 1
  assert_equal "$(field finished job <<<"$output" | sort | tr '\n' ' ')" "a b c d e "
  assert_equal "$(field finished exit <<<"$output" | sort | tr '\n' ' ')" "0 0 0 0 7 "
  assert_equal "$(field skipped reason <<<"$output")" "dependency e failed"
  # in the stream: b's start comes after a's finish, d's after b's and c's
  node -e 'const ev = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
    const at = (e, j) => ev.findIndex((r) => r.event === e && r.job === j);
    if (!(at("finished", "a") < at("started", "b") && at("finished", "a") < at("started", "c") &&
          at("finished", "b") < at("started", "d") && at("finished", "c") < at("started", "d"))) process.exit(1)' <<<"$output"
  rm -rf "$d"
}

@test "records that are not jobs pass through unchanged and in order; unknown deps are skipped at EOF" {
  {
    echo '{"kind":"reduce","v":1,"id":"r","op":"sum","inputs":["x"]}'
    job x 'echo 5'
    echo '{"kind":"note","text":"kept as is"}'
    job y 'echo 6' '{"deps":["nowhere"]}'
  } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 1
  assert_equal "$(grep -v '"kind":"event"' <<<"$output")" "$(printf '%s\n%s' '{"kind":"reduce","v":1,"id":"r","op":"sum","inputs":["x"]}' '{"kind":"note","text":"kept as is"}')"
  assert_equal "$(field skipped reason <<<"$output")" "unknown dependency nowhere"
  assert_equal "$(field finished stdout <<<"$output")" "5"
}

@test "a job's own exit 255 is its exit code, not a connection failure" {
  job x 'echo out; echo err >&2; exit 255' >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 1
  assert_equal "$(field finished exit <<<"$output")" 255
  assert_equal "$(field finished stderr <<<"$output")" "err"
  assert_equal "$(field retry job <<<"$output")" ""
}

@test "output over --max-output is cut in the event and kept whole in the log file" {
  job big 'head -c 100000 /dev/zero | tr "\0" x; echo' >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ --max-output 1000 --logs "$BATS_TEST_TMPDIR/logs" <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  assert_equal "$(field finished truncated <<<"$output")" true
  assert_equal "$(field finished stdout_bytes <<<"$output")" 100001
  local log
  log=$(field finished log <<<"$output")
  assert_equal "$log" "$BATS_TEST_TMPDIR/logs/big.1.stdout"
  assert_equal "$(wc -c <"$log")" 100001
  assert_equal "$(field finished stdout <<<"$output" | tr -d '\n' | wc -c)" 1000
}

@test "a host whose sshd is killed mid-run loses no job: all finish on the other hosts" {
  local home
  home=$(cm_host_home th1)
  rm -f "$home"/k.*
  for i in $(seq 1 30); do job "k$i" "touch \$HOME/k.$i; sleep 0.3; echo $i"; done >"$BATS_TEST_TMPDIR/jobs"
  # th1 dies once a job of the run is in flight there
  (wait_for 60 compgen -G "$home/k.*" >/dev/null && cm_host_kill 1) 3>&- &
  local killer=$!
  run --separate-stderr exec_ <"$BATS_TEST_TMPDIR/jobs"
  wait "$killer"
  cm_host_restart 1
  assert_equal "$status" 0
  assert_equal "$(field finished job <<<"$output" | sort -u | wc -l)" 30
  assert_equal "$(field finished job <<<"$output" | wc -l)" 30
  assert_equal "$(field finished exit <<<"$output" | sort -u)" 0
  assert_equal "$(field host-down host <<<"$output")" th1
  # jobs cut off on th1 were moved: a retry naming the connection, then a finish elsewhere
  [[ -n $(field retry reason <<<"$output" | grep 'connection failed') ]]
  local late
  late=$(node -e 'const ev = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
    const down = ev.findIndex((r) => r.event === "host-down");
    console.log(ev.slice(down).filter((r) => r.event === "started" && r.host === "th1").length)' <<<"$output")
  assert_equal "$late" 0
}

@test "SIGKILL of cm-exec then --resume: every job once in the joblog, same sum, no orphans on the hosts" {
  local tok=cmresume$$ log=$BATS_TEST_TMPDIR/joblog
  for i in $(seq 1 40); do job "r$i" ": $tok; sleep 0.25; echo $i"; done >"$BATS_TEST_TMPDIR/jobs"
  # not through exec_: $! must be cm-exec itself, not a subshell
  cm-exec --transport "$CM_EXEC_TRANSPORT" --run resume-test --joblog "$log" <"$BATS_TEST_TMPDIR/jobs" >"$BATS_TEST_TMPDIR/first" 2>/dev/null 3>&- &
  local pid=$!
  for _ in $(seq 1 500); do
    [[ -f $log && $(wc -l <"$log") -ge 8 ]] && break
    sleep 0.02
  done
  kill -KILL "$pid"
  wait "$pid" || true
  local before
  before=$(wc -l <"$log")
  ((before >= 8 && before < 40))
  # the remote wrappers see their ssh go away and kill the jobs' process groups
  assert_none_left "$tok"
  run --separate-stderr exec_ --joblog "$log" --resume <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  assert_equal "$(node -e 'const ids = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l).job);
    console.log(ids.length, new Set(ids).size)' "$log")" "40 40"
  # every job has one final event in the resumed stream, the earlier ones replayed
  assert_equal "$(field finished job <<<"$output" | sort -u | wc -l)" 40
  assert_equal "$(field finished job <<<"$output" | wc -l)" 40
  assert_equal "$(field finished replayed <<<"$output" | grep -c true)" "$before"
  assert_equal "$(field finished run <<<"$output" | sort -u)" resume-test
  # the value cm-reduce would compute: the sum of the trimmed stdout of the finished jobs
  assert_equal "$(node -e 'let s = 0; for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
    if (!l) continue; const r = JSON.parse(l); if (r.event === "finished") s += Number(r.stdout.trim()); } console.log(s)' <<<"$output")" 820
}

@test "a timeout kills the job's whole process group on the host, even one ignoring TERM" {
  local tok=cmtimeout$$
  job t "trap '' TERM; : $tok; sleep 60 & sleep 60" '{"timeout":1}' >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ --grace 1 <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 1
  assert_equal "$(field gave-up reason <<<"$output")" "timeout after 1s"
  assert_equal "$(field gave-up signal <<<"$output")" SIGKILL
  assert_none_left "$tok"
}

@test "SIGTERM stops the run: running jobs are killed on their hosts, exit 143, nothing joblogged for them" {
  local tok=cmterm$$ log=$BATS_TEST_TMPDIR/joblog
  for i in 1 2 3; do job "w$i" ": $tok; sleep 60"; done >"$BATS_TEST_TMPDIR/jobs"
  cm-exec --transport "$CM_EXEC_TRANSPORT" --joblog "$log" <"$BATS_TEST_TMPDIR/jobs" >"$BATS_TEST_TMPDIR/out" 2>/dev/null 3>&- &
  local pid=$!
  for _ in $(seq 1 300); do
    [[ $(grep -c '"started"' "$BATS_TEST_TMPDIR/out" 2>/dev/null) -ge 3 && $(left_behind "$tok" | wc -l) -ge 3 ]] && break
    sleep 0.02
  done
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  assert_equal "$rc" 143
  assert_equal "$(field gave-up job <"$BATS_TEST_TMPDIR/out" | wc -l)" 3
  assert_equal "$(wc -c <"$log")" 0
  assert_none_left "$tok"
}

@test "--halt now,fail=1 stops at the first failure: running jobs cancelled, the rest never started, exit 5" {
  local tok=cmhalt$$
  {
    job bad 'sleep 0.5; exit 1'
    job slow1 ": $tok; sleep 30"
    job slow2 ": $tok; sleep 30"
    job later 'echo never' '{"deps":["slow1"]}'
  } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ --halt now,fail=1 <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 5
  assert_equal "$(field finished job <<<"$output")" bad
  assert_equal "$(field gave-up job <<<"$output" | sort | tr '\n' ' ')" "later slow1 slow2 "
  assert_equal "$(field gave-up reason <<<"$output" | sort -u)" halted
  assert_none_left "$tok"
}

@test "malformed input exits 3 naming line 1 and runs nothing" {
  run --separate-stderr bash -c "printf 'garbage\n{\"kind\":\"job\"' | cm-exec"
  assert_equal "$status" 3
  assert_equal "$output" ""
  [[ $stderr == "cm-exec: stdin:1: malformed JSON"* ]]
}

@test "EPIPE on stdout: cm-exec | head -n 3 exits 0" {
  for i in $(seq 1 50); do job "p$i" "echo $i"; done >"$BATS_TEST_TMPDIR/jobs"
  run bash -c 'exec_() { cm-exec --transport "$CM_EXEC_TRANSPORT" "$@"; }; exec_ <"$1" | head -n 3; echo "${PIPESTATUS[0]}"' _ "$BATS_TEST_TMPDIR/jobs"
  assert_equal "${lines[3]}" 0
}

@test "a host name that would become an ssh option is rejected before anything is spawned" {
  cat >"$BATS_TEST_TMPDIR/inv.yaml" <<EOF
hosts:
  evil:
    address: "-oProxyCommand=touch $BATS_TEST_TMPDIR/pwned"
EOF
  job x 'echo 1' >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ --inventory "$BATS_TEST_TMPDIR/inv.yaml" <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 3
  assert_equal "$output" ""
  [[ ! -e $BATS_TEST_TMPDIR/pwned ]]
}

@test "--dry-run prints jobs and their hosts on stderr and runs nothing" {
  {
    job a "touch $BATS_TEST_TMPDIR/ran"
    job b 'echo 2' '{"host":"th2","deps":["a"]}'
  } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ --dry-run <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  assert_equal "$output" ""
  [[ $stderr == *"b    "*"th2 "*"a "* ]]
  [[ ! -e $BATS_TEST_TMPDIR/ran ]]
}

# ssh processes (masters: "ssh: DIR/<hash> [mux]" or "ssh -f -N ... ControlPath=DIR/%C") using the control folder DIR
masters_of() {
  ps -eo args= | grep -E '^ssh' | grep -F -- "$1/" | grep -v grep || true
}
# a master is up once its socket is bound under its final name (%C: 40 hex digits), which ssh does
# after authenticating; before that, `ssh -f` may still fail, and a master is only a process
has_master() {
  [[ -n $(masters_of "$1") && -n $(find "$1" -type s -regextype egrep -regex '.*/[0-9a-f]{40}') ]]
}
no_master() { [[ -z $(masters_of "$1") ]]; }
is_empty_dir() { [[ -z $(ls -A "$1") ]]; }

@test "no ssh master or control folder outlives a run; a SIGKILLed run's are closed by the next" {
  # short: socket paths inside must stay under 108 bytes (a long TMPDIR makes cm-exec use /tmp)
  local tmp
  tmp=$(mktemp -d /tmp/cmx.XXXXXX)
  job a 'echo a' >"$BATS_TEST_TMPDIR/jobs"
  TMPDIR=$tmp exec_ <"$BATS_TEST_TMPDIR/jobs" >"$BATS_TEST_TMPDIR/out"
  assert_equal "$(field finished exit <"$BATS_TEST_TMPDIR/out")" 0
  assert_equal "$(ls "$tmp")" ""
  # told to stop listening, a master with no session left ends by itself, just after the run
  wait_for 20 no_master "$tmp" || true
  assert_equal "$(masters_of "$tmp")" ""

  job b 'sleep 30' >"$BATS_TEST_TMPDIR/jobs"
  TMPDIR=$tmp exec_ <"$BATS_TEST_TMPDIR/jobs" >/dev/null 2>&1 3>&- &
  local bg=$! dir pid
  wait_for 30 has_master "$tmp"
  # the folder is named after cm-exec's pid: SIGKILL exactly that process
  dir=$(ls "$tmp")
  pid=${dir#cm-exec-}
  pid=${pid%%-*}
  kill -KILL "$pid"
  wait "$bg" || true
  # the killed run's folder and master are still there ...
  assert_equal "$(ls "$tmp")" "$dir"
  has_master "$tmp"
  job c 'true' >"$BATS_TEST_TMPDIR/jobs"
  TMPDIR=$tmp exec_ <"$BATS_TEST_TMPDIR/jobs" >/dev/null
  # ... until the next run closes them
  wait_for 20 is_empty_dir "$tmp" || true
  assert_equal "$(ls "$tmp")" ""
  wait_for 20 no_master "$tmp" || true
  assert_equal "$(masters_of "$tmp")" ""
  rmdir "$tmp"
}

@test "--keep-connections keeps the masters in ~/.cm/ssh for the next run, which reuses them" {
  local home=$BATS_TEST_TMPDIR/home
  job a 'echo a' >"$BATS_TEST_TMPDIR/jobs"
  HOME=$home exec_ --keep-connections 30 <"$BATS_TEST_TMPDIR/jobs" >/dev/null
  local first
  first=$(masters_of "$home/.cm/ssh" | sort)
  [[ -n $first ]]
  assert_equal "$(stat -c %a "$home/.cm/ssh")" 700
  HOME=$home exec_ --keep-connections 30 <"$BATS_TEST_TMPDIR/jobs" >"$BATS_TEST_TMPDIR/out"
  assert_equal "$(field finished exit <"$BATS_TEST_TMPDIR/out")" 0
  # the same master processes served the second run
  assert_equal "$(masters_of "$home/.cm/ssh" | sort)" "$first"
  for s in "$home"/.cm/ssh/*; do ssh -S "$s" -O exit cm 2>/dev/null || true; done
}

@test "--retry-failed runs again what failed, gave up or was skipped, and replays what succeeded" {
  local d=$BATS_TEST_TMPDIR log=$BATS_TEST_TMPDIR/joblog
  {
    job a 'echo a'
    job b "[ -f $d/fixed ] && echo fixed || { echo 'not yet' >&2; exit 4; }"
    job c 'echo c' '{"deps":["b"]}'
  } >"$d/jobs"
  run --separate-stderr exec_ --joblog "$log" <"$d/jobs"
  assert_equal "$status" 1
  assert_equal "$(field skipped job <<<"$output")" c
  # the failed job is described on stderr, even in a pipe: host, exit code, the end of its stderr
  grep -qE '^cm-exec: b failed on th[123]: exit 4$' <<<"$stderr"
  grep -qxF 'cm-exec:   | not yet' <<<"$stderr"
  touch "$d/fixed"
  run --separate-stderr exec_ --joblog "$log" --retry-failed <"$d/jobs"
  assert_equal "$status" 0
  assert_equal "$(field finished replayed <<<"$output" | sort | tr '\n' ' ')" "true undefined undefined "
  assert_equal "$(field finished job <<<"$output" | sort | tr '\n' ' ')" "a b c "
  assert_equal "$(field finished stdout <<<"$output" | grep . | sort | tr '\n' ' ')" "a c fixed "
  assert_equal "$stderr" ''
  # nothing is left to retry: every job is replayed
  run --separate-stderr exec_ --joblog "$log" --retry-failed <"$d/jobs"
  assert_equal "$(field finished replayed <<<"$output" | sort -u)" true
}

@test "a job whose inputs were never staged gives up before it runs, naming cm-fetch --stage-in; its dependents are skipped" {
  {
    job raw 'sh bench.sh' '{"inputs":["bench.sh"]}'
    job after 'echo after' '{"deps":["raw"]}'
    job fine 'echo fine' '{"inputs":["bench.sh"],"staged":true}'
  } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr exec_ <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 1
  assert_equal "$(field started job <<<"$output")" fine
  assert_equal "$(field gave-up reason <<<"$output")" 'its inputs were never staged: put cm-fetch --stage-in before cm-exec (inputs: bench.sh)'
  assert_equal "$(field skipped reason <<<"$output")" 'dependency raw gave up'
  grep -qxF 'cm-exec: raw: gave up: its inputs were never staged: put cm-fetch --stage-in before cm-exec (inputs: bench.sh)' <<<"$stderr"
}

# Last in the file: it kills the hosts and brings them back.
@test "every host down: each marked down once, every job gives up unreachable; --resume and --retry-failed run them once the hosts are back" {
  local log=$BATS_TEST_TMPDIR/joblog
  for i in $(seq 1 30); do job "d$i" "echo $i"; done >"$BATS_TEST_TMPDIR/jobs"
  cm_host_kill 1
  cm_host_kill 2
  cm_host_kill 3
  run --separate-stderr exec_ --joblog "$log" <"$BATS_TEST_TMPDIR/jobs"
  cm_host_restart 1
  cm_host_restart 2
  assert_equal "$status" 1
  assert_equal "$(field host-down host <<<"$output" | sort | tr '\n' ' ')" "th1 th2 th3 "
  assert_equal "$(field gave-up reason <<<"$output" | cut -c1-40 | sort | uniq -c | sed 's/^ *//')" "30 unreachable: every eligible host is down"
  assert_equal "$(field finished job <<<"$output")" ''
  # --resume: unreachable is not final; th3 is still down, so its share moves to th1 and th2
  run --separate-stderr exec_ --joblog "$log" --resume <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  assert_equal "$(field finished exit <<<"$output" | grep -c '^0$')" 30
  assert_equal "$(field finished replayed <<<"$output" | sort -u)" undefined
  # and once more from the same kind of joblog, with --retry-failed
  : >"$log"
  cm_host_kill 1
  cm_host_kill 2
  run --separate-stderr exec_ --joblog "$log" <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 1
  cm_host_restart 1
  cm_host_restart 2
  cm_host_restart 3
  run --separate-stderr exec_ --joblog "$log" --retry-failed <"$BATS_TEST_TMPDIR/jobs"
  assert_equal "$status" 0
  assert_equal "$(field finished exit <<<"$output" | grep -c '^0$')" 30
}

@test "CM_TRACE=1 says on stderr where the start goes (--help's Notes); CM_TRACE=2 adds a line per request; stdout stays records" {
  { job t.1 'echo one'; job t.2 'echo two'; } >"$BATS_TEST_TMPDIR/jobs"
  run --separate-stderr env CM_TRACE=1 cm-exec --transport "$CM_EXEC_TRANSPORT" -H th1 <"$BATS_TEST_TMPDIR/jobs"
  assert_success
  assert_equal "$(jq -r 'select(.event == "finished") | .exit' <<<"$output" | sort | paste -sd,)" 0,0
  # every stderr line is a trace line: +<ms> since the process started, with its CPU ms
  assert_equal "$(grep -cv '^cm-exec +[0-9.]* ' <<<"$stderr")" 0
  grep -q '^cm-exec +[0-9.]* (cpu [0-9.]*) run() called$' <<<"$stderr"
  grep -q '^cm-exec +[0-9.]* (cpu [0-9.]*) inventory read: 1 hosts$' <<<"$stderr"
  grep -q '^cm-exec +[0-9.]* (cpu [0-9.]*) first job record read$' <<<"$stderr"
  grep -q '^cm-exec +[0-9.]* (cpu [0-9.]*) exit$' <<<"$stderr"
  if [[ $CM_EXEC_TRANSPORT == persistent ]]; then
    grep -q '^cm-exec +[0-9.]* (cpu [0-9.]*) th1: hello$' <<<"$stderr"
    # no per-request lines at level 1
    assert_equal "$(grep -c ': r [0-9]* on lane ' <<<"$stderr")" 0
    run --separate-stderr env CM_TRACE=2 cm-exec --transport persistent -H th1 <"$BATS_TEST_TMPDIR/jobs"
    assert_success
    assert_equal "$(grep -c '^cm-exec +[0-9.]* (cpu [0-9.]*) th1: r [0-9]* on lane [0-9]*' <<<"$stderr")" 2
  fi
  # off: not a line
  run --separate-stderr cm-exec --transport "$CM_EXEC_TRANSPORT" -H th1 <"$BATS_TEST_TMPDIR/jobs"
  assert_success
  assert_equal "$stderr" ""
}
