// How a job reaches a node of the allocation, as a Transport under @cm/exec's Scheduler, the same
// seam the local, ssh and persistent transports fill:
//   steps    each job is an `srun --exclusive` step pinned to the node the Scheduler chose;
//   workers  one long-lived srun step per node carries cm's persistent job loop (the program the
//            ssh engine runs over ssh), and jobs go down its stdin: a tiny job costs a few forks on
//            the node instead of a Slurm step.
// Slots, dependencies, retries, timeouts, --halt, the joblog and the events are the Scheduler's.
import { spawn } from 'node:child_process';
import { notRun, OutputCapture, outcomeOf, JobStops, PersistentTransport, type JobLaunch, type JobOutcome, type Transport } from '@cm/exec';
import { signalName, type HostRecord } from '@cm/protocol';
import type { Allocation } from './allocation';
import { collectArgs, srunArgs, STEP_MARKER, type SlurmOptions } from './options';
import { slurmMessage } from './proc';

/** What every Slurm transport reports as its name in started and finished events. */
export const TRANSPORT = 'slurm';

const NODE_FAILURE = /node fail|NODE_FAIL|Node failure/i;
const TIME_LIMIT = /DUE TO TIME LIMIT/;
// srun's own line restating the exit status the event already carries
const SRUN_EXIT_LINE = /^srun: error: [^:\n]+: task \d+: Exited with exit code \d+$/;
// the lines Slurm writes into a step's stderr, kept apart to explain how a step ended
const SLURM_LINE = /^(srun|slurmstepd): /;

export interface SlurmTransportOptions {
  slurm: SlurmOptions;
  env: NodeJS.ProcessEnv;
  /** seconds between SIGTERM and SIGKILL of a stopped job */
  grace: number;
  /**
   * the allocation outlives cm-exec (--reattach-within, or a --resume that adopted it): jobs keep
   * their results on their node, and a later cm-exec collects them there
   */
  detached?: boolean;
}

/** A job that cannot run in this allocation: given up with the reason, nowhere else to try. */
export function refused(start: Date, reason: string): JobOutcome {
  return { ...notRun(start, reason), refused: true };
}

/** A job too long for the allocation: Slurm would cut it at the allocation's end; say so up front. */
function tooLong(a: Allocation, job: JobLaunch): string | undefined {
  if (job.timeout === undefined || a.limit === undefined || job.timeout <= a.limit) return undefined;
  return `time limit too large: timeout ${job.timeout}s exceeds the allocation's time limit ${a.limitText}`;
}

export class SlurmStepTransport implements Transport {
  readonly name = TRANSPORT;

  constructor(
    private readonly alloc: Allocation,
    private readonly opts: SlurmTransportOptions,
  ) {
    if (opts.detached) {
      this.collect = (host, job, signal) =>
        job.spool
          ? this.spooledStep(collectArgs(opts.slurm, alloc.id, { id: job.id, spool: job.spool }, host.name), host, job, signal, true)
          : Promise.resolve({ ...notRun(new Date(), `${job.id} has no results kept`), lost: true });
    }
  }

