import type { Writable } from 'node:stream';
import type { AnyRecord, ForeignRecord } from './records';

export interface RecordWriterOptions {
  /**
   * Lines written in one turn of the event loop leave in one write() (at most `BATCH_BYTES` each):
   * a command that writes a record per event pays one syscall per turn, and its reader one read,
   * instead of one per record. Not for a terminal shared with a progress line, which must be
   * cleared right before each write.
   */
  batch?: boolean;
}

/** A batch leaves at once past this many characters, so a burst of records never piles up in memory. */
const BATCH_BYTES = 64 * 1024;

/**
 * Writes one record per line. Honours back-pressure (write() returns a promise only when the
 * stream is full, so the fast path costs nothing) and treats EPIPE as "the reader has gone":
 * `closed` becomes true, later writes are dropped, and the command should stop quietly.
 */
export class RecordWriter {
  closed = false;
  private waiting: Promise<void> | null = null;
  private readonly closeListeners: Array<() => void> = [];
  private readonly batch: boolean;
  private held = '';
  private flushQueued = false;

  constructor(
    private readonly out: Writable,
    opts: RecordWriterOptions = {},
  ) {
    this.batch = opts.batch === true;
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
    this.held = '';
    for (const fn of this.closeListeners.splice(0)) fn();
  }

  write(record: AnyRecord | ForeignRecord): Promise<void> | undefined {
    return this.writeLine(JSON.stringify(record));
  }

  /** Writes a line as it is: pass-through keeps records byte for byte. */
  writeLine(line: string): Promise<void> | undefined {
    if (this.closed) return undefined;
    if (!this.batch) return this.send(`${line}\n`);
    this.held += `${line}\n`;
    if (this.held.length >= BATCH_BYTES) return this.flush();
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flushSoon);
    }
    return this.waiting ?? undefined;
  }

  private readonly flushSoon = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /** Hands what is held to the stream now. */
  flush(): Promise<void> | undefined {
    if (this.held === '' || this.closed) return this.waiting ?? undefined;
    const text = this.held;
    this.held = '';
    return this.send(text);
  }

  private send(text: string): Promise<void> | undefined {
    if (this.out.write(text)) return this.waiting ?? undefined;
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
    this.flush();
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.out.once('error', () => resolve());
      // process.stdout cannot be ended; a flushed write callback is the signal there.
      this.out.write('', () => resolve());
    });
  }
}
