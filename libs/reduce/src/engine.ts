// The streaming fold behind cm-reduce: routes job outcomes (from `finished`/`gave-up`/`skipped`
// events and `fetch` records) to the reduce records that want them, folds each input the moment it
// arrives, and finishes a reduce as soon as its last input is in. With `by`, a reduce folds each
// combination of those parameters' values apart (a group) and prints one value per group and op.
// No I/O of its own: reading result files, running cmd: reducers and writing value records are injected.
import { resultFileOf, type EventRecord, type FetchRecord, type Params, type ReduceRecord, type ValueRecord } from '@cm/protocol';
import { makeReducer, parseOps, type CmdRunner, type Reducer } from './ops';
import { ValueError, type JVal } from './value';

export interface EngineOptions {
  /**
   * overrides every reduce record's op (a comma list: one value per op); with no reduce record at
   * all, reduces every job value into `all`
   */
  op?: string;
  /** overrides every reduce record's `by`; with no reduce record at all, groups every job value into `all` */
  by?: string[];
  partial?: boolean;
  allowMissing?: boolean;
  emit: (rec: ValueRecord) => void | Promise<void>;
  readResult: (path: string) => Promise<string>;
  runCmd: CmdRunner;
  /** people-facing notes (stderr) */
  warn?: (msg: string) => void;
  /** values nobody asked for yet are kept for reduce records that come later, up to this many */
  maxOrphans?: number;
}

/** What became of one job: its value text, or why there is none. */
type Outcome = { ok: true; text: string } | { ok: false; reason: string };

interface JobKey {
  job: string;
  run?: string;
  sweep?: string;
  index?: number;
  params?: Params;
}

/** Inputs missing from a reduce are listed up to this many; the rest are counted. */
const MISSING_LIST_MAX = 1000;

class Bitset {
  private words = new Uint32Array(0);
  has(i: number): boolean {
    return (((this.words[i >>> 5] ?? 0) >>> (i & 31)) & 1) === 1;
  }
  set(i: number): void {
    const w = i >>> 5;
    if (w >= this.words.length) {
      const grown = new Uint32Array(Math.max(w + 1, this.words.length * 2));
      grown.set(this.words);
      this.words = grown;
    }
    this.words[w] = (this.words[w] as number) | (1 << (i & 31));
  }
}

/** One combination of the `by` parameters' values (or, without `by`, the whole reduce): its folds. */
class Group {
  readonly reducers: Reducer[];
  have = 0;
  /** inputs of this group that failed, gave up or were skipped */
  failed: string[] = [];
  error?: string;
  done = false;
  readonly lastPartial: Array<string | undefined>;

  constructor(
    readonly labels: Params | undefined,
    ops: string[],
    runner: CmdRunner,
  ) {
    this.reducers = ops.map((op) => makeReducer(op, runner));
    this.lastPartial = ops.map(() => undefined);
  }
}

class Reduction {
  readonly ops: string[];
  readonly want: number;
  have = 0;
  failed: string[] = [];
  error?: string;
  done = false;
  /** without `by`, one group under the key '' */
  readonly groups = new Map<string, Group>();
  readonly received = new Set<string>();
  readonly sweepSeen = new Map<string, Bitset>();
  /** plan positions of each input id; `a + a` lists a twice, and its value counts twice */
  readonly inputPos = new Map<string, number[]>();
  readonly sweepBase = new Map<string, { base: number; count: number }>();

  constructor(
    readonly rec: ReduceRecord,
    op: string,
    readonly by: string[] | undefined,
    private readonly runner: CmdRunner,
  ) {
    this.ops = parseOps(op);
    if (!by) this.groups.set('', new Group(undefined, this.ops, runner));
    rec.inputs.forEach((id, i) => {
      const at = this.inputPos.get(id);
      if (at) at.push(i);
      else this.inputPos.set(id, [i]);
    });
    let base = rec.inputs.length;
    for (const [name, count] of Object.entries(rec.sweeps ?? {})) {
      this.sweepBase.set(name, { base, count });
      this.sweepSeen.set(name, new Bitset());
      base += count;
    }
    this.want = rec.inputs.length + [...this.sweepBase.values()].reduce((a, s) => a + s.count, 0);
  }

  get resolved(): number {
    return this.have + this.failed.length;
  }

