import type { Writable } from 'node:stream';
import type { AnyRecord, ForeignRecord } from './records';

/**
 * Writes one record per line. Honours back-pressure (write() returns a promise only when the
 * stream is full, so the fast path costs nothing) and treats EPIPE as "the reader has gone":
 * `closed` becomes true, later writes are dropped, and the command should stop quietly.
 */
export class RecordWriter {
  closed = false;
  private waiting: Promise<void> | null = null;
  private readonly closeListeners: Array<() => void> = [];

  constructor(private readonly out: Writable) {
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') this.markClosed();
      else throw err;
    });
    out.on('close', () => this.markClosed());
  }

  /** Runs `fn` once when the downstream reader goes away. */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeListeners.push(fn);
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.closeListeners.splice(0)) fn();
  }

  write(record: AnyRecord | ForeignRecord): Promise<void> | undefined {
    return this.writeLine(JSON.stringify(record));
  }

  /** Writes a line as it is: pass-through keeps records byte for byte. */
  writeLine(line: string): Promise<void> | undefined {
    if (this.closed) return undefined;
    if (this.out.write(`${line}\n`)) return this.waiting ?? undefined;
    if (!this.waiting) {
      this.waiting = new Promise<void>((resolve) => {
        const done = (): void => {
          this.out.off('drain', done);
          this.out.off('close', done);
          this.waiting = null;
          resolve();
        };
        this.out.on('drain', done);
        this.out.on('close', done);
      });
    }
    return this.waiting;
  }

  /** Resolves when everything written has been handed to the OS (or the reader has gone). */
  end(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.out.once('error', () => resolve());
      // process.stdout cannot be ended; a flushed write callback is the signal there.
      this.out.write('', () => resolve());
    });
  }
}
