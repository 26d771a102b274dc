import split2 from 'split2';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { InputError } from './errors';
import type { AnyRecord, ForeignRecord } from './records';
import { recordProblem } from './validate';

/** Longest NDJSON line accepted; longer lines are an input error, not an out-of-memory. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

export interface InputLine {
  /** the parsed, validated record */
  record: AnyRecord | ForeignRecord;
  /** the line exactly as read, for pass-through without re-serialising */
  raw: string;
  /** 1-based line number in the source */
  line: number;
}

export interface ReadOptions {
  /** name used in error messages: a file name or `stdin` */
  source?: string;
  maxLineBytes?: number;
}

/** Stands in for a line that was too long; raw NUL is never valid JSON, so no real record looks like it. */
const OVERLONG = '\u0000cm:overlong';

/**
 * Passes whole lines on and holds back the unfinished one; once a line grows past `max` bytes it is
 * dropped and the stream ends with OVERLONG as its last line. Done on raw bytes ahead of split2 so the
 * lines before the long one are still read, in order, and the long one is never held whole.
 */
class LineLimit extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private tripped = false;

  constructor(private readonly max: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.tripped) return cb();
    const lastNl = chunk.lastIndexOf(10);
    // the complete lines in this chunk, with what was held before them
    if (lastNl >= 0) {
      const firstNl = chunk.indexOf(10);
      if (this.heldBytes + firstNl > this.max || longestLine(chunk, firstNl + 1, lastNl) > this.max) {
        return this.trip(chunk, firstNl, cb);
      }
      this.push(this.heldBytes > 0 ? Buffer.concat([...this.held, chunk.subarray(0, lastNl + 1)]) : chunk.subarray(0, lastNl + 1));
      this.held = [];
      this.heldBytes = 0;
    }
    const rest = chunk.subarray(lastNl + 1);
    if (rest.length > 0) {
      if (this.heldBytes + rest.length > this.max) return this.trip(Buffer.alloc(0), -1, cb);
      this.held.push(rest);
      this.heldBytes += rest.length;
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (!this.tripped && this.heldBytes > 0) this.push(Buffer.concat(this.held));
    cb();
  }

  /** Passes on the whole lines before the long one, then the marker, and ends. */
  private trip(chunk: Buffer, firstNl: number, cb: TransformCallback): void {
    let keep = Buffer.alloc(0);
    if (firstNl >= 0 && this.heldBytes + firstNl <= this.max) {
      // the long line is a later one in this chunk: find where it starts
      let start = firstNl + 1;
      for (let nl = chunk.indexOf(10, start); nl >= 0 && nl - start <= this.max; nl = chunk.indexOf(10, start)) start = nl + 1;
      keep = Buffer.concat([...this.held, chunk.subarray(0, start)]);
    }
    this.push(Buffer.concat([keep, Buffer.from(`${OVERLONG}\n`)]));
    this.tripped = true;
    this.held = [];
    this.push(null);
    cb();
  }
}

/** Length of the longest line between `from` and the newline at `lastNl` (inclusive). */
function longestLine(chunk: Buffer, from: number, lastNl: number): number {
  let longest = 0;
  let start = from;
  while (start <= lastNl) {
    const nl = chunk.indexOf(10, start);
    longest = Math.max(longest, nl - start);
    start = nl + 1;
  }
  return longest;
}

function excerpt(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * Reads NDJSON records one line at a time. Blank lines are skipped (but counted); a line that is
 * not JSON, not valid UTF-8, too long, or not a valid record of a known kind throws an InputError
 * naming the line and showing its text.
 */
export async function* readRecords(input: Readable, options: ReadOptions = {}): AsyncGenerator<InputLine> {
  const source = options.source ?? 'stdin';
  const maxLength = options.maxLineBytes ?? MAX_LINE_BYTES;
  const lines = input.pipe(new LineLimit(maxLength)).pipe(split2());
  let line = 0;
  let streamError: Error | undefined;
  lines.on('error', (err: Error) => {
    streamError = err;
  });
  input.on('error', (err: Error) => lines.destroy(err));
  // pipe() passes on an end, not a destroy: a consumer that stops reading (cm-exec after EPIPE or
  // SIGINT destroys stdin) would leave this loop waiting for a line that never comes
  let stopped = false;
  input.on('close', () => {
    if (input.readableEnded || lines.destroyed) return;
    stopped = true;
    lines.destroy();
  });
  try {
    for await (const text of lines as AsyncIterable<string>) {
      if (text === OVERLONG) throw new InputError(source, line + 1, undefined, `line longer than ${maxLength} bytes`);
      line += 1;
      if (text.trim() === '') continue;
      if (text.includes('\uFFFD')) {
        throw new InputError(source, line, text.indexOf('\uFFFD') + 1, 'invalid UTF-8 (write U+FFFD as \\ufffd)', excerpt(text));
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new InputError(source, line, undefined, `malformed JSON: ${(err as Error).message}`, excerpt(text));
      }
      const problem = recordProblem(value);
      if (problem) throw new InputError(source, line, undefined, problem, excerpt(text));
      yield { record: value as AnyRecord | ForeignRecord, raw: text, line };
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    if (stopped && streamError === undefined) return;
    throw (streamError ?? err) as Error;
  }
  if (streamError) throw streamError;
}

/** Parses NDJSON text held in memory (tests, small files), with the same checks as readRecords. */
export function parseRecords(text: string, source = 'input'): InputLine[] {
  const out: InputLine[] = [];
  text.split('\n').forEach((t, i) => {
    if (t.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(t);
    } catch (err) {
      throw new InputError(source, i + 1, undefined, `malformed JSON: ${(err as Error).message}`, excerpt(t));
    }
    const problem = recordProblem(value);
    if (problem) throw new InputError(source, i + 1, undefined, problem, excerpt(t));
    out.push({ record: value as AnyRecord | ForeignRecord, raw: t, line: i + 1 });
  });
  return out;
}
