// `cm-exec --engine slurm --slurm-mode jobs`: every job an sbatch (sweeps as arrays, deps as afterok),
// so Slurm holds the whole plan in its queue. The BatchEngine decides what is submitted when; the rest
// is the execution core's own code: the events (outcomeEvent), output capping (OutputCapture), the
// joblog and --resume (JobLog, readJoblog), --dry-run (execute's), --halt (haltReached), the lines on
// stderr, the progress line and the exit codes.
import { join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { mkdirSync } from 'node:fs';
import {
  checkJobInput,
  chooseRun,
  execute,
  haltReached,
  isFinal,
  jobEvent,
  JobLog,
  priorRun,
  refusedBeforeRun,
  replayedJobs,
  runReport,
  type ExecIO,
  type SchedulerStats,
} from '@cm/exec';
import { ExitCode, InputError, readRecords, RecordWriter, type EventRecord, type JobRecord } from '@cm/protocol';
import { partitionHost } from './allocation';
import { BatchEngine } from './batch';
import type { CoreOptions } from './engine';
import { checkPlacement, type SlurmOptions } from './options';
import { preflight, runCmd } from './proc';

/** Why the run stopped early: a signal (the AbortSignal's reason) or the --halt policy. */
const HALTED = 'halted';

export async function execJobs(slurm: SlurmOptions, exec: CoreOptions, io: ExecIO): Promise<number> {
  const env = slurm.env ?? process.env;
  checkPlacement(slurm);
  const prior = priorRun(exec);
  const run = chooseRun(exec, prior);
  const resumed = replayedJobs(exec, prior);
  if (exec.dryRun) return execute({ ...exec, run, hosts: [partitionHost(slurm)] }, io);
  await preflight(env);

  const spool = slurm.spoolDir ?? join(env.HOME ?? homedir(), '.cm', 'slurm', run);
  mkdirSync(spool, { recursive: true });
  const logs = resolve(exec.cwd, exec.logs ?? join('.cm', 'logs', run));
  const writer = new RecordWriter(io.stdout);
  const joblog = exec.joblog ? new JobLog(resolve(exec.cwd, exec.joblog)) : undefined;
  // the run's account, for the exit code, the summary, --halt and the progress line
  const stats: SchedulerStats = { seen: 0, running: 0, ok: 0, failed: 0, gaveUp: 0, skipped: 0, hosts: [] };
  const report = runReport(exec, io, writer, () => stats);
  const say = report.say;
  const stop = new AbortController();
  let stopping = false;
  const onSignal = (): void => stop.abort(io.signal.reason);
  if (io.signal.aborted) onSignal();
  else io.signal.addEventListener('abort', onSignal, { once: true });

  const running = new Set<string>();
  const emit = async (ev: EventRecord): Promise<void> => {
    if (ev.event === 'queued') stats.seen += 1;
    else if (ev.event === 'started') running.add(ev.job!);
    if (isFinal(ev)) {
      if (ev.replayed) stats.seen += 1;
      running.delete(ev.job!);
      if (ev.event === 'finished' && ev.exit === 0) stats.ok += 1;
      else if (ev.event === 'finished') stats.failed += 1;
      else if (ev.event === 'gave-up') stats.gaveUp += 1;
      else stats.skipped += 1;
      // jobs stopped by an interrupt or --halt are not final for the joblog: --resume runs them
      if (joblog && !ev.replayed && !(stopping && ev.event === 'gave-up')) joblog.append(ev);
      if (!ev.replayed && !stopping && ev.event !== 'skipped' && !(ev.event === 'finished' && ev.exit === 0)) {
        if (haltReached(exec.halt, stats.failed + stats.gaveUp, stats.seen)) stop.abort(HALTED);
      }
    }
    stats.running = running.size;
    await report.event(ev);
  };

  // Slurm holds the submitted jobs whatever becomes of cm-exec: their ids in the joblog let a --resume
  // follow them again instead of submitting them twice
  const submitted = joblog
    ? (job: JobRecord, key: string, attempt: number) =>
        joblog.append({ ...jobEvent('queued', job, job.run ?? run), attempt, transport: 'slurm', slurm_job: key })
    : undefined;
  const inSlurm = new Map([...(exec.resume || exec.retryFailed ? (prior ?? []) : [])].filter(([, ev]) => !isFinal(ev) && ev.slurm_job !== undefined));
  const engine = new BatchEngine(slurm, env, run, spool, logs, emit, stop.signal, submitted);
  report.startProgress();
  const stopped = new Promise<void>((done) => stop.signal.addEventListener('abort', () => done(), { once: true }));
  let inputError: InputError | undefined;
  const seen = new Set<string>();

  const intake = (async () => {
    try {
      for await (const { record, raw, line } of readRecords(io.stdin, { source: 'stdin' })) {
        if (stop.signal.aborted) break;
        if (record.kind !== 'job') {
          await report.passThrough(raw);
          continue;
        }
        let job = record as JobRecord;
        checkJobInput(job, line, raw, seen.has(job.id));
        seen.add(job.id);
        const done = resumed?.get(job.id);
        if (done) {
          await engine.replay(job, done);
          continue;
        }
        const left = inSlurm.get(job.id);
        if (left) {
          await engine.adopt(job, left.slurm_job!, left.attempt ?? 1);
          continue;
        }
        // as in every engine: a job whose inputs were never staged ends before Slurm sees it
        const refusal = refusedBeforeRun(job);
        if (refusal !== undefined) {
          await emit(jobEvent('queued', job, job.run ?? run));
          await emit({ ...jobEvent('gave-up', job, job.run ?? run), reason: refusal });
          continue;
        }
        if (job.timeout === undefined && exec.timeout !== undefined) job = { ...job, timeout: exec.timeout };
        if (job.retries === undefined && exec.retries !== undefined) job = { ...job, retries: exec.retries };
        await engine.add(job);
      }
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      // what Slurm already holds still runs to its end; nothing more is submitted
      inputError = err;
    }
  })();

  let code: number;
  try {
    await Promise.race([intake, stopped]);
    if (!stop.signal.aborted) await Promise.race([engine.drain(), stopped]);
    if (stop.signal.aborted) {
      stopping = true;
      const halted = stop.signal.reason === HALTED;
      report.stopping(halted ? HALTED : 'interrupted');
      await engine.cancel(halted ? HALTED : 'interrupted');
      io.stdin.destroy();
      await intake.catch(() => undefined);
      code = halted ? ExitCode.HALTED : ExitCode.FAILURES;
      if (halted) say('stopped by --halt');
    } else {
      await intake;
      code = stats.ok === stats.seen ? ExitCode.OK : ExitCode.FAILURES;
    }
  } finally {
    io.signal.removeEventListener('abort', onSignal);
    report.endProgress();
    joblog?.close();
  }
  await writer.end();
  if (!inputError) report.finish({ signalled: stopping && stop.signal.reason !== HALTED });
  if (inputError) throw inputError;
  if (code === ExitCode.FAILURES && engine.failed > 0) {
    // jobs that failed because the controller went away are an environment problem, not job failures
    const ping = await runCmd('scontrol', ['ping'], env, 30_000).catch(() => undefined);
    if (!ping || !/is UP/.test(ping.stdout)) {
      say('the Slurm controller stopped answering during the run');
      return ExitCode.ENVIRONMENT;
    }
  }
  return code;
}
