import { fileURLToPath } from 'node:url';
import { golden, runInMemory } from '@cm/cli';
import { describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const plan = (argv: string[], stdin?: string) => runInMemory(USAGE, toArgs, run, argv, { cwd: repo, stdin });

describe('cm-plan run()', () => {
  it("turns the assignment's plan into its job and reduce records", async () => {
    const r = await plan(['-f', 'examples/assignment.cm', '--run', 'g1']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(golden(`${repo}/tools/cm-plan/src/golden/assignment.ndjson`, r.stdout));
  });

  it('expands a sweep defined on the command line', async () => {
    const r = await plan(['-d', 'sq(i=1..3)=echo $((i * i))', '+sq']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(golden(`${repo}/tools/cm-plan/src/golden/sweep.ndjson`, r.stdout));
  });

  it("plans examples/bench.cm: 150 runs with params, bench.sh from the file's folder, one sum by size", async () => {
    const r = await runInMemory(USAGE, toArgs, run, ['-f', `${repo}/examples/bench.cm`], { cwd: '/' });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const rs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rs).toHaveLength(151);
    expect(rs[0]).toEqual({ kind: 'reduce', v: 1, id: 'sum:bench', op: 'sum', inputs: [], sweeps: { bench: 150 }, by: ['size'], final: true });
    expect(rs[1]).toMatchObject({ id: 'bench.0', env: { size: '1000', rep: '1' }, params: { size: '1000', rep: '1' }, inputs: [`${repo}examples/bench.sh`], outputs: ['out/time.txt'], result: 'out/time.txt' });
    expect(rs[150]).toMatchObject({ id: 'bench.149', params: { size: '4000', rep: '50' } });
    expect(new Set(rs.slice(1).map((j) => j.params.size))).toEqual(new Set(['1000', '2000', '4000']));
    const portable = r.stdout.replaceAll(`${repo}examples/`, '<examples>/');
    expect(portable).toBe(golden(`${repo}/tools/cm-plan/src/golden/bench.ndjson`, portable));
  });

  it('on a terminal prints the plan for people (what --explain prints), unless --json', async () => {
    const onTerminal = (argv: string[]) => runInMemory(USAGE, toArgs, run, argv, { cwd: repo, terminal: true });
    const shown = await onTerminal(['-f', 'examples/assignment.cm']);
    expect(shown.stdout).toBe((await plan(['-f', 'examples/assignment.cm', '--explain'])).stdout);
    expect(shown.stderr).toContain('with --json, job and reduce records');
    expect((await onTerminal(['-f', 'examples/assignment.cm', '--json'])).stdout).toBe((await plan(['-f', 'examples/assignment.cm'])).stdout);
  });

  it('says "did you mean -f" for a plan file given as the expression, and exits 2', async () => {
    await expect(plan(['examples/bench.cm'])).rejects.toMatchObject({ code: 2, message: 'examples/bench.cm is a plan file, not an expression: did you mean -f examples/bench.cm?' });
    await expect(plan(['missing.yaml'])).rejects.toMatchObject({ code: 2, message: expect.stringContaining('did you mean -f missing.yaml?') });
    await expect(plan(['README.md'])).rejects.toMatchObject({ code: 2, message: expect.stringContaining('did you mean -f README.md?') });
    await expect(plan(['-d', 'a=echo 1', 'examples/sweep.cm'])).rejects.toMatchObject({ code: 2 });
    // a name that is also a file: a plan file only when nothing defines a task
    await expect(plan(['Vagrantfile'])).rejects.toMatchObject({ code: 2, message: expect.stringContaining('did you mean -f Vagrantfile?') });
    expect((await plan(['-d', 'Vagrantfile=echo 1', 'Vagrantfile'])).code).toBe(0);
  });

  it('exits 3 with file:line:col for a bad plan, printing no record', async () => {
    await expect(plan(['-d', 'a=echo 1', '(a'])).rejects.toMatchObject({ code: 3 });
  });
});
