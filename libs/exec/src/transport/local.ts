// Hosts with `local: true`: `sh -c` as a local subprocess in its own process group, so a timeout
// or cancel kills the job's children too.
import { spawn } from 'node:child_process';
import { mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { signalNumber, type HostRecord } from '@cm/protocol';
import { OutputCapture, outcomeOf } from './capture';
import { JobStops } from './stops';
import { removableWorkdir, type JobLaunch, type JobOutcome, type Transport } from './types';

export interface LocalTransportOptions {
  /** directory job workdirs are relative to ($HOME, as for an ssh login) */
  home: string;
  /** seconds between TERM and KILL on timeout or cancel */
  grace?: number;
}

export class LocalTransport implements Transport {
  readonly name = 'local';

  constructor(private readonly opts: LocalTransportOptions) {}

  run(_host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    const start = new Date();
    const out = new OutputCapture(job.maxOutput, `${job.logBase}.stdout`);
    const err = new OutputCapture(job.maxOutput, `${job.logBase}.stderr`);
    const cwd = join(this.opts.home, job.workdir);
    return new Promise((resolve) => {
      try {
        mkdirWithRetry(cwd);
      } catch (e) {
        resolve(notRun(start, `cannot create ${cwd}: ${(e as Error).message}`, out, err));
        return;
      }
      const child = spawn('/bin/sh', ['-c', job.command], {
        cwd,
        env: { ...process.env, ...job.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const killGroup = (sig: NodeJS.Signals): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, sig);
        } catch {
          // the group is already gone
        }
      };
      const stops = new JobStops(signal, job.timeout, (s) => {
        killGroup('SIGTERM');
        s.later((this.opts.grace ?? 2) * 1000, () => killGroup('SIGKILL'));
      });
      child.stdout!.on('data', (c: Buffer) => out.push(c));
      child.stderr!.on('data', (c: Buffer) => err.push(c));
      let settled = false;
      const finish = (o: JobOutcome): void => {
        if (settled) return;
        settled = true;
        stops.done();
        // the job ended: whatever it left running in its group goes with it (as on remote hosts)
        killGroup('SIGKILL');
        if (job.removeWorkdir && removableWorkdir(job.workdir)) removeWorkdir(cwd);
        resolve(o);
      };
      child.on('error', (e) => finish(notRun(start, `cannot start /bin/sh: ${e.message}`, out, err)));
      child.on('close', (code, sig) => {
        finish(
          outcomeOf(out, err, start, {
            exit: code ?? 128 + (signalNumber(sig) ?? 0),
            signal: sig,
            reason: stops.reason,
            timedOut: stops.timedOut,
          }),
        );
      });
    });
  }

  async close(): Promise<void> {}
}

/**
 * mkdir -p, up to 10 times: another job's clean-up removes the run's folder whenever it is empty,
 * which can fall between the steps again and again when jobs are tiny.
 */
function mkdirWithRetry(dir: string): void {
  for (let tries = 1; ; tries += 1) {
    try {
      mkdirSync(dir, { recursive: true });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || tries >= 10) throw e;
    }
  }
}

/** Removes a job's directory and its run's folder once empty (rmdir: another job may still use it). */
function removeWorkdir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
    rmdirSync(dirname(dir));
  } catch {
    // the run's folder holds other jobs, or the directory could not go: cm-exec --clean finds it
  }
}

export function notRun(start: Date, reason: string, out?: OutputCapture, err?: OutputCapture): JobOutcome {
  out?.finish();
  err?.finish();
  return {
    ran: false,
    exit: null,
    signal: null,
    reason,
    stdout: Buffer.alloc(0),
    stderr: Buffer.alloc(0),
    stdoutBytes: 0,
    stderrBytes: 0,
    truncated: false,
    start,
    end: new Date(),
  };
}
