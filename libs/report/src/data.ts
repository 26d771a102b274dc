// What a report page draws: computed from the records in node (RunLog.snapshot), read by the page's
// script and by timelineSvg. Columns rather than objects: 100,000 jobs must stay small in the page.

/** A bar's state, in the order of the legend. */
export const STATUSES = ['ok', 'failed', 'timeout', 'gave-up', 'retry', 'running'] as const;
export type Status = (typeof STATUSES)[number];

export interface HostData {
  name: string;
  /** lanes drawn for the host: its slots (host records), else the most jobs it ran at once */
  lanes: number;
  /** the first of its lanes in the timeline, counted over every host above it */
  firstLane: number;
  slotsKnown: boolean;
}

/** One bar per attempt that ran, times in ms from t0. */
export interface Bars {
  job: number[];
  lane: number[];
  start: number[];
  dur: number[];
  status: number[];
  attempt: number[];
  exit: (number | null)[];
}

/** One row per job; where and how its last attempt ran is in bars (lastBars). */
export interface Jobs {
  id: string[];
  task: number[];
  status: string[];
  /** index into paramSets, -1 without params */
  params: number[];
  reason: (string | null)[];
}

export interface Histogram {
  /** lower edges in ms; the last bin ends at max */
  edges: number[];
  counts: number[];
  max: number;
}

export interface TaskData {
  name: string;
  jobs: number;
  outcomes: Record<string, number>;
  /** ms */
  mean: number | null;
  p50: number | null;
  p90: number | null;
  max: number | null;
  hist: Histogram | null;
}

/** y against one parameter: mean and sample standard deviation per value of x. */
export interface SweepSeries {
  /** the task, or the reduce id */
  of: string;
  param: string;
  /** what y is: the jobs' value (numeric stdout), their duration in s, or a reduce op */
  y: string;
  from: 'values' | 'events';
  xs: string[];
  mean: (number | null)[];
  sd: (number | null)[];
  n: number[];
}

export interface PlanData {
  /** tasks in stage order: stage = longest chain of deps before it */
  tasks: { name: string; stage: number; jobs: number; deps: string[]; critical: boolean }[];
  /** job ids on the longest chain of deps, by duration */
  critical: string[];
  /** ms: the sum of the critical jobs' durations */
  criticalMs: number;
  hasDeps: boolean;
}

export interface Utilisation {
  /** bin starts, ms from t0 */
  t: number[];
  /** mean jobs running in each bin, all hosts */
  total: number[];
  perHost: number[][];
  slots: number;
}

export interface Mark {
  host: string;
  kind: 'host-down' | 'host-up';
  at: number;
  reason?: string;
}

export interface ValueRow {
  id: string;
  op?: string;
  group?: Record<string, string>;
  value: unknown;
  partial: boolean;
  error?: string;
}

export interface ReportData {
  title: string;
  runs: string[];
  command?: string;
  generated: string;
  live: boolean;
  /** the input ended: the run is over */
  ended: boolean;
  /** epoch ms of the first start */
  t0: number;
  /** ms from the first start to the last end */
  wall: number;
  hosts: HostData[];
  lanes: number;
  tasks: string[];
  counts: { jobs: number; ok: number; failed: number; timeout: number; gaveUp: number; skipped: number; retries: number; running: number; waiting: number; hostDown: number };
  /** sum of attempt durations / (slots x wall), null before anything ran */
  efficiency: number | null;
  busyMs: number;
  bars: Bars;
  jobs: Jobs;
  paramSets: Record<string, string>[];
  marks: Mark[];
  util: Utilisation;
  perTask: TaskData[];
  sweeps: SweepSeries[];
  plan: PlanData;
  values: ValueRow[];
}

/**
 * The data as the page carries it: bar starts and job indexes as differences from the bar before (they
 * grow with the stream), which gzip packs to a byte or two each.
 */
export function pack(d: ReportData): ReportData {
  const delta = (xs: number[]) => xs.map((x, i) => (i === 0 ? x : x - xs[i - 1]!));
  return { ...d, bars: { ...d.bars, start: delta(d.bars.start), job: delta(d.bars.job) } };
}

export function unpack(d: ReportData): ReportData {
  const sum = (xs: number[]) => {
    const out = new Array<number>(xs.length);
    let acc = 0;
    for (let i = 0; i < xs.length; i++) out[i] = acc += xs[i]!;
    return out;
  };
  return { ...d, bars: { ...d.bars, start: sum(d.bars.start), job: sum(d.bars.job) } };
}

/** Each job's last attempt: its bar, -1 for a job that never ran. */
export function lastBars(d: ReportData): Int32Array {
  const last = new Int32Array(d.jobs.id.length).fill(-1);
  for (let k = 0; k < d.bars.job.length; k++) {
    const j = d.bars.job[k]!;
    if (last[j]! < 0 || d.bars.attempt[k]! >= d.bars.attempt[last[j]!]!) last[j] = k;
  }
  return last;
}

/** The host a lane belongs to (index into hosts). */
export function hostOfLane(d: ReportData): Int32Array {
  const out = new Int32Array(d.lanes);
  d.hosts.forEach((h, i) => out.fill(i, h.firstLane, h.firstLane + h.lanes));
  return out;
}
