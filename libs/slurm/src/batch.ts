// Jobs mode: every cm job becomes a Slurm batch job, or an element of a job array when several jobs
// with the same dependencies arrive together (a sweep); cm's deps become afterok, `after` afterany.
// State comes from polling squeue (one call for everything in flight); stdout from the Slurm output
// file, which lives on a filesystem the nodes share (the spool directory).
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jobEvent, OutputCapture, outcomeEvent, outcomeOf, type JobOutcome } from '@cm/exec';
import { isEnvName, shQuote, signalName, workdirOf, type EventRecord, type JobRecord } from '@cm/protocol';
import { JOB_SCRIPT, sbatchArgs, STEP_MARKER, type SlurmOptions } from './options';
import { runCmd, slurmMessage } from './proc';
import { TRANSPORT } from './transports';

export type Emit = (ev: EventRecord) => Promise<void> | void;

/** Pending reasons that will never clear by waiting: cm gives the job up with Slurm's word for it. */
const HOPELESS = new Set([
  'PartitionTimeLimit',
  'PartitionNodeLimit',
  'InvalidAccount',
  'InvalidQOS',
  'QOSMaxWallDurationPerJobLimit',
  'AccountNotAllowed',
  'QOSNotAllowed',
  'BadConstraints',
  'DependencyNeverSatisfied',
  'ReqNodeNotAvail, UnavailableNodes',
]);
const FINAL_STATES = new Set([
  'COMPLETED',
  'FAILED',
  'TIMEOUT',
  'CANCELLED',
  'NODE_FAIL',
  'OUT_OF_MEMORY',
  'BOOT_FAIL',
  'DEADLINE',
  'PREEMPTED',
  'SPECIAL_EXIT',
]);
const ARRAY_MAX = 1000;
const GATHER_MS = 50;

interface Tracked {
  job: JobRecord;
  /** Slurm id: "123" or "123_4" */
  key?: string;
  base?: string;
  out?: string;
  err?: string;
  started?: Date;
  host?: string;
  attempt: number;
  final: boolean;
  /** ended with exit 0 (a dependency that lets afterok dependants run) */
  ok?: boolean;
  /** polls in a row that did not list the job */
  unseen: number;
  /** submitted by a cm-exec that died (its Slurm id from the joblog): followed, not submitted again */
  reattached?: boolean;
}

export interface SqueueRow {
  key: string;
  state: string;
  nodes: string;
  reason: string;
  exit: number;
  /** Slurm's StartTime and EndTime (local time, no zone), when asked for */
  start?: string;
  end?: string;
}

/** Parses `squeue -O JobArrayID,State,NodeList,Reason,exit_code[,StartTime,EndTime]` lines separated by '|'. */
export function parseSqueue(text: string): SqueueRow[] {
  const rows: SqueueRow[] = [];
  for (const line of text.split('\n')) {
    const f = line.split('|').map((s) => s.trim());
    if (f.length < 5 || f[0] === '') continue;
    // REQUEUED, CANCELLED by 0: squeue prints "CANCELLED" plain, but tolerate suffixes.
    const row: SqueueRow = { key: f[0], state: f[1].split(/\s/)[0], nodes: f[2], reason: f[3], exit: Number(f[4]) || 0 };
    if (/^\d{4}-\d\d-\d\dT/.test(f[5] ?? '')) row.start = f[5];
    if (/^\d{4}-\d\d-\d\dT/.test(f[6] ?? '')) row.end = f[6];
    rows.push(row);
  }
  return rows;
}

export class BatchEngine {
  private jobs = new Map<string, Tracked>();
  /** jobs waiting for a dependency to be submitted (or to end, when it had no Slurm id) */
  private blocked: Tracked[] = [];
  private groups = new Map<string, Tracked[]>();
  private gatherTimer?: NodeJS.Timeout;
  private inFlight = new Set<Tracked>();
  private failures = 0;
  private pollTimer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private waiters: Array<() => void> = [];
  private submitting = Promise.resolve();
  private stopped = false;
  private seq = 0;

