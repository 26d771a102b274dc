// Jobs mode: every cm job becomes a Slurm batch job, or an element of a job array when several jobs
// with the same dependencies arrive together (a sweep); cm's deps become afterok, `after` afterany.
// State comes from polling squeue (one call for everything in flight); stdout from the Slurm output
// file, which lives on a filesystem the nodes share (the spool directory).
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EventRecord, JobRecord } from '@cm/protocol';
import { baseEvent, copyJobFields, splitMarker, TRANSPORT, type Emit } from './common';
import { JOB_SCRIPT, sbatchArgs, shq, STEP_MARKER, type SlurmOptions } from './options';
import { runCmd, slurmMessage } from './proc';

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
const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 15: 'SIGTERM' };
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
}

export interface SqueueRow {
  key: string;
  state: string;
  nodes: string;
  reason: string;
  exit: number;
}

/** Parses `squeue -O JobArrayID,State,NodeList,Reason,exit_code` lines separated by '|'. */
export function parseSqueue(text: string): SqueueRow[] {
  const rows: SqueueRow[] = [];
  for (const line of text.split('\n')) {
    const f = line.split('|').map((s) => s.trim());
    if (f.length < 5 || f[0] === '') continue;
    // REQUEUED, CANCELLED by 0: squeue prints "CANCELLED" plain, but tolerate suffixes.
    rows.push({ key: f[0], state: f[1].split(/\s/)[0], nodes: f[2], reason: f[3], exit: Number(f[4]) || 0 });
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
    private readonly emit: Emit,
    private readonly signal: AbortSignal,
  ) {}

  get failed(): number {
    return this.failures;
  }

  async add(job: JobRecord): Promise<void> {
    const t: Tracked = { job, attempt: 1, final: false, unseen: 0 };
    this.jobs.set(job.id, t);
    await this.emit(baseEvent('queued', job, this.run));
    await this.place(t);
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
    });
    await this.unblock();
    this.schedulePoll();
  }

  /** One job as a line of the batch script: its environment, then the shared job script. */
  private jobLine(job: JobRecord): string {
    const env = { ...job.env, CM_JOB: job.id, CM_RUN: this.run, CM_TASK: job.task };
    const exports = Object.entries(env)
      .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      .map(([k, v]) => `${k}=${shq(v)}`)
      .join(' ');
    return `env ${exports} sh -c ${shq(JOB_SCRIPT)} cm-slurm ${shq(`.cm/runs/${this.run}/${job.id}`)} ${shq(job.command)}`;
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
      ['--states=all', '-r', '-h', '-j', bases.join(','), '-O', 'JobArrayID:40|,State:24|,NodeList:400|,Reason:200|,exit_code:12|'],
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
    if (running && !t.started) await this.started(t, row.nodes);
    if ((row.state === 'PENDING' || row.state === 'REQUEUED') && t.started) {
      // Slurm requeued it (node failure, preemption): say so, and count the attempt.
      const ev = baseEvent('retry', t.job, this.run);
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

  private async started(t: Tracked, nodes: string): Promise<void> {
    t.started = new Date();
    t.host = nodes || undefined;
    const ev = baseEvent('started', t.job, this.run);
    await this.emit(Object.assign(ev, { host: t.host, attempt: t.attempt, transport: TRANSPORT, start: t.started.toISOString() }));
  }

  private async end(t: Tracked, row: SqueueRow): Promise<void> {
    this.inFlight.delete(t);
    if (row.state === 'CANCELLED' && t.job.deps.some((d) => this.isFailed(d))) {
      return this.final(t, 'skipped', { reason: `dependency ${t.job.deps.find((d) => this.isFailed(d))} failed` });
    }
    if (!t.started && row.state !== 'CANCELLED' && row.state !== 'LOST') await this.started(t, row.nodes);
    const end = new Date();
    const common = { host: t.host, attempt: t.attempt };
    switch (row.state) {
      case 'COMPLETED':
      case 'FAILED':
      case 'OUT_OF_MEMORY': {
        const cap = this.opts.maxOutput ?? 1024 * 1024;
        const out = readCapped(t.out!, cap);
        const err = readCapped(t.err!, cap);
        const stderr = splitMarker(err.text, STEP_MARKER);
        const sig = row.exit & 0x7f;
        const exit = sig ? null : row.exit >> 8;
        const start = t.started ?? end;
        t.ok = exit === 0 && row.state === 'COMPLETED';
        return this.final(t, 'finished', {
          ...common,
          transport: TRANSPORT,
          exit: row.state === 'OUT_OF_MEMORY' && exit === 0 ? 1 : exit,
          signal: sig ? (SIGNALS[sig] ?? `SIG${sig}`) : null,
          start: start.toISOString(),
          end: end.toISOString(),
          duration: (end.getTime() - start.getTime()) / 1000,
          stdout: out.text,
          stdout_bytes: out.bytes,
          stderr: stderr.before + stderr.after,
          stderr_bytes: Math.max(0, err.bytes - (stderr.host === undefined ? 0 : Buffer.byteLength(`${STEP_MARKER} ${stderr.host}\n`))),
          truncated: out.bytes > cap || err.bytes > cap,
          ...(out.bytes > cap ? { log: t.out } : err.bytes > cap ? { log: t.err } : {}),
        });
      }
      case 'TIMEOUT':
        return this.final(t, 'gave-up', { ...common, reason: `timeout after ${t.job.timeout ?? '?'}s (Slurm time limit)` });
      case 'NODE_FAIL':
        return this.final(t, 'gave-up', { ...common, reason: `node failure on ${t.host ?? row.nodes}` });
      case 'LOST':
        return this.final(t, 'gave-up', { ...common, reason: `Slurm no longer lists job ${t.key}` });
      default:
        return this.final(t, 'gave-up', { ...common, reason: `Slurm ended the job: ${row.state}${row.reason && row.reason !== 'None' ? ` (${row.reason})` : ''}` });
    }
  }

  private async final(t: Tracked, event: EventRecord['event'], fields: Partial<EventRecord>): Promise<void> {
    if (t.final) return;
    t.final = true;
    this.inFlight.delete(t);
    if (event !== 'finished' || fields.exit !== 0) this.failures += 1;
    const ev = copyJobFields(baseEvent(event, t.job, this.run), t.job, this.run);
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) (ev as Record<string, unknown>)[k] = v;
    await this.emit(ev);
    // A final state can release dependants that were waiting for it (failed deps: skipped).
    await this.unblock();
    for (const f of this.waiters.splice(0)) f();
  }
}

function readCapped(path: string, cap: number): { text: string; bytes: number } {
  try {
    const bytes = statSync(path).size;
    const buf = readFileSync(path);
    return { text: buf.subarray(0, cap).toString('utf8'), bytes };
  } catch {
    return { text: '', bytes: 0 };
  }
}
