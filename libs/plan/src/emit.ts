// Turns a plan into NDJSON lines, lazily: a million-run sweep is generated one line at a time.
import type { JobRecord, RecordWriter, ReduceRecord } from '@cm/protocol';
import { paramSize, paramValue } from './params';
import type { Plan, Sum, Unit } from './plan';

export interface EmitOptions {
  /** run id put on every job and reduce record */
  run?: string;
}

/** A dependency on a sweep lists its run ids only while that stays small; else a barrier job stands in. */
const INLINE_DEPS = 1000;
const INLINE_TOTAL = 100_000;

/** Runs of a sweep of `count` that one barrier job waits for. */
export function barrierFanIn(count: number): number {
  return Math.max(INLINE_DEPS, Math.ceil(Math.sqrt(count)));
}

export function runId(u: Unit, k: number): string {
  return u.def.sweep ? `${u.def.name}.${k}` : u.def.name;
}

/** Sweeps that need a barrier job `<name>.all` because some run waits for all of them. */
export function barriersOf(plan: Plan): Set<Unit> {
  const out = new Set<Unit>();
  for (const u of plan.units) {
    for (const d of u.deps.keys()) {
      if (d.def.sweep && (d.def.count > INLINE_DEPS || d.def.count * u.def.count > INLINE_TOTAL)) out.add(d);
    }
  }
  return out;
}

function depIds(u: Unit, barriers: Set<Unit>): string[] {
  const ids: string[] = [];
  for (const d of u.deps.keys()) {
    if (!d.def.sweep) ids.push(d.def.name);
    else if (barriers.has(d)) ids.push(`${d.def.name}.all`);
    else for (let k = 0; k < d.def.count; k++) ids.push(runId(d, k));
  }
  return ids;
}

function constants(u: Unit): Record<string, string> {
  const env: Record<string, string> = { ...u.def.options.env };
  for (const p of u.def.params) if (p.constant !== undefined) env[p.name] = p.constant;
  return env;
}

/** The parameters of a def's one run (its constants), or undefined for a def without parameters. */
function constantParams(u: Unit): Record<string, string> | undefined {
  if (u.def.params.length === 0) return undefined;
  return Object.fromEntries(u.def.params.map((p) => [p.name, p.constant ?? '']));
}

function jobTemplate(u: Unit, barriers: Set<Unit>, opts: EmitOptions): JobRecord {
  const o = u.def.options;
  const job: JobRecord = { kind: 'job', v: 1, id: u.def.name, task: u.def.name, command: u.def.body, deps: depIds(u, barriers) };
  if (o.host !== undefined) job.host = o.host;
  const env = constants(u);
  if (Object.keys(env).length > 0 || u.def.sweep) job.env = env;
  if (o.timeout !== undefined) job.timeout = o.timeout;
  if (o.retries !== undefined) job.retries = o.retries;
  if (o.inputs) job.inputs = o.inputs;
  if (o.outputs) job.outputs = o.outputs;
  if (o.result !== undefined) job.result = o.result;
  const params = constantParams(u);
  if (params && !u.def.sweep) job.params = params;
  if (opts.run !== undefined) job.run = opts.run;
  return job;
}

function reduceRecord(s: Sum, opts: EmitOptions): ReduceRecord {
  const r: ReduceRecord = { kind: 'reduce', v: 1, id: s.id, op: 'sum', inputs: s.inputs.map((x) => (x.kind === 'sum' ? x.id : x.def.name)) };
  if (s.sweeps.length > 0) r.sweeps = Object.fromEntries(s.sweeps.map((u) => [u.def.name, u.def.count]));
  if (s.by) r.by = s.by;
  if (s.final) r.final = true;
  if (opts.run !== undefined) r.run = opts.run;
  return r;
}

