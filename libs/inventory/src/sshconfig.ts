// OpenSSH client config <-> inventory hosts: `cm-hosts import --ssh-config/--vagrant` and `export`.
import { CmError, ExitCode, InputError, type HostRecord } from '@cm/protocol';
import { SSH_OPTION_NAMES } from '@cm/ssh';
import type { HostFields } from './load';

export interface ImportedHost {
  name: string;
  fields: HostFields;
  /** 1-based line of its Host block, for messages */
  line: number;
}

export interface ImportResult {
  hosts: ImportedHost[];
  /** people-readable notes: skipped patterns, dropped options */
  notes: string[];
}

const ALLOWED_CANONICAL = new Map<string, string>(SSH_OPTION_NAMES.map((o) => [o.toLowerCase(), o]));

/** Splits `Key value`, `Key=value` and `Key "quoted value"` as ssh_config(5) does. */
function splitLine(raw: string): { key: string; args: string[] } | undefined {
  const line = raw.trim();
  if (line === '' || line.startsWith('#')) return undefined;
  const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
  if (!m) return { key: line.toLowerCase(), args: [] };
  const args: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let a: RegExpExecArray | null;
  while ((a = re.exec(m[2] as string)) !== null) args.push(a[1] ?? (a[2] as string));
  return { key: (m[1] as string).toLowerCase(), args };
}

/**
 * Reads Host blocks of an OpenSSH client config. Wildcard and negated patterns are skipped (they
 * are defaults for many hosts, not hosts); Match blocks and Include are skipped with a note.
 */
export function parseSshConfig(text: string, source: string): ImportResult {
  const hosts: ImportedHost[] = [];
  const notes: string[] = [];
  let current: ImportedHost[] = [];
  let inMatch = false;
  text.split('\n').forEach((raw, i) => {
    const parsed = splitLine(raw);
    if (!parsed) return;
    const { key, args } = parsed;
    const lineNo = i + 1;
    if (key === 'host') {
      inMatch = false;
      current = [];
      for (const pattern of args) {
        if (/[*?!]/.test(pattern)) {
          notes.push(`${source}:${lineNo}: skipped pattern Host ${pattern}`);
          continue;
        }
        const h: ImportedHost = { name: pattern, fields: {}, line: lineNo };
        current.push(h);
        hosts.push(h);
      }
      return;
    }
    if (key === 'match') {
      inMatch = true;
      current = [];
      notes.push(`${source}:${lineNo}: skipped Match block`);
      return;
    }
    if (key === 'include') {
      notes.push(`${source}:${lineNo}: Include not followed`);
      return;
    }
    if (inMatch || current.length === 0) return;
    const value = args[0];
    if (value === undefined) throw new InputError(source, lineNo, undefined, `${key} needs a value`);
    for (const h of current) {
      const f = h.fields;
      // ssh_config: the first value given for a key wins.
      switch (key) {
        case 'hostname':
          f.address ??= value;
          break;
        case 'user':
          f.user ??= value;
          break;
        case 'port': {
          const p = Number(value);
          if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InputError(source, lineNo, undefined, `bad Port ${JSON.stringify(value)}`);
          f.port ??= p;
          break;
        }
        case 'identityfile':
          f.identity ??= value;
          break;
        case 'proxyjump':
          if (value.toLowerCase() !== 'none') f.jump ??= value;
          break;
        default: {
          const name = ALLOWED_CANONICAL.get(key);
          if (name) {
            f.options ??= {};
            f.options[name] ??= args.join(' ');
          } else if (h === current[0]) {
            notes.push(`${source}:${lineNo}: dropped ${raw.trim().split(/\s|=/)[0]} (not on the ssh option allow-list)`);
          }
        }
      }
    }
  });
  return { hosts, notes };
}

/**
 * `vagrant ssh-config` output, plain or --machine-readable (`ts,target,ssh-config,<escaped text>`).
 * Output without any Host block (machine halted, not created) is an error quoting vagrant's reason.
 */
export function parseVagrantSshConfig(text: string, source: string): ImportResult {
  const lines = text.split('\n');
  const machine = lines.filter((l) => /^\d+,[^,]*,[^,]+,/.test(l));
  let config = text;
  if (machine.length > 0) {
    const unescape = (s: string) => s.replace(/%!\(VAGRANT_COMMA\)/g, ',').replace(/\\n/g, '\n').replace(/\\r/g, '');
    config = machine
      .map((l) => l.split(','))
      .filter((f) => f[2] === 'ssh-config')
      .map((f) => unescape(f.slice(3).join(',')))
      .join('\n');
    if (config.trim() === '') {
      const err = machine.map((l) => l.split(',')).find((f) => f[2] === 'error-exit' || (f[2] === 'ui' && f[3] === 'error'));
      const reason = err ? unescape(err.slice(err[2] === 'ui' ? 4 : 4).join(',')).split('\n')[0] : 'no ssh-config lines';
      throw new CmError(`${source}: no hosts in the vagrant output: ${reason}`, ExitCode.INPUT);
    }
  }
  const result = parseSshConfig(config, source);
  for (const h of result.hosts) h.fields = vagrantFields(h.fields);
  if (result.hosts.length === 0) {
    const first = text.split('\n').find((l) => l.trim() !== '') ?? '(empty)';
    throw new CmError(`${source}: no hosts in the vagrant output: ${first.trim()}`, ExitCode.INPUT);
  }
  // vagrant's keys sit below the project; the absolute path it prints is what ssh needs.
  return result;
}

// Vagrant machines get fresh host keys whenever they are rebuilt, which is why Vagrant itself turns
// host-key checking off: of the ssh options it prints, these two are kept. The rest (LogLevel FATAL
// above all, which would hide ssh's own error messages) are Vagrant's business, not the inventory's.
const VAGRANT_KEPT_OPTIONS = ['UserKnownHostsFile', 'StrictHostKeyChecking'];

/** What the inventory keeps of a machine `vagrant ssh-config` describes (cm-hosts import and cm-vagrant alike). */
export function vagrantFields(fields: HostFields): HostFields {
  const { options, ...rest } = fields;
  const kept = Object.fromEntries(Object.entries(options ?? {}).filter(([k]) => VAGRANT_KEPT_OPTIONS.includes(k)));
  return Object.keys(kept).length > 0 ? { ...rest, options: kept } : rest;
}

function quote(value: string): string {
  return /[\s"#]/.test(value) ? `"${value.replace(/"/g, '')}"` : value;
}

/** The hosts as an ssh_config(5) text, usable with `ssh -F FILE name`. Local hosts are left out. */
export function toSshConfig(hosts: HostRecord[]): string {
  const out: string[] = ['# written by cm-hosts export'];
  for (const h of hosts) {
    if (h.local) {
      out.push(`# ${h.name}: local (no ssh)`);
      continue;
    }
    out.push('', `Host ${h.name}`, `  HostName ${h.address}`);
    if (h.user !== undefined) out.push(`  User ${h.user}`);
    if (h.port !== undefined) out.push(`  Port ${h.port}`);
    if (h.identity !== undefined) out.push(`  IdentityFile ${quote(h.identity)}`, '  IdentitiesOnly yes');
    if (h.jump !== undefined) out.push(`  ProxyJump ${h.jump}`);
    for (const [k, v] of Object.entries(h.options ?? {})) {
      if (k.toLowerCase() === 'identitiesonly' && h.identity !== undefined) continue;
      out.push(`  ${k} ${quote(v)}`);
    }
  }
  return `${out.join('\n')}\n`;
}
