import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ControlDir, controlMasters, findRunControl, sweepStale } from './control';

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

  it('lists the runs it serves in a private folder, where findRunControl finds them while its command runs', async () => {
    const tmp = join(root, 'r');
    mkdirSync(tmp);
    const c = new ControlDir({ prefix: 'cm-t', tmp });
    expect(findRunControl('cm-t', 'run-1', [tmp])).toBeUndefined();
    c.serve('run-0');
    c.serve('run-1');
    c.serve('run-1');
    expect(readFileSync(join(c.path, 'run'), 'utf8')).toBe('run-0\nrun-1\n');
    expect(findRunControl('cm-t', 'run-1', [tmp])).toBe(c.path);
    expect(findRunControl('cm-t', 'run-0', [tmp])).toBe(c.path);
    expect(findRunControl('cm-t', 'run', [tmp])).toBeUndefined();
    expect(findRunControl('cm-t', 'run-2', [tmp])).toBeUndefined();
    expect(findRunControl('cm-u', 'run-1', [tmp])).toBeUndefined();
    // a folder others can enter is not one whose masters may be ridden
    chmodSync(c.path, 0o750);
    expect(findRunControl('cm-t', 'run-1', [tmp])).toBeUndefined();
    chmodSync(c.path, 0o700);
    // the folder of a command that no longer runs, left by SIGKILL
    const dead = join(tmp, `cm-t-${deadPid()}-abcDEF`);
    mkdirSync(dead, { mode: 0o700 });
    writeFileSync(join(dead, 'run'), 'run-3');
    expect(findRunControl('cm-t', 'run-3', [tmp])).toBeUndefined();
    await c.close();
    expect(findRunControl('cm-t', 'run-1', [tmp])).toBeUndefined();
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

describe('controlMasters', () => {
  const hello = Buffer.from('000000080000000100000004', 'hex');
  const terminate = Buffer.from('000000081000000500000001', 'hex');

  /** a listener on DIR/NAME that answers each connection with `reply`, and keeps what it was sent */
  async function listener(dir: string, name: string, reply: Buffer): Promise<{ got: Buffer[]; server: Server }> {
    const got: Buffer[] = [];
    const server = createServer((c) => {
      c.write(reply);
      c.on('data', (d) => {
        got.push(d);
        // a master exits once it has read the terminate request
        if (Buffer.concat(got).length >= 24) c.destroy();
      });
    });
    await new Promise<void>((r) => server.listen(join(dir, name), r));
    return { got, server };
  }

  it('speaks the mux protocol to each master (hello, terminate) without starting ssh', async () => {
    const dir = mkdtempSync(join(root, 'mux-'));
    const calls = join(dir, 'calls');
    const ssh = join(root, 'ssh-that-logs');
    writeFileSync(ssh, `#!/bin/sh\necho "$@" >>${calls}\n`, { mode: 0o755 });
    const a = await listener(dir, 'a'.repeat(40), hello);
    const b = await listener(dir, 'b'.repeat(40), hello);
    await controlMasters(dir, 'exit', ssh);
    for (const m of [a, b]) {
      expect(Buffer.concat(m.got)).toEqual(Buffer.concat([hello, terminate]));
      m.server.close();
    }
    expect(existsSync(calls)).toBe(false);
  });

  it('asks each master to stop listening (hello, stop), as ssh -O stop does', async () => {
    const dir = mkdtempSync(join(root, 'mux-'));
    const a = await listener(dir, 'e'.repeat(40), hello);
    await controlMasters(dir, 'stop');
    expect(Buffer.concat(a.got)).toEqual(Buffer.concat([hello, Buffer.from('000000081000000900000001', 'hex')]));
    a.server.close();
  });

  it('asks ssh when the socket does not speak the protocol, and skips a socket nobody listens on', async () => {
    const dir = mkdtempSync(join(root, 'mux-'));
    const calls = join(dir, 'calls');
    const ssh = join(root, 'ssh-that-logs2');
    writeFileSync(ssh, `#!/bin/sh\necho "$@" >>${calls}\n`, { mode: 0o755 });
    const odd = await listener(dir, 'c'.repeat(40), Buffer.from('SSH-2.0-other\r\n'));
    // a master that died without removing its socket (perl exits without unlinking what it bound)
    const stale = join(dir, 'd'.repeat(40));
    spawnSync('perl', ['-MIO::Socket::UNIX', '-e', 'IO::Socket::UNIX->new(Local => $ARGV[0], Listen => 1) or die', stale]);
    expect(lstatSync(stale).isSocket()).toBe(true);
    writeFileSync(join(dir, 'not-a-socket'), '');
    await controlMasters(dir, 'exit', ssh);
    odd.server.close();
    expect(readFileSync(calls, 'utf8')).toBe(`-S ${join(dir, 'c'.repeat(40))} -O exit cm-control\n`);
  });
});
