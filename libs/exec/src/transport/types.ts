// The seam between the scheduler (which job runs where, when) and the transports (how a command
// reaches a host). Every transport gives the same result shape, so events and the joblog are
// identical whichever one ran the job.
import type { HostRecord } from '@cm/protocol';

export interface JobLaunch {
  /** job id (CM_JOB) */
  id: string;
  /** shell snippet, run by `sh -c` on the host */
  command: string;
  /** extra environment: the job's env plus CM_JOB, CM_RUN, CM_TASK */
  env: Record<string, string>;
  /** working directory relative to the login directory on the host; created if missing */
  workdir: string;
  /**
   * remove the working directory on the host when the job ends (before its end is reported), and
   * its parent (the run's folder) if that is then empty: nothing downstream needs what it holds
   */
  removeWorkdir?: boolean;
  /** seconds; the whole remote process group is killed when it expires */
  timeout?: number;
  /** bytes of stdout and of stderr kept in memory for the event; the rest goes to the log files only */
  maxOutput: number;
  /** local files receiving the complete stdout and stderr (created only when the cap is exceeded) */
  logBase: string;
  /**
   * keep the job's results on its host so that a later cm-exec can collect them if this one dies:
   * `dir` (relative to the login directory) holds them, and they wait there `linger` seconds after
   * the controller was last seen (transports that cannot keep them ignore this)
   */
  spool?: { dir: string; linger: number };
}

export interface JobOutcome {
  /** the remote command ran and ended (exit or signal); false when the host could not be reached */
  ran: boolean;
  exit: number | null;
  signal: string | null;
  /** why the job did not run or was stopped: 'connection refused', 'timeout after 5s', ... */
  reason?: string;
  timedOut?: boolean;
  /**
   * with ran false: the engine cannot run this job anywhere in this run (Slurm refused the allocation,
   * the job's time limit exceeds it), so it is given up with `reason` instead of moved to another host
   */
  refused?: boolean;
  /** with ran false, from collect(): nothing on the host ran the job to its end, or it cannot be reached in time */
  lost?: boolean;
  /** with ran false: the session was lost after the job reached its host, which keeps its results (spool) */
  orphaned?: boolean;
  /** read back from the host's spool after the job ended (collect), not followed live */
  collected?: boolean;
  stdout: Buffer;
  stderr: Buffer;
  stdoutBytes: number;
  stderrBytes: number;
  truncated: boolean;
  /** path of the full-output log when truncated */
  log?: string;
  start: Date;
  end: Date;
}

export interface Transport {
  readonly name: string;
  /** runs one job; resolves (never rejects) with the outcome; `signal` cancels it (kills the remote group) */
  run(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome>;
  /**
   * waits for a job a cm-exec that died started with `job.spool` on `host`, and gives its real
   * outcome; `lost: true` when no loop ran it to its end (it must run again), ran false without
   * lost when the host could not be reached this time
   */
  collect?(host: HostRecord, job: JobLaunch, signal: AbortSignal): Promise<JobOutcome>;
  /** starts connecting to a host ahead of its first job (a hint: failures show in that job's run) */
  prepare?(host: HostRecord): void;
  /** closes connections and removes any local state (control sockets) this transport made */
  close(): Promise<void>;
}

/**
 * A workdir a transport may remove: relative, below the login directory, at least two steps deep
 * (never the login directory itself, never a folder others share).
 */
export function removableWorkdir(workdir: string): boolean {
  const parts = workdir.split('/');
  return !workdir.startsWith('/') && parts.length >= 2 && parts.every((p) => p !== '' && p !== '.' && p !== '..');
}
