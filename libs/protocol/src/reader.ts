import type { Readable } from 'node:stream';
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

function excerpt(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * Reads NDJSON records one line at a time. Blank lines are skipped (but counted); a line that is
 * not JSON, not valid UTF-8, too long, or not a valid record of a known kind throws an InputError
 * naming the line and showing its text.
 */
export async function* readRecords(input: Readable, options: ReadOptions = {}): AsyncGenerator<InputLine> {
  for await (const batch of readRecordBatches(input, options)) yield* batch;
}

/**
 * readRecords by the chunk: the records of each chunk read, as one array. A command that handles
 * a record per event pays for one await per chunk instead of one per line, and no stream stage
 * per line (lines are cut from the raw bytes here: a newline byte is never inside a UTF-8
 * character, and an over-long line is refused before it is held whole).
 */
export async function* readRecordBatches(input: Readable, options: ReadOptions = {}): AsyncGenerator<InputLine[]> {
  const source = options.source ?? 'stdin';
  const max = options.maxLineBytes ?? MAX_LINE_BYTES;
  let line = 0;
  let held: Buffer[] = [];
  let heldBytes = 0;
  const overlong = (): InputError => new InputError(source, line + 1, undefined, `line longer than ${max} bytes`);
  // a consumer that stops reading destroys its input (cm-exec after EPIPE or SIGINT): that ends the
  // records, quietly, where the end of the stream would
  let stopped = false;
  const onClose = (): void => {
    if (!input.readableEnded && !input.errored) stopped = true;
  };
  input.on('close', onClose);
  // the input stays open when this ends early (an input error): what the command does with it is its own affair
  const chunks = input.iterator({ destroyOnReturn: false });
  try {
    for await (const data of chunks) {
      const chunk: Buffer = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
      const out: InputLine[] = [];
      let start = 0;
      for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
        // a CR before the newline is part of the line ending (CRLF files read as LF ones)
        const end = nl > start && chunk[nl - 1] === 13 ? nl - 1 : nl;
        let text: string;
        if (heldBytes > 0) {
          if (heldBytes + (nl - start) > max) {
            if (out.length > 0) yield out;
            throw overlong();
          }
          held.push(chunk.subarray(start, nl));
          const whole = Buffer.concat(held);
          text = whole.toString('utf8', 0, whole.length > 0 && whole[whole.length - 1] === 13 ? whole.length - 1 : whole.length);
          held = [];
          heldBytes = 0;
        } else {
          if (nl - start > max) {
            if (out.length > 0) yield out;
            throw overlong();
          }
          text = chunk.toString('utf8', start, end);
        }
        start = nl + 1;
        line += 1;
        let rec: InputLine | undefined;
        try {
          rec = parseLine(text, line, source);
        } catch (err) {
          // the good lines before the bad one are the consumer's first
          if (out.length > 0) yield out;
          throw err;
        }
        if (rec !== undefined) out.push(rec);
      }
      if (start < chunk.length) {
        if (heldBytes + (chunk.length - start) > max) {
          if (out.length > 0) yield out;
          throw overlong();
        }
        held.push(chunk.subarray(start));
        heldBytes += chunk.length - start;
      }
      if (out.length > 0) yield out;
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    if (stopped && !input.errored) return;
    throw err;
  } finally {
    input.off('close', onClose);
  }
  if (heldBytes > 0) {
    line += 1;
    const rec = parseLine(Buffer.concat(held).toString('utf8'), line, source);
    if (rec !== undefined) yield [rec];
  }
}

/** One line's record; undefined for a blank line; an InputError naming the line for anything else. */
function parseLine(text: string, line: number, source: string): InputLine | undefined {
  if (text.trim() === '') return undefined;
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
  return { record: value as AnyRecord | ForeignRecord, raw: text, line };
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
