# Fault rows of issue 21 on the Slurm lab in steps and workers mode (3 nodes x 2 CPUs): cm-exec
# --reattach-within is SIGKILLed while 8 jobs of `sleep 6; echo $i >> marker` run (6 at once), then
# --resume on the same joblog adopts the allocation (salloc --no-shell, held by cm's watchdog), collects
# the 6 jobs where they run and runs the 2 others. Each job runs once, the allocation is gone after
# the resume, and no spool is left. Sourced after scenarios.bash and rows/reattach.bash (_markers,
# _now_ms); starts the lab when none runs (and stops only a lab it started).
FAULT_ROWS+=(reattach_slurm_steps reattach_slurm_workers)

fault_reattach_slurm_steps() { _reattach_slurm_mode steps; }
fault_reattach_slurm_workers() { _reattach_slurm_mode workers; }

_reattach_slurm_mode() {
  local mode=$1 name=reat$1 tok=cmf-reat$1$$ check=ok pid started_here=0 out a m rc
  export CM_SLURM_LAB_DIR=${CM_SLURM_LAB_DIR:-/tmp/cm-slurm-lab}
  if ! "$FAULTS_DIR/../helpers/slurm-lab.sh" status >/dev/null 2>&1; then
    out=$("$FAULTS_DIR/../helpers/slurm-lab.sh" start 3 2>"$FT/slurm-lab.err") || {
      row "cm-exec SIGKILLed, Slurm $mode mode, --resume" 8 - - 0 - 0 "no Slurm lab: $(tail -1 "$FT/slurm-lab.err")" ""
      return 1
    }
    started_here=1
  fi
  out=$("$FAULTS_DIR/../helpers/slurm-lab.sh" env)
  (
    eval "$out"
    export SLURM_CONF HOME=$FT/slurm-home-$mode
    mkdir -p "$HOME"
    plan "$FT/$name.jobs" 8 ": $tok; sleep 6; echo \$i >> $FT/$name.marker; echo \$i"
    cm-exec --engine slurm --slurm-mode "$mode" --run "$tok" --joblog "$FT/$name.log" --reattach-within 120 \
      <"$FT/$name.jobs" >"$FT/$name.first" 2>"$FT/$name.first.err" 3>&- &
    pid=$!
    # 6 jobs run on the nodes (a started event only says a job was sent)
    for _ in $(seq 1 3000); do (($(find "$HOME/.cm/spool" -name pid 2>/dev/null | wc -l) >= 6)) && break; sleep 0.02; done
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    squeue -h -n "cm-$tok" -t RUNNING -o %i | wc -l >"$FT/$name.held"
    cm-exec --engine slurm --slurm-mode "$mode" --joblog "$FT/$name.log" --resume <"$FT/$name.jobs" 2>"$FT/$name.err" |
      tee "$FT/$name.out" | cm-reduce >"$FT/$name.val"
    echo "${PIPESTATUS[0]}" >"$FT/$name.rc"
    for _ in $(seq 1 1500); do (($(squeue -h -o %j | grep -c "$tok") == 0)) && break; sleep 0.02; done
    squeue -h -o %j | grep -c "$tok" >"$FT/$name.queued"
    find "$HOME/.cm/spool" 2>/dev/null | wc -l >"$FT/$name.spool"
  )
  ((started_here)) && "$FAULTS_DIR/../helpers/slurm-lab.sh" stop >/dev/null 2>&1
  rc=$(cat "$FT/$name.rc" 2>/dev/null || echo none)
  a=$(account "$FT/$name.jobs" "$FT/$name.out" "$FT/$name.log")
  m=$(_markers "$name")
  [[ $m == "8 8 36" ]] || check="markers (lines distinct sum) $m, want 8 8 36"
  [[ $(value_of "$FT/$name.val") == 36 ]] || check="value $(value_of "$FT/$name.val") != 36"
  [[ $(<"$FT/$name.held") == 1 ]] || check="the allocation did not outlive cm-exec"
  [[ $(kv replayed "$a") == 0 ]] || check="$(kv replayed "$a") replayed"
  [[ $(kv reattached "$a") == 6 ]] || check="reattached $(kv reattached "$a") != 6"
  [[ $(<"$FT/$name.queued") == 0 ]] || check="$(<"$FT/$name.queued") jobs or steps of the run still in Slurm's queue"
  [[ $(<"$FT/$name.spool") == 0 ]] || check="$(<"$FT/$name.spool") spool entries left on the nodes"
  row "cm-exec SIGKILLed, Slurm $mode mode, --resume collects the allocation's jobs" 8 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" \
    "markers=$m reattached=$(kv reattached "$a")"
}
