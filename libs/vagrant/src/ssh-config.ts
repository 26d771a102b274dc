// What `vagrant ssh-config` says about the machines, read with the one ssh_config parser of
// @cm/inventory (the one `cm-hosts import` uses), and what cm keeps of it.
import { parseSshConfig, toSshConfig, vagrantFields, type HostFields, type ImportedHost } from '@cm/inventory';
import type { HostRecord } from '@cm/protocol';
import type { MachineRow } from './machine-readable';

/** One machine's `Host` block: its name and the inventory fields the parser read from it. */
export type SshConfigEntry = ImportedHost;

/**
 * The entries of `vagrant ssh-config --machine-readable`: the `ssh-config` rows when there are any
 * (Vagrant 2.3 prints the human text too, which would give every machine twice), else the plain text.
 */
export function sshConfigFromOutput(rows: MachineRow[], text: string): SshConfigEntry[] {
  const blocks = rows.filter((r) => r.type === 'ssh-config').map((r) => r.data.join(','));
  const entries = (blocks.length > 0 ? blocks : [text]).flatMap((b) => parseSshConfig(b, 'vagrant ssh-config').hosts);
  const seen = new Set<string>();
  return entries.filter((e) => (seen.has(e.name) ? false : (seen.add(e.name), true)));
}

/** What the inventory needs to reach a machine: the fields cm-hosts import --vagrant keeps, and ours. */
export function hostFields(entry: SshConfigEntry, extra: { slots: number; tags: string[] }): HostFields {
  return { ...vagrantFields({ address: entry.name, ...entry.fields }), tags: [...extra.tags], slots: extra.slots };
}

export function hostRecord(name: string, fields: HostFields): HostRecord {
  return { kind: 'host', v: 1, name, ...fields } as HostRecord;
}

/** ssh_config text for the machines, for `ssh -F file name`: the inventory's own export. */
export function renderSshConfig(entries: SshConfigEntry[]): string {
  return toSshConfig(entries.map((e) => hostRecord(e.name, hostFields(e, { slots: 1, tags: [] }))));
}
