// Everything that turns cm's options and job fields into Slurm command-line arguments. Pure, so the
// exact argv each Slurm command receives is tested without a cluster.
import { CmError, ExitCode, PATTERNS } from '@cm/protocol';
import JOB_SH from './job.sh';
import SPOOL_STEP_SH from './spool-step.sh';

export type SlurmMode = 'steps' | 'jobs' | 'workers';

export interface SlurmOptions {
  /**
   * steps: one allocation (salloc) and every job as an `srun --exclusive` step inside it, deps resolved
   * in cm (fast for many small jobs: ~45 jobs/s on the lab cluster);
   * jobs: one Slurm batch job per cm job (or one array per group of jobs with the same deps),
   * deps as afterok/afterany (for few long jobs; ~3 jobs/s);
   * workers: one allocation, one long-lived srun step per node running cm's persistent job loop, cm
   * placing jobs on node slots (fastest for many tiny jobs).
   */
  mode?: SlurmMode;
  /** in jobs mode, submit jobs with identical deps that arrive together as one job array (default true) */
  arrays?: boolean;
  partition?: string;
  account?: string;
  qos?: string;
  /** CPUs per job (Slurm --cpus-per-task); the ssh engine's slot */
  cpusPerTask?: number;
  /** steps mode: nodes to allocate (default: every node of the partition, as many as are free) */
  nodes?: number;
  /** steps mode: time limit of the allocation in seconds (default: the partition's) */
  allocationTime?: number;
  /** default timeout (s) and retries for jobs that carry none (cm-exec's --timeout, --retries) */
  timeout?: number;
  retries?: number;
  /** run id for jobs that carry none */
  run?: string;
  /** bytes of stdout and of stderr kept in each event (default 1 MiB) */
  maxOutput?: number;
  /** local directory for full-output logs and, in jobs mode, batch scripts and Slurm output files; must be
   *  on a filesystem the nodes share (default $HOME/.cm/slurm/<run>) */
  spoolDir?: string;
  /** seconds between squeue polls in jobs mode (default 0.5) */
  pollInterval?: number;
  /** environment the Slurm commands run with (default process.env); SLURM_CONF etc. come from here */
  env?: NodeJS.ProcessEnv;
  /** where people read: missing Slurm, controller trouble (default: nowhere) */
  warn?: (message: string) => void;
}

/** Slurm names we put on a command line: reject anything that could be read as an option or a list. */
const SLURM_TOKEN = new RegExp(PATTERNS.slurmName);

export function checkToken(what: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!SLURM_TOKEN.test(value)) {
    throw new CmError(`${what} ${JSON.stringify(value)} is not a valid Slurm name`, ExitCode.USAGE);
  }
  return value;
}

/**
 * Seconds as a Slurm time limit. Slurm counts whole minutes ("M" or "M:S" is still rounded up by
 * the controller), so this rounds up: cm enforces the exact timeout itself, Slurm is the backstop.
 */
export function slurmTime(seconds: number): string {
  const minutes = Math.max(1, Math.ceil(seconds / 60));
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  const two = (n: number): string => String(n).padStart(2, '0');
  return d > 0 ? `${d}-${two(h)}:${two(m)}:00` : `${two(h)}:${two(m)}:00`;
}

/** Exit 2 for a partition, account or QOS Slurm could read as an option or a list: before Slurm is looked for. */
export function checkPlacement(opts: SlurmOptions): void {
  checkToken('partition', opts.partition);
  checkToken('account', opts.account);
  checkToken('qos', opts.qos);
}

/** --partition/--account/--qos, shared by salloc and sbatch. */
export function placementArgs(opts: SlurmOptions): string[] {
  const out: string[] = [];
  if (opts.partition !== undefined) out.push(`--partition=${checkToken('partition', opts.partition)}`);
  if (opts.account !== undefined) out.push(`--account=${checkToken('account', opts.account)}`);
  if (opts.qos !== undefined) out.push(`--qos=${checkToken('qos', opts.qos)}`);
  return out;
}

/**
 * salloc holding the allocation for as long as its command runs here: the command prints the job id
 * (a line "cm-allocation <id>") and then reads its stdin, a pipe from cm-exec. When cm-exec ends,
 * however it ends (SIGKILL included), the pipe closes, the command exits and salloc gives the
 * allocation back, which ends every step still in it: a dead cm-exec never holds nodes.
 */
export function sallocArgs(opts: SlurmOptions, name: string, maxNodes: number): string[] {
  const args = [`--job-name=${name}`, ...placementArgs(opts)];
  const nodes = opts.nodes ?? maxNodes;
  // A range lets a busy cluster start us on fewer nodes instead of waiting for all of them.
  args.push(nodes > 1 ? `--nodes=1-${nodes}` : '--nodes=1', '--exclusive');
  if (opts.allocationTime !== undefined) args.push(`--time=${slurmTime(opts.allocationTime)}`);
  args.push('sh', '-c', `echo "${ALLOCATION_MARKER} $SLURM_JOB_ID"; exec cat >/dev/null`);
  return args;
}

