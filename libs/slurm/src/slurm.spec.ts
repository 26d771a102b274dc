import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobRecord } from '@cm/protocol';
import { Capture, DepTracker, dropSrunExitLine, splitMarker } from './common';
import { checkToken, sallocArgs, sbatchArgs, slurmTime, srunArgs } from './options';
import { parseSqueue } from './batch';
import { parseSlurmTime, preflight, slurmMessage } from './proc';

const job = (id: string, deps: string[] = [], after?: string[]): JobRecord => ({
  kind: 'job',
  v: 1,
  id,
  task: id,
  command: `echo ${id}`,
  deps,
  ...(after ? { after } : {}),
});

describe('slurmTime', () => {
  it('rounds up to whole minutes, at least one', () => {
    expect(slurmTime(0.5)).toBe('00:01:00');
    expect(slurmTime(60)).toBe('00:01:00');
    expect(slurmTime(61)).toBe('00:02:00');
    expect(slurmTime(3 * 3600)).toBe('03:00:00');
    expect(slurmTime(2 * 86400 + 90)).toBe('2-00:02:00');
  });
});

describe('parseSlurmTime', () => {
  it('reads what squeue prints', () => {
    expect(parseSlurmTime('1:00')).toBe(60);
    expect(parseSlurmTime('2:03:04')).toBe(7384);
    expect(parseSlurmTime('1-00:00:00')).toBe(86400);
    expect(parseSlurmTime('UNLIMITED')).toBeUndefined();
  });
});

describe('command lines', () => {
  it('puts partition, account and qos on salloc and sbatch', () => {
    const opts = { partition: 'lab', account: 'proj1', qos: 'normal' };
    expect(sallocArgs(opts, 'cm-r1', 3)).toEqual([
      '--no-shell',
      '--job-name=cm-r1',
      '--partition=lab',
      '--account=proj1',
      '--qos=normal',
      '--nodes=1-3',
      '--exclusive',
    ]);
    const s = sbatchArgs(opts, { name: 'a', script: '/s/b.sh', output: '/s/%j.out', error: '/s/%j.err', dependency: 'afterok:4:5_1', timeout: 90, array: 10 });
    expect(s).toContain('--partition=lab');
    expect(s).toContain('--dependency=afterok:4:5_1');
    expect(s).toContain('--array=0-9');
    expect(s).toContain('--time=00:02:00');
    expect(s).toContain('--requeue');
    expect(s.at(-1)).toBe('/s/b.sh');
  });
  it('maps slots to cpus per task and timeout to the step time limit', () => {
    const a = srunArgs({ cpusPerTask: 2 }, '17', { id: 'x.3', command: 'echo "$i"', timeout: 30 }, '.cm/runs/r/x.3');
    expect(a).toContain('--jobid=17');
    expect(a).toContain('--cpus-per-task=2');
    expect(a).toContain('--time=00:01:00');
    // the command and workdir travel as arguments, never spliced into shell text
    expect(a.slice(-2)).toEqual(['.cm/runs/r/x.3', 'echo "$i"']);
  });
  it('refuses names that would read as options or lists', () => {
    expect(() => checkToken('partition', '-x')).toThrow(/not a valid Slurm name/);
    expect(() => checkToken('partition', 'a,b')).toThrow();
    expect(checkToken('qos', 'high_prio')).toBe('high_prio');
  });
});

describe('DepTracker', () => {
  it('releases a job when its deps finished and skips dependants of a failure, transitively', () => {
    const t = new DepTracker();
    expect(t.add(job('a')).ready.map((j) => j.id)).toEqual(['a']);
    expect(t.add(job('b')).ready.map((j) => j.id)).toEqual(['b']);
    expect(t.add(job('c', ['a', 'b'])).ready).toEqual([]);
    expect(t.add(job('d', ['c'])).ready).toEqual([]);
    expect(t.add(job('e', [], ['c'])).ready).toEqual([]);
    expect(t.done('a', 'ok').ready).toEqual([]);
    const r = t.done('b', 'failed');
    expect(r.skipped.map((s) => [s.job.id, s.dep])).toEqual([
      ['c', 'b'],
      ['d', 'c'],
    ]);
    // `after` only needs the job to have ended, whatever its state
    expect(r.ready.map((j) => j.id)).toEqual(['e']);
  });
  it('gives back jobs whose deps never came in the stream', () => {
    const t = new DepTracker();
    t.add(job('a', ['ghost']));
    t.add(job('b', ['a']));
    expect(t.takeStranded().map((s) => [s.job.id, s.missing])).toEqual([['a', 'ghost']]);
    expect(t.done('a', 'failed').skipped.map((s) => s.job.id)).toEqual(['b']);
  });
});

describe('Capture', () => {
  it('keeps the cap in memory and everything in the log once over it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cm-slurm-'));
    const c = new Capture(4, () => join(dir, 'x.out'));
    c.write(Buffer.from('abc'));
    c.write(Buffer.from('defg'));
    await c.close();
    expect(c.text()).toBe('abcd');
    expect(c.bytes).toBe(7);
    expect(c.truncated).toBe(true);
    expect(readFileSync(c.log!, 'utf8')).toBe('abcdefg');
  });
});

describe('parsing Slurm output', () => {
  it('reads squeue rows, arrays expanded', () => {
    const rows = parseSqueue('4_0   |COMPLETED  |sl1   |None  |0   |\n4_1|FAILED|sl2|NonZeroExitCode|512|\n\n');
    expect(rows).toEqual([
      { key: '4_0', state: 'COMPLETED', nodes: 'sl1', reason: 'None', exit: 0 },
      { key: '4_1', state: 'FAILED', nodes: 'sl2', reason: 'NonZeroExitCode', exit: 512 },
    ]);
  });
  it('finds the start marker and the node in stderr', () => {
    expect(splitMarker('warn\ncm-slurm-started sl2\noops\n', 'cm-slurm-started')).toEqual({ host: 'sl2', before: 'warn\n', after: 'oops\n' });
    expect(splitMarker('srun: error: x\n', 'cm-slurm-started').host).toBeUndefined();
  });
  it("keeps Slurm's words for a rejected submission", () => {
    expect(slurmMessage('sbatch: error: invalid partition specified: nosuch\nsbatch: error: Batch job submission failed: Invalid partition name specified\n')).toBe(
      'Batch job submission failed: Invalid partition name specified',
    );
    expect(dropSrunExitLine('srun: error: sl1: task 0: Exited with exit code 3\nreal\n')).toBe('real\n');
  });
});

describe('preflight', () => {
  it('is an environment error (exit 4) when Slurm is not installed', async () => {
    await expect(preflight({ PATH: '/nonexistent' })).rejects.toMatchObject({ code: 4, message: expect.stringMatching(/Slurm is not installed/) });
  });
});
