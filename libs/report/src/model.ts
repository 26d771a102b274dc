// A run told by its records, gathered as they pass (pure: the clock is given), and its snapshot for a
// page: RunLog.add(record) for each record read, snapshot() whenever a page is drawn.
import type { EventRecord, HostRecord, JobRecord, ReduceRecord, ValueRecord } from '@cm/protocol';
import { STATUSES, type Jobs, type Mark, type ReportData, type Status, type SweepSeries, type TaskData, type ValueRow } from './data';
import { assignLanes } from './lanes';
import { planOf } from './plan';
import { histogram, meanSd, percentile, runningOverTime } from './stats';

export interface Attempt {
  job: string;
  host: string;
  attempt: number;
  /** epoch ms */
  start: number;
  end: number;
  status: Status;
  exit: number | null;
  signal?: string | null;
  reason?: string;
}

interface JobInfo {
  id: string;
  task: string;
  run?: string;
  deps: string[];
  after: string[];
  command?: string;
  params?: Record<string, string>;
  /** final state: ok, failed, timeout, gave-up, skipped; undefined while it waits or runs */
  final?: string;
  reason?: string;
  value?: number;
  seq: number;
}

export interface RunLogOptions {
  title?: string;
  command?: string;
  /** epoch ms now; a live page dates started and retry events by it */
  now?: () => number;
  live?: boolean;
}

const TIMEOUT = /timed? ?out/i;

/** A parameter with more distinct values than this is not plotted against. */
export const MAX_SWEEP_POINTS = 200;

export class RunLog {
  private readonly hostSlots = new Map<string, number>();
  private readonly hostOrder: string[] = [];
  private readonly jobs = new Map<string, JobInfo>();
  private readonly attempts: Attempt[] = [];
  /** job#attempt -> index in attempts, while it runs */
  private readonly open = new Map<string, number>();
  private readonly maxRunning = new Map<string, number>();
  private readonly marks: Mark[] = [];
  private readonly values = new Map<string, ValueRow>();
  private readonly reduces = new Map<string, ReduceRecord>();
  private readonly runs = new Set<string>();
  /** the latest time the events have told of, for events without a time of their own (older cm-exec, Slurm jobs mode) */
  private streamTime = 0;
  private ended = false;
  /** bumped on every record that changes the picture */
  version = 0;

  constructor(private readonly opts: RunLogOptions = {}) {}

  private time(): number {
    return this.opts.now ? this.opts.now() : this.streamTime;
  }

  private host(name: string): void {
    if (!this.hostOrder.includes(name)) this.hostOrder.push(name);
  }

  private job(id: string, task?: string): JobInfo {
    let j = this.jobs.get(id);
    if (!j) {
      j = { id, task: task ?? id, deps: [], after: [], seq: this.jobs.size };
      this.jobs.set(id, j);
    }
    return j;
  }

  add(rec: { kind: string; [key: string]: unknown }): void {
    switch (rec.kind) {
      case 'host': {
        const h = rec as HostRecord;
        this.hostSlots.set(h.name, h.slots);
        this.host(h.name);
        break;
      }
      case 'job': {
        const r = rec as JobRecord;
        const j = this.job(r.id, r.task);
        Object.assign(j, { task: r.task, deps: r.deps, after: r.after ?? [], command: r.command, params: r.params ?? j.params, run: r.run ?? j.run });
        break;
      }
      case 'event':
        this.event(rec as EventRecord);
        break;
      case 'reduce':
        this.reduces.set((rec as ReduceRecord).id, rec as ReduceRecord);
        break;
      case 'value': {
        const v = rec as ValueRecord;
        this.values.set(JSON.stringify([v.id, v.op ?? null, v.group ?? null]), { id: v.id, op: v.op, group: v.group, value: v.value, partial: v.partial, error: v.error });
        break;
      }
      default:
        return;
    }
    this.version += 1;
  }

  end(): void {
    this.ended = true;
    this.version += 1;
  }

