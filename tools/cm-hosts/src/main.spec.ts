import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { golden, runInMemory } from '@cm/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const here = fileURLToPath(new URL('.', import.meta.url));

// every scratch folder of the file, removed at its end
const scratchRoot = mkdtempSync(join(tmpdir(), 'cm-hosts-spec-'));
afterAll(() => rmSync(scratchRoot, { recursive: true, force: true }));

function scratch(inventory: string): { cwd: string; file: string } {
  const cwd = mkdtempSync(join(scratchRoot, 'run-'));
  const file = join(cwd, 'hosts.yaml');
  writeFileSync(file, inventory);
  return { cwd, file };
}
const hosts = (cwd: string, argv: string[]) => runInMemory(USAGE, toArgs, run, argv, { cwd, env: { PATH: process.env.PATH, HOME: cwd } });

const INVENTORY = `# lab machines
defaults:
  user: root
hosts:
  web1:
    address: 192.0.2.10
    slots: 4
    tags: [web]
  node[01-03]:
    address: 10.0.0.[1-3]
    tags: [rack1]
`;

describe('cm-hosts run()', () => {
  it('list: one host record per machine, ranges expanded, in a pipe', async () => {
    const { cwd, file } = scratch(INVENTORY);
    const r = await hosts(cwd, ['list', '--inventory', file]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(golden(`${here}/golden/list.ndjson`, r.stdout));
  });

  it('list @tag --table: aligned columns for people', async () => {
    const { cwd, file } = scratch(INVENTORY);
    const r = await hosts(cwd, ['list', '@rack1', '--table', '--inventory', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(golden(`${here}/golden/list-rack1.txt`, r.stdout));
  });

  it('add keeps the comments and key order of the file and adds the host', async () => {
    const { cwd, file } = scratch(INVENTORY);
    const r = await hosts(cwd, ['add', 'db1', '--address', '192.0.2.20', '--slots', '2', '--tag', 'db', '--inventory', file]);
    expect(r.code).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith(INVENTORY.trimEnd())).toBe(true);
    expect(text).toBe(golden(`${here}/golden/after-add.yaml`, text));
  });

  it('set on a whole range and remove of a host edit the file in place; part of a range is refused', async () => {
    const { cwd, file } = scratch(INVENTORY);
    expect((await hosts(cwd, ['set', 'node[01-03]', 'slots=8', 'options.LogLevel=ERROR', '--inventory', file])).code).toBe(0);
    expect((await hosts(cwd, ['remove', 'web1', '--inventory', file])).code).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text).toBe(golden(`${here}/golden/after-set-remove.yaml`, text));
    await expect(hosts(cwd, ['set', 'node02', 'slots=2', '--inventory', file])).rejects.toMatchObject({ code: 3, message: expect.stringMatching(/part of the range node\[01-03\]/) });
  });

  it('a YAML error exits 3 with file:line:col', async () => {
    const { cwd, file } = scratch('hosts:\n  web1:\n    slots: [\n');
    await expect(hosts(cwd, ['list', '--inventory', file])).rejects.toMatchObject({ code: 3, message: expect.stringMatching(/hosts\.yaml:\d+:\d+/) });
  });

  it('add with no inventory anywhere creates ./cm.yaml, not one in ~/.config, and says so', async () => {
    const cwd = mkdtempSync(join(scratchRoot, 'run-'));
    const r = await hosts(cwd, ['add', 'web1', '--address', '192.0.2.10']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('cm-hosts: created ./cm.yaml (new inventory; cm commands in this folder use it)\n');
    expect(readFileSync(join(cwd, 'cm.yaml'), 'utf8')).toContain('web1:');
    expect(existsSync(join(cwd, '.config'))).toBe(false);
    const again = await hosts(cwd, ['add', 'web2']);
    expect(again.stderr).not.toContain('created');
  });

  it('-i FILE is --inventory FILE for every subcommand', async () => {
    const { cwd } = scratch(INVENTORY);
    for (const argv of [['add', 'db1', '--local', '-i', 'hosts.yaml'], ['set', 'db1', 'slots=2', '-i', 'hosts.yaml'], ['list', 'db1', '-i', 'hosts.yaml'], ['check', 'db1', '-i', 'hosts.yaml'], ['export', 'db1', '-i', 'hosts.yaml'], ['remove', 'db1', '-i', 'hosts.yaml']]) {
      const r = await hosts(cwd, argv).catch((err: { code: number }) => ({ code: err.code, stdout: '' }));
      expect([argv[0], r.code === 2 ? 'usage error' : 'parsed']).toEqual([argv[0], 'parsed']);
    }
    const r = await hosts(cwd, ['import', '--ssh-config', 'none', '-i', 'hosts.yaml']).catch((err: { code: number; message: string }) => err);
    expect(r).toMatchObject({ code: 3, message: expect.stringMatching(/^none: cannot read/) });
  });
});
