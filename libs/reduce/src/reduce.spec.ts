import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import type { EventRecord, FetchRecord, ReduceRecord, ValueRecord } from '@cm/protocol';
import { Dec, parseDec } from './decimal';
import { parseJson, parseValue, plus, toPlain, ValueError } from './value';
import { makeReducer } from './ops';
import { ReduceEngine, type EngineOptions } from './engine';

const fin = (job: string, stdout: string, extra: Partial<EventRecord> = {}): EventRecord => ({
  kind: 'event',
  v: 1,
  event: 'finished',
  job,
  exit: 0,
  stdout,
  ...extra,
});
const red = (id: string, op: string, inputs: string[], extra: Partial<ReduceRecord> = {}): ReduceRecord => ({
  kind: 'reduce',
  v: 1,
  id,
  op,
  inputs,
  ...extra,
});

function engine(opts: Partial<EngineOptions> = {}, files: Record<string, string> = {}) {
  const out: ValueRecord[] = [];
  const warnings: string[] = [];
  const e = new ReduceEngine({
    emit: (r) => {
      out.push(r);
    },
    readResult: async (p) => {
      if (!(p in files)) throw new Error('ENOENT');
      return files[p] as string;
    },
    runCmd: async (cmd, stdin) => execFileSync('sh', ['-c', cmd], { input: stdin, encoding: 'utf8' }),
    warn: (m) => warnings.push(m),
    ...opts,
  });
  return { e, out, warnings };
}

describe('Dec', () => {
  it('adds integers beyond 2^53 exactly', () => {
    const big = parseDec('9007199254740993') as Dec;
    expect(big.add(parseDec('1') as Dec).toString()).toBe('9007199254740994');
    expect(big.toJSONValue()).toBe('9007199254740993');
    expect((parseDec('42') as Dec).toJSONValue()).toBe(42);
  });
  it('adds decimals exactly', () => {
    expect((parseDec('0.1') as Dec).add(parseDec('0.2') as Dec).toJSONValue()).toBe(0.3);
    expect((parseDec('1e3') as Dec).toString()).toBe('1000');
    expect((parseDec('-2.50') as Dec).toString()).toBe('-2.5');
    expect((parseDec('.5') as Dec).toString()).toBe('0.5');
  });
  it('refuses units and junk', () => {
    for (const junk of ['12 ms', '12ms', 'NaN', 'Infinity', '', '.', '1e99999', '0x10', '1,5']) expect(parseDec(junk)).toBeNull();
  });
  it('sums like BigInt for any integers (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n })), (xs) => {
        const got = xs.reduce((a, x) => a.add(parseDec(x.toString()) as Dec), Dec.ZERO);
        expect(got.toString()).toBe(xs.reduce((a, x) => a + x, 0n).toString());
      }),
    );
  });
  it('divides with rounding', () => {
    expect(Dec.fromInt(10).divInt(4n).toString()).toBe('2.5');
    expect(Dec.fromInt(2).divInt(3n).toString()).toBe('0.666666666666666667');
    expect(Dec.fromInt(-2).divInt(3n).toString()).toBe('-0.666666666666666667');
  });
});

describe('values', () => {
  it('parses JSON keeping big integers exact', () => {
    const v = parseJson('{"a": [9007199254740993, 1.5], "b": "x"}');
    expect(toPlain(v)).toEqual({ a: ['9007199254740993', 1.5], b: 'x' });
  });
  it('adds arrays by concatenation and objects per key', () => {
    expect(toPlain(plus(parseValue('[1,2]'), parseValue('[3]')))).toEqual([1, 2, 3]);
    expect(toPlain(plus(parseValue('{"a":1,"b":[1]}'), parseValue('{"a":2,"b":[2],"c":3}')))).toEqual({ a: 3, b: [1, 2], c: 3 });
  });
  it('names what is wrong', () => {
    expect(() => parseValue('12 ms')).toThrow(/"12 ms" is not a number/);
    expect(() => parseValue('')).toThrow(/empty/);
    expect(() => parseValue('[1,')).toThrow(ValueError);
    expect(() => plus(parseValue('1'), parseValue('[1]'))).toThrow(/cannot add an array to a number/);
  });
});

describe('reducers', () => {
  const fold = async (op: string, texts: string[]) => {
    const r = makeReducer(op, async (cmd, stdin) => execFileSync('sh', ['-c', cmd], { input: stdin, encoding: 'utf8' }));
    texts.forEach((text, i) => r.add({ id: `j${i}`, pos: texts.length - i, text }));
    return (await r.final()).plain;
  };
  it('computes each op', async () => {
    expect(await fold('sum', ['1', '2', '9007199254740992'])).toBe('9007199254740995');
    expect(await fold('sum', [])).toBe(0);
    expect(await fold('min', ['3', '-1.5', '2'])).toBe(-1.5);
    expect(await fold('max', ['18446744073709551616', '3'])).toBe('18446744073709551616');
    expect(await fold('mean', ['1', '2', '4'])).toBeCloseTo(7 / 3, 12);
    expect(await fold('count', ['a', 'b'])).toBe(2);
    // positions run backwards here, so plan order reverses arrival order
    expect(await fold('concat', ['a', 'b', 'c'])).toBe('c\nb\na');
    expect(await fold('histogram', ['2', '10', '2'])).toEqual({ '2': 2, '10': 1 });
    expect(await fold('cmd:sort -n | tail -1', ['5', '12', '7'])).toBe(12);
  });
  it('refuses junk for numeric ops but not for count', async () => {
    await expect(fold('mean', ['1', '12 ms'])).rejects.toThrow(/"12 ms"/);
    await expect(fold('max', ['[1]'])).rejects.toThrow(/an array is not a number/);
    expect(await fold('count', ['12 ms'])).toBe(1);
  });
});