  private event(e: EventRecord): void {
    if (e.run) this.runs.add(e.run);
    if (e.start) this.streamTime = Math.max(this.streamTime, Date.parse(e.start));
    if (e.end) this.streamTime = Math.max(this.streamTime, Date.parse(e.end));
    if (e.event === 'host-down' || e.event === 'host-up') {
      if (e.host) {
        this.host(e.host);
        this.marks.push({ host: e.host, kind: e.event, at: e.at ? Date.parse(e.at) : this.time(), reason: e.reason });
      }
      return;
    }
    if (!e.job) return;
    const j = this.job(e.job, e.task);
    if (e.task) j.task = e.task;
    if (e.params) j.params = e.params;
    if (e.run) j.run = e.run;
    if (e.deps) j.deps = e.deps;
    if (e.after) j.after = e.after;
    const key = `${e.job}#${e.attempt ?? 1}`;
    switch (e.event) {
      case 'queued':
        return;
      case 'started': {
        if (!e.host) return;
        this.host(e.host);
        this.maxRunning.set(e.host, Math.max(this.maxRunning.get(e.host) ?? 0, e.running ?? 1));
        const at = e.start ? Date.parse(e.start) : this.time();
        this.open.set(key, this.attempts.push({ job: e.job, host: e.host, attempt: e.attempt ?? 1, start: at, end: at, status: 'running', exit: null }) - 1);
        return;
      }
      case 'retry': {
        const i = this.open.get(key);
        this.open.delete(key);
        if (i === undefined) return;
        const a = this.attempts[i]!;
        if (e.start) a.start = Date.parse(e.start);
        Object.assign(a, { end: Math.max(a.start, e.end ? Date.parse(e.end) : this.time()), status: 'retry', exit: e.exit ?? null, reason: e.reason });
        return;
      }
      case 'finished':
      case 'gave-up': {
        const i = this.open.get(key);
        this.open.delete(key);
        const status: Status = e.event === 'finished' ? (e.exit === 0 ? 'ok' : 'failed') : TIMEOUT.test(e.reason ?? '') ? 'timeout' : 'gave-up';
        j.final = status;
        j.reason = e.reason;
        if (status === 'ok' && e.stdout !== undefined) {
          const n = Number(e.stdout.trim());
          if (e.stdout.trim() !== '' && Number.isFinite(n)) j.value = n;
        }
        if (!e.start || !e.end || !e.host) {
          if (i !== undefined) this.attempts.splice(i, 1, { ...this.attempts[i]!, status, end: this.time(), reason: e.reason });
          return;
        }
        this.host(e.host);
        const a: Attempt = { job: e.job, host: e.host, attempt: e.attempt ?? 1, start: Date.parse(e.start), end: Date.parse(e.end), status, exit: e.exit ?? null, signal: e.signal, reason: e.reason };
        if (i !== undefined) this.attempts[i] = a;
        else this.attempts.push(a);
        return;
      }
      case 'skipped':
        j.final = 'skipped';
        j.reason = e.reason;
        return;
    }
  }

  /** the finished attempts, in the order they were read, for the GNU parallel joblog */
  ranAttempts(): Array<Attempt & { seq: number; command?: string }> {
    return this.attempts
      .filter((a) => a.status !== 'running')
      .map((a) => {
        const j = this.jobs.get(a.job)!;
        return { ...a, seq: j.seq + 1, command: j.command };
      });
  }