  /** The group of an input with these parameters, or why there is none (a `by` parameter it lacks). */
  groupOf(id: string, params: Params | undefined): Group | string {
    if (!this.by) return this.groups.get('') as Group;
    const labels: Params = {};
    for (const name of this.by) {
      const v = params?.[name];
      if (v === undefined) {
        return `job ${id} has no parameter ${JSON.stringify(name)} (by ${this.by.join(',')})${params ? '' : ': its record carries no params'}`;
      }
      labels[name] = v;
    }
    const key = JSON.stringify(this.by.map((n) => labels[n]));
    let g = this.groups.get(key);
    if (!g) {
      g = new Group(labels, this.ops, this.runner);
      this.groups.set(key, g);
    }
    return g;
  }

  /** The plan positions of job `key` in this reduce, or undefined when it is not an input (or already in). */
  claim(key: JobKey): number[] | undefined {
    if (this.done) return undefined;
    if (this.rec.run !== undefined && key.run !== undefined && key.run !== this.rec.run) return undefined;
    const pos = this.inputPos.get(key.job);
    if (pos !== undefined) {
      if (this.received.has(key.job)) return undefined;
      this.received.add(key.job);
      return pos;
    }
    if (key.sweep !== undefined) {
      const s = this.sweepBase.get(key.sweep);
      const seen = this.sweepSeen.get(key.sweep);
      if (!s || !seen) return undefined;
      // Sweep runs are numbered by `index`; without one, fall back to the job id.
      if (key.index !== undefined) {
        if (key.index >= s.count + 1 || seen.has(key.index)) return undefined;
        seen.set(key.index);
        return [s.base + Math.min(key.index, s.count - 1)];
      }
      if (this.received.has(key.job)) return undefined;
      this.received.add(key.job);
      return [s.base];
    }
    return undefined;
  }

  wants(key: JobKey): boolean {
    if (this.rec.run !== undefined && key.run !== undefined && key.run !== this.rec.run) return false;
    return this.inputPos.has(key.job) || (key.sweep !== undefined && this.sweepBase.has(key.sweep));
  }

  missing(): string[] {
    const out: string[] = [...new Set(this.failed)];
    let more = 0;
    const push = (s: string): void => {
      if (out.length < MISSING_LIST_MAX) out.push(s);
      else more += 1;
    };
    for (const id of this.inputPos.keys()) {
      if (!this.received.has(id)) push(id);
    }
    for (const [name, { count }] of this.sweepBase) {
      const seen = this.sweepSeen.get(name) as Bitset;
      // Sweeps may number from 0 or from 1: count what is there, list what is not.
      let got = 0;
      for (let i = 0; i <= count; i += 1) if (seen.has(i)) got += 1;
      if (got >= count) continue;
      const zeroBased = !seen.has(count);
      for (let i = zeroBased ? 0 : 1; i < (zeroBased ? count : count + 1); i += 1) if (!seen.has(i)) push(`${name}[${i}]`);
    }
    if (more > 0) out.push(`... and ${more} more`);
    return out;
  }
}

/** A finished reduce as an input of another: one value per op, or why there is none. */
type ReduceResult = { ok: true; vals: JVal[] } | { ok: false; reason: string };

/** The op a reduce runs with no reduce record and no --op (only --by): the plan's `+`. */
const DEFAULT_OP = 'sum';

export class ReduceEngine {
  private readonly reductions = new Map<string, Reduction>();
  /** outcomes of finished reduces, for reduces that list them as inputs */
  private readonly reduceResults = new Map<string, ReduceResult>();
  private readonly orphans = new Map<string, { key: JobKey; outcome: Outcome }>();
  private orphanWarned = false;
  /** jobs that finished with exit 0 and declared a result file (with their params): their value comes with the fetch record */
  private readonly awaitingFetch = new Map<string, Params | undefined>();
  private implicit?: Reduction;
  private sawReduce = false;
  private failures = 0;

  constructor(private readonly opts: EngineOptions) {
    if (opts.op !== undefined) parseOps(opts.op);
    if (opts.op !== undefined || opts.by !== undefined) {
      const op = opts.op ?? DEFAULT_OP;
      this.implicit = new Reduction({ kind: 'reduce', v: 1, id: 'all', op, inputs: [] }, op, opts.by, opts.runCmd);
    }
  }

