import { describe, expect, it } from 'vitest';
import { FinalIds, type Final } from './finals';

describe('FinalIds', () => {
  it('keeps how each of many jobs ended, as a Map would, through its growth', () => {
    const ids = new FinalIds();
    const ref = new Map<string, Final>();
    const finals: Final[] = ['ok', 'failed', 'gave-up', 'skipped'];
    for (let i = 0; i < 50_000; i++) {
      const id = i % 7 === 0 ? `sweep.${i}` : `j${i}:x@y+z=1,-_`;
      const f = finals[i % 4]!;
      ids.set(id, f);
      ref.set(id, f);
    }
    ids.set('j1:x@y+z=1,-_', 'ok');
    ref.set('j1:x@y+z=1,-_', 'ok');
    expect(ids.size).toBe(ref.size);
    // one expect for all of them: an expect per id costs more than the table itself
    expect([...ref].filter(([id, f]) => ids.get(id) !== f)).toEqual([]);
    expect(ids.get('j50000:x@y+z=1,-_')).toBeUndefined();
    expect(ids.has('sweep.7')).toBe(true);
    expect(ids.has('sweep.8')).toBe(false);
  });
  it('keeps ids that are not ASCII too', () => {
    const ids = new FinalIds();
    ids.set('é', 'failed');
    ids.set('e', 'ok');
    expect([ids.get('é'), ids.get('e'), ids.get('ê'), ids.size]).toEqual(['failed', 'ok', undefined, 2]);
  });
});