  snapshot(): ReportData {
    const now = this.time();
    // a live run's running bars grow to now
    const atts = this.attempts.map((a) => (a.status === 'running' ? { ...a, end: Math.max(a.start, now) } : a));
    const t0 = atts.reduce((m, a) => Math.min(m, a.start), Infinity);
    const tEnd = atts.reduce((m, a) => Math.max(m, a.end), -Infinity);
    const base = Number.isFinite(t0) ? t0 : 0;
    const wall = Number.isFinite(t0) ? tEnd - t0 : 0;

    // lanes per host
    const byHost = new Map<string, number[]>(this.hostOrder.map((h) => [h, []]));
    atts.forEach((a, i) => byHost.get(a.host)!.push(i));
    const laneOf = new Array<number>(atts.length).fill(0);
    let first = 0;
    const hosts = this.hostOrder.map((name) => {
      const idx = byHost.get(name)!;
      const slots = this.hostSlots.get(name);
      const { lane, lanes } = assignLanes(idx.map((i) => atts[i]!), slots);
      idx.forEach((i, k) => (laneOf[i] = first + lane[k]!));
      const n = Math.max(slots ?? 0, lanes, slots === undefined ? (this.maxRunning.get(name) ?? 0) : 0, 1);
      const h = { name, lanes: n, firstLane: first, slotsKnown: slots !== undefined };
      first += n;
      return h;
    });
    const hostIndex = new Map(this.hostOrder.map((h, i) => [h, i]));

    const jobList = [...this.jobs.values()].sort((a, b) => a.seq - b.seq);
    const jobIndex = new Map(jobList.map((j, i) => [j.id, i]));
    const tasks = [...new Set(jobList.map((j) => j.task))];
    const taskIndex = new Map(tasks.map((t, i) => [t, i]));

    const statusCode = new Map(STATUSES.map((s, i) => [s, i]));
    const bars = { job: [] as number[], lane: [] as number[], start: [] as number[], dur: [] as number[], status: [] as number[], attempt: [] as number[], exit: [] as (number | null)[] };
    atts.forEach((a, i) => {
      bars.job.push(jobIndex.get(a.job)!);
      bars.lane.push(laneOf[i]!);
      bars.start.push(a.start - base);
      bars.dur.push(a.end - a.start);
      bars.status.push(statusCode.get(a.status)!);
      bars.attempt.push(a.attempt);
      bars.exit.push(a.exit);
    });

    // last attempt of each job
    const lastAttempt = new Map<string, Attempt>();
    for (const a of atts) {
      const prev = lastAttempt.get(a.job);
      if (!prev || a.attempt >= prev.attempt) lastAttempt.set(a.job, a);
    }
    const paramKey = new Map<string, number>();
    const paramSets: Record<string, string>[] = [];
    const jobs: Jobs = { id: [], task: [], status: [], params: [], reason: [] };
    const counts = { jobs: jobList.length, ok: 0, failed: 0, timeout: 0, gaveUp: 0, skipped: 0, retries: 0, running: 0, waiting: 0, hostDown: this.marks.filter((m) => m.kind === 'host-down').length };
    for (const a of atts) {
      if (a.status === 'retry') counts.retries += 1;
      if (a.status === 'running') counts.running += 1;
    }
    for (const j of jobList) {
      const a = lastAttempt.get(j.id);
      const status = j.final ?? (a?.status === 'running' ? 'running' : 'waiting');
      if (status === 'ok') counts.ok += 1;
      else if (status === 'failed') counts.failed += 1;
      else if (status === 'timeout') counts.timeout += 1;
      else if (status === 'gave-up') counts.gaveUp += 1;
      else if (status === 'skipped') counts.skipped += 1;
      else if (status === 'waiting') counts.waiting += 1;
      let p = -1;
      if (j.params) {
        const k = JSON.stringify(j.params);
        p = paramKey.get(k) ?? -1;
        if (p < 0) {
          p = paramSets.push(j.params) - 1;
          paramKey.set(k, p);
        }
      }
      jobs.id.push(j.id);
      jobs.task.push(taskIndex.get(j.task)!);
      jobs.status.push(status);
      jobs.params.push(p);
      jobs.reason.push(j.reason ?? a?.reason ?? null);
    }

    const slots = hosts.reduce((s, h) => s + h.lanes, 0);
    const busyMs = atts.reduce((s, a) => s + (a.end - a.start), 0);
    const util = runningOverTime(
      atts.map((a) => ({ start: a.start - base, end: a.end - base, group: hostIndex.get(a.host)! })),
      hosts.length,
      wall,
      Math.min(400, Math.max(1, atts.length)),
    );

    return {
      title: this.opts.title ?? (this.runs.size > 0 ? `cm run ${[...this.runs].join(', ')}` : 'cm run'),
      runs: [...this.runs],
      command: this.opts.command,
      generated: new Date(this.opts.now ? this.opts.now() : Date.now()).toISOString(),
      live: this.opts.live ?? false,
      ended: this.ended,
      t0: base,
      wall,
      hosts,
      lanes: first,
      tasks,
      counts,
      efficiency: wall > 0 && slots > 0 ? busyMs / (slots * wall) : null,
      busyMs,
      bars,
      jobs,
      paramSets,
      marks: this.marks.map((m) => ({ ...m, at: Math.max(0, m.at - base) })),
      util: { t: util.t, total: util.total, perHost: util.perGroup, slots },
      perTask: this.perTask(tasks, jobList, lastAttempt),
      sweeps: this.sweeps(tasks, jobList, lastAttempt),
      plan: planOf(jobList, tasks, lastAttempt),
      values: [...this.values.values()],
    };
  }

