import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CmError, ExitCode, PATTERNS, type HostRecord } from '@cm/protocol';

/**
 * ssh options a user may set per host. Anything that runs a command (ProxyCommand,
 * LocalCommand, KnownHostsCommand) or redirects our own control files is left out on purpose.
 */
export const SSH_OPTION_NAMES = [
  'AddressFamily',
  'BindAddress',
  'CheckHostIP',
  'Ciphers',
  'Compression',
  'ConnectionAttempts',
  'ConnectTimeout',
  'GlobalKnownHostsFile',
  'HostKeyAlgorithms',
  'HostKeyAlias',
  'IdentitiesOnly',
  'IPQoS',
  'KexAlgorithms',
  'LogLevel',
  'MACs',
  'PreferredAuthentications',
  'PubkeyAcceptedAlgorithms',
  'RekeyLimit',
  'ServerAliveCountMax',
  'ServerAliveInterval',
  'StrictHostKeyChecking',
  'TCPKeepAlive',
  'UpdateHostKeys',
  'UserKnownHostsFile',
] as const;

/** The allow-list, lower-cased: ssh option names are case-insensitive. */
export const ALLOWED_SSH_OPTIONS = new Set<string>(SSH_OPTION_NAMES.map((o) => o.toLowerCase()));

const TOKEN = new RegExp(PATTERNS.hostToken);

/** Throws unless `value` is safe to hand to ssh as a host, address or user (never an option). */
export function assertSshToken(what: string, value: string): void {
  if (!TOKEN.test(value)) {
    throw new CmError(
      `${what} ${JSON.stringify(value)} is not allowed: it must start with a letter, digit or _ and hold no spaces or shell characters`,
      ExitCode.INPUT,
    );
  }
}

export interface SshArgOptions {
  /** directory for ControlMaster sockets; no multiplexing when absent */
  controlDir?: string;
  /**
   * the socket of a master another cm command keeps (cm-exec's, for cm-fetch): sessions go through
   * it and never make a master of their own; when it is gone, ssh connects directly
   */
  rideSocket?: string;
  /** seconds an idle master stays up */
  controlPersist?: number;
  connectTimeout?: number;
  /** 'accept-new' (default): trust on first use, refuse changed keys; 'yes': known hosts only, whatever the host's options say */
  hostKeyChecking?: 'accept-new' | 'yes';
  /** extra ssh_config file (tests use a generated one) */
  configFile?: string;
}

/**
 * With AES instructions, AES-GCM costs ssh half the CPU of OpenSSH's default chacha20-poly1305 (200 MB
 * on loopback: 0.17 s against 0.37 s in the local ssh), and a bulk transfer is CPU-bound at both ends.
 * cm's default for every connection: cm-fetch rides the masters of cm-exec (see SshArgOptions.rideSocket),
 * whose cipher its transfers then use.
 * The whole modern list follows, so a server that refuses AES-GCM still agrees on one. Where the CPU
 * lacks them (or is not Linux and we cannot tell), ssh's own order stays.
 */
export const FAST_CIPHERS = ((): string | undefined => {
  try {
    const cpu = readFileSync('/proc/cpuinfo', 'utf8');
    if (!/^(flags|Features)\s*:.*\baes\b/m.test(cpu)) return undefined;
  } catch {
    return undefined;
  }
  return 'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr';
})();

/**
 * The name of a host's master socket in a control folder: what ssh's %C hashes (address, port, user,
 * jump), computed here so that another cm command can find the master of a host without asking ssh.
 * 40 hex digits, as %C.
 */
export function controlName(host: HostRecord): string {
  return createHash('sha1')
    .update(JSON.stringify([host.address, host.port ?? null, host.user ?? null, host.jump ?? null]))
    .digest('hex');
}

/** The ssh arguments up to and including the destination; the remote command goes after them. */
export function sshArgs(host: HostRecord, opts: SshArgOptions = {}): string[] {
  assertSshToken('host address', host.address);
  if (host.user !== undefined) assertSshToken('user', host.user);
  const args: string[] = [];
  if (opts.configFile) args.push('-F', opts.configFile);
  // ssh keeps the first value it sees for an option, so the order is the precedence: what the command
  // line asked for, then the host's own options from the inventory, then cm's defaults.
  args.push('-o', 'BatchMode=yes', '-T');
  if (opts.hostKeyChecking === 'yes') args.push('-o', 'StrictHostKeyChecking=yes');
  if (opts.connectTimeout !== undefined) args.push('-o', `ConnectTimeout=${opts.connectTimeout}`);
  for (const [key, value] of Object.entries(host.options ?? {})) {
    if (!ALLOWED_SSH_OPTIONS.has(key.toLowerCase())) {
      throw new CmError(`ssh option ${JSON.stringify(key)} of host ${host.name} is not on the allow-list`, ExitCode.INPUT);
    }
    if (/[\r\n]/.test(value)) throw new CmError(`ssh option ${key} of host ${host.name} holds a newline`, ExitCode.INPUT);
    args.push('-o', `${key}=${value}`);
  }
  args.push(
    '-o', 'ConnectTimeout=10',
    '-o', 'StrictHostKeyChecking=accept-new',
    '-o', 'ServerAliveInterval=15',
    '-o', 'ServerAliveCountMax=3',
  );
  if (FAST_CIPHERS) args.push('-o', `Ciphers=${FAST_CIPHERS}`);
  if (opts.rideSocket) {
    args.push('-o', 'ControlMaster=no', '-o', `ControlPath=${opts.rideSocket}`);
  } else if (opts.controlDir) {
    args.push(
      '-o', 'ControlMaster=auto',
      '-o', `ControlPath=${opts.controlDir}/${controlName(host)}`,
      '-o', `ControlPersist=${opts.controlPersist ?? 60}`,
    );
  }
  if (host.port !== undefined) args.push('-p', String(host.port));
  if (host.identity !== undefined) args.push('-i', host.identity, '-o', 'IdentitiesOnly=yes');
  if (host.jump !== undefined) {
    for (const hop of host.jump.split(',')) {
      const [user, addr] = hop.includes('@') ? hop.split('@', 2) : [undefined, hop];
      if (user !== undefined) assertSshToken('jump user', user);
      assertSshToken('jump host', (addr ?? '').replace(/:\d+$/, ''));
    }
    args.push('-J', host.jump);
  }
  if (host.user !== undefined) args.push('-l', host.user);
  // `--` ends ssh's options: whatever follows is the destination, never an option.
  args.push('--', host.address);
  return args;
}

/** ssh's own failures (as opposed to the remote command's) exit with 255. */
export const SSH_CONNECTION_FAILURE = 255;
