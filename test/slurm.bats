#!/usr/bin/env bats
# The Slurm engine (@cm/slurm) on a real single-machine cluster: munged, slurmctld and three slurmd
# (sl1..sl3) started by test/helpers/slurm-lab.sh, driven through `cm-exec --engine slurm`.

load helpers/common
load helpers/hosts
load helpers/slurm

setup_file() {
  # without the lab every test is skipped, naming why (setup)
  slurm_lab_up || true
}

teardown_file() {
  slurm_lab_down
}

teardown() {
  # only the sweep test starts ssh hosts; stopping none is a no-op
  cm_hosts_stop
  # the SIGINT test's cm-exec, if the test ended before it did (TERM: it cancels what it submitted)
  if [[ -f $BATS_TEST_TMPDIR/cm-exec.pid ]]; then
    local pid
    pid=$(<"$BATS_TEST_TMPDIR/cm-exec.pid")
    kill -TERM "$pid" 2>/dev/null && wait_for 30 pid_gone "$pid" || true
  fi
}

setup() {
  if [[ -f $BATS_FILE_TMPDIR/no-slurm ]]; then
    skip "Slurm could not be installed or started: $(tail -1 "$BATS_FILE_TMPDIR/no-slurm")"
  fi
  cd "$BATS_TEST_TMPDIR"
}

cm_exec_js=$CM_REPO/tools/cm-exec/dist/main.cjs

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# started_all N FILE: FILE holds at least N started events
started_all() {
  (($(grep -c '"event":"started"' "$2" 2>/dev/null) >= $1))
}

slurm_run() {
  cm-exec --engine slurm "$@"
}

final_value() {
  jq -c 'select(.kind == "value" and .final == true) | .value'
}

@test "the assignment's example through Slurm steps sums to 10, each job once, on Slurm nodes" {
  cm-plan -f "$CM_REPO/examples/assignment.cm" | slurm_run --run asg >events.ndjson
  run cm-reduce <events.ndjson
  assert_equal "$status" 0
  assert_equal "$(final_value <<<"$output")" 10
  assert_equal "$(jq -r 'select(.event == "finished") | .job' events.ndjson | sort | paste -sd,)" a,b,c,d
  assert_equal "$(jq -r 'select(.event == "finished") | .exit' events.ndjson | sort -u)" 0
  assert_equal "$(jq -r 'select(.event == "started") | .host' events.ndjson | grep -cvE '^sl[1-3]$')" 0
  # d waited for a, b and c: its start is after their ends
  local d_start last_end
  d_start=$(jq -r 'select(.event == "started" and .job == "d") | .start' events.ndjson)
  last_end=$(jq -r 'select(.event == "finished" and .job != "d") | .end' events.ndjson | sort | tail -1)
  # (the same millisecond counts: d is started as the last of them is seen to end)
  [[ $d_start != null && ! $d_start < $last_end ]]
  # the job ran in its workdir, relative to $HOME as on an ssh host
  assert_equal "$(jq -r 'select(.event == "finished" and .job == "a") | .workdir' events.ndjson)" .cm/runs/asg/a
  [[ -d $HOME/.cm/runs/asg/a ]]
  if [[ -f $CM_REPO/tools/cm-exec/dist/main.cjs ]]; then
    # the same plan on localhost (cm-exec's embedded inventory) gives the same value
    run bats_pipe cm-plan -f "$CM_REPO/examples/assignment.cm" \| env -u CM_INVENTORY cm-exec \| cm-reduce
    assert_equal "$status" 0
    assert_equal "$(final_value <<<"$output")" 10
  fi
}

@test "the assignment's example as Slurm batch jobs with afterok dependencies sums to 10" {
  run bats_pipe cm-plan -f "$CM_REPO/examples/assignment.cm" \| slurm_run --slurm-mode jobs \| cm-reduce
  assert_equal "$status" 0
  assert_equal "$(final_value <<<"$output")" 10
  assert_equal "$(jq -r 'select(.event == "finished") | .host' <<<"$output" | grep -cvE '^sl[1-3]$')" 0
}

