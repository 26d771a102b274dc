#!/usr/bin/env bash
# Transport benchmark: N tiny jobs on K test hosts x S slots, in one run, through
#   persistent   the persistent ssh-session transport (libs/exec/src/transport/persistent.ts), with
#                the perl loop the hosts here have
#   persistent-sh  the same transport forced onto its POSIX sh loop (hosts without perl)
#   persistent-mux the persistent transport over the pre-opened masters the xargs floor uses, as
#                cm-exec runs with --keep-connections: no key exchange in the timed part, like the floor
#   per-job      the one-ssh-per-job transport (libs/exec/src/transport/ssh.ts), when it exists
#   parallel     GNU parallel -M (its own ControlMaster connections)
#   xargs        xargs -P K*S, one `ssh` per job over pre-opened ControlMaster connections (the floor)
# and prints wall time, jobs/s, CPU per job and ratios against the xargs floor.
#
# CPU is the whole machine's (/proc/stat: user, nice, system, irq and softirq time of every CPU), so
# it includes whatever else runs: the processes of a transport are spread over the bench shell,
# ssh masters, sshd connections and their sessions, and this counts them all. Run it on a quiet
# machine. Each contender runs REPEAT times (default 3), in rounds, and the table shows the
# median run; GNU parallel runs once, after the rounds (3 minutes a run here).
#
#   bench/transport.sh [JOBS [HOSTS [SLOTS]]]     default 2000 4 4
#   BENCH_ONLY="persistent xargs" bench/transport.sh   only these contenders (xargs, the floor, always runs)
#   REPEAT=5 bench/transport.sh                       rounds (the median is shown, every run is listed)
#   bench/transport.sh --driver OUT.cjs           only build the node driver (used by the bats test)
#
# The driver reads job lines {"id","command","host"?,"timeout"?,"maxOutput"?,"env"?} on stdin and
# writes one outcome line per job; `driver.cjs persistent|ssh CONFIG HOST... [-- SLOTS]`.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

build_driver() {
  local out=$1 src ssh_import="const perJobModule: any = undefined;"
  src=$(mktemp -d)/driver.ts
  if [[ -f $REPO/libs/exec/src/transport/ssh.ts ]]; then
    ssh_import="import * as perJob from '$REPO/libs/exec/src/transport/ssh';
const perJobModule: any = perJob;"
  fi
  cat >"$src" <<EOF
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { PersistentTransport } from '$REPO/libs/exec/src/transport/persistent';
$ssh_import
EOF
  cat >>"$src" <<'EOF'
const [kind, configFile, ...rest] = process.argv.slice(2);
const dash = rest.indexOf('--');
const names = dash >= 0 ? rest.slice(0, dash) : rest;
const slots = dash >= 0 ? Number(rest[dash + 1]) : 4;
const ssh = { configFile, connectTimeout: 10, controlDir: process.env.CM_BENCH_CONTROL_DIR };
function makeTransport(): any {
  if (kind === 'persistent') return new PersistentTransport({ ssh, loop: process.env.CM_REMOTE_LOOP === 'sh' ? 'sh' : 'auto' });
  if (kind === 'ssh' && perJobModule?.SshTransport) {
    return new perJobModule.SshTransport(ssh);
  }
  throw new Error(`no transport ${kind}`);
}
const t = makeTransport();
// ssh resolves the names through the test hosts' ssh_config
const hosts = names.map((name) => ({ kind: 'host', v: 1, name, address: name, tags: [], slots }) as const);
const queue: any[] = [];
const pinned = new Map<string, any[]>(names.map((n) => [n, []]));
const never = new AbortController().signal;
const sum = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function worker(host: (typeof hosts)[number]): Promise<void> {
  for (;;) {
    const j = pinned.get(host.name)?.shift() ?? queue.shift();
    if (!j) return;
    const o = await t.run(
      host as any,
      {
        id: j.id,
        command: j.command,
        env: { CM_JOB: j.id, ...(j.env ?? {}) },
        workdir: j.workdir ?? `.cm/runs/bench/${j.id}`,
        timeout: j.timeout,
        maxOutput: j.maxOutput ?? 65536,
        logBase: `${process.env.CM_DRIVER_LOGS ?? '/tmp'}/${j.id}`,
      },
      never,
    );
    const text = (b: Buffer) => (b.length <= 4096 ? b.toString('utf8') : undefined);
    process.stdout.write(
      `${JSON.stringify({
        id: j.id,
        host: host.name,
        ran: o.ran,
        exit: o.exit,
        signal: o.signal,
        reason: o.reason,
        timedOut: o.timedOut,
        stdout: text(o.stdout),
        stderr: text(o.stderr),
        stdoutBytes: o.stdoutBytes,
        stderrBytes: o.stderrBytes,
        stdoutSha256: sum(o.stdout),
        truncated: o.truncated,
        log: o.log,
      })}\n`,
    );
  }
}
(async () => {
  setMaxListenersSafe();
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const j = JSON.parse(line);
    (j.host ? (pinned.get(j.host) ?? queue) : queue).push(j);
  }
  await Promise.all(hosts.flatMap((h) => Array.from({ length: slots }, () => worker(h))));
  await t.close();
})();
function setMaxListenersSafe() {
  // every job shares one abort signal here
  require('node:events').setMaxListeners(Infinity, never);
}
EOF
  (cd "$REPO" && node_modules/.bin/esbuild "$src" --bundle --platform=node --format=cjs --log-level=warning --loader:.sh=text --loader:.pl=text --outfile="$out")
  rm -rf "$(dirname "$src")"
}

