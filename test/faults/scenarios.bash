# The fault scenarios, shared by test/faults.bats and test/faults/table.sh. Each fault_* function
# injects one fault into a run on real test hosts, then appends one row to $CM_FAULTS_TABLE:
#   fault  jobs  lost  duplicated  leftover  exit  pass  (notes)
# and returns non-zero (with the reason on stderr) when the row fails. A row passes when every job
# has exactly one final event (and at most one joblog line), the exit code is the documented one,
# no process is left on the test hosts, and the fault's own check holds (value, cap, reason...).
#
# The functions expect errexit off (bats: call them through faults_run).
#
# Needs: test/helpers/hosts.bash and test/faults/netns.bash loaded, faults_hosts_start run
# (th1..th3, 2 slots; nsh1 in a network namespace; slow1 = th1 behind a 200 ms delay proxy), and
# $FT a scratch directory.

FAULTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${CM_FAULTS_TABLE:=/dev/null}"

faults_hosts_start() {
  cm_hosts_start 3 2 || return 1
  cm_ns_host_start nsh1 2 || return 1
  # nsh1 stops answering in two scenarios: its own inventory options let ssh notice within 3 s
  # (ServerAlive every second, 3 unanswered) instead of the default 45 s
  cm_host_options nsh1 'ServerAliveInterval: 1' 'ServerAliveCountMax: 3' || return 1
  cm_slow_host_start slow1 th1 200 || return 1
}

# faults_run FUNCTION: a scenario from a bats test, in a subshell without errexit or bats' ERR trap
faults_run() {
  (
    set +eE
    trap - ERR
    "$@"
  )
}

faults_hosts_stop() {
  cm_ns_hosts_stop
  cm_hosts_stop
}

# plan FILE N COMMAND: N jobs w.0..w.N-1 (sweep w, $i = 1..N) and a sum of their stdout
plan() {
  cm-plan -d "w(i=1..$2)=$3" +w >"$1"
}

account() { node "$FAULTS_DIR/account.mjs" "$@"; }

# kv KEY "k=v k=v ...": one value
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# the sum value cm-reduce printed, or "none"
value_of() { jq -r 'select(.kind == "value" and .partial == false) | .value' "$1" 2>/dev/null | tail -1 | grep . || echo none; }

# leftovers TOKEN: processes still alive on the test hosts after waiting up to 15 s: those whose
# command line holds TOKEN or whose environment has CM_RUN=TOKEN (run_exec uses the token as run
# id; a job's children leave the sshd tree when their parent exits, so the tree alone would miss
# them), plus every process below a test sshd that is not an sshd (a session's sshd processes alone
# are an idle connection, counted apart: idle_sessions TOKEN).
leftovers() {
  local tok=$1 n i
  for ((i = 0; i < 75; i++)); do
    { _faults_token_procs "$tok"; _faults_session_procs | while read -r p; do echo "$p $( (tr '\0' ' ' <"/proc/$p/cmdline") 2>/dev/null)"; done; } |
      sort -u >"$FT/leftover.$tok"
    # sshd processes alone are connections (a ControlMaster's session), not work left running
    grep -v '^[0-9]* sshd: ' "$FT/leftover.$tok" >"$FT/leftover.$tok.work"
    grep '^[0-9]* sshd: ' "$FT/leftover.$tok" >"$FT/idle.$tok"
    n=$(wc -l <"$FT/leftover.$tok.work")
    ((n == 0)) && break
    sleep 0.2
  done
  echo "$n"
}

# "PID ARGS" of processes whose command line holds TOKEN or whose environment has CM_RUN=TOKEN
idle_sessions() { wc -l <"$FT/idle.$1"; }

_faults_token_procs() {
  {
    pgrep -f -- "$1"
    grep -laF -- "CM_RUN=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
  } | sort -un | while read -r p; do
    a=$( (tr '\0' ' ' <"/proc/$p/cmdline") 2>/dev/null) && [[ -n $a ]] && echo "$p $a"
  done
}