  private perTask(tasks: string[], jobList: JobInfo[], last: Map<string, Attempt>): TaskData[] {
    return tasks.map((name) => {
      const js = jobList.filter((j) => j.task === name);
      const outcomes: Record<string, number> = {};
      const durs: number[] = [];
      for (const j of js) {
        const a = last.get(j.id);
        const s = j.final ?? (a?.status === 'running' ? 'running' : 'waiting');
        outcomes[s] = (outcomes[s] ?? 0) + 1;
        if (a && a.status !== 'running') durs.push(a.end - a.start);
      }
      durs.sort((a, b) => a - b);
      const { mean } = meanSd(durs);
      return { name, jobs: js.length, outcomes, mean, p50: percentile(durs, 50), p90: percentile(durs, 90), max: durs.at(-1) ?? null, hist: histogram(durs) };
    });
  }

  /**
   * For each task with parameters and each parameter: the reduced values from cm-reduce's value
   * records (grouped by one parameter) when there are some, else the jobs' numeric stdout, else
   * their durations, each as mean and spread per value of the parameter.
   */
  private sweeps(tasks: string[], jobList: JobInfo[], last: Map<string, Attempt>): SweepSeries[] {
    const out: SweepSeries[] = [];
    const finals = [...this.values.values()].filter((v) => v.group && Object.keys(v.group).length === 1 && !v.partial && !v.error);
    const byReduce = new Map<string, ValueRow[]>();
    for (const v of finals) {
      const key = JSON.stringify([v.id, Object.keys(v.group!)[0]]);
      byReduce.set(key, [...(byReduce.get(key) ?? []), v]);
    }
    for (const [key, rows] of byReduce) {
      const [id, param] = JSON.parse(key) as [string, string];
      const ops = [...new Set(rows.map((r) => r.op ?? 'value'))];
      const xs = [...new Set(rows.map((r) => r.group![param]!))];
      sortValues(xs);
      const at = (op: string, x: string) => {
        const r = rows.find((v) => (v.op ?? 'value') === op && v.group![param] === x);
        const n = r && r.value !== null && r.value !== '' ? Number(r.value) : NaN;
        return Number.isFinite(n) ? n : null;
      };
      const sdOp = ops.includes('stddev') ? 'stddev' : undefined;
      for (const op of ops.filter((o) => o !== 'stddev' && o !== 'count' && o !== 'concat' && o !== 'histogram')) {
        out.push({ of: id, param, y: op, from: 'values', xs, mean: xs.map((x) => at(op, x)), sd: xs.map((x) => (sdOp && op === 'mean' ? at(sdOp, x) : null)), n: xs.map(() => 0) });
      }
    }
    for (const task of tasks) {
      const js = jobList.filter((j) => j.task === task && j.params);
      if (js.length === 0) continue;
      const names = Object.keys(js[0]!.params!);
      const numeric = js.some((j) => j.value !== undefined);
      for (const param of names) {
        if (out.some((s) => s.from === 'values' && s.param === param)) continue;
        const groups = new Map<string, number[]>();
        for (const j of js) {
          const x = j.params![param];
          if (x === undefined) continue;
          const a = last.get(j.id);
          const y = numeric ? j.value : a && j.final === 'ok' ? (a.end - a.start) / 1000 : undefined;
          if (!groups.has(x)) groups.set(x, []);
          if (y !== undefined) groups.get(x)!.push(y);
        }
        // a repetition counter or an id is no axis to plot against
        if (groups.size < 2 || groups.size > MAX_SWEEP_POINTS) continue;
        const xs = [...groups.keys()];
        sortValues(xs);
        const stats = xs.map((x) => meanSd(groups.get(x)!));
        out.push({ of: task, param, y: numeric ? 'value (stdout)' : 'duration (s)', from: 'events', xs, mean: stats.map((s) => s.mean), sd: stats.map((s) => s.sd), n: xs.map((x) => groups.get(x)!.length) });
      }
    }
    return out;
  }
}

/** numerically when every value is a number, else as text */
function sortValues(xs: string[]): void {
  if (xs.every((x) => x.trim() !== '' && Number.isFinite(Number(x)))) xs.sort((a, b) => Number(a) - Number(b));
  else xs.sort();
}
