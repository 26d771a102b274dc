import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CmError, InputError } from '@cm/protocol';
import { InventoryFile } from './file';

// every scratch folder of the file, removed at its end
const scratch = mkdtempSync(path.join(tmpdir(), 'invfile-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const TEXT = `# my machines
defaults:
  user: root # everyone
  slots: 2

hosts:
  # the test box
  th1:
    address: 127.0.10.1
    slots: 4 # four cores
    tags: [test, rack1]
  node[01-03]:
    address: 10.0.0.[1-3]
  laptop:
    local: true
`;

function temp(text: string): string {
  const dir = mkdtempSync(path.join(scratch, 'run-'));
  const file = path.join(dir, 'hosts.yaml');
  writeFileSync(file, text);
  return file;
}

describe('InventoryFile', () => {
  it('edits in place, keeping comments and key order', async () => {
    const file = temp(TEXT);
    const f = await InventoryFile.open(file);
    expect(f.hostNames()).toEqual(['th1', 'node[01-03]', 'laptop']);
    f.setHost('th1', { slots: 8, user: 'alice' });
    f.addHost('th2', { address: '127.0.10.2', tags: ['test'] });
    expect(f.removeHost('laptop')).toBe(true);
    expect(f.removeHost('laptop')).toBe(false);
    await f.save();
    expect(readFileSync(file, 'utf8')).toBe(`# my machines
defaults:
  user: root # everyone
  slots: 2

hosts:
  # the test box
  th1:
    address: 127.0.10.1
    slots: 8 # four cores
    tags: [test, rack1]
    user: alice
  node[01-03]:
    address: 10.0.0.[1-3]
  th2:
    address: 127.0.10.2
    tags: [test]
`);
    expect(readdirSync(path.dirname(file))).toEqual(['hosts.yaml']);
    const again = await InventoryFile.open(file);
    expect(again.toInventory().hosts.map((h) => h.name)).toEqual(['th1', 'node01', 'node02', 'node03', 'th2']);
  });

  it('refuses duplicates, including names inside a range', async () => {
    const f = await InventoryFile.open(temp(TEXT));
    expect(() => f.addHost('th1', { address: 'x' })).toThrow(/th1 is already/);
    expect(() => f.addHost('node02', { address: 'x' })).toThrow(/node02 is already/);
    expect(() => f.setHost('node02', { slots: 3 })).toThrow(/part of the range node\[01-03\]/);
    f.setHost('node[01-03]', { slots: 3 });
    expect(f.toInventory().hosts.filter((h) => h.slots === 3)).toHaveLength(3);
  });

  it('will not open an invalid file, and will not save an invalid edit', async () => {
    const bad = temp(TEXT.replace('slots: 4', 'slots: 0'));
    await expect(InventoryFile.open(bad)).rejects.toThrow(/hosts.yaml:10:12: slots must be >= 1/);
    const file = temp(TEXT);
    const f = await InventoryFile.open(file);
    f.setHost('th1', { options: { ProxyCommand: 'nc %h %p' } });
    await expect(f.save()).rejects.toThrow(InputError);
    expect(readFileSync(file, 'utf8')).toBe(TEXT);
    expect(() => f.setHost('th1', { slots: 0 })).toThrow(CmError);
    expect(() => f.setHost('th1', { user: '-oProxyCommand=x' })).toThrow(/not allowed/);
  });

  it('turns an empty entry into a block mapping when fields are set', async () => {
    const file = temp('hosts:\n');
    const f = await InventoryFile.open(file);
    f.addHost('a1', {});
    f.setHost('a1', { local: true, slots: 2 });
    expect(f.toString()).toBe('hosts:\n  a1:\n    slots: 2\n    local: true\n');
  });

  it('creates a missing file only when asked', async () => {
    const dir = mkdtempSync(path.join(scratch, 'run-'));
    const file = path.join(dir, 'sub', 'hosts.yaml');
    await expect(InventoryFile.open(file)).rejects.toThrow(/no such inventory file/);
    const f = await InventoryFile.open(file, { create: true });
    f.addHost('a', { address: '10.1.1.1', slots: 2 });
    await f.save();
    expect(readFileSync(file, 'utf8')).toMatch(/hosts:\n {2}a:\n {4}address: 10.1.1.1\n {4}slots: 2\n/);
  });

  it('does not overwrite a file changed by someone else meanwhile', async () => {
    const file = temp(TEXT);
    const f = await InventoryFile.open(file);
    f.setHost('th1', { slots: 5 });
    writeFileSync(file, `${TEXT}# edited by hand\n`);
    await expect(f.save()).rejects.toThrow(/changed while/);
    expect(readFileSync(file, 'utf8')).toBe(`${TEXT}# edited by hand\n`);
  });
});
