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
import { srunArgs, STEP_MARKER, type SlurmOptions } from './options';
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
  ) {}

  run(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    const start = new Date();
    const long = tooLong(this.alloc, job);
    if (long !== undefined) return Promise.resolve(refused(start, long));
    if (signal.aborted) return Promise.resolve(notRun(start, 'cancelled'));
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

  async close(): Promise<void> {}
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
  private partial: Buffer = Buffer.alloc(0);

  constructor(
    private readonly marker: string,
    private readonly sink: (chunk: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    let buf = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    let nl: number;
    while ((nl = buf.indexOf(10)) >= 0) {
      this.line(buf.subarray(0, nl + 1));
      buf = buf.subarray(nl + 1);
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
        '--exclusive',
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
  };
}

/** Every job of a run that has no allocation gives up with the reason (Slurm refused it). */
export function refusingTransport(reason: string): Transport {
  return { name: TRANSPORT, run: async () => refused(new Date(), reason), close: async () => {} };
}
