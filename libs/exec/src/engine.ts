// The I/O around the pure Scheduler: reads records, starts transports, writes events and the
// joblog, turns signals, EPIPE and input errors into orderly stops.
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CmError, ExitCode, formatTable, freshRunId, InputError, isEnvName, leavesFiles, readRecordBatches, readRecords, RecordWriter, type EventRecord, type HostRecord, type JobRecord } from '@cm/protocol';
import { ControlDir, sshArgs } from '@cm/ssh';
import type { HaltPolicy } from './halt';
import { JobCancel } from './cancel';
import { isFinal } from './events';
import { JobLog, readJoblog, replayable } from './joblog';
import { Scheduler, type Action, type SchedulerStats } from './scheduler';
import { resumeCommand, RunReport } from './report';
import { LocalTransport, notRun } from './transport/local';
import { PersistentTransport } from './transport/persistent';
import type { RemoteLoop } from './transport/remote-loop';
import { SshTransport } from './transport/ssh';
import type { JobLaunch, JobOutcome, Transport } from './transport/types';
import { trace, tracing } from './trace';

export type TransportName = 'ssh' | 'persistent';

/** The transport used when --transport is not given: one long-lived session per host instead of one ssh per job. */
export const DEFAULT_TRANSPORT: TransportName = 'persistent';

export interface ExecOptions {
  hosts: HostRecord[];
  /** resolves a job's `host` pin; may throw */
  select?: (pin: string) => HostRecord[];
  transport?: TransportName;
  /** seconds ssh masters stay up after the run in ~/.cm/ssh for the next run; 0: a private folder closed at exit */
  keepConnections?: number;
  /** the persistent transport's loop on the hosts (default auto: perl where installed) */
  remoteLoop?: RemoteLoop;
  jobs?: number;
  retries?: number;
  /** default per-job timeout, seconds */
  timeout?: number;
  halt?: HaltPolicy;
  maxOutput?: number;
  /** directory for full-output logs; default .cm/logs/<run> under cwd */
  logs?: string;
  run?: string;
  joblog?: string;
  resume?: boolean;
  /** with joblog: run again every job that did not succeed there (resume runs only what never ended) */
  retryFailed?: boolean;
  /**
   * with joblog: jobs keep running on their hosts if cm-exec dies, and their results wait there this
   * many seconds for a --resume to collect them (then the loop kills what still runs and removes what
   * it kept); 0 (the default): jobs end with cm-exec
   */
  reattachWithin?: number;
  /** NDJSON on stdout (default); false: each job's output tagged with job and host, for people */
  records?: boolean;
  /** the command's words after `cm-exec`, for the resume hint after an interruption */
  commandLine?: string[];
  downAfter?: number;
  strictHostKeys?: boolean;
  sshConfig?: string;
  connectTimeout?: number;
  /** seconds between TERM and KILL when a job is stopped */
  grace?: number;
  dryRun?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  /** stderr is a terminal: the live progress line and the closing summary */
  progress?: boolean;
  /**
   * leave every job's working directory on its host (final events say kept: true); otherwise a job
   * with no outputs and no result file has its directory removed when it ends (cm-fetch removes the
   * others once it has verified their files)
   */
  keepWorkdirs?: boolean;
  /** login directory for local hosts */
  home: string;
  cwd: string;
  /**
   * transports other than the defaults (local for local hosts, else by `transport`): tests inject
   * them, an engine brings its own, and `forHost` gives some hosts one of their own (the nodes of a
   * Slurm allocation in an inventory of ssh hosts); the caller closes those
   */
  transports?: { local?: Transport; remote?: Transport; forHost?: (host: HostRecord) => Transport | undefined };
}

export interface ExecIO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  signal: AbortSignal;
}

