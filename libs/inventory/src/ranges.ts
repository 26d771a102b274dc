// Host-range patterns in the ClusterShell/Slurm style: `node[01-16]`, `10.0.0.[1-8]`, `a[1-3,7]b[1-2]`,
// and comma-separated lists of those. Expansion is bounded so a typo cannot exhaust memory.
import { CmError, ExitCode } from '@cm/protocol';

/** Largest number of names one pattern may expand to. */
export const MAX_EXPANSION = 100_000;

/** Digit runs longer than this are kept literal: beyond it numbers stop being exact in a double. */
const MAX_DIGITS = 15;

/** A malformed pattern; `index` is the 0-based offset in the pattern, so callers can point at the column. */
export class PatternError extends CmError {
  constructor(
    readonly pattern: string,
    readonly index: number,
    readonly reason: string,
  ) {
    super(`bad host pattern ${JSON.stringify(pattern)} at column ${index + 1}: ${reason}`, ExitCode.INPUT);
    this.name = 'PatternError';
  }
}

interface Bounds {
  lo: number;
  hi: number;
  width: number;
}

type Segment = string | Bounds[];

/** Splits at commas outside brackets, keeping each piece's offset for error messages. */
export function splitTopLevel(pattern: string): Array<{ text: string; offset: number }> {
  const out: Array<{ text: string; offset: number }> = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '[') depth++;
    else if (ch === ']') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      out.push({ text: pattern.slice(start, i), offset: start });
      start = i + 1;
    }
  }
  out.push({ text: pattern.slice(start), offset: start });
  return out;
}

function parseBracket(pattern: string, body: string, offset: number): Bounds[] {
  const out: Bounds[] = [];
  let pos = 0;
  for (const part of body.split(',')) {
    const at = offset + pos;
    pos += part.length + 1;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) {
      throw new PatternError(pattern, at, part === '' ? 'empty range element' : `${JSON.stringify(part)} is not N or N-M`);
    }
    const [, a, b] = m as unknown as [string, string, string | undefined];
    if (a.length > MAX_DIGITS || (b !== undefined && b.length > MAX_DIGITS)) {
      throw new PatternError(pattern, at, `numbers longer than ${MAX_DIGITS} digits`);
    }
    const lo = Number(a);
    const hi = b === undefined ? lo : Number(b);
    if (hi < lo) throw new PatternError(pattern, at, `range ${part} runs backwards`);
    // Slurm/ClusterShell rule: a leading zero on the lower bound fixes the width of every number.
    const width = a.length > 1 && a.startsWith('0') ? a.length : 0;
    out.push({ lo, hi, width });
  }
  return out;
}

function parseItem(pattern: string, text: string, offset: number): Segment[] {
  if (text === '') throw new PatternError(pattern, offset, 'empty name (two commas in a row, or a comma at an end)');
  const segs: Segment[] = [];
  let i = 0;
  let literal = '';
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === ']') throw new PatternError(pattern, offset + i, "']' without '['");
    if (ch !== '[') {
      literal += ch;
      i++;
      continue;
    }
    const close = text.indexOf(']', i + 1);
    if (close < 0) throw new PatternError(pattern, offset + i, "'[' is never closed");
    const body = text.slice(i + 1, close);
    const nested = body.indexOf('[');
    if (nested >= 0) throw new PatternError(pattern, offset + i + 1 + nested, 'brackets do not nest');
    if (literal) segs.push(literal);
    literal = '';
    segs.push(parseBracket(pattern, body, offset + i + 1));
    i = close + 1;
  }
  if (literal) segs.push(literal);
  return segs;
}