  async onReduce(rec: ReduceRecord): Promise<void> {
    if (this.reductions.has(rec.id)) throw new ValueError(`reduce ${rec.id} appears twice`);
    this.sawReduce = true;
    this.implicit = undefined;
    const op = this.opts.op ?? rec.op;
    let r: Reduction;
    try {
      r = new Reduction(rec, op, this.opts.by ?? rec.by, this.opts.runCmd);
    } catch (err) {
      if (err instanceof ValueError) throw new ValueError(`reduce ${rec.id}: ${err.message}`);
      throw err;
    }
    this.reductions.set(rec.id, r);
    if (r.want === 0) return this.finish(r);
    for (const { key, outcome } of this.orphans.values()) {
      // Orphans stay until the end: a later reduce record may want the same value again.
      if (r.wants(key)) await this.deliver(r, key, outcome);
      if (r.done) break;
    }
    for (const id of r.rec.inputs) {
      const res = this.reduceResults.get(id);
      if (res && !r.done) await this.deliverReduce(r, id, res);
    }
  }

  async onEvent(ev: EventRecord): Promise<void> {
    if (ev.job === undefined) return;
    const key: JobKey = { job: ev.job, run: ev.run, sweep: ev.sweep, index: ev.index, params: ev.params };
    if (ev.event === 'finished') {
      if (ev.exit !== 0) {
        const why = ev.signal ? `killed by ${ev.signal}` : `exit ${ev.exit}`;
        return this.outcome(key, { ok: false, reason: `job ${ev.job} failed (${why})` });
      }
      if (resultFileOf(ev) !== undefined) {
        this.awaitingFetch.set(ev.job, ev.params);
        return;
      }
      let text = ev.stdout ?? '';
      if (ev.truncated) {
        if (!ev.log) return this.outcome(key, { ok: false, reason: `job ${ev.job}: stdout was truncated and no log kept; declare a result file` });
        try {
          text = await this.opts.readResult(ev.log);
        } catch (err) {
          return this.outcome(key, { ok: false, reason: `job ${ev.job}: cannot read its full output ${ev.log}: ${(err as Error).message}` });
        }
      }
      return this.outcome(key, { ok: true, text: text.trim() });
    }
    if (ev.event === 'gave-up' || ev.event === 'skipped') {
      return this.outcome(key, { ok: false, reason: `job ${ev.job} ${ev.event}${ev.reason ? ` (${ev.reason})` : ''}` });
    }
  }

  async onFetch(f: FetchRecord): Promise<void> {
    if (f.direction !== 'out') return;
    const key: JobKey = { job: f.job, run: f.run, sweep: f.sweep, index: f.index, params: f.params ?? this.awaitingFetch.get(f.job) };
    const awaited = this.awaitingFetch.delete(f.job);
    if (f.result !== undefined) {
      let text: string;
      try {
        text = await this.opts.readResult(f.result);
      } catch (err) {
        return this.outcome(key, { ok: false, reason: `job ${f.job}: cannot read its result ${f.result}: ${(err as Error).message}` });
      }
      return this.outcome(key, { ok: true, text: text.trim() });
    }
    if (awaited) {
      return this.outcome(key, { ok: false, reason: `job ${f.job}: result not fetched${f.error ? `: ${f.error}` : ''}` });
    }
  }

  /** At end of input: every unfinished reduce fails (or, with allowMissing, reduces what it has). */
  async end(): Promise<number> {
    for (const job of this.awaitingFetch.keys()) {
      this.opts.warn?.(`job ${job} declared a result file but no fetch record came (is cm-fetch in the pipeline?)`);
    }
    if (this.implicit && !this.sawReduce) await this.finish(this.implicit);
    else if (!this.sawReduce) this.opts.warn?.('no reduce record in the input and no --op or --by: nothing reduced');
    // Finishing one reduce hands its outcome on (propagate), so reduces of reduces settle too.
    for (const r of this.reductions.values()) if (!r.done) await this.finish(r);
    return this.failures > 0 ? 1 : 0;
  }