if [[ ${1:-} == --driver ]]; then
  build_driver "${2:?--driver OUT.cjs}"
  exit 0
fi

JOBS=${1:-2000} K=${2:-4} SLOTS=${3:-4}
P=$((K * SLOTS))
# shellcheck source=../test/helpers/hosts.bash
source "$REPO/test/helpers/hosts.bash"
export CM_TEST_HOSTS_DIR=${CM_TEST_HOSTS_DIR:-$(mktemp -d /tmp/cm-bench-transport.XXXXXX)}
# a port of its own: bats runs on this machine hold port 22 of the 127.0.1x blocks
export CM_TEST_HOSTS_PORT=${CM_TEST_HOSTS_PORT:-2291}
WORK=$CM_TEST_HOSTS_DIR/bench
mkdir -p "$WORK"
MASTERS=()
cleanup() {
  local p
  for p in "${MASTERS[@]}"; do kill "$p" 2>/dev/null || true; done
  cm_hosts_stop || true
  echo "bench/transport.sh: outputs and stderr of each contender in $WORK" >&2
}
trap cleanup EXIT

cm_hosts_start "$K" "$SLOTS" >&2
CFG=$CM_TEST_SSH_CONFIG
NAMES=()
for ((i = 1; i <= K; i++)); do NAMES+=("th$i"); done
build_driver "$WORK/driver.cjs"

HZ=$(getconf CLK_TCK)
# ticks of the whole machine: user nice system (idle iowait) irq softirq
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# one line per job: the command every contender runs
seq 1 "$JOBS" >"$WORK/ids"
awk -v k="$K" '{ printf "{\"id\":\"b%d\",\"command\":\"echo $CM_JOB\",\"host\":\"th%d\"}\n", $1, ($1 - 1) % k + 1 }' \
  "$WORK/ids" >"$WORK/jobs.ndjson"
awk -v k="$K" '{ printf "th%d b%d\n", ($1 - 1) % k + 1, $1 }' "$WORK/ids" >"$WORK/pairs"

# every run of each contender, as space-separated lists; the table shows the median run
declare -A WALLS CPUS OKS
measure() { # name, then the command
  local name=$1 t0 m0 t1 m1 out
  shift
  sleep 0.5
  m0=$(machine_ticks)
  t0=$(date +%s%N)
  out=$("$@" 3>&-) || true
  t1=$(date +%s%N)
  m1=$(machine_ticks)
  WALLS[$name]+="$(((t1 - t0) / 1000000)) "
  CPUS[$name]+="$((m1 - m0)) "
  OKS[$name]+="$out "
}
# the median run of a contender: wall cpu ok (the run whose wall time is the median)
median_run() {
  awk -v w="${WALLS[$1]}" -v c="${CPUS[$1]}" -v o="${OKS[$1]}" 'BEGIN {
    n = split(w, W, " "); split(c, C, " "); split(o, O, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (W[j] < W[i]) {
      t = W[i]; W[i] = W[j]; W[j] = t; t = C[i]; C[i] = C[j]; C[j] = t; t = O[i]; O[i] = O[j]; O[j] = t
    }
    m = int((n + 1) / 2); print W[m], C[m], O[m]
  }'
}

