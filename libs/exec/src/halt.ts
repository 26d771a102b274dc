import { CmError, ExitCode } from '@cm/protocol';

/** A GNU parallel style --halt policy: when `fail` jobs (or percent of jobs) failed, stop now or soon. */
export interface HaltPolicy {
  /** now: cancel running jobs; soon: let running jobs end, start no new ones */
  when: 'now' | 'soon';
  fail: number;
  percent: boolean;
}

/** Parses `never`, `now,fail=1`, `soon,fail=10%` (GNU parallel's spelling). */
export function parseHalt(text: string | undefined): HaltPolicy | undefined {
  if (text === undefined || text === 'never') return undefined;
  const m = /^(now|soon),fail=(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  if (!m) throw new CmError(`--halt must be never, now,fail=N, soon,fail=N or ...,fail=N%; got ${JSON.stringify(text)}`, ExitCode.USAGE);
  const fail = Number(m[2]);
  if (fail <= 0 || (m[3] === '%' && fail > 100)) throw new CmError(`--halt fail= must be > 0 (and <= 100%), got ${m[2]}${m[3]}`, ExitCode.USAGE);
  return { when: m[1] as 'now' | 'soon', fail, percent: m[3] === '%' };
}

/**
 * True when the failures reach the policy. A percentage is of the jobs seen so far (the input is a
 * stream; its total is unknown until EOF), and needs at least one failure.
 */
export function haltReached(policy: HaltPolicy | undefined, failed: number, seen: number): boolean {
  if (!policy || failed === 0) return false;
  if (!policy.percent) return failed >= policy.fail;
  return (failed * 100) / Math.max(seen, 1) >= policy.fail;
}
