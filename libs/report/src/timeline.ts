// The timeline drawn as SVG: a lane per host slot, a bar per attempt. Pure and without imports of
// node, so the same code makes `cm-report --svg` in node and the page's timeline in the browser.
import { STATUSES, type ReportData } from './data';

/** Tableau 10: tasks by colour */
export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f', '#bab0ac', '#ff9da7', '#e15759'];
export const FAILED = '#d62728';

export const taskColour = (task: number): string => PALETTE[task % PALETTE.length]!;

/** Above this many bars the page draws the timeline on a canvas, not as one SVG element per bar. */
export const SVG_MAX_BARS = 5000;

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`);
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

/** What hovering bar k shows: id, parameters, host and slot, exit, duration. */
export function barLabel(d: ReportData, k: number): string {
  const j = d.bars.job[k]!;
  const lane = d.bars.lane[k]!;
  const host = d.hosts.find((h) => lane >= h.firstLane && lane < h.firstLane + h.lanes);
  const p = d.jobs.params[j]!;
  const params = p >= 0 ? Object.entries(d.paramSets[p]!).map(([n, v]) => `${n}=${v}`).join(' ') : '';
  const status = STATUSES[d.bars.status[k]!]!;
  const exit = d.bars.exit[k];
  const reason = d.bars.status[k] === STATUSES.indexOf('ok') ? null : d.jobs.reason[j];
  return [
    `${d.jobs.id[j]} (${d.tasks[d.jobs.task[j]!]})`,
    params && `params: ${params}`,
    `host: ${host?.name ?? '?'}, slot ${host ? lane - host.firstLane + 1 : '?'}`,
    `${status}${exit !== null && exit !== undefined ? `, exit ${exit}` : ''}, attempt ${d.bars.attempt[k]}`,
    `duration: ${formatMs(d.bars.dur[k]!)}`,
    reason && `reason: ${reason}`,
  ]
    .filter(Boolean)
    .join('\n');
}

export interface TimelineLayout {
  width: number;
  left: number;
  top: number;
  laneHeight: number;
  height: number;
  plotWidth: number;
  x: (ms: number) => number;
}

export function timelineLayout(d: ReportData, width: number): TimelineLayout {
  const left = 130;
  const top = 24;
  const laneHeight = Math.max(1, Math.min(18, Math.floor(720 / Math.max(1, d.lanes))));
  const plotWidth = Math.max(100, width - left - 10);
  const wall = d.wall || 1;
  return { width, left, top, laneHeight, height: top + laneHeight * d.lanes + 8, plotWidth, x: (ms) => left + (ms / wall) * plotWidth };
}

/** nice tick step for a span of ms */
export function ticks(wall: number, count = 8): number[] {
  if (wall <= 0) return [0];
  const raw = wall / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = 0; t <= wall + 1e-9; t += step) out.push(t);
  return out;
}

/**
 * The whole timeline as one SVG document: a `g.lane` per slot (data-host, data-slot), a `rect.bar` per
 * attempt (data-job, data-status, with its label as a title), host-down marks as lines.
 */
export function timelineSvg(d: ReportData, width = 1200): string {
  const L = timelineLayout(d, width);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="${width}" height="${L.height}" viewBox="0 0 ${width} ${L.height}" font-family="sans-serif" font-size="11" data-lanes="${d.lanes}" data-bars="${d.bars.job.length}">`,
  );
  out.push(`<rect width="${width}" height="${L.height}" fill="#fff"/>`);
  for (const t of ticks(d.wall)) {
    const x = L.x(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${L.top - 4}" y2="${L.height - 8}" stroke="#e4e4e4"/><text x="${x}" y="${L.top - 8}" text-anchor="middle" fill="#555">${escapeXml(formatMs(t))}</text>`);
  }
  const labelEvery = L.laneHeight >= 10 ? 1 : 0;
  for (const h of d.hosts) {
    for (let s = 0; s < h.lanes; s++) {
      const y = L.top + (h.firstLane + s) * L.laneHeight;
      out.push(
        `<g class="lane" data-host="${escapeXml(h.name)}" data-slot="${s + 1}"><rect x="${L.left}" y="${y}" width="${L.plotWidth}" height="${L.laneHeight}" fill="${(h.firstLane + s) % 2 ? '#f6f6f6' : '#fcfcfc'}"/>${
          labelEvery && s === 0 ? `<text x="${L.left - 6}" y="${y + L.laneHeight - 4}" text-anchor="end" fill="#333">${escapeXml(h.name)}</text>` : ''
        }</g>`,
      );
    }
    if (!labelEvery) {
      const y = L.top + (h.firstLane + h.lanes / 2) * L.laneHeight + 4;
      if (h.lanes * L.laneHeight >= 9) out.push(`<text x="${L.left - 6}" y="${y}" text-anchor="end" fill="#333">${escapeXml(h.name)}</text>`);
    }
    out.push(`<line x1="${L.left - 120}" x2="${L.left + L.plotWidth}" y1="${L.top + h.firstLane * L.laneHeight}" y2="${L.top + h.firstLane * L.laneHeight}" stroke="#bbb"/>`);
  }
  const gap = L.laneHeight > 4 ? 1 : 0;
  for (let k = 0; k < d.bars.job.length; k++) {
    const status = STATUSES[d.bars.status[k]!]!;
    const x = L.x(d.bars.start[k]!);
    const w = Math.max(1, L.x(d.bars.start[k]! + d.bars.dur[k]!) - x);
    const y = L.top + d.bars.lane[k]! * L.laneHeight + gap;
    const bad = status !== 'ok' && status !== 'running';
    const style = bad ? ` stroke="${FAILED}" stroke-width="${L.laneHeight > 4 ? 2 : 1}"${status === 'retry' ? ' stroke-dasharray="3 2"' : ''}` : '';
    const fill = status === 'failed' || status === 'timeout' || status === 'gave-up' ? FAILED : taskColour(d.jobs.task[d.bars.job[k]!]!);
    out.push(
      `<rect class="bar" data-i="${k}" data-job="${escapeXml(d.jobs.id[d.bars.job[k]!]!)}" data-status="${status}" x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${Math.max(1, L.laneHeight - 2 * gap)}" fill="${fill}"${style}${status === 'running' ? ' fill-opacity="0.55"' : ''}><title>${escapeXml(barLabel(d, k))}</title></rect>`,
    );
  }
  for (const m of d.marks) {
    const h = d.hosts.find((x) => x.name === m.host);
    if (!h) continue;
    const x = L.x(m.at).toFixed(1);
    const y1 = L.top + h.firstLane * L.laneHeight;
    out.push(
      `<line class="mark" data-kind="${m.kind}" data-host="${escapeXml(m.host)}" x1="${x}" x2="${x}" y1="${y1}" y2="${y1 + h.lanes * L.laneHeight}" stroke="${m.kind === 'host-down' ? FAILED : '#2a2'}" stroke-width="3" stroke-dasharray="4 2"><title>${escapeXml(`${m.host}: ${m.kind}${m.reason ? ` (${m.reason})` : ''}`)}</title></line>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}