function* sweepLines(u: Unit, barriers: Set<Unit>, opts: EmitOptions): Generator<string> {
  const t = jobTemplate(u, barriers, opts);
  const base = t.env ?? {};
  const name = u.def.name;
  const params = u.def.params;
  // Everything but id, env and index is the same for every run: serialise it once.
  const { id: _id, env: _env, run, ...rest } = t;
  void _id;
  void _env;
  const head = `{"kind":"job","v":1,"id":"${name}.`;
  const middle = `",${JSON.stringify({ task: rest.task, command: rest.command, deps: rest.deps, host: rest.host }).slice(1, -1)}`;
  const tail = JSON.stringify({ timeout: rest.timeout, retries: rest.retries, inputs: rest.inputs, outputs: rest.outputs, result: rest.result, sweep: name }).slice(1, -1);
  const end = run !== undefined ? `,"run":${JSON.stringify(run)}}` : '}';
  // The environment is written by hand: two objects per run were most of the garbage of a big sweep.
  const fixed = Object.entries(base).filter(([key]) => !params.some((p) => p.name === key && (p.range || p.values)));
  const envHead = `{${fixed.map(([key, v]) => `${JSON.stringify(key)}:${JSON.stringify(v)},`).join('')}`;
  const swept = params
    .map((p, at) => ({ key: `${JSON.stringify(p.name)}:`, size: paramSize(p), p, simple: p.range !== undefined, at }))
    .filter((s) => s.p.range || s.p.values);
  const parts: string[] = new Array(swept.length);
  // params: every parameter in the def's order, each written as in env (constants once, here);
  // without constants they are the swept part of env, joined once for both.
  const paramParts = params.map((p) => `${JSON.stringify(p.name)}:${JSON.stringify(p.constant ?? '')}`);
  const constantsToo = swept.length < params.length;
  for (let k = 0; k < u.def.count; k++) {
    let rest = k;
    for (let j = swept.length - 1; j >= 0; j--) {
      const s = swept[j];
      const value = paramValue(s.p, rest % s.size);
      rest = Math.floor(rest / s.size);
      parts[j] = paramParts[s.at] = s.simple ? `${s.key}"${value}"` : `${s.key}${JSON.stringify(value)}`;
    }
    const values = parts.join(',');
    yield `${head}${k}${middle},"env":${envHead}${values}},${tail},"index":${k},"params":{${constantsToo ? paramParts.join(',') : values}}${end}`;
  }
  if (barriers.has(u)) yield* barrierLines(u, opts);
}

function barrierJob(id: string, deps: string[], opts: EmitOptions): string {
  const job: JobRecord = { kind: 'job', v: 1, id, task: id.replace(/\.all\..*/, '.all'), command: ':', deps };
  if (opts.run !== undefined) job.run = opts.run;
  return JSON.stringify(job);
}

// A two-level tree of no-op jobs, so no line lists more than max(1000, sqrt(N)) ids.
function* barrierLines(u: Unit, opts: EmitOptions): Generator<string> {
  const n = u.def.count;
  const fan = barrierFanIn(n);
  const top = `${u.def.name}.all`;
  const ids = (from: number, to: number, f: (k: number) => string): string[] => Array.from({ length: to - from }, (_, j) => f(from + j));
  if (n <= fan) {
    yield barrierJob(top, ids(0, n, (k) => runId(u, k)), opts);
    return;
  }
  const groups = Math.ceil(n / fan);
  for (let g = 0; g < groups; g++) {
    yield barrierJob(`${top}.${g}`, ids(g * fan, Math.min(n, (g + 1) * fan), (k) => runId(u, k)), opts);
  }
  yield barrierJob(top, ids(0, groups, (g) => `${top}.${g}`), opts);
}

/**
 * The plan's records as NDJSON lines, generated lazily: the reduce records first, then the jobs in
 * dependency order. A reduce known before its inputs folds each value as it passes; after them,
 * cm-reduce would have to hold every value until it came, and cm-exec, which reads no further
 * than the jobs it can soon start, passes it on only at the end.
 */
export function* planLines(plan: Plan, opts: EmitOptions = {}): Generator<string> {
  const barriers = barriersOf(plan);
  for (const step of plan.steps) if (step.kind === 'sum') yield JSON.stringify(reduceRecord(step, opts));
  for (const step of plan.steps) {
    if (step.kind === 'sum') continue;
    if (step.def.sweep) yield* sweepLines(step, barriers, opts);
    else yield JSON.stringify(jobTemplate(step, barriers, opts));
  }
}

/** Lines are handed to the writer in batches of about this many characters. */
const BATCH = 64 * 1024;

/**
 * Writes the plan, waiting whenever the reader is slower; stops quietly when it goes away. Lines
 * go out in batches: stdout to a pipe is synchronous on Linux, so one write per line would cost
 * a system call per job.
 */
export async function writePlan(plan: Plan, writer: RecordWriter, opts: EmitOptions = {}): Promise<number> {
  let n = 0;
  let batch: string[] = [];
  let size = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const wait = writer.writeLine(batch.join('\n'));
    batch = [];
    size = 0;
    if (wait) await wait;
  };
  for (const line of planLines(plan, opts)) {
    if (writer.closed) break;
    batch.push(line);
    size += line.length + 1;
    n++;
    if (size >= BATCH) await flush();
  }
  if (!writer.closed) await flush();
  return n;
}
