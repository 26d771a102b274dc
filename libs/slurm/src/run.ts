// The engine cm-exec hands a whole job stream to: same job records in, same event records out as the
// ssh engine, executed by Slurm.
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ExitCode, type EventRecord, type JobRecord } from '@cm/protocol';
import type { Emit } from './common';
import { checkToken, type SlurmOptions } from './options';
import { preflight, runCmd } from './proc';
import { StepsEngine } from './steps';
import { BatchEngine } from './batch';
import { WorkersEngine } from './workers';

export function freshRunId(now = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

const FINAL = new Set(['finished', 'gave-up', 'skipped']);

interface Engine {
  add(job: JobRecord): Promise<void>;
  drain(): Promise<void>;
  cancel(reason: string): Promise<void>;
  readonly failed: number;
}

/**
 * Runs every job of `jobs` through Slurm and emits the ssh engine's events: `queued`, `started` (host =
 * Slurm node), `retry`, and one final `finished` / `gave-up` / `skipped` per job.
 * Resolves to the exit code: 0 all jobs finished with exit 0, 1 some did not. Throws CmError exit 4
 * when Slurm is not installed or its controller does not answer (before reading any job).
 * On `signal` abort it stops reading, cancels (scancel) everything it submitted and gives up the rest.
 */
export async function runSlurm(
  opts: SlurmOptions,
  jobs: AsyncIterable<JobRecord>,
  emit: Emit,
  signal: AbortSignal,
): Promise<number> {
  const env = opts.env ?? process.env;
  checkToken('partition', opts.partition);
  checkToken('account', opts.account);
  checkToken('qos', opts.qos);
  await preflight(env);
  const run = opts.run ?? freshRunId();
  const spool = opts.spoolDir ?? join(env.HOME ?? homedir(), '.cm', 'slurm', run);
  mkdirSync(spool, { recursive: true });
  // Every queued job must end with exactly one final event; `open` holds those still owed one.
  const open = new Map<string, EventRecord>();
  const userEmit = emit;
  emit = (ev) => {
    if (ev.event === 'queued' && ev.job) open.set(ev.job, ev);
    else if (FINAL.has(ev.event) && ev.job) open.delete(ev.job);
    return userEmit(ev);
  };
  const owed = async (reason: string): Promise<number> => {
    for (const ev of open.values()) await userEmit({ ...ev, event: 'gave-up', reason });
    const n = open.size;
    open.clear();
    return n;
  };
  const mode = opts.mode ?? 'steps';
  const engine: Engine =
    mode === 'steps'
      ? new StepsEngine(opts, env, run, spool, emit, signal)
      : mode === 'workers'
        ? new WorkersEngine(opts, env, run, spool, emit, signal)
        : new BatchEngine(opts, env, run, spool, emit, signal);

  const aborted = new Promise<'aborted'>((resolve) => {
    if (signal.aborted) resolve('aborted');
    signal.addEventListener('abort', () => resolve('aborted'), { once: true });
  });
  const it = jobs[Symbol.asyncIterator]();
  let interrupted = false;
  try {
    for (;;) {
      const next = await Promise.race([it.next(), aborted]);
      if (next === 'aborted') {
        interrupted = true;
        break;
      }
      if (next.done) break;
      let job = next.value;
      if (job.timeout === undefined && opts.timeout !== undefined) job = { ...job, timeout: opts.timeout };
      if (job.retries === undefined && opts.retries !== undefined) job = { ...job, retries: opts.retries };
      await engine.add(job);
    }
    if (!interrupted) {
      await Promise.race([engine.drain(), aborted]);
      interrupted = signal.aborted;
    }
  } catch (err) {
    await engine.cancel('interrupted');
    await owed('interrupted');
    throw err;
  }
  if (interrupted) {
    await engine.cancel('interrupted');
    await owed('interrupted');
    void it.return?.();
    return ExitCode.FAILURES;
  }
  // A job the engine lost track of is a bug, but it still gets its final event.
  const lost = await owed('cm lost track of this job (a bug in @cm/slurm: please report it)');
  if (engine.failed > 0 || lost > 0) {
    // Jobs that failed because the controller went away are an environment problem, not job failures.
    const ping = await runCmd('scontrol', ['ping'], env, 30_000).catch(() => undefined);
    if (!ping || !/is UP/.test(ping.stdout)) {
      opts.warn?.('the Slurm controller stopped answering during the run');
      return ExitCode.ENVIRONMENT;
    }
    return ExitCode.FAILURES;
  }
  return ExitCode.OK;
}
