import { describe, expect, it } from 'vitest';
import type { HostRecord, JobRecord } from '@cm/protocol';
import { parseHalt } from './halt';
import { Scheduler, type Action } from './scheduler';
import type { JobOutcome } from './transport/types';

const host = (name: string, slots: number, tags: string[] = []): HostRecord => ({ kind: 'host', v: 1, name, address: name, slots, tags });
const job = (id: string, extra: Partial<JobRecord> = {}): JobRecord => ({ kind: 'job', v: 1, id, task: id, command: 'true', deps: [], ...extra });
const ok = (exit = 0): JobOutcome => ({
  ran: true, exit, signal: null, stdout: Buffer.from(`${exit}\n`), stderr: Buffer.alloc(0), stdoutBytes: 2, stderrBytes: 0, truncated: false, start: new Date(0), end: new Date(1000),
});
const refused = (): JobOutcome => ({ ...ok(), ran: false, exit: null, reason: 'Connection refused' });
// a host that answered but dropped the connection (sshd's MaxStartups): --down-after counts these
const dropped = (): JobOutcome => ({ ...ok(), ran: false, exit: null, reason: 'Connection closed by 127.0.0.1 port 22' });

const launches = (a: Action[]) => a.filter((x): x is Extract<Action, { type: 'launch' }> => x.type === 'launch');
const events = (a: Action[], ev?: string) => a.flatMap((x) => (x.type === 'emit' && (!ev || x.event.event === ev) ? [x.event] : []));