function countOf(pattern: string, segs: Segment[], offset: number): number {
  let n = 1;
  for (const seg of segs) {
    if (typeof seg === 'string') continue;
    let k = 0;
    for (const b of seg) k += b.hi - b.lo + 1;
    n *= k;
    if (n > MAX_EXPANSION) {
      throw new PatternError(pattern, offset, `expands to more than ${MAX_EXPANSION} names`);
    }
  }
  return n;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function expandSegments(segs: Segment[]): string[] {
  let acc = [''];
  for (const seg of segs) {
    if (typeof seg === 'string') {
      acc = acc.map((p) => p + seg);
      continue;
    }
    const next: string[] = [];
    for (const p of acc) for (const b of seg) for (let n = b.lo; n <= b.hi; n++) next.push(p + pad(n, b.width));
    acc = next;
  }
  return acc;
}

/**
 * Expands a pattern to its names, in the order written. Throws PatternError (a CmError) on a
 * malformed pattern or one that would expand to more than MAX_EXPANSION names.
 */
export function expandRange(pattern: string): string[] {
  if (typeof pattern !== 'string') throw new CmError('a host pattern must be a string', ExitCode.INPUT);
  const items = splitTopLevel(pattern).map(({ text, offset }) => ({ segs: parseItem(pattern, text, offset), offset }));
  let total = 0;
  for (const { segs, offset } of items) {
    total += countOf(pattern, segs, offset);
    if (total > MAX_EXPANSION) throw new PatternError(pattern, offset, `expands to more than ${MAX_EXPANSION} names`);
  }
  return items.flatMap(({ segs }) => expandSegments(segs));
}

/** True when the text holds range syntax, i.e. names more than itself. */
export function isPattern(text: string): boolean {
  return /[[\],]/.test(text);
}

interface Group {
  prefix: string;
  suffix: string;
  width: number;
  numbers: Set<number>;
}

function formatRanges(numbers: number[], width: number): string {
  const parts: string[] = [];
  let i = 0;
  while (i < numbers.length) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === (numbers[j] as number) + 1) j++;
    const lo = numbers[i] as number;
    const hi = numbers[j] as number;
    parts.push(lo === hi ? pad(lo, width) : `${pad(lo, width)}-${pad(hi, width)}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * Folds names back into the shortest usual form: node01..node16 -> node[01-16]. Groups on the
 * last run of digits. Names that hold range syntax themselves are kept as written.
 */
export function foldNames(names: Iterable<string>): string {
  const literals = new Set<string>();
  const groups = new Map<string, Group>();
  const unpadded = new Map<string, Group>();
  for (const name of names) {
    const m = /^(.*?)(\d+)(\D*)$/.exec(name);
    if (isPattern(name) || !m || (m[2] as string).length > MAX_DIGITS) {
      literals.add(name);
      continue;
    }
    const [, prefix, digits, suffix] = m as unknown as [string, string, string, string];
    const width = digits.length > 1 && digits.startsWith('0') ? digits.length : 0;
    const key = `${prefix}\u0000${suffix}\u0000${width}`;
    let g = groups.get(key);
    if (!g) {
      g = { prefix, suffix, width, numbers: new Set() };
      groups.set(key, g);
      if (width === 0) unpadded.set(`${prefix}\u0000${suffix}`, g);
    }
    g.numbers.add(Number(digits));
  }
  // 08,09,10 belong together: a padded group adopts unpadded numbers of exactly its width.
  for (const g of groups.values()) {
    if (g.width === 0) continue;
    const u = unpadded.get(`${g.prefix}\u0000${g.suffix}`);
    if (!u) continue;
    for (const n of [...u.numbers]) {
      if (String(n).length === g.width) {
        g.numbers.add(n);
        u.numbers.delete(n);
      }
    }
  }
  const out: string[] = [];
  const sorted = [...groups.values()]
    .filter((g) => g.numbers.size > 0)
    .sort((a, b) => (a.prefix === b.prefix ? (a.suffix === b.suffix ? a.width - b.width : a.suffix < b.suffix ? -1 : 1) : a.prefix < b.prefix ? -1 : 1));
  for (const g of sorted) {
    const nums = [...g.numbers].sort((a, b) => a - b);
    if (nums.length === 1) out.push(`${g.prefix}${pad(nums[0] as number, g.width)}${g.suffix}`);
    else out.push(`${g.prefix}[${formatRanges(nums, g.width)}]${g.suffix}`);
  }
  return [...[...literals].sort(), ...out].join(',');
}

/** An ordered set of host names, parsed from and folded back to range syntax (ClusterShell's NodeSet). */
export class HostSet implements Iterable<string> {
  private readonly names: string[];
  private readonly index: Set<string>;

  constructor(names: Iterable<string> = []) {
    this.index = new Set(names);
    this.names = [...this.index];
  }

  static parse(pattern: string): HostSet {
    return new HostSet(expandRange(pattern));
  }

  expand(): string[] {
    return [...this.names];
  }

  get size(): number {
    return this.names.length;
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  union(other: Iterable<string>): HostSet {
    return new HostSet([...this.names, ...other]);
  }

  [Symbol.iterator](): Iterator<string> {
    return this.names[Symbol.iterator]();
  }

  toString(): string {
    return foldNames(this.names);
  }
}
