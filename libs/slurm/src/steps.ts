// Steps mode: one Slurm allocation, every cm job an `srun --exclusive` step inside it. Slurm places
// each step on a free CPU of the allocation; cm keeps at most as many steps in flight as the
// allocation has CPUs (so none waits inside srun) and resolves dependencies itself, which avoids
// the controller's scheduling cycle per job (the lab measured ~45 steps/s against ~3 batch jobs/s).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { EventRecord, JobRecord } from '@cm/protocol';
import { baseEvent, Capture, copyJobFields, DepTracker, dropSrunExitLine, splitMarker, TRANSPORT, type Emit } from './common';
import { sallocArgs, srunArgs, STEP_MARKER, type SlurmOptions } from './options';
import { parseSlurmTime, runCmd, slurmMessage } from './proc';

export interface Allocation {
  id: string;
  /** the allocated nodes and their CPUs */
  nodes: Array<{ name: string; cpus: number }>;
  cpus: number;
  /** seconds, undefined when unlimited */
  limit?: number;
  limitText: string;
}

interface Running {
  job: JobRecord;
  /** stops the job (cancellation): SIGTERM to srun, or an abort of the worker's job */
  stop: () => void;
  timedOut: boolean;
}

const NODE_FAILURE = /node fail|NODE_FAIL|Node failure/i;
const TIME_LIMIT = /DUE TO TIME LIMIT/;

export class StepsEngine {
  protected tracker = new DepTracker();
  protected ready: JobRecord[] = [];
  protected running = new Map<string, Running>();
  protected perHost = new Map<string, number>();
  protected attempts = new Map<string, number>();
  private alloc?: Allocation;
  private allocating?: Promise<Allocation | string>;
  private allocError?: string;
  protected failures = 0;
  private waiters: Array<() => void> = [];
  protected stopped = false;
  private pumping = false;

  constructor(
    protected readonly opts: SlurmOptions,
    protected readonly env: NodeJS.ProcessEnv,
    protected readonly run: string,
    protected readonly logDir: string,
    protected readonly emit: Emit,
    protected readonly signal: AbortSignal,
  ) {}

  get failed(): number {
    return this.failures;
  }

  async add(job: JobRecord): Promise<void> {
    await this.emit(baseEvent('queued', job, this.run));
    await this.apply(this.tracker.add(job));
  }

  /** Waits for every job to reach a final state, then releases the allocation. */
  async drain(): Promise<void> {
    for (const { job, missing } of this.tracker.takeStranded()) {
      // Deps that never came in the stream cannot be waited for: the job is given up, not lost.
      await this.finish(job, 'failed', 'gave-up', { reason: `dependency ${missing ?? '?'} is not in the job stream` });
    }
    await this.quiet();
    await this.release();
  }

  /** Cancellation: stop every step, give up what has not run, release the allocation (scancel). */
  async cancel(reason: string): Promise<void> {
    this.stopped = true;
    for (const r of this.running.values()) r.stop();
    const waiting = this.ready.splice(0);
    for (const job of waiting) await this.final(job, 'gave-up', { reason });
    for (const { job } of this.tracker.takeStranded(true)) await this.final(job, 'gave-up', { reason });
    // scancel first: it ends the steps even where srun itself is slow to react to SIGTERM.
    await this.release();
    await this.quiet();
  }

  private async apply(r: { ready: JobRecord[]; skipped: Array<{ job: JobRecord; dep: string }> }): Promise<void> {
    for (const { job, dep } of r.skipped) await this.final(job, 'skipped', { reason: `dependency ${dep} failed` });
    if (this.stopped) {
      for (const job of r.ready) await this.final(job, 'gave-up', { reason: 'interrupted' });
      return;
    }
    this.ready.push(...r.ready);
    void this.pump();
  }

  private async allocation(): Promise<Allocation | string> {
    if (this.alloc) return this.alloc;
    if (this.allocError) return this.allocError;
    this.allocating ??= this.allocate();
    return this.allocating;
  }

