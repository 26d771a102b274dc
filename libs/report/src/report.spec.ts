import { describe, expect, it } from 'vitest';
import { assignLanes } from './lanes';
import { RunLog } from './model';
import { parallelJoblog, PARALLEL_JOBLOG_HEADER } from './parallel-joblog';
import { lastBars, pack, unpack } from './data';
import { timelineSvg } from './timeline';
import { histogram, percentile, runningOverTime } from './stats';

const T = (s: number) => new Date(Date.parse('2026-01-05T09:00:00Z') + s * 1000).toISOString();
const fin = (job: string, host: string, start: number, end: number, extra: object = {}) => ({
  kind: 'event', v: 1, event: 'finished', job, task: job.split('.')[0], run: 'r', host, attempt: 1, exit: 0, start: T(start), end: T(end), stdout: '', ...extra,
});

describe('assignLanes', () => {
  it('puts each interval in the free lane that was used first, as few lanes as the most at once', () => {
    expect(assignLanes([{ start: 0, end: 10 }, { start: 1, end: 5 }, { start: 5, end: 8 }, { start: 10, end: 12 }])).toEqual({ lane: [0, 1, 1, 0], lanes: 2 });
  });
  it('with a cap, an interval that finds no free lane shares the one that ends first', () => {
    expect(assignLanes([{ start: 0, end: 10 }, { start: 1, end: 5 }], 1)).toEqual({ lane: [0, 0], lanes: 1 });
  });
});

describe('stats', () => {
  it('percentile is numpy linear; histogram counts every value; running jobs are time-weighted per bin', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(histogram([1, 2, 3, 4])!.counts.reduce((a, b) => a + b)).toBe(4);
    expect(runningOverTime([{ start: 0, end: 10, group: 0 }, { start: 5, end: 10, group: 1 }], 2, 10, 2)).toEqual({ t: [0, 5], total: [1, 2], perGroup: [[1, 1], [0, 1]] });
  });
});

describe('RunLog', () => {
  const run = () => {
    const log = new RunLog();
    log.add({ kind: 'host', v: 1, name: 'h1', address: '127.0.0.1', tags: [], slots: 3 });
    for (const r of [
      { kind: 'event', v: 1, event: 'queued', job: 'a', task: 'a', run: 'r' },
      { kind: 'event', v: 1, event: 'started', job: 'a', task: 'a', run: 'r', host: 'h1', attempt: 1, running: 1 },
      fin('a', 'h1', 0, 4, { stdout: '1\n' }),
      { kind: 'event', v: 1, event: 'queued', job: 'b.0', task: 'b', run: 'r', deps: ['a'] },
      { kind: 'event', v: 1, event: 'queued', job: 'b.1', task: 'b', run: 'r', deps: ['a'] },
      fin('b.0', 'h1', 4, 10, { stdout: '10\n', params: { n: '1' } }),
      fin('b.1', 'h2', 5, 7, { exit: 3, params: { n: '2' } }),
      { kind: 'event', v: 1, event: 'queued', job: 'c', task: 'c', run: 'r', deps: ['b.1'] },
      { kind: 'event', v: 1, event: 'skipped', job: 'c', task: 'c', run: 'r', reason: 'dependency b.1 failed' },
      { kind: 'event', v: 1, event: 'host-down', host: 'h2', reason: 'connection refused' },
    ])
      log.add(r);
    log.end();
    return log;
  };

  it('draws a lane per slot of a host with a host record, else per job it ran at once; a bar per attempt', () => {
    const d = run().snapshot();
    expect(d.hosts).toEqual([
      { name: 'h1', lanes: 3, firstLane: 0, slotsKnown: true },
      { name: 'h2', lanes: 1, firstLane: 3, slotsKnown: false },
    ]);
    expect(d.bars.job.length).toBe(3);
    expect(d.wall).toBe(10_000);
    expect(d.counts).toMatchObject({ jobs: 4, ok: 2, failed: 1, skipped: 1, hostDown: 1 });
    // job time 4 + 6 + 2 s over 4 slots x 10 s
    expect(d.efficiency).toBeCloseTo(12 / 40);
    expect(d.marks).toEqual([{ host: 'h2', kind: 'host-down', at: 10_000, reason: 'connection refused' }]);
  });

  it("an attempt that failed and was retried, and a host going down, are placed by their events' own times", () => {
    const log = new RunLog();
    const ev = (e: object) => log.add({ kind: 'event', v: 1, job: 'b', task: 'b', run: 'r', host: 'h1', ...e });
    ev({ event: 'started', attempt: 1, start: T(1) });
    ev({ event: 'retry', attempt: 1, exit: 3, start: T(1), end: T(4), reason: 'exit 3' });
    ev({ event: 'started', attempt: 2, start: T(5) });
    log.add({ kind: 'event', v: 1, event: 'host-down', host: 'h2', at: T(6), reason: 'gone' });
    ev({ ...fin('b', 'h1', 5, 9), attempt: 2 });
    const d = log.snapshot();
    // bars are ms from the first start: the failed attempt 0..3 s, the retry 4..8 s
    expect(d.bars.attempt).toEqual([1, 2]);
    expect(d.bars.dur).toEqual([3000, 4000]);
    expect(d.bars.start).toEqual([0, 4000]);
    expect(d.marks).toEqual([{ host: 'h2', kind: 'host-down', at: 5000, reason: 'gone' }]);
  });

  it('the plan: tasks in stages by their deps, the critical path by duration', () => {
    const { plan } = run().snapshot();
    expect(plan.tasks.map((t) => [t.name, t.stage, t.critical])).toEqual([
      ['a', 0, true],
      ['b', 1, true],
      ['c', 2, false],
    ]);
    expect(plan.critical).toEqual(['a', 'b.0']);
    expect(plan.criticalMs).toBe(10_000);
  });

  it('the page data packs and unpacks to the same; a job finds its last bar', () => {
    const d = run().snapshot();
    expect(unpack(pack(d))).toEqual(d);
    expect([...lastBars(d)]).toEqual([0, 1, 2, -1]);
  });

  it('the SVG timeline: a g.lane per slot, a rect.bar per attempt, the failed one marked', () => {
    const svg = timelineSvg(run().snapshot());
    expect(svg.match(/<g class="lane"/g)).toHaveLength(4);
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(3);
    expect(svg).toMatch(/data-job="b.1" data-status="failed"/);
    expect(svg).toMatch(/class="mark" data-kind="host-down" data-host="h2"/);
  });

  it("GNU parallel's joblog: a line per attempt that ran", () => {
    const text = parallelJoblog(run().ranAttempts());
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(PARALLEL_JOBLOG_HEADER);
    expect(lines[3]!.split('\t')).toEqual(['3', 'h2', String(Date.parse(T(5)) / 1000) + '.000', '   2.000', '0', '0', '3', '0', 'b.1']);
  });
});
