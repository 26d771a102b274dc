import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReadyQueue } from './ready-queue';

// What the queue must answer, the slow way: the oldest job that has a free host, and the first of
// its hosts with the most free slots.
function scan(jobs: Array<[number, readonly number[]]>, free: number[]): [number, number] | undefined {
  for (let j = 0; j < jobs.length; j++) {
    let best = -1;
    for (const h of jobs[j]![1]) if (free[h]! > 0 && (best < 0 || free[h]! > free[best]!)) best = h;
    if (best >= 0) return [j, best];
  }
  return undefined;
}

describe('ReadyQueue', () => {
  it('starts the oldest job that has a free host, and passes over pinned jobs whose hosts are full', () => {
    const all = [0, 1, 2];
    const pinned = [2];
    const q = new ReadyQueue<string>([1, 1, 1]);
    q.push('p1', pinned);
    q.push('p2', pinned);
    q.push('a1', all);
    q.push('a2', all);
    expect(q.size).toBe(4);
    expect(q.shift()).toEqual(['p1', 2]);
    q.setFree(2, 0);
    // p2's only host is full: the jobs behind it go first
    expect(q.shift()).toEqual(['a1', 0]);
    q.setFree(0, 0);
    expect(q.shift()).toEqual(['a2', 1]);
    q.setFree(1, 0);
    expect(q.shift()).toBeUndefined();
    q.setFree(0, 1);
    expect(q.shift()).toBeUndefined();
    q.setFree(2, 1);
    expect(q.shift()).toEqual(['p2', 2]);
    expect(q.size).toBe(0);
  });

  it('gives back the jobs of a class whose hosts are all down', () => {
    const q = new ReadyQueue<string>([0, 0, 1]);
    const ab = [0, 1];
    q.push('x', ab);
    q.push('y', [1, 2]);
    q.setFree(0, -Infinity);
    expect(q.dropStranded(0)).toEqual([]);
    q.setFree(1, -Infinity);
    expect(q.dropStranded(1)).toEqual(['x']);
    expect(q.shift()).toEqual(['y', 2]);
    expect(q.size).toBe(0);
  });

  it('answers as a scan of every queued job would, whatever the pins, slots and order', () => {
    const hosts = 5;
    const op = fc.oneof(
      fc.record({ push: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ host: fc.nat(hosts - 1), free: fc.constantFrom(-Infinity, -1, 0, 0, 1, 1, 2) }),
      fc.record({ shift: fc.constant(true) }),
      fc.record({ drop: fc.nat(hosts - 1) }),
    );
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1 }), { minLength: hosts, maxLength: hosts }), fc.array(op, { maxLength: 150 }), (start, ops) => {
        // the classes: every host, two pins (one naming a host twice), one host
        const classes: number[][] = [[0, 1, 2, 3, 4], [3, 1], [4, 2, 4], [0]];
        const free = [...start];
        const q = new ReadyQueue<number>(free);
        const model: Array<[number, readonly number[]]> = [];
        let next = 0;
        for (const o of ops) {
          if ('push' in o) {
            q.push(next, classes[o.push]!);
            model.push([next++, classes[o.push]!]);
          } else if ('host' in o) {
            free[o.host] = o.free;
            q.setFree(o.host, o.free);
          } else if ('drop' in o) {
            const want = model.filter(([, c]) => c.includes(o.drop) && c.every((h) => free[h] === -Infinity)).map(([j]) => j);
            expect(q.dropStranded(o.drop).sort((a, b) => a - b)).toEqual(want);
            for (const j of want) model.splice(model.findIndex(([k]) => k === j), 1);
          } else {
            const want = scan(model, free);
            const got = q.shift();
            if (want === undefined) {
              expect(got).toBeUndefined();
            } else {
              expect(got).toEqual([model[want[0]]![0], want[1]]);
              model.splice(want[0], 1);
            }
          }
          expect(q.size).toBe(model.length);
        }
      }),
      { numRuns: 400 },
    );
  });
});
