// Pieces both engines share: the event records (same fields as the ssh engine's), the capped output
// buffer, and the dependency bookkeeping that decides when a job may start or must be skipped.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { EventRecord, JobRecord } from '@cm/protocol';

export type Emit = (ev: EventRecord) => Promise<void> | void;

export const TRANSPORT = 'slurm';

export function workdirOf(run: string, job: JobRecord): string {
  return `.cm/runs/${run}/${job.id}`;
}

export function baseEvent(event: EventRecord['event'], job: JobRecord, run: string): EventRecord {
  const ev: EventRecord = { kind: 'event', v: 1, event, job: job.id, task: job.task, run };
  return ev;
}

/** Fields a final event copies from the job so cm-fetch and cm-reduce need nothing else. */
export function copyJobFields(ev: EventRecord, job: JobRecord, run: string): EventRecord {
  ev.workdir = workdirOf(run, job);
  if (job.outputs !== undefined) ev.outputs = job.outputs;
  if (job.result !== undefined) ev.result = job.result;
  if (job.sweep !== undefined) ev.sweep = job.sweep;
  if (job.index !== undefined) ev.index = job.index;
  return ev;
}

/** Keeps the first `cap` bytes in memory; past the cap, everything goes to a log file as well. */
export class Capture {
  private chunks: Buffer[] = [];
  private kept = 0;
  bytes = 0;
  private file?: WriteStream;

  constructor(
    private readonly cap: number,
    private readonly logPath: () => string,
  ) {}

  get truncated(): boolean {
    return this.bytes > this.cap;
  }

  get log(): string | undefined {
    return this.file?.path as string | undefined;
  }

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.cap && !this.file) {
      this.file = createWriteStream(this.logPath());
      for (const c of this.chunks) this.file.write(c);
    }
    this.file?.write(chunk);
    if (this.kept < this.cap) {
      const part = chunk.subarray(0, this.cap - this.kept);
      this.chunks.push(part);
      this.kept += part.length;
    }
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  async close(): Promise<void> {
    const f = this.file;
    if (f) await new Promise<void>((resolve) => f.end(resolve));
  }
}

export type FinalState = 'ok' | 'failed';

/**
 * Dependency bookkeeping: jobs wait until every `deps` job finished with exit 0 and every `after` job
 * ended; a job whose `deps` job failed is skipped (and so, in turn, are its dependants).
 */
export class DepTracker {
  private state = new Map<string, FinalState>();
  private waiting = new Map<string, JobRecord>();
  private seen = new Set<string>();

  /** Registers a job from the stream; returns what it can do now. */
  add(job: JobRecord): { ready: JobRecord[]; skipped: Array<{ job: JobRecord; dep: string }> } {
    this.seen.add(job.id);
    this.waiting.set(job.id, job);
    return this.settle();
  }

  /** Records a final state; returns jobs that became ready or must be skipped. */
  done(id: string, state: FinalState): { ready: JobRecord[]; skipped: Array<{ job: JobRecord; dep: string }> } {
    this.state.set(id, state);
    return this.settle();
  }

  isSeen(id: string): boolean {
    return this.seen.has(id);
  }

  stateOf(id: string): FinalState | undefined {
    return this.state.get(id);
  }

  /**
   * Removes and returns the waiting jobs that name a dependency never seen in the stream (at its end),
   * or every waiting job when `all` (cancellation).
   */
  takeStranded(all = false): Array<{ job: JobRecord; missing?: string }> {
    const out: Array<{ job: JobRecord; missing?: string }> = [];
    for (const [id, job] of this.waiting) {
      const missing = [...job.deps, ...(job.after ?? [])].find((d) => !this.seen.has(d));
      if (missing !== undefined || all) {
        this.waiting.delete(id);
        out.push({ job, missing });
      }
    }
    return out;
  }

  get pending(): number {
    return this.waiting.size;
  }

  private settle(): { ready: JobRecord[]; skipped: Array<{ job: JobRecord; dep: string }> } {
    const ready: JobRecord[] = [];
    const skipped: Array<{ job: JobRecord; dep: string }> = [];
    let changed = true;
    // Skipping a job is itself a final state, which can skip its dependants: loop to a fixed point.
    while (changed) {
      changed = false;
      for (const [id, job] of this.waiting) {
        const failedDep = job.deps.find((d) => this.state.get(d) === 'failed');
        if (failedDep !== undefined) {
          this.waiting.delete(id);
          this.state.set(id, 'failed');
          skipped.push({ job, dep: failedDep });
          changed = true;
          continue;
        }
        const all = [...job.deps, ...(job.after ?? [])];
        if (all.every((d) => this.state.has(d))) {
          this.waiting.delete(id);
          ready.push(job);
        }
      }
    }
    return { ready, skipped };
  }
}

/** Splits a stderr stream at the step's start marker line (written by the job script). */
export function splitMarker(text: string, marker: string): { host?: string; before: string; after: string } {
  const re = new RegExp(`(^|\\n)${marker} ([^\\n]*)\\n`);
  const m = re.exec(text);
  if (!m) return { before: text, after: '' };
  return { host: m[2] || undefined, before: text.slice(0, m.index + m[1].length), after: text.slice(m.index + m[0].length) };
}

/** srun's own line restating the exit code that the event already carries. */
export function dropSrunExitLine(stderr: string): string {
  return stderr.replace(/^srun: error: [^:\n]+: task \d+: Exited with exit code \d+\n?/gm, '');
}
