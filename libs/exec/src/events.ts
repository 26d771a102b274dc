// The events a job's life is told in, built in one place for every engine: the Scheduler (local,
// ssh, persistent, Slurm steps and workers) and Slurm's jobs mode, so a record means the same
// whichever ran the job.
import { workdirOf, type EventRecord, type JobRecord } from '@cm/protocol';
import type { JobOutcome } from './transport/types';

/**
 * The fields every job event starts with. A final event also carries the job's params, so a job that
 * never ran still lands in its group of a reduce by parameter; queued and started ones stay small.
 */
export function jobEvent(event: EventRecord['event'], job: JobRecord, run: string): EventRecord {
  const ev: EventRecord = { kind: 'event', v: 1, event, job: job.id, task: job.task, run };
  if (job.params !== undefined && (event === 'finished' || event === 'gave-up' || event === 'skipped')) ev.params = job.params;
  // what the job waits for, once, so a report downstream of cm-exec (which consumes the jobs) can draw the plan
  if (event === 'queued' && job.deps.length > 0) ev.deps = job.deps;
  if (event === 'queued' && job.after?.length) ev.after = job.after;
  return ev;
}

/** Where and how an attempt ran. */
export interface Attempt {
  host: string;
  attempt: number;
  transport?: string;
}

/**
 * A job's `finished` event, or the `gave-up` event of one stopped while it ran, from its outcome. It
 * copies workdir, outputs, result, sweep, index and params from the job, so cm-fetch and cm-reduce need
 * nothing else.
 */
export function outcomeEvent(event: 'finished' | 'gave-up', job: JobRecord, run: string, at: Attempt, o: JobOutcome, reason?: string): EventRecord {
  // built field by field, absent ones never set: deleting keys would turn every event into a slow
  // dictionary object (this runs once per job)
  const ev = jobEvent(event, job, run);
  ev.host = at.host;
  ev.attempt = at.attempt;
  if (at.transport !== undefined) ev.transport = at.transport;
  ev.exit = o.exit;
  ev.signal = o.signal;
  ev.start = o.start.toISOString();
  ev.end = o.end.toISOString();
  ev.duration = Math.round(o.end.getTime() - o.start.getTime()) / 1000;
  ev.stdout = o.stdout.length === 0 ? '' : o.stdout.toString('utf8');
  ev.stderr = o.stderr.length === 0 ? '' : o.stderr.toString('utf8');
  ev.stdout_bytes = o.stdoutBytes;
  ev.stderr_bytes = o.stderrBytes;
  ev.truncated = o.truncated;
  if (o.log !== undefined) ev.log = o.log;
  ev.workdir = workdirOf(run, job.id);
  if (job.outputs !== undefined) ev.outputs = job.outputs;
  if (job.result !== undefined) ev.result = job.result;
  if (job.sweep !== undefined) ev.sweep = job.sweep;
  if (job.index !== undefined) ev.index = job.index;
  if (reason !== undefined) ev.reason = reason;
  return ev;
}

/** True for the events that end a job: the joblog's lines, one per job. */
export function isFinal(ev: EventRecord): boolean {
  return ev.event === 'finished' || ev.event === 'gave-up' || ev.event === 'skipped';
}

/** The start of a gave-up reason when no eligible host could be reached: never final for --resume. */
export const UNREACHABLE = 'unreachable';

/** The start of the reason of a job whose inputs cm-fetch --stage-in never put on its host. */
export const UNSTAGED = 'its inputs were never staged';

/**
 * Why a job cannot run as it came in, before any host is tried: it names inputs that no stage-in put
 * on the hosts (its command would fail there with "cannot open"). Undefined when it may run.
 */
export function refusedBeforeRun(job: JobRecord): string | undefined {
  if ((job.inputs?.length ?? 0) > 0 && job.staged !== true) {
    return `${UNSTAGED}: put cm-fetch --stage-in before cm-exec (inputs: ${job.inputs!.join(', ')})`;
  }
  return undefined;
}

/**
 * Whether a final event read from the joblog keeps its job from running again. --resume runs the
 * jobs that never ended on their own: interrupted or halted (never logged), those no host could be
 * reached for, those with unstaged inputs, and skipped ones (their deps decide again). --retry-failed
 * also runs every job that did not succeed.
 */
export function settledBy(ev: EventRecord, retryFailed: boolean): boolean {
  if (ev.event === 'finished') return ev.exit === 0 || !retryFailed;
  if (retryFailed || ev.event !== 'gave-up') return false;
  const reason = ev.reason ?? '';
  return !(reason.startsWith(UNREACHABLE) || reason.startsWith(UNSTAGED) || reason.startsWith('interrupted') || reason === 'halted');
}
