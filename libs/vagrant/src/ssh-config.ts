// What `vagrant ssh-config` says about the machines, read with the one ssh_config parser of
// @cm/inventory (the one `cm-hosts import` uses), and what cm keeps of it.
import { parseSshConfig, toSshConfig, type HostFields, type ImportedHost } from '@cm/inventory';
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

// Vagrant machines get fresh host keys whenever they are rebuilt, which is why Vagrant itself turns
// host-key checking off: of its ssh options, cm keeps these two.
const KEPT_OPTIONS = ['UserKnownHostsFile', 'StrictHostKeyChecking'];

/** What the inventory needs to reach a machine. */
export function hostFields(entry: SshConfigEntry, extra: { slots: number; tags: string[] }): HostFields {
  const f = entry.fields;
  const fields: HostFields = { address: f.address ?? entry.name };
  if (f.user !== undefined) fields.user = f.user;
  if (f.port !== undefined) fields.port = f.port;
  if (f.identity !== undefined) fields.identity = f.identity;
  if (f.jump !== undefined) fields.jump = f.jump;
  const options = Object.fromEntries(Object.entries(f.options ?? {}).filter(([k]) => KEPT_OPTIONS.includes(k)));
  if (Object.keys(options).length > 0) fields.options = options;
  fields.tags = [...extra.tags];
  fields.slots = extra.slots;
  return fields;
}

export function hostRecord(name: string, fields: HostFields): HostRecord {
  return { kind: 'host', v: 1, name, ...fields } as HostRecord;
}

/** ssh_config text for the machines, for `ssh -F file name`: the inventory's own export. */
export function renderSshConfig(entries: SshConfigEntry[]): string {
  return toSshConfig(entries.map((e) => hostRecord(e.name, hostFields(e, { slots: 1, tags: [] }))));
}
