import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import type { HostRecord } from '@cm/protocol';
import { controlName, FAST_CIPHERS, sshArgs } from './args';

const host = (extra: Partial<HostRecord> = {}): HostRecord => ({ kind: 'host', v: 1, name: 'h', address: '127.0.0.1', tags: [], slots: 1, ...extra });

/** What ssh itself makes of the arguments: `ssh -G` prints the resolved config and connects nowhere. */
function resolved(args: string[]): Map<string, string> {
  const at = args.indexOf('--');
  const out = execFileSync('ssh', ['-G', ...args.slice(0, at), ...args.slice(at)], { encoding: 'utf8' });
  return new Map(out.split('\n').filter(Boolean).map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)]));
}

describe('sshArgs', () => {
  it('ends options with -- before the destination', () => {
    const args = sshArgs(host({ user: 'u', port: 2222 }));
    expect(args.slice(-2)).toEqual(['--', '127.0.0.1']);
    expect(args).toContain('BatchMode=yes');
  });

  it("lets the host's options win over cm's defaults, and the command line over both", () => {
    const h = host({ options: { ServerAliveInterval: '2', ConnectTimeout: '3', StrictHostKeyChecking: 'no' } });
    const plain = resolved(sshArgs(h));
    expect(plain.get('serveraliveinterval')).toBe('2');
    expect(plain.get('connecttimeout')).toBe('3');
    expect(plain.get('stricthostkeychecking')).toBe('false');
    const strict = resolved(sshArgs(h, { hostKeyChecking: 'yes', connectTimeout: 7 }));
    expect(strict.get('stricthostkeychecking')).toBe('true');
    expect(strict.get('connecttimeout')).toBe('7');
    const defaults = resolved(sshArgs(host()));
    expect(defaults.get('serveraliveinterval')).toBe('15');
    expect(defaults.get('stricthostkeychecking')).toBe('accept-new');
  });

  it("names a host's master socket as %C would (address, port, user, jump), and rides another's master without making one", () => {
    const own = resolved(sshArgs(host({ user: 'u' }), { controlDir: '/tmp/c', controlPersist: 9 }));
    expect(own.get('controlmaster')).toBe('auto');
    expect(own.get('controlpath')).toBe(`/tmp/c/${controlName(host({ user: 'u' }))}`);
    expect(controlName(host({ user: 'u' }))).toMatch(/^[0-9a-f]{40}$/);
    // the same destination under another inventory name shares the master; another user does not
    expect(controlName(host({ user: 'u', name: 'other' }))).toBe(controlName(host({ user: 'u' })));
    expect(controlName(host({ user: 'v' }))).not.toBe(controlName(host({ user: 'u' })));
    expect(controlName(host({ user: 'u', port: 2222 }))).not.toBe(controlName(host({ user: 'u' })));
    const ride = resolved(sshArgs(host(), { controlDir: '/tmp/c', rideSocket: '/tmp/x/abc' }));
    expect(ride.get('controlmaster')).toBe('false');
    expect(ride.get('controlpath')).toBe('/tmp/x/abc');
  });

  it.runIf(FAST_CIPHERS !== undefined)("prefers AES-GCM where the CPU has AES instructions, after the host's own Ciphers", () => {
    expect(resolved(sshArgs(host())).get('ciphers')).toBe(FAST_CIPHERS);
    expect(resolved(sshArgs(host({ options: { Ciphers: 'aes256-ctr' } }))).get('ciphers')).toBe('aes256-ctr');
  });

  it('refuses what would become an option or shell code, and options off the allow-list', () => {
    expect(() => sshArgs(host({ address: '-oProxyCommand=touch x' }))).toThrow(/not allowed/);
    expect(() => sshArgs(host({ user: 'a;b' }))).toThrow(/not allowed/);
    expect(() => sshArgs(host({ jump: '-J' }))).toThrow(/not allowed/);
    expect(() => sshArgs(host({ options: { ProxyCommand: 'sh' } }))).toThrow(/allow-list/);
    expect(() => sshArgs(host({ options: { LogLevel: 'ERROR\nProxyCommand sh' } }))).toThrow(/newline/);
  });
});
