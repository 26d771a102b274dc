# Fault rows of issue 21: cm-exec dies while its jobs run, and --resume reattaches to them. Sourced
# by test/faults/table.sh and test/faults.bats after scenarios.bash (same helpers, same $FT and hosts).
#
# The run: 16 jobs of `sleep 8; echo $i >> marker` on th1, th2, th3 and nsh1 with 4 slots each (an
# inventory copy), so all 16 run at once. The marker file is outside the hosts' homes: every run of
# a job appends a line, so "exactly once" is 16 lines holding 1..16. The wall-time check compares
# with the same 16 jobs run uninterrupted in the same row: from the first cm-exec's start to the end
# of --resume, under 1.5 x the uninterrupted wall time (`ratio` in the notes). CM_EXEC_TRANSPORT=ssh
# runs the rows on the per-job ssh transport, CM_REMOTE_LOOP=sh on the persistent transport's sh loop.

FAULT_ROWS+=(reattach_resume reattach_cut_off reattach_bound)

_reattach_hosts=th1,th2,th3,nsh1

# _reattach_setup NAME: the jobs (marker $FT/NAME.marker) and an inventory with 4 slots a host
_reattach_setup() {
  sed 's/^    slots: [0-9]*$/    slots: 4/' "$CM_INVENTORY" >"$FT/$1.inv"
  plan "$FT/$1.jobs" 16 ": $tok; sleep ${2:-8}; echo \$i >> $FT/$1.marker; echo \$i"
}

