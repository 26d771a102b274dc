import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runStatus, statusText } from './status';

// every scratch folder of the file, removed at its end
const scratch = mkdtempSync(join(tmpdir(), 'cm-status-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('runStatus', () => {
  it('tells the jobs started and not ended from those that ended, by their last joblog line', () => {
    const path = join(mkdtempSync(join(scratch, 'run-')), 'log');
    const line = (o: object) => `${JSON.stringify({ kind: 'event', v: 1, task: 't', run: 'r', ...o })}\n`;
    writeFileSync(
      path,
      line({ event: 'started', job: 'a', host: 'th2', attempt: 1, start: '2026-01-01T00:00:00.000Z', spool: '.cm/spool/r/a.1' }) +
        line({ event: 'started', job: 'b', host: 'th1', attempt: 1, start: '2026-01-01T00:00:00.000Z', spool: '.cm/spool/r/b.1' }) +
        line({ event: 'finished', job: 'b', host: 'th1', attempt: 1, exit: 0 }) +
        line({ event: 'started', job: 'c', host: 'th1', attempt: 2, start: '2026-01-01T00:59:00.000Z', spool: '.cm/spool/r/c.2' }) +
        line({ event: 'gave-up', job: 'd', reason: 'timeout after 1s' }),
    );
    const st = runStatus(path);
    expect(st.running.map((e) => [e.host, e.job])).toEqual([
      ['th1', 'c'],
      ['th2', 'a'],
    ]);
    expect(statusText(st, new Date('2026-01-01T01:00:00.000Z'))).toBe(
      'HOST  JOB  ATTEMPT  RUNNING FOR\nth1   c    2        60s\nth2   a    1        60m\n2 running on 2 hosts; ended: 1 ok, 0 failed, 1 gave up, 0 skipped\n',
    );
  });
});