  private async outcome(key: JobKey, outcome: Outcome): Promise<void> {
    let wanted = false;
    for (const r of this.reductions.values()) {
      if (!r.wants(key)) continue;
      wanted = true;
      await this.deliver(r, key, outcome);
    }
    if (this.implicit && !this.implicit.done) {
      wanted = true;
      if (outcome.ok) await this.fold(this.implicit, { id: key.job, pos: this.implicit.have, text: outcome.text }, key.params);
      else await this.inputFailed(this.implicit, key.job, outcome.reason, 1, key.params);
    }
    if (!wanted || !this.sawReduce) {
      if (this.orphans.size < (this.opts.maxOrphans ?? 100_000)) this.orphans.set(key.job, { key, outcome });
      else if (!this.orphanWarned && !this.implicit) {
        this.orphanWarned = true;
        this.opts.warn?.('many values arrived before any reduce record asked for them; later ones are not kept');
      }
    }
  }

  private async deliver(r: Reduction, key: JobKey, outcome: Outcome): Promise<void> {
    const positions = r.claim(key);
    if (positions === undefined) return;
    if (!outcome.ok) return this.inputFailed(r, key.job, outcome.reason, positions.length, key.params);
    for (const pos of positions) if (!r.done) await this.fold(r, { id: key.job, pos, text: outcome.text }, key.params);
  }

  private async deliverReduce(r: Reduction, id: string, res: ReduceResult): Promise<void> {
    const positions = r.claim({ job: id });
    if (positions === undefined) return;
    if (!res.ok) return this.inputFailed(r, id, res.reason, positions.length, undefined);
    // One value per op: op i of this reduce folds op i of its input (mean of means), or the one value there is.
    if (res.vals.length !== 1 && res.vals.length !== r.ops.length) {
      return this.inputFailed(r, id, `reduce ${id} has ${res.vals.length} values (ops) and reduce ${r.rec.id} ${r.ops.length}`, positions.length, undefined);
    }
    for (const pos of positions) if (!r.done) await this.fold(r, { id, pos, vals: res.vals }, undefined);
  }

  /** The reduction fails at once (fail fast), except `all`, which fails once the input has ended. */
  private async fail(r: Reduction, reason: string): Promise<void> {
    r.error ??= reason;
    if (r !== this.implicit) await this.finish(r);
  }

  private async inputFailed(r: Reduction, id: string, reason: string, times: number, params: Params | undefined): Promise<void> {
    for (let i = 0; i < times; i += 1) r.failed.push(id);
    // A failed input of a grouped reduce fails only its group, when its params say which one.
    const g = r.groupOf(id, params);
    if (typeof g !== 'string') for (let i = 0; i < times; i += 1) g.failed.push(id);
    if (!this.opts.allowMissing) {
      if (typeof g === 'string' || !r.by) return this.fail(r, reason);
      g.error ??= reason;
      await this.finishGroup(r, g);
    } else {
      this.opts.warn?.(`reduce ${r.rec.id}: leaving out ${reason}`);
    }
    if (r !== this.implicit && r.resolved >= r.want) await this.finish(r);
  }

  private async fold(r: Reduction, input: { id: string; pos: number; text?: string; vals?: JVal[] }, params: Params | undefined): Promise<void> {
    // `all` keeps reading to its end after an error; nothing more to fold then.
    if (r.error !== undefined) return;
    const g = r.groupOf(input.id, params);
    if (typeof g === 'string') return this.fail(r, g);
    if (!g.done) {
      try {
        g.reducers.forEach((reducer, i) => {
          // A reduce's own value goes in as a JVal; its text form is only for concat/histogram/cmd.
          const val = input.vals?.[input.vals.length === 1 ? 0 : i];
          reducer.add(val !== undefined ? { id: input.id, pos: input.pos, val } : { id: input.id, pos: input.pos, text: input.text });
        });
      } catch (err) {
        if (!(err instanceof ValueError)) throw err;
        const why = `job ${input.id}: ${err.message}`;
        if (!r.by) return this.fail(r, why);
        g.error ??= why;
        await this.finishGroup(r, g);
      }
    }
    if (!g.error) g.have += 1;
    r.have += 1;
    if (r !== this.implicit && r.resolved >= r.want) return this.finish(r);
    if (this.opts.partial && !g.done) {
      for (let i = 0; i < g.reducers.length; i += 1) {
        const value = (g.reducers[i] as Reducer).partial();
        if (value === undefined) continue;
        const text = JSON.stringify(value);
        if (text === g.lastPartial[i]) continue;
        g.lastPartial[i] = text;
        await this.opts.emit(this.record(r, g, i, value, true));
      }
    }
  }