  run(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    const start = new Date();
    const long = tooLong(this.alloc, job);
    if (long !== undefined) return Promise.resolve(refused(start, long));
    if (signal.aborted) return Promise.resolve(notRun(start, 'cancelled'));
    if (job.spool && this.opts.detached) return this.spooledStep(srunArgs(this.opts.slurm, this.alloc.id, job, host.name), host, job, signal, false);
    const out = new OutputCapture(job.maxOutput, `${job.logBase}.stdout`);
    const err = new OutputCapture(job.maxOutput, `${job.logBase}.stderr`);
    const env = { ...this.opts.env, ...job.env };
    return new Promise((resolve) => {
      const child = spawn('srun', srunArgs(this.opts.slurm, this.alloc.id, job, host.name), { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const stops = new JobStops(signal, job.timeout, (s) => {
        // srun passes SIGTERM to the step; if the step outlives the grace, SIGKILL ends srun and,
        // with it, the step (Slurm's --time is the backstop)
        child.kill('SIGTERM');
        s.later(this.opts.grace * 1000, () => child.kill('SIGKILL'));
      });
      child.stdout.on('data', (c: Buffer) => out.push(c));
      const lines = new StderrLines(STEP_MARKER, (c) => err.push(c));
      child.stderr.on('data', (c: Buffer) => lines.push(c));
      let spawnError: string | undefined;
      child.on('error', (e) => (spawnError = `cannot run srun: ${e.message}`));
      child.on('close', (code, sig) => {
        stops.done();
        lines.end();
        const notes = lines.slurmLines.join('\n');
        if (!lines.started) {
          // srun failed before the job began: the node or the step could not be had
          resolve(notRun(start, spawnError ?? (slurmMessage(lines.head) || `srun exited ${code ?? sig}`), out, err));
        } else if (NODE_FAILURE.test(notes)) {
          resolve(notRun(start, `node failure on ${host.name}`, out, err));
        } else if (TIME_LIMIT.test(notes) && !stops.timedOut) {
          resolve(outcomeOf(out, err, start, { exit: null, signal: null, reason: `timeout after ${job.timeout ?? '?'}s`, timedOut: true }));
        } else {
          const exit = code ?? null;
          // a job we stopped died of our signal: name it (srun only says 128+N)
          const stoppedBy = stops.reason !== undefined && exit !== null && exit > 128 ? signalName(exit - 128) : null;
          resolve(outcomeOf(out, err, start, { exit, signal: stoppedBy ?? sig, reason: stops.reason, timedOut: stops.timedOut }));
        }
      });
    });
  }

  /**
   * Waits, in a step beside it, for a job a cm-exec that died left in a step on `host`. Only on a
   * detached allocation: the engine keeps results (job.spool) only where a transport can collect them.
   */
  readonly collect?: (host: HostRecord, job: JobLaunch, signal: AbortSignal) => Promise<JobOutcome>;

  /**
   * A step under spool-step.sh (a job run with its results kept on the node, or the collection of
   * one): its end comes as a line with the job's real times, status and stream sizes; then cm asks
   * for the kept streams and, once it has them all, lets the step remove them.
   */
  private spooledStep(args: string[], host: HostRecord, job: JobLaunch, signal: AbortSignal, collecting: boolean): Promise<JobOutcome> {
    const start = new Date();
    const out = new OutputCapture(job.maxOutput, `${job.logBase}.stdout`);
    const err = new OutputCapture(job.maxOutput, `${job.logBase}.stderr`);
    const env = { ...this.opts.env, ...job.env };
    return new Promise((resolve) => {
      const child = spawn('srun', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin.on('error', () => undefined);
      // a collected job's timeout ran on the cm-exec that started it; this one only waits
      const stops = new JobStops(signal, collecting ? undefined : job.timeout, (s) => {
        child.kill('SIGTERM');
        s.later(this.opts.grace * 1000, () => child.kill('SIGKILL'));
      });
      let ended: SpoolEnd | undefined;
      let lost: string | undefined;
      let outGot = 0;
      let errGot = 0;
      const acked = (): void => {
        if (ended && outGot >= ended.outKept && errGot >= ended.errKept && child.stdin.writable) child.stdin.end('gone\n');
      };
      child.stdout.on('data', (c: Buffer) => {
        outGot += c.length;
        out.push(c);
        acked();
      });
      const lines = new StderrLines(STEP_MARKER, (c) => {
        errGot += c.length;
        err.push(c);
        acked();
      });
      lines.onLine = (text) => {
        if (ended !== undefined || lost !== undefined) return false;
        const e = parseSpoolEnd(text);
        if (e) {
          ended = e;
          // what follows is the kept stderr, replayed whole
          lines.raw = true;
          child.stdin.write('go\n');
          acked();
          return true;
        }
        if (text.startsWith(`${SPOOL_LOST} `)) {
          lost = text.slice(SPOOL_LOST.length + 1);
          return true;
        }
        return false;
      };
      child.stderr.on('data', (c: Buffer) => lines.push(c));
      let spawnError: string | undefined;
      child.on('error', (e) => (spawnError = `cannot run srun: ${e.message}`));
      child.on('close', (code, sig) => {
        stops.done();
        lines.end();
        if (!lines.started) {
          resolve(notRun(start, spawnError ?? (slurmMessage(lines.head) || `srun exited ${code ?? sig}`), out, err));
        } else if (lost !== undefined) {
          resolve({ ...notRun(start, `lost: ${lost}`, out, err), lost: true });
        } else if (!ended) {
          // the step ended before the job did (node failure, Slurm's time limit): it left nothing
          const notes = lines.slurmLines.join('\n');
          resolve(notRun(start, NODE_FAILURE.test(notes) ? `node failure on ${host.name}` : slurmMessage(notes) || `srun exited ${code ?? sig} before the job ended`, out, err));
        } else {
          const exit = ended.exit;
          const stoppedBy = stops.reason !== undefined && exit > 128 ? signalName(exit - 128) : null;
          const o = outcomeOf(out, err, start, { exit, signal: stoppedBy, reason: stops.reason, timedOut: stops.timedOut });
          o.start = new Date(ended.start);
          o.end = new Date(ended.end);
          o.stdoutBytes = ended.outBytes;
          o.stderrBytes = ended.errBytes;
          o.truncated = ended.outBytes > ended.outKept || ended.errBytes > ended.errKept;
          if (collecting) o.collected = true;
          resolve(o);
        }
      });
    });
  }

  async close(): Promise<void> {}
}

/** spool-step.sh's line when a job it waited for left no results (it was ended before it finished). */
const SPOOL_LOST = 'cm-slurm-lost';

export interface SpoolEnd {
  start: number;
  end: number;
  exit: number;
  outBytes: number;
  errBytes: number;
  outKept: number;
  errKept: number;
}

/** spool-step.sh's line "cm-slurm-ended START_MS END_MS EXIT OUT_BYTES ERR_BYTES OUT_KEPT ERR_KEPT". */
export function parseSpoolEnd(line: string): SpoolEnd | undefined {
  const m = /^cm-slurm-ended (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/.exec(line.trim());
  if (!m) return undefined;
  const [start, end, exit, outBytes, errBytes, outKept, errKept] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return { start, end, exit, outBytes, errBytes, outKept, errKept };
}

/**
 * A step's stderr: the job's own bytes pass on once the job script's start line has come; srun's and
 * slurmstepd's lines are kept apart (they say how the step ended), and srun's restatement of the exit
 * code is dropped. Lines are split only to look at them: the job's bytes pass unchanged.
 */
export class StderrLines {
  started = false;
  /** what came before the start line: srun's reason when the step never started */
  head = '';
  readonly slurmLines: string[] = [];
  /** sees each line after the start line first: true keeps it from the job's stderr */
  onLine?: (text: string) => boolean;
  /** from now on every byte is the job's: passed on as it comes */
  raw = false;
  private partial: Buffer = Buffer.alloc(0);

  constructor(
    private readonly marker: string,
    private readonly sink: (chunk: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.raw) {
      this.sink(chunk);
      return;
    }
    let buf = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    let nl: number;
    while ((nl = buf.indexOf(10)) >= 0) {
      this.line(buf.subarray(0, nl + 1));
      buf = buf.subarray(nl + 1);
      if (this.raw) {
        // the rest is the job's, unsplit: a last line without a newline is not held back
        if (buf.length) this.sink(buf);
        this.partial = Buffer.alloc(0);
        return;
      }
    }
    this.partial = buf;
    // a long line without a newline is the job's: pass it on without waiting for its end
    if (this.started && this.partial.length > 65536) {
      this.sink(this.partial);
      this.partial = Buffer.alloc(0);
    }
  }

  end(): void {
    if (this.partial.length) this.line(this.partial);
    this.partial = Buffer.alloc(0);
  }

  private line(raw: Buffer): void {
    const text = raw.toString('utf8').replace(/\n$/, '');
    if (!this.started) {
      if (text.startsWith(`${this.marker} `)) this.started = true;
      else if (this.head.length < 65536) this.head += `${text}\n`;
      return;
    }
    if (this.onLine?.(text)) return;
    if (SLURM_LINE.test(text)) {
      if (this.slurmLines.length < 100) this.slurmLines.push(text);
      if (SRUN_EXIT_LINE.test(text)) return;
    }
    this.sink(raw);
  }
}

/** The persistent job loop on every node of the allocation, each carried by one srun step. */
export function workersTransport(a: Allocation, opts: SlurmTransportOptions): Transport {
  const cpus = new Map(a.nodes.map((n) => [n.name, n.cpus]));
  const home = opts.env.HOME ?? '/';
  const loops = new PersistentTransport({
    killGrace: opts.grace,
    // a step waits for the controller before it starts: longer than an ssh hello
    helloTimeout: 60,
    // the loop's cwd is where workdirs are made, as the login directory is over ssh
    sessionCommand: (host, remote) => ({
      file: 'srun',
      args: [
        `--jobid=${a.id}`,
        // a collecting session shares the node with the loop a dead cm-exec left there, whose
        // step still holds the node's CPUs
        opts.detached ? '--overlap' : '--exclusive',
        '--ntasks=1',
        '--nodes=1',
        `--nodelist=${host.name}`,
        `--cpus-per-task=${cpus.get(host.name) ?? 1}`,
        `--job-name=cm-worker-${host.name}`,
        `--chdir=${home}`,
        '--quiet',
        'sh',
        '-c',
        remote,
      ],
    }),
  });
  return {
    name: TRANSPORT,
    run: (host, job, signal) => {
      const long = tooLong(a, job);
      return long !== undefined ? Promise.resolve(refused(new Date(), long)) : loops.run(host, job, signal);
    },
    prepare: (host) => loops.prepare(host),
    close: () => loops.close(),
    // the loop keeps a job's results when its session ends only while the allocation outlives it
    ...(opts.detached ? { collect: (host: HostRecord, job: JobLaunch, signal: AbortSignal) => loops.collect(host, job, signal) } : {}),
  };
}

/** Every job of a run that has no allocation gives up with the reason (Slurm refused it). */
export function refusingTransport(reason: string): Transport {
  return { name: TRANSPORT, run: async () => refused(new Date(), reason), close: async () => {} };
}