/** Persistent sessions where they start, the per-job ssh transport on hosts where they cannot. */
class PersistentWithFallback implements Transport {
  readonly name = 'persistent';
  constructor(
    private readonly persistent: PersistentTransport,
    private readonly ssh: SshTransport,
  ) {}
  run(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    if (this.persistent.unavailable(host.name) !== undefined) return this.ssh.run(host, job, signal);
    return this.persistent.run(host, job, signal).then((o) =>
      // the session said its loop cannot run on this host: the per-job ssh transport takes over
      o.ran || this.persistent.unavailable(host.name) === undefined ? o : this.ssh.run(host, job, signal),
    );
  }
  async collect(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome> {
    if (this.persistent.unavailable(host.name) === undefined) {
      const o = await this.persistent.collect(host, job, signal);
      if (o.ran || o.lost || this.persistent.unavailable(host.name) === undefined) return o;
    }
    // the per-job transport ran it there (the loop cannot run on that host): its wrapper kept the spool
    return this.ssh.collect(host, job, signal);
  }
  prepare(host: HostRecord): void {
    this.persistent.prepare(host);
  }
  async close(): Promise<void> {
    // the sessions first: closing the control folder ends the masters they run over
    await this.persistent.close();
    await this.ssh.close();
  }
}

function remoteTransport(opts: ExecOptions, control: ControlDir): Transport {
  const sshOpts = {
    hostKeyChecking: opts.strictHostKeys ? ('yes' as const) : ('accept-new' as const),
    configFile: opts.sshConfig,
    connectTimeout: opts.connectTimeout,
    grace: opts.grace,
  };
  const ssh = new SshTransport({ ...sshOpts, control });
  if ((opts.transport ?? DEFAULT_TRANSPORT) === 'ssh') return ssh;
  const persistent = new PersistentTransport({
    ssh: {
      controlDir: control.path,
      controlPersist: control.persist,
      hostKeyChecking: sshOpts.hostKeyChecking,
      configFile: opts.sshConfig,
      connectTimeout: opts.connectTimeout,
    },
    killGrace: opts.grace,
    loop: opts.remoteLoop,
  });
  return new PersistentWithFallback(persistent, ssh);
}

/**
 * What every engine refuses in a job record from stdin, as an input error naming the line: an
 * environment name sh cannot export, an id seen before.
 */
export function checkJobInput(job: JobRecord, line: number, raw: string, duplicate: boolean): void {
  for (const k of Object.keys(job.env ?? {})) {
    if (!isEnvName(k)) throw new InputError('stdin', line, undefined, `job ${job.id}: environment variable name ${JSON.stringify(k)} is not allowed`, raw.slice(0, 120));
  }
  if (duplicate) throw new InputError('stdin', line, undefined, `duplicate job id ${JSON.stringify(job.id)}`, raw.slice(0, 120));
}

/** The joblog's final events by job when --resume or --retry-failed reads it. */
export function priorRun(opts: Pick<ExecOptions, 'resume' | 'retryFailed' | 'joblog' | 'cwd'>): Map<string, EventRecord> | undefined {
  return (opts.resume || opts.retryFailed) && opts.joblog ? readJoblog(resolve(opts.cwd, opts.joblog)) : undefined;
}

/** The jobs --resume or --retry-failed do not run again, with the events they replay. */
export function replayedJobs(opts: Pick<ExecOptions, 'retryFailed'>, log: Map<string, EventRecord> | undefined): Map<string, EventRecord> | undefined {
  return log && replayable(log, opts.retryFailed === true);
}

/** The run's id: --run, else the one the joblog names (--resume, --retry-failed), else a fresh one. */
export function chooseRun(opts: Pick<ExecOptions, 'run' | 'resume' | 'retryFailed' | 'joblog' | 'cwd'>, log?: Map<string, EventRecord>): string {
  const prior = log ?? priorRun(opts);
  return opts.run ?? [...(prior?.values() ?? [])].find((e) => e.run)?.run ?? freshRunId();
}

/** The person's view of the run on stderr (and stdout on a terminal), the same for every engine. */
export function runReport(opts: Pick<ExecOptions, 'progress' | 'records' | 'quiet' | 'verbose' | 'joblog' | 'commandLine'>, io: ExecIO, writer: RecordWriter, stats: () => SchedulerStats): RunReport {
  const tty = opts.progress === true;
  return new RunReport({
    writer,
    stderr: io.stderr,
    records: opts.records !== false,
    tty,
    sameTerminal: tty && (io.stdout as { isTTY?: boolean }).isTTY === true,
    quiet: opts.quiet,
    verbose: opts.verbose,
    joblog: opts.joblog,
    commandLine: opts.commandLine,
    stats,
  });
}

/** Jobs ready to run that cm-exec holds before it stops reading its input (at least twice the slots). */
const BACKLOG = 1024;

/** Seconds past --reattach-within after which --resume runs a job whose host it cannot reach elsewhere. */
export const REATTACH_MARGIN = 5;

/** Where a host keeps a detached job's results: beside the run's working directories, never in them. */
export function spoolOf(run: string, job: string, attempt: number): string {
  return `.cm/spool/${run}/${job}.${attempt}`;
}

/** The seconds a detached job's results wait on its host; 0 when jobs end with cm-exec. */
export function lingerOf(opts: Pick<ExecOptions, 'joblog' | 'reattachWithin'>): number {
  return opts.joblog ? (opts.reattachWithin ?? 0) : 0;
}

/** The joblog's jobs a cm-exec that died left running on hosts with a spool: collected, not run again. */
export function leftRunning(opts: Pick<ExecOptions, 'resume' | 'retryFailed'>, log: Map<string, EventRecord> | undefined): Map<string, EventRecord> | undefined {
  if (!log || !(opts.resume || opts.retryFailed)) return undefined;
  return new Map([...log].filter(([, ev]) => ev.event === 'started' && ev.spool !== undefined));
}

/**
 * Collects a job from its host, trying again while the host cannot be reached, until `deadline`
 * (ms): by then the loop that ran it has ended it (its results wait that long after cm-exec was
 * last seen, counted from before this run started), so running it elsewhere cannot run it twice.
 */
async function collectUntil(t: Transport, host: HostRecord, job: JobLaunch, signal: AbortSignal, deadline: number, closing: () => boolean): Promise<JobOutcome> {
  if (!t.collect) return { ...notRun(new Date(), `the transport to ${host.name} keeps no results`), lost: true };
  for (;;) {
    const o = await t.collect(host, job, signal);
    if (o.ran || o.lost || signal.aborted || closing()) return o;
    const wait = Math.min(2000, deadline - Date.now());
    if (wait <= 0) return { ...o, lost: true, reason: `lost: ${host.name} not reached within --reattach-within (${o.reason ?? 'unreachable'})` };
    await new Promise<void>((r) => {
      const t = setTimeout(r, wait);
      signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
    });
  }
}

export async function execute(opts: ExecOptions, io: ExecIO): Promise<number> {
  // every host that reaches ssh is checked before anything is spawned (an engine's own transport,
  // Slurm's, names its hosts itself)
  const own = opts.transports?.forHost ?? (() => undefined);
  if (!opts.transports?.remote) for (const h of opts.hosts) if (!h.local && !own(h)) sshArgs(h);
  if (opts.hosts.length === 0) throw new CmError('no hosts selected', ExitCode.INPUT);

  const prior = priorRun(opts);
  const run = chooseRun(opts, prior);
  const resumed = replayedJobs(opts, prior);
  const linger = lingerOf(opts);
  const left = leftRunning(opts, prior);
  const began = Date.now();
  const logs = resolve(opts.cwd, opts.logs ?? join('.cm', 'logs', run));
  // a progress line on the terminal stdout shares is cleared before each record: no batching there
  const writer = new RecordWriter(io.stdout, { batch: !(opts.progress === true && (io.stdout as { isTTY?: boolean }).isTTY === true) });
  if (opts.dryRun) return dryRun(opts, io, writer, run);

  const needsRemote = opts.hosts.some((h) => !h.local && !own(h));
  const local = opts.transports?.local ?? new LocalTransport({ home: opts.home, grace: opts.grace });
  // the runs of its jobs, listed in the folder of its masters, let a cm-fetch behind this cm-exec
  // ride them (ControlDir.serve)
  const control = needsRemote && !opts.transports?.remote ? new ControlDir({ prefix: 'cm-exec', keep: opts.keepConnections, home: opts.home }) : undefined;
  const remote = needsRemote ? (opts.transports?.remote ?? remoteTransport(opts, control!)) : undefined;
  const transportOf = (h: HostRecord): Transport => own(h) ?? (h.local ? local : remote!);
  // Connect while the first records are still on their way (cm-plan starting up, a slow producer):
  // a job then starts on an open session instead of waiting for a key exchange.
  trace('engine: connecting');
  for (const h of opts.hosts) if (!h.local) transportOf(h).prepare?.(h);
  trace('engine: every session spawned');
  const joblog = opts.joblog ? new JobLog(resolve(opts.cwd, opts.joblog)) : undefined;

  const sched = new Scheduler({
    hosts: opts.hosts,
    run,
    jobs: opts.jobs,
    retries: opts.retries,
    downAfter: opts.downAfter,
    halt: opts.halt,
    select: opts.select,
    transportOf: (h) => transportOf(h).name,
    resumed,
    running: left,
  });

  const backlogLimit = Math.max(BACKLOG, 2 * opts.hosts.reduce((n, h) => n + h.slots, 0));
  const report = runReport(opts, io, writer, () => sched.stats());
  const say = report.say;
  const controllers = new Map<string, JobCancel>();
  let inflight = 0;
  let pendingWrite: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  const apply = (actions: Action[]): void => {
    for (const a of actions) {
      if (a.type === 'emit') {
        if (opts.keepWorkdirs && a.event.workdir !== undefined && !a.event.replayed && isFinal(a.event)) a.event.kept = true;
        // the pure Scheduler has no clock: when a job started or a host went down is said here
        if (a.event.event === 'started' && a.event.start === undefined) a.event.start = new Date().toISOString();
        else if ((a.event.event === 'host-down' || a.event.event === 'host-up') && a.event.at === undefined) a.event.at = new Date().toISOString();
        if (a.joblog && joblog) joblog.append(a.event);
        const p = report.event(a.event);
        if (p) pendingWrite = p;
      } else if (a.type === 'cancel') {
        controllers.get(a.job)?.abort();
      } else {
        launch(a.job, a.host, a.attempt, a.run, a.workdir, a.collect);
      }
    }
  };

  const launch = (job: JobRecord, host: HostRecord, attempt: number, runId: string, workdir: string, collect?: string): void => {
    if (!host.local) control?.serve(runId);
    const ac = new JobCancel();
    controllers.set(job.id, ac);
    inflight += 1;
    const spec: JobLaunch = {
      id: job.id,
      command: job.command,
      env: { ...(job.env ?? {}), CM_JOB: job.id, CM_RUN: runId, CM_TASK: job.task },
      workdir,
      // (cm-fetch reads the directory of a job that leaves files, after it ends)
      removeWorkdir: !opts.keepWorkdirs && !leavesFiles(job),
      timeout: job.timeout ?? opts.timeout,
      maxOutput: opts.maxOutput ?? 1024 * 1024,
      // (logs is resolved, a job id holds no slash: no join needed per job)
      logBase: `${logs}/${job.id}.${attempt}`,
    };
    const transport = transportOf(host);
    // a detached loop ends its jobs within 2 s past their bound (it looks once a second, in whole
    // seconds), counted from when a cm-exec was last seen there: before this run began
    const within = left?.get(job.id)?.reattach_within ?? linger;
    const collectDeadline = began + (within + REATTACH_MARGIN) * 1000;
    if (collect !== undefined) spec.spool = { dir: collect, linger: within };
    else if (linger > 0 && transport.collect) {
      spec.spool = { dir: spoolOf(runId, job.id, attempt), linger };
      // before the job can start: a cm-exec that dies from here on leaves a line to find it by
      joblog?.append({ kind: 'event', v: 1, event: 'started', job: job.id, task: job.task, run: runId, host: host.name, attempt, transport: transport.name, start: new Date().toISOString(), workdir, spool: spec.spool.dir, reattach_within: linger });
    }
    const failed = (err: unknown): void => ended(notRun(new Date(), `transport error: ${(err as Error).message}`));
    let following = collect !== undefined;
    const ended = (outcome: JobOutcome): void => {
      if (!following && outcome.orphaned && !ac.signal.aborted && !closing) {
        // its session was lost while the job ran: the host keeps it, so wait for it there rather
        // than run it twice; elsewhere only once its loop has ended it
        following = true;
        collectUntil(transport, host, spec, ac.signal, Date.now() + (linger + REATTACH_MARGIN) * 1000, () => closing).then(ended, failed);
        return;
      }
      try {
        controllers.delete(job.id);
        inflight -= 1;
        apply(sched.done(job.id, outcome));
      } catch (err) {
        fatal = err;
      }
      poke();
    };
    let result: Promise<JobOutcome>;
    try {
      result = collect !== undefined ? collectUntil(transport, host, spec, ac.signal, collectDeadline, () => closing) : transport.run(host, spec, ac.signal);
    } catch (err) {
      result = Promise.resolve(notRun(new Date(), (err as Error).message));
    }
    result.then(ended, failed);
  };

  let fatal: unknown;
  let stopCode: number | undefined;
  let inputError: InputError | undefined;
  const stopAll = (reason: string, code: number, cancel: boolean): void => {
    if (stopCode !== undefined) return;
    stopCode = code;
    report.stopping(reason);
    apply(sched.stop(reason, cancel));
    // stop reading: nothing more will be started
    io.stdin.destroy();
    poke();
  };
  // SIGHUP: the terminal is gone, not the person's will to stop. With results kept on the hosts, the
  // jobs keep running (their sessions' loops detach when the sessions close) for a --resume to collect
  let detached = false;
  // the transports are being closed: a session that ends now is not a host lost
  let closing = false;
  const onAbort = (): void => {
    const reason = io.signal.reason as CmError | undefined;
    const code = reason instanceof CmError ? reason.code : 130;
    detached = code === 129 && linger > 0;
    stopAll(reason instanceof Error ? reason.message : 'interrupted', code, !detached);
  };
  if (io.signal.aborted) onAbort();
  else io.signal.addEventListener('abort', onAbort, { once: true });
  writer.onClose(() => stopAll('stopped: stdout closed', 0, true));

  report.startProgress();

  try {
    try {
      reading: for await (const batch of readRecordBatches(io.stdin, { source: 'stdin' })) {
        for (const { record, raw, line } of batch) {
          if (stopCode !== undefined) break reading;
          if (record.kind !== 'job') {
            const p = report.passThrough(raw);
            if (p) await p;
            continue;
          }
          const job = record as JobRecord;
          if (tracing && sched.stats().seen === 0) trace('first job record read');
          checkJobInput(job, line, raw, sched.has(job.id));
          apply(sched.add(job));
          if (pendingWrite) {
            const p = pendingWrite;
            pendingWrite = undefined;
            await p;
          }
          // enough jobs wait for a slot: the rest stay in the pipe (and their producer waits) instead
          // of in memory, so a million-job stream costs what a few thousand do
          while (sched.backlog > backlogLimit && stopCode === undefined && fatal === undefined) {
            await new Promise<void>((r) => {
              wake = r;
            });
          }
        }
      }
    } catch (err) {
      if (err instanceof InputError) {
        inputError = err;
        // work already started finishes; nothing new starts
        const reason = `stopped: input error at stdin:${err.line ?? '?'}`;
        report.stopping(reason);
        apply(sched.stop(reason, false));
      } else if (stopCode === undefined) {
        throw err;
      }
    }
    apply(sched.endInput());
    while (!(sched.idle && inflight === 0) && fatal === undefined && !detached) {
      await new Promise<void>((r) => {
        wake = r;
      });
      if (pendingWrite) {
        const p = pendingWrite;
        pendingWrite = undefined;
        await p;
      }
    }
    if (fatal !== undefined) throw fatal;
  } finally {
    io.signal.removeEventListener('abort', onAbort);
    report.endProgress();
    // cancel anything still running (only after an internal error) before closing connections
    const running = controllers.size;
    closing = true;
    trace('every job ended: closing');
    if (!detached) for (const c of controllers.values()) c.abort();
    // a detached loop outlives its session, and an interrupted run does not wait for its sessions
    // to end: their masters are cut rather than left to end with them
    if (detached || stopCode !== undefined || fatal !== undefined) control?.cutAtClose();
    await Promise.all([local.close(), remote?.close()]);
    trace('connections closed');
    if (detached && !opts.quiet) {
      say(`${String((io.signal.reason as Error).message)}: ${running} running job${running === 1 ? '' : 's'} keep running on their hosts`);
      say(`to collect them and run what is left, give the same job records to: ${resumeCommand(opts.commandLine ?? ['--joblog', opts.joblog!])}`);
    }
    joblog?.close();
    await writer.end();
  }
  // a stop by EPIPE or an input error says no more than that; a signal, what it stopped
  if (!inputError && !(stopCode !== undefined && stopCode < 128) && !detached) report.finish({ signalled: stopCode !== undefined });
  if (inputError) throw inputError;
  if (stopCode !== undefined) return stopCode;
  if (sched.wasHalted) say('stopped by --halt');
  return sched.exitCode();
}

/** Validates the input and prints, on stderr, each job with the hosts it may run on; runs nothing. */
async function dryRun(opts: ExecOptions, io: ExecIO, writer: RecordWriter, run: string): Promise<number> {
  const rows: string[][] = [['JOB', 'RUN', 'HOSTS', 'DEPS', 'COMMAND']];
  const seen = new Set<string>();
  const all = opts.hosts.map((h) => h.name).join(',');
  for await (const { record, raw, line } of readRecords(io.stdin, { source: 'stdin' })) {
    if (record.kind !== 'job') {
      const p = writer.writeLine(raw);
      if (p) await p;
      continue;
    }
    const job = record as JobRecord;
    if (seen.has(job.id)) throw new InputError('stdin', line, undefined, `duplicate job id ${JSON.stringify(job.id)}`);
    seen.add(job.id);
    let hosts = all;
    if (job.host) {
      try {
        hosts = (opts.select ? opts.select(job.host) : opts.hosts.filter((h) => h.name === job.host)).map((h) => h.name).join(',') || `(none: ${job.host})`;
      } catch (err) {
        hosts = `(none: ${(err as Error).message})`;
      }
    }
    const deps = [...job.deps, ...(job.after ?? []).map((d) => `~${d}`)].join(',') || '-';
    rows.push([job.id, job.run ?? run, hosts, deps, job.command.replace(/\s+/g, ' ').slice(0, 80)]);
  }
  io.stderr.write(formatTable(rows[0]!, rows.slice(1)));
  await writer.end();
  return ExitCode.OK;
}
