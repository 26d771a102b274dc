import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { golden, runInMemory } from '@cm/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const here = fileURLToPath(new URL('.', import.meta.url));
const job = (id: string, command: string, deps: string[] = []) => JSON.stringify({ kind: 'job', v: 1, id, task: id, command, deps });

// every scratch folder of the file, removed at its end
const scratch = mkdtempSync(join(tmpdir(), 'cm-exec-spec-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** cm-exec on the embedded inventory (this machine, no ssh) in a scratch folder that is also HOME. */
function exec(argv: string[], stdin: string) {
  const cwd = mkdtempSync(join(scratch, 'run-'));
  return runInMemory(USAGE, toArgs, run, argv, { cwd, stdin, env: { PATH: process.env.PATH, HOME: cwd } });
}

/**
 * The events without what differs from run to run (times, how many ran at once), in a stable order:
 * jobs that run side by side may end in either order.
 */
function stable(ndjson: string): string {
  const order = ['queued', 'started', 'retry', 'finished', 'gave-up', 'skipped'];
  return `${ndjson
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .map(({ start, end, duration, running, ...rest }) => rest)
    .sort((a, b) => String(a.job).localeCompare(String(b.job)) || order.indexOf(String(a.event)) - order.indexOf(String(b.event)))
    .map((r) => JSON.stringify(r))
    .join('\n')}\n`;
}

describe('cm-exec run()', () => {
  it('runs jobs after their deps, on the local host, with one final event each; other records pass through', async () => {
    const stdin = [job('a', 'echo 1'), job('b', 'echo 2 >&2; exit 3'), job('c', 'echo never', ['b']), job('d', 'echo $CM_JOB', ['a']), '{"kind":"note","v":1}', ''].join('\n');
    const r = await exec(['--run', 'spec', '-q'], stdin);
    expect(r.code).toBe(1);
    expect(stable(r.stdout)).toBe(golden(`${here}/golden/local-run.ndjson`, stable(r.stdout)));
  });

  it('--dry-run prints the jobs and their hosts on stderr and no event', async () => {
    const r = await exec(['--dry-run', '--run', 'spec'], `${job('a', 'echo 1')}\n`);
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(r.stderr).toMatch(/^JOB +RUN +HOSTS +DEPS +COMMAND\na +spec +localhost +- +echo 1\n$/);
  });

  it('refuses an option that has no meaning on the engine (exit 2) before reading anything', async () => {
    await expect(exec(['--engine', 'slurm', '--hosts', 'x'], '')).rejects.toMatchObject({ code: 2, message: expect.stringMatching(/^--hosts has no meaning with --engine slurm/) });
    await expect(exec(['--qos', 'high'], '')).rejects.toMatchObject({ code: 2 });
  });

  it('--retry-failed needs --joblog and is not given with --resume (exit 2)', async () => {
    await expect(exec(['--retry-failed'], '')).rejects.toMatchObject({ code: 2, message: '--retry-failed needs --joblog FILE' });
    await expect(exec(['--retry-failed', '--resume', '--joblog', 'j'], '')).rejects.toMatchObject({ code: 2 });
  });

  it('--retry-failed runs again the job that failed and replays the one that succeeded', async () => {
    const cwd = mkdtempSync(join(scratch, 'run-'));
    const env = { PATH: process.env.PATH, HOME: cwd };
    const stdin = `${job('a', 'echo a')}\n${job('b', `test -f ${cwd}/fixed || exit 4`)}\n`;
    const first = await runInMemory(USAGE, toArgs, run, ['--joblog', 'log', '-q'], { cwd, stdin, env });
    expect(first.code).toBe(1);
    writeFileSync(join(cwd, 'fixed'), '');
    const again = await runInMemory(USAGE, toArgs, run, ['--joblog', 'log', '--retry-failed'], { cwd, stdin, env });
    expect(again).toMatchObject({ code: 0, stderr: '' });
    const finals = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'finished');
    expect(finals.map((e) => [e.job, e.exit, e.replayed ?? false]).sort()).toEqual([['a', 0, true], ['b', 0, false]]);
  });
});