  private async allocate(): Promise<Allocation | string> {
    let maxNodes = 1;
    const part = this.opts.partition ? ['--partition', this.opts.partition] : [];
    const info = await runCmd('sinfo', ['-h', '-o', '%D', ...part], this.env);
    if (info.code === 0) maxNodes = Math.max(1, info.stdout.split('\n').reduce((n, l) => n + (Number(l) || 0), 0));
    const res = await runCmd('salloc', sallocArgs(this.opts, `cm-${this.run}`, maxNodes), this.env, 24 * 3600_000);
    const m = /Granted job allocation (\d+)/.exec(res.stderr);
    if (!m) {
      this.allocError = `Slurm refused the allocation: ${slurmMessage(res.stderr)}`;
      this.opts.warn?.(this.allocError);
      return this.allocError;
    }
    const id = m[1];
    const q = await runCmd('squeue', ['-h', '-j', id, '-o', '%C|%l|%N'], this.env);
    const [c, l, nodeList] = q.stdout.trim().split('|');
    const names = await runCmd('scontrol', ['show', 'hostnames', nodeList ?? ''], this.env);
    const per = await runCmd('sinfo', ['-h', '-N', '-n', nodeList ?? '', '-o', '%N %c'], this.env);
    const cpusOf = new Map(per.stdout.split('\n').map((line) => line.trim().split(/\s+/) as [string, string]));
    const nodes = names.stdout
      .split('\n')
      .filter(Boolean)
      .map((name) => ({ name, cpus: Number(cpusOf.get(name)) || 1 }));
    const alloc: Allocation = { id, nodes, cpus: Number(c) || 1, limit: parseSlurmTime(l ?? ''), limitText: l ?? '' };
    this.alloc = alloc;
    // Cancelled while salloc waited: give the allocation straight back.
    if (this.stopped) await this.release();
    return alloc;
  }

  protected async release(): Promise<void> {
    const a = this.alloc;
    if (!a) return;
    this.alloc = undefined;
    this.allocError = 'the allocation was released';
    await runCmd('scancel', [a.id], this.env).catch(() => undefined);
  }

  protected capacity(a: Allocation): number {
    return Math.max(1, Math.floor(a.cpus / (this.opts.cpusPerTask ?? 1)));
  }

