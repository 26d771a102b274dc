// The persistent transport: one long-lived `ssh` child per host (by default) running the POSIX sh
// loop of remote-loop.ts, which starts up to any number of jobs at once and ships each one's
// stdout, stderr and status back in frames. A tiny job then costs a few forks on the host instead
// of an ssh client process, an sshd session and a key exchange or mux round trip.
//
// Why one session per host rather than one per slot: at 1,000 hosts x 4 slots, per-slot sessions
// mean 4,000 ssh children and 12,000 pipe ends in cm-exec; per-host sessions need 1,000 and 3,000,
// under the usual 20k-64k descriptor limit with room to spare. The loop runs every job in its own
// background runner, so one session does not serialise a host's slots. `sessionsPerHost` can raise
// the count when one loop's request handling becomes the bottleneck.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { homedir } from 'node:os';
import { isEnvName, randomHex, type HostRecord } from '@cm/protocol';
import { SSH_CONNECTION_FAILURE, sshArgs, type SshArgOptions } from '@cm/ssh';
import { OutputCapture, outcomeOf } from './capture';
import { notRun } from './local';
import { bootstrapCommand, FrameDecoder, lineQuote, remoteProgram, type Frame, type RemoteLoop } from './remote-loop';
import { trace, tracingJobs } from '../trace';
import { removableWorkdir, type JobLaunch, type JobOutcome, type Transport } from './types';

/** Start of `reason` when the loop cannot run on a host; the caller should use the per-job transport there. */
export const PERSISTENT_UNAVAILABLE = 'persistent session unavailable';

export interface PersistentTransportOptions {
  /** ssh options (control sockets, timeouts, config file) */
  ssh?: SshArgOptions;
  /** the loop on the host: perl where installed, else sh ('auto', the default); or always sh */
  loop?: RemoteLoop;
  /** sessions per host: a number, or 'slots' for one per slot; default 1 */
  sessionsPerHost?: number | 'slots';
  /** seconds between TERM and KILL of a timed-out or cancelled job's process group; default 2 */
  killGrace?: number;
  /** restart back-off after a session fails to start or dies: first delay, cap (ms) */
  restartBackoff?: { initialMs: number; maxMs: number };
  /** seconds to wait for the loop's hello after spawning ssh; default connectTimeout + 20 */
  helloTimeout?: number;
  /** the command that carries the loop; default ssh (local hosts: sh). Tests substitute sh. */
  sessionCommand?: (host: HostRecord, remoteCommand: string) => { file: string; args: string[]; cwd?: string };
}

const STDERR_TAIL = 4096;

function defaultSessionCommand(ssh: SshArgOptions) {
  return (host: HostRecord, remoteCommand: string) =>
    host.local
      ? { file: 'sh', args: ['-c', remoteCommand], cwd: homedir() }
      : { file: 'ssh', args: [...sshArgs(host, ssh), remoteCommand] };
}

/** Keeps the first `cap` bytes for the event; past the cap, the whole stream goes to a log file. */
interface Running {
  serial: number;
  lane: number;
  job: JobLaunch;
  out: OutputCapture;
  err: OutputCapture;
  start: Date;
  timedOut: boolean;
  reason?: string;
  /** its results are kept on the host until a `c` request says the controller has them */
  spooled: boolean;
  /** a job of this session's own (not one it collects) */
  own: boolean;
  /** collected from another loop's spool: its real times and stream sizes */
  times?: { start: number; end: number; stdoutBytes: number; stderrBytes: number };
  timers: NodeJS.Timeout[];
  done: (outcome: JobOutcome) => void;
}

class StartError extends Error {
  constructor(
    message: string,
    /** true: the host answered but cannot run the loop; false: could not connect */
    readonly unavailable: boolean,
  ) {
    super(message);
  }
}


// Every job of a run carries the same few variable names and, in CM_RUN, the same value: their
// checks and quoting are done once, not per job.
const quotedNames = new Map<string, string | undefined>();
const lastValues = new Map<string, { value: string; quoted: string }>();