# each writes its output to a file (helpers a tool leaves behind must not hold a pipe open), then
# prints how many jobs succeeded
# run_persistent NAME LOOP: the persistent transport with the host loop LOOP (auto: perl here, or sh)
# CM_BENCH_CONTROL_DIR=DIR: its sessions go through the masters in DIR
run_persistent() {
  CM_REMOTE_LOOP=$2 node "$WORK/driver.cjs" persistent "$CFG" "${NAMES[@]}" -- "$SLOTS" <"$WORK/jobs.ndjson" \
    >"$WORK/out.$1" 2>"$WORK/err.$1"
  grep -c '"exit":0,' "$WORK/out.$1"
}
run_perjob() {
  node "$WORK/driver.cjs" ssh "$CFG" "${NAMES[@]}" -- "$SLOTS" <"$WORK/jobs.ndjson" >"$WORK/out.per-job" 2>"$WORK/err.per-job"
  grep -c '"exit":0,' "$WORK/out.per-job"
}
run_parallel() {
  local s=() n
  for n in "${NAMES[@]}"; do s+=(-S "$SLOTS/$n"); done
  # the job list on stdin, as bench/exec.sh does: with `::::` and stdin from /dev/null, parallel -M
  # printed 4 of 2,000 outputs here and left its workers running
  parallel --will-cite -M --ssh "ssh -F $CFG" "${s[@]}" 'echo {}' <"$WORK/ids" \
    >"$WORK/out.parallel" 2>"$WORK/err.parallel"
  grep -c . "$WORK/out.parallel"
}
run_xargs() {
  xargs -P "$P" -n 2 sh -c 'ssh -F "$0" -o ControlMaster=no -o ControlPath="$1/%C" "$2" "echo $3"' "$CFG" "$WORK/ctl" \
    <"$WORK/pairs" >"$WORK/out.xargs" 2>"$WORK/err.xargs"
  grep -c . "$WORK/out.xargs"
}

mkdir -p "$WORK/ctl"
for n in "${NAMES[@]}"; do
  ssh -F "$CFG" -o ControlMaster=yes -o ControlPath="$WORK/ctl/%C" -o ControlPersist=no -N "$n" &
  MASTERS+=($!)
done
for n in "${NAMES[@]}"; do
  for _ in $(seq 50); do ssh -F "$CFG" -o ControlPath="$WORK/ctl/%C" -O check "$n" 2>/dev/null && break; sleep 0.1; done
done

wanted() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }
for ((round = 1; round <= ${REPEAT:-3}; round++)); do
  measure xargs run_xargs
  if wanted persistent; then measure persistent run_persistent persistent auto; fi
  if wanted persistent-sh; then measure persistent-sh run_persistent persistent-sh sh; fi
  if wanted persistent-mux; then CM_BENCH_CONTROL_DIR=$WORK/ctl measure persistent-mux run_persistent persistent-mux auto; fi
  if wanted per-job && [[ -f $REPO/libs/exec/src/transport/ssh.ts ]]; then measure per-job run_perjob; fi
done
# last, once: it loads the machine for a while after it ends
if wanted parallel; then measure parallel run_parallel; fi

read -r floor _ < <(median_run xargs)
printf '%s jobs (echo $CM_JOB) on %s hosts x %s slots, %s CPUs, load %s; median of %s runs\n' "$JOBS" "$K" "$SLOTS" \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "${REPEAT:-3}"
printf '%-14s %9s %9s %8s %15s %16s   %s\n' transport wall_ms jobs/s ok 'cpu_ms/job (all)' 'x faster/xargs' 'every run: wall_ms'
for name in persistent persistent-sh persistent-mux per-job parallel xargs; do
  [[ -n ${WALLS[$name]:-} ]] || { printf '%-14s %9s\n' "$name" 'not run'; continue; }
  read -r wall cpu ok < <(median_run "$name")
  awk -v n="$name" -v w="$wall" -v c="$cpu" -v ok="$ok" -v j="$JOBS" -v hz="$HZ" -v f="$floor" -v all="${WALLS[$name]}" \
    'BEGIN { printf "%-14s %9d %9.0f %8s %15.2f %16.2f   %s\n", n, w, j * 1000 / w, ok, c * 1000 / hz / j, f / w, all }'
done
