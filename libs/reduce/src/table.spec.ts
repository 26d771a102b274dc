import { describe, expect, it } from 'vitest';
import type { ValueRecord } from '@cm/protocol';
import { valuesTable } from './table';

const val = (id: string, op: string, value: unknown, extra: Partial<ValueRecord> = {}): ValueRecord => ({ kind: 'value', v: 1, id, op, value, partial: false, ...extra });

describe('valuesTable', () => {
  it('one row per reduce and group, one column per op; numeric parameters sort as numbers', () => {
    const g = (size: string) => ({ group: { size }, have: 5, want: 5 });
    const text = valuesTable([
      val('sum-1', 'mean', 1.5, { ...g('20'), partial: true }),
      val('sum-1', 'mean', 30, g('20')),
      val('sum-1', 'p90', 46, g('20')),
      val('sum-1', 'mean', 9, g('3')),
      val('sum-1', 'p90', 13.8, g('3')),
      val('sum-1', 'mean', 150, g('100')),
      val('sum-1', 'p90', 230, g('100')),
    ]);
    expect(text).toBe(['ID     SIZE  MEAN  P90', 'sum-1  3     9     13.8', 'sum-1  20    30    46', 'sum-1  100   150   230', ''].join('\n'));
  });

  it('non-numeric parameters keep their order of first appearance; values without a group get -', () => {
    const text = valuesTable([
      val('t', 'sum', 1, { group: { host: 'b', n: '2' } }),
      val('t', 'sum', 2, { group: { host: 'a', n: '1' } }),
      val('t', 'sum', 3, { group: { host: 'b', n: '1' } }),
      val('u', 'sum', 'x y', {}),
    ]);
    expect(text).toBe(['ID  HOST  N  SUM', 't   b     1  3', 't   b     2  1', 't   a     1  2', 'u   -     -  x y', ''].join('\n'));
  });

  it('shows an error once per row, and HAVE/WANT and MISSING when inputs are missing', () => {
    const text = valuesTable([
      val('s', 'mean', null, { group: { size: '1' }, have: 2, want: 3, error: 'job b.1 failed (exit 1)', missing: ['b.1'] }),
      val('s', 'p90', null, { group: { size: '1' }, have: 2, want: 3, error: 'job b.1 failed (exit 1)', missing: ['b.1'] }),
      val('s', 'mean', 4, { group: { size: '2' }, have: 3, want: 3 }),
      val('s', 'p90', 5, { group: { size: '2' }, have: 3, want: 3 }),
    ]);
    expect(text).toBe(
      [
        'ID  SIZE  MEAN                            P90  HAVE/WANT  MISSING',
        's   1     error: job b.1 failed (exit 1)  -    2/3        b.1',
        's   2     4                               5    3/3        -',
        '',
      ].join('\n'),
    );
  });
});