/** The name as a request word; undefined when sh cannot take it or the loop reserves it. */
function quotedName(name: string): string | undefined {
  let q = quotedNames.get(name);
  if (q === undefined && !quotedNames.has(name)) {
    q = isEnvName(name) && !name.startsWith('_cmq_') ? lineQuote(name) : undefined;
    // a stream of made-up names must not grow this without bound
    if (quotedNames.size < 1024) quotedNames.set(name, q);
  }
  return q;
}

/** The value of variable `name` as a request word. */
function quotedValue(name: string, value: string): string {
  const last = lastValues.get(name);
  if (last !== undefined && last.value === value) return last.quoted;
  const quoted = lineQuote(value);
  if (last !== undefined) {
    last.value = value;
    last.quoted = quoted;
  } else if (lastValues.size < 1024) {
    lastValues.set(name, { value, quoted });
  }
  return quoted;
}

/** One ssh child running the loop. */
class Session {
  state: 'starting' | 'ready' | 'dead' = 'starting';
  readonly ready: Promise<void>;
  private child: ChildProcessWithoutNullStreams | null = null;
  private readonly running = new Map<number, Running>();
  private readonly lanes: boolean[] = [];
  private serial = 0;
  private stderrTail = '';
  private deathReason = '';
  private exited: Promise<void> = Promise.resolve();
  private hello: (err?: StartError) => void = () => {};
  private helloTimer: NodeJS.Timeout | undefined;
  private readonly noise: string[] = [];
  /** CM_TRACE: when each lane's last job's x frame came in */
  private readonly freedAt: number[] = [];

