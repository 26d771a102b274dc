// The streaming fold behind cm-reduce: routes job outcomes (from `finished`/`gave-up`/`skipped`
// events and `fetch` records) to the reduce records that want them, folds each input the moment it
// arrives, and finishes a reduce as soon as its last input is in. No I/O of its own: reading result
// files, running cmd: reducers and writing value records are injected.
import type { EventRecord, FetchRecord, ReduceRecord, ValueRecord } from '@cm/protocol';
import { makeReducer, isValidOp, type CmdRunner, type Reducer } from './ops';
import { ValueError, type JVal } from './value';

export interface EngineOptions {
  /** overrides every reduce record's op; with no reduce record at all, reduces every job value into `all` */
  op?: string;
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

class Reduction {
  readonly reducer: Reducer;
  readonly want: number;
  have = 0;
  failed: string[] = [];
  error?: string;
  done = false;
  lastPartial?: string;
  readonly received = new Set<string>();
  readonly sweepSeen = new Map<string, Bitset>();
  /** plan positions of each input id; `a + a` lists a twice, and its value counts twice */
  readonly inputPos = new Map<string, number[]>();
  readonly sweepBase = new Map<string, { base: number; count: number }>();

  constructor(
    readonly rec: ReduceRecord,
    readonly op: string,
    runner: CmdRunner,
  ) {
    this.reducer = makeReducer(op, runner);
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

export class ReduceEngine {
  private readonly reductions = new Map<string, Reduction>();
  /** outcomes of finished reduces, for reduces that list them as inputs */
  private readonly reduceResults = new Map<string, { ok: true; val: JVal; text: string } | { ok: false; reason: string }>();
  private readonly orphans = new Map<string, { key: JobKey; outcome: Outcome }>();
  private orphanWarned = false;
  /** jobs that finished with exit 0 and declared a result file: their value comes with the fetch record */
  private readonly awaitingFetch = new Set<string>();
  private implicit?: Reduction;
  private sawReduce = false;
  private failures = 0;

  constructor(private readonly opts: EngineOptions) {
    if (opts.op !== undefined && !isValidOp(opts.op)) throw new ValueError(`unknown op ${JSON.stringify(opts.op)}`);
    if (opts.op !== undefined) {
      this.implicit = new Reduction({ kind: 'reduce', v: 1, id: 'all', op: opts.op, inputs: [] }, opts.op, opts.runCmd);
    }
  }

  async onReduce(rec: ReduceRecord): Promise<void> {
    if (this.reductions.has(rec.id)) throw new ValueError(`reduce ${rec.id} appears twice`);
    this.sawReduce = true;
    this.implicit = undefined;
    const op = this.opts.op ?? rec.op;
    const r = new Reduction(rec, op, this.opts.runCmd);
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
    const key: JobKey = { job: ev.job, run: ev.run, sweep: ev.sweep, index: ev.index };
    if (ev.event === 'finished') {
      if (ev.exit !== 0) {
        const why = ev.signal ? `killed by ${ev.signal}` : `exit ${ev.exit}`;
        return this.outcome(key, { ok: false, reason: `job ${ev.job} failed (${why})` });
      }
      if (ev.result !== undefined && ev.result !== 'stdout') {
        this.awaitingFetch.add(ev.job);
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
    const key: JobKey = { job: f.job, run: f.run, sweep: f.sweep, index: f.index };
    if (f.result !== undefined) {
      this.awaitingFetch.delete(f.job);
      let text: string;
      try {
        text = await this.opts.readResult(f.result);
      } catch (err) {
        return this.outcome(key, { ok: false, reason: `job ${f.job}: cannot read its result ${f.result}: ${(err as Error).message}` });
      }
      return this.outcome(key, { ok: true, text: text.trim() });
    }
    if (this.awaitingFetch.delete(f.job)) {
      return this.outcome(key, { ok: false, reason: `job ${f.job}: result not fetched${f.error ? `: ${f.error}` : ''}` });
    }
  }

  /** At end of input: every unfinished reduce fails (or, with allowMissing, reduces what it has). */
  async end(): Promise<number> {
    for (const job of this.awaitingFetch) {
      this.opts.warn?.(`job ${job} declared a result file but no fetch record came (is cm-fetch in the pipeline?)`);
    }
    if (this.implicit && !this.sawReduce) await this.finish(this.implicit);
    else if (!this.sawReduce) this.opts.warn?.('no reduce record in the input and no --op: nothing reduced');
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
    if (this.implicit && outcome.ok) {
      wanted = true;
      await this.fold(this.implicit, { id: key.job, pos: this.implicit.have, text: outcome.text });
    } else if (this.implicit && !outcome.ok && !this.opts.allowMissing) {
      this.implicit.failed.push(key.job);
      this.implicit.error ??= outcome.reason;
    } else if (this.implicit) {
      this.implicit.failed.push(key.job);
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
    if (!outcome.ok) return this.inputFailed(r, key.job, outcome.reason, positions.length);
    for (const pos of positions) if (!r.done) await this.fold(r, { id: key.job, pos, text: outcome.text });
  }

  private async deliverReduce(r: Reduction, id: string, res: { ok: true; val: JVal; text: string } | { ok: false; reason: string }): Promise<void> {
    const positions = r.claim({ job: id });
    if (positions === undefined) return;
    if (!res.ok) return this.inputFailed(r, id, res.reason, positions.length);
    for (const pos of positions) if (!r.done) await this.fold(r, { id, pos, val: res.val, text: res.text });
  }

  private async inputFailed(r: Reduction, id: string, reason: string, times = 1): Promise<void> {
    for (let i = 0; i < times; i += 1) r.failed.push(id);
    if (!this.opts.allowMissing) {
      r.error = reason;
      return this.finish(r);
    }
    this.opts.warn?.(`reduce ${r.rec.id}: leaving out ${reason}`);
    if (r.resolved >= r.want) await this.finish(r);
  }

  private async fold(r: Reduction, input: { id: string; pos: number; text?: string; val?: JVal }): Promise<void> {
    try {
      // A reduce's own value goes in as a JVal; its text form is only for concat/histogram/cmd.
      r.reducer.add(input.val !== undefined ? { id: input.id, pos: input.pos, val: input.val } : input);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      r.error = `job ${input.id}: ${err.message}`;
      return this.finish(r);
    }
    r.have += 1;
    if (r !== this.implicit && r.resolved >= r.want) return this.finish(r);
    if (this.opts.partial) {
      const value = r.reducer.partial();
      if (value === undefined) return;
      const text = JSON.stringify(value);
      if (text === r.lastPartial) return;
      r.lastPartial = text;
      await this.opts.emit(this.record(r, value, true));
    }
  }

  private record(r: Reduction, value: unknown, partial: boolean): ValueRecord {
    const rec: ValueRecord = { kind: 'value', v: 1, id: r.rec.id, op: r.op, value, partial, have: r.have };
    if (r !== this.implicit) rec.want = r.want;
    if (r.rec.final !== undefined) rec.final = r.rec.final;
    return rec;
  }

  private async finish(r: Reduction): Promise<void> {
    if (r.done) return;
    r.done = true;
    const missing = r.error === undefined ? r.missing() : [];
    if (r.error === undefined && missing.length > 0 && !this.opts.allowMissing) {
      r.error = `missing ${missing.length === 1 ? 'input' : 'inputs'}: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`;
    }
    if (r.error !== undefined) {
      this.failures += 1;
      this.opts.warn?.(`reduce ${r.rec.id}: ${r.error}`);
      this.reduceResults.set(r.rec.id, { ok: false, reason: `reduce ${r.rec.id} failed` });
      const rec = this.record(r, null, false);
      rec.error = r.error;
      const miss = r.missing();
      if (miss.length) rec.missing = miss;
      await this.opts.emit(rec);
      await this.propagate(r.rec.id);
      return;
    }
    let result: { plain: unknown; val: JVal };
    try {
      result = await r.reducer.final();
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      r.error = err.message;
      r.done = false;
      return this.finish(r);
    }
    this.reduceResults.set(r.rec.id, { ok: true, val: result.val, text: typeof result.plain === 'string' ? result.plain : JSON.stringify(result.plain) });
    const rec = this.record(r, result.plain, false);
    if (missing.length) rec.missing = missing;
    await this.opts.emit(rec);
    await this.propagate(r.rec.id);
  }

  private async propagate(id: string): Promise<void> {
    const res = this.reduceResults.get(id);
    if (!res) return;
    for (const r of this.reductions.values()) {
      if (!r.done && r.inputPos.has(id)) await this.deliverReduce(r, id, res);
    }
  }
}
