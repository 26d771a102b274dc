// Which job runs where and when: no I/O, no clock, no timers. The engine feeds it jobs, outcomes
// and stop requests; it answers with actions (events to emit, jobs to launch or cancel). Keeping
// it pure is what makes slots, dependencies, failover and --halt testable in milliseconds.
import { resultFileOf, workdirOf, type EventRecord, type HostRecord, type JobRecord } from '@cm/protocol';
import { jobEvent, outcomeEvent, refusedBeforeRun, UNREACHABLE } from './events';
import { FinalIds, type Final } from './finals';
import { haltReached, type HaltPolicy } from './halt';
import type { JobOutcome } from './transport/types';
import { ReadyQueue } from './ready-queue';

export type Action =
  | { type: 'emit'; event: EventRecord; /** a final state to append to the joblog */ joblog: boolean }
  | { type: 'launch'; job: JobRecord; host: HostRecord; attempt: number; run: string; workdir: string; /** the host's spool of a job a dead cm-exec started: collect it instead of running it */ collect?: string }
  | { type: 'cancel'; job: string; reason: string };

export interface SchedulerOptions {
  hosts: HostRecord[];
  /** run id for jobs that carry none */
  run: string;
  /** global limit on running jobs (--jobs) */
  jobs?: number;
  /** default retries of a failed command (a job's own `retries` wins) */
  retries?: number;
  /** consecutive connection failures after which a host is marked down */
  downAfter?: number;
  halt?: HaltPolicy;
  /** hosts a pin (`th1`, `th[1-2]`, `@tag`) names; may throw (unknown host) */
  select?: (pin: string) => HostRecord[];
  /** transport name recorded in `started`/`finished` for a host */
  transportOf?: (host: HostRecord) => string;
  /** final events from the joblog (--resume), by job id */
  resumed?: Map<string, EventRecord>;
  /** jobs a cm-exec that died left running with a spool (--resume), by job id: their `started` lines */
  running?: Map<string, EventRecord>;
}


interface JobState {
  job: JobRecord;
  run: string;
  phase: 'waiting' | 'ready' | 'running' | 'final';
  /** deps and `after` entries that have not ended yet */
  pending: number;
  attempt: number;
  retriesLeft: number;
  connFailures: number;
  /** hosts that failed to connect for this job (made at the first such failure) */
  failedHosts?: Set<number>;
  eligible: number[];
  host: number;
  cancelReason?: string;
  /** the attempt running now was started by a cm-exec that died; this one collects it */
  collecting?: boolean;
}

interface HostState {
  rec: HostRecord;
  free: number;
  running: number;
  consecutive: number;
  down: boolean;
  /** a job ran there in this run: a later connection failure may be passing */
  reached: boolean;
  lastReason?: string;
}

export interface SchedulerStats {
  seen: number;
  running: number;
  ok: number;
  failed: number;
  gaveUp: number;
  skipped: number;
  hosts: Array<{ name: string; running: number; slots: number; down: boolean }>;
}

export class Scheduler {
  private readonly hosts: HostState[];
  private readonly byName = new Map<string, number>();
  private readonly allHosts: number[];
  /** jobs not yet final */
  private readonly states = new Map<string, JobState>();
  /**
   * how every final job ended, by id: all a later job's deps and a duplicate id need. A final job's
   * record and state are dropped, so a run of a million jobs holds one small entry per ended job.
   */
  private readonly finals = new FinalIds();
  /** dependency id -> ids of jobs waiting for it to end */
  private readonly waiters = new Map<string, string[]>();
  /** jobs ready to start, waiting for a slot on a host they may run on */
  private readonly ready: ReadyQueue<JobState>;
  private readonly pinCache = new Map<string, number[] | string>();
  private freeUp = 0;
  private running = 0;
  private open = 0;
  private inputEnded = false;
  private stopReason?: string;
  private halted = false;
  private readonly counts = { seen: 0, ok: 0, failed: 0, gaveUp: 0, skipped: 0 };
  private out: Action[] = [];

  constructor(private readonly opts: SchedulerOptions) {
    this.hosts = opts.hosts.map((rec) => ({ rec, free: rec.slots, running: 0, consecutive: 0, down: false, reached: false }));
    this.hosts.forEach((h, i) => this.byName.set(h.rec.name, i));
    this.allHosts = this.hosts.map((_, i) => i);
    this.freeUp = this.hosts.reduce((n, h) => n + h.free, 0);
    this.ready = new ReadyQueue(this.hosts.map((h) => h.free));
  }

  /** True once the input has ended and every job has a final state. */
  get idle(): boolean {
    return this.inputEnded && this.open === 0;
  }