  private record(r: Reduction, g: Group, op: number, value: unknown, partial: boolean): ValueRecord {
    const rec: ValueRecord = { kind: 'value', v: 1, id: r.rec.id, op: r.ops[op] as string, value, partial, have: r.by ? g.have : r.have };
    // A group's share of the inputs is known only once they are all in.
    if (r.by && g.labels) {
      if (!partial) rec.want = g.have + g.failed.length;
    } else if (r !== this.implicit) rec.want = r.want;
    if (r.rec.final !== undefined) rec.final = r.rec.final;
    if (g.labels) rec.group = g.labels;
    return rec;
  }

  /** Prints a group's values (or its error), one record per op. */
  private async finishGroup(r: Reduction, g: Group, missing: string[] = g.failed): Promise<JVal[] | undefined> {
    if (g.done) return undefined;
    g.done = true;
    const error = g.error ?? r.error;
    if (error !== undefined) {
      this.failures += 1;
      this.opts.warn?.(`reduce ${r.rec.id}${groupText(g)}: ${error}`);
      for (let i = 0; i < r.ops.length; i += 1) {
        const rec = this.record(r, g, i, null, false);
        rec.error = error;
        if (missing.length) rec.missing = [...new Set(missing)];
        await this.opts.emit(rec);
      }
      return undefined;
    }
    const results: Array<{ plain: unknown; val: JVal }> = [];
    for (const reducer of g.reducers) {
      try {
        results.push(await reducer.final());
      } catch (err) {
        if (!(err instanceof ValueError)) throw err;
        g.error = err.message;
        g.done = false;
        return this.finishGroup(r, g, missing);
      }
    }
    for (let i = 0; i < results.length; i += 1) {
      const rec = this.record(r, g, i, (results[i] as { plain: unknown }).plain, false);
      if (missing.length) rec.missing = [...new Set(missing)];
      await this.opts.emit(rec);
    }
    return results.map((x) => x.val);
  }

  private async finish(r: Reduction): Promise<void> {
    if (r.done) return;
    r.done = true;
    const missingError = (missing: string[]): string =>
      `missing ${missing.length === 1 ? 'input' : 'inputs'}: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`;
    if (r.by) {
      // Inputs that never came (or failed with no params) belong to no known group: every group may miss them.
      const placed = new Set([...r.groups.values()].flatMap((g) => g.failed));
      const unplaced = r.missing().filter((m) => !placed.has(m));
      if (r.error === undefined && unplaced.length > 0) {
        if (this.opts.allowMissing) this.opts.warn?.(`reduce ${r.rec.id}: left out, group unknown: ${unplaced.join(', ')}`);
        else r.error = missingError(unplaced);
      }
      if (r.groups.size === 0 && r.error !== undefined) {
        // Nothing arrived to group: one unlabelled value per op says why.
        r.groups.set('', new Group(undefined, r.ops, this.opts.runCmd));
      }
      for (const g of r.groups.values()) await this.finishGroup(r, g, r.error !== undefined ? [...g.failed, ...unplaced] : g.failed);
      this.reduceResults.set(r.rec.id, { ok: false, reason: `reduce ${r.rec.id} is grouped by ${r.by.join(',')}: its values cannot be an input` });
      return this.propagate(r.rec.id);
    }
    const missing = r.error === undefined ? r.missing() : [];
    if (r.error === undefined && missing.length > 0 && !this.opts.allowMissing) r.error = missingError(missing);
    const g = r.groups.get('') as Group;
    g.error ??= r.error;
    const vals = await this.finishGroup(r, g, r.missing());
    if (vals === undefined) {
      if (r.error === undefined) r.error = g.error;
      this.reduceResults.set(r.rec.id, { ok: false, reason: `reduce ${r.rec.id} failed` });
    } else {
      this.reduceResults.set(r.rec.id, { ok: true, vals });
    }
    return this.propagate(r.rec.id);
  }

  private async propagate(id: string): Promise<void> {
    const res = this.reduceResults.get(id);
    if (!res) return;
    for (const r of this.reductions.values()) {
      if (!r.done && r.inputPos.has(id)) await this.deliverReduce(r, id, res);
    }
  }
}

function groupText(g: Group): string {
  return g.labels ? ` ${Object.entries(g.labels).map(([k, v]) => `${k}=${v}`).join(' ')}` : '';
}
