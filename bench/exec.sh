#!/usr/bin/env bash
# cm-exec against its peers, in one run, on 4 real sshd test hosts x 4 slots:
#   N tiny jobs (echo $i): cm-exec per transport, GNU parallel -M, and the floor for one ssh client
#   per job (xargs -P16 over pre-opened multiplexed connections); then 64 x sleep 0.5 on 16 slots
#   against the ideal 2.0 s, from a cold start and with the masters a previous run kept
#   (--keep-connections). Prints seconds and ratios in one table. The sleep runs are repeated
#   (SLEEP_REPEAT, default 5) and show the median; beside the wall time of the whole command, the
#   makespan (first job start to last job end, from the events) shows what the scheduler adds.
#
#   bash bench/exec.sh            N=2000 (override: N=400 bash bench/exec.sh)
#   SKIP_PARALLEL=1               leave GNU parallel out (it is the slowest by far)
#   SLEEP_JOBS=16                 the sleep test with fewer jobs (default 64; ideal = rounds of 16 x 0.5 s)
#   TRANSPORTS=ssh                only these cm-exec transports (default: ssh persistent)
#   CM_TEST_HOSTS_PORT=2299       if port 22 on 127.0.1x.* is busy on this machine
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$REPO/node_modules/.bin:$PATH"
N=${N:-2000}

