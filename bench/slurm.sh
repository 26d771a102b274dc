#!/usr/bin/env bash
# Throughput of the Slurm engine against Slurm's own tools, in one run, on the single-machine lab cluster
# (test/helpers/slurm-lab.sh: 3 nodes x 2 CPUs, short scheduler cycles). N tiny jobs (echo $i), timed from
# submission to the last job's end:
#   cm steps            one allocation, every job an srun step (the default engine mode)
#   cm workers          one allocation, one srun step per node running cm's persistent job loop
#   cm jobs+arrays      sbatch per group of jobs with the same deps (one array here)
#   raw srun steps      xargs -P6 srun --exclusive inside one salloc: the floor for steps
#   raw sbatch          N x sbatch --wrap, then wait for the queue: the floor for jobs
#   raw array           one sbatch --array=1-N, then wait
#   cm-exec localhost   the ssh engine's local host, for scale (when cm-exec is built)
# and a chain of L jobs linked by deps (seconds per link) in every cm mode; in jobs mode each link is
# its own sbatch (no array), which is what one sbatch per job costs.
# Every cm row is `cm-exec --engine slurm`, as a user runs it.
#
#   bash bench/slurm.sh          N=200 L=10 (override: N=500 L=5 bash bench/slurm.sh)
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$REPO/node_modules/.bin:$PATH"
N=${N:-200}
L=${L:-10}

lab=$("$REPO/test/helpers/slurm-lab.sh" start 3) || exit 4
eval "$lab"
export SLURM_CONF
work=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench-slurm.XXXXXX")
export HOME=$work/home
mkdir -p "$HOME"
cleanup() {
  "$REPO/test/helpers/slurm-lab.sh" stop
  rm -rf "$work"
}
trap cleanup EXIT
[[ -f $REPO/tools/cm-exec/dist/main.cjs ]] || node "$REPO/scripts/build.mjs" cm-exec || exit 70
# slurm MODE RUN: cm-exec on the cluster, jobs on stdin, events on stdout
slurm() { cm-exec -q --engine slurm --slurm-mode "$1" --run "$2"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# waits until none of the given Slurm job ids is pending, running or completing
wait_queue() {
  while [[ -n $(squeue -h -t PD,R,CG,CF -j "$1" -o %i 2>/dev/null) ]]; do sleep 0.1; done
}
check_events() { # FILE EXPECTED
  local ok
  ok=$(grep -c '"event":"finished".*"exit":0' "$1")
  [[ $ok == "$2" ]] || echo "bench: $1: $ok of $2 jobs finished ok" >&2
}

node -e 'for (let i = 1; i <= +process.argv[1]; i++) console.log(JSON.stringify({kind: "job", v: 1, id: `e${i}`, task: "e", command: `echo ${i}`, deps: []}))' "$N" >"$work/tiny.ndjson"
node -e 'for (let i = 1; i <= +process.argv[1]; i++) console.log(JSON.stringify({kind: "job", v: 1, id: `c${i}`, task: "c", command: `echo ${i}`, deps: i > 1 ? [`c${i - 1}`] : []}))' "$L" >"$work/chain.ndjson"

declare -A T
order=()
measure() { # NAME COMMAND...
  local s
  s=$(now)
  "${@:2}"
  T[$1]=$(elapsed "$s")
  order+=("$1")
}

cm_steps() { slurm steps steps <"$work/tiny.ndjson" >"$work/out.steps"; }
cm_workers() { slurm workers workers <"$work/tiny.ndjson" >"$work/out.workers"; }
cm_arrays() { slurm jobs arrays <"$work/tiny.ndjson" >"$work/out.arrays"; }
raw_steps() {
  salloc --no-shell -N 1-3 --exclusive -J bench-raw >/dev/null 2>&1
  local a
  a=$(squeue -h -n bench-raw -o %i | head -1)
  seq "$N" | xargs -P6 -I{} srun --jobid="$a" --exclusive -n1 -N1 -c1 --quiet echo {} >"$work/out.raw-steps"
  scancel "$a"
}
raw_sbatch() {
  local ids=() i
  for i in $(seq "$N"); do ids+=("$(sbatch --parsable -o /dev/null --wrap "echo $i")"); done
  wait_queue "$(
    IFS=,
    echo "${ids[*]}"
  )"
}
raw_array() {
  local id
  id=$(sbatch --parsable -o /dev/null --array=1-"$N" --wrap 'echo $SLURM_ARRAY_TASK_ID')
  wait_queue "$id"
}
cm_exec_local() { env -u CM_INVENTORY cm-exec -q <"$work/tiny.ndjson" >"$work/out.local"; }
chain_steps() { slurm steps chain-steps <"$work/chain.ndjson" >"$work/out.chain-steps"; }
chain_workers() { slurm workers chain-workers <"$work/chain.ndjson" >"$work/out.chain-workers"; }
chain_jobs() { slurm jobs chain-jobs <"$work/chain.ndjson" >"$work/out.chain-jobs"; }

# warm-up: page cache, munge credentials, node daemons awake
echo '{"kind":"job","v":1,"id":"w","task":"w","command":"true","deps":[]}' | slurm steps warm >/dev/null

measure "cm steps" cm_steps
check_events "$work/out.steps" "$N"
measure "raw srun steps" raw_steps
measure "cm workers" cm_workers
check_events "$work/out.workers" "$N"
measure "cm jobs+arrays" cm_arrays
check_events "$work/out.arrays" "$N"
measure "raw array" raw_array
measure "raw sbatch" raw_sbatch
if [[ -f $REPO/tools/cm-exec/dist/main.cjs ]]; then
  # in $work: no ./cm.yaml, and HOME is scratch, so cm-exec uses its embedded localhost inventory
  s=$(now)
  (cd "$work" && cm_exec_local)
  T[cm-exec localhost]=$(elapsed "$s")
  order+=("cm-exec localhost")
  check_events "$work/out.local" "$N"
fi
measure "chain cm steps" chain_steps
check_events "$work/out.chain-steps" "$L"
measure "chain cm workers" chain_workers
check_events "$work/out.chain-workers" "$L"
measure "chain cm jobs" chain_jobs
check_events "$work/out.chain-jobs" "$L"

printf '\n%d tiny jobs on 3 Slurm nodes x 2 CPUs (%s cores here)\n' "$N" "$(nproc)"
printf '%-20s %9s %9s %s\n' what seconds jobs/s "vs raw"
for k in "${order[@]}"; do
  [[ $k == chain* ]] && continue
  peer=
  case $k in
  "cm steps" | "cm workers") peer="raw srun steps" ;;
  "cm jobs+arrays") peer="raw array" ;;
  esac
  ratio=
  [[ -n $peer ]] && ratio=$(awk -v a="${T[$k]}" -v b="${T[$peer]}" 'BEGIN { printf "%.2fx the time of %s", a / b, "'"$peer"'" }')
  printf '%-20s %9s %9s %s\n' "$k" "${T[$k]}" "$(awk -v n="$N" -v t="${T[$k]}" 'BEGIN { printf "%.1f", n / t }')" "$ratio"
done
printf '\na chain of %d dependent jobs\n' "$L"
for k in "chain cm steps" "chain cm workers" "chain cm jobs"; do
  printf '%-20s %9s s  %s s per link\n' "$k" "${T[$k]}" "$(awk -v l="$L" -v t="${T[$k]}" 'BEGIN { printf "%.2f", t / l }')"
done
