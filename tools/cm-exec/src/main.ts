import os from 'node:os';
import { CmError, ExitCode, PATTERNS } from '@cm/protocol';
import { envDefault, EXIT_CODES, flag, given, intOpt, numOpt, str, wantsRecords, type CommandIO, type DocoptArgs } from '@cm/cli';
import { loadInventory } from '@cm/inventory';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { cleanRuns, DEFAULT_TRANSPORT, trace, parseAge, parseHalt, runStatus, statusText, type HaltPolicy, type RemoteLoop, type TransportName } from '@cm/exec';
import { execJobs, execOnAllocation, execWithClusters, type SlurmMode } from '@cm/slurm';

export const USAGE = `
cm-exec: run job records on the hosts of the inventory, over ssh, as slots and dependencies allow.

Usage:
  cm-exec [options]
  cm-exec --clean [options]
  cm-exec --status [options]
  cm-exec -h | --help

Reads job records (from cm-plan, or written by hand) on stdin and writes event records on stdout:
queued, started (host, attempt, transport, running), retry, host-down, and one final event per job:
finished (exit code: 0 = done, else failed), gave-up (reason) or skipped (a dependency failed or
never appeared). Other records pass through unchanged, in order. A job starts as soon as its deps
have succeeded (its "after" jobs ended) and a slot is free; stdin is not read to the end first.
It goes to the host with the most free slots among those it may run on (its pin: "host" in the
record); a job whose hosts are all busy waits while later jobs start on other hosts.
On a terminal (stdout a TTY, no --json), it prints each job's output instead, as the job ends.

Options:
  -i FILE, --inventory FILE  inventory YAML (default: $CM_INVENTORY, ./cm.yaml, ... see docs/design.md)
  -H SEL, --hosts SEL        use only these hosts: names, ranges th[1-4], @tag, comma-separated
                             (ssh engine)
  -j N, --jobs N             at most N jobs running at once over all hosts (default: sum of slots)
  --engine E                 ssh: the inventory's hosts; slurm: a Slurm cluster (srun/sbatch from
                             here; the inventory is not read) [default: ssh]
  --slurm-mode M             steps (one allocation whose nodes are the hosts, a job = an srun
                             step), workers (the same allocation, cm's job loop on each node:
                             fastest for tiny jobs) or jobs (sbatch per job, sweeps as arrays,
                             deps as afterok: the whole plan waits in Slurm's queue) (default: steps)
  --partition P              Slurm partition (--engine slurm)
  --account A                Slurm account (--engine slurm)
  --qos Q                    Slurm QOS (--engine slurm)
  --cpus N                   CPUs per job on Slurm (--cpus-per-task) (default: 1)
  --transport T              how commands reach a host: ssh (one multiplexed ssh per job) or
                             persistent (long-lived sessions, per-job ssh where they cannot start)
                             (default: ${DEFAULT_TRANSPORT})
  --remote-loop L            the persistent sessions' program on a host: auto (perl where the host
                             has it, else POSIX sh) or sh (always the sh loop, several times the
                             CPU per job) (default: $CM_REMOTE_LOOP, else auto)
  --retries N                run a failed command up to N more times (a job's retries wins) [default: 0]
  --timeout SECS             default per-job timeout; the job's whole process group on the host is
                             killed (TERM, then KILL after --grace)
  --grace SECS               seconds between TERM and KILL (default: 2)
  --halt POLICY              never | now,fail=N | soon,fail=N | now,fail=N% (of jobs seen so far):
                             now cancels running jobs, soon lets them end; exit 5 [default: never]
  --down-after N             connection failures in a row that mark a host down; a down host stays
                             down for the run and its jobs move to other eligible hosts (default: 3)
  --max-output BYTES         stdout and stderr bytes kept in each event [default: 1048576]
  --logs DIR                 where whole outputs over the cap go: DIR/<job>.<attempt>.stdout|.stderr,
                             named by the event's log (default: .cm/logs/<run>)
  --run ID                   run id for jobs without one (default: from --resume's joblog, else
                             YYYYmmdd-HHMMSS-xxxx); jobs work in .cm/runs/<run>/<job> on the host
  --joblog FILE              append each final event to FILE (one NDJSON line, fsynced)
  --resume                   with --joblog: jobs that ended there are not run again; their events
                             are re-emitted with "replayed": true. Jobs that gave up because no
                             host could be reached or their inputs were never staged, and skipped
                             jobs, run again
  --retry-failed             with --joblog: run again the jobs that failed, gave up or were skipped
                             there, and those that never ran; jobs that succeeded are replayed
  --reattach-within SECS     with --joblog (any ssh transport; Slurm steps and workers modes: the
                             allocation outlives cm-exec by SECS, at least 10): a job keeps
                             running when cm-exec dies (SIGKILL, SIGHUP, a lost machine), and its
                             times, exit status and first --max-output bytes of stdout and stderr
                             wait on its host (.cm/spool/<run>/) SECS after cm-exec was last seen;
                             a later --resume collects them (events with "reattached": true, their
                             real times) and waits for those still running. A host cut off while
                             its jobs run is waited for the same way, while cm-exec lives too.
                             Past SECS, the loop on the host kills what still runs and removes
                             what it kept, and cm-exec runs those jobs again elsewhere. Without
                             it, jobs end with cm-exec (default: 0). Slurm's jobs mode always
                             keeps the Slurm ids in the joblog, and --resume follows them
  --status                   with --joblog: print the run's state from its joblog alone and exit
                             (it disturbs nothing): each job started and not ended there (host,
                             attempt, for how long: runs with --reattach-within log their starts),
                             then the counts of those that ended; in a pipe, the last joblog line
                             of each job
  --keep-workdirs            leave every job's .cm/runs/<run>/<job> on its host (final events say
                             "kept": true). Otherwise a job with no outputs and no result file has
                             it removed when it ends (and the run's folder once empty); cm-fetch
                             removes the others once it has verified their files
  --clean                    run no jobs: remove run folders (.cm/runs/<run>) on every selected
                             host at once, all of them, --run ID's, or those --older-than AGE;
                             prints per host what went (a table on a terminal, clean records in
                             a pipe); exit 1 if a host failed
  --older-than AGE           with --clean: only folders in which nothing changed for AGE (30m,
                             12h, 7d)
  --strict-host-keys         only hosts already in known_hosts (default: accept new keys, refuse
                             changed ones)
  --ssh-config FILE          an ssh_config file for every connection (ssh -F)
  --connect-timeout SECS     ssh ConnectTimeout (default: 10)
  --keep-connections SECS    keep each host's ssh master up SECS after the run, in ~/.cm/ssh, for the
                             next cm-exec to reuse without a key exchange (default: $CM_KEEP_CONNECTIONS,
                             else 0: a private folder whose masters are closed at exit)
  -n, --dry-run              check the input; print each job, its eligible hosts and deps as a table
                             on stderr; run nothing, emit no events
  --json                     NDJSON records on stdout even when it is a terminal
  -q, --quiet                nothing on stderr but errors
  -v, --verbose              a line on stderr for every final event, retry and host-down

Common options:
  -h, --help                 show this help

Notes:
  A job runs with stdin from /dev/null, in its own process group on the host, with CM_JOB, CM_RUN,
  CM_TASK and its env. A job killed by signal N reports exit 128+N (signal named when cm-exec sent it).
  A connection failure (ssh exit 255 without the job's own exit) moves the job to another eligible
  host without using a retry. SIGINT/SIGTERM stop starting jobs, kill running ones on their hosts and
  end them gave-up "interrupted" (not written to the joblog, so --resume runs them again); halted jobs
  likewise. EPIPE on stdout stops the same way and exits 0. The login shell on hosts must be POSIX.
  Every engine runs through the same core: the options mean the same on each, or are refused with
  exit 2. --engine slurm refuses what picks or reaches ssh hosts (--hosts, --inventory, --transport,
  --remote-loop, --keep-connections, --strict-host-keys, --ssh-config, --connect-timeout); its jobs
  mode, where Slurm queues the whole plan at once, also refuses --jobs, --grace, --down-after and
  --halt soon,... --engine ssh refuses the Slurm options.
  For people: when stdout is a terminal (and no --json), each job's output is printed when the job
  ends, every line tagged "JOB HOST<TAB>" as parallel --tag does (its stderr on stderr); in a pipe,
  records only. When stderr is a terminal, a progress line and, at the end, the counts, the wall
  time and a line per host (jobs ok and failed, busy time). Every failed job is described at the
  end, whatever stderr is (not with -q): host, exit code or reason, the last lines of its stderr;
  in a pipe the counts follow only when something failed. After SIGINT/SIGTERM, cm-exec says which
  jobs it killed and the command that resumes. A job with inputs but no "staged" gives up before
  it runs (put cm-fetch --stage-in before cm-exec) and its dependents are skipped. A host that
  was not reached yet in the run and refuses or does not answer is down at its first failure, so
  dead hosts are known within about one --connect-timeout. CM_TRACE=1 prints where the start goes
  on stderr (ms and CPU ms since the process started: inventory, each session spawned and ready,
  the first job read, the end); CM_TRACE=2 adds a line per request to the hosts.

${EXIT_CODES}

Examples:
  cm-plan -f examples/assignment.cm | cm-exec | cm-reduce
  cm-plan -f examples/sweep.cm | cm-exec      # on a terminal: lines like "bench.3 th1<TAB>8", a summary
  cm-plan -d 'sq(i=1..100)=echo $((i*i))' +sq | cm-exec -H @rack1 --joblog sq.log | cm-reduce
  cm-plan -d 'sq(i=1..100)=echo $((i*i))' +sq | cm-exec -H @rack1 --joblog sq.log --resume | cm-reduce
                                              # after a crash or Ctrl-C: runs what never ended
  cm-plan -f examples/sweep.cm | cm-exec --joblog sweep.log --reattach-within 86400 | cm-reduce
                                              # if this cm-exec dies, the jobs go on: --resume collects them
  cm-plan -f examples/sweep.cm | cm-exec --joblog sweep.log --retry-failed
                                              # again: only the jobs that did not succeed run
  cm-plan -f examples/sweep.cm | cm-exec --dry-run
  cm-plan -f examples/sweep.cm | cm-exec --json | jq -c 'select(.event=="finished") | [.job, .host, .exit]'
  cm-plan -f examples/sweep.cm | cm-exec --timeout 60 --halt now,fail=1 | jq -c 'select(.event=="finished")'
  cm-exec --clean --older-than 7d             # remove what runs older than a week left on the hosts
  cm-exec --status --joblog sweep.log         # from another terminal: what runs where, what ended
`;

