#!/usr/bin/env bats
# One execution core: the same scenarios on every engine, with the same options and the same
# answers. ssh runs on three real sshd test hosts (test/helpers/hosts.bash), slurm-steps and
# slurm-workers on the single-machine Slurm lab (test/helpers/slurm-lab.sh), and jobs mode where the
# scenario has a meaning there.

load helpers/common
load helpers/hosts
load helpers/slurm

ENGINES=(ssh slurm-steps slurm-workers)

setup_file() {
  cm_hosts_start 3 2
  slurm_lab_up || {
    cat "$BATS_FILE_TMPDIR/no-slurm" >&2
    return 1
  }
}

teardown_file() {
  slurm_lab_down
  cm_hosts_stop
}

setup() {
  cd "$BATS_TEST_TMPDIR" || return 1
}

# on ENGINE ARGS...: cm-exec on that engine
on() {
  local engine=$1
  shift
  case $engine in
  ssh) cm-exec "$@" ;;
  slurm-*) cm-exec --engine slurm --slurm-mode "${engine#slurm-}" "$@" ;;
  esac
}

# job ID COMMAND [DEPS-JSON]: one job record
job() {
  jq -nc --arg id "$1" --arg c "$2" --argjson d "${3:-[]}" '{kind:"job",v:1,id:$id,task:($id | sub("[0-9]+$"; "")),command:$c,deps:$d}'
}

final_value() {
  jq -c 'select(.kind == "value" and .final == true) | .value'
}

@test "the assignment's example gives 10 on every engine" {
  for e in "${ENGINES[@]}" slurm-jobs; do
    run bats_pipe cm-plan -f "$CM_REPO/examples/assignment.cm" \| on "$e" \| cm-reduce
    assert_equal "$e: $status" "$e: 0"
    assert_equal "$e: $(final_value <<<"$output")" "$e: 10"
  done
}

@test "--joblog, SIGKILL, --resume: each job final once in the joblog and the stream, the exact sum, nothing left running" {
  for e in "${ENGINES[@]}"; do
    local tok=cmengkill$$$RANDOM log=$BATS_TEST_TMPDIR/$e.log
    for i in $(seq 1 20); do job "r$i" ": $tok; sleep 0.5; echo $i"; done >jobs.ndjson
    # cm-exec itself in the background (not a subshell), so that $! is the process SIGKILLed
    on_bg() { if [[ $1 == ssh ]]; then exec cm-exec "${@:2}"; else exec cm-exec --engine slurm --slurm-mode "${1#slurm-}" "${@:2}"; fi; }
    (on_bg "$e" --run "kill-$e" --joblog "$log" <jobs.ndjson >first.out 2>/dev/null) 3>&- &
    local pid=$!
    wait_for 120 joblog_has "$log" 4
    kill -KILL "$pid"
    wait "$pid" || true
    local before
    before=$(wc -l <"$log")
    ((before >= 4 && before < 20))
    # the killed run's jobs end with it: ssh wrappers and Slurm's allocation see it gone
    assert_none_left "$tok"
    run --separate-stderr on "$e" --joblog "$log" --resume <jobs.ndjson
    assert_equal "$e: $status" "$e: 0"
    assert_equal "$e: $(jq -r .job "$log" | sort | uniq -d)" "$e: "
    assert_equal "$e: $(wc -l <"$log")" "$e: 20"
    assert_equal "$e: $(jq -r 'select(.event == "finished") | .job' <<<"$output" | wc -l)" "$e: 20"
    assert_equal "$e: $(jq -r 'select(.event == "finished" and .replayed == true) | .job' <<<"$output" | wc -l)" "$e: $before"
    assert_equal "$e: $(jq -s 'map(select(.event == "finished") | .stdout | tonumber) | add' <<<"$output")" "$e: 210"
  done
}

joblog_has() {
  [[ -f $1 ]] && (($(wc -l <"$1") >= $2))
}

@test "--halt now,fail=1 stops at the first failure and exits 5, on every engine" {
  {
    job bad 'sleep 0.5; exit 1'
    job slow1 'sleep 30'
    job slow2 'sleep 30'
    job later 'echo never' '["slow1"]'
  } >jobs.ndjson
  for e in "${ENGINES[@]}" slurm-jobs; do
    run --separate-stderr on "$e" --halt now,fail=1 <jobs.ndjson
    assert_equal "$e: $status" "$e: 5"
    assert_equal "$e: $(jq -r 'select(.event == "finished") | .job' <<<"$output")" "$e: bad"
    assert_equal "$e: $(jq -r 'select(.event == "gave-up") | "\(.job) \(.reason)"' <<<"$output" | sort | paste -sd,)" \
      "$e: later halted,slow1 halted,slow2 halted"
  done
}