describe('ReduceEngine', () => {
  it('folds as inputs arrive and prints partial values before the last input', async () => {
    const { e, out } = engine({ partial: true });
    await e.onReduce(red('total', 'sum', ['a', 'b', 'c'], { final: true }));
    await e.onEvent(fin('a', '1\n'));
    expect(out).toEqual([{ kind: 'value', v: 1, id: 'total', op: 'sum', value: 1, partial: true, have: 1, want: 3, final: true }]);
    await e.onEvent(fin('b', '2'));
    await e.onEvent(fin('c', '9007199254740992'));
    expect(out.map((r) => [r.value, r.partial])).toEqual([
      [1, true],
      [3, true],
      ['9007199254740995', false],
    ]);
    expect(await e.end()).toBe(0);
  });

  it('counts an input listed twice twice: a + a is twice a', async () => {
    const { e, out } = engine();
    await e.onReduce(red('s', 'sum', ['a', 'a', 'b'], { final: true }));
    await e.onEvent(fin('a', '5'));
    expect(out).toEqual([]);
    await e.onEvent(fin('b', '1'));
    expect(out[0]).toMatchObject({ value: 11, partial: false, have: 3, want: 3 });
    expect(await e.end()).toBe(0);
  });

  it('takes values from fetched result files', async () => {
    const { e, out } = engine({}, { '/r/a/out.txt': '40\n' });
    await e.onReduce(red('s', 'sum', ['a', 'b']));
    await e.onEvent(fin('a', 'ignored', { result: 'out.txt' }));
    await e.onEvent(fin('b', '2'));
    expect(out).toEqual([]);
    const f: FetchRecord = { kind: 'fetch', v: 1, job: 'a', direction: 'out', ok: true, files: [], result: '/r/a/out.txt' };
    await e.onFetch(f);
    expect(out[0]).toMatchObject({ value: 42, partial: false });
  });

  it('reduces whole sweeps without listing their jobs, ignoring replays', async () => {
    const { e, out } = engine();
    await e.onReduce(red('s', 'sum', [], { sweeps: { bench: 1000 } }));
    for (let i = 0; i < 1000; i += 1) await e.onEvent(fin(`bench-${i}`, String(2 ** 52), { sweep: 'bench', index: i }));
    await e.onEvent(fin('bench-3', '5', { sweep: 'bench', index: 3, replayed: true }));
    expect(out).toHaveLength(1);
    expect(out[0]?.value).toBe((2n ** 52n * 1000n).toString());
  });

  it('fails the reduction on a failed or missing input, naming it', async () => {
    const { e, out } = engine();
    await e.onReduce(red('s', 'sum', ['a', 'b']));
    await e.onEvent({ kind: 'event', v: 1, event: 'finished', job: 'a', exit: 3 });
    expect(out[0]).toMatchObject({ id: 's', value: null, partial: false, error: 'job a failed (exit 3)' });
    const second = engine();
    await second.e.onReduce(red('s', 'sum', ['a', 'b']));
    await second.e.onEvent(fin('a', '1'));
    expect(await second.e.end()).toBe(1);
    expect(second.out[0]).toMatchObject({ error: 'missing input: b', missing: ['b'] });
  });

  it('with allowMissing reduces what there is and lists what is missing', async () => {
    const { e, out } = engine({ allowMissing: true });
    await e.onReduce(red('s', 'sum', ['a', 'b', 'c']));
    await e.onEvent(fin('a', '1'));
    await e.onEvent({ kind: 'event', v: 1, event: 'gave-up', job: 'b', reason: 'timeout' });
    expect(await e.end()).toBe(0);
    expect(out[0]).toMatchObject({ value: 1, partial: false, missing: ['b', 'c'] });
  });

  it('reports junk as an error naming the job', async () => {
    const { e, out } = engine();
    await e.onReduce(red('s', 'sum', ['a', 'b']));
    await e.onEvent(fin('a', '12 ms'));
    expect(out[0]?.error).toBe('job a: "12 ms" is not a number, JSON array or object');
    expect(await e.end()).toBe(1);
  });

  it('reduces reduces, in any arrival order', async () => {
    const { e, out } = engine();
    await e.onEvent(fin('a', '1'));
    await e.onReduce(red('top', 'concat', ['left', 'c']));
    await e.onReduce(red('left', 'sum', ['a', 'b']));
    await e.onEvent(fin('c', 'last'));
    await e.onEvent(fin('b', '2'));
    expect(out.map((r) => [r.id, r.value])).toEqual([
      ['left', 3],
      ['top', '3\nlast'],
    ]);
  });

  it('--op without reduce records reduces every job value', async () => {
    const { e, out } = engine({ op: 'max', partial: true });
    await e.onEvent(fin('a', '3'));
    await e.onEvent(fin('b', '7'));
    await e.onEvent(fin('c', '5'));
    expect(await e.end()).toBe(0);
    expect(out.map((r) => [r.value, r.partial])).toEqual([
      [3, true],
      [7, true],
      [7, false],
    ]);
    expect(out[2]).toMatchObject({ id: 'all', op: 'max', have: 3 });
  });

  it('--op overrides the op of reduce records', async () => {
    const { e, out } = engine({ op: 'count' });
    await e.onReduce(red('s', 'sum', ['a']));
    await e.onEvent(fin('a', 'x'));
    expect(out[0]).toMatchObject({ op: 'count', value: 1 });
  });
});
