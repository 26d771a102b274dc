#!/usr/bin/env bash
# Report benchmark: cm-report rendering a synthetic but realistic run of N jobs (default 100,000) on
# HOSTS hosts x SLOTS slots (default 50 x 8): sweep jobs with params and durations of a few seconds to
# minutes, 1% failed, 0.5% retried, a timeout, a host going down, a final job after them all. Measured:
# cm-report's wall time, the page's size, and, in Debian's headless chromium (RUNS loads, default 5,
# median), the time from navigation to the timeline painted and to the first contentful paint, against
# the limits (3 MB, 2 s).
#
#   bench/report.sh [N]        HOSTS=50 SLOTS=8 RUNS=5 CM_CHROMIUM=/usr/bin/chromium
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-100000}
HOSTS=${HOSTS:-50}
SLOTS=${SLOTS:-8}
RUNS=${RUNS:-5}
REPORT=$REPO/node_modules/.bin/cm-report
[[ -f $REPO/tools/cm-report/dist/main.cjs ]] || node "$REPO/scripts/build.mjs" cm-report
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[[ -n ${KEEP_EVENTS:-} ]] && trap 'cp "$tmp/events.ndjson" "$KEEP_EVENTS"; rm -rf "$tmp"' EXIT

node - "$N" "$HOSTS" "$SLOTS" >"$tmp/events.ndjson" <<'JS'
const [n, hosts, slots] = process.argv.slice(2).map(Number);
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const out = [];
const w = (r) => out.push(JSON.stringify(r));
const t0 = Date.parse('2026-01-05T09:00:00Z');
for (let h = 0; h < hosts; h++) w({ kind: 'host', v: 1, name: `node${String(h + 1).padStart(2, '0')}`, address: `10.0.${h >> 8}.${h & 255}`, tags: [], slots });
const lanes = Array.from({ length: hosts * slots }, () => t0 + rnd() * 2000);
const sizes = [1000, 2000, 4000, 8000, 16000];
const down = Math.floor(hosts / 2);
for (let i = 0; i < n - 1; i++) {
  let l = 0;
  for (let k = 1; k < lanes.length; k++) if (lanes[k] < lanes[l]) l = k;
  const h = Math.floor(l / slots);
  const host = `node${String(h + 1).padStart(2, '0')}`;
  const size = sizes[i % sizes.length];
  const params = { size: String(size), rep: String(Math.floor(i / sizes.length)) };
  const id = `bench.${i}`;
  w({ kind: 'event', v: 1, event: 'queued', job: id, task: 'bench', run: 'bench-run' });
  w({ kind: 'event', v: 1, event: 'started', job: id, task: 'bench', run: 'bench-run', host, attempt: 1, transport: 'persistent', running: 1 + (l % slots) });
  let start = lanes[l];
  let attempt = 1;
  if (rnd() < 0.005) {
    start += 500 + rnd() * 2000;
    w({ kind: 'event', v: 1, event: 'retry', job: id, task: 'bench', run: 'bench-run', host, attempt: 1, exit: 255, reason: 'connection failed: reset' });
    attempt = 2;
    w({ kind: 'event', v: 1, event: 'started', job: id, task: 'bench', run: 'bench-run', host, attempt: 2, transport: 'persistent', running: 1 });
  }
  const dur = (size / 1000) * (2000 + rnd() * 3000) * (h === down ? 1.8 : 1);
  const end = start + dur;
  lanes[l] = end + 5 + rnd() * 50;
  const failed = rnd() < 0.01;
  const base = { kind: 'event', v: 1, job: id, task: 'bench', run: 'bench-run', host, attempt, transport: 'persistent', start: new Date(start).toISOString(), end: new Date(end).toISOString(), duration: Math.round(dur) / 1000 };
  if (i === 7) w({ ...base, event: 'gave-up', exit: null, signal: 'SIGTERM', reason: 'timeout after 60 s', params });
  else w({ ...base, event: 'finished', exit: failed ? 1 : 0, signal: null, stdout: failed ? '' : `${(size * (1 + rnd() / 10)).toFixed(1)}\n`, stderr: failed ? 'error\n' : '', stdout_bytes: 8, stderr_bytes: failed ? 6 : 0, truncated: false, workdir: `.cm/runs/bench-run/${id}`, sweep: 'bench', index: i, params });
  if (i === Math.floor(n / 2)) w({ kind: 'event', v: 1, event: 'host-down', host: `node${String(down + 1).padStart(2, '0')}`, reason: 'connection refused' });
}
const last = Math.max(...lanes);
w({ kind: 'event', v: 1, event: 'queued', job: 'summary', task: 'summary', run: 'bench-run', deps: ['bench.0', 'bench.1'] });
w({ kind: 'event', v: 1, event: 'finished', job: 'summary', task: 'summary', run: 'bench-run', host: 'node01', attempt: 1, exit: 0, signal: null, start: new Date(last).toISOString(), end: new Date(last + 3000).toISOString(), duration: 3, stdout: '1\n', stderr: '' });
process.stdout.write(`${out.join('\n')}\n`);
JS

events_mb=$(du -m "$tmp/events.ndjson" | cut -f1)
start=$(date +%s.%N)
"$REPORT" -o "$tmp/report.html" --svg "$tmp/timeline.svg" "$tmp/events.ndjson" >/dev/null
end=$(date +%s.%N)
report_s=$(echo "$end - $start" | bc -l)
page_bytes=$(stat -c %s "$tmp/report.html")
node "$REPO/test/helpers/report-page.cjs" "file://$tmp/report.html" --runs "$RUNS" --timeout 300 \
  ${SCREENSHOT:+--screenshot "$SCREENSHOT"} >"$tmp/loads.ndjson"

node - "$tmp/loads.ndjson" "$N" "$page_bytes" "$report_s" "$events_mb" "$HOSTS" "$SLOTS" <<'JS'
const fs = require('node:fs');
const [file, n, bytes, reportS, eventsMb, hosts, slots] = process.argv.slice(2);
const loads = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const painted = median(loads.map((l) => l.ms.timelinePainted));
const fcp = median(loads.map((l) => l.ms.fcp));
const mb = Number(bytes) / 1e6;
const errors = loads.flatMap((l) => l.errors);
const bars = loads[0].bars;
console.log(`report: ${n} jobs on ${hosts} hosts x ${slots} slots (events ${eventsMb} MB; ${loads.length} loads in headless chromium, medians)`);
const row = (a, b, c, d) => console.log(`${a.padEnd(26)}${String(b).padStart(10)}  ${String(c).padStart(8)}  ${d}`);
row('what', 'value', 'limit', '');
row('cm-report wall (s)', Number(reportS).toFixed(2), '-', '');
row('page size (MB)', mb.toFixed(2), '3', mb <= 3 ? 'ok' : 'OVER');
row('timeline painted (ms)', painted.toFixed(0), '2000', painted <= 2000 ? 'ok' : 'OVER');
row('first contentful paint (ms)', fcp === null ? '-' : fcp.toFixed(0), '2000', fcp !== null && fcp <= 2000 ? 'ok' : 'OVER');
row('bars drawn', bars, n, '');
console.log(`timeline painted per load (ms): ${loads.map((l) => Math.round(l.ms.timelinePainted)).join(' ')}`);
if (errors.length) console.error(`bench: console errors in the page: ${errors.join('; ')}`);
if (bars < Number(n)) console.error(`bench: the timeline drew ${bars} bars for ${n} jobs`);
JS
echo "load: $(uptime | sed 's/.*load average: //')"
