import { describe, expect, it } from 'vitest';
import type { EventRecord } from '@cm/protocol';
import { replayable } from './joblog';

const ev = (job: string, event: EventRecord['event'], extra: Partial<EventRecord> = {}): EventRecord => ({ kind: 'event', v: 1, event, job, ...extra });

describe('replayable', () => {
  const log = new Map(
    [
      ev('ok', 'finished', { exit: 0 }),
      ev('bad', 'finished', { exit: 2 }),
      ev('slow', 'gave-up', { reason: 'timeout after 5s' }),
      ev('dead', 'gave-up', { reason: 'unreachable: every eligible host is down (th1: Connection refused)' }),
      ev('cut', 'gave-up', { reason: 'interrupted by SIGINT' }),
      ev('raw', 'gave-up', { reason: 'its inputs were never staged: put cm-fetch --stage-in before cm-exec' }),
      ev('after', 'skipped', { reason: 'dependency bad failed' }),
    ].map((e) => [e.job!, e]),
  );

  it('--resume keeps what ended on its own; unreachable, interrupted, unstaged and skipped jobs run again', () => {
    expect([...replayable(log, false).keys()]).toEqual(['ok', 'bad', 'slow']);
  });

  it('--retry-failed keeps only the jobs that succeeded', () => {
    expect([...replayable(log, true).keys()]).toEqual(['ok']);
  });
});