  constructor(
    readonly host: HostRecord,
    private readonly opts: Required<Pick<PersistentTransportOptions, 'killGrace' | 'helloTimeout'>>,
    private readonly command: { file: string; args: string[]; cwd?: string },
    private readonly program: string,
    private readonly marker: string,
    private readonly onDeath: (s: Session) => void,
    delayMs: number,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.hello = (err) => (err ? reject(err) : resolve());
    });
    // Callers await `ready`; keep an unobserved rejection from crashing the process.
    this.ready.catch(() => {});
    if (delayMs > 0) this.helloTimer = setTimeout(() => this.spawn(), delayMs);
    else this.spawn();
  }

  private spawn(): void {
    if (this.state === 'dead') return;
    const { command, opts, host } = this;
    const child = spawn(command.file, command.args, { stdio: 'pipe', cwd: command.cwd });
    trace(`${host.name}: session spawned`);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const decoder = new FrameDecoder(this.marker, (f) => this.frame(f));
    this.helloTimer = setTimeout(() => {
      this.hello(new StartError(`no answer from the session loop on ${host.name} within ${opts.helloTimeout}s`, false));
      this.die(`no hello within ${opts.helloTimeout}s`);
    }, opts.helloTimeout * 1000);
    child.stdout.on('data', (chunk: Buffer) => decoder.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    // The loop's stdin closes when the session dies; writes after that must not throw.
    child.stdin.on('error', () => {});
    child.on('error', (err) => {
      clearTimeout(this.helloTimer);
      this.hello(new StartError(`cannot run ${command.file}: ${err.message}`, false));
      this.die(err.message);
    });
    // Normally stdout closes when the carrier exits. Processes left on a killed loop's side (locally
    // carried sessions) can hold it open: then the exit, plus a moment for data in flight, decides.
    child.on('exit', (code, sig) => {
      setTimeout(() => child.emit('close', code, sig), 300).unref();
    });
    let closed = false;
    child.on('close', (code, sig) => {
      if (closed) return;
      closed = true;
      clearTimeout(this.helloTimer);
      const said = this.lastStderrLine();
      if (this.state === 'starting') {
        // ssh exits 255 for its own failures; anything else means the host answered but the loop did not run
        const unavailable = code !== SSH_CONNECTION_FAILURE && code !== null;
        const why = said || this.noise[this.noise.length - 1] || `${command.file} ended (${code ?? sig}) before the session loop started`;
        this.hello(
          new StartError(
            unavailable
              ? `${PERSISTENT_UNAVAILABLE} on ${host.name}: the login shell could not run the POSIX sh loop (exit ${code}): ${why}`
              : why,
            unavailable,
          ),
        );
      }
      this.die(said || (code !== null ? `session exited with ${code}` : `session killed by ${sig}`));
    });
    child.stdin.write(this.program);
  }

  /** jobs handed to this session that wait for its hello */
  waiting = 0;

  /** jobs handed to this session, launched or still waiting for its hello */
  get load(): number {
    return this.waiting + this.running.size;
  }

  private lastStderrLine(): string {
    const lines = this.stderrTail.split('\n').filter((l) => l.trim() !== '');
    return lines[lines.length - 1]?.trim() ?? '';
  }

  private frame(f: Frame): void {
    const { hello, noise } = this;
    switch (f.type) {
      case 'hello':
        clearTimeout(this.helloTimer);
        trace(`${this.host.name}: hello`);
        if (this.state === 'starting') {
          this.state = 'ready';
          hello();
        }
        return;
      case 'fail':
        clearTimeout(this.helloTimer);
        hello(new StartError(`${PERSISTENT_UNAVAILABLE} on ${this.host.name}: ${f.reason}`, true));
        this.die(f.reason);
        return;
      case 'noise':
        if (this.state === 'starting') {
          // login banners and rc-file chatter before the loop starts are harmless
          noise.push(f.line);
          if (noise.length > 20) noise.shift();
        } else {
          this.die(`session out of step (${JSON.stringify(f.line.slice(0, 80))})`);
        }
        return;
      case 'data': {
        const r = this.running.get(f.serial);
        if (r) (f.stream === 'stdout' ? r.out : r.err).push(f.bytes);
        return;
      }
      case 'times': {
        const r = this.running.get(f.serial);
        if (r) r.times = f;
        return;
      }
      case 'lost': {
        const r = this.running.get(f.serial);
        if (!r) return;
        this.finish(r, { ran: false, exit: null, signal: null, reason: `lost on ${this.host.name}: ${f.reason}` }, true);
        this.lanes[r.lane] = false;
        return;
      }
      case 'exit': {
        const r = this.running.get(f.serial);
        if (!r) return;
        // As the per-job ssh transport reports it: the status as sh gives it (128+N for a signal, which
        // `exit 137` cannot be told apart from), the signal's name only when we sent it.
        this.finish(r, {
          ran: true,
          exit: f.status,
          signal: r.reason !== undefined ? f.signal : null,
        });
        this.lanes[r.lane] = false;
        if (tracingJobs) this.freedAt[r.lane] = performance.now();
        return;
      }
    }
  }

  private finish(r: Running, how: { ran: boolean; exit: number | null; signal: string | null; reason?: string }, lost = false, orphaned = false): void {
    if (!this.running.delete(r.serial)) return;
    for (const t of r.timers) clearTimeout(t);
    const o = outcomeOf(r.out, r.err, r.start, { ...how, reason: how.reason ?? r.reason, timedOut: r.timedOut });
    if (r.times) {
      // the host kept the first maxOutput bytes of each stream: the sizes are the whole ones
      o.start = new Date(r.times.start);
      o.end = new Date(r.times.end);
      o.stdoutBytes = r.times.stdoutBytes;
      o.stderrBytes = r.times.stderrBytes;
      o.truncated = o.stdoutBytes > o.stdout.length || o.stderrBytes > o.stderr.length;
      o.collected = true;
    }
    if (lost) o.lost = true;
    if (orphaned) o.orphaned = true;
    r.done(o);
    // after the engine has logged the outcome (it does so in the promise's reactions; send waits a turn)
    if (r.spooled && this.state === 'ready') this.send(`c ${r.serial}\n`);
  }

  /** Waits for a job another loop ran with `job.spool` (a cm-exec that died started it). */
  collect(job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    const start = new Date();
    if (this.state !== 'ready') return Promise.resolve(notRun(start, `session to ${this.host.name} lost: ${this.deathReason}`));
    if (!job.spool) return Promise.resolve({ ...notRun(start, `no spool on ${this.host.name} to collect the job from`), lost: true });
    const dir = lineQuote(job.spool.dir);
    return this.track(job, signal, start, 'collect', (serial) => `a ${serial} ${dir}\n`);
  }

  launch(job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    const start = new Date();
    if (this.state !== 'ready') return Promise.resolve(notRun(start, `session to ${this.host.name} lost: ${this.deathReason}`));
    // sh treats a leading "-" as an option and the loop's cwd is the login directory
    const wd = job.workdir === '' ? '.' : job.workdir.startsWith('/') ? job.workdir : `./${job.workdir}`;
    let words = `${lineQuote(wd)} ${lineQuote(job.command)}`;
    for (const n in job.env) {
      const name = quotedName(n);
      if (name === undefined) {
        return Promise.resolve(notRun(start, `environment variable name ${JSON.stringify(n)} is not valid in sh or reserved (_cmq_*)`));
      }
      words += ` ${name} ${quotedValue(n, job.env[n] as string)}`;
    }
    const rm = job.removeWorkdir && removableWorkdir(job.workdir) ? 1 : 0;
    const spool = job.spool ? `${job.maxOutput} ${job.spool.linger} ${lineQuote(job.spool.dir)}` : undefined;
    return this.track(job, signal, start, spool ? 'spooled' : 'run', (serial, lane) =>
      `${spool ? `s ${serial} ${spool}\n` : ''}r ${serial} ${lane} ${rm} ${words}\n`,
    );
  }

  /** Sends the request for the job's serial and lane, and follows the job to its end. */
  private track(job: JobLaunch, signal: AbortSignal, start: Date, how: 'run' | 'spooled' | 'collect', request: (serial: number, lane: number) => string): Promise<JobOutcome> {
    let lane = this.lanes.indexOf(false);
    if (lane < 0) lane = this.lanes.length;
    this.lanes[lane] = true;
    const serial = ++this.serial;
    const collecting = how === 'collect';
    return new Promise<JobOutcome>((resolve) => {
      const r: Running = {
        serial,
        lane,
        job,
        out: new OutputCapture(job.maxOutput, `${job.logBase}.stdout`),
        err: new OutputCapture(job.maxOutput, `${job.logBase}.stderr`),
        start,
        timedOut: false,
        spooled: how !== 'run',
        own: how !== 'collect',
        timers: [],
        done: (o) => {
          signal.removeEventListener('abort', onAbort);
          resolve(o);
        },
      };
      const onAbort = () => this.stop(r, 'cancelled');
      this.running.set(serial, r);
      signal.addEventListener('abort', onAbort, { once: true });
      this.send(request(serial, lane));
      if (tracingJobs) {
        const freed = this.freedAt[lane];
        trace(`${this.host.name}: r ${serial} on lane ${lane}${freed === undefined ? '' : `, ${(performance.now() - freed).toFixed(1)} ms after the lane's x`}`);
      }
      // a collected job's timeout ran on the cm-exec that started it; this one only waits
      if (job.timeout !== undefined && !collecting) {
        r.timers.push(
          setTimeout(() => {
            r.timedOut = true;
            this.stop(r, `timeout after ${job.timeout}s`);
          }, job.timeout * 1000),
        );
      }
      if (signal.aborted) onAbort();
    });
  }

  /** TERM the job's process group, KILL it after the grace, give up on it if the loop stays silent. */
  private stop(r: Running, reason: string): void {
    if (!this.running.has(r.serial) || r.reason !== undefined) return;
    r.reason = reason;
    this.signal(r, 'TERM');
    const grace = this.opts.killGrace * 1000;
    r.timers.push(setTimeout(() => this.signal(r, 'KILL'), grace));
    r.timers.push(
      setTimeout(() => {
        // The runner itself is gone (the job killed its parent): never reuse that lane's files.
        this.finish(r, { ran: true, exit: 137, signal: 'SIGKILL', reason: `${reason}; no exit status from the host` });
      }, grace + 5000),
    );
  }

  private signal(r: Running, sig: 'TERM' | 'KILL'): void {
    if (this.state === 'ready' && this.running.has(r.serial)) this.send(`k ${r.serial} ${r.lane} ${sig}\n`);
  }

  private outbox: string[] = [];

  /**
   * Requests made in one turn of the event loop (the next jobs started by several that just ended)
   * leave in one write: one ssh packet for the lot instead of one each.
   */
  private send(line: string): void {
    if (this.outbox.push(line) > 1) return;
    setImmediate(() => {
      const lines = this.outbox.join('');
      this.outbox = [];
      if (this.state === 'ready') this.child?.stdin.write(lines);
      if (tracingJobs) trace(`${this.host.name}: wrote ${lines.split('\n').length - 1} request lines`);
    });
  }

  private die(reason: string): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.deathReason = reason;
    for (const r of [...this.running.values()]) {
      this.finish(r, { ran: false, exit: null, signal: null, reason: `session to ${this.host.name} lost: ${reason}` }, false, r.spooled && r.own);
    }
    clearTimeout(this.helloTimer);
    if (this.state === 'dead' && this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    this.hello(new StartError(`session to ${this.host.name} ended: ${reason}`, false));
    this.onDeath(this);
  }

  /** Ends the loop (which kills what still runs, and the sh loop removes its temp dir) and waits for ssh to exit. */
  async close(): Promise<void> {
    if (!this.child) {
      this.die('closed');
      return;
    }
    const child = this.child;
    // the last jobs' `c` requests (their spools can go) leave before the loop sees the end
    if (this.state === 'ready' && this.outbox.length > 0) child.stdin.write(this.outbox.join(''));
    this.outbox = [];
    child.stdin.end();
    // ssh ends on TERM; a locally carried perl loop ignores it (see PERL_LOOP) and needs KILL
    const timers = [setTimeout(() => child.kill('SIGTERM'), 3000), setTimeout(() => child.kill('SIGKILL'), 6000)];
    await this.exited;
    for (const t of timers) clearTimeout(t);
    this.die('closed');
  }
}

interface HostSessions {
  sessions: Session[];
  failures: number;
  retryAt: number;
  unavailable?: string;
}

export class PersistentTransport implements Transport {
  readonly name = 'persistent';
  private readonly hosts = new Map<string, HostSessions>();
  private readonly all = new Set<Session>();
  private readonly command: NonNullable<PersistentTransportOptions['sessionCommand']>;
  private closed = false;

  constructor(private readonly opts: PersistentTransportOptions = {}) {
    this.command = opts.sessionCommand ?? defaultSessionCommand(opts.ssh ?? {});
  }

  /** The reason the loop cannot run on this host (use the per-job transport there), if known. */
  unavailable(hostName: string): string | undefined {
    return this.hosts.get(hostName)?.unavailable;
  }

  run(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    return this.onSession(host, signal, (session) => session.launch(job, signal));
  }

  /** A job a cm-exec that died left on the host (--resume): its kept result, or its end when it comes. */
  collect(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    // a host whose loop cannot run has nothing kept: the job is lost there
    return this.onSession(host, signal, (session) => session.collect(job, signal), true);
  }

  /** `use` on a ready session of host; a host or session that cannot be had is an outcome that never ran. */
  private onSession(host: HostRecord, signal: AbortSignal, use: (s: Session) => Promise<JobOutcome>, lostIfUnavailable = false): Promise<JobOutcome> {
    if (this.closed) return Promise.resolve(notRun(new Date(), 'transport closed'));
    const hs = this.stateOf(host);
    if (hs.unavailable) return Promise.resolve(lostIfUnavailable ? { ...notRun(new Date(), hs.unavailable), lost: true } : notRun(new Date(), hs.unavailable));
    const session = this.pick(host, hs);
    // the usual case once connected: no wait for the hello, so no promise and listener more per job
    if (session.state === 'ready' && !signal.aborted) {
      try {
        return use(session);
      } catch (err) {
        return Promise.resolve(notRun(new Date(), (err as Error).message));
      }
    }
    return this.whenReady(session, hs, signal, use);
  }

  private async whenReady(session: Session, hs: HostSessions, signal: AbortSignal, use: (s: Session) => Promise<JobOutcome>): Promise<JobOutcome> {
    const start = new Date();
    // counted in the session's load while it waits for its hello; once launched, as running
    session.waiting += 1;
    try {
      await abortable(session.ready, signal);
    } catch (err) {
      return this.notStarted(err, hs, signal, start);
    } finally {
      session.waiting -= 1;
    }
    try {
      return await use(session);
    } catch (err) {
      return this.notStarted(err, hs, signal, start);
    }
  }

  private notStarted(err: unknown, hs: HostSessions, signal: AbortSignal, start: Date): JobOutcome {
    if (signal.aborted) return notRun(start, 'cancelled');
    const e = err as StartError;
    if (e.unavailable) hs.unavailable = e.message;
    return notRun(start, e.message);
  }

  prepare(host: HostRecord): void {
    if (this.closed || this.hosts.has(host.name)) return;
    this.pick(host, this.stateOf(host));
  }

  private stateOf(host: HostRecord): HostSessions {
    let hs = this.hosts.get(host.name);
    if (!hs) {
      hs = { sessions: [], failures: 0, retryAt: 0 };
      this.hosts.set(host.name, hs);
    }
    return hs;
  }

  /** The least loaded live session; a new one while under the limit and every one is busy. */
  private pick(host: HostRecord, hs: HostSessions): Session {
    const limit = this.opts.sessionsPerHost === 'slots' ? host.slots : (this.opts.sessionsPerHost ?? 1);
    let best: Session | undefined;
    for (const s of hs.sessions) if (!best || s.load < best.load) best = s;
    if (best && (best.load === 0 || hs.sessions.length >= limit)) return best;
    const marker = `cm${randomHex(12)}`;
    // its share of the host's slots: the lanes the loop readies before the first job comes
    const program = remoteProgram(marker, this.opts.loop, Math.ceil(host.slots / limit));
    const delay = hs.retryAt - Date.now();
    const spawnIt = () =>
      new Session(
        host,
        { killGrace: this.opts.killGrace ?? 2, helloTimeout: this.opts.helloTimeout ?? (this.opts.ssh?.connectTimeout ?? 10) + 20 },
        this.command(host, bootstrapCommand(Buffer.byteLength(program))),
        program,
        marker,
        (dead) => this.forget(hs, dead),
        delay,
      );
    const session = spawnIt();
    hs.sessions.push(session);
    this.all.add(session);
    session.ready.then(
      () => {
        hs.failures = 0;
      },
      () => {},
    );
    return session;
  }

  private forget(hs: HostSessions, dead: Session): void {
    hs.sessions = hs.sessions.filter((s) => s !== dead);
    this.all.delete(dead);
    if (this.closed) return;
    hs.failures += 1;
    const b = this.opts.restartBackoff ?? { initialMs: 500, maxMs: 30000 };
    hs.retryAt = Date.now() + Math.min(b.maxMs, b.initialMs * 2 ** (hs.failures - 1));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.all].map((s) => s.close()));
    this.all.clear();
    this.hosts.clear();
  }
}

/** `p`, or a rejection as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
