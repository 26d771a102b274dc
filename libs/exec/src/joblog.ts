// --joblog: one final event per line, appended and fsynced. Lines are written at once (a crash
// loses nothing the kernel has); fsync is batched: at most every `syncMs`, and always at close.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { InputError, recordProblem, type EventRecord } from '@cm/protocol';
import { settledBy } from './events';

export class JobLog {
  private readonly fd: number;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly syncMs = 50,
  ) {
    this.fd = openSync(path, 'a', 0o644);
  }

  append(event: EventRecord): void {
    const buf = Buffer.from(`${JSON.stringify(event)}\n`);
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off);
    this.dirty = true;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.sync();
      }, this.syncMs);
    }
  }

  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.sync();
    closeSync(this.fd);
  }
}

/**
 * Final events of a joblog by job id (the last one wins). A last line cut short by a crash is
 * ignored; any other bad line is an input error naming it.
 */
export function readJoblog(path: string): Map<string, EventRecord> {
  const out = new Map<string, EventRecord>();
  if (!existsSync(path)) return out;
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      if (i === lines.length - 1) return;
      throw new InputError(path, i + 1, undefined, `malformed JSON: ${(err as Error).message}`);
    }
    const problem = recordProblem(value);
    const ev = value as EventRecord;
    if (problem || ev.kind !== 'event' || !ev.job) throw new InputError(path, i + 1, undefined, problem ?? 'not a job event');
    out.set(ev.job, ev);
  });
  return out;
}

/** The joblog's events of the jobs that are not run again (--resume, or --retry-failed): replayed as they were. */
export function replayable(log: Map<string, EventRecord>, retryFailed: boolean): Map<string, EventRecord> {
  return new Map([...log].filter(([, ev]) => settledBy(ev, retryFailed)));
}