_faults_session_procs() {
  local f pid start roots=()
  for f in "$CM_TEST_HOSTS_DIR"/hosts/*/pid "$CM_TEST_HOSTS_DIR"/many/g*/pid; do
    [[ -f $f ]] || continue
    read -r pid start <"$f"
    _cm_alive "$pid" "$start" && roots+=("$pid")
  done
  ((${#roots[@]})) || return 0
  # everything below a daemon, not the daemons themselves
  _cm_tree "${roots[@]}" | grep -vxF -f <(printf '%s\n' "${roots[@]}") || true
}

# row FAULT JOBS LOST DUP LEFT EXIT WANT_EXIT CHECK_OK NOTES
row() {
  local pass=pass
  [[ $3 == 0 || $3 == n/a ]] && [[ $4 == 0 || $4 == n/a ]] && [[ $5 == 0 ]] && [[ $6 == "$7" ]] && [[ $8 == ok ]] || pass=FAIL
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6 (want $7)" "$pass" "$9" >>"$CM_FAULTS_TABLE"
  if [[ $pass != pass ]]; then
    cat "$FT"/leftover.*.work 2>/dev/null | head -20 | sed 's/^/  leftover: /' >&2
    echo "FAIL $1: jobs=$2 lost=$3 dup=$4 leftover=$5 exit=$6 want=$7 check=$8 $9" >&2
    return 1
  fi
}

# lost and dup of an account line, joblog duplicates counted as duplicates
lost_of() { kv lost "$1"; }
dup_of() { echo $(($(kv dup "$1") + $(kv logdup "$1"))); }

# run_exec NAME ARGS...: (run id: the caller's $tok) jobs from $FT/NAME.jobs through cm-exec (stdout $FT/NAME.out, stderr
# NAME.err, joblog NAME.log) and cm-reduce (NAME.val); sets rc (cm-exec's) and rrc (cm-reduce's)
run_exec() {
  local name=$1
  shift
  cm-exec --joblog "$FT/$name.log" --connect-timeout 3 --run "$tok" "$@" <"$FT/$name.jobs" 2>"$FT/$name.err" |
    tee "$FT/$name.out" | cm-reduce >"$FT/$name.val" 2>"$FT/$name.rerr"
  local s=("${PIPESTATUS[@]}")
  rc=${s[0]} rrc=${s[2]}
}

# --- 1. hosts ---------------------------------------------------------------------------------

fault_host_down_before() {
  local tok=cmf-down$$ a check=ok notes
  plan "$FT/down.jobs" 30 ": $tok; sleep 0.2; echo \$i"
  cm_host_kill 3
  run_exec down -H th1,th2,th3
  cm_host_restart 3
  a=$(account "$FT/down.jobs" "$FT/down.out" "$FT/down.log")
  [[ $(value_of "$FT/down.val") == 465 ]] || check="value $(value_of "$FT/down.val") != 465"
  [[ $(kv finished "$a") == 30 ]] || check="finished $(kv finished "$a") != 30"
  grep -q '"event":"host-down".*"host":"th3"' "$FT/down.out" || check="no host-down for th3"
  notes="sum=$(value_of "$FT/down.val") $(grep -c '"host":"th3"' "$FT/down.out") th3 events"
  row "host down before the run" 30 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" "$notes"
}

fault_sshd_dies() {
  local tok=cmf-dies$$ a check=ok killer
  plan "$FT/dies.jobs" 30 ": $tok; sleep 0.5; echo \$i"
  (
    for _ in $(seq 1 300); do grep -q '"host":"th1".*"running"' "$FT/dies.out" 2>/dev/null && break; sleep 0.05; done
    sleep 0.5
    cm_host_kill 1
  ) 3>&- &
  killer=$!
  run_exec dies -H th1,th2,th3
  wait "$killer"
  cm_host_restart 1
  a=$(account "$FT/dies.jobs" "$FT/dies.out" "$FT/dies.log")
  [[ $(value_of "$FT/dies.val") == 465 ]] || check="value $(value_of "$FT/dies.val") != 465"
  grep -q '"event":"host-down".*"host":"th1"' "$FT/dies.out" || check="no host-down for th1"
  row "sshd killed mid-run (daemon+sessions)" 30 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" \
    "sum=$(value_of "$FT/dies.val") retries=$(grep -c '"event":"retry"' "$FT/dies.out")"
}

fault_drop_before() {
  local tok=cmf-dropb$$ a check=ok
  plan "$FT/dropb.jobs" 20 ": $tok; sleep 0.5; echo \$i"
  cm_ns_host_drop nsh1
  # two unanswered connections (3 s each) mark it down while th2 still has jobs to run
  run_exec dropb -H th2,nsh1 --down-after 2
  cm_ns_host_clear nsh1
  a=$(account "$FT/dropb.jobs" "$FT/dropb.out" "$FT/dropb.log")
  [[ $(value_of "$FT/dropb.val") == 210 ]] || check="value $(value_of "$FT/dropb.val") != 210"
  grep -q '"event":"host-down".*"host":"nsh1"' "$FT/dropb.out" || check="no host-down for nsh1"
  row "host drops packets from the start" 20 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" \
    "sum=$(value_of "$FT/dropb.val") $(jq -r 'select(.event=="host-down") | .reason' "$FT/dropb.out" | head -1)"
}

# The host stops answering while its jobs run: ssh notices only through ServerAlive (15 s x 3 by
# default in @cm/ssh; nsh1's inventory says 1 s x 3), then the jobs move. When the packets flow again, the host's sessions must end.
fault_drop_mid_run() {
  local tok=cmf-dropm$$ a check=ok dropper
  plan "$FT/dropm.jobs" 12 ": $tok; sleep 2; echo \$i"
  (
    for _ in $(seq 1 300); do grep -q '"host":"nsh1"' "$FT/dropm.out" 2>/dev/null && break; sleep 0.05; done
    sleep 0.5
    cm_ns_host_drop nsh1
  ) 3>&- &
  dropper=$!
  run_exec dropm -H th2,nsh1
  wait "$dropper"
  cm_ns_host_clear nsh1
  a=$(account "$FT/dropm.jobs" "$FT/dropm.out" "$FT/dropm.log")
  [[ $(value_of "$FT/dropm.val") == 78 ]] || check="value $(value_of "$FT/dropm.val") != 78"
  row "host stops answering mid-run (dropped)" 12 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" \
    "sum=$(value_of "$FT/dropm.val") retries=$(grep -c '"event":"retry"' "$FT/dropm.out") $(kv reasons "$a")"
}

fault_slow_host() {
  local tok=cmf-slow$$ a check=ok
  plan "$FT/slow.jobs" 10 ": $tok; echo \$i"
  run_exec slow -H slow1
  a=$(account "$FT/slow.jobs" "$FT/slow.out" "$FT/slow.log")
  [[ $(value_of "$FT/slow.val") == 55 ]] || check="value $(value_of "$FT/slow.val") != 55"
  [[ $(jq -r 'select(.event=="finished") | .host' "$FT/slow.out" | sort -u) == slow1 ]] || check="not all on slow1"
  row "slow host (200 ms each way)" 10 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" "sum=$(value_of "$FT/slow.val")"
}

# --- 2. jobs ----------------------------------------------------------------------------------

fault_hang_timeout() {
  local tok=cmf-hang$$ a check=ok
  {
    plan /dev/stdout 5 ": $tok; echo \$i" | grep -v '"kind":"reduce"'
    jq -nc --arg c ": $tok; sleep 600" '{kind:"job",v:1,id:"hang",task:"hang",command:$c,deps:[],timeout:2}'
    echo '{"kind":"reduce","v":1,"id":"total","op":"sum","inputs":["hang"],"sweeps":{"w":5},"final":true}'
  } >"$FT/hang.jobs"
  run_exec hang -H th1,th2 --grace 1
  a=$(account "$FT/hang.jobs" "$FT/hang.out" "$FT/hang.log")
  [[ $(jq -r 'select(.event=="gave-up") | .reason' "$FT/hang.out") == "timeout after 2s" ]] || check="hang did not give up on timeout"
  # the reduction cannot be right: cm-reduce must fail and name the missing job
  [[ $rrc == 1 ]] && grep -q hang "$FT/hang.rerr" "$FT/hang.val" || check="cm-reduce exit $rrc without naming hang: $(cat "$FT/hang.rerr")"
  row "job hangs (timeout 2s)" 6 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 1 "$check" \
    "$(kv reasons "$a") reduce-exit=$rrc"
}

fault_big_output() {
  local tok=cmf-big$$ a check=ok rss bytes
  jq -nc --arg c ": $tok; head -c 1000000000 /dev/zero" '{kind:"job",v:1,id:"big",task:"big",command:$c,deps:[]}' >"$FT/big.jobs"
  /usr/bin/time -v -o "$FT/big.time" cm-exec -H th2 --logs "$FT/biglogs" --joblog "$FT/big.log" <"$FT/big.jobs" >"$FT/big.out" 2>"$FT/big.err"
  rc=$?
  a=$(account "$FT/big.jobs" "$FT/big.out" "$FT/big.log")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$FT/big.time")
  bytes=$(jq -r 'select(.event=="finished") | .stdout_bytes' "$FT/big.out")
  [[ $bytes == 1000000000 ]] || check="stdout_bytes $bytes"
  (($(jq -r 'select(.event=="finished") | .stdout | length' "$FT/big.out") <= 1048576)) || check="cap not held"
  [[ $(wc -c <"$FT/biglogs/big.1.stdout") == 1000000000 ]] || check="log holds $(wc -c <"$FT/biglogs/big.1.stdout") bytes"
  # bounded: the 1 GB never sits in memory (the cap is 1 MiB)
  ((rss < 300000)) || check="peak RSS $rss kB"
  rm -rf "$FT/biglogs"
  row "job prints 1 GB to stdout" 1 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" "peak-RSS=${rss}kB event-bytes=$bytes"
}

fault_forks_children() {
  local tok=cmf-fork$$ a check=ok
  plan "$FT/fork.jobs" 4 ": $tok; sleep 300 >/dev/null 2>&1 & sleep 300 >/dev/null 2>&1 & echo \$i"
  run_exec fork -H th1,th2
  a=$(account "$FT/fork.jobs" "$FT/fork.out" "$FT/fork.log")
  [[ $(value_of "$FT/fork.val") == 10 ]] || check="value $(value_of "$FT/fork.val") != 10"
  local left
  left=$(leftovers "$tok")
  # clean up what the run left, so later rows start clean
  _faults_token_procs "$tok" | awk '{print $1}' | xargs -r kill -KILL 2>/dev/null
  row "job forks children and exits" 4 "$(lost_of "$a")" "$(dup_of "$a")" "$left" "$rc" 0 "$check" "sum=$(value_of "$FT/fork.val")"
}

fault_ignores_term() {
  local tok=cmf-term$$ a check=ok
  jq -nc --arg c "trap '' TERM; : $tok; sleep 600 & sleep 600; wait" '{kind:"job",v:1,id:"stubborn",task:"stubborn",command:$c,deps:[],timeout:1}' >"$FT/term.jobs"
  run_exec term -H th3 --grace 1
  a=$(account "$FT/term.jobs" "$FT/term.out" "$FT/term.log")
  [[ $(jq -r 'select(.event=="gave-up") | .signal' "$FT/term.out") == SIGKILL ]] || check="not killed with SIGKILL"
  row "job ignores SIGTERM (timeout 1s)" 1 "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 1 "$check" "$(kv reasons "$a")"
}

# --- 3. cm-exec itself ------------------------------------------------------------------------

fault_sigkill_resume() {
  local tok=cmf-kill$$ a check=ok pid before log=$FT/kill.log
  plan "$FT/kill.jobs" 40 ": $tok; sleep 0.3; echo \$i"
  cm-exec -H th1,th2,th3 --run "$tok" --joblog "$log" <"$FT/kill.jobs" >"$FT/kill.first" 2>/dev/null 3>&- &
  pid=$!
  for _ in $(seq 1 1000); do [[ -f $log && $(wc -l <"$log") -ge 8 ]] && break; sleep 0.02; done
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  before=$(wc -l <"$log")
  cm-exec -H th1,th2,th3 --joblog "$log" --resume <"$FT/kill.jobs" 2>"$FT/kill.err" | tee "$FT/kill.out" | cm-reduce >"$FT/kill.val"
  rc=${PIPESTATUS[0]}
  a=$(account "$FT/kill.jobs" "$FT/kill.out" "$log")
  [[ $(value_of "$FT/kill.val") == 820 ]] || check="value $(value_of "$FT/kill.val") != 820"
  [[ $(kv replayed "$a") == "$before" ]] || check="replayed $(kv replayed "$a") != $before in the joblog before"
  [[ $(kv loglines "$a") == 40 ]] || check="joblog has $(kv loglines "$a") lines"
  local left
  left=$(leftovers "$tok")
  row "cm-exec SIGKILLed, then --resume" 40 "$(lost_of "$a")" "$(dup_of "$a")" "$left" "$rc" 0 "$check" \
    "killed-after=$before sum=$(value_of "$FT/kill.val") idle-ssh-sessions=$(idle_sessions "$tok")"
}

# Ctrl-C: SIGINT to the whole foreground process group (cm-plan | cm-exec | cm-reduce), then resume
fault_sigint() {
  local tok=cmf-int$$ a a2 check=ok pid pgid log=$FT/int.log
  cm-plan -d "w(i=1..30)=: $tok; sleep 1; echo \$i" +w >"$FT/int.jobs"
  # cm-exec writes to a file, not a pipe: a terminal's SIGINT also kills a reader like tee, and the
  # events written after it died would not be counted
  setsid bash -c 'cm-plan -d "w(i=1..30)=: $4; sleep 1; echo \$i" +w | cm-exec -H th1,th2,th3 --run "$4" --joblog "$1" >"$3.out" 2>"$3.err"
    echo "${PIPESTATUS[*]}" >"$3.rc"' _ "$log" "$FT/int.jobs" "$FT/int" "$tok" 3>&- &
  pid=$!
  for _ in $(seq 1 1000); do [[ -f $log && $(wc -l <"$log") -ge 6 ]] && break; sleep 0.02; done
  pgid=$(ps -o pgid= -p "$pid" | tr -d ' ')
  kill -INT -- "-$pgid"
  wait "$pid" 2>/dev/null || true
  read -r _ rc <"$FT/int.rc"
  a=$(account "$FT/int.jobs" "$FT/int.out" "$log")
  [[ $(kv gaveup "$a") -gt 0 && $(kv reasons "$a") == *interrupted* ]] || check="no job gave up interrupted"
  # what cm-reduce makes of the interrupted stream: not a silent partial sum
  cm-reduce <"$FT/int.out" >"$FT/int.val" 2>"$FT/int.rerr"
  rrc=$?
  ((rrc == 1)) || check="cm-reduce exit $rrc on an interrupted run"
  local left
  left=$(leftovers "$tok")
  # then the run is finished with --resume: right sum, one joblog line per job
  cm-exec -H th1,th2,th3 --joblog "$log" --resume <"$FT/int.jobs" 2>/dev/null | tee "$FT/int2.out" | cm-reduce >"$FT/int2.val"
  a2=$(account "$FT/int.jobs" "$FT/int2.out" "$log")
  [[ $(value_of "$FT/int2.val") == 465 ]] || check="resumed value $(value_of "$FT/int2.val") != 465"
  [[ $(kv lost "$a2") == 0 && $(kv dup "$a2") == 0 && $(kv logdup "$a2") == 0 && $(kv loglines "$a2") == 30 ]] || check="after resume: $a2"
  row "SIGINT to the process group, then --resume" 30 "$(lost_of "$a")" "$(dup_of "$a")" "$left" "$rc" 130 "$check" \
    "$(kv reasons "$a") reduce-exit=$rrc resumed-sum=$(value_of "$FT/int2.val")"
}

fault_head() {
  local tok=cmf-head$$ check=ok s
  plan "$FT/head.jobs" 40 ": $tok; sleep 0.3; echo \$i"
  cm-exec -H th1,th2,th3 <"$FT/head.jobs" 2>"$FT/head.err" | head -n 3 >"$FT/head.out"
  s=("${PIPESTATUS[@]}")
  rc=${s[0]}
  [[ $(wc -l <"$FT/head.out") == 3 ]] || check="head got $(wc -l <"$FT/head.out") lines"
  [[ ! -s $FT/head.err ]] || check="stderr: $(head -c 200 "$FT/head.err")"
  row "downstream closes early (| head -n 3)" 40 n/a n/a "$(leftovers "$tok")" "$rc" 0 "$check" "stderr-bytes=$(wc -c <"$FT/head.err")"
}

# --- 4. cm-fetch ------------------------------------------------------------------------------

fault_fetch_disk_full() {
  local tok=cmf-full$$ check=ok mnt=$FT/full nf nbad
  mkdir -p "$mnt"
  mount -t tmpfs -o size=2m tmpfs "$mnt" || { row "results disk full (2 MB tmpfs)" 10 - - 0 - 1 "mount failed" ""; return 1; }
  cm-plan -d "w(i=1..10)=: $tok; head -c 400000 /dev/urandom > out.bin; echo \$i" w >"$FT/full.jobs.0"
  jq -c 'if .kind == "job" then .outputs = ["out.bin"] else . end' "$FT/full.jobs.0" >"$FT/full.jobs"
  # a limit: on a full disk cm-fetch has been seen to hang forever (exit 124 here)
  cm-exec -H th1,th2 <"$FT/full.jobs" 2>/dev/null | timeout -k 5 120 cm-fetch --dir "$mnt" >"$FT/full.out" 2>"$FT/full.err"
  rc=${PIPESTATUS[1]}
  nf=$(jq -r 'select(.kind=="fetch") | .job' "$FT/full.out" | sort | uniq -c | awk '$1 > 1' | wc -l)
  local fetched lost
  fetched=$(jq -r 'select(.kind=="fetch") | .job' "$FT/full.out" | sort -u | wc -l)
  lost=$((10 - fetched))
  nbad=$(jq -r 'select(.kind=="fetch" and .ok == false) | .job' "$FT/full.out" | wc -l)
  ((nbad > 0)) || check="no transfer failed on a full disk"
  [[ $(jq -r 'select(.kind=="fetch" and .ok == false) | .error // .reason // ""' "$FT/full.out" | head -1) == *[Ss]pace* ]] ||
    check="failure does not say the disk is full: $(jq -c 'select(.kind=="fetch" and .ok == false)' "$FT/full.out" | head -1 | head -c 300)"
  [[ $(jq -r 'select(.event=="finished") | .job' "$FT/full.out" | wc -l) == 10 ]] || check="events not all passed on"
  # every file that is there is whole: its size is the one in its fetch record
  local partial
  partial=$(jq -r 'select(.kind=="fetch" and .ok != false) | .files[]? | "\(.path) \(.size)"' "$FT/full.out" |
    while read -r p sz; do [[ -f $p && $(stat -c %s "$p") == "$sz" ]] || echo "$p"; done | wc -l)
  ((partial == 0)) || check="$partial fetched files missing or cut"
  local stray
  stray=$(find "$mnt" -type f | grep -vcFx -f <(jq -r 'select(.kind=="fetch" and .ok != false) | .files[]?.path' "$FT/full.out") || true)
  ((stray == 0)) || check="$stray files left that no ok fetch record names"
  umount "$mnt"
  row "results disk full during cm-fetch (2 MB tmpfs)" 10 "$lost" "$nf" "$(leftovers "$tok")" "$rc" 1 "$check" "ok=$((fetched - nbad)) failed=$nbad stray-files=$stray"
}

# a result file deleted on the host between the job's end and its fetch
fault_fetch_vanished() {
  local tok=cmf-van$$ check=ok home
  cm-plan -d "w(i=1..6)=: $tok; echo \$i > r.txt; echo \$i" +w >"$FT/van.jobs.0"
  jq -c 'if .kind == "job" then .outputs = ["r.txt"] | .result = "r.txt" else . end' "$FT/van.jobs.0" >"$FT/van.jobs"
  home=$(cm_host_home th2)
  # between cm-exec and cm-fetch: w.2's result is removed on its host before its event goes on
  cm-exec -H th2 <"$FT/van.jobs" 2>/dev/null |
    while IFS= read -r l; do
      if [[ $l == *'"event":"finished"'*'"job":"w.2"'* ]]; then
        rm -f "$home/$(jq -r .workdir <<<"$l")/r.txt"
      fi
      printf '%s\n' "$l"
    done | timeout -k 5 120 cm-fetch --dir "$FT/van.results" 2>"$FT/van.err" | tee "$FT/van.out" | cm-reduce >"$FT/van.val" 2>"$FT/van.rerr"
  local s=("${PIPESTATUS[@]}")
  rc=${s[2]}
  local fetched dupf
  fetched=$(jq -r 'select(.kind=="fetch") | .job' "$FT/van.out" | sort -u | wc -l)
  dupf=$(jq -r 'select(.kind=="fetch") | .job' "$FT/van.out" | sort | uniq -d | wc -l)
  [[ $(jq -r 'select(.kind=="fetch" and .ok == false) | .job' "$FT/van.out") == w.2 ]] || check="w.2 not reported failed"
  [[ ${s[4]} == 1 ]] || check="cm-reduce exit ${s[4]} with a result missing"
  grep -q 'w.2' "$FT/van.rerr" "$FT/van.val" || check="cm-reduce does not name w.2"
  row "remote result vanishes before fetch" 6 "$((6 - fetched))" "$dupf" "$(leftovers "$tok")" "$rc" 1 "$check" \
    "reduce-exit=${s[4]} $(jq -r 'select(.kind=="fetch" and .ok == false) | (.error // .reason // "")' "$FT/van.out" | head -1 | head -c 80)"
}

# --- 5. load ----------------------------------------------------------------------------------

# fault_load N HOSTS: N jobs over HOSTS m hosts (4 slots each) under ulimit -n 1024
fault_load() {
  local n=$1 hosts=$2 tok=cmf-load$$ a check=ok rss
  cm_hosts_start_many "$hosts" 4 || return 1
  plan "$FT/load.jobs" "$n" ": $tok; echo \$i"
  (
    ulimit -n 1024
    /usr/bin/time -v -o "$FT/load.time" cm-exec -H @many --joblog "$FT/load.log" <"$FT/load.jobs" 2>"$FT/load.err" |
      tee "$FT/load.out" | cm-reduce >"$FT/load.val"
    exit "${PIPESTATUS[0]}"
  )
  rc=$?
  a=$(account "$FT/load.jobs" "$FT/load.out" "$FT/load.log")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$FT/load.time")
  local want=$((n * (n + 1) / 2))
  [[ $(value_of "$FT/load.val") == "$want" ]] || check="value $(value_of "$FT/load.val") != $want"
  ! grep -qi 'too many open files\|EMFILE' "$FT/load.err" "$FT/load.out" || check="too many open files"
  [[ $(kv finished "$a") == "$n" ]] || check="finished $(kv finished "$a") of $n"
  [[ $(kv loglines "$a") == "$n" ]] || check="joblog $(kv loglines "$a") lines"
  row "load: $n jobs, $hosts hosts x 4 slots, ulimit -n 1024" "$n" "$(lost_of "$a")" "$(dup_of "$a")" "$(leftovers "$tok")" "$rc" 0 "$check" \
    "peak-RSS=${rss}kB sum=$(value_of "$FT/load.val") $(kv reasons "$a")"
}
