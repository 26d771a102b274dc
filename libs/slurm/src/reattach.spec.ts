// The pure parts of detached allocations (--reattach-within in steps and workers mode), and
// spool-step.sh itself, run here with plain sh: it needs nothing of Slurm but $SLURMD_NODENAME.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collectArgs, detachedSallocArgs, SPOOL_STEP_SCRIPT, srunArgs } from './options';
import { parseSpoolEnd, StderrLines } from './transports';

describe('detached allocation command lines', () => {
  it('salloc --no-shell: granted, then left to Slurm and the watchdog', () => {
    expect(detachedSallocArgs({ partition: 'lab' }, 'cm-r1', 3)).toEqual(['--job-name=cm-r1', '--partition=lab', '--nodes=1-3', '--exclusive', '--no-shell']);
  });

  it('a job with a spool runs under spool-step.sh; its collection overlaps the step that still runs it', () => {
    const job = { id: 'j1', command: 'echo hi', workdir: '.cm/runs/r/j1', maxOutput: 100, spool: { dir: '.cm/spool/r/j1.1' } };
    const run = srunArgs({ cpusPerTask: 2 }, '42', job, 'sl2');
    expect(run.slice(0, 8)).toEqual(['--jobid=42', '--exclusive', '--ntasks=1', '--nodes=1', '--nodelist=sl2', '--cpus-per-task=2', '--job-name=j1', '--quiet']);
    expect(run.slice(8)).toEqual(['sh', '-c', SPOOL_STEP_SCRIPT, 'cm-slurm', 'run', '.cm/spool/r/j1.1', '100', '.cm/runs/r/j1', 'echo hi']);
    const collect = collectArgs({ cpusPerTask: 2 }, '42', job, 'sl2');
    expect(collect.slice(0, 8)).toEqual(['--jobid=42', '--overlap', '--ntasks=1', '--nodes=1', '--nodelist=sl2', '--cpus-per-task=1', '--job-name=j1-collect', '--quiet']);
    expect(collect.slice(8)).toEqual(['sh', '-c', SPOOL_STEP_SCRIPT, 'cm-slurm', 'collect', '.cm/spool/r/j1.1']);
  });

  it('reads the end line', () => {
    expect(parseSpoolEnd('cm-slurm-ended 1000 2500 3 20 4 10 4')).toEqual({ start: 1000, end: 2500, exit: 3, outBytes: 20, errBytes: 4, outKept: 10, errKept: 4 });
    expect(parseSpoolEnd('cm-slurm-ended 1000 2500')).toBeUndefined();
  });
});

describe('StderrLines after the end line', () => {
  it('passes the replayed stderr on whole, a last line without a newline included', () => {
    const got: string[] = [];
    const lines = new StderrLines('cm-slurm-started', (c) => got.push(c.toString()));
    lines.onLine = (t) => {
      if (t.startsWith('cm-slurm-ended ')) {
        lines.raw = true;
        return true;
      }
      return false;
    };
    lines.push(Buffer.from('cm-slurm-started n1\ncm-slurm-ended 1 2 0 5 5 5 5\nab'));
    lines.push(Buffer.from('c\nde'));
    expect(got.join('')).toBe('abc\nde');
  });
});

describe('spool-step.sh', () => {
  let home: string | undefined;
  afterEach(() => {
    if (home) rmSync(home, { recursive: true, force: true });
  });
  const step = (args: string[], input: string): { stdout: string; stderr: string } => {
    const r = spawnSync('sh', ['-c', SPOOL_STEP_SCRIPT, 'cm-slurm', ...args], { env: { PATH: process.env.PATH, HOME: home, SLURMD_NODENAME: 'n1' }, input, encoding: 'utf8' });
    return { stdout: r.stdout, stderr: r.stderr };
  };

  it('keeps a job whose controller is gone; a collection then reads it and removes it', () => {
    home = mkdtempSync(join(tmpdir(), 'cm-spool-'));
    // stdin ends at once: as when srun, or the cm-exec behind it, died
    const first = step(['run', '.cm/spool/r/j.1', '4', '.cm/runs/r/j', 'echo hello; echo oops >&2; exit 3'], '');
    expect(first.stdout).toBe('');
    expect(first.stderr).toMatch(/^cm-slurm-started n1\ncm-slurm-ended \d+ \d+ 3 6 5 4 4\n$/);
    expect(readdirSync(join(home, '.cm/spool/r/j.1')).sort()).toEqual(['end', 'errbytes', 'exit', 'outbytes', 'pid', 'start', 'stderr', 'stdout']);
    const again = step(['collect', '.cm/spool/r/j.1'], 'go\ngone\n');
    expect(again.stdout).toBe('hell');
    expect(again.stderr).toMatch(/^cm-slurm-started n1\ncm-slurm-ended \d+ \d+ 3 6 5 4 4\noops$/);
    expect(existsSync(join(home, '.cm/spool'))).toBe(false);
    expect(step(['collect', '.cm/spool/r/j.1'], '').stderr).toBe('cm-slurm-started n1\ncm-slurm-lost no results kept\n');
  });

  it('a live controller gets the streams and the spool goes', () => {
    home = mkdtempSync(join(tmpdir(), 'cm-spool-'));
    const r = step(['run', '.cm/spool/r/j.1', '100', '.cm/runs/r/j', 'pwd; kill -TERM $$'], 'go\ngone\n');
    expect(r.stdout).toBe(`${home}/.cm/runs/r/j\n`);
    expect(r.stderr).toMatch(/^cm-slurm-started n1\ncm-slurm-ended \d+ \d+ 143 /);
    expect(existsSync(join(home, '.cm/spool'))).toBe(false);
  });

  it('a job whose step was ended before it finished is lost', () => {
    home = mkdtempSync(join(tmpdir(), 'cm-spool-'));
    execFileSync('sh', ['-c', 'mkdir -p .cm/spool/r/j.1 && echo 999999999 >.cm/spool/r/j.1/pid && date +%s000 >.cm/spool/r/j.1/start'], { cwd: home });
    expect(step(['collect', '.cm/spool/r/j.1'], '').stderr).toBe('cm-slurm-started n1\ncm-slurm-lost the job was ended before it finished\n');
    expect(existsSync(join(home, '.cm/spool'))).toBe(false);
  });
});