export interface Args {
  engine: 'ssh' | 'slurm';
  slurmMode: SlurmMode;
  partition?: string;
  account?: string;
  qos?: string;
  cpus: number;
  inventory?: string;
  hosts?: string;
  jobs?: number;
  transport: TransportName;
  remoteLoop: RemoteLoop;
  retries: number;
  timeout?: number;
  grace: number;
  halt?: HaltPolicy;
  downAfter: number;
  maxOutput: number;
  logs?: string;
  run?: string;
  joblog?: string;
  resume: boolean;
  retryFailed: boolean;
  reattachWithin: number;
  status: boolean;
  json: boolean;
  /** the words after `cm-exec`, as typed: the resume hint repeats them */
  commandLine?: string[];
  strictHostKeys: boolean;
  sshConfig?: string;
  connectTimeout: number;
  keepConnections: number;
  dryRun: boolean;
  keepWorkdirs: boolean;
  clean: boolean;
  /** --clean's age, minutes */
  olderThan?: number;
  quiet: boolean;
  verbose: boolean;
}

// Options that only mean something on one engine or mode: given elsewhere, they are refused, not
// silently dropped.
const SSH_ONLY = ['--hosts', '--inventory', '--transport', '--remote-loop', '--keep-connections', '--strict-host-keys', '--ssh-config', '--connect-timeout', '--clean'];
const SLURM_ONLY = ['--slurm-mode', '--partition', '--account', '--qos', '--cpus'];
const NOT_IN_JOBS_MODE: Array<[string, string]> = [
  ['--jobs', 'Slurm decides how many of the queued jobs run at once'],
  ['--grace', "Slurm's KillWait is the time between TERM and KILL"],
  ['--down-after', 'Slurm moves jobs off failed nodes itself'],
  ['--reattach-within', 'Slurm keeps the queued jobs and --resume follows them by their Slurm ids'],
];

