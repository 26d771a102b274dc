// Job values as cm-reduce sees them: JSON whose numbers are exact decimals (JSON.parse would round
// integers beyond 2^53 inside arrays and objects before we could add them).
import { Dec, parseDec } from './decimal';

export type JVal = Dec | string | boolean | null | JVal[] | { [key: string]: JVal };

export class ValueError extends Error {}

/** Parses JSON text into a JVal; numbers become Dec. Throws ValueError with the offset on bad JSON. */
export function parseJson(text: string): JVal {
  let i = 0;
  const fail = (why: string): never => {
    throw new ValueError(`${why} at offset ${i}`);
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i += 1;
  };
  const value = (depth: number): JVal => {
    if (depth > 1000) fail('nesting too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i += 1;
      const obj: { [key: string]: JVal } = Object.create(null);
      ws();
      if (text[i] === '}') {
        i += 1;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = str();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i += 1;
        obj[key] = value(depth + 1);
        ws();
        if (text[i] === ',') {
          i += 1;
          continue;
        }
        if (text[i] === '}') {
          i += 1;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i += 1;
      const arr: JVal[] = [];
      ws();
      if (text[i] === ']') {
        i += 1;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i += 1;
          continue;
        }
        if (text[i] === ']') {
          i += 1;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 4096));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    const d = parseDec(m[0]);
    if (!d) return fail('number out of range');
    return d;
  };
  const str = (): string => {
    const start = i;
    i += 1;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i += 1;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      return fail('bad string');
    }
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

/** The JSON-serialisable form: numbers per Dec.toJSONValue (decimal strings beyond 2^53). */
export function toPlain(v: JVal): unknown {
  if (v instanceof Dec) return v.toJSONValue();
  if (Array.isArray(v)) return v.map(toPlain);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = toPlain(x);
    return out;
  }
  return v;
}

/** The text of a value as a line (concat, histogram, cmd): strings as they are, the rest as JSON. */
export function toText(v: JVal): string {
  return typeof v === 'string' ? v : JSON.stringify(toPlain(v));
}

/**
 * A job's value for the arithmetic ops: a plain number, or a JSON array or object. Anything else
 * (`12 ms`, `NaN`, `abc`) is a ValueError, never a NaN.
 */
export function parseValue(text: string): JVal {
  const t = text.trim();
  const d = parseDec(t);
  if (d) return d;
  if (t.startsWith('[') || t.startsWith('{')) return parseJson(t);
  const shown = t.length > 40 ? `${t.slice(0, 37)}...` : t;
  throw new ValueError(t === '' ? 'empty value, not a number' : `${JSON.stringify(shown)} is not a number, JSON array or object`);
}

/** The `+` of the plan language: numbers add exactly, arrays concatenate, objects add per key. */
export function plus(a: JVal, b: JVal): JVal {
  if (a instanceof Dec && b instanceof Dec) return a.add(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.concat(b);
  if (isObject(a) && isObject(b)) {
    const out: { [key: string]: JVal } = Object.create(null);
    for (const [k, v] of Object.entries(a)) out[k] = v;
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? plus(out[k] as JVal, v) : v;
    return out;
  }
  throw new ValueError(`cannot add ${kindOf(b)} to ${kindOf(a)}`);
}

function isObject(v: JVal): v is { [key: string]: JVal } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Dec);
}

export function kindOf(v: JVal): string {
  if (v instanceof Dec) return 'a number';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}
