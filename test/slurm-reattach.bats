#!/usr/bin/env bats
# Runs that outlive cm-exec on Slurm's steps and workers modes (--reattach-within): the allocation
# outlives a SIGKILLed cm-exec (salloc --no-shell, held by a watchdog that cancels it once no cm-exec
# of the run has been seen for the bound), its jobs keep running in their steps (steps mode) or in
# the persistent loop of each node (workers mode), and `--resume` on the same joblog adopts the
# allocation, collects them there, runs what never started, and cancels the allocation once done.
# On the single-machine lab (test/helpers/slurm-lab.sh: sl1..sl3, 2 CPUs each).

load helpers/common
load helpers/slurm

setup_file() {
  slurm_lab_up || true
}

teardown_file() {
  slurm_lab_down
}

setup() {
  if [[ -f $BATS_FILE_TMPDIR/no-slurm ]]; then
    skip "Slurm could not be installed or started: $(tail -1 "$BATS_FILE_TMPDIR/no-slurm")"
  fi
  cd "$BATS_TEST_TMPDIR"
}

# started_at_least N FILE
started_at_least() {
  (($(grep -c '"event":"started"' "$2" 2>/dev/null) >= $1))
}

# running_at_least N: N jobs run on the nodes now (a started event only says a job was sent)
running_at_least() {
  (($(find "$HOME/.cm/spool" -name pid 2>/dev/null | wc -l) >= $1))
}

# no_heartbeat: no watchdog of a detached allocation is left (each ends within a second of its heartbeat)
no_heartbeat() {
  [[ -z $(find "$HOME/.cm/slurm" -name 'allocation-*' 2>/dev/null) ]]
}

# kill_and_resume MODE: 8 jobs of 6 s on 6 slots; cm-exec SIGKILLed once 6 run; then --resume
kill_and_resume() {
  local mode=$1 tok=cmrs$$$1 pid
  # every node free, so that the allocation has all 6 slots
  wait_for 30 none_queued .
  cm-plan -d "w(i=1..8)=: $tok; sleep 6; echo \$i >> $PWD/marker; echo \$i" +w >jobs
  cm-exec --engine slurm --slurm-mode "$mode" --run "$tok" --joblog log --reattach-within 120 <jobs >first 2>first.err 3>&- &
  pid=$!
  wait_for 60 running_at_least 6
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  # the allocation and its jobs outlive cm-exec
  assert_equal "$(squeue -h -n "cm-$tok" -t RUNNING -o %i | wc -l)" 1
  local resumed_at
  resumed_at=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  run --separate-stderr cm-exec --engine slurm --slurm-mode "$mode" --joblog log --resume <jobs
  assert_equal "$status" 0
  echo "$output" >resumed
  # each job ran once, and the sum is right
  assert_equal "$(wc -l <marker)" 8
  assert_equal "$(sort -u marker | wc -l)" 8
  assert_equal "$(paste -sd+ marker | bc)" 36
  # the ones the dead cm-exec started were collected, with their real times, not replayed
  assert_equal "$(jq -r 'select(.event == "finished" and .reattached == true) | .job' resumed | wc -l)" 6
  assert_equal "$(jq -r 'select(.event == "finished" and .replayed == true) | .job' resumed | wc -l)" 0
  assert_equal "$(jq -r 'select(.event == "finished") | .job' resumed | sort -u | wc -l)" 8
  assert_equal "$(jq -r 'select(.event == "finished") | .exit' resumed | sort -u)" 0
  assert_equal "$(jq -r 'select(.event == "finished") | .stdout' resumed | grep -v '^$' | sort -n | paste -sd,)" "$(seq 1 8 | paste -sd,)"
  # the collected jobs carry their real times: they started before the resume did
  local last_start
  last_start=$(jq -r 'select(.event == "finished" and .reattached == true) | .start' resumed | sort | tail -1)
  [[ $last_start < $resumed_at ]]
  # nothing left: the allocation, spools, heartbeats, processes
  wait_for 30 none_queued "cm-$tok"
  wait_for 30 none_queued "$tok" -s
  [[ ! -e $HOME/.cm/spool ]] || { find "$HOME/.cm/spool" >&2; false; }
  wait_for 10 no_heartbeat
  assert_none_left "$tok"
}

@test "steps mode: cm-exec SIGKILLed while 8 jobs run; --resume collects the 6 running in the allocation, runs the 2 others, each once" {
  kill_and_resume steps
}

@test "workers mode: cm-exec SIGKILLed while 8 jobs run; --resume collects the 6 running in the nodes' loops, runs the 2 others, each once" {
  kill_and_resume workers
}

@test "with --reattach-within and no --resume, the allocation ends within the bound after cm-exec died" {
  local tok=cmrsb$$ pid
  cm-plan -d "w(i=1..2)=: $tok; sleep 60" +w >jobs
  cm-exec --engine slurm --run "$tok" --joblog log --reattach-within 10 <jobs >first 2>first.err 3>&- &
  pid=$!
  wait_for 60 started_at_least 2 first
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  assert_equal "$(squeue -h -n "cm-$tok" -o %i | wc -l)" 1
  # 10 s after the last heartbeat, give or take the watchdog's second and Slurm's clean-up; what the
  # steps kept on the nodes goes first
  wait_for 30 none_queued "cm-$tok"
  [[ ! -e $HOME/.cm/spool ]] || { find "$HOME/.cm/spool" >&2; false; }
  assert_none_left "$tok"
}

@test "--reattach-within is refused in jobs mode (Slurm keeps the ids there anyway)" {
  run --separate-stderr cm-exec --engine slurm --slurm-mode jobs --joblog log --reattach-within 10 </dev/null
  assert_equal "$status" 2
  assert_equal "$stderr" "cm-exec: --reattach-within has no meaning with --slurm-mode jobs (Slurm keeps the queued jobs and --resume follows them by their Slurm ids)"
}