  get stopping(): boolean {
    return this.stopReason !== undefined || this.halted;
  }

  get wasHalted(): boolean {
    return this.halted;
  }

  has(id: string): boolean {
    return this.states.has(id) || this.finals.has(id);
  }

  /** Jobs ready to start that wait for a slot: the engine reads no more input while there are many. */
  get backlog(): number {
    return this.ready.size;
  }

  stats(): SchedulerStats {
    return {
      ...this.counts,
      running: this.running,
      hosts: this.hosts.map((h) => ({ name: h.rec.name, running: h.running, slots: h.rec.slots, down: h.down })),
    };
  }

  /** 0 all jobs done, 1 some failed, gave up or were skipped, 5 stopped by --halt. */
  exitCode(): number {
    if (this.halted) return 5;
    return this.counts.failed + this.counts.gaveUp + this.counts.skipped > 0 ? 1 : 0;
  }

  /** A job arrives. Throws on a duplicate id (the engine turns it into an input error with the line). */
  add(job: JobRecord): Action[] {
    if (this.has(job.id)) throw new Error(`duplicate job id ${JSON.stringify(job.id)}`);
    const run = job.run ?? this.opts.run;
    const s: JobState = {
      job,
      run,
      phase: 'waiting',
      pending: 0,
      attempt: 0,
      retriesLeft: job.retries ?? this.opts.retries ?? 0,
      connFailures: 0,
      eligible: this.allHosts,
      host: -1,
    };
    this.states.set(job.id, s);
    this.counts.seen += 1;
    this.open += 1;
    const replay = this.opts.resumed?.get(job.id);
    if (replay) {
      this.emit({ ...replay, replayed: true }, false);
      this.finalize(s, finalOf(replay));
      return this.flush();
    }
    this.emit(this.base(s, 'queued'), false);
    const left = this.opts.running?.get(job.id);
    const hi = left?.host === undefined ? undefined : this.byName.get(left.host);
    if (left?.spool !== undefined && hi !== undefined && !this.stopping) {
      // its dependencies were met when it started: it only needs its slot back while it is collected
      s.attempt = (left.attempt ?? 1) - 1;
      s.collecting = true;
      this.launch(s, hi, left.spool);
      return this.flush();
    }
    if (this.stopping) {
      this.giveUp(s, this.stopReason ?? 'halted', false);
      return this.flush();
    }
    const refusal = refusedBeforeRun(job);
    if (refusal !== undefined) {
      this.giveUp(s, refusal, true);
      return this.flush();
    }
    const deps = new Set(job.deps);
    for (const d of new Set([...job.deps, ...(job.after ?? [])])) {
      const final = this.finals.get(d);
      if (final !== undefined) {
        if (deps.has(d) && final !== 'ok') {
          this.skip(s, `dependency ${d} ${describeFinal(final)}`);
          return this.flush();
        }
        continue;
      }
      s.pending += 1;
      const list = this.waiters.get(d);
      if (list) list.push(job.id);
      else this.waiters.set(d, [job.id]);
    }
    if (s.pending === 0) this.makeReady(s);
    this.pump();
    return this.flush();
  }

  /** End of input: dependencies never seen will never come. */
  endInput(): Action[] {
    this.inputEnded = true;
    for (const [dep, list] of [...this.waiters]) {
      if (this.has(dep)) continue;
      this.waiters.delete(dep);
      for (const id of list) {
        const s = this.states.get(id);
        if (s !== undefined && s.phase !== 'final') this.skip(s, `unknown dependency ${dep}`);
      }
    }
    this.settle();
    return this.flush();
  }