  constructor(
    private readonly opts: SlurmOptions,
    private readonly env: NodeJS.ProcessEnv,
    private readonly run: string,
    private readonly spool: string,
    /** where whole outputs over the cap go, as <job>.<attempt>.stdout|.stderr (cm-exec's --logs) */
    private readonly logs: string,
    private readonly emit: Emit,
    private readonly signal: AbortSignal,
    /** a job got its Slurm id: the joblog keeps it, so a --resume after cm-exec died follows it again */
    private readonly submitted?: (job: JobRecord, key: string, attempt: number) => void,
  ) {}

  get failed(): number {
    return this.failures;
  }

  async add(job: JobRecord): Promise<void> {
    const t: Tracked = { job, attempt: 1, final: false, unseen: 0 };
    this.jobs.set(job.id, t);
    await this.emit(jobEvent('queued', job, this.run));
    await this.place(t);
  }

  /** A job already final in the joblog (--resume): re-emitted as it was, never submitted. */
  async replay(job: JobRecord, ev: EventRecord): Promise<void> {
    const t: Tracked = { job, attempt: ev.attempt ?? 1, final: false, unseen: 0 };
    this.jobs.set(job.id, t);
    t.ok = ev.event === 'finished' && ev.exit === 0;
    t.final = true;
    await this.emit({ ...ev, replayed: true });
    await this.unblock();
    for (const f of this.waiters.splice(0)) f();
  }

  /**
   * A job a cm-exec that died submitted (--resume, its Slurm id from the joblog): followed again
   * through squeue, never submitted again; its events carry "reattached": true and Slurm's times.
   */
  async adopt(job: JobRecord, key: string, attempt: number): Promise<void> {
    const base = key.split('_')[0];
    const t: Tracked = { job, attempt, final: false, unseen: 0, key, base, reattached: true };
    t.out = join(this.spool, `${key}.out`);
    t.err = join(this.spool, `${key}.err`);
    this.jobs.set(job.id, t);
    await this.emit(jobEvent('queued', job, this.run));
    this.inFlight.add(t);
    await this.unblock();
    this.schedulePoll();
  }

  async drain(): Promise<void> {
    for (;;) {
      await this.flush();
      await this.submitting;
      // What is still blocked waits on jobs that never came in the stream.
      const stuck = this.blocked.filter((t) => this.missingDep(t.job) !== undefined);
      for (const t of stuck) {
        this.blocked.splice(this.blocked.indexOf(t), 1);
        await this.final(t, 'gave-up', { reason: `dependency ${this.missingDep(t.job)} is not in the job stream` });
      }
      if ([...this.jobs.values()].every((t) => t.final)) break;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.pollTimer) clearTimeout(this.pollTimer);
  }

  async cancel(reason: string): Promise<void> {
    this.stopped = true;
    if (this.gatherTimer) clearTimeout(this.gatherTimer);
    await this.submitting;
    const bases = [...new Set([...this.inFlight].map((t) => t.base!).filter(Boolean))];
    if (bases.length > 0) await runCmd('scancel', bases, this.env).catch(() => undefined);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    await this.polling;
    for (const t of this.jobs.values()) if (!t.final) await this.final(t, 'gave-up', { reason, host: t.host });
  }

  private missingDep(job: JobRecord): string | undefined {
    return [...job.deps, ...(job.after ?? [])].find((d) => !this.jobs.has(d));
  }