/** salloc of a detached allocation (--reattach-within): granted, then left to Slurm and cm's watchdog. */
export function detachedSallocArgs(opts: SlurmOptions, name: string, maxNodes: number): string[] {
  const args = sallocArgs(opts, name, maxNodes);
  return [...args.slice(0, args.indexOf('sh')), '--no-shell'];
}

/** The line salloc's command prints once the allocation is granted. */
export const ALLOCATION_MARKER = 'cm-allocation';

/** The shell each step or batch job runs: reports where it started, then runs the job in its workdir. */
export const STEP_MARKER = 'cm-slurm-started';
export const JOB_SCRIPT = JOB_SH.replace(/^#.*\n/gm, '').trim().replace(/\n/g, '; ');
if (!JOB_SCRIPT.startsWith(`printf '${STEP_MARKER} `)) throw new Error('job.sh must start by printing the step marker');

/** spool-step.sh without its comment lines (newlines stay: it has functions) */
export const SPOOL_STEP_SCRIPT = SPOOL_STEP_SH.replace(/^\s*#.*\n/gm, '').trim();
if (!SPOOL_STEP_SCRIPT.startsWith(`printf '${STEP_MARKER} `)) throw new Error('spool-step.sh must start by printing the step marker');

type StepJob = { id: string; timeout?: number; command: string; workdir: string; maxOutput?: number; spool?: { dir: string } };

/**
 * The srun of one job as a step of the allocation, on the node the Scheduler chose. A job with a
 * spool (detached allocation) runs under spool-step.sh, which keeps its results on the node.
 */
export function srunArgs(opts: SlurmOptions, allocation: string, job: StepJob, node: string): string[] {
  const args = stepArgs(opts, allocation, node, job.id, '--exclusive');
  if (job.timeout !== undefined) args.push(`--time=${slurmTime(job.timeout)}`);
  if (job.spool) args.push('sh', '-c', SPOOL_STEP_SCRIPT, 'cm-slurm', 'run', job.spool.dir, String(job.maxOutput ?? 1048576), job.workdir, job.command);
  else args.push('sh', '-c', JOB_SCRIPT, 'cm-slurm', job.workdir, job.command);
  return args;
}

/**
 * The srun that collects a job a cm-exec that died left in a step on `node`: beside that step,
 * which still holds its CPUs (--overlap), it waits for the job's results in its spool.
 */
export function collectArgs(opts: SlurmOptions, allocation: string, job: { id: string; spool: { dir: string } }, node: string): string[] {
  return [...stepArgs({ ...opts, cpusPerTask: 1 }, allocation, node, `${job.id}-collect`, '--overlap'), 'sh', '-c', SPOOL_STEP_SCRIPT, 'cm-slurm', 'collect', job.spool.dir];
}

function stepArgs(opts: SlurmOptions, allocation: string, node: string, name: string, sharing: '--exclusive' | '--overlap'): string[] {
  return [
    `--jobid=${allocation}`,
    sharing,
    '--ntasks=1',
    '--nodes=1',
    `--nodelist=${node}`,
    `--cpus-per-task=${opts.cpusPerTask ?? 1}`,
    `--job-name=${name}`,
    // Keeps srun's "step creation temporarily disabled" chatter out of the job's stderr.
    '--quiet',
  ];
}

export interface BatchUnit {
  /** Slurm job name */
  name: string;
  /** batch script path (written by the caller) */
  script: string;
  /** stdout/stderr file patterns (%j, %A, %a) */
  output: string;
  error: string;
  /** number of array tasks, or undefined for a plain job */
  array?: number;
  /** Slurm dependency expression, e.g. afterok:12:13,afterany:14 */
  dependency?: string;
  timeout?: number;
}

export function sbatchArgs(opts: SlurmOptions, unit: BatchUnit): string[] {
  const args = [
    '--parsable',
    `--job-name=${unit.name}`,
    ...placementArgs(opts),
    '--ntasks=1',
    `--cpus-per-task=${opts.cpusPerTask ?? 1}`,
    `--output=${unit.output}`,
    `--error=${unit.error}`,
    // Node failure: Slurm puts the job back in the queue rather than losing it.
    '--requeue',
    '--kill-on-invalid-dep=yes',
  ];
  if (unit.array !== undefined) args.push(`--array=0-${unit.array - 1}`);
  if (unit.dependency) args.push(`--dependency=${unit.dependency}`);
  if (unit.timeout !== undefined) args.push(`--time=${slurmTime(unit.timeout)}`);
  args.push(unit.script);
  return args;
}

