import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { golden, runInMemory } from '@cm/cli';
import { describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const here = fileURLToPath(new URL('.', import.meta.url));
const cwd = mkdtempSync(join(tmpdir(), 'cm-reduce-spec-'));
const fin = (job: string, stdout: string, extra: object = {}) =>
  JSON.stringify({ kind: 'event', v: 1, event: 'finished', job, task: job, run: 'r', host: 'h', exit: 0, stdout, ...extra });
const reduce = (argv: string[], stdin: string) => runInMemory(USAGE, toArgs, run, argv, { cwd, stdin });

describe('cm-reduce run()', () => {
  it('folds each reduce record as its inputs arrive, passing every other record through in order', async () => {
    const stdin = [
      JSON.stringify({ kind: 'reduce', v: 1, id: 'sum-1', op: 'sum', inputs: ['a', 'b', 'c'], final: true }),
      JSON.stringify({ kind: 'note', v: 1, text: 'passes through' }),
      fin('a', '1\n'),
      fin('b', '2\n'),
      fin('c', '10000000000000000001\n'),
      '',
    ].join('\n');
    const r = await reduce(['--partial'], stdin);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(golden(`${here}/golden/partial-sum.ndjson`, r.stdout));
  });

  it('fails (exit 1) and names the job when an input did not finish with exit 0', async () => {
    const stdin = `${JSON.stringify({ kind: 'reduce', v: 1, id: 'sum-1', op: 'sum', inputs: ['a', 'b'], final: true })}\n${fin('a', '1\n')}\n${fin('b', '', { exit: 2 })}\n`;
    const r = await reduce([], stdin);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('b');
  });

  it('exits 3 naming the line of malformed input', async () => {
    await expect(reduce([], `${fin('a', '1\n')}\n{oops\n`)).rejects.toMatchObject({ code: 3, message: expect.stringMatching(/^stdin:2:/) });
  });
});
