import type { HostRecord } from '@cm/protocol';
import type { MachineRow } from './machine-readable';

/** One `Host` block of `vagrant ssh-config`; keys as OpenSSH spells them, lower-cased. */
export interface SshConfigEntry {
  host: string;
  /** first value of each keyword (OpenSSH uses the first one too) */
  options: Record<string, string>;
  /** every IdentityFile, in order */
  identityFiles: string[];
}

function unquote(value: string): string {
  const v = value.trim();
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

/** Parses OpenSSH client config text: `Host` opens a block, `Key value` or `Key=value` lines fill it. */
export function parseSshConfig(text: string): SshConfigEntry[] {
  const entries: SshConfigEntry[] = [];
  let cur: SshConfigEntry | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!m) continue;
    const key = (m[1] ?? '').toLowerCase();
    const value = unquote(m[2] ?? '');
    if (key === 'host') {
      cur = { host: value.split(/\s+/)[0] ?? value, options: {}, identityFiles: [] };
      entries.push(cur);
      continue;
    }
    if (!cur) continue;
    if (key === 'identityfile') cur.identityFiles.push(value);
    if (!(key in cur.options)) cur.options[key] = value;
  }
  return entries;
}

/**
 * The entries of `vagrant ssh-config --machine-readable`: the `ssh-config` rows when there are any
 * (Vagrant 2.3 prints the human text too, which would give every machine twice), else the plain text.
 */
export function sshConfigFromOutput(rows: MachineRow[], text: string): SshConfigEntry[] {
  const blocks = rows.filter((r) => r.type === 'ssh-config').map((r) => r.data.join(','));
  const entries = blocks.length > 0 ? blocks.flatMap((b) => parseSshConfig(b)) : parseSshConfig(text);
  const seen = new Set<string>();
  return entries.filter((e) => (seen.has(e.host) ? false : (seen.add(e.host), true)));
}

export type HostFields = Partial<Omit<HostRecord, 'kind' | 'v' | 'name'>>;

/**
 * What the inventory needs to reach a machine. Vagrant machines get fresh host keys whenever they are
 * rebuilt, which is why Vagrant itself turns host-key checking off; we keep its two options for that and
 * drop the rest (LogLevel FATAL would hide ssh's own error messages from the user).
 */
export function hostFields(entry: SshConfigEntry, extra: { slots: number; tags: string[] }): HostFields {
  const o = entry.options;
  const fields: HostFields = { address: o.hostname ?? entry.host };
  if (o.user) fields.user = o.user;
  if (o.port && /^\d+$/.test(o.port)) fields.port = Number(o.port);
  const identity = entry.identityFiles[0];
  if (identity) fields.identity = identity;
  if (o.proxyjump && o.proxyjump.toLowerCase() !== 'none') fields.jump = o.proxyjump;
  const options: Record<string, string> = {};
  if (o.userknownhostsfile) options.UserKnownHostsFile = o.userknownhostsfile;
  if (o.stricthostkeychecking) options.StrictHostKeyChecking = o.stricthostkeychecking;
  if (Object.keys(options).length > 0) fields.options = options;
  fields.tags = [...extra.tags];
  fields.slots = extra.slots;
  return fields;
}

/** ssh_config text for the machines, for `ssh -F file name`. */
export function renderSshConfig(entries: SshConfigEntry[]): string {
  const keep = ['hostname', 'user', 'port', 'userknownhostsfile', 'stricthostkeychecking', 'passwordauthentication', 'identitiesonly', 'proxyjump'];
  const spell: Record<string, string> = {
    hostname: 'HostName',
    user: 'User',
    port: 'Port',
    userknownhostsfile: 'UserKnownHostsFile',
    stricthostkeychecking: 'StrictHostKeyChecking',
    passwordauthentication: 'PasswordAuthentication',
    identitiesonly: 'IdentitiesOnly',
    proxyjump: 'ProxyJump',
  };
  const quote = (v: string): string => (/\s/.test(v) ? `"${v}"` : v);
  let out = '';
  for (const e of entries) {
    out += `Host ${e.host}\n`;
    for (const k of keep) {
      const v = e.options[k];
      if (v !== undefined) out += `  ${spell[k]} ${quote(v)}\n`;
      if (k === 'port') for (const id of e.identityFiles) out += `  IdentityFile ${quote(id)}\n`;
    }
    out += '\n';
  }
  return out;
}
