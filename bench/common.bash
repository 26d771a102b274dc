# Shared by bench/transport.sh and bench/exec.sh: the peers every cm figure is set against, run in the
# same rounds, and one table for all of them. Sourced after test/helpers/hosts.bash has started the
# test hosts; needs REPO, WORK (scratch under $CM_TEST_HOSTS_DIR), CFG (their ssh_config), NAMES (the
# host names, space-separated), SLOTS and N (jobs).
#
# Each run goes through bench/cpu-split.pl, which splits its CPU into the hosts' (everything under the
# test sshd listeners), the controller's (the command's tree and the ssh masters it uses) and the
# whole machine's (/proc/stat, less cpu-split.pl's own snapshots), so a table line says where a job's
# CPU goes and whether the split adds up (other = machine - hosts - controller: what else ran).
#
#   bench_measure NAME CMD...   one timed run; CMD (an exported function) prints how many jobs succeeded
#   bench_table FLOOR FORK NAME...  the median run of each, ratios to FLOOR's wall and FORK's CPU
# The contenders shared by both scripts, as exported functions:
#   fork_limit      the N commands as subshells of one local dash: (echo $i), no exec per job
#   floor           xargs -P(hosts x slots), one `ssh HOST echo I` per job over pre-opened masters
#   parallel_m      GNU parallel -M -S SLOTS/HOST... echo I (PARALLEL_N jobs, default N up to 400)

# GNU parallel -M runs a few jobs/s here (a remote perl per job): 400 of them show its per-job
# cost without holding the run for minutes; its ratios are per job
PARALLEL_N=${PARALLEL_N:-$((N < 400 ? N : 400))}
export WORK CFG NAMES SLOTS N REPO PARALLEL_N
declare -A B_WALL B_HOST B_CTL B_MACH B_SELF B_OK B_JOBS

# bench_measure NAME CMD...: one run of CMD under cpu-split.pl; B_*[NAME] collect every run
bench_measure() {
  local name=$1 ok wall host ctl mach self
  shift
  # the peers' leftovers (sessions closing, page cache) settle before the clock starts
  sleep 0.5
  ok=$(perl "$REPO/bench/cpu-split.pl" "$WORK/split" "$CM_TEST_HOSTS_DIR/pids" "$CM_TEST_HOSTS_DIR" \
    -- bash -c '"$@"' bash "$@" 3>&-) || true
  read -r wall host ctl mach _ self <"$WORK/split"
  B_WALL[$name]+="$wall " B_HOST[$name]+="$host " B_CTL[$name]+="$ctl " B_MACH[$name]+="$mach " B_SELF[$name]+="$self "
  B_OK[$name]+="${ok:-0} "
  : "${B_JOBS[$name]:=${BENCH_JOBS:-$N}}"
}

# bench_median NAME: "wall host ctl mach ok" of the run whose wall time is the median; mach is the
# machine's CPU less cpu-split.pl's own (its /proc snapshots)
bench_median() {
  awk -v w="${B_WALL[$1]}" -v h="${B_HOST[$1]}" -v c="${B_CTL[$1]}" -v m="${B_MACH[$1]}" -v o="${B_OK[$1]}" \
    -v s="${B_SELF[$1]}" 'BEGIN {
    n = split(w, W, " "); split(h, H, " "); split(c, C, " "); split(m, M, " "); split(o, O, " "); split(s, S, " ")
    for (i = 1; i <= n; i++) idx[i] = i
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (W[idx[j]] < W[idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
    k = idx[int((n + 1) / 2)]; print W[k], H[k], C[k], M[k] - S[k], O[k]
  }'
}

# bench_table FLOOR FORK NAME...: a line per contender (its median run by wall time). The fork limit
# runs on the controller: its CPU is shown as host CPU, the least a host could spend on the jobs.
bench_table() {
  local floor=$1 fork=$2 name wall host ctl mach ok fw fh
  shift 2
  read -r fw _ _ _ _ < <(bench_median "$floor")
  read -r _ _ fh _ _ < <(bench_median "$fork")
  printf '%-26s %8s %8s %11s %9s %9s %9s %9s %9s %8s %9s  %s\n' contender wall_s jobs/s ok \
    host_ms ctl_ms h+c_ms machine other_ms x_floor host_x_fk 'every run: wall_s'
  printf '%-26s %8s %8s %11s %9s %9s %9s %9s %9s %8s %9s\n' '' '' '' '' /job /job /job ms/job /job faster fork_lim
  for name in "$fork" "$floor" "$@"; do
    [[ -n ${B_WALL[$name]:-} ]] || { printf '%-26s %8s\n' "$name" 'not run'; continue; }
    read -r wall host ctl mach ok < <(bench_median "$name")
    [[ $name == "$fork" ]] && { host=$ctl; ctl=0; }
    awk -v n="$name" -v w="$wall" -v h="$host" -v c="$ctl" -v m="$mach" -v ok="$ok" -v j="${B_JOBS[$name]}" \
      -v fw="$fw" -v fj="${B_JOBS[$floor]}" -v fh="$fh" -v fkj="${B_JOBS[$fork]}" -v all="${B_WALL[$name]}" 'BEGIN {
        s = ""; k = split(all, A, " "); for (i = 1; i <= k; i++) s = s sprintf("%.2f ", A[i] / 1000)
        printf "%-26s %8.2f %8.0f %11s %9.3f %9.3f %9.3f %9.3f %9.3f %8.2f %9s  %s\n", n, w / 1000, j * 1000 / w,
          ok "/" j, h / j, c / j, (h + c) / j, m / j, (m - h - c) / j, (fw / fj) / (w / j), (fh > 0 ? sprintf("%.2f", (h / j) / (fh / fkj)) : "-"), s
      }'
  done
}

