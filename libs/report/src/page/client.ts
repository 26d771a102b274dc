/// <reference lib="dom" />
// The report page's script (bundled for the browser with uPlot by scripts/browser-bundle.mjs and inlined
// into the page). It reads the run's data from the page (gzip, base64) or, live, from the server that
// sent it, and draws every section. Nothing here reaches the network but that server.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { hostOfLane, lastBars, STATUSES, unpack, type ReportData } from '../data';
import { barLabel, escapeXml, FAILED, formatMs, PALETTE, SVG_MAX_BARS, taskColour, ticks, timelineLayout, timelineSvg } from '../timeline';

const $ = <T extends HTMLElement = HTMLElement>(sel: string): T => document.querySelector(sel) as T;
const esc = escapeXml;

async function embedded(): Promise<ReportData> {
  const text = $('#cm-data').textContent!.trim();
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return unpack(JSON.parse(await new Response(stream).text()) as ReportData);
}

function header(d: ReportData): void {
  const c = d.counts;
  const done = c.ok + c.failed + c.timeout + c.gaveUp + c.skipped;
  const count = (kind: string, n: number, label: string) => `<span class="count" data-kind="${kind}" data-n="${n}"><b>${n}</b>${label}</span>`;
  $('#header').innerHTML = `
    <h1>${esc(d.title)} ${d.live ? `<span class="live" id="live">${d.ended ? 'run ended' : '● live'}</span>` : ''}</h1>
    <div class="meta">
      ${d.command ? `command: <code>${esc(d.command)}</code><br>` : ''}
      run${d.runs.length === 1 ? '' : 's'}: ${esc(d.runs.join(', ') || '-')} · hosts: ${d.hosts.length} (${d.util.slots} slots) ·
      wall time: <b id="wall">${formatMs(d.wall)}</b> · efficiency: <b id="efficiency">${d.efficiency === null ? '-' : `${(d.efficiency * 100).toFixed(1)}%`}</b>
      (job time ${formatMs(d.busyMs)} / (slots × wall)) · report made ${esc(d.generated)}
    </div>
    <div class="counts" id="counts" data-done="${done}">
      ${count('jobs', c.jobs, 'jobs')}${count('done', done, 'ended')}${count('ok', c.ok, 'ok')}${count('failed', c.failed, 'failed')}
      ${count('timeout', c.timeout, 'timed out')}${count('gave-up', c.gaveUp, 'gave up')}${count('skipped', c.skipped, 'skipped')}
      ${count('retries', c.retries, 'retries')}${count('running', c.running, 'running')}${count('waiting', c.waiting, 'waiting')}
      ${count('host-down', c.hostDown, 'hosts down')}
    </div>`;
}

function tip(): HTMLElement {
  return $('#tip');
}

function showTip(e: MouseEvent, text: string | null): void {
  const t = tip();
  if (!text) {
    t.style.display = 'none';
    return;
  }
  t.textContent = text;
  t.style.display = 'block';
  t.style.left = `${Math.min(e.clientX + 12, window.innerWidth - 320)}px`;
  t.style.top = `${e.clientY + 12}px`;
}

function legend(d: ReportData): string {
  return `<div class="legend">${d.tasks
    .slice(0, 30)
    .map((t, i) => `<span><i style="background:${taskColour(i)}"></i>${esc(t)}</span>`)
    .join('')}<span><i style="background:${FAILED}"></i>failed, timed out, gave up</span><span><i style="border:2px dashed ${FAILED};width:8px;height:8px"></i>retried attempt</span></div>`;
}

/** Lanes per pixel row above this: a row per host, bars drawn translucent on it (density), failures on top. */
const MAX_LANES = 720;

function timeline(d: ReportData, width: number): void {
  const box = $('#timeline');
  if (d.bars.job.length <= SVG_MAX_BARS && d.lanes <= MAX_LANES) {
    box.innerHTML = legend(d) + timelineSvg(d, width);
    box.querySelector('svg')!.addEventListener('mousemove', (e) => {
      const k = (e.target as Element).getAttribute?.('data-i');
      showTip(e, k === null ? null : barLabel(d, Number(k)));
    });
    box.querySelector('svg')!.addEventListener('mouseleave', (e) => showTip(e, null));
    box.querySelectorAll('rect.bar title').forEach((t) => t.remove());
    return;
  }
  canvasTimeline(d, width, box);
}

