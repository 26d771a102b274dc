// Sweep parameters: `def bench(i=1..100, size=[64, 128], mode=fast):` or the same text in YAML.
import { inputError, showChar, type Pos } from './source';

export interface Range {
  lo: number;
  hi: number;
  step: number;
  /** zero-padding width (`001..100`), 0 for none */
  width: number;
}

/** One parameter: a range or a list is swept; a single value is a constant in the environment. */
export interface Param {
  name: string;
  at: Pos;
  range?: Range;
  values?: string[];
  constant?: string;
}

/** Sweeps larger than this are almost surely a typo in a range. */
export const MAX_SWEEP = 1_000_000_000;


export function paramSize(p: Param): number {
  if (p.range) return Math.floor((p.range.hi - p.range.lo) / p.range.step) + 1;
  if (p.values) return p.values.length;
  return 1;
}

export function paramValue(p: Param, k: number): string {
  if (p.range) {
    const n = p.range.lo + k * p.range.step;
    const s = String(Math.abs(n)).padStart(p.range.width, '0');
    return n < 0 ? `-${s}` : s;
  }
  if (p.values) return p.values[k];
  return p.constant ?? '';
}

export function describeParam(p: Param): string {
  if (p.range) {
    const show = (n: number): string => paramValue({ ...p, range: { ...p.range!, lo: n, step: 1 } }, 0);
    const step = Math.abs(p.range.step) === 1 ? '' : ` step ${Math.abs(p.range.step)}`;
    return `${p.name}=${show(p.range.lo)}..${show(p.range.hi)}${step}`;
  }
  if (p.values) return `${p.name}=[${p.values.map((v) => (/^[^\s,\]'"]+$/.test(v) ? v : JSON.stringify(v))).join(', ')}]`;
  return `${p.name}=${p.constant}`;
}

class Scanner {
  i = 0;
  constructor(
    readonly text: string,
    readonly pos: (i: number) => Pos,
  ) {}
  skip(): void {
    while (this.i < this.text.length && /\s/.test(this.text[this.i])) this.i++;
  }
  peek(): string {
    return this.text[this.i] ?? '';
  }
  fail(reason: string, i = this.i): never {
    throw inputError(this.pos(i), reason);
  }
  found(): string {
    return this.i >= this.text.length ? 'the end' : showChar(this.peek());
  }
  /** A quoted string or a bare word (stops at whitespace, ',', ']' and ')'). */
  word(what: string): string {
    this.skip();
    const q = this.peek();
    if (q === '"' || q === "'") {
      const start = this.i;
      const end = this.text.indexOf(q, this.i + 1);
      if (end < 0) this.fail(`unterminated ${q === '"' ? 'double' : 'single'}-quoted string`, start);
      this.i = end + 1;
      return this.text.slice(start + 1, end);
    }
    const m = /^[^\s,\]\)\[\(=]+/.exec(this.text.slice(this.i));
    if (!m) this.fail(`expected ${what}, found ${this.found()}`);
    this.i += m[0].length;
    return m[0];
  }
}

const INT = /^-?\d+$/;

function parseRange(s: Scanner, word: string, start: number): Range | undefined {
  const m = /^(-?\d+)\.\.(-?\d+)$/.exec(word);
  if (!m) {
    if (word.includes('..')) s.fail(`a range is INTEGER..INTEGER (like 1..100), found '${word}'`, start);
    return undefined;
  }
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  let step = lo <= hi ? 1 : -1;
  const save = s.i;
  s.skip();
  if (s.text.startsWith('step', s.i) && !/[A-Za-z0-9_]/.test(s.text[s.i + 4] ?? '')) {
    s.i += 4;
    s.skip();
    const at = s.i;
    const w = s.word('a step');
    if (!INT.test(w) || Number(w) === 0) s.fail(`a step is a non-zero integer, found '${w}'`, at);
    step = Math.abs(Number(w)) * (lo <= hi ? 1 : -1);
  } else {
    s.i = save;
  }
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) s.fail('range bounds must be integers below 2^53', start);
  const digits = (t: string): string => t.replace(/^-/, '');
  const padded = (t: string): boolean => digits(t).length > 1 && digits(t).startsWith('0');
  const width = padded(m[1]) || padded(m[2]) ? Math.max(digits(m[1]).length, digits(m[2]).length) : 0;
  return { lo, hi, step, width };
}

/**
 * Parses a parameter list (the text between a def's parentheses). `pos(i)` locates character i
 * of `text` in the source, for errors.
 */
export function parseParams(text: string, pos: (i: number) => Pos): Param[] {
  const s: Scanner = new Scanner(text, pos);
  const params: Param[] = [];
  s.skip();
  if (s.i >= text.length) return params;
  for (;;) {
    s.skip();
    const at = s.i;
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(s.i));
    if (!m) s.fail(`expected a parameter name, found ${s.found()}`);
    const name = m[0];
    s.i += name.length;
    if (name.startsWith('CM_')) s.fail(`parameter names starting with CM_ are reserved for cm (${name})`, at);
    if (params.some((p) => p.name === name)) s.fail(`duplicate parameter ${name}`, at);
    s.skip();
    if (s.peek() !== '=') s.fail(`expected '=' and values after parameter ${name} (like ${name}=1..10 or ${name}=[a, b])`);
    s.i++;
    s.skip();
    const param: Param = { name, at: pos(at) };
    if (s.peek() === '[') {
      s.i++;
      const values: string[] = [];
      s.skip();
      if (s.peek() === ']') s.fail(`the list of ${name} is empty`);
      for (;;) {
        const wordAt = s.i;
        const w = s.word('a value');
        const range = parseRange(s, w, wordAt);
        if (range) s.fail("write a range without brackets (i=1..10) or list its values (i=[1, 2, 5])", wordAt);
        values.push(w);
        s.skip();
        if (s.peek() === ',') {
          s.i++;
          continue;
        }
        if (s.peek() === ']') {
          s.i++;
          break;
        }
        s.fail(`expected ',' or ']' in the list of ${name}, found ${s.found()}`);
      }
      param.values = values;
    } else {
      const wordAt = s.i;
      const w = s.word(`a value for ${name}`);
      const range = parseRange(s, w, wordAt);
      if (range) param.range = range;
      else param.constant = w;
    }
    params.push(param);
    s.skip();
    if (s.i >= text.length) break;
    if (s.peek() !== ',') s.fail(`expected ',' or ')' after the values of ${name}, found ${s.found()}`);
    s.i++;
  }
  return params;
}

/** Number of runs of a def with these parameters (1 for no swept parameter). */
export function sweepSize(params: Param[], at: Pos): number {
  let n = 1;
  for (const p of params) {
    n *= paramSize(p);
    if (n > MAX_SWEEP) throw inputError(at, `a sweep of more than ${MAX_SWEEP} runs (check the ranges)`);
  }
  return n;
}

export function isSweep(params: Param[]): boolean {
  return params.some((p) => p.range || p.values);
}

/** The environment of run k of a sweep: mixed radix, the last parameter varying fastest. */
export function sweepEnv(params: Param[], k: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (let j = params.length - 1; j >= 0; j--) {
    const p = params[j];
    const size = paramSize(p);
    env[p.name] = paramValue(p, k % size);
    k = Math.floor(k / size);
  }
  // Keep the order the parameters were written in.
  const ordered: Record<string, string> = {};
  for (const p of params) ordered[p.name] = env[p.name];
  return ordered;
}