/** Exit 2 with one line for an option that has no meaning on the engine asked for. */
function refuseOptions(argv: DocoptArgs, engine: string, mode: string): void {
  const refuse = (option: string, why: string): never => {
    throw new CmError(`${option} has no meaning with ${why}`, ExitCode.USAGE);
  };
  if (engine === 'ssh') {
    for (const o of SLURM_ONLY) if (given(argv, o)) refuse(o, '--engine ssh (it is a Slurm option)');
    return;
  }
  for (const o of SSH_ONLY) if (given(argv, o)) refuse(o, '--engine slurm (Slurm places the jobs on its nodes; no ssh is involved)');
  if (mode !== 'jobs') return;
  for (const [o, why] of NOT_IN_JOBS_MODE) if (given(argv, o)) refuse(o, `--slurm-mode jobs (${why})`);
  if (str(argv, '--halt')?.startsWith('soon')) {
    refuse('--halt soon,...', '--slurm-mode jobs (every job is already in Slurm\'s queue: use --halt now,...)');
  }
}

export function toArgs(argv: DocoptArgs, env: NodeJS.ProcessEnv, commandLine?: string[]): Args {
  const a = envDefault(envDefault(argv, '--remote-loop', env.CM_REMOTE_LOOP), '--keep-connections', env.CM_KEEP_CONNECTIONS);
  const transport = str(a, '--transport') ?? DEFAULT_TRANSPORT;
  if (transport !== 'ssh' && transport !== 'persistent') {
    throw new CmError(`--transport must be ssh or persistent, got ${JSON.stringify(transport)}`, ExitCode.USAGE);
  }
  const remoteLoop = str(a, '--remote-loop') ?? 'auto';
  if (remoteLoop !== 'auto' && remoteLoop !== 'sh') {
    throw new CmError(`--remote-loop must be auto or sh, got ${JSON.stringify(remoteLoop)}`, ExitCode.USAGE);
  }
  const run = str(a, '--run');
  if (run !== undefined && !new RegExp(PATTERNS.safeId).test(run)) throw new CmError(`--run ${JSON.stringify(run)} is not a valid id`, ExitCode.USAGE);
  const engine = str(a, '--engine') ?? 'ssh';
  if (engine !== 'ssh' && engine !== 'slurm') throw new CmError(`--engine must be ssh or slurm, got ${JSON.stringify(engine)}`, ExitCode.USAGE);
  const slurmMode = str(a, '--slurm-mode') ?? 'steps';
  if (slurmMode !== 'steps' && slurmMode !== 'workers' && slurmMode !== 'jobs') {
    throw new CmError(`--slurm-mode must be steps, workers or jobs, got ${JSON.stringify(slurmMode)}`, ExitCode.USAGE);
  }
  refuseOptions(argv, engine, slurmMode);
  const args: Args = {
    engine,
    slurmMode,
    partition: str(a, '--partition'),
    account: str(a, '--account'),
    qos: str(a, '--qos'),
    cpus: intOpt(a, '--cpus', { min: 1 }) ?? 1,
    inventory: str(a, '--inventory'),
    hosts: str(a, '--hosts'),
    jobs: intOpt(a, '--jobs', { min: 1 }),
    transport,
    remoteLoop,
    retries: intOpt(a, '--retries') ?? 0,
    timeout: numOpt(a, '--timeout'),
    grace: numOpt(a, '--grace') ?? 2,
    halt: parseHalt(str(a, '--halt')),
    downAfter: intOpt(a, '--down-after', { min: 1 }) ?? 3,
    maxOutput: intOpt(a, '--max-output') ?? 1048576,
    logs: str(a, '--logs'),
    run,
    joblog: str(a, '--joblog'),
    resume: flag(a, '--resume'),
    retryFailed: flag(a, '--retry-failed'),
    reattachWithin: intOpt(a, '--reattach-within') ?? 0,
    status: flag(a, '--status'),
    json: flag(a, '--json'),
    commandLine,
    strictHostKeys: flag(a, '--strict-host-keys'),
    sshConfig: str(a, '--ssh-config'),
    connectTimeout: intOpt(a, '--connect-timeout', { min: 1 }) ?? 10,
    keepConnections: intOpt(a, '--keep-connections') ?? 0,
    dryRun: flag(a, '--dry-run'),
    keepWorkdirs: flag(a, '--keep-workdirs'),
    clean: flag(a, '--clean'),
    olderThan: str(a, '--older-than') === undefined ? undefined : parseAge(str(a, '--older-than') as string),
    quiet: flag(a, '--quiet'),
    verbose: flag(a, '--verbose'),
  };
  if (args.olderThan !== undefined && !args.clean) throw new CmError('--older-than goes with --clean', ExitCode.USAGE);
  if (args.resume && !args.joblog) throw new CmError('--resume needs --joblog FILE', ExitCode.USAGE);
  if (args.status && !args.joblog) throw new CmError('--status needs --joblog FILE', ExitCode.USAGE);
  if (given(argv, '--reattach-within') && !args.joblog) throw new CmError('--reattach-within needs --joblog FILE (the joblog is where --resume finds the jobs again)', ExitCode.USAGE);
  if (args.retryFailed && !args.joblog) throw new CmError('--retry-failed needs --joblog FILE', ExitCode.USAGE);
  if (args.retryFailed && args.resume) throw new CmError('--retry-failed already resumes: give one of --resume and --retry-failed', ExitCode.USAGE);
  if (args.timeout === 0) throw new CmError('--timeout must be > 0', ExitCode.USAGE);
  return args;
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  trace('run() called');
  if (args.status) return status(args.joblog as string, args, io);
  if ((io.stdin as { isTTY?: boolean }).isTTY === true && !args.quiet) {
    io.stderr.write('cm-exec: reading job records from this terminal (e.g. cm-plan -f examples/assignment.cm | cm-exec); Ctrl-D ends\n');
  }
  // what every engine's core takes: the same options, the same meaning
  const core = {
    jobs: args.jobs,
    retries: args.retries,
    timeout: args.timeout,
    grace: args.grace,
    halt: args.halt,
    downAfter: args.downAfter,
    maxOutput: args.maxOutput,
    logs: args.logs,
    run: args.run,
    joblog: args.joblog,
    resume: args.resume,
    retryFailed: args.retryFailed,
    records: wantsRecords(io, { json: args.json }),
    commandLine: args.commandLine,
    dryRun: args.dryRun,
    keepWorkdirs: args.keepWorkdirs,
    quiet: args.quiet,
    verbose: args.verbose,
    // the progress line and the closing summary are for a person watching stderr
    progress: (io.stderr as NodeJS.WriteStream).isTTY === true,
    home: io.env.HOME && io.env.HOME !== '' ? io.env.HOME : os.homedir(),
    cwd: io.cwd,
    reattachWithin: args.reattachWithin,
  };
  if (args.engine === 'slurm') {
    const slurm = {
      mode: args.slurmMode,
      partition: args.partition,
      account: args.account,
      qos: args.qos,
      cpusPerTask: args.cpus,
      maxOutput: args.maxOutput,
      env: io.env,
      warn: (m: string) => {
        if (!args.quiet) io.stderr.write(`cm-exec: ${m}\n`);
      },
    };
    return args.slurmMode === 'jobs' ? execJobs(slurm, core, io) : execOnAllocation(slurm, core, io);
  }
  const inventory = await loadInventory({ path: args.inventory, env: io.env, cwd: io.cwd });
  const hosts = inventory.select(args.hosts);
  trace(`inventory read: ${hosts.length} hosts`);
  if (args.clean) {
    const ssh = { sshConfig: args.sshConfig, connectTimeout: args.connectTimeout, strictHostKeys: args.strictHostKeys };
    return cleanRuns({ hosts, run: args.run, olderThan: args.olderThan, home: core.home, records: core.records, ...ssh }, io);
  }
  const names = new Set(hosts.map((h) => h.name));
  // entries of the inventory that are Slurm clusters run on their allocations, the rest as always
  return execWithClusters(
    {
      ...core,
      hosts,
      // a pin names hosts of the inventory; only those also selected by --hosts are eligible
      select: (pin) => inventory.select(pin).filter((h) => names.has(h.name)),
      transport: args.transport,
      remoteLoop: args.remoteLoop,
      strictHostKeys: args.strictHostKeys,
      sshConfig: args.sshConfig,
      connectTimeout: args.connectTimeout,
      keepConnections: args.keepConnections,
      reattachWithin: args.reattachWithin,
    },
    io,
    io.env,
    (m) => {
      if (!args.quiet) io.stderr.write(`cm-exec: ${m}\n`);
    },
  );
}

async function status(joblog: string, args: Args, io: CommandIO): Promise<number> {
  const path = resolve(io.cwd, joblog);
  if (!existsSync(path)) throw new CmError(`--status: no joblog ${joblog}`, ExitCode.INPUT);
  const st = runStatus(path);
  const text = wantsRecords(io, { json: args.json }) ? [...st.running, ...st.ended].map((e) => `${JSON.stringify(e)}\n`).join('') : statusText(st, new Date());
  await new Promise<void>((done) => io.stdout.write(text, () => done()));
  return ExitCode.OK;
}