  /** Decides what a job waits for: skipped, blocked, or gathered for submission with its Slurm deps. */
  private async place(t: Tracked): Promise<void> {
    if (this.stopped) return this.final(t, 'gave-up', { reason: 'interrupted' });
    const job = t.job;
    const failedDep = job.deps.find((d) => this.isFailed(d));
    if (failedDep !== undefined) return this.final(t, 'skipped', { reason: `dependency ${failedDep} failed` });
    const ok: string[] = [];
    const any: string[] = [];
    for (const [list, ids] of [
      [ok, job.deps],
      [any, job.after ?? []],
    ] as const) {
      for (const d of ids) {
        const dep = this.jobs.get(d);
        if (dep?.final) continue;
        if (!dep?.key) {
          this.blocked.push(t);
          return;
        }
        list.push(dep.key);
      }
    }
    const parts: string[] = [];
    if (ok.length) parts.push(`afterok:${ok.join(':')}`);
    if (any.length) parts.push(`afterany:${any.join(':')}`);
    const dependency = parts.join(',');
    const key = `${dependency}|${job.timeout ?? ''}`;
    const group = this.groups.get(key) ?? [];
    group.push(t);
    this.groups.set(key, group);
    if (this.opts.arrays === false || group.length >= ARRAY_MAX) {
      this.groups.delete(key);
      this.submit(group, dependency);
    } else if (!this.gatherTimer) {
      // Jobs read in the same burst (a sweep) go into one array.
      this.gatherTimer = setTimeout(() => void this.flush(), GATHER_MS);
    }
  }

  private isFailed(id: string): boolean {
    const t = this.jobs.get(id);
    return t !== undefined && t.final && t.ok !== true;
  }

  private async flush(): Promise<void> {
    if (this.gatherTimer) clearTimeout(this.gatherTimer);
    this.gatherTimer = undefined;
    const groups = [...this.groups];
    this.groups.clear();
    for (const [key, group] of groups) this.submit(group, key.split('|')[0]);
    await this.submitting;
  }

  private submit(group: Tracked[], dependency: string): void {
    this.submitting = this.submitting.then(() => this.sbatch(group, dependency));
  }

