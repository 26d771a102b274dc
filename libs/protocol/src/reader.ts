import split2 from 'split2';
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
  const source = options.source ?? 'stdin';
  const maxLength = options.maxLineBytes ?? MAX_LINE_BYTES;
  const lines = input.pipe(split2({ maxLength }));
  let line = 0;
  // split2 reports an over-long line as a stream error; remember the line it happened on.
  let streamError: Error | undefined;
  lines.on('error', (err: Error) => {
    streamError = err;
  });
  input.on('error', (err: Error) => lines.destroy(err));
  try {
    for await (const text of lines as AsyncIterable<string>) {
      line += 1;
      // split2 only measures the unfinished tail of a chunk; a whole long line is caught here.
      if (text.length > maxLength) throw new InputError(source, line, undefined, `line longer than ${maxLength} bytes`);
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
    const e = (streamError ?? err) as Error;
    if (/maximum buffer/i.test(e.message)) {
      throw new InputError(source, line + 1, undefined, `line longer than ${maxLength} bytes`);
    }
    throw e;
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
