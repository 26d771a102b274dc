import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ControlDir, sweepStale } from './control';

const root = mkdtempSync(join(tmpdir(), 'cm-control-spec-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** a pid that ran and is gone */
function deadPid(): number {
  return Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
}

describe('ControlDir', () => {
  it('makes a private 0700 folder named after the pid and removes it at close', async () => {
    const tmp = join(root, 'a');
    mkdirSync(tmp);
    const c = new ControlDir({ prefix: 'cm-t', tmp });
    expect(c.path).toMatch(new RegExp(`^${tmp}/cm-t-${process.pid}-[A-Za-z0-9]{6}$`));
    expect(statSync(c.path).mode & 0o777).toBe(0o700);
    expect(c.shared).toBe(false);
    await c.close();
    expect(existsSync(c.path)).toBe(false);
  });

  it('falls back to /tmp when the temp dir is too long for socket paths', async () => {
    const c = new ControlDir({ prefix: 'cm-t', tmp: join(root, 'x'.repeat(80)) });
    expect(c.path.startsWith(`/tmp/cm-t-${process.pid}-`)).toBe(true);
    await c.close();
  });

  it('sweeps the folders of dead processes of its prefix only', async () => {
    const tmp = join(root, 'b');
    mkdirSync(tmp);
    const live = spawn('sleep', ['30']);
    const dead = join(tmp, `cm-t-${deadPid()}-abcDEF`);
    const alive = join(tmp, `cm-t-${live.pid}-abcDEF`);
    const other = join(tmp, `cm-u-${deadPid()}-abcDEF`);
    const old = join(tmp, 'cm-t-abcDEF');
    for (const d of [dead, alive, other, old]) mkdirSync(d);
    sweepStale('cm-t', tmp);
    // the sweep asks each dead folder's masters to exit, then removes the folder
    await vi.waitFor(() => expect(existsSync(dead)).toBe(false), { timeout: 10000, interval: 20 });
    live.kill();
    expect([dead, alive, other, old].map((d) => existsSync(d))).toEqual([false, true, true, true]);
  });

  it('shares ~/.cm/ssh when asked to keep connections, and refuses it when others can enter', async () => {
    const home = join(root, 'home');
    const c = new ControlDir({ prefix: 'cm-t', keep: 300, home });
    expect(c).toMatchObject({ path: join(home, '.cm', 'ssh'), persist: 300, shared: true });
    await c.close();
    expect(existsSync(c.path)).toBe(true);
    chmodSync(c.path, 0o755);
    expect(() => new ControlDir({ prefix: 'cm-t', keep: 300, home })).toThrow(/only you can use/);
  });
});