# _spooled N: the test hosts keep N jobs' spools, i.e. N jobs run there now
_spooled() {
  local n=0 h
  for h in ${_reattach_hosts//,/ }; do
    n=$((n + $(find "$(cm_host_home "$h")/.cm/spool" -name pid 2>/dev/null | wc -l)))
  done
  ((n >= $1))
}

# _spool_left: files and folders under .cm/spool left on the hosts, waiting up to 15 s for the loops
# that kept them to notice they were collected
_spool_left() {
  local i n h
  for ((i = 0; i < 75; i++)); do
    n=0
    for h in ${_reattach_hosts//,/ }; do n=$((n + $(find "$(cm_host_home "$h")/.cm/spool" 2>/dev/null | wc -l))); done
    ((n == 0)) && break
    sleep 0.2
  done
  echo "$n"
}

# _markers NAME: "lines distinct sum" of the marker file
_markers() {
  [[ -f $FT/$1.marker ]] || { echo "0 0 0"; return; }
  echo "$(wc -l <"$FT/$1.marker") $(sort -u "$FT/$1.marker" | wc -l) $(awk '{ s += $1 } END { print s + 0 }' "$FT/$1.marker")"
}

_now_ms() { echo $(($(date +%s%N) / 1000000)); }

# _reattach_first NAME: the first cm-exec (--reattach-within $WITHIN, default a day) in the background,
# SIGKILLed $KILL_AFTER_MS (5 s) after all 16 jobs run on their hosts, as in the issue's measurement;
# sets t_start (ms)
_reattach_first() {
  local name=$1 pid t_all
  t_start=$(_now_ms)
  cm-exec --transport "${CM_EXEC_TRANSPORT:-persistent}" -i "$FT/$name.inv" -H "$_reattach_hosts" --connect-timeout 3 --run "$tok" --joblog "$FT/$name.log" --reattach-within "${WITHIN:-86400}" \
    <"$FT/$name.jobs" >"$FT/$name.first" 2>"$FT/$name.first.err" 3>&- &
  pid=$!
  for _ in $(seq 1 1500); do _spooled 16 && break; sleep 0.02; done
  t_all=$(_now_ms)
  while (($(_now_ms) - t_all < ${KILL_AFTER_MS:-5000})); do sleep 0.05; done
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
}

# _reattach_reference NAME: the same jobs, uninterrupted; sets t_ref (ms)
_reattach_reference() {
  local t0
  plan "$FT/$1.ref.jobs" 16 ": $tok; sleep 8; echo \$i"
  t0=$(_now_ms)
  cm-exec --transport "${CM_EXEC_TRANSPORT:-persistent}" -i "$FT/$1.inv" -H "$_reattach_hosts" --connect-timeout 3 --run "$tok-ref" <"$FT/$1.ref.jobs" >/dev/null 2>&1
  t_ref=$(($(_now_ms) - t0))
}

# _reattach_check NAME WANT_REATTACHED: sets check and notes from the resumed stream, markers and value
_reattach_check() {
  local name=$1 m a
  a=$(account "$FT/$name.jobs" "$FT/$name.out" "$FT/$name.log")
  m=$(_markers "$name")
  [[ $m == "16 16 136" ]] || check="markers (lines distinct sum) $m, want 16 16 136"
  [[ $(value_of "$FT/$name.val") == 136 ]] || check="value $(value_of "$FT/$name.val") != 136"
  [[ $(kv replayed "$a") == 0 ]] || check="$(kv replayed "$a") replayed: collected jobs must not be replays"
  [[ -z $2 || $(kv reattached "$a") == "$2" ]] || check="reattached $(kv reattached "$a") != $2"
  [[ $(kv loglines "$a") == 16 ]] || check="joblog has $(kv loglines "$a") final lines"
  # a collected job's event has its real start: before the kill, so before --resume began
  local early
  early=$(jq -r --arg t "$(date -u -d "@$((t_resume / 1000))" +%FT%T)" 'select(.event == "finished" and .reattached == true and .start < $t) | .job' "$FT/$name.out" | wc -l)
  [[ -z $2 || $early == "$2" ]] || check="$early of $2 collected jobs started before the resume"
  account_line=$a
}

fault_reattach_resume() {
  local tok=cmf-reat$$ check=ok t_start t_ref t_resume t_end ratio left spool account_line
  _reattach_setup reat
  _reattach_reference reat
  _reattach_first reat
  t_resume=$(_now_ms)
  cm-exec --transport "${CM_EXEC_TRANSPORT:-persistent}" -i "$FT/reat.inv" -H "$_reattach_hosts" --connect-timeout 3 --joblog "$FT/reat.log" --resume <"$FT/reat.jobs" 2>"$FT/reat.err" |
    tee "$FT/reat.out" | cm-reduce >"$FT/reat.val"
  rc=${PIPESTATUS[0]}
  t_end=$(_now_ms)
  _reattach_check reat 16
  ratio=$(awk -v a=$((t_end - t_start)) -v b="$t_ref" 'BEGIN { printf "%.2f", a / b }')
  awk -v r="$ratio" 'BEGIN { exit !(r < 1.5) }' || check="wall $((t_end - t_start)) ms = ${ratio} x uninterrupted ($t_ref ms)"
  left=$(leftovers "$tok")
  spool=$(_spool_left)
  ((spool == 0)) || check="$spool spool entries left on the hosts"
  row "cm-exec SIGKILLed 5 s into 16 x 8 s jobs, --resume reattaches" 16 "$(lost_of "$account_line")" "$(dup_of "$account_line")" "$left" "$rc" 0 "$check" \
    "markers=$(_markers reat) ratio=$ratio (${t_ref} ms uninterrupted, $((t_end - t_start)) ms killed+resumed) reattached=$(kv reattached "$account_line") spool-left=$spool"
}

# nsh1 is cut off (every packet it sends dropped) from the kill until the other hosts' 12 jobs are
# collected: its 4 are collected when it answers again, not run elsewhere
fault_reattach_cut_off() {
  local tok=cmf-reatc$$ check=ok t_start t_ref=0 t_resume t_end left spool account_line resumer
  _reattach_setup reatc
  _reattach_first reatc
  cm_ns_host_drop nsh1
  t_resume=$(_now_ms)
  (
    cm-exec --transport "${CM_EXEC_TRANSPORT:-persistent}" -i "$FT/reatc.inv" -H "$_reattach_hosts" --connect-timeout 3 --joblog "$FT/reatc.log" --resume <"$FT/reatc.jobs" 2>"$FT/reatc.err" |
      tee "$FT/reatc.out" | cm-reduce >"$FT/reatc.val"
    echo "${PIPESTATUS[0]}" >"$FT/reatc.rc"
  ) 3>&- &
  resumer=$!
  local n
  # (the output file may not be there yet: grep then prints nothing)
  for _ in $(seq 1 1500); do n=$(grep -c '"event":"finished"' "$FT/reatc.out" 2>/dev/null); ((${n:-0} >= 12)) && break; sleep 0.02; done
  local collected_while_cut
  collected_while_cut=$(grep -c '"event":"finished"' "$FT/reatc.out")
  cm_ns_host_clear nsh1
  wait "$resumer"
  rc=$(<"$FT/reatc.rc")
  t_end=$(_now_ms)
  _reattach_check reatc 16
  ((collected_while_cut == 12)) || check="$collected_while_cut jobs ended while nsh1 was cut off, want 12"
  [[ $(jq -r 'select(.event == "finished" and .host == "nsh1") | .job' "$FT/reatc.out" | wc -l) == 4 ]] || check="nsh1's jobs not collected there"
  left=$(leftovers "$tok")
  spool=$(_spool_left)
  ((spool == 0)) || check="$spool spool entries left on the hosts"
  row "cm-exec SIGKILLed, a host cut off until the others are collected" 16 "$(lost_of "$account_line")" "$(dup_of "$account_line")" "$left" "$rc" 0 "$check" \
    "markers=$(_markers reatc) nsh1-collected=$(jq -r 'select(.event == "finished" and .host == "nsh1" and .reattached) | .job' "$FT/reatc.out" | wc -l) wall=$((t_end - t_start)) ms"
}

# nsh1 stays cut off past --reattach-within 3: its loop kills its 4 jobs (10 s long, killed ~1 s
# in + 3..5 s) and removes their spools; --resume gives up on it 3 + 5 s after it began and runs
# them elsewhere, so each job still ran to its end exactly once
fault_reattach_bound() {
  local tok=cmf-reatb$$ check=ok t_start t_resume t_end left spool account_line
  _reattach_setup reatb 10
  KILL_AFTER_MS=500 WITHIN=3 _reattach_first reatb
  cm_ns_host_drop nsh1
  t_resume=$(_now_ms)
  cm-exec --transport "${CM_EXEC_TRANSPORT:-persistent}" -i "$FT/reatb.inv" -H "$_reattach_hosts" --connect-timeout 3 --reattach-within 3 --joblog "$FT/reatb.log" --resume <"$FT/reatb.jobs" 2>"$FT/reatb.err" |
    tee "$FT/reatb.out" | cm-reduce >"$FT/reatb.val"
  rc=${PIPESTATUS[0]}
  t_end=$(_now_ms)
  cm_ns_host_clear nsh1
  _reattach_check reatb ""
  [[ $(jq -r 'select(.event == "finished" and .reattached == true) | .job' "$FT/reatb.out" | wc -l) == 12 ]] || check="collected $(jq -r 'select(.event == "finished" and .reattached == true) | .job' "$FT/reatb.out" | wc -l), want 12"
  [[ $(jq -r 'select(.event == "retry") | .reason' "$FT/reatb.out" | grep -c 'not reached within --reattach-within') == 4 ]] || check="no 4 retries after the bound: $(jq -r 'select(.event == "retry") | .reason' "$FT/reatb.out" | sort | uniq -c | tr '\n' ' ')"
  left=$(leftovers "$tok")
  spool=$(_spool_left)
  ((spool == 0)) || check="$spool spool entries left on the hosts (nsh1's loop must remove them at the bound)"
  row "cm-exec SIGKILLed, a host cut off past --reattach-within" 16 "$(lost_of "$account_line")" "$(dup_of "$account_line")" "$left" "$rc" 0 "$check" \
    "markers=$(_markers reatb) wall=$((t_end - t_start)) ms"
}

# The Slurm lab in jobs mode (3 nodes x 2 CPUs): every job is a task of one sbatch array, which Slurm
# runs whatever becomes of cm-exec; --resume follows the ids the joblog kept (squeue) instead of
# submitting again. Starts the lab when none runs (and stops only a lab it started).
FAULT_ROWS+=(reattach_slurm)

fault_reattach_slurm() {
  local tok=cmf-reats$$ check=ok t_start t_ref t0 t_resume t_end pid started_here=0 out a m ratio
  export CM_SLURM_LAB_DIR=${CM_SLURM_LAB_DIR:-/tmp/cm-slurm-lab}
  if ! "$FAULTS_DIR/../helpers/slurm-lab.sh" status >/dev/null 2>&1; then
    out=$("$FAULTS_DIR/../helpers/slurm-lab.sh" start 3 2>"$FT/slurm-lab.err") || {
      row "cm-exec SIGKILLed, Slurm jobs mode, --resume" 16 - - 0 - 0 "no Slurm lab: $(tail -1 "$FT/slurm-lab.err")" ""
      return 1
    }
    started_here=1
  fi
  out=$("$FAULTS_DIR/../helpers/slurm-lab.sh" env)
  (
    eval "$out"
    export SLURM_CONF HOME=$FT/slurm-home
    mkdir -p "$HOME"
    slurm_exec() { cm-exec --engine slurm --slurm-mode jobs "$@"; }
    plan "$FT/reats.ref.jobs" 16 ": $tok; sleep 8; echo \$i"
    plan "$FT/reats.jobs" 16 ": $tok; sleep 8; echo \$i >> $FT/reats.marker; echo \$i"
    t0=$(_now_ms)
    slurm_exec --run "$tok-ref" <"$FT/reats.ref.jobs" >/dev/null 2>&1
    t_ref=$(($(_now_ms) - t0))
    t_start=$(_now_ms)
    # cm-exec itself in the background, so that $! is the process SIGKILLed
    cm-exec --engine slurm --slurm-mode jobs --run "$tok" --joblog "$FT/reats.log" <"$FT/reats.jobs" >"$FT/reats.first" 2>"$FT/reats.first.err" 3>&- &
    pid=$!
    for _ in $(seq 1 3000); do (($(grep -c '"event":"started"' "$FT/reats.first" 2>/dev/null) >= 6)) && break; sleep 0.02; done
    t0=$(_now_ms)
    while (($(_now_ms) - t0 < 5000)); do sleep 0.05; done
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    t_resume=$(_now_ms)
    slurm_exec --joblog "$FT/reats.log" --resume <"$FT/reats.jobs" 2>"$FT/reats.err" | tee "$FT/reats.out" | cm-reduce >"$FT/reats.val"
    echo "${PIPESTATUS[0]}" >"$FT/reats.rc"
    t_end=$(_now_ms)
    echo "$t_ref $((t_end - t_start))" >"$FT/reats.times"
    echo "$(squeue -h -o %j | grep -c "$tok")" >"$FT/reats.queued"
  )
  ((started_here)) && "$FAULTS_DIR/../helpers/slurm-lab.sh" stop >/dev/null 2>&1
  rc=$(cat "$FT/reats.rc" 2>/dev/null || echo none)
  read -r t_ref t_all <"$FT/reats.times"
  a=$(account "$FT/reats.jobs" "$FT/reats.out" "$FT/reats.log")
  m=$(_markers reats)
  [[ $m == "16 16 136" ]] || check="markers (lines distinct sum) $m, want 16 16 136"
  [[ $(value_of "$FT/reats.val") == 136 ]] || check="value $(value_of "$FT/reats.val") != 136"
  [[ $(kv replayed "$a") == 0 ]] || check="$(kv replayed "$a") replayed"
  [[ $(kv reattached "$a") == 16 ]] || check="reattached $(kv reattached "$a") != 16 (none submitted twice)"
  [[ $(<"$FT/reats.queued") == 0 ]] || check="$(<"$FT/reats.queued") jobs of the run still in Slurm's queue"
  ratio=$(awk -v a="$t_all" -v b="$t_ref" 'BEGIN { printf "%.2f", a / b }')
  awk -v r="$ratio" 'BEGIN { exit !(r < 1.5) }' || check="wall $t_all ms = ${ratio} x uninterrupted ($t_ref ms)"
  row "cm-exec SIGKILLed, Slurm jobs mode, --resume follows the ids" 16 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" \
    "markers=$m ratio=$ratio (${t_ref} ms uninterrupted, $t_all ms killed+resumed) reattached=$(kv reattached "$a")"
}

# While cm-exec runs: nsh1 stops answering with 2 jobs on it, long enough for ssh to give up on its
# session (ServerAlive 1 s x 3). With --reattach-within, those jobs are not moved (they may still run
# there): cm-exec waits for nsh1 and collects them when it answers again; each job runs once.
FAULT_ROWS+=(reattach_live_drop)

fault_reattach_live_drop() {
  local tok=cmf-reatl$$ check=ok pid dropper a m
  plan "$FT/reatl.jobs" 4 ": $tok; sleep 3; echo \$i >> $FT/reatl.marker; echo \$i"
  (
    for _ in $(seq 1 1500); do (($(find "$(cm_host_home nsh1)/.cm/spool" -name pid 2>/dev/null | wc -l) >= 2)) && break; sleep 0.02; done
    cm_ns_host_drop nsh1
    # the fault lasts until ssh has given up on the session (3 to 4 s) and a reconnection failed
    sleep 8
    cm_ns_host_clear nsh1
  ) 3>&- &
  dropper=$!
  run_exec reatl -H th2,nsh1 --reattach-within 60
  wait "$dropper"
  cm_ns_host_clear nsh1
  a=$(account "$FT/reatl.jobs" "$FT/reatl.out" "$FT/reatl.log")
  m=$(_markers reatl)
  [[ $m == "4 4 10" ]] || check="markers (lines distinct sum) $m, want 4 4 10"
  [[ $(value_of "$FT/reatl.val") == 10 ]] || check="value $(value_of "$FT/reatl.val") != 10"
  [[ $(jq -r 'select(.event == "finished" and .host == "nsh1" and .reattached == true) | .job' "$FT/reatl.out" | wc -l) == 2 ]] ||
    check="nsh1's 2 jobs not collected there: $(jq -c 'select(.event == "finished" or .event == "retry") | [.event, .job, .host, .reattached, .reason]' "$FT/reatl.out" | tr '\n' ' ')"
  local spool
  spool=$(_reattach_hosts=th2,nsh1 _spool_left)
  ((spool == 0)) || check="$spool spool entries left on the hosts"
  row "a host stops answering mid-run, --reattach-within: waited for, collected" 4 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" \
    "markers=$m retries=$(grep -c '"event":"retry"' "$FT/reatl.out") spool-left=$spool"
}