@test "--dry-run runs nothing, submits nothing and writes no joblog, on every engine" {
  job a "touch $BATS_TEST_TMPDIR/ran" >jobs.ndjson
  for e in "${ENGINES[@]}" slurm-jobs; do
    run --separate-stderr on "$e" --dry-run --joblog dry.log <jobs.ndjson
    assert_equal "$e: $status" "$e: 0"
    assert_equal "$e: $output" "$e: "
    [[ $stderr == *"JOB "*"HOSTS"* ]]
    [[ ! -e $BATS_TEST_TMPDIR/ran && ! -e dry.log ]]
  done
  # nothing reached Slurm's queue or accounting
  assert_equal "$(squeue -h -o %j | grep -c '^a$')" 0
}

@test "--timeout kills the job where it runs and gives it up, on every engine" {
  for e in "${ENGINES[@]}"; do
    local tok=cmengtime$$$RANDOM
    job t ": $tok; sleep 30; touch $BATS_TEST_TMPDIR/late" >jobs.ndjson
    run --separate-stderr on "$e" --timeout 1 --grace 1 <jobs.ndjson
    assert_equal "$e: $status" "$e: 1"
    assert_equal "$e: $(jq -r 'select(.event == "gave-up") | .reason' <<<"$output")" "$e: timeout after 1s"
    assert_none_left "$tok"
    [[ ! -e $BATS_TEST_TMPDIR/late ]]
  done
}

@test "an option without meaning on an engine exits 2 with one line, before Slurm is looked for" {
  # no Slurm on this PATH: the refusal comes first, not exit 4
  mkdir -p bin && ln -sf "$(command -v node)" bin/node
  local exec_js=$CM_REPO/tools/cm-exec/dist/main.cjs
  run --separate-stderr env PATH="$PWD/bin" node "$exec_js" --engine slurm --hosts th1 </dev/null
  assert_equal "$status" 2
  assert_equal "$stderr" "cm-exec: --hosts has no meaning with --engine slurm (Slurm places the jobs on its nodes; no ssh is involved)"
  run --separate-stderr env PATH="$PWD/bin" node "$exec_js" --engine slurm --slurm-mode jobs --grace 5 </dev/null
  assert_equal "$status" 2
  assert_equal "$stderr" "cm-exec: --grace has no meaning with --slurm-mode jobs (Slurm's KillWait is the time between TERM and KILL)"
  run --separate-stderr cm-exec --partition lab </dev/null
  assert_equal "$status" 2
  assert_equal "$stderr" "cm-exec: --partition has no meaning with --engine ssh (it is a Slurm option)"
}

@test "a Slurm cluster in the inventory: one plan pins a task to it and runs the rest on ssh hosts, one event stream" {
  # the test hosts' inventory plus an entry that is the Slurm lab
  { cat "$CM_INVENTORY"; printf '  cluster:\n    slurm: {partition: lab, mode: %s}\n' steps; } >mixed.yaml
  {
    job a 'hostname'
    job b 'echo 2'
    job c 'echo 3' '["a", "b"]'
  } | jq -c 'if .id == "a" then .host = "cluster" elif .id == "b" then .host = "th1" else . end' >jobs.ndjson
  run --separate-stderr cm-exec --inventory mixed.yaml --run mixed <jobs.ndjson
  assert_equal "$status" 0
  assert_equal "$(jq -r 'select(.event == "finished") | "\(.job) \(.exit)"' <<<"$output" | sort | paste -sd,)" "a 0,b 0,c 0"
  # a ran on a node of the allocation, b on the ssh host it was pinned to
  [[ $(jq -r 'select(.event == "finished" and .job == "a") | "\(.host) \(.transport)"' <<<"$output") =~ ^sl[1-3]\ slurm$ ]]
  assert_equal "$(jq -r 'select(.event == "finished" and .job == "b") | .host' <<<"$output")" th1
  # the allocation was given back
  wait_for 60 none_queued '^cm-mixed-cluster$' -t PD,R,S,CF || true
  assert_equal "$(squeue -h -t PD,R,S,CF -o %j | grep -c '^cm-mixed-cluster$')" 0
  # --dry-run shows the entry as the host of a, and asks Slurm for nothing
  run --separate-stderr cm-exec --inventory mixed.yaml --dry-run <jobs.ndjson
  assert_equal "$status" 0
  [[ $stderr == *"a "*"cluster "* ]]
}
