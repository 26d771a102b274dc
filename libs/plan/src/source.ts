import { InputError } from '@cm/protocol';

/** Where a token or a def came from: enough to print `file:line:col`, the line and a caret. */
export interface Pos {
  source: string;
  line: number;
  col: number;
  /** the whole source line, for the excerpt under the message */
  text: string;
}

/** A stretch of expression text and where its first character sits in the source. */
export interface Segment {
  source: string;
  line: number;
  col: number;
  text: string;
  /** the whole source line `text` was cut from */
  lineText: string;
}

// Tabs become one space each so the caret, counted in characters, still lines up.
function excerptOf(text: string): string {
  return text.replace(/[\t\r\v\f]/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '?');
}

export function inputError(at: Pos, reason: string): InputError {
  return new InputError(at.source, at.line, at.col, reason, excerptOf(at.text));
}

/** An error about a whole source (an empty plan, say), with no line to point at. */
export function sourceError(source: string, reason: string): InputError {
  return new InputError(source, undefined, undefined, reason);
}

export function where(at: Pos): string {
  return `${at.source}:${at.line}:${at.col}`;
}

/** Shows a character for a message: printable as itself, anything else escaped. */
export function showChar(ch: string): string {
  return /^[\x21-\x7e]$/.test(ch) ? `'${ch}'` : JSON.stringify(ch);
}

/** Levenshtein distance, for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The closest of `names` to `name`, if it is close enough to be a likely typo. */
export function nearest(name: string, names: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of names) {
    const a = name.toLowerCase();
    const b = candidate.toLowerCase();
    // A name cut short (prepare for prepare_data) is as likely a slip as a typo.
    const d = a.length >= 3 && (b.startsWith(a) || a.startsWith(b)) ? 1 : editDistance(a, b);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 2)) ? best : undefined;
}
