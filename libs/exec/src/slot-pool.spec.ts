import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SlotPool } from './slot-pool';

describe('SlotPool', () => {
  it('gives the host with the most free slots, the first on a tie, and -1 when none has one', () => {
    const p = new SlotPool(3);
    expect(p.best()).toBe(-1);
    p.set(0, 2);
    p.set(1, 4);
    p.set(2, 4);
    expect(p.best()).toBe(1);
    p.set(1, 3);
    expect(p.best()).toBe(2);
    p.set(2, -Infinity);
    expect(p.best()).toBe(1);
    for (const i of [0, 1]) p.set(i, 0);
    expect(p.best()).toBe(-1);
    p.set(0, -1);
    expect(p.best()).toBe(-1);
  });

  it('answers as a scan of every host would, whatever the updates', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.tuple(fc.nat(39), fc.integer({ min: -2, max: 5 }), fc.boolean()), { maxLength: 200 }),
        (hosts, updates) => {
          const p = new SlotPool(hosts);
          const free: number[] = Array.from({ length: hosts }, () => -Infinity);
          for (const [i, f, down] of updates) {
            if (i >= hosts) continue;
            free[i] = down ? -Infinity : f;
            p.set(i, free[i]!);
            let want = -1;
            for (let h = 0; h < hosts; h++) if (free[h]! > 0 && (want < 0 || free[h]! > free[want]!)) want = h;
            expect(p.best()).toBe(want);
          }
        },
      ),
    );
  });
});