# the N jobs' inputs for the peers: ids, and "HOST echo I" lines spread over the hosts in turn
bench_inputs() {
  seq 1 "$PARALLEL_N" >"$WORK/parallel.ids"
  awk -v hs="$NAMES" 'BEGIN { k = split(hs, H, " ") } { print H[(NR - 1) % k + 1], "echo", $1 }' \
    < <(seq 1 "$N") >"$WORK/floor.lines"
}

# ssh masters for the floor, in $WORK/ctl; they end with their hosts (cm_hosts_stop)
bench_open_masters() {
  local n i
  mkdir -p "$WORK/ctl"
  for n in $NAMES; do
    ssh -F "$CFG" -o ControlMaster=yes -o ControlPath="$WORK/ctl/%C" -o ControlPersist=yes -fN "$n"
  done
  for n in $NAMES; do
    for ((i = 0; i < 100; i++)); do
      ssh -F "$CFG" -o ControlPath="$WORK/ctl/%C" -O check "$n" 2>/dev/null && break
      sleep 0.05
    done
  done
}

bench_close_masters() {
  local n
  for n in $NAMES; do ssh -F "$CFG" -o ControlPath="$WORK/ctl/%C" -O exit "$n" 2>/dev/null; done
  return 0
}

fork_limit() {
  dash -c 'i=0; while [ $i -lt "$1" ]; do i=$((i + 1)); (echo $i); done' dash "$N" >"$WORK/out.fork"
  grep -c . "$WORK/out.fork"
}

floor() {
  local hosts
  read -ra hosts <<<"$NAMES"
  xargs -P $((${#hosts[@]} * SLOTS)) -L1 ssh -F "$CFG" -o ControlMaster=no -o ControlPath="$WORK/ctl/%C" \
    <"$WORK/floor.lines" >"$WORK/out.floor" 2>"$WORK/err.floor"
  grep -c . "$WORK/out.floor"
}

# the job list on stdin: with `::::` and stdin from /dev/null, parallel -M printed 4 of 2,000 outputs
# here and left its workers running
parallel_m() {
  local s=() n
  for n in $NAMES; do s+=(-S "$SLOTS/$n"); done
  parallel --will-cite -M --ssh "ssh -F $CFG" "${s[@]}" 'echo {}' <"$WORK/parallel.ids" \
    >"$WORK/out.parallel" 2>"$WORK/err.parallel"
  grep -c . "$WORK/out.parallel"
}
export -f fork_limit floor parallel_m

# bench_check NAME WANT: complain about each run of NAME that did not do all its jobs
bench_check() {
  local ok
  for ok in ${B_OK[$1]:-}; do
    [[ $ok == "$2" ]] || echo "bench: $1: $ok of $2 jobs succeeded" >&2
  done
  return 0
}
