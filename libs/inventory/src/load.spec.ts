import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { CmError, InputError, recordProblem } from '@cm/protocol';
import { defaultInventory, loadInventory, parseInventory, resolveInventoryPath } from './load';

// every scratch folder of the file, removed at its end
const scratch = mkdtempSync(path.join(tmpdir(), 'inv-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const env = { HOME: '/home/u' };
const load = (text: string) => parseInventory(text, 'hosts.yaml', env);

function errorOf(text: string): InputError {
  try {
    load(text);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error(`no error for:\n${text}`);
}

const GOOD = `# comment
defaults:
  user: root
  slots: 2
  identity: ~/.ssh/id_ed25519
  tags: [all-dc]
  options:
    UserKnownHostsFile: /tmp/known_hosts
hosts:
  th1:
    address: 127.0.10.1
    slots: 4
    tags: [test, rack1]
  node[01-16]:
    address: 10.0.0.[1-16]
    port: 22
    jump: admin@bastion:2222
    options: { ConnectTimeout: 5, Compression: yes }
  same[1-2]:
    address: gateway
  laptop:
    local: true
  bare:
`;

describe('parseInventory', () => {
  it('expands ranges, pairs addresses and applies defaults', () => {
    const inv = load(GOOD);
    expect(inv.hosts).toHaveLength(1 + 16 + 2 + 2);
    for (const h of inv.hosts) expect(recordProblem(h)).toBeNull();
    const th1 = inv.get('th1');
    expect(th1).toMatchObject({ address: '127.0.10.1', user: 'root', slots: 4, identity: '/home/u/.ssh/id_ed25519', tags: ['all-dc', 'test', 'rack1'] });
    expect(inv.get('node16')).toMatchObject({ address: '10.0.0.16', port: 22, jump: 'admin@bastion:2222', slots: 2 });
    expect(inv.get('node01')?.options).toEqual({ UserKnownHostsFile: '/tmp/known_hosts', ConnectTimeout: '5', Compression: 'yes' });
    expect(inv.get('same2')?.address).toBe('gateway');
    expect(inv.get('laptop')?.local).toBe(true);
    expect(inv.get('bare')).toMatchObject({ address: 'bare', slots: 2 });
  });

  it('selects by name, range, @tag and lists', () => {
    const inv = load(GOOD);
    expect(inv.select('node[02-03],th1').map((h) => h.name)).toEqual(['th1', 'node02', 'node03']);
    expect(inv.select('@rack1').map((h) => h.name)).toEqual(['th1']);
    expect(inv.select(undefined)).toHaveLength(21);
    expect(inv.select('@all')).toHaveLength(21);
    expect(() => inv.select('nope')).toThrow(/unknown host nope/);
    expect(() => inv.select('@nope')).toThrow(CmError);
    expect(() => inv.select('node[1-')).toThrow(CmError);
  });

  it('accepts an empty file and empty hosts', () => {
    expect(load('').hosts).toEqual([]);
    expect(load('hosts:\n').hosts).toEqual([]);
  });

  it('names file, line and column of each bad input', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['hosts:\n  th1:\n    adress: x\n', 'hosts.yaml:3:5', /unknown key "adress"/],
      ['hosts:\n  th1:\n    slots: 0\n', 'hosts.yaml:3:12', /slots must be >= 1/],
      ['hosts:\n  th1:\n    slots: -3\n', 'hosts.yaml:3:12', /slots must be >= 1/],
      ['hosts:\n  th1: {}\n  th1: {}\n', 'hosts.yaml:3:3', /YAML syntax error: Map keys must be unique/],
      ['hosts:\n  n[1-3]: {}\n  n2: {}\n', 'hosts.yaml:3:3', /duplicate host n2 \(also at line 2, from n\[1-3\]\)/],
      ['hosts:\n  n[1-3: {}\n', 'hosts.yaml:2:4', /bad host name range: '\[' is never closed/],
      ['hosts:\n  n[1-2]:\n    address: 10.0.0.[1-3]\n', 'hosts.yaml:3:14', /pair up/],
      ['hosts:\n  "-oProxyCommand=x": {}\n', 'hosts.yaml:2:3', /host name "-oProxyCommand=x" is not allowed/],
      ['hosts:\n  th1:\n    user: "a b"\n', 'hosts.yaml:3:11', /user "a b" is not allowed/],
      ['hosts:\n  th1:\n    address: "x;rm"\n', 'hosts.yaml:3:14', /address "x;rm" is not allowed/],
      ['hosts:\n  th1:\n    options:\n      ProxyCommand: nc %h %p\n', 'hosts.yaml:4:7', /ProxyCommand.*allow-list/],
      ['hosts:\n  th1:\n    port: 70000\n', 'hosts.yaml:3:11', /port must be between 1 and 65535/],
      ['hosts:\n  th1:\n    tags: rack1\n', 'hosts.yaml:3:11', /tags must be a list/],
      ['hosts:\n  th1:\n    local: yes\n', 'hosts.yaml:3:12', /local must be true or false/],
      ['defaults:\n  address: x\n', 'hosts.yaml:2:3', /address cannot be a default/],
      ['colour: red\n', 'hosts.yaml:1:1', /unknown key "colour"/],
      ['hosts: [a, b]\n', 'hosts.yaml:1:8', /hosts must be a mapping/],
      ['hosts:\n  th1:\n    slots: [1\n', 'hosts.yaml:4:1', /YAML syntax error/],
      ['hosts:\n  th1:\n    jump: "a b"\n', 'hosts.yaml:3:11', /jump "a b" is not allowed/],
    ];
    for (const [text, where, reason] of cases) {
      const err = errorOf(text);
      expect(err.message.startsWith(`${where}:`) || err.message.startsWith(`${where}`), `${text} -> ${err.message}`).toBe(true);
      expect(err.message).toMatch(reason);
    }
  });

  it('refuses a range that would expand to too many hosts', () => {
    expect(errorOf('hosts:\n  n[1-99999999]: {}\n').message).toMatch(/^hosts.yaml:2:3: bad host name range: expands to more than 100000/);
  });

  it('throws nothing but InputError on random YAML-ish input', () => {
    const piece = fc.constantFrom('hosts:', 'defaults:', '  th1:', '  n[1-3]:', '    address: 10.0.0.[1-3]', '    slots: 0', '    slots: 2', '    tags: [a, b]', '    user: -x', '    port: x', '  - x', '{', ']', '&a', '*a', '    options: {LogLevel: ERROR}', '    local: true', ': :', '"', '\t');
    fc.assert(
      fc.property(fc.array(fc.oneof(piece, fc.string({ maxLength: 12 })), { maxLength: 12 }), (lines) => {
        try {
          load(lines.join('\n'));
        } catch (err) {
          expect(err).toBeInstanceOf(InputError);
        }
      }),
      { numRuns: 1000 },
    );
  }, 60_000);
});

describe('search order', () => {
  it('prefers --inventory, then $CM_INVENTORY, then ./cm.yaml, ./config/hosts.yaml, ~/.config/cm/hosts.yaml', () => {
    const dir = mkdtempSync(path.join(scratch, 'run-'));
    const home = path.join(dir, 'home');
    const cwd = path.join(dir, 'cwd');
    mkdirSync(path.join(home, '.config', 'cm'), { recursive: true });
    mkdirSync(path.join(cwd, 'config'), { recursive: true });
    const e = { HOME: home };
    expect(resolveInventoryPath({ env: e, cwd })).toBeUndefined();
    writeFileSync(path.join(home, '.config', 'cm', 'hosts.yaml'), 'hosts:\n');
    expect(resolveInventoryPath({ env: e, cwd })).toBe(path.join(home, '.config', 'cm', 'hosts.yaml'));
    writeFileSync(path.join(cwd, 'config', 'hosts.yaml'), 'hosts:\n');
    expect(resolveInventoryPath({ env: e, cwd })).toBe(path.join(cwd, 'config', 'hosts.yaml'));
    writeFileSync(path.join(cwd, 'cm.yaml'), 'hosts:\n');
    expect(resolveInventoryPath({ env: e, cwd })).toBe(path.join(cwd, 'cm.yaml'));
    expect(resolveInventoryPath({ env: { ...e, CM_INVENTORY: 'x.yaml' }, cwd })).toBe(path.join(cwd, 'x.yaml'));
    expect(resolveInventoryPath({ path: '/abs.yaml', env: { ...e, CM_INVENTORY: 'x.yaml' }, cwd })).toBe('/abs.yaml');
  });
  it('falls back to the embedded default and reports a missing explicit file', async () => {
    const dir = mkdtempSync(path.join(scratch, 'run-'));
    const inv = await loadInventory({ env: { HOME: dir }, cwd: dir });
    expect(inv.source).toBe('(default)');
    expect(inv.hosts).toEqual(defaultInventory().hosts);
    expect(inv.hosts[0]).toMatchObject({ name: 'localhost', local: true, tags: ['local'] });
    await expect(loadInventory({ path: 'missing.yaml', env: {}, cwd: dir })).rejects.toThrow(/no such inventory file/);
  });
  it('loads the shipped example', async () => {
    const example = path.join(__dirname, '..', '..', '..', 'config', 'hosts.example.yaml');
    const inv = parseInventory(readFileSync(example, 'utf8'), example, env);
    expect(inv.hosts.length).toBeGreaterThan(0);
  });
});
