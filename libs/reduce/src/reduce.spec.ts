import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import type { EventRecord, FetchRecord, ReduceRecord, ValueRecord } from '@cm/protocol';
import { Dec, parseDec } from './decimal';
import { parseJson, parseValue, plus, toPlain, ValueError } from './value';
import { isValidOp, makeReducer, parseOps } from './ops';
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
  it('median, stddev and percentiles match numpy (np.median, np.std(ddof=1), np.percentile linear)', async () => {
    expect(await fold('median', ['3', '1', '2'])).toBe(2);
    expect(await fold('median', ['4', '1', '3', '2'])).toBe(2.5);
    expect(await fold('median', [])).toBeNull();
    // np.std([2, 4, 4, 4, 5, 5, 7, 9], ddof=1) = 2.138089935299395 (population: 2)
    expect(await fold('stddev', ['2', '4', '4', '4', '5', '5', '7', '9'])).toBe(2.138089935299395);
    expect(await fold('stddev', ['1', '1', '1'])).toBe(0);
    expect(await fold('stddev', ['5'])).toBeNull();
    // np.percentile([1, 2, 3, 4], 90) = 3.7; np.percentile([15, 20, 35, 40, 50], 40) = 29.0
    expect(await fold('p90', ['4', '1', '3', '2'])).toBe(3.7);
    expect(await fold('p40', ['50', '15', '40', '20', '35'])).toBe(29);
    const hundred = Array.from({ length: 100 }, (_, i) => String(i + 1));
    // np.percentile(range(1, 101), [50, 90, 99, 99.9]) = 50.5, 90.1, 99.01, 99.901
    expect(await fold('p50', hundred)).toBe(50.5);
    expect(await fold('p90', hundred)).toBe(90.1);
    expect(await fold('p99', hundred)).toBe(99.01);
    expect(await fold('p99.9', hundred)).toBe(99.901);
    expect(await fold('p1', hundred)).toBe(1.99);
    expect(await fold('p99', ['7'])).toBe(7);
  });
  it('keeps decimals and big integers exact in median, percentiles and stddev', async () => {
    expect(await fold('median', ['0.1', '0.2'])).toBe(0.15);
    expect(await fold('median', ['9007199254740993', '9007199254740995', '1'])).toBe('9007199254740993');
    expect(await fold('stddev', ['1e20', '1e20', '1e20'])).toBe(0);
    // sample stddev of 1e15 + [0, 1, 2] is 1: naive double sums of squares lose it
    expect(await fold('stddev', ['1000000000000000', '1000000000000001', '1000000000000002'])).toBe(1);
    expect(await fold('stddev', ['0.000000001', '0.000000003'])).toBe(1.4142135623730951e-9); // sqrt(2) * 1e-9, correctly rounded
  });
  it('reads op lists: a comma list, cmd: whole, pNN for 0 < NN < 100', () => {
    expect(parseOps('mean,p90')).toEqual(['mean', 'p90']);
    expect(parseOps('cmd:sort -n | tr "\\n" ,')).toEqual(['cmd:sort -n | tr "\\n" ,']);
    for (const op of ['p0', 'p100', 'p', 'p9x', 'mean,,p90', 'avg']) expect(() => parseOps(op)).toThrow(ValueError);
    expect(() => parseOps('mean,mean')).toThrow(/twice/);
    expect(isValidOp('p99.9')).toBe(true);
    expect(isValidOp('p05')).toBe(true);
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

  it('several ops: one value per op, each naming its op', async () => {
    const { e, out } = engine({ op: 'mean,p90,count', partial: true });
    await e.onReduce(red('s', 'sum', ['a', 'b']));
    await e.onEvent(fin('a', '1'));
    await e.onEvent(fin('b', '3'));
    expect(out.map((r) => [r.op, r.value, r.partial])).toEqual([
      ['mean', 1, true],
      ['p90', 1, true],
      ['count', 1, true],
      ['mean', 2, false],
      ['p90', 2.8, false],
      ['count', 2, false],
    ]);
    expect(await e.end()).toBe(0);
  });

  it('a reduce of reduces with several ops folds op by op', async () => {
    const { e, out } = engine({ op: 'min,max' });
    await e.onReduce(red('top', 'sum', ['left', 'c']));
    await e.onReduce(red('left', 'sum', ['a', 'b']));
    for (const [j, v] of [['a', '5'], ['b', '1'], ['c', '3']] as const) await e.onEvent(fin(j, v));
    expect(out.map((r) => [r.id, r.op, r.value])).toEqual([
      ['left', 'min', 1],
      ['left', 'max', 5],
      ['top', 'min', 1],
      ['top', 'max', 5],
    ]);
  });

  const pfin = (job: string, stdout: string, params: Record<string, string>, extra: Partial<EventRecord> = {}) => fin(job, stdout, { params, ...extra });

  it('by: one value per combination of parameter values, labelled, in order of first appearance', async () => {
    const { e, out } = engine();
    await e.onReduce(red('sum-1', 'mean,p90', [], { sweeps: { b: 6 }, by: ['size'], final: true }));
    const runs: Array<[string, string]> = [['20', '1'], ['20', '2'], ['3', '1'], ['3', '2'], ['20', '3'], ['3', '3']];
    for (const [i, [size, rep]] of runs.entries()) await e.onEvent(pfin(`b.${i}`, String(Number(size) * Number(rep)), { size, rep }, { sweep: 'b', index: i }));
    expect(await e.end()).toBe(0);
    expect(out.map((r) => [r.id, r.group, r.op, r.value, r.have, r.want, r.partial])).toEqual([
      ['sum-1', { size: '20' }, 'mean', 40, 3, 3, false],
      ['sum-1', { size: '20' }, 'p90', 56, 3, 3, false],
      ['sum-1', { size: '3' }, 'mean', 6, 3, 3, false],
      ['sum-1', { size: '3' }, 'p90', 8.4, 3, 3, false],
    ]);
  });

  it('by two parameters; --by overrides the record; --partial gives partial values per group', async () => {
    const { e, out } = engine({ by: ['size', 'rep'], partial: true });
    await e.onReduce(red('s', 'sum', ['a', 'b', 'c'], { by: ['size'] }));
    await e.onEvent(pfin('a', '1', { size: '1', rep: '1' }));
    await e.onEvent(pfin('b', '2', { size: '1', rep: '1' }));
    await e.onEvent(pfin('c', '4', { size: '1', rep: '2' }));
    expect(out.map((r) => [r.group, r.value, r.partial])).toEqual([
      [{ size: '1', rep: '1' }, 1, true],
      [{ size: '1', rep: '1' }, 3, true],
      [{ size: '1', rep: '1' }, 3, false],
      [{ size: '1', rep: '2' }, 4, false],
    ]);
  });

  it('by: params from the fetch record, or from the finished event when the fetch record has none', async () => {
    const { e, out } = engine({}, { '/r/a': '10', '/r/b': '20', '/r/c': '30' });
    await e.onReduce(red('s', 'sum', ['a', 'b', 'c'], { by: ['size'] }));
    const fetched = (job: string, params?: Record<string, string>): FetchRecord => ({ kind: 'fetch', v: 1, job, direction: 'out', ok: true, files: [], result: `/r/${job}`, params });
    await e.onFetch(fetched('a', { size: 'S' }));
    await e.onEvent(fin('b', '', { result: 'out.txt', params: { size: 'L' } }));
    await e.onFetch(fetched('b'));
    await e.onFetch(fetched('c', { size: 'S' }));
    expect(out.map((r) => [r.group, r.value])).toEqual([
      [{ size: 'S' }, 40],
      [{ size: 'L' }, 20],
    ]);
  });

  it('by: a job without the parameter is an error naming the job and the parameter', async () => {
    const { e, out } = engine();
    await e.onReduce(red('s', 'sum', ['a', 'b'], { by: ['size'] }));
    await e.onEvent(pfin('a', '1', { rep: '1' }));
    expect(out).toEqual([{ kind: 'value', v: 1, id: 's', op: 'sum', value: null, partial: false, have: 0, want: 2, error: 'job a has no parameter "size" (by size)', missing: ['b'] }]);
    const second = engine({ by: ['size'], op: 'mean' });
    await second.e.onEvent(fin('x', '1'));
    expect(await second.e.end()).toBe(1);
    expect(second.out[0]?.error).toBe('job x has no parameter "size" (by size): its record carries no params');
  });

  it('by: a failed input fails its group only; --allow-missing lists it in its group', async () => {
    const failed = (job: string, size: string): EventRecord => ({ kind: 'event', v: 1, event: 'finished', job, exit: 1, params: { size } });
    const { e, out } = engine();
    await e.onReduce(red('s', 'sum', ['a', 'b', 'c'], { by: ['size'] }));
    await e.onEvent(pfin('a', '1', { size: '1' }));
    await e.onEvent(failed('b', '2'));
    await e.onEvent(pfin('c', '5', { size: '2' }));
    expect(await e.end()).toBe(1);
    expect(out.map((r) => [r.group, r.value, r.error, r.missing])).toEqual([
      [{ size: '2' }, null, 'job b failed (exit 1)', ['b']],
      [{ size: '1' }, 1, undefined, undefined],
    ]);
    const lenient = engine({ allowMissing: true });
    await lenient.e.onReduce(red('s', 'sum', ['a', 'b', 'c'], { by: ['size'] }));
    await lenient.e.onEvent(pfin('a', '1', { size: '1' }));
    await lenient.e.onEvent(failed('b', '2'));
    await lenient.e.onEvent(pfin('c', '5', { size: '2' }));
    expect(await lenient.e.end()).toBe(0);
    expect(lenient.out.map((r) => [r.group, r.value, r.have, r.want, r.missing])).toEqual([
      [{ size: '1' }, 1, 1, 1, undefined],
      [{ size: '2' }, 5, 1, 2, ['b']],
    ]);
  });

  it('by: an input that never came fails every group (its group is unknown)', async () => {
    const { e, out } = engine();
    await e.onReduce(red('s', 'sum', ['a', 'b'], { by: ['size'] }));
    await e.onEvent(pfin('a', '1', { size: '1' }));
    expect(await e.end()).toBe(1);
    expect(out).toEqual([{ kind: 'value', v: 1, id: 's', op: 'sum', value: null, partial: false, have: 1, want: 1, group: { size: '1' }, error: 'missing input: b', missing: ['b'] }]);
  });

  it('--by with no reduce record groups every job value into all (op sum unless --op)', async () => {
    const { e, out } = engine({ by: ['size'] });
    await e.onEvent(pfin('a', '1', { size: '1' }));
    await e.onEvent(pfin('b', '2', { size: '2' }));
    await e.onEvent(pfin('c', '3', { size: '1' }));
    expect(await e.end()).toBe(0);
    expect(out.map((r) => [r.id, r.op, r.group, r.value])).toEqual([
      ['all', 'sum', { size: '1' }, 4],
      ['all', 'sum', { size: '2' }, 2],
    ]);
  });
});