describe('Scheduler', () => {
  it('never runs more jobs on a host than its slots and picks the host with most free slots', () => {
    const s = new Scheduler({ hosts: [host('a', 2), host('b', 1)], run: 'r' });
    const acts = [1, 2, 3, 4, 5].flatMap((i) => s.add(job(`j${i}`)));
    const l = launches(acts);
    // a has 2 free, then a and b tie at 1 (first wins), then only b
    expect(l.map((x) => x.host.name)).toEqual(['a', 'a', 'b']);
    expect(Math.max(...events(acts, 'started').map((e) => e.running!))).toBe(2);
    const next = launches(s.done('j1', ok()));
    expect(next.map((x) => [x.job.id, x.host.name])).toEqual([['j4', 'a']]);
  });

  it('honours the global --jobs limit', () => {
    const s = new Scheduler({ hosts: [host('a', 4)], run: 'r', jobs: 1 });
    expect(launches([1, 2].flatMap((i) => s.add(job(`j${i}`))))).toHaveLength(1);
  });

  it('starts dependants when deps succeed, skips them when a dep fails, waits for unseen deps until EOF', () => {
    const s = new Scheduler({ hosts: [host('a', 4)], run: 'r' });
    expect(launches(s.add(job('b', { deps: ['a'] })))).toHaveLength(0);
    expect(launches(s.add(job('a'))).map((x) => x.job.id)).toEqual(['a']);
    s.add(job('c', { deps: ['b'] }));
    s.add(job('d', { deps: ['c'] }));
    s.add(job('e', { deps: ['ghost'] }));
    expect(launches(s.done('a', ok())).map((x) => x.job.id)).toEqual(['b']);
    const after = s.done('b', ok(2));
    expect(events(after, 'skipped').map((e) => [e.job, e.reason])).toEqual([
      ['c', 'dependency b failed'],
      ['d', 'dependency c was skipped'],
    ]);
    const end = s.endInput();
    expect(events(end, 'skipped').map((e) => e.reason)).toEqual(['unknown dependency ghost']);
    expect(s.idle).toBe(true);
    expect(s.exitCode()).toBe(1);
  });

  it('`after` waits for any end, and a cycle is skipped at EOF', () => {
    const s = new Scheduler({ hosts: [host('a', 4)], run: 'r' });
    s.add(job('x'));
    s.add(job('y', { after: ['x'] }));
    expect(launches(s.done('x', ok(1))).map((l) => l.job.id)).toEqual(['y']);
    s.add(job('p', { deps: ['q'] }));
    s.add(job('q', { deps: ['p'] }));
    s.done('y', ok());
    const end = s.endInput();
    expect(events(end, 'skipped').map((e) => e.job).sort()).toEqual(['p', 'q']);
    expect(s.idle).toBe(true);
  });

  it('moves a job to another host on a connection failure without using a retry, and marks the host down', () => {
    const s = new Scheduler({ hosts: [host('a', 1), host('b', 1)], run: 'r', downAfter: 2, retries: 0 });
    s.add(job('j1'));
    s.add(job('j2'));
    // j1 on a, j2 on b; a refuses: j1 is queued again (b is busy, so a again: it is not down yet)
    const r1 = s.done('j1', dropped());
    expect(events(r1, 'retry')[0]!.reason).toMatch(/connection failed: Connection closed/);
    expect(launches(r1).map((l) => [l.job.id, l.host.name, l.attempt])).toEqual([['j1', 'a', 2]]);
    // a refuses twice in a row: down; j1 waits for b
    const r2 = s.done('j1', dropped());
    expect(events(r2, 'host-down').map((e) => e.host)).toEqual(['a']);
    expect(launches(r2)).toHaveLength(0);
    expect(launches(s.done('j2', ok())).map((l) => [l.job.id, l.host.name])).toEqual([['j1', 'b']]);
    const r3 = s.done('j1', ok());
    expect(events(r3, 'finished')[0]).toMatchObject({ attempt: 3, host: 'b', exit: 0 });
    s.endInput();
    expect(s.exitCode()).toBe(0);
  });

  it('a job stopped before it reached its host (session still connecting) is not a failure of the host', () => {
    const s = new Scheduler({ hosts: [host('a', 4)], run: 'r', downAfter: 1 });
    [1, 2, 3].forEach((i) => s.add(job(`j${i}`)));
    s.stop('stopped: stdout closed', true);
    const acts = [1, 2, 3].flatMap((i) => s.done(`j${i}`, { ...refused(), reason: 'cancelled' }));
    expect(events(acts, 'host-down')).toEqual([]);
    expect(events(acts, 'retry')).toEqual([]);
    expect(events(acts, 'gave-up').map((e) => e.reason)).toEqual(Array(3).fill('stopped: stdout closed'));
  });

  it('a running job whose host fails after a stop that lets running jobs finish ends; it is not requeued', () => {
    const s = new Scheduler({ hosts: [host('a', 1), host('b', 1)], run: 'r' });
    s.add(job('j1'));
    s.stop('stopped: input error at stdin:3', false);
    const acts = s.done('j1', refused());
    expect(events(acts, 'gave-up').map((e) => e.reason)).toEqual(['stopped: input error at stdin:3']);
    expect(s.stats().gaveUp).toBe(1);
    expect(launches(acts)).toEqual([]);
  });

  it('a job whose every eligible host is down gives up with the reason, never lost', () => {
    const s = new Scheduler({ hosts: [host('a', 2), host('b', 2)], run: 'r', downAfter: 2 });
    s.add(job('p', { host: 'a' }));
    s.add(job('q', { host: 'a' }));
    s.done('p', dropped()); // p runs on a again at once
    const r = s.done('q', dropped());
    expect(events(r, 'host-down').map((e) => e.host)).toEqual(['a']);
    expect(events(r, 'gave-up').map((e) => e.job)).toEqual(['q']);
    const gave = [...events(r, 'gave-up'), ...events(s.done('p', dropped()), 'gave-up')];
    expect(gave.map((e) => e.job).sort()).toEqual(['p', 'q']);
    expect(gave[0]!.reason).toMatch(/every eligible host is down \(a: Connection closed by 127.0.0.1 port 22\)/);
    expect(r.some((a) => a.type === 'emit' && a.event.event === 'gave-up' && a.joblog)).toBe(true);
    expect(events(s.add(job('z', { host: 'a' })), 'gave-up')).toHaveLength(1);
  });

  it('a host down that strands queued jobs and trips --halt gives each of them one final event', () => {
    const s = new Scheduler({ hosts: [host('a', 1), host('b', 1)], run: 'r', halt: parseHalt('now,fail=1') });
    expect(launches(['p1', 'p2', 'p3'].flatMap((id) => s.add(job(id, { host: 'a' })))).map((l) => l.job.id)).toEqual(['p1']);
    // a never answered: down at once, and p2, p3 have no host left; the first of them to give up halts
    const acts = s.done('p1', refused());
    const finals = events(acts, 'gave-up').map((e) => e.job);
    expect(finals.sort()).toEqual(['p1', 'p2', 'p3']);
    expect(s.stats()).toMatchObject({ gaveUp: 3, running: 0 });
  });

  it('a host never reached that refuses or times out is down at its first failure: one host-down, its jobs move or give up', () => {
    const s = new Scheduler({ hosts: [host('a', 1), host('b', 1), host('c', 1)], run: 'r', downAfter: 3 });
    const first = ['j1', 'j2', 'j3', 'p', 'j4'].flatMap((id) => launches(s.add(job(id, id === 'p' ? { host: 'a' } : {}))));
    expect(first.map((l) => [l.job.id, l.host.name])).toEqual([['j1', 'a'], ['j2', 'b'], ['j3', 'c']]);
    // c answers: its later failures count towards --down-after as always
    expect(launches(s.done('j3', ok())).map((l) => [l.job.id, l.host.name])).toEqual([['j4', 'c']]);
    const timedOut = { ...refused(), reason: 'ssh: connect to host 127.0.0.9 port 22: Connection timed out' };
    const acts = [...s.done('j1', refused()), ...s.done('j2', timedOut)];
    expect(events(acts, 'host-down').map((e) => [e.host, e.reason])).toEqual([
      ['a', 'cannot be reached: Connection refused'],
      ['b', 'cannot be reached: ssh: connect to host 127.0.0.9 port 22: Connection timed out'],
    ]);
    // p may only run on a: it gives up at once, as unreachable (not final for --resume)
    expect(events(acts, 'gave-up').map((e) => [e.job, e.reason?.slice(0, 11)])).toEqual([['p', 'unreachable']]);
    expect(events(acts, 'retry').map((e) => e.job)).toEqual(['j1', 'j2']);
    const later = s.done('j4', refused());
    expect(events(later, 'host-down')).toEqual([]);
    expect(events(later, 'retry').map((e) => e.job)).toEqual(['j4']);
  });

  it('with every host dead, every job gives up unreachable after one round of connection failures', () => {
    const s = new Scheduler({ hosts: [host('a', 2), host('b', 2)], run: 'r' });
    const started = Array.from({ length: 10 }, (_, i) => `j${i}`).flatMap((id) => launches(s.add(job(id))));
    const acts = started.flatMap((l) => s.done(l.job.id, refused()));
    expect(events(acts, 'host-down').map((e) => e.host).sort()).toEqual(['a', 'b']);
    expect(launches(acts)).toEqual([]);
    s.endInput();
    expect(s.stats()).toMatchObject({ gaveUp: 10, running: 0 });
    expect(s.idle).toBe(true);
    expect(s.exitCode()).toBe(1);
  });

  it('a job with inputs that were never staged gives up before it runs, naming cm-fetch --stage-in; its dependents are skipped', () => {
    const s = new Scheduler({ hosts: [host('a', 2)], run: 'r' });
    const r = s.add(job('x', { inputs: ['bench.sh'] }));
    expect(launches(r)).toEqual([]);
    const gave = events(r, 'gave-up')[0]!;
    expect(gave.reason).toMatch(/^its inputs were never staged: put cm-fetch --stage-in before cm-exec/);
    expect(r.some((a) => a.type === 'emit' && a.event.event === 'gave-up' && a.joblog)).toBe(true);
    expect(events(s.add(job('y', { deps: ['x'] })), 'skipped')[0]!.reason).toBe('dependency x gave up');
    expect(launches(s.add(job('z', { inputs: ['bench.sh'], staged: true })))).toHaveLength(1);
  });

  it('retries a failed command when asked, then reports it', () => {
    const s = new Scheduler({ hosts: [host('a', 1)], run: 'r', retries: 1 });
    s.add(job('j'));
    const r = s.done('j', ok(3));
    expect(events(r, 'retry')[0]!.reason).toBe('exit 3');
    expect(events(s.done('j', ok(3)), 'finished')[0]!.exit).toBe(3);
  });

  it('--halt now,fail=1 cancels running jobs and gives up the rest (not joblogged), exit 5', () => {
    const s = new Scheduler({ hosts: [host('a', 2)], run: 'r', halt: parseHalt('now,fail=1') });
    s.add(job('bad'));
    s.add(job('slow'));
    s.add(job('later', { deps: ['slow'] }));
    const r = s.done('bad', ok(1));
    expect(r.filter((a) => a.type === 'cancel').map((a) => (a as { job: string }).job)).toEqual(['slow']);
    const gave = r.filter((a) => a.type === 'emit' && a.event.event === 'gave-up');
    expect(gave.map((a) => (a as { event: { job: string; reason: string } }).event.job)).toEqual(['later']);
    expect(gave.every((a) => a.type === 'emit' && !a.joblog)).toBe(true);
    const end = s.done('slow', { ...ok(143), reason: 'cancelled', signal: 'SIGTERM' });
    expect(events(end, 'gave-up')[0]!.reason).toBe('halted');
    s.endInput();
    expect(s.exitCode()).toBe(5);
  });

  it('replays jobs final in the joblog instead of running them', () => {
    const done = { kind: 'event' as const, v: 1 as const, event: 'finished' as const, job: 'a', exit: 0, stdout: '7\n' };
    const s = new Scheduler({ hosts: [host('a', 1)], run: 'r', resumed: new Map([['a', done]]) });
    const r = s.add(job('a'));
    expect(launches(r)).toHaveLength(0);
    expect(events(r)).toEqual([{ ...done, replayed: true }]);
    expect(launches(s.add(job('b', { deps: ['a'] })))).toHaveLength(1);
  });

  it('collects a job a dead cm-exec left running, on its host and attempt, in its slot; a lost one runs again', () => {
    const started = (j: string, h: string, attempt: number) =>
      ({ kind: 'event', v: 1, event: 'started', job: j, task: j, run: 'r', host: h, attempt, spool: `.cm/spool/r/${j}.${attempt}` }) as const;
    const s = new Scheduler({ hosts: [host('a', 1), host('b', 1)], run: 'r', running: new Map([['x', started('x', 'b', 2)], ['y', started('y', 'b', 1)]]) });
    // x gets b's only slot back, pins or deps notwithstanding; so does y (more than the slots: they already run)
    const first = [...s.add(job('x', { deps: ['gone'] })), ...s.add(job('y'))];
    expect(launches(first).map((l) => [l.job.id, l.host.name, l.attempt, l.collect])).toEqual([
      ['x', 'b', 2, '.cm/spool/r/x.2'],
      ['y', 'b', 1, '.cm/spool/r/y.1'],
    ]);
    expect(events(first, 'started').map((e) => e.reattached)).toEqual([true, true]);
    // a new job waits for a: b is over-full until its collected jobs end
    expect(launches(s.add(job('z'))).map((l) => l.host.name)).toEqual(['a']);
    const fin = events(s.done('x', ok()), 'finished');
    expect(fin.map((e) => [e.job, e.host, e.attempt, e.reattached])).toEqual([['x', 'b', 2, true]]);
    // y was lost: a retry (no host failure), then a fresh attempt that is no collection
    const lost = s.done('y', { ...ok(), ran: false, exit: null, lost: true, reason: 'lost on b: its loop on the host is gone' });
    expect(events(lost, 'retry').map((e) => e.reason)).toEqual(['lost on b: its loop on the host is gone']);
    expect(events(lost, 'host-down')).toEqual([]);
    const again = launches(lost);
    expect(again.map((l) => [l.job.id, l.attempt, l.collect])).toEqual([['y', 2, undefined]]);
    expect(events(s.done('y', ok()), 'finished')[0]!.reattached).toBeUndefined();
  });

  it('pins: a job runs only on hosts its pin selects; an unknown pin gives up', () => {
    const s = new Scheduler({ hosts: [host('a', 4), host('b', 4, ['gpu'])], run: 'r' });
    expect(launches(s.add(job('g', { host: '@gpu' })))[0]!.host.name).toBe('b');
    expect(launches(s.add(job('n', { host: 'a' })))[0]!.host.name).toBe('a');
    expect(events(s.add(job('x', { host: 'nope' })), 'gave-up')[0]!.reason).toMatch(/names no selected host/);
  });

  it('copies workdir, outputs, result, sweep, index, task and run into finished; outputs and a result file into started', () => {
    const s = new Scheduler({ hosts: [host('a', 2)], run: 'r1' });
    const started = events(s.add(job('j', { outputs: ['o.txt'], result: 'o.txt', sweep: 'sw', index: 3, task: 't' })), 'started')[0]!;
    expect(started).toMatchObject({ outputs: ['o.txt'], result: 'o.txt' });
    // a job that leaves nothing to fetch says nothing of it
    const plain = events(s.add(job('k', { result: 'stdout' })), 'started')[0]!;
    expect([plain.outputs, plain.result]).toEqual([undefined, undefined]);
    const ev = events(s.done('j', ok()), 'finished')[0]!;
    expect(ev).toMatchObject({ workdir: '.cm/runs/r1/j', outputs: ['o.txt'], result: 'o.txt', sweep: 'sw', index: 3, task: 't', run: 'r1', duration: 1 });
  });
});

describe('parseHalt', () => {
  it('reads GNU parallel spellings and refuses others', () => {
    expect(parseHalt('soon,fail=10%')).toEqual({ when: 'soon', fail: 10, percent: true });
    expect(parseHalt('never')).toBeUndefined();
    expect(() => parseHalt('later,fail=1')).toThrow(/--halt/);
  });
});