@test "a 1,000-run sweep through Slurm workers gives the same sum as the ssh engine" {
  printf 'def sq(i=1..1000):\n    echo $((i * i))\n+sq\n' >sweep.cm
  run bats_pipe cm-plan -f sweep.cm \| slurm_run --slurm-mode workers \| cm-reduce
  assert_equal "$status" 0
  local slurm_value
  slurm_value=$(final_value <<<"$output")
  assert_equal "$slurm_value" 333833500
  assert_equal "$(jq -c 'select(.event == "finished")' <<<"$output" | wc -l)" 1000
  # every allocated node took a share
  assert_equal "$(jq -r 'select(.event == "finished") | .host' <<<"$output" | sort -u | paste -sd,)" sl1,sl2,sl3
  if [[ ! -f $CM_REPO/tools/cm-exec/dist/main.cjs ]]; then
    skip "cm-exec is not built: compared with the arithmetic only"
  fi
  # the ssh engine on two real sshd test hosts, same plan
  cm_hosts_start 2 2
  run bats_pipe cm-plan -f sweep.cm \| cm-exec --ssh-config "$CM_TEST_SSH_CONFIG" \| cm-reduce
  assert_equal "$status" 0
  assert_equal "$(final_value <<<"$output")" "$slurm_value"
}

@test "a 200-run sweep as Slurm steps, one step per run" {
  printf 'def sq(i=1..200):\n    echo $((i * i))\n+sq\n' >sweep.cm
  run bats_pipe cm-plan -f sweep.cm \| slurm_run --slurm-mode steps \| cm-reduce
  assert_equal "$status" 0
  assert_equal "$(final_value <<<"$output")" 2686700
  assert_equal "$(jq -c 'select(.event == "finished" and .exit == 0)' <<<"$output" | wc -l)" 200
}

@test "a sweep in jobs mode becomes one job array; values and sweep indices come back" {
  printf 'def sq(i=1..40):\n    echo $((i * i))\n+sq\n' >sweep.cm
  run bats_pipe cm-plan -f sweep.cm \| slurm_run --slurm-mode jobs --run arr \| cm-reduce
  assert_equal "$status" 0
  assert_equal "$(final_value <<<"$output")" 22140
  assert_equal "$(jq -r 'select(.event == "finished") | .index' <<<"$output" | sort -n | paste -sd' ')" "$(seq 0 39 | paste -sd' ')"
  # one sbatch for the 40 runs: one batch script in the spool, an array of 40
  assert_equal "$(ls "$HOME/.cm/slurm/arr" | grep -c '^batch-.*\.sh$')" 1
}

@test "a failed job: dependants are skipped, the exit code is 1, no job is lost" {
  cat >jobs.ndjson <<'EOF'
{"kind":"job","v":1,"id":"bad","task":"bad","command":"echo oops >&2; exit 3","deps":[]}
{"kind":"job","v":1,"id":"next","task":"next","command":"echo 1","deps":["bad"]}
{"kind":"job","v":1,"id":"anyway","task":"anyway","command":"echo 2","deps":[],"after":["bad"]}
EOF
  for mode in steps workers jobs; do
    run --separate-stderr slurm_run --slurm-mode "$mode" <jobs.ndjson
    assert_equal "$status" 1
    assert_equal "$(jq -c 'select(.job == "bad" and .event == "finished") | [.exit, .stderr]' <<<"$output")" '[3,"oops\n"]'
    assert_equal "$(jq -r 'select(.job == "next") | .event' <<<"$output" | tail -1)" skipped
    assert_equal "$(jq -c 'select(.job == "anyway" and .event == "finished") | [.exit, .stdout]' <<<"$output")" '[0,"2\n"]'
  done
}

@test "a bad partition: gave-up with Slurm's message and exit 1, in every mode" {
  for mode in steps workers jobs; do
    run --separate-stderr bats_pipe cm-plan -f "$CM_REPO/examples/assignment.cm" \| slurm_run --slurm-mode "$mode" --partition nosuch
    assert_equal "$status" 1
    assert_equal "$(jq -r 'select(.event == "gave-up") | .job' <<<"$output" | sort | paste -sd,)" a,b,c
    assert_equal "$(jq -r 'select(.job == "d") | .event' <<<"$output" | paste -sd,)" queued,skipped
    assert_equal "$(jq -r 'select(.event == "gave-up" and .job == "a") | .reason' <<<"$output")" \
      "$([[ $mode != jobs ]] && echo "Slurm refused the allocation: Job submit/allocate failed: Invalid partition name specified" ||
        echo "Slurm rejected the job: Batch job submission failed: Invalid partition name specified")"
  done
}

