#!/usr/bin/env bash
# Transport benchmark: N tiny jobs on K test hosts x S slots, in one run, through
#   persistent     the persistent ssh-session transport (libs/exec/src/transport/persistent.ts), with
#                  the loop it picks on these hosts (perl)
#   persistent-sh  the same transport forced onto its POSIX sh loop (hosts without perl)
#   persistent-mux the persistent transport over the pre-opened masters the floor uses, as cm-exec
#                  runs with --keep-connections: no key exchange in the timed part, like the floor
#   per-job        the one-ssh-per-job transport (libs/exec/src/transport/ssh.ts), when it exists
# against, in the same rounds (bench/common.bash):
#   fork-limit     the same N commands as subshells of one local dash, no exec per job
#   floor          xargs -P K*S, one `ssh HOST echo I` per job over pre-opened ControlMaster connections
#   parallel-M     GNU parallel -M (its own ControlMaster connections), once, after the rounds, on
#                  up to 400 jobs
# and prints, for the median run of each (by wall time), wall time, jobs/s, CPU per job split between
# the hosts (every process under the test sshds), the controller (the driver or peer and the ssh
# masters it uses) and the machine (/proc/stat, so other load shows as "other"), and the ratios: x
# faster than the floor, host CPU x the fork limit's. Each contender runs REPEAT times (default 3),
# in rounds; the table lists every run's wall time. Run it on a quiet machine.
#
#   bench/transport.sh [JOBS [HOSTS [SLOTS]]]     default 2000 4 4
#   BENCH_ONLY="persistent" bench/transport.sh    only these cm contenders (the peers always run)
#   REPEAT=5 bench/transport.sh                   rounds (the median is shown, every run is listed)
#   PARALLEL_N=2000 bench/transport.sh            GNU parallel on more jobs (default: JOBS up to 400;
#   SKIP_PARALLEL=1                               its ratios are per job), or not at all
#   bench/transport.sh --driver OUT.cjs           only build the node driver (used by the bats test)
#
# The driver reads job lines {"id","command","host"?,"timeout"?,"maxOutput"?,"env"?,"removeWorkdir"?} on stdin and
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
        removeWorkdir: j.removeWorkdir === true,
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

N=${1:-2000} K=${2:-4} SLOTS=${3:-4}
# shellcheck source=../test/helpers/hosts.bash
source "$REPO/test/helpers/hosts.bash"
export CM_TEST_HOSTS_DIR=${CM_TEST_HOSTS_DIR:-$(mktemp -d /tmp/cm-bench-transport.XXXXXX)}
# a port of its own: bats runs on this machine hold port 22 of the 127.0.1x blocks
export CM_TEST_HOSTS_PORT=${CM_TEST_HOSTS_PORT:-2291}
WORK=$CM_TEST_HOSTS_DIR/bench
mkdir -p "$WORK"
cleanup() {
  bench_close_masters
  cm_hosts_stop || true
  echo "bench/transport.sh: outputs and stderr of each contender in $WORK" >&2
}
trap cleanup EXIT

cm_hosts_start "$K" "$SLOTS" >&2
CFG=$CM_TEST_SSH_CONFIG
NAMES=$(seq -f 'th%g' 1 "$K" | tr '\n' ' ')
# shellcheck source=common.bash
source "$REPO/bench/common.bash"
build_driver "$WORK/driver.cjs"

# the cm contenders: the same jobs, pinned to the hosts in turn as the floor's
# removeWorkdir: as cm-exec sends it for a job with no outputs, so each job's folder goes at its end
seq 1 "$N" | awk -v k="$K" '{ printf "{\"id\":\"b%d\",\"command\":\"echo $CM_JOB\",\"host\":\"th%d\",\"removeWorkdir\":true}\n", $1, ($1 - 1) % k + 1 }' \
  >"$WORK/jobs.ndjson"
bench_inputs
bench_open_masters

# run_persistent NAME LOOP: the persistent transport with the host loop LOOP (auto: perl here, or sh);
# CM_BENCH_CONTROL_DIR=DIR: its sessions go through the masters in DIR. Each writes its output to a
# file (helpers a tool leaves behind must not hold a pipe open), then prints how many jobs succeeded.
run_persistent() {
  # shellcheck disable=SC2086
  CM_REMOTE_LOOP=$2 node "$WORK/driver.cjs" persistent "$CFG" $NAMES -- "$SLOTS" <"$WORK/jobs.ndjson" \
    >"$WORK/out.$1" 2>"$WORK/err.$1"
  kept_if_short "$1"
}
# kept_if_short NAME: prints how many jobs of the run succeeded; a run with fewer than N keeps its
# outputs (the next run would overwrite them) under $WORK/short/
kept_if_short() {
  local ok
  ok=$(grep -c '"exit":0,' "$WORK/out.$1")
  if ((ok != N)); then
    mkdir -p "$WORK/short"
    cp "$WORK/out.$1" "$WORK/short/out.$1.$(date +%s%N)"
    cp "$WORK/err.$1" "$WORK/short/err.$1.$(date +%s%N)"
    echo "bench: $1: a run with $ok of $N jobs ok; its outputs are in $WORK/short" >&2
  fi
  echo "$ok"
}
run_perjob() {
  # shellcheck disable=SC2086
  node "$WORK/driver.cjs" ssh "$CFG" $NAMES -- "$SLOTS" <"$WORK/jobs.ndjson" >"$WORK/out.per-job" 2>"$WORK/err.per-job"
  kept_if_short per-job
}
export -f run_persistent run_perjob kept_if_short

wanted() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }
cms=()
for name in persistent persistent-sh persistent-mux per-job; do
  wanted "$name" || continue
  [[ $name == per-job && ! -f $REPO/libs/exec/src/transport/ssh.ts ]] && continue
  cms+=("$name")
done
for ((round = 1; round <= ${REPEAT:-3}; round++)); do
  bench_measure fork-limit fork_limit
  bench_measure floor floor
  for name in "${cms[@]}"; do
    case $name in
      persistent) bench_measure persistent run_persistent persistent auto ;;
      persistent-sh) bench_measure persistent-sh run_persistent persistent-sh sh ;;
      persistent-mux) CM_BENCH_CONTROL_DIR=$WORK/ctl bench_measure persistent-mux run_persistent persistent-mux auto ;;
      per-job) bench_measure per-job run_perjob ;;
    esac
  done
done
# last, once: it loads the machine for a while after it ends
peers=()
if [[ -z ${SKIP_PARALLEL:-} ]]; then
  BENCH_JOBS=$PARALLEL_N bench_measure parallel-M parallel_m
  peers=(parallel-M)
fi
for name in fork-limit floor "${cms[@]}"; do bench_check "$name" "$N"; done
[[ -z ${SKIP_PARALLEL:-} ]] && bench_check parallel-M "$PARALLEL_N"

printf '%s jobs (echo I) on %s hosts x %s slots, %s CPUs, load %s; median of %s runs; fork limit: dash subshells\n' \
  "$N" "$K" "$SLOTS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "${REPEAT:-3}"
bench_table floor fork-limit "${peers[@]}" "${cms[@]}"