  protected async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.ready.length > 0 && !this.stopped) {
        const a = await this.allocation();
        if (this.stopped) break;
        if (typeof a === 'string') {
          // finish(), not final(): dependants of these jobs must be skipped, not left waiting.
          for (const job of this.ready.splice(0)) await this.finish(job, 'failed', 'gave-up', { reason: a });
          break;
        }
        if (this.running.size >= this.capacity(a)) break;
        const job = this.ready.shift()!;
        if (job.timeout !== undefined && a.limit !== undefined && job.timeout > a.limit) {
          // Inside an allocation Slurm would cut the step at the allocation's end: say so up front.
          await this.finish(job, 'failed', 'gave-up', {
            reason: `time limit too large: timeout ${job.timeout}s exceeds the allocation's time limit ${a.limitText}`,
          });
          continue;
        }
        this.start(a, job);
      }
    } finally {
      this.pumping = false;
      this.wake();
    }
  }

  /** Resolves once nothing runs and nothing is ready to run. */
  private async quiet(): Promise<void> {
    while (this.running.size > 0 || this.ready.length > 0) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  protected wake(): void {
    if (this.running.size === 0 && this.ready.length === 0) for (const f of this.waiters.splice(0)) f();
  }

  protected start(a: Allocation, job: JobRecord): void {
    const attempt = (this.attempts.get(job.id) ?? 0) + 1;
    this.attempts.set(job.id, attempt);
    const env = { ...this.env, ...job.env, CM_JOB: job.id, CM_RUN: this.run, CM_TASK: job.task };
    const workdir = `.cm/runs/${this.run}/${job.id}`;
    const child = spawn('srun', srunArgs(this.opts, a.id, job, workdir), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const entry: Running = { job, stop: () => child.kill('SIGTERM'), timedOut: false };
    this.running.set(job.id, entry);
    const cap = this.opts.maxOutput ?? 1024 * 1024;
    const out = new Capture(cap, () => join(this.logDir, `${job.id}.out`));
    const err = new Capture(cap, () => join(this.logDir, `${job.id}.err`));
    let head = '';
    let host: string | undefined;
    let startedAt: Date | undefined;
    let startedEmit: Promise<void> | void = undefined;
    child.stdout!.on('data', (d: Buffer) => out.write(d));
    child.stderr!.on('data', (d: Buffer) => {
      if (startedAt) return err.write(d);
      head += d.toString('utf8');
      const s = splitMarker(head, STEP_MARKER);
      if (s.host === undefined && !head.includes(`${STEP_MARKER} `)) {
        if (head.length > 65536) {
          err.write(Buffer.from(head));
          head = '';
        }
        return;
      }
      if (!head.slice(head.indexOf(STEP_MARKER)).includes('\n')) return;
      startedAt = new Date();
      host = s.host ?? 'unknown';
      this.perHost.set(host, (this.perHost.get(host) ?? 0) + 1);
      if (s.before) err.write(Buffer.from(s.before));
      if (s.after) err.write(Buffer.from(s.after));
      const ev = baseEvent('started', job, this.run);
      Object.assign(ev, { host, attempt, transport: TRANSPORT, running: this.perHost.get(host), start: startedAt.toISOString() });
      startedEmit = this.emit(ev);
    });
    let timer: NodeJS.Timeout | undefined;
    if (job.timeout !== undefined) {
      timer = setTimeout(() => {
        entry.timedOut = true;
        // srun passes SIGTERM to the step and ends it; Slurm's --time is the backstop.
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }, job.timeout * 1000);
    }
    const spawnError = new Promise<string | undefined>((resolve) => {
      child.on('error', (e) => resolve(e.message));
      child.on('close', () => resolve(undefined));
    });
    child.on('close', (code, sig) => {
      if (timer) clearTimeout(timer);
      void (async () => {
        const failure = await spawnError;
        await startedEmit;
        await out.close();
        await err.close();
        if (host) this.perHost.set(host, (this.perHost.get(host) ?? 1) - 1);
        const end = new Date();
        const errText = dropSrunExitLine(startedAt ? err.text() : head);
        const stderrForEvent = { stderr: errText, stderr_bytes: Buffer.byteLength(errText) };
        try {
          if (entry.timedOut || TIME_LIMIT.test(errText)) {
            await this.finish(job, 'failed', 'gave-up', { reason: `timeout after ${job.timeout ?? '?'}s`, host, attempt });
          } else if (this.stopped) {
            await this.finish(job, 'failed', 'gave-up', { reason: 'interrupted', host, attempt });
          } else if (!startedAt || NODE_FAILURE.test(errText)) {
            const why = failure ?? (NODE_FAILURE.test(errText) ? `node failure on ${host}` : slurmMessage(head) || `srun exited ${code}`);
            if (attempt <= (job.retries ?? 0)) {
              const ev = baseEvent('retry', job, this.run);
              await this.emit(Object.assign(ev, { attempt, reason: why, host }));
              this.ready.unshift(job);
            } else {
              await this.finish(job, 'failed', 'gave-up', { reason: why, host, attempt });
            }
          } else {
            const exit = code ?? (sig ? null : 1);
            await this.finish(job, exit === 0 ? 'ok' : 'failed', 'finished', {
              host,
              attempt,
              transport: TRANSPORT,
              exit,
              signal: sig,
              start: startedAt.toISOString(),
              end: end.toISOString(),
              duration: (end.getTime() - startedAt.getTime()) / 1000,
              stdout: out.text(),
              stdout_bytes: out.bytes,
              ...stderrForEvent,
              truncated: out.truncated || err.truncated,
              ...(out.log || err.log ? { log: out.log ?? err.log } : {}),
            });
          }
        } finally {
          this.running.delete(job.id);
          void this.pump();
          this.wake();
        }
      })();
    });
  }

  protected async finish(job: JobRecord, state: 'ok' | 'failed', event: EventRecord['event'], fields: Partial<EventRecord>): Promise<void> {
    const next = this.tracker.done(job.id, state);
    await this.final(job, event, fields);
    await this.apply(next);
  }

  protected async final(job: JobRecord, event: EventRecord['event'], fields: Partial<EventRecord>): Promise<void> {
    if (event !== 'finished' || fields.exit !== 0) this.failures += 1;
    const ev = copyJobFields(baseEvent(event, job, this.run), job, this.run);
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) (ev as Record<string, unknown>)[k] = v;
    await this.emit(ev);
  }
}