@test "a time limit above the partition's: gave-up with Slurm's message and exit 1" {
  echo '{"kind":"job","v":1,"id":"long","task":"long","command":"echo 1","deps":[],"timeout":600}' >long.ndjson
  run --separate-stderr slurm_run --slurm-mode jobs --partition tiny <long.ndjson
  assert_equal "$status" 1
  assert_equal "$(jq -r 'select(.event == "gave-up") | .reason' <<<"$output")" \
    "Slurm rejected the job: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)"
  run --separate-stderr slurm_run --partition tiny <long.ndjson
  assert_equal "$status" 1
  assert_equal "$(jq -r 'select(.event == "gave-up") | .reason' <<<"$output")" \
    "time limit too large: timeout 600s exceeds the allocation's time limit 1:00"
}

@test "a job over its timeout is stopped and given up" {
  echo '{"kind":"job","v":1,"id":"slow","task":"slow","command":"sleep 30; echo cm-slurm-bats-late","deps":[],"timeout":1}' >slow.ndjson
  for mode in steps workers; do
    run --separate-stderr slurm_run --slurm-mode "$mode" <slow.ndjson
    assert_equal "$status" 1
    assert_equal "$(jq -r 'select(.event == "gave-up") | .reason' <<<"$output")" "timeout after 1s"
    # the step is gone from Slurm, not left running
    wait_for 30 none_queued '^slow$' -s || true
    assert_equal "$(squeue -h -s -o %j | grep -c '^slow$')" 0
  done
  # and so is the job's process on the node (killed, not orphaned), once slurmd has reaped it
  wait_for 20 none_left cm-slurm-bats-late || true
  assert_equal "$(left_behind cm-slurm-bats-late)" ""
}

@test "Slurm not installed: exit 4 and a clear message, before any event" {
  mkdir -p bin && ln -s "$(command -v node)" bin/node
  cm-plan -f "$CM_REPO/examples/assignment.cm" >plan.ndjson
  run --separate-stderr env PATH="$PWD/bin" node "$cm_exec_js" --engine slurm <plan.ndjson
  assert_equal "$status" 4
  assert_equal "$output" ""
  assert_equal "$stderr" "cm-exec: Slurm is not installed here: salloc, srun, sbatch, squeue, scancel, scontrol, sinfo not found on PATH (install slurm-wlm, or use the ssh engine)"
}

@test "the controller does not answer: exit 4" {
  sed 's/^SlurmctldPort=.*/SlurmctldPort=1/' "$SLURM_CONF" >down.conf
  run --separate-stderr bats_pipe cm-plan -f "$CM_REPO/examples/assignment.cm" \| env SLURM_CONF="$PWD/down.conf" cm-exec --engine slurm
  assert_equal "$status" 4
  assert_regex "$stderr" 'the Slurm controller does not answer \(scontrol ping: Slurmctld\(primary\) at .* is DOWN\)'
}

@test "SIGINT cancels everything submitted (scancel) and gives every job a final event" {
  local tok=cmslurmint$$
  for i in 1 2 3; do echo "{\"kind\":\"job\",\"v\":1,\"id\":\"s$i\",\"task\":\"s\",\"command\":\": $tok; sleep 60\",\"deps\":[]}"; done >sleep.ndjson
  for mode in steps workers jobs; do
    # the three jobs need the three nodes: a step cancelled by the test before may hold one a minute
    wait_for 120 nodes_idle 3
    # node itself in the background (not a function's subshell), so the signal reaches it
    node "$cm_exec_js" --engine slurm --slurm-mode "$mode" --run "int-$mode" <sleep.ndjson >events.ndjson &
    local pid=$!
    # (should a wait below fail, teardown stops it: bats would otherwise wait for it to the file's limit)
    echo "$pid" >"$BATS_TEST_TMPDIR/cm-exec.pid"
    # wait until the three jobs run, then interrupt
    wait_for 60 started_all 3 events.ndjson
    kill -INT "$pid"
    local rc=0
    wait "$pid" || rc=$?
    rm -f "$BATS_TEST_TMPDIR/cm-exec.pid"
    assert_equal "$rc" 130
    assert_equal "$(jq -r 'select(.event == "gave-up") | .job' events.ndjson | sort | paste -sd,)" s1,s2,s3
    # nothing of the run waits or runs in Slurm any more (COMPLETING is Slurm's own clean-up), and
    # no process of its jobs is left on the nodes
    wait_for 60 none_queued "^(cm-int-$mode|s[1-3])$" -t PD,R,S,CF || true
    assert_equal "$mode: $(squeue -h -t PD,R,S,CF -o '%j %T' | grep -E "^(cm-int-$mode|s[1-3]) ")" "$mode: "
    assert_none_left "$tok"
  done
}
