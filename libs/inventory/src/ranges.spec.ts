import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CmError } from '@cm/protocol';
import { expandRange, foldNames, HostSet, MAX_EXPANSION, PatternError } from './ranges';

describe('expandRange', () => {
  it('expands padded, plain and multi-dimensional ranges', () => {
    expect(expandRange('node[01-03]')).toEqual(['node01', 'node02', 'node03']);
    expect(expandRange('10.0.0.[1-3]')).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(expandRange('a[1-3,7]b[1-2]')).toEqual(['a1b1', 'a1b2', 'a2b1', 'a2b2', 'a3b1', 'a3b2', 'a7b1', 'a7b2']);
    expect(expandRange('x,y')).toEqual(['x', 'y']);
    expect(expandRange('n[8-10]')).toEqual(['n8', 'n9', 'n10']);
    expect(expandRange('n[098-100]')).toEqual(['n098', 'n099', 'n100']);
  });
  it('names the column of a malformed range', () => {
    const cases: Array<[string, number, RegExp]> = [
      ['node[01-', 5, /never closed/],
      ['node]', 5, /without/],
      ['n[3-1]', 3, /backwards/],
      ['n[a-b]', 3, /not N or N-M/],
      ['n[1,,2]', 5, /empty range element/],
      ['a,,b', 3, /empty name/],
      ['n[1[2]]', 4, /nest/],
    ];
    for (const [pattern, col, reason] of cases) {
      try {
        expandRange(pattern);
        expect.unreachable(pattern);
      } catch (err) {
        expect(err).toBeInstanceOf(PatternError);
        expect((err as PatternError).index + 1, pattern).toBe(col);
        expect((err as PatternError).reason).toMatch(reason);
      }
    }
  });
  it('refuses patterns that would expand beyond the bound, without expanding them', () => {
    expect(() => expandRange('n[1-1000000000]')).toThrow(/more than 100000/);
    expect(() => expandRange('a[1-1000]b[1-1000]')).toThrow(/more than 100000/);
    expect(expandRange(`n[1-${MAX_EXPANSION}]`)).toHaveLength(MAX_EXPANSION);
  });
});

describe('HostSet', () => {
  it('folds back to ranges', () => {
    expect(HostSet.parse('node[01-16]').toString()).toBe('node[01-16]');
    expect(new HostSet(['node1', 'node2', 'node3', 'node7', 'x']).toString()).toBe('x,node[1-3,7]');
    expect(new HostSet(['n08', 'n09', 'n10']).toString()).toBe('n[08-10]');
    expect(new HostSet(['10.0.0.1', '10.0.0.2']).toString()).toBe('10.0.0.[1-2]');
    expect(HostSet.parse('a,b,a').size).toBe(2);
  });
});

const nameArb = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,6}$/);
const numberedArb = fc
  .tuple(fc.stringMatching(/^[a-z._-]{0,4}$/), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 4 }), fc.stringMatching(/^[a-z]{0,2}$/))
  .map(([p, n, w, s]) => `${p}${String(n).padStart(w, '0')}${s}`);

describe('properties', () => {
  it('expand(fold(names)) gives back exactly the names', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.oneof(nameArb, numberedArb), { maxLength: 40 }), (names) => {
        const folded = foldNames(names);
        if (names.length === 0) return;
        const back = expandRange(folded);
        expect(new Set(back)).toEqual(new Set(names));
        expect(back).toHaveLength(names.length);
      }),
      { numRuns: 500 },
    );
  }, 60_000);
  it('the range parser throws nothing but CmError on random input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 30 }), fc.stringMatching(/^[a-z0-9[\],-]{0,20}$/)), (s) => {
        try {
          const out = expandRange(s);
          expect(out.length).toBeLessThanOrEqual(MAX_EXPANSION);
        } catch (err) {
          expect(err).toBeInstanceOf(CmError);
        }
      }),
      { numRuns: 2000 },
    );
  }, 60_000);
});