  /** A launched job came back from its transport. */
  done(id: string, outcome: JobOutcome): Action[] {
    const s = this.states.get(id);
    if (!s || s.phase !== 'running') throw new Error(`internal: outcome for job ${id} that is not running`);
    const hi = s.host;
    const h = this.hosts[hi]!;
    h.free += 1;
    if (!h.down) this.ready.setFree(hi, h.free);
    h.running -= 1;
    this.running -= 1;
    // (collected jobs may hold more than a host's slots: free counts up from below zero)
    if (!h.down && h.free > 0) this.freeUp += 1;

    const collected = s.collecting === true;
    s.collecting = false;
    if (!outcome.ran && outcome.lost && s.cancelReason === undefined) {
      // nothing ran it to its end: it runs again, as a job that never started would
      this.emit({ ...this.base(s, 'retry'), host: h.rec.name, attempt: s.attempt, reason: outcome.reason ?? 'lost' }, false);
      this.requeue(s);
    } else if (!outcome.ran && s.cancelReason !== undefined) {
      // stopped before it reached the host (a session still connecting): not the host's failure
      this.giveUp(s, s.cancelReason, false, outcome);
    } else if (!outcome.ran && outcome.refused) {
      // the engine says it cannot run anywhere in this run: not a host's failure, nothing to retry
      this.giveUp(s, outcome.reason ?? 'refused', true);
    } else if (!outcome.ran) {
      const reason = outcome.reason ?? 'connection failed';
      h.consecutive += 1;
      h.lastReason = reason;
      // a host never reached in this run that refuses or does not answer is down now, not after
      // --down-after rounds of the same wait: every dead host is known within one ConnectTimeout
      if (!h.down && !h.reached && isConnectionError(reason)) this.markDown(hi, reason, `cannot be reached: ${reason}`);
      else if (h.consecutive >= (this.opts.downAfter ?? 3) && !h.down) this.markDown(hi, reason);
      s.connFailures += 1;
      (s.failedHosts ??= new Set()).add(hi);
      if (!this.anyUp(s)) this.giveUp(s, `${UNREACHABLE}: every eligible host is down (${this.downList(s)})`, true);
      else if (s.connFailures >= (this.opts.downAfter ?? 3) * s.eligible.length) {
        this.giveUp(s, `${UNREACHABLE} after ${s.connFailures} connection failures (last: ${h.rec.name}: ${reason})`, true);
      } else {
        this.emit({ ...this.base(s, 'retry'), host: h.rec.name, attempt: s.attempt, reason: `connection failed: ${reason}` }, false);
        this.requeue(s);
      }
    } else {
      h.consecutive = 0;
      h.reached = true;
      const failed = outcome.timedOut === true || outcome.exit !== 0;
      if (s.cancelReason !== undefined && (failed || outcome.reason === 'cancelled')) {
        this.giveUp(s, s.cancelReason, false, outcome);
      } else if (failed && s.retriesLeft > 0 && !this.stopping) {
        s.retriesLeft -= 1;
        const reason = outcome.timedOut ? (outcome.reason ?? 'timeout') : `exit ${outcome.exit}`;
        // the attempt that failed, with its own times: a report draws it as a bar of its own
        this.emit({ ...this.base(s, 'retry'), host: h.rec.name, attempt: s.attempt, exit: outcome.exit, start: outcome.start.toISOString(), end: outcome.end.toISOString(), reason }, false);
        this.requeue(s);
      } else if (outcome.timedOut) {
        this.giveUp(s, outcome.reason ?? 'timeout', true, outcome);
      } else {
        const ev = this.outcomeEvent(s, 'finished', outcome);
        if (collected || outcome.collected) ev.reattached = true;
        this.emit(ev, true);
        this.finalize(s, outcome.exit === 0 ? 'ok' : 'failed');
      }
    }
    this.pump();
    this.settle();
    return this.flush();
  }

  /**
   * Stop starting jobs: interrupt, EPIPE or an input error. Jobs not yet started end `gave-up` with
   * the reason; running ones are cancelled when `cancelRunning`, else allowed to finish. These
   * gave-up events are not final for the joblog: a --resume runs those jobs.
   */
  stop(reason: string, cancelRunning: boolean): Action[] {
    if (this.stopReason === undefined) {
      this.stopReason = reason;
      this.abandonQueued(reason);
      if (cancelRunning) this.cancelRunning(reason);
    }
    this.settle();
    return this.flush();
  }

  private emit(event: EventRecord, joblog: boolean): void {
    this.out.push({ type: 'emit', event, joblog });
  }

