// One `ssh` client per job, multiplexed over one ControlMaster per host in a private control
// directory. The remote side runs a small POSIX wrapper (REMOTE_WRAPPER) that puts the job in its
// own session (setsid) and watches ssh's stdin: a line `TERM` or EOF (cm-exec died, even by
// SIGKILL) kills the job's whole process group, TERM then KILL after a grace period. That is what
// makes timeouts and cancellation reach the remote processes without a second connection.
import { spawn } from 'node:child_process';
import { posix } from 'node:path';
import { isEnvName, randomHex, shQuote, signalName, type HostRecord } from '@cm/protocol';
import { ControlDir, Masters, sshArgs, type SshArgOptions } from '@cm/ssh';
import { OutputCapture, outcomeOf } from './capture';
import { JobStops } from './stops';
import { notRun } from './local';
import { removableWorkdir, type JobLaunch, type JobOutcome, type Transport } from './types';
import MKDIRS_SH from './mkdirs.sh';
import WRAPPER_SH from './wrapper.sh';
import COLLECT_SH from './collect.sh';

// the wrapper's comment lines stay in the file: each job's command line carries only the code
const WRAPPER = WRAPPER_SH.replace(/^#.*\n/gm, '').trimEnd();
/** _cmq_mkdirs, the one mkdir -p with retries of the sh programs on hosts */
export const MKDIRS = MKDIRS_SH.replace(/^#.*\n/gm, '').trimEnd();
const COLLECT = COLLECT_SH.replace(/^#.*\n/gm, '').trimEnd();

/** The remote wrapper (wrapper.sh) with the seconds between TERM and KILL, in tenths. */
export function remoteWrapper(graceTenths: number): string {
  return WRAPPER.replace('@GRACE_TENTHS@', String(graceTenths));
}

/** The one remote command string: make the workdir, export the environment, run the wrapper. */
export function remoteCommand(job: JobLaunch, trailer: string, graceTenths: number): string {
  const env = Object.entries(job.env);
  for (const [k] of env) if (!isEnvName(k)) throw new Error(`environment variable name ${JSON.stringify(k)} is not allowed`);
  const exports = env.length > 0 ? ` && export ${env.map(([k, v]) => `${k}=${shQuote(v)}`).join(' ')}` : '';
  const wd = shQuote(job.workdir);
  // $3: the directory the wrapper removes when the job ends ('' keeps it), taken before the job's
  // env could change PWD. _cmq_mkdirs (mkdirs.sh, sent first) also makes the spool in the wrapper.
  const remove = job.removeWorkdir && removableWorkdir(job.workdir) ? '"$PWD"' : "''";
  // $4..$6: the spool of a job that outlives its session (--reattach-within), the bytes of each
  // stream it keeps, and the seconds it waits for cm-exec
  const spool = job.spool ? ` ${shQuote(job.spool.dir)} ${job.maxOutput} ${job.spool.linger}` : '';
  // the wrapper runs in the login shell itself (one exec less per job); $1..$6 come from `set --`
  return `${MKDIRS}
{ _cmq_mkdirs ${wd} && cd ${wd} && set -- ${shQuote(job.command)} ${trailer} ${remove}${spool}${exports}; } || exit 1\n${remoteWrapper(graceTenths)}`;
}

export interface SshTransportOptions {
  hostKeyChecking?: 'accept-new' | 'yes';
  configFile?: string;
  connectTimeout?: number;
  /** seconds between TERM and KILL of the remote group */
  grace?: number;
  /** concurrent master set-ups over all hosts */
  maxSetups?: number;
  /** the socket folder; default a private one of this transport's own */
  control?: ControlDir;
  /** program to run (tests, wrappers); default `ssh` */
  ssh?: string;
}

export class SshTransport implements Transport {
  readonly name = 'ssh';
  readonly control: ControlDir;
  private readonly masters: Masters;
  private readonly trailer = `cm-exec-exit-255-${randomHex(8)}`;
  private readonly ssh: string;
  /** removals of spools whose jobs cm-exec has: close() waits for them */
  private readonly unspooling = new Set<Promise<void>>();

  constructor(private readonly opts: SshTransportOptions = {}) {
    this.control = opts.control ?? new ControlDir({ prefix: 'cm-exec', ssh: opts.ssh });
    this.ssh = opts.ssh ?? 'ssh';
    this.masters = new Masters({ control: this.control, ssh: this.ssh, maxSetups: opts.maxSetups });
  }

  private argsFor(host: HostRecord): string[] {
    const o: SshArgOptions = {
      controlDir: this.control.path,
      controlPersist: this.control.persist,
      connectTimeout: this.opts.connectTimeout ?? 10,
      hostKeyChecking: this.opts.hostKeyChecking ?? 'accept-new',
      configFile: this.opts.configFile,
    };
    // ssh takes the first value of an option: LogLevel=ERROR keeps "Permanently added" notes out of job stderr
    return ['-o', 'LogLevel=ERROR', ...sshArgs(host, o)];
  }

  async run(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    const start = new Date();
    const args = this.argsFor(host);
    const failed = await this.masters.ensure(host, args);
    if (failed !== undefined) return notRun(start, failed);
    if (signal.aborted) return notRun(start, 'cancelled');
    const grace = this.opts.grace ?? 2;
    const remote = remoteCommand(job, this.trailer, Math.max(1, Math.round(grace * 10)));
    const out = new OutputCapture(job.maxOutput, `${job.logBase}.stdout`);
    const err = new OutputCapture(job.maxOutput, `${job.logBase}.stderr`);
    return new Promise((resolve) => {
      const child = spawn(this.ssh, [...args, remote], { stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin!.on('error', () => {});
      const stops = new JobStops(signal, job.timeout, (s) => {
        child.stdin!.write('TERM\n');
        // the remote wrapper escalates to KILL after the grace period; if the connection itself
        // hangs, give up on it locally a little later
        s.later((grace + 10) * 1000, () => child.kill('SIGKILL'));
      });
      child.stdout!.on('data', (c: Buffer) => out.push(c));
      child.stderr!.on('data', (c: Buffer) => err.push(c));
      let settled = false;
      const finish = (o: JobOutcome): void => {
        if (settled) return;
        settled = true;
        stops.done();
        resolve(o);
      };
      child.on('error', (e) => finish(notRun(start, `cannot run ${this.ssh}: ${e.message}`, out, err)));
      child.on('close', (code, sig) => {
        let exit = code;
        let ran = true;
        let reason = stops.reason;
        if (sig !== null) {
          // only we kill ssh: the connection hung past the grace period
          ran = stops.reason !== undefined;
          reason = stops.reason ?? `ssh killed by ${sig}`;
          exit = null;
        } else if (code === 255) {
          const marker = Buffer.from(`${this.trailer}\n`);
          const tail = err.tail();
          if (tail.length >= marker.length && tail.subarray(-marker.length).equals(marker)) {
            err.dropTail(marker.length);
          } else if (stops.reason === undefined) {
            ran = false;
            const lines = tail.toString('utf8').trim().split('\n').filter(Boolean);
            reason = lines.at(-1)?.replace(/\r$/, '') ?? 'connection lost';
          }
        }
        if (!ran) {
          // the host keeps a spooled job that its session lost: the engine collects it there
          const o = notRun(start, reason ?? 'connection lost', out, err);
          if (job.spool && stops.reason === undefined) o.orphaned = true;
          finish(o);
          return;
        }
        if (job.spool) this.unspool(host, args, job.spool.dir);
        // a job we stopped died of our signal: name it (the remote shell only says 128+N)
        const stoppedBy = stops.reason !== undefined && exit !== null && exit > 128 ? signalName(exit - 128) : null;
        finish(outcomeOf(out, err, start, { exit, signal: stoppedBy, reason, timedOut: stops.timedOut }));
      });
    });
  }

  /**
   * Waits for a job a cm-exec that died started with `job.spool` (collect.sh on the host), and gives
   * its kept outputs with its real times and status; the spool goes once the engine has the job.
   */
  async collect(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    const start = new Date();
    const args = this.argsFor(host);
    if (!job.spool) return { ...notRun(start, `no spool on ${host.name} to collect the job from`), lost: true };
    const failed = await this.masters.ensure(host, args);
    if (failed !== undefined) return notRun(start, failed);
    if (signal.aborted) return notRun(start, 'cancelled');
    const dir = job.spool.dir;
    const remote = `set -- ${shQuote(dir)} ${this.trailer}\n${COLLECT}`;
    const out = new OutputCapture(job.maxOutput, `${job.logBase}.stdout`);
    const err = new OutputCapture(job.maxOutput, `${job.logBase}.stderr`);
    return new Promise((resolve) => {
      const child = spawn(this.ssh, [...args, remote], { stdio: ['ignore', 'pipe', 'pipe'] });
      const onAbort = (): void => void child.kill('SIGTERM');
      signal.addEventListener('abort', onAbort, { once: true });
      child.stdout!.on('data', (c: Buffer) => out.push(c));
      child.stderr!.on('data', (c: Buffer) => err.push(c));
      let settled = false;
      const finish = (o: JobOutcome): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve(o);
      };
      child.on('error', (e) => finish(notRun(start, `cannot run ${this.ssh}: ${e.message}`, out, err)));
      child.on('close', () => {
        const tail = err.tail().toString('latin1');
        const at = tail.lastIndexOf(`${this.trailer} `);
        const line = at >= 0 ? tail.slice(at + this.trailer.length + 1).replace(/\n$/, '') : '';
        if (at >= 0) err.dropTail(tail.length - at);
        const t = /^t (\d+) (\d+) (\d+) (\d+) (\d+) (\S+)$/.exec(line);
        if (t) {
          const status = Number(t[5]);
          const o = outcomeOf(out, err, start, { exit: status, signal: null });
          o.start = new Date(Number(t[1]));
          o.end = new Date(Number(t[2]));
          o.stdoutBytes = Number(t[3]);
          o.stderrBytes = Number(t[4]);
          o.truncated = o.stdoutBytes > o.stdout.length || o.stderrBytes > o.stderr.length;
          o.collected = true;
          finish(o);
          this.unspool(host, args, dir);
        } else if (line.startsWith('l ')) {
          finish({ ...notRun(start, `lost on ${host.name}: ${line.slice(2)}`, out, err), lost: true });
          this.unspool(host, args, dir);
        } else {
          const lines = err.tail().toString('utf8').trim().split('\n').filter(Boolean);
          finish(notRun(start, signal.aborted ? 'cancelled' : (lines.at(-1)?.replace(/\r$/, '') ?? 'connection lost'), out, err));
        }
      });
    });
  }

  /** Removes a spool (and its run's folder once empty) after the engine has logged its job. */
  private unspool(host: HostRecord, args: string[], dir: string): void {
    const done = new Promise<void>((resolve) => {
      setImmediate(() => {
        const run = posix.dirname(dir);
        const command = `rm -rf ${shQuote(dir)}; rmdir ${shQuote(run)} ${shQuote(posix.dirname(run))} 2>/dev/null; exit 0`;
        const child = spawn(this.ssh, [...args, command], { stdio: 'ignore' });
        child.on('error', () => resolve());
        child.on('close', () => resolve());
      });
    });
    this.unspooling.add(done);
    void done.then(() => this.unspooling.delete(done));
  }

  /** Closes the control folder: every master in it exits (a private folder), or stays for the next run (shared). */
  async close(): Promise<void> {
    await Promise.all([...this.unspooling]);
    await this.control.close();
  }
}
