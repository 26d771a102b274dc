import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseVagrantSshConfig } from '@cm/inventory';
import fc from 'fast-check';
import {
  exitCodeFor,
  findErrorExit,
  hostFields,
  parseMachineReadable,
  parseRow,
  parseSettings,
  parseStatus,
  renderSshConfig,
  scale,
  sshConfigFromOutput,
  unescapeField,
  updateVagrantfile,
  chooseProvider,
  VagrantExit,
} from './index';

// Real vagrant 2.3.4 output, also replayed by test/stand-ins/vagrant.
const CAPTURES = path.resolve(__dirname, '../../../test/helpers/vagrant-captures');
const capture = (name: string): string => readFileSync(path.join(CAPTURES, name), 'utf8');

describe('machine-readable rows', () => {
  it('unescapes Vagrant commas and newlines', () => {
    expect(unescapeField('a%!(VAGRANT_COMMA) b\\nc')).toBe('a, b\nc');
  });

  it('skips the human text vagrant ssh-config prints between rows', () => {
    const rows = parseMachineReadable(capture('ssh-config-3nodes-machine-readable.txt'));
    expect(rows.map((r) => `${r.target}:${r.type}`)).toEqual([
      'node1:metadata', 'node2:metadata', 'node3:metadata', 'node1:ssh-config', 'node2:ssh-config', 'node3:ssh-config',
    ]);
  });

  it('round-trips any field through Vagrant escaping', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const escaped = s.replace(/\\/g, '\\\\').replace(/,/g, '%!(VAGRANT_COMMA)').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
        const row = parseRow(`1795348844,node1,ui,info,${escaped}`);
        expect(row?.data).toEqual(['info', s]);
      }),
    );
  });

  it('finds the error-exit of a provider that is not usable', () => {
    const err = findErrorExit(parseMachineReadable(capture('status-provider-not-usable-virtualbox.txt')));
    expect(err?.errorClass).toBe('Vagrant::Errors::ProviderNotUsable');
    expect(err?.message).toContain("VirtualBox is installed, please find the\n`VBoxManage` binary");
    expect(exitCodeFor(err!)).toBe(4);
  });

  it('maps SSHNotReady and box errors to their own codes', () => {
    const err = findErrorExit(parseMachineReadable(capture('ssh-config-not-created-machine-readable.txt')));
    expect(exitCodeFor(err!)).toBe(VagrantExit.NOT_RUNNING);
    expect(exitCodeFor({ errorClass: 'Vagrant::Errors::BoxAddShortNotFound', message: '' })).toBe(VagrantExit.BOX_MISSING);
    expect(exitCodeFor({ errorClass: 'VagrantPlugins::ProviderLibvirt::Errors::Whatever', message: '' })).toBe(VagrantExit.VAGRANT_FAILED);
  });
});

describe('status', () => {
  it('reads running, shutoff and not created machines of one environment', () => {
    const states = parseStatus(parseMachineReadable(capture('status-mixed-running-shutoff-notcreated.txt')));
    expect(states.map((m) => [m.name, m.provider, m.state, m.short])).toEqual([
      ['node1', 'libvirt', 'running', 'running'],
      ['node2', 'libvirt', 'shutoff', 'shutoff'],
      ['node3', 'libvirt', 'not_created', 'not created'],
    ]);
    expect(states[0]?.long).toContain('To stop this machine, you can run\n`vagrant halt`');
  });

  it('reads lxc machines', () => {
    const states = parseStatus(parseMachineReadable(capture('status-running-3nodes-lxc.txt')));
    expect(states.map((m) => `${m.name}/${m.provider}/${m.state}`)).toEqual(['node1/lxc/running', 'node2/lxc/running', 'node3/lxc/running']);
  });

  it('has no machines when the provider is not usable', () => {
    expect(parseStatus(parseMachineReadable(capture('status-provider-not-usable-virtualbox.txt')))).toEqual([]);
  });
});