function canvasTimeline(d: ReportData, width: number, box: HTMLElement): void {
  const aggregated = d.lanes > MAX_LANES;
  const rows = aggregated ? d.hosts.length : d.lanes;
  const pseudo = { ...d, lanes: rows };
  const L = timelineLayout(pseudo, width);
  const rowOfLane = new Int32Array(d.lanes);
  d.hosts.forEach((h, i) => {
    for (let s = 0; s < h.lanes; s++) rowOfLane[h.firstLane + s] = aggregated ? i : h.firstLane + s;
  });
  const dpr = window.devicePixelRatio || 1;
  box.innerHTML = `${legend(d)}<canvas class="timeline" data-lanes="${d.lanes}" data-rows="${rows}" data-bars="${d.bars.job.length}" data-aggregated="${aggregated}" data-failed="${
    d.bars.status.filter((s) => s !== 0 && s !== STATUSES.indexOf('running')).length
  }" style="width:${width}px;height:${L.height}px"></canvas>${aggregated ? `<div class="note">${d.lanes} slots: one row per host, each bar drawn translucent (darker = more slots busy); failures on top.</div>` : ''}`;
  const canvas = box.querySelector('canvas')!;
  canvas.width = width * dpr;
  canvas.height = L.height * dpr;
  const g = canvas.getContext('2d')!;
  g.scale(dpr, dpr);
  g.fillStyle = '#fff';
  g.fillRect(0, 0, width, L.height);
  g.font = '11px sans-serif';
  g.fillStyle = '#555';
  g.textAlign = 'center';
  for (const t of ticks(d.wall)) {
    g.fillStyle = '#e4e4e4';
    g.fillRect(L.x(t), L.top - 4, 1, L.height - L.top);
    g.fillStyle = '#555';
    g.fillText(formatMs(t), L.x(t), L.top - 8);
  }
  g.textAlign = 'right';
  d.hosts.forEach((h, i) => {
    const y0 = L.top + (aggregated ? i : h.firstLane) * L.laneHeight;
    const hgt = (aggregated ? 1 : h.lanes) * L.laneHeight;
    g.fillStyle = i % 2 ? '#f3f3f3' : '#fbfbfb';
    g.fillRect(L.left, y0, L.plotWidth, hgt);
    if (hgt >= 9 || i % Math.ceil(9 / hgt) === 0) {
      g.fillStyle = '#333';
      g.fillText(h.name, L.left - 6, y0 + Math.min(hgt, 12) - 2);
    }
  });
  const n = d.bars.job.length;
  const order: number[] = [];
  const bad = (k: number) => d.bars.status[k] !== 0 && d.bars.status[k] !== STATUSES.indexOf('running');
  for (let k = 0; k < n; k++) if (!bad(k)) order.push(k);
  for (let k = 0; k < n; k++) if (bad(k)) order.push(k);
  const alpha = aggregated ? Math.min(1, 2 / Math.max(1, d.lanes / d.hosts.length)) : 1;
  const xs = L.plotWidth / (d.wall || 1);
  for (const k of order) {
    const x = L.left + d.bars.start[k]! * xs;
    const w = Math.max(1, d.bars.dur[k]! * xs);
    const y = L.top + rowOfLane[d.bars.lane[k]!]! * L.laneHeight;
    const isBad = bad(k);
    g.globalAlpha = isBad ? 1 : alpha;
    g.fillStyle = isBad ? FAILED : PALETTE[d.jobs.task[d.bars.job[k]!]! % PALETTE.length]!;
    g.fillRect(x, y, w, Math.max(1, L.laneHeight - (L.laneHeight > 4 ? 1 : 0)));
  }
  g.globalAlpha = 1;
  for (const m of d.marks) {
    const i = d.hosts.findIndex((h) => h.name === m.host);
    if (i < 0) continue;
    const h = d.hosts[i]!;
    g.fillStyle = m.kind === 'host-down' ? FAILED : '#2a2';
    g.fillRect(L.x(m.at) - 1, L.top + (aggregated ? i : h.firstLane) * L.laneHeight, 3, (aggregated ? 1 : h.lanes) * L.laneHeight);
  }
  // hover: the row under the pointer, then the bar in it that covers the time
  const byRow = new Map<number, number[]>();
  for (let k = 0; k < n; k++) {
    const r = rowOfLane[d.bars.lane[k]!]!;
    if (!byRow.has(r)) byRow.set(r, []);
    byRow.get(r)!.push(k);
  }
  for (const list of byRow.values()) list.sort((a, b) => d.bars.start[a]! - d.bars.start[b]!);
  canvas.addEventListener('mousemove', (e) => {
    const rect = canvas.getBoundingClientRect();
    const row = Math.floor((e.clientY - rect.top - L.top) / L.laneHeight);
    const t = (e.clientX - rect.left - L.left) / xs;
    const list = byRow.get(row);
    if (!list || t < 0) return showTip(e, null);
    let lo = 0;
    let hi = list.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (d.bars.start[list[mid]!]! <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const slack = 2 / xs;
    for (let i = found; i >= 0 && i > found - 64; i--) {
      const k = list[i]!;
      if (d.bars.start[k]! + d.bars.dur[k]! + slack >= t) return showTip(e, barLabel(d, k));
    }
    showTip(e, null);
  });
  canvas.addEventListener('mouseleave', (e) => showTip(e, null));
}

const charts: uPlot[] = [];

function utilisation(d: ReportData, width: number): void {
  const box = $('#utilisation');
  const hostEff = d.hosts.map((h, i) => {
    const row = d.util.perHost[i] ?? [];
    const mean = row.length ? row.reduce((a, b) => a + b, 0) / row.length : 0;
    return mean / h.lanes;
  });
  box.innerHTML = `<div class="note">mean running jobs per time bin, against the ${d.util.slots} slots; below: each host's busy slots over the same time (darker = fuller).</div><div id="util-total"></div><canvas id="util-hosts"></canvas>`;
  const xs = d.util.t.map((t) => t / 1000);
  if (xs.length > 0) {
    charts.push(
      new uPlot(
        {
          width,
          height: 220,
          scales: { x: { time: false } },
          axes: [{ label: 'seconds from the first start' }, { label: 'jobs running' }],
          series: [{}, { label: 'running', stroke: '#4e79a7', fill: 'rgba(78,121,167,0.2)', paths: uPlot.paths.stepped!({ align: 1 }) }, { label: 'slots', stroke: '#999', dash: [4, 4] }],
        },
        [xs, d.util.total, xs.map(() => d.util.slots)],
        $('#util-total'),
      ),
    );
  }
  const c = $<HTMLCanvasElement>('#util-hosts');
  const rowH = Math.max(3, Math.min(14, Math.floor(300 / Math.max(1, d.hosts.length))));
  const left = 130;
  const right = 60;
  c.width = width;
  c.height = rowH * d.hosts.length + 4;
  const g = c.getContext('2d')!;
  g.font = '11px sans-serif';
  const bins = d.util.t.length;
  const bw = (width - left - right) / Math.max(1, bins);
  d.hosts.forEach((h, i) => {
    const row = d.util.perHost[i] ?? [];
    for (let b = 0; b < bins; b++) {
      const f = Math.min(1, (row[b] ?? 0) / h.lanes);
      g.fillStyle = `rgba(78,121,167,${f.toFixed(3)})`;
      g.fillRect(left + b * bw, i * rowH, Math.ceil(bw), rowH - (rowH > 4 ? 1 : 0));
    }
    if (rowH >= 9) {
      g.fillStyle = '#333';
      g.textAlign = 'right';
      g.fillText(h.name, left - 6, i * rowH + rowH - 2);
      g.textAlign = 'left';
      g.fillText(`${(hostEff[i]! * 100).toFixed(0)}%`, width - right + 6, i * rowH + rowH - 2);
    }
  });
}

function perTask(d: ReportData, width: number): void {
  const box = $('#tasks');
  const w = Math.max(280, Math.min(420, Math.floor(width / 2) - 24));
  box.innerHTML = `<div class="grid">${d.perTask
    .map(
      (t, i) => `<div class="card task" data-task="${esc(t.name)}"><h3><i style="display:inline-block;width:10px;height:10px;background:${taskColour(i)}"></i> ${esc(t.name)}: ${t.jobs} job${t.jobs === 1 ? '' : 's'}</h3>
      <div>${Object.entries(t.outcomes)
        .map(([k, v]) => `<span class="outcome" data-outcome="${k}">${k} ${v}</span>`)
        .join(' · ')}</div>
      <div class="note">mean ${t.mean === null ? '-' : formatMs(t.mean)} · median ${t.p50 === null ? '-' : formatMs(t.p50)} · p90 ${t.p90 === null ? '-' : formatMs(t.p90)} · max ${t.max === null ? '-' : formatMs(t.max)}</div>
      <div class="hist" id="hist-${i}"></div></div>`,
    )
    .join('')}</div>`;
  d.perTask.forEach((t, i) => {
    if (!t.hist) return;
    const h = t.hist;
    const xs = h.edges.map((e) => e / 1000);
    charts.push(
      new uPlot(
        {
          width: w,
          height: 160,
          scales: { x: { time: false, range: (_u, lo, hi) => [lo, Math.max(hi, lo) + (h.edges.length > 1 ? (h.edges[1]! - h.edges[0]!) / 1000 : 1)] } },
          axes: [{ label: 'duration (s)' }, { label: 'jobs' }],
          legend: { show: false },
          series: [{}, { label: 'jobs', fill: taskColour(i), stroke: taskColour(i), paths: uPlot.paths.bars!({ size: [0.9, 80], align: 1 }) }],
        },
        [xs, h.counts],
        $(`#hist-${i}`),
      ),
    );
  });
}

function sweeps(d: ReportData, width: number): void {
  const box = $('#sweeps');
  if (d.sweeps.length === 0) {
    box.innerHTML = '<div class="note">No parameters: the jobs are not a sweep.</div>';
    return;
  }
  const w = Math.max(280, Math.min(420, Math.floor(width / 2) - 24));
  box.innerHTML = `<div class="grid">${d.sweeps
    .map(
      (s, i) => `<div class="card sweep" data-of="${esc(s.of)}" data-param="${esc(s.param)}"><h3>${esc(s.of)}: ${esc(s.y)} against ${esc(s.param)}</h3><div class="note">${
        s.from === 'values' ? 'from cm-reduce\'s values' : 'mean ± standard deviation over the jobs, from their events'
      }</div><div id="sweep-${i}"></div></div>`,
    )
    .join('')}</div>`;
  d.sweeps.forEach((s, i) => {
    const numeric = s.xs.every((x) => x.trim() !== '' && Number.isFinite(Number(x)));
    const xs = s.xs.map((x, k) => (numeric ? Number(x) : k));
    const lo = s.mean.map((m, k) => (m === null || s.sd[k] === null ? m : m - s.sd[k]!));
    const hi = s.mean.map((m, k) => (m === null || s.sd[k] === null ? m : m + s.sd[k]!));
    charts.push(
      new uPlot(
        {
          width: w,
          height: 200,
          scales: { x: { time: false } },
          legend: { show: false },
          axes: [{ label: s.param, values: numeric ? undefined : (_u, splits) => splits.map((v) => s.xs[v] ?? '') }, { label: s.y }],
          series: [{}, { label: `${s.y} − sd`, stroke: 'transparent' }, { label: `${s.y} + sd`, stroke: 'transparent' }, { label: s.y, stroke: '#4e79a7', width: 2, points: { size: 7 } }],
          bands: [{ series: [2, 1], fill: 'rgba(78,121,167,0.2)' }],
        },
        [xs, lo, hi, s.mean],
        $(`#sweep-${i}`),
      ),
    );
  });
}

function plan(d: ReportData, width: number): void {
  const box = $('#plan');
  const p = d.plan;
  const stages = Math.max(1, ...p.tasks.map((t) => t.stage + 1));
  const perStage = new Map<number, string[]>();
  for (const t of p.tasks) perStage.set(t.stage, [...(perStage.get(t.stage) ?? []), t.name]);
  const bw = 150;
  const bh = 34;
  const gapX = Math.max(40, Math.min(120, (width - stages * bw) / Math.max(1, stages)));
  const rows = Math.max(1, ...[...perStage.values()].map((l) => l.length));
  const shown = Math.min(rows, 30);
  const pos = new Map<string, { x: number; y: number }>();
  for (const [s, list] of perStage) list.slice(0, shown).forEach((t, i) => pos.set(t, { x: 10 + s * (bw + gapX), y: 10 + i * (bh + 14) }));
  const h = 20 + shown * (bh + 14);
  const edges: string[] = [];
  for (const t of p.tasks) {
    const to = pos.get(t.name);
    for (const dep of t.deps) {
      const from = pos.get(dep);
      if (!from || !to) continue;
      const crit = t.critical && p.tasks.find((x) => x.name === dep)?.critical;
      edges.push(`<path d="M${from.x + bw},${from.y + bh / 2} C${from.x + bw + gapX / 2},${from.y + bh / 2} ${to.x - gapX / 2},${to.y + bh / 2} ${to.x},${to.y + bh / 2}" fill="none" stroke="${crit ? FAILED : '#999'}" stroke-width="${crit ? 2 : 1}" marker-end="url(#arrow)"/>`);
    }
  }
  const boxes = p.tasks
    .filter((t) => pos.has(t.name))
    .map((t) => {
      const { x, y } = pos.get(t.name)!;
      const i = d.tasks.indexOf(t.name);
      return `<g class="stage" data-task="${esc(t.name)}" data-stage="${t.stage}" data-critical="${t.critical}"><rect x="${x}" y="${y}" width="${bw}" height="${bh}" rx="4" fill="#fff" stroke="${t.critical ? FAILED : '#888'}" stroke-width="${t.critical ? 2 : 1}"/><rect x="${x}" y="${y}" width="6" height="${bh}" fill="${taskColour(i)}"/><text x="${x + 12}" y="${y + 14}">${esc(t.name.length > 20 ? `${t.name.slice(0, 19)}…` : t.name)}</text><text x="${x + 12}" y="${y + 28}" fill="#666">${t.jobs} job${t.jobs === 1 ? '' : 's'}</text></g>`;
    });
  const crit = p.critical;
  box.innerHTML = `<svg width="${Math.min(width, 20 + stages * (bw + gapX))}" height="${h}"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#999"/></marker></defs>${edges.join('')}${boxes.join('')}</svg>
    <div class="note">${p.hasDeps ? '' : 'No job waits for another (no deps in the records): one stage. '}${stages} stage${stages === 1 ? '' : 's'}, ${p.tasks.length} task${p.tasks.length === 1 ? '' : 's'}${rows > shown ? ` (the first ${shown} per stage shown)` : ''}.
    Critical path (${formatMs(p.criticalMs)}): <span id="critical">${esc(crit.length > 12 ? [...crit.slice(0, 6), '…', ...crit.slice(-5)].join(' → ') : crit.join(' → '))}</span></div>`;
}

type Col = { key: string; label: string; num?: boolean; get: (i: number) => string | number };

function jobsTable(d: ReportData, state: { sort: string; desc: boolean; filter: string; limit: number }): void {
  const box = $('#jobs');
  const J = d.jobs;
  const B = d.bars;
  const last = lastBars(d);
  const laneHost = hostOfLane(d);
  const bar = (i: number, f: (k: number) => string | number) => (last[i]! >= 0 ? f(last[i]!) : '');
  const params = (i: number) => (J.params[i]! >= 0 ? Object.entries(d.paramSets[J.params[i]!]!).map(([k, v]) => `${k}=${v}`).join(' ') : '');
  const cols: Col[] = [
    { key: 'id', label: 'job', get: (i) => J.id[i]! },
    { key: 'task', label: 'task', get: (i) => d.tasks[J.task[i]!]! },
    { key: 'params', label: 'params', get: params },
    { key: 'host', label: 'host', get: (i) => bar(i, (k) => d.hosts[laneHost[B.lane[k]!]!]!.name) },
    { key: 'status', label: 'status', get: (i) => J.status[i]! },
    { key: 'exit', label: 'exit', num: true, get: (i) => bar(i, (k) => B.exit[k] ?? '') },
    { key: 'attempt', label: 'attempts', num: true, get: (i) => bar(i, (k) => B.attempt[k]!) },
    { key: 'start', label: 'start (s)', num: true, get: (i) => bar(i, (k) => B.start[k]! / 1000) },
    { key: 'dur', label: 'duration (s)', num: true, get: (i) => bar(i, (k) => B.dur[k]! / 1000) },
    { key: 'reason', label: 'reason', get: (i) => J.reason[i] ?? '' },
  ];
  const col = cols.find((c) => c.key === state.sort) ?? cols[0]!;
  const f = state.filter.toLowerCase();
  let idx = J.id.map((_, i) => i);
  if (f) idx = idx.filter((i) => cols.some((c) => String(c.get(i)).toLowerCase().includes(f)));
  const keys = idx.map((i) => col.get(i));
  const order = idx.map((_, k) => k);
  order.sort((a, b) => {
    const x = keys[a]!;
    const y = keys[b]!;
    const r = col.num ? (x === '' ? -Infinity : Number(x)) - (y === '' ? -Infinity : Number(y)) : String(x).localeCompare(String(y), undefined, { numeric: true });
    return state.desc ? -r : r;
  });
  const rows = order.slice(0, state.limit).map((k) => idx[k]!);
  box.innerHTML = `<div><input id="jobs-filter" placeholder="filter (any column)" value="${esc(state.filter)}"> <span class="note">${rows.length} of ${idx.length} shown${
    idx.length > rows.length ? ' <button id="jobs-more">show more</button>' : ''
  }</span></div>
  <table id="jobs-table"><thead><tr>${cols.map((c) => `<th data-key="${c.key}"${c.key === col.key ? ` data-sort="${state.desc ? '▼' : '▲'}"` : ''}>${c.label}</th>`).join('')}</tr></thead>
  <tbody>${rows
    .map((i) => `<tr data-job="${esc(J.id[i]!)}" data-status="${J.status[i]}">${cols.map((c) => `<td${c.num ? ' class="num"' : ''}>${esc(String(c.get(i)))}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
  box.querySelectorAll('th').forEach((th) =>
    th.addEventListener('click', () => {
      const key = th.getAttribute('data-key')!;
      jobsTable(d, { ...state, sort: key, desc: state.sort === key ? !state.desc : false });
    }),
  );
  $('#jobs-filter').addEventListener('change', (e) => jobsTable(d, { ...state, filter: (e.target as HTMLInputElement).value }));
  $('#jobs-more')?.addEventListener('click', () => jobsTable(d, { ...state, limit: state.limit * 4 }));
}

function values(d: ReportData): void {
  const box = $('#values');
  if (d.values.length === 0) {
    box.innerHTML = '<div class="note">No value records (put cm-reduce before cm-report to see them).</div>';
    return;
  }
  const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  box.innerHTML = `<table id="values-table"><thead><tr><th>id</th><th>group</th><th>op</th><th>value</th><th></th></tr></thead><tbody>${d.values
    .map(
      (v) =>
        `<tr data-id="${esc(v.id)}"><td>${esc(v.id)}</td><td>${esc(v.group ? Object.entries(v.group).map(([k, x]) => `${k}=${x}`).join(' ') : '')}</td><td>${esc(v.op ?? '')}</td><td class="num">${esc(show(v.value).slice(0, 200))}</td><td>${
          v.error ? esc(v.error) : v.partial ? 'partial' : ''
        }</td></tr>`,
    )
    .join('')}</tbody></table>`;
}

const tableState = { sort: 'start', desc: false, filter: '', limit: 100 };

function render(d: ReportData): void {
  for (const c of charts.splice(0)) c.destroy();
  const width = Math.max(600, Math.min(1600, document.documentElement.clientWidth - 48));
  header(d);
  timeline(d, width);
  performance.mark('cm-timeline');
  document.body.dataset.timeline = 'drawn';
  // the rest after the timeline is on screen: rAF runs before that frame's paint, a timeout after it
  requestAnimationFrame(() =>
    setTimeout(() => {
      performance.mark('cm-timeline-painted');
      rest(d, width);
    }),
  );
}

function rest(d: ReportData, width: number): void {
  {
    utilisation(d, width);
    perTask(d, width);
    sweeps(d, width);
    plan(d, width);
    jobsTable(d, tableState);
    values(d);
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered ?? 0) + 1);
  }
}

async function main(): Promise<void> {
  let d = await embedded();
  render(d);
  if (!d.live || d.ended) return;
  // live: the server says when the run changed; the page asks for the new data (at most twice a second)
  let busy = false;
  let again = false;
  const refresh = async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const r = await fetch('data', { cache: 'no-store' });
      if (r.ok) {
        d = unpack((await r.json()) as ReportData);
        render(d);
      }
    } finally {
      busy = false;
      if (again) {
        again = false;
        setTimeout(refresh, 500);
      }
    }
  };
  const es = new EventSource('events');
  es.onmessage = () => void refresh();
  es.addEventListener('end', () => {
    es.close();
    void refresh();
  });
}

main().catch((err) => {
  document.body.insertAdjacentHTML('afterbegin', `<pre style="color:#d62728">cm-report: the page failed: ${esc(String(err?.stack ?? err))}</pre>`);
  throw err;
});
