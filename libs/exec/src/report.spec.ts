import { PassThrough } from 'node:stream';
import { RecordWriter, type EventRecord } from '@cm/protocol';
import { describe, expect, it } from 'vitest';
import { describeFailure, lastLines, resumeCommand, RunReport, StatusLine, taggedLines } from './report';
import type { SchedulerStats } from './scheduler';

const ev = (extra: Partial<EventRecord>): EventRecord => ({ kind: 'event', v: 1, event: 'finished', job: 'bench.3', host: 'th1', ...extra });

/** A stream that keeps what is written to it. */
function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
}

const stats = (s: Partial<SchedulerStats> = {}): SchedulerStats => ({ seen: 3, running: 0, ok: 2, failed: 1, gaveUp: 0, skipped: 0, hosts: [], ...s });

describe('taggedLines, lastLines, describeFailure', () => {
  it('tags every line with job and host as parallel --tag does', () => {
    expect(taggedLines(ev({}), 'a\nb\n')).toEqual(['bench.3 th1\ta', 'bench.3 th1\tb']);
    expect(taggedLines(ev({ host: undefined }), 'x')).toEqual(['bench.3\tx']);
    expect(taggedLines(ev({}), '')).toEqual([]);
  });

  it('describes a failed job by host, exit code or reason, and at most three last lines of stderr', () => {
    expect(lastLines('1\n2\n\n3\n4\r\n')).toEqual(['2', '3', '4']);
    expect(describeFailure(ev({ exit: 2, stderr: 'x\ny\n' }))).toEqual(['bench.3 failed on th1: exit 2', '  | x', '  | y']);
    expect(describeFailure(ev({ event: 'gave-up', host: undefined, reason: 'timeout after 5s' }))).toEqual(['bench.3: gave up: timeout after 5s']);
  });
});

describe('resumeCommand', () => {
  it('repeats the command line with --resume, quoting only what needs it', () => {
    expect(resumeCommand(['-H', '@rack1', '--joblog', 'my run.log'])).toBe("cm-exec -H @rack1 --joblog 'my run.log' --resume");
    expect(resumeCommand(['--joblog', 'j', '--retry-failed'])).toBe('cm-exec --joblog j --resume');
  });
});

describe('StatusLine', () => {
  it('clears the progress line before a message and draws it again after', () => {
    const err = sink();
    const s = new StatusLine(err.stream);
    s.start(() => 'P', 60_000);
    s.line('first');
    s.line('second');
    s.clear();
    s.stop();
    // each message starts on a cleared line; the progress is redrawn after it, never before a message on its line
    expect(err.text()).toBe('first\n\r\x1b[KP\r\x1b[Ksecond\n\r\x1b[KP\r\x1b[K');
  });
});

describe('RunReport', () => {
  const make = (o: { records: boolean; tty: boolean; quiet?: boolean; joblog?: string }, st = stats()) => {
    const out = sink();
    const err = sink();
    const r = new RunReport({ writer: new RecordWriter(out.stream), stderr: err.stream, sameTerminal: o.tty, stats: () => st, commandLine: o.joblog ? ['--joblog', o.joblog] : undefined, ...o });
    return { r, out, err };
  };

  it('on a terminal: job output tagged on stdout and stderr, records dropped, a summary with a line per host', () => {
    const { r, out, err } = make({ records: false, tty: true });
    r.event(ev({ event: 'started' }));
    r.event(ev({ exit: 0, stdout: '8\n', duration: 1.5 }));
    r.event(ev({ job: 'bench.4', host: 'th2', exit: 3, stdout: '', stderr: 'oops\n', duration: 0.5 }));
    r.passThrough('{"kind":"reduce"}');
    r.finish();
    expect(out.text()).toBe('bench.3 th1\t8\n');
    const lines = err.text().split('\n');
    expect(lines).toContain('bench.4 th2\toops');
    expect(lines).toContain('cm-exec: bench.4 failed on th2: exit 3');
    expect(lines).toContain('cm-exec:   | oops');
    expect(lines.some((l) => /^cm-exec: 2 ok, 1 failed, 0 gave up, 0 skipped \(of 3 jobs\) in [\d.]+s$/.test(l))).toBe(true);
    expect(lines).toContain('cm-exec:   th1: 1 ok, 0 failed, busy 1.5s');
    expect(lines).toContain('cm-exec:   th2: 0 ok, 1 failed, busy 0.5s');
  });

  it('in a pipe: records on stdout; stderr only the failed jobs and the counts, nothing when all is well', () => {
    const bad = make({ records: true, tty: false });
    bad.r.event(ev({ exit: 3, stderr: 'oops\n' }));
    bad.r.passThrough('{"kind":"reduce"}');
    bad.r.finish();
    expect(bad.out.text().split('\n').filter(Boolean).map((l) => JSON.parse(l).kind)).toEqual(['event', 'reduce']);
    expect(bad.err.text()).toBe('cm-exec: bench.3 failed on th1: exit 3\ncm-exec:   | oops\ncm-exec: 2 ok, 1 failed, 0 gave up, 0 skipped (of 3 jobs)\n');
    const good = make({ records: true, tty: false }, stats({ ok: 3, failed: 0 }));
    good.r.event(ev({ exit: 0 }));
    good.r.finish();
    expect(good.err.text()).toBe('');
    const quiet = make({ records: true, tty: true, quiet: true });
    quiet.r.event(ev({ exit: 3, stderr: 'oops\n' }));
    quiet.r.finish();
    expect(quiet.err.text()).toBe('');
  });

  it('after a signal: the jobs killed with their hosts, how many never started, the command that resumes', () => {
    const { r, err } = make({ records: true, tty: false, joblog: 'run.log' });
    r.stopping('interrupted by SIGINT');
    r.event(ev({ event: 'gave-up', reason: 'interrupted by SIGINT' }));
    r.event(ev({ event: 'gave-up', job: 'bench.9', host: undefined, reason: 'interrupted by SIGINT' }));
    r.finish({ signalled: true });
    expect(err.text()).toContain('cm-exec: interrupted by SIGINT: killed 1 running job (bench.3 on th1); 1 not started\n');
    expect(err.text()).toContain('cm-exec: to run what is left, give the same job records to: cm-exec --joblog run.log --resume\n');
    // stopped jobs are not failures
    expect(err.text()).not.toContain('gave up:');
    const nolog = make({ records: true, tty: false });
    nolog.r.stopping('interrupted by SIGTERM');
    nolog.r.finish({ signalled: true });
    expect(nolog.err.text()).toContain('nothing was logged: --joblog FILE makes a run resumable');
  });
});
