// Keeps the first `max` bytes of a stream for the event; once it overflows, the whole stream goes to
// a local log file instead of memory, so a job printing gigabytes costs disk, not cm-exec's heap.
// Shared by every transport so events and logs look the same whichever ran the job.
import { closeSync, ftruncateSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { JobOutcome } from './types';

const TAIL = 256;

export class OutputCapture {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private fd: number | undefined;
  /** the last chunks, at least TAIL bytes of them when there are: tail() joins them only when asked */
  private recent: Buffer[] = [];
  private recentBytes = 0;
  bytes = 0;
  /** path of the complete log, once the cap was exceeded */
  log: string | undefined;

  constructor(
    private readonly max: number,
    private readonly logPath: string,
  ) {}

  get truncated(): boolean {
    return this.bytes > this.max;
  }

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.recent.push(chunk);
    this.recentBytes += chunk.length;
    while (this.recentBytes - this.recent[0]!.length >= TAIL) this.recentBytes -= this.recent.shift()!.length;
    let taken = 0;
    if (this.heldBytes < this.max) {
      const take = chunk.subarray(0, this.max - this.heldBytes);
      this.held.push(take);
      this.heldBytes += take.length;
      taken = take.length;
    }
    if (this.fd === undefined && this.bytes > this.max) {
      mkdirSync(dirname(this.logPath), { recursive: true });
      this.fd = openSync(this.logPath, 'w', 0o600);
      this.log = this.logPath;
      // what is held plus the part of this chunk that did not fit: the stream from its first byte
      const before = Buffer.concat(this.held);
      writeAll(this.fd, before);
      writeAll(this.fd, chunk.subarray(taken));
      return;
    }
    if (this.fd !== undefined) writeAll(this.fd, chunk);
  }

  /** The last bytes seen (up to 256), for trailers a wrapper appends. */
  tail(): Buffer {
    const all = this.recent.length === 1 ? this.recent[0]! : Buffer.concat(this.recent);
    return all.length > TAIL ? all.subarray(-TAIL) : all;
  }

  /** Forgets the last `n` bytes (a wrapper's trailer), in memory and in the log. */
  dropTail(n: number): void {
    const keep = Math.max(0, this.bytes - n);
    this.bytes = keep;
    const tail = this.tail();
    const kept = tail.subarray(0, Math.max(0, tail.length - n));
    this.recent = kept.length > 0 ? [kept] : [];
    this.recentBytes = kept.length;
    if (this.fd !== undefined) ftruncateSync(this.fd, keep);
    if (this.heldBytes > keep) {
      const all = Buffer.concat(this.held).subarray(0, keep);
      this.held = [all];
      this.heldBytes = all.length;
    }
    if (this.fd !== undefined && keep <= this.max) {
      closeSync(this.fd);
      this.fd = undefined;
      rmSync(this.logPath, { force: true });
      this.log = undefined;
    }
  }

  /** The captured bytes (at most `max`); closes the log. */
  finish(): Buffer {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    if (!this.truncated) this.log = undefined;
    return this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off);
}

/** How a job ended, as a transport saw it; the captured streams make up the rest of its outcome. */
export interface JobEnd {
  ran?: boolean;
  exit: number | null;
  signal: string | null;
  reason?: string;
  timedOut?: boolean;
}

/** Closes both captures and builds the outcome every transport reports, so all report alike. */
export function outcomeOf(out: OutputCapture, err: OutputCapture, start: Date, end: JobEnd): JobOutcome {
  const stdout = out.finish();
  const stderr = err.finish();
  const outcome: JobOutcome = {
    ran: end.ran ?? true,
    exit: end.exit,
    signal: end.signal,
    stdout,
    stderr,
    stdoutBytes: out.bytes,
    stderrBytes: err.bytes,
    truncated: out.truncated || err.truncated,
    start,
    end: new Date(),
  };
  if (end.reason !== undefined) outcome.reason = end.reason;
  if (end.timedOut) outcome.timedOut = true;
  const log = out.log ?? err.log;
  if (log !== undefined) outcome.log = log;
  return outcome;
}