CM_TEST_HOSTS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench-exec.XXXXXX")
export CM_TEST_HOSTS_DIR
# shellcheck source=../test/helpers/hosts.bash
source "$REPO/test/helpers/hosts.bash"
work=$CM_TEST_HOSTS_DIR/work
mkdir -p "$work"
cleanup() {
  for h in th1 th2 th3 th4; do ssh -F "$CM_TEST_SSH_CONFIG" -o ControlPath="$work/cm-%h" -O exit "$h" 2>/dev/null; done
  # the masters the --keep-connections runs left up (cm's shared folder is under HOME)
  for s in "$work"/home/.cm/ssh/*; do [[ -S $s ]] && ssh -S "$s" -O exit cm 2>/dev/null; done
  cm_hosts_stop
  rm -rf "$CM_TEST_HOSTS_DIR"
}
trap cleanup EXIT
cm_hosts_start 4 4 || exit 4

now() { date +%s.%N; }
# seconds since $1; each figure is also shown on stderr as soon as it is measured
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }' | tee /dev/stderr; echo " s" >&2; }

node -e 'for (let i = 1; i <= +process.argv[1]; i++) console.log(JSON.stringify({kind: "job", v: 1, id: `e${i}`, task: "e", command: `echo ${i}`, deps: []}))' "$N" >"$work/tiny.ndjson"
S=${SLEEP_JOBS:-64}
# the ideal makespan: rounds of 16 slots x 0.5 s
IDEAL=$(awk -v s="$S" 'BEGIN { printf "%.2f", int((s + 15) / 16) * 0.5 }')
node -e 'for (let i = 1; i <= +process.argv[1]; i++) console.log(JSON.stringify({kind: "job", v: 1, id: `s${i}`, task: "s", command: "sleep 0.5", deps: []}))' "$S" >"$work/sleep.ndjson"

declare -A T
check_events() { # FILE EXPECTED: every job finished with exit 0
  local ok
  ok=$(grep -c '"event":"finished".*"exit":0' "$1")
  [[ $ok == "$2" ]] || echo "bench: $1: $ok of $2 jobs finished ok" >&2
}

transports=(${TRANSPORTS:-ssh persistent})

# warm-up: host keys accepted, page cache hot
cm-exec -q --run warm <<<'{"kind":"job","v":1,"id":"w","task":"w","command":"true","deps":[]}' >/dev/null

for t in "${transports[@]}"; do
  s=$(now)
  cm-exec -q --transport "$t" --logs "$work/logs" <"$work/tiny.ndjson" >"$work/out.$t"
  T[cm-exec-$t]=$(elapsed "$s")
  check_events "$work/out.$t" "$N"
done

if [[ -z ${SKIP_PARALLEL:-} ]] && command -v parallel >/dev/null; then
  s=$(now)
  seq "$N" | parallel -M --ssh "ssh -F $CM_TEST_SSH_CONFIG" -S 4/th1,4/th2,4/th3,4/th4 echo {} >"$work/out.parallel" 2>/dev/null
  T[parallel-M]=$(elapsed "$s")
  [[ $(wc -l <"$work/out.parallel") == "$N" ]] || echo "bench: parallel printed $(wc -l <"$work/out.parallel") of $N lines" >&2
fi

for h in th1 th2 th3 th4; do
  ssh -F "$CM_TEST_SSH_CONFIG" -o ControlMaster=yes -o ControlPath="$work/cm-%h" -o ControlPersist=120 -fN "$h"
done
s=$(now)
seq "$N" | awk '{ print "th" (NR % 4 + 1), "echo", $1 }' |
  xargs -P16 -L1 ssh -F "$CM_TEST_SSH_CONFIG" -o ControlMaster=no -o ControlPath="$work/cm-%h" >"$work/out.xargs"
T[xargs-floor]=$(elapsed "$s")
[[ $(wc -l <"$work/out.xargs") == "$N" ]] || echo "bench: xargs printed $(wc -l <"$work/out.xargs") of $N lines" >&2

# seconds from the first job's start to the last job's end, from the finished events of FILE
makespan() {
  node -e 'const e = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse).filter((r) => r.event === "finished");
    console.log(((Math.max(...e.map((r) => Date.parse(r.end))) - Math.min(...e.map((r) => Date.parse(r.start)))) / 1000).toFixed(2))' "$1"
}
# the median of the numbers in $@
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# sleep_runs KEY CMD...: SLEEP_REPEAT timed runs of the $S sleep jobs; T[KEY] the median wall time,
# T[KEY-span] the median makespan, T[KEY-all] every wall time
sleep_runs() {
  local key=$1 r s walls=() spans=()
  shift
  for ((r = 1; r <= ${SLEEP_REPEAT:-5}; r++)); do
    s=$(now)
    "$@" --logs "$work/logs" <"$work/sleep.ndjson" >"$work/$key.$r"
    walls+=("$(elapsed "$s")")
    spans+=("$(makespan "$work/$key.$r")")
    check_events "$work/$key.$r" "$S"
  done
  T[$key]=$(median "${walls[@]}")
  T[$key-span]=$(median "${spans[@]}")
  T[$key-all]=${walls[*]}
}

for t in "${transports[@]}"; do
  sleep_runs "sleep-$t" cm-exec -q --transport "$t"
  # warm: a first run leaves the masters up in $HOME/.cm/ssh, the timed runs reuse them
  HOME=$work/home cm-exec -q --keep-connections 60 --transport "$t" --run "keep-$t" <<<'{"kind":"job","v":1,"id":"w","task":"w","command":"true","deps":[]}' >/dev/null
  HOME=$work/home sleep_runs "sleep-warm-$t" cm-exec -q --keep-connections 60 --transport "$t"
done

if [[ -z ${SKIP_PARALLEL:-} ]] && command -v parallel >/dev/null; then
  s=$(now)
  seq "$S" | parallel -M --ssh "ssh -F $CM_TEST_SSH_CONFIG" -S 4/th1,4/th2,4/th3,4/th4 'sleep 0.5; echo {}' >"$work/sleep.parallel" 2>/dev/null
  T[sleep-parallel-M]=$(elapsed "$s")
fi

floor=${T[xargs-floor]}
echo
printf '%-34s %9s  %s\n' "run ($N tiny jobs, 4 hosts x 4 slots)" seconds ratio
for t in "${transports[@]}"; do
  printf '%-34s %9s  %s\n' "cm-exec --transport $t" "${T[cm-exec-$t]}" \
    "$(awk -v a="${T[cm-exec-$t]}" -v f="$floor" -v p="${T[parallel-M]:-0}" 'BEGIN { printf "%.2fx the xargs floor", a / f; if (p > 0) printf ", parallel -M %.1fx slower", p / a }')"
done
[[ -n ${T[parallel-M]:-} ]] && printf '%-34s %9s  %s\n' "GNU parallel -M" "${T[parallel-M]}" "$(awk -v a="${T[parallel-M]}" -v f="$floor" 'BEGIN { printf "%.2fx the xargs floor", a / f }')"
printf '%-34s %9s  %s\n' "xargs -P16 ssh (pre-opened masters)" "$floor" "1.00x (floor)"
echo
printf '%-34s %9s  %-22s %s\n' "$S x sleep 0.5 on 16 slots" seconds "ratio to ideal $IDEAL s" \
  "makespan (ratio); every run, s (median of ${SLEEP_REPEAT:-5})"
for t in "${transports[@]}"; do
  for k in "sleep-$t" "sleep-warm-$t"; do
    label="cm-exec --transport $t"
    [[ $k == sleep-warm-* ]] && label="  same, masters kept from a run"
    printf '%-34s %9s  %-22s %s\n' "$label" "${T[$k]}" "$(awk -v a="${T[$k]}" -v i="$IDEAL" 'BEGIN { printf "%.2fx", a / i }')" \
      "$(awk -v a="${T[$k-span]}" -v i="$IDEAL" 'BEGIN { printf "%.2f (%.2fx)", a, a / i }'); ${T[$k-all]}"
  done
done
if [[ -n ${T[sleep-parallel-M]:-} ]]; then
  printf '%-34s %9s  %s\n' "GNU parallel -M" "${T[sleep-parallel-M]}" "$(awk -v a="${T[sleep-parallel-M]}" -v i="$IDEAL" 'BEGIN { printf "%.2fx", a / i }')"
fi
