import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { golden, parseUsage, runInMemory, type DocoptArgs } from '@cm/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const here = fileURLToPath(new URL('.', import.meta.url));
// the scratch folder of the file, removed at its end
const cwd = mkdtempSync(join(tmpdir(), 'cm-reduce-spec-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));
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

  const sweep = (byRecord?: string[]) =>
    [
      JSON.stringify({ kind: 'reduce', v: 1, id: 'sum-1', op: 'sum', inputs: [], sweeps: { b: 6 }, final: true, ...(byRecord ? { by: byRecord } : {}) }),
      ...[
        ['20', '1', '20'],
        ['3', '1', '3'],
        ['20', '2', '40'],
        ['3', '2', '6'],
        ['20', '3', '60'],
        ['3', '3', '9'],
      ].map(([size, rep, out], index) => fin(`b.${index}`, `${out}\n`, { sweep: 'b', index, params: { size, rep } })),
      '',
    ].join('\n');

  it('--by and --op lists: one labelled value per group and op, after the records passed through', async () => {
    const r = await reduce(['--by', 'size', '--op', 'mean,p90'], sweep());
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const values = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.kind === 'value');
    expect(values.map((v) => [v.id, v.group, v.op, v.value])).toEqual([
      ['sum-1', { size: '20' }, 'mean', 40],
      ['sum-1', { size: '20' }, 'p90', 56],
      ['sum-1', { size: '3' }, 'mean', 6],
      ['sum-1', { size: '3' }, 'p90', 8.4],
    ]);
    expect(r.stdout.split('\n').filter((l) => l.includes('"kind":"event"'))).toHaveLength(6);
  });

  it("a reduce record's by groups too; --table prints only the table, sizes in numeric order", async () => {
    const r = await reduce(['--table', '--op', 'mean,p90,stddev'], sweep(['size']));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(golden(`${here}/golden/by-size-table.txt`, r.stdout));
  });

  it('on a terminal: the table, unless --json', async () => {
    const onTerminal = async (argv: string[]) => {
      const stdin = new PassThrough();
      stdin.end(sweep(['size']));
      const stdout = Object.assign(new PassThrough(), { isTTY: true });
      const chunks: Buffer[] = [];
      stdout.on('data', (c: Buffer) => chunks.push(c));
      const args = toArgs(parseUsage(USAGE, argv) as DocoptArgs);
      const code = await run(args, { stdin, stdout, stderr: new PassThrough(), env: {}, cwd, signal: new AbortController().signal });
      return { code, stdout: Buffer.concat(chunks).toString('utf8') };
    };
    const table = await onTerminal(['--op', 'mean']);
    expect(table).toEqual({ code: 0, stdout: 'ID     SIZE  MEAN\nsum-1  3     6\nsum-1  20    40\n' });
    const records = await onTerminal(['--op', 'mean', '--json']);
    expect(records.stdout.split('\n').filter((l) => l.includes('"kind":"value"')).map((l) => JSON.parse(l).value)).toEqual([40, 6]);
  });

  it('refuses a bad op list or --by on the command line (exit 2)', async () => {
    await expect(reduce(['--op', 'mean,p100'], '')).rejects.toMatchObject({ code: 2, message: expect.stringContaining('"p100" is not an op') });
    await expect(reduce(['--by', 'size,,rep'], '')).rejects.toMatchObject({ code: 2 });
  });
});