  private async sbatch(group: Tracked[], dependency: string): Promise<void> {
    if (this.stopped) {
      for (const t of group) await this.final(t, 'gave-up', { reason: 'interrupted' });
      return;
    }
    const n = (this.seq += 1);
    const lines = group.map((t) => this.jobLine(t.job));
    const script = join(this.spool, `batch-${n}.sh`);
    const array = group.length > 1;
    const body = array
      ? `case "$SLURM_ARRAY_TASK_ID" in\n${lines.map((l, i) => `${i}) ${l} ;;`).join('\n')}\n*) echo "cm: no job for array task $SLURM_ARRAY_TASK_ID" >&2; exit 127 ;;\nesac\n`
      : `${lines[0]}\n`;
    writeFileSync(script, `#!/bin/sh\n${body}`);
    const pattern = array ? '%A_%a' : '%j';
    const res = await runCmd(
      'sbatch',
      sbatchArgs(this.opts, {
        name: array ? `cm-${this.run}` : group[0].job.id,
        script,
        output: join(this.spool, `${pattern}.out`),
        error: join(this.spool, `${pattern}.err`),
        array: array ? group.length : undefined,
        dependency: dependency || undefined,
        timeout: group[0].job.timeout,
      }),
      this.env,
    );
    const id = res.code === 0 ? /^(\d+)/.exec(res.stdout.trim())?.[1] : undefined;
    if (!id) {
      // Rejected at submission (bad partition, time limit too large...): Slurm's own words.
      const reason = `Slurm rejected the job: ${slurmMessage(res.stderr)}`;
      this.opts.warn?.(reason);
      for (const t of group) await this.final(t, 'gave-up', { reason });
      return;
    }
    group.forEach((t, i) => {
      t.base = id;
      t.key = array ? `${id}_${i}` : id;
      t.out = join(this.spool, array ? `${id}_${i}.out` : `${id}.out`);
      t.err = join(this.spool, array ? `${id}_${i}.err` : `${id}.err`);
      this.inFlight.add(t);
      this.submitted?.(t.job, t.key, t.attempt);
    });
    await this.unblock();
    this.schedulePoll();
  }

  /** One job as a line of the batch script: its environment, then the shared job script. */
  private jobLine(job: JobRecord): string {
    const env = { ...job.env, CM_JOB: job.id, CM_RUN: this.run, CM_TASK: job.task };
    const exports = Object.entries(env)
      .filter(([k]) => isEnvName(k))
      .map(([k, v]) => `${k}=${shQuote(v)}`)
      .join(' ');
    return `env ${exports} sh -c ${shQuote(JOB_SCRIPT)} cm-slurm ${shQuote(workdirOf(this.run, job.id))} ${shQuote(job.command)}`;
  }

  private async unblock(): Promise<void> {
    const again = this.blocked.splice(0);
    for (const t of again) await this.place(t);
  }

  private schedulePoll(): void {
    if (this.pollTimer || this.stopped) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      this.polling = this.poll().finally(() => {
        if (this.inFlight.size > 0) this.schedulePoll();
      });
    }, (this.opts.pollInterval ?? 0.5) * 1000);
  }

  private async poll(): Promise<void> {
    const bases = [...new Set([...this.inFlight].map((t) => t.base!))];
    if (bases.length === 0) return;
    const res = await runCmd(
      'squeue',
      ['--states=all', '-r', '-h', '-j', bases.join(','), '-O', 'JobArrayID:40|,State:24|,NodeList:400|,Reason:200|,exit_code:12|,StartTime:24|,EndTime:24|'],
      this.env,
    ).catch(() => undefined);
    // A failed poll (controller busy or restarting) is retried at the next tick; jobs are not lost.
    if (!res || res.code !== 0) return;
    const rows = new Map(parseSqueue(res.stdout).map((r) => [r.key, r]));
    for (const t of [...this.inFlight]) {
      const row = rows.get(t.key!);
      if (!row) {
        // The controller forgets a job MinJobAge after it ended; many polls in a row means it is gone.
        if ((t.unseen += 1) >= 20) await this.end(t, { key: t.key!, state: 'LOST', nodes: '', reason: '', exit: 0 });
        continue;
      }
      t.unseen = 0;
      await this.observe(t, row);
    }
  }

  private async observe(t: Tracked, row: SqueueRow): Promise<void> {
    const running = row.state === 'RUNNING' || row.state === 'COMPLETING';
    if (running && !t.started) await this.started(t, row.nodes, row.start);
    if ((row.state === 'PENDING' || row.state === 'REQUEUED') && t.started) {
      // Slurm requeued it (node failure, preemption): say so, and count the attempt.
      const ev = jobEvent('retry', t.job, this.run);
      await this.emit(Object.assign(ev, { attempt: t.attempt, host: t.host, reason: `requeued by Slurm (${row.reason})` }));
      t.attempt += 1;
      t.started = undefined;
      return;
    }
    if (row.state === 'PENDING' && HOPELESS.has(row.reason)) {
      await runCmd('scancel', [t.key!], this.env).catch(() => undefined);
      const skipped = row.reason === 'DependencyNeverSatisfied' && t.job.deps.some((d) => this.isFailed(d));
      this.inFlight.delete(t);
      if (skipped) return this.final(t, 'skipped', { reason: `dependency ${t.job.deps.find((d) => this.isFailed(d))} failed` });
      return this.final(t, 'gave-up', { reason: `Slurm will not run it: ${row.reason}` });
    }
    if (FINAL_STATES.has(row.state)) await this.end(t, row);
  }

  private async started(t: Tracked, nodes: string, slurmStart?: string): Promise<void> {
    // a job submitted before this cm-exec may have run long ago: Slurm's own start time
    t.started = t.reattached && slurmStart ? new Date(slurmStart) : new Date();
    t.host = nodes || undefined;
    const ev = jobEvent('started', t.job, this.run);
    if (t.reattached) ev.reattached = true;
    await this.emit(Object.assign(ev, { host: t.host, attempt: t.attempt, transport: TRANSPORT, start: t.started.toISOString() }));
  }

  private async end(t: Tracked, row: SqueueRow): Promise<void> {
    this.inFlight.delete(t);
    if (row.state === 'CANCELLED' && t.job.deps.some((d) => this.isFailed(d))) {
      return this.final(t, 'skipped', { reason: `dependency ${t.job.deps.find((d) => this.isFailed(d))} failed` });
    }
    if (!t.started && row.state !== 'CANCELLED' && row.state !== 'LOST') await this.started(t, row.nodes, row.start);
    const end = t.reattached && row.end ? new Date(row.end) : new Date();
    const common = { host: t.host, attempt: t.attempt };
    switch (row.state) {
      case 'COMPLETED':
      case 'FAILED':
      case 'OUT_OF_MEMORY': {
        const sig = row.exit & 0x7f;
        const exit = sig ? null : row.exit >> 8;
        const outcome = this.outcome(t, t.started ?? end, {
          exit: row.state === 'OUT_OF_MEMORY' && exit === 0 ? 1 : exit,
          signal: sig ? (signalName(sig) ?? `SIG${sig}`) : null,
        });
        t.ok = outcome.exit === 0 && row.state === 'COMPLETED';
        if (t.reattached) outcome.end = end;
        const ev = outcomeEvent('finished', t.job, this.run, { host: t.host ?? row.nodes, attempt: t.attempt, transport: TRANSPORT }, outcome);
        if (t.reattached) ev.reattached = true;
        return this.final(t, ev);
      }
      case 'TIMEOUT':
        return this.final(t, 'gave-up', { ...common, reason: `timeout after ${t.job.timeout ?? '?'}s` });
      case 'NODE_FAIL':
        return this.final(t, 'gave-up', { ...common, reason: `node failure on ${t.host ?? row.nodes}` });
      case 'LOST':
        return this.final(t, 'gave-up', { ...common, reason: `Slurm no longer lists job ${t.key}` });
      default:
        return this.final(t, 'gave-up', { ...common, reason: `Slurm ended the job: ${row.state}${row.reason && row.reason !== 'None' ? ` (${row.reason})` : ''}` });
    }
  }

  /** Ends a job with an event built here, or with a finished event built by the shared outcomeEvent. */
  private async final(t: Tracked, event: EventRecord | 'gave-up' | 'skipped', fields: Partial<EventRecord> = {}): Promise<void> {
    if (t.final) return;
    t.final = true;
    this.inFlight.delete(t);
    let ev: EventRecord;
    if (typeof event === 'string') {
      // as the Scheduler says it: where and which attempt when it had started, and why
      ev = jobEvent(event, t.job, this.run);
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) (ev as Record<string, unknown>)[k] = v;
    } else {
      ev = event;
    }
    if (!(ev.event === 'finished' && ev.exit === 0)) this.failures += 1;
    await this.emit(ev);
    // A final state can release dependants that were waiting for it (failed deps: skipped).
    await this.unblock();
    for (const f of this.waiters.splice(0)) f();
  }

  /** The job's outcome from its Slurm output files, capped as every transport caps (OutputCapture). */
  private outcome(t: Tracked, start: Date, end: { exit: number | null; signal: string | null }): JobOutcome {
    const cap = this.opts.maxOutput ?? 1024 * 1024;
    const base = join(this.logs, `${t.job.id}.${t.attempt}`);
    const out = new OutputCapture(cap, `${base}.stdout`);
    const err = new OutputCapture(cap, `${base}.stderr`);
    readInto(t.out!, out);
    // the job script's start line is ours, not the job's
    readInto(t.err!, err, `${STEP_MARKER} `);
    return outcomeOf(out, err, start, end);
  }
}

/** Streams a file into a capture; a first line starting with `skipLine` is left out. */
function readInto(path: string, into: OutputCapture, skipLine?: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return;
  }
  try {
    const buf = Buffer.alloc(1 << 16);
    let first = skipLine !== undefined;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      let chunk = buf.subarray(0, n);
      if (first) {
        first = false;
        const nl = chunk.indexOf(10);
        if (chunk.toString('utf8', 0, Math.min(chunk.length, skipLine!.length)) === skipLine && nl >= 0) chunk = chunk.subarray(nl + 1);
      }
      into.push(Buffer.from(chunk));
    }
  } finally {
    closeSync(fd);
  }
}
