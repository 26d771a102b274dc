import { describe, expect, it } from 'vitest';
import { allocationHosts } from './allocation';
import { StderrLines } from './transports';
import { checkToken, sallocArgs, sbatchArgs, slurmTime, srunArgs } from './options';
import { parseSqueue } from './batch';
import { parseSlurmTime, preflight, slurmMessage } from './proc';

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
      '--job-name=cm-r1',
      '--partition=lab',
      '--account=proj1',
      '--qos=normal',
      '--nodes=1-3',
      '--exclusive',
      'sh',
      '-c',
      'echo "cm-allocation $SLURM_JOB_ID"; exec cat >/dev/null',
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
    const a = srunArgs({ cpusPerTask: 2 }, '17', { id: 'x.3', command: 'echo "$i"', timeout: 30, workdir: '.cm/runs/r/x.3' }, 'sl2');
    expect(a).toContain('--jobid=17');
    // the node the Scheduler chose for it
    expect(a).toContain('--nodelist=sl2');
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

describe('parsing Slurm output', () => {
  it('reads squeue rows, arrays expanded', () => {
    const rows = parseSqueue('4_0   |COMPLETED  |sl1   |None  |0   |\n4_1|FAILED|sl2|NonZeroExitCode|512|\n\n');
    expect(rows).toEqual([
      { key: '4_0', state: 'COMPLETED', nodes: 'sl1', reason: 'None', exit: 0 },
      { key: '4_1', state: 'FAILED', nodes: 'sl2', reason: 'NonZeroExitCode', exit: 512 },
    ]);
  });
  it('reads the start and end times a reattached job takes from Slurm, when squeue gives them', () => {
    const rows = parseSqueue('7_2 |COMPLETED |sl3 |None |0 |2026-12-04T21:45:52 |2026-12-04T21:45:58 |\n7_3|RUNNING|sl1|None|0|2026-12-04T21:45:53|N/A|\n');
    expect(rows).toEqual([
      { key: '7_2', state: 'COMPLETED', nodes: 'sl3', reason: 'None', exit: 0, start: '2026-12-04T21:45:52', end: '2026-12-04T21:45:58' },
      { key: '7_3', state: 'RUNNING', nodes: 'sl1', reason: 'None', exit: 0, start: '2026-12-04T21:45:53' },
    ]);
  });
  it("passes a step's stderr on after the start line, keeps Slurm's lines apart and drops srun's exit line", () => {
    const got: Buffer[] = [];
    const l = new StderrLines('cm-slurm-started', (c) => got.push(c));
    l.push(Buffer.from('srun: warn\ncm-slurm-sta'));
    expect(l.started).toBe(false);
    l.push(Buffer.from('rted sl2\noops\nsrun: error: sl2: task 0: Exited with exit code 3\nslurmstepd: error: *** STEP 4.1 ON sl2 CANCELLED AT x DUE TO TIME LIMIT ***\npart'));
    l.end();
    expect(l.started).toBe(true);
    expect(l.head).toBe('srun: warn\n');
    expect(Buffer.concat(got).toString()).toBe('oops\nslurmstepd: error: *** STEP 4.1 ON sl2 CANCELLED AT x DUE TO TIME LIMIT ***\npart');
    expect(l.slurmLines).toEqual(['srun: error: sl2: task 0: Exited with exit code 3', 'slurmstepd: error: *** STEP 4.1 ON sl2 CANCELLED AT x DUE TO TIME LIMIT ***']);
    const never = new StderrLines('cm-slurm-started', () => undefined);
    never.push(Buffer.from('srun: error: Unable to create step for job 4: Invalid node name specified\n'));
    expect(never.started).toBe(false);
  });
  it("keeps Slurm's words for a rejected submission", () => {
    expect(slurmMessage('sbatch: error: invalid partition specified: nosuch\nsbatch: error: Batch job submission failed: Invalid partition name specified\n')).toBe(
      'Batch job submission failed: Invalid partition name specified',
    );
  });
});

describe('allocationHosts', () => {
  it("makes the allocation's nodes the hosts, a node's slots its CPUs over --cpus", () => {
    const a = { id: '9', nodes: [{ name: 'sl1', cpus: 4 }, { name: 'sl2', cpus: 1 }], limitText: 'UNLIMITED' };
    expect(allocationHosts(a, 2).map((h) => [h.name, h.address, h.slots, h.tags])).toEqual([
      ['sl1', 'sl1', 2, ['slurm']],
      ['sl2', 'sl2', 1, ['slurm']],
    ]);
  });
});

describe('preflight', () => {
  it('is an environment error (exit 4) when Slurm is not installed', async () => {
    await expect(preflight({ PATH: '/nonexistent' })).rejects.toMatchObject({ code: 4, message: expect.stringMatching(/Slurm is not installed/) });
  });
});