describe('ssh-config', () => {
  it('parses plain output of three machines', () => {
    const entries = sshConfigFromOutput([], capture('ssh-config-3nodes-lxc.txt'));
    expect(entries.map((e) => [e.name, e.fields.address, e.fields.user, e.fields.identity])).toEqual([
      ['node1', '10.0.3.252', 'vagrant', '/home/alice/lab/.vagrant/machines/node1/lxc/private_key'],
      ['node2', '10.0.3.42', 'vagrant', '/home/alice/lab/.vagrant/machines/node2/lxc/private_key'],
      ['node3', '10.0.3.104', 'vagrant', '/home/alice/lab/.vagrant/machines/node3/lxc/private_key'],
    ]);
  });

  it('takes machine-readable rows once, not again from the human text', () => {
    const text = capture('ssh-config-3nodes-machine-readable.txt');
    const entries = sshConfigFromOutput(parseMachineReadable(text), text);
    expect(entries.map((e) => `${e.name}=${e.fields.address}`)).toEqual(['node1=192.168.121.222', 'node2=192.168.121.167', 'node3=192.168.121.64']);
  });

  it('keeps the machines printed before vagrant stopped at one that is not running', () => {
    const text = capture('ssh-config-mixed.stdout');
    expect(sshConfigFromOutput(parseMachineReadable(text), text).map((e) => e.name)).toEqual(['node1']);
  });

  it('handles quoted paths with spaces and Key=value', () => {
    const [e] = sshConfigFromOutput([], 'Host a\n  HostName=10.0.0.1\n  IdentityFile "/home/a b/key"\n  Port 2222\n');
    expect(hostFields(e!, { slots: 2, tags: ['vagrant'] })).toEqual({
      address: '10.0.0.1', port: 2222, identity: '/home/a b/key', tags: ['vagrant'], slots: 2,
    });
    expect(renderSshConfig([e!])).toContain('IdentityFile "/home/a b/key"');
  });

  it('keeps of a machine what cm-hosts import --vagrant keeps (one parser, one policy), LogLevel FATAL left out', () => {
    const text = capture('ssh-config-1node-libvirt.txt');
    expect(text).toContain('LogLevel FATAL');
    const imported = parseVagrantSshConfig(text, 'vagrant.txt').hosts[0]!.fields;
    const [e] = sshConfigFromOutput([], text);
    const ours = hostFields(e!, { slots: 1, tags: [] });
    expect({ ...ours, tags: undefined, slots: undefined }).toEqual({ ...imported, tags: undefined, slots: undefined });
    expect(ours.options).toEqual({ UserKnownHostsFile: '/dev/null', StrictHostKeyChecking: 'no' });
  });

  it('turns an entry into inventory fields with only allow-listed ssh options', () => {
    const [e] = sshConfigFromOutput([], capture('ssh-config-1node-libvirt.txt'));
    expect(hostFields(e!, { slots: 1, tags: ['vagrant'] })).toEqual({
      address: '192.168.121.30',
      user: 'vagrant',
      port: 22,
      identity: '/home/alice/lab/.vagrant/machines/node1/libvirt/private_key',
      options: { UserKnownHostsFile: '/dev/null', StrictHostKeyChecking: 'no' },
      tags: ['vagrant'],
      slots: 1,
    });
  });
});

describe('Vagrantfile settings', () => {
  const template = readFileSync(path.resolve(__dirname, '../../../Vagrantfile'), 'utf8');

  it('reads the repository template', () => {
    expect(parseSettings(template)).toEqual({ box: 'debian/bookworm64', provider: '', memory: 1024, cpus: 1, nodes: ['node1'] });
  });

  it('rewrites only the settings block', () => {
    const edited = template.replace('Vagrant.configure("2") do |config|', '# mine\nVagrant.configure("2") do |config|');
    const out = updateVagrantfile(edited, { box: 'cm/debian12', provider: 'lxc', memory: 512, cpus: 2, nodes: ['node1', 'node2'] });
    expect(parseSettings(out)).toEqual({ box: 'cm/debian12', provider: 'lxc', memory: 512, cpus: 2, nodes: ['node1', 'node2'] });
    expect(out.slice(out.indexOf('# <<<'))).toBe(edited.slice(edited.indexOf('# <<<')));
    expect(out.slice(0, out.indexOf('# >>>'))).toBe(edited.slice(0, edited.indexOf('# >>>')));
  });

  it('refuses a Vagrantfile that is not ours, and a box name that would break Ruby', () => {
    expect(() => parseSettings('Vagrant.configure("2") do |c| end\n', '/x/Vagrantfile')).toThrow(/not a cm-vagrant Vagrantfile/);
    expect(() => updateVagrantfile(template, { box: 'a"; system("x")', provider: '', memory: 1, cpus: 1, nodes: [] })).toThrow(/bad box name/);
  });

  it('scales up and down keeping existing numbers', () => {
    expect(scale(['node1', 'node2', 'node3'], 'node', 5)).toEqual({ nodes: ['node1', 'node2', 'node3', 'node4', 'node5'], removed: [] });
    expect(scale(['node1', 'node2', 'node3', 'node4', 'node5'], 'node', 3)).toEqual({ nodes: ['node1', 'node2', 'node3'], removed: ['node4', 'node5'] });
    expect(scale(['db', 'node1'], 'node', 2)).toEqual({ nodes: ['db', 'node1', 'node2'], removed: [] });
  });
});

describe('provider choice', () => {
  const none = (): boolean => false;
  it('prefers the flag, then the Vagrantfile, then $VAGRANT_DEFAULT_PROVIDER, then what is installed', () => {
    expect(chooseProvider({ flag: 'lxc', current: 'libvirt', env: {}, installed: none })).toBe('lxc');
    expect(chooseProvider({ current: 'libvirt', env: { VAGRANT_DEFAULT_PROVIDER: 'lxc' }, installed: none })).toBe('libvirt');
    expect(chooseProvider({ env: { VAGRANT_DEFAULT_PROVIDER: 'lxc' }, installed: none })).toBe('lxc');
    expect(chooseProvider({ env: {}, installed: (p) => p === 'lxc-start' || p === 'virsh' })).toBe('libvirt');
  });
  it('fails with exit 4 when nothing is installed', () => {
    expect(() => chooseProvider({ env: {}, installed: none })).toThrow(expect.objectContaining({ code: 4 }));
  });
});
