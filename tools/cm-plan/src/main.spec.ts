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

  it('exits 3 with file:line:col for a bad plan, printing no record', async () => {
    await expect(plan(['-d', 'a=echo 1', '(a'])).rejects.toMatchObject({ code: 3 });
  });
});