  private flush(): Action[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private base(s: JobState, event: EventRecord['event']): EventRecord {
    return jobEvent(event, s.job, s.run);
  }

  private outcomeEvent(s: JobState, event: 'finished' | 'gave-up', o: JobOutcome, reason?: string): EventRecord {
    const h = this.hosts[s.host]!.rec;
    return outcomeEvent(event, s.job, s.run, { host: h.name, attempt: s.attempt, transport: this.opts.transportOf?.(h) }, o, reason);
  }

  private giveUp(s: JobState, reason: string, joblog: boolean, o?: JobOutcome): void {
    const ev = o && o.ran && s.host >= 0 ? this.outcomeEvent(s, 'gave-up', o, reason) : { ...this.base(s, 'gave-up'), reason };
    if (!(o && o.ran) && s.host >= 0) {
      ev.host = this.hosts[s.host]!.rec.name;
      ev.attempt = s.attempt;
    }
    this.emit(ev, joblog);
    this.finalize(s, 'gave-up');
  }

  private skip(s: JobState, reason: string): void {
    this.emit({ ...this.base(s, 'skipped'), reason }, true);
    this.finalize(s, 'skipped');
  }

  /** Marks a job final and releases (or skips) the jobs waiting on it, iteratively: chains can be long. */
  private finalize(first: JobState, how: Final): void {
    const work: Array<[JobState, Final]> = [[first, how]];
    while (work.length > 0) {
      const [s, f] = work.pop()!;
      if (s.phase === 'final') continue;
      s.phase = 'final';
      this.states.delete(s.job.id);
      this.finals.set(s.job.id, f);
      this.open -= 1;
      if (f === 'ok') this.counts.ok += 1;
      else if (f === 'failed') this.counts.failed += 1;
      else if (f === 'gave-up') this.counts.gaveUp += 1;
      else this.counts.skipped += 1;
      const list = this.waiters.get(s.job.id);
      if (list) {
        this.waiters.delete(s.job.id);
        for (const id of list) {
          const d = this.states.get(id);
          if (d === undefined || d.phase === 'final') continue;
          if (f !== 'ok' && d.job.deps.includes(s.job.id)) {
            this.emit({ ...this.base(d, 'skipped'), reason: `dependency ${s.job.id} ${describeFinal(f)}` }, true);
            work.push([d, 'skipped']);
            continue;
          }
          d.pending -= 1;
          if (d.pending === 0) this.makeReady(d);
        }
      }
      if ((f === 'failed' || f === 'gave-up') && !this.halted && !this.stopReason && !this.replaying(s)) {
        if (haltReached(this.opts.halt, this.counts.failed + this.counts.gaveUp, this.counts.seen)) this.halt();
      }
    }
  }

  private replaying(s: JobState): boolean {
    return this.opts.resumed?.has(s.job.id) === true && s.attempt === 0;
  }

  private halt(): void {
    this.halted = true;
    this.abandonQueued('halted');
    if (this.opts.halt?.when === 'now') this.cancelRunning('halted');
  }

  private abandonQueued(reason: string): void {
    for (const s of this.states.values()) {
      if (s.phase === 'waiting' || s.phase === 'ready') {
        this.emit({ ...this.base(s, 'gave-up'), reason }, false);
        this.finalize(s, 'gave-up');
      }
    }
    this.ready.clear();
  }

  private cancelRunning(reason: string): void {
    for (const s of this.states.values()) {
      if (s.phase === 'running' && s.cancelReason === undefined) {
        s.cancelReason = reason;
        this.out.push({ type: 'cancel', job: s.job.id, reason });
      }
    }
  }

  private eligibleOf(job: JobRecord): number[] | string {
    if (job.host === undefined || job.host === '') return this.allHosts;
    const cached = this.pinCache.get(job.host);
    if (cached !== undefined) return cached;
    let result: number[] | string;
    try {
      const hosts = this.opts.select ? this.opts.select(job.host) : this.defaultSelect(job.host);
      const idx = hosts.map((h) => this.byName.get(h.name)).filter((i): i is number => i !== undefined);
      result = idx.length > 0 ? idx : `host pin ${job.host} names no selected host`;
    } catch (err) {
      result = `host pin ${job.host}: ${(err as Error).message}`;
    }
    this.pinCache.set(job.host, result);
    return result;
  }

  /** Without an inventory selector: exact names and @tags only. */
  private defaultSelect(pin: string): HostRecord[] {
    const out: HostRecord[] = [];
    for (const item of pin.split(',')) {
      const t = item.trim();
      for (const h of this.hosts) {
        if (t.startsWith('@') ? t === '@all' || h.rec.tags.includes(t.slice(1)) : h.rec.name === t) out.push(h.rec);
      }
    }
    return out;
  }

  private makeReady(s: JobState): void {
    const eligible = this.eligibleOf(s.job);
    if (typeof eligible === 'string') {
      this.giveUp(s, eligible, true);
      return;
    }
    s.eligible = eligible;
    if (!this.anyUp(s)) {
      this.giveUp(s, `${UNREACHABLE}: every eligible host is down (${this.downList(s)})`, true);
      return;
    }
    s.phase = 'ready';
    this.ready.push(s, eligible);
  }

  private requeue(s: JobState): void {
    // nothing starts once stopping: a job whose host failed now ends as the queued ones did
    if (this.stopping) {
      this.giveUp(s, this.stopReason ?? 'halted', false);
      return;
    }
    s.phase = 'ready';
    s.host = -1;
    this.ready.push(s, s.eligible);
  }

  private anyUp(s: JobState): boolean {
    return s.eligible.some((i) => !this.hosts[i]!.down);
  }

  private downList(s: JobState): string {
    return s.eligible.map((i) => `${this.hosts[i]!.rec.name}: ${this.hosts[i]!.lastReason ?? 'down'}`).join('; ');
  }

  /** Down stays down for the rest of the run: no re-probing (a flapping host costs more than it gives). */
  private markDown(hi: number, reason: string, why = `${this.hosts[hi]!.consecutive} consecutive connection failures (last: ${reason})`): void {
    const h = this.hosts[hi]!;
    h.down = true;
    this.ready.setFree(hi, -Infinity);
    this.freeUp -= Math.max(0, h.free);
    this.emit({ kind: 'event', v: 1, event: 'host-down', host: h.rec.name, reason: why }, false);
    for (const s of this.ready.dropStranded(hi)) {
      // (the first to give up may trip --halt, which ends the others as 'halted')
      if (s.phase === 'ready') this.giveUp(s, `${UNREACHABLE}: every eligible host is down (${this.downList(s)})`, true);
    }
  }

  /** For a job that failed to connect somewhere: a free host, the ones it failed on last. */
  private pickAvoiding(s: JobState): number {
    let best = -1;
    let bestScore = -1;
    for (const i of s.eligible) {
      const h = this.hosts[i]!;
      if (h.down || h.free <= 0) continue;
      // a host that already failed to connect for this job is the last choice
      const score = (s.failedHosts?.has(i) ? 0 : 1 << 24) + h.free;
      if (score > bestScore) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }

  private pump(): void {
    if (this.stopping) return;
    const limit = this.opts.jobs ?? Infinity;
    while (this.running < limit && this.freeUp > 0) {
      const next = this.ready.shift();
      if (next === undefined) break;
      const [s, hi] = next;
      // (a queued job leaves the queue when it ends otherwise; this keeps a slip from running it)
      if (s.phase !== 'ready') continue;
      this.launch(s, s.failedHosts?.size ? this.pickAvoiding(s) : hi);
    }
  }

  private launch(s: JobState, hi: number, collect?: string): void {
    const h = this.hosts[hi]!;
    if (h.free > 0) this.freeUp -= 1;
    h.free -= 1;
    if (!h.down) this.ready.setFree(hi, h.free);
    h.running += 1;
    this.running += 1;
    s.attempt += 1;
    s.phase = 'running';
    s.host = hi;
    // (fields set in place, not spread: this runs once per job)
    const started = this.base(s, 'started');
    started.host = h.rec.name;
    started.attempt = s.attempt;
    started.transport = this.opts.transportOf?.(h.rec);
    started.running = h.running;
    // what the job will leave to fetch: cm-fetch opens its connection to the host now, not at the end
    if (s.job.outputs?.length) started.outputs = s.job.outputs;
    const resultFile = resultFileOf(s.job);
    if (resultFile !== undefined) started.result = resultFile;
    if (collect !== undefined) started.reattached = true;
    this.emit(started, false);
    const launch: Action = { type: 'launch', job: s.job, host: h.rec, attempt: s.attempt, run: s.run, workdir: workdirOf(s.run, s.job.id) };
    if (collect !== undefined) launch.collect = collect;
    this.out.push(launch);
  }

  /** After EOF with nothing running or ready, jobs still waiting wait on each other: a cycle. */
  private settle(): void {
    if (!this.inputEnded || this.running > 0 || this.open === 0) return;
    const stuck = [...this.states.values()].filter((s) => s.phase === 'waiting');
    if (stuck.length === 0 || this.ready.size > 0) return;
    for (const s of stuck) {
      if (s.phase !== 'waiting') continue;
      const deps = [...new Set([...s.job.deps, ...(s.job.after ?? [])])].filter((d) => !this.finals.has(d));
      this.skip(s, `dependency cycle through ${deps.join(', ')}`);
    }
    this.pump();
  }
}

/**
 * ssh's words for a host that is not there (nothing listens, no answer, no route, no such name), as
 * opposed to one that answered and refused the login or dropped a busy connection (MaxStartups).
 */
const CONNECTION_ERROR = /connection refused|timed out|no route to host|network is unreachable|could not resolve hostname|name or service not known/i;

export function isConnectionError(reason: string): boolean {
  return CONNECTION_ERROR.test(reason);
}

function finalOf(ev: EventRecord): Final {
  if (ev.event === 'finished') return ev.exit === 0 ? 'ok' : 'failed';
  return ev.event === 'skipped' ? 'skipped' : 'gave-up';
}

function describeFinal(f: Final | undefined): string {
  return f === 'failed' ? 'failed' : f === 'skipped' ? 'was skipped' : 'gave up';
}
