// `cm-hosts check`: one plain ssh per host, all at once (bounded), each running a tiny POSIX sh probe,
// so checking 64 hosts costs about one round trip instead of 64.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { CmError, ExitCode, type CheckRecord, type HostRecord } from '@cm/protocol';
import { sshArgs, SSH_CONNECTION_FAILURE } from '@cm/ssh';
import PROBE_SH from './probe.sh';

/** The NDJSON record `cm-hosts check --json` writes, one per host (defined in @cm/protocol). */
export type { CheckRecord };

// probe.sh's code lines, joined: one argument to sh that survives any login shell
const PROBE = PROBE_SH.split('\n')
  .filter((l) => l.trim() !== '' && !l.startsWith('#'))
  .join('; ');
if (/[!']/.test(PROBE)) throw new Error('probe.sh must hold no single quote and no !');
export const PROBE_COMMAND = `exec sh -c '${PROBE}'`;

/** Turns ssh's stderr into a short reason people and scripts can match on. */
export function classifySshError(stderr: string): string {
  const rules: Array<[RegExp, string]> = [
    [/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i, 'host key changed'],
    [/Host key verification failed/i, 'host key verification failed'],
    [/Connection refused/i, 'connection refused'],
    [/timed out|Operation timed out/i, 'timed out'],
    [/Permission denied/i, 'permission denied'],
    [/Could not resolve hostname|Name or service not known|nodename nor servname|Temporary failure in name resolution/i, 'name not resolved'],
    [/No route to host/i, 'no route to host'],
    [/Network is unreachable/i, 'network unreachable'],
    [/Connection reset|Connection closed|kex_exchange_identification/i, 'connection closed'],
  ];
  for (const [re, reason] of rules) if (re.test(stderr)) return reason;
  const last = stderr.trim().split('\n').filter((l) => l.trim() !== '').pop();
  return last ? last.trim().slice(0, 200) : 'ssh failed';
}

export function parseProbe(stdout: string): { cpus?: number; load?: number[]; hostname?: string } {
  const out: { cpus?: number; load?: number[]; hostname?: string } = {};
  for (const line of stdout.split('\n')) {
    const m = /^cm-probe (\w+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    const value = (m[2] as string).trim();
    if (m[1] === 'cpus' && /^\d+$/.test(value) && Number(value) > 0) out.cpus = Number(value);
    if (m[1] === 'load') {
      const nums = value.replace(/[{}]/g, ' ').trim().split(/\s+/).slice(0, 3).map(Number);
      if (nums.length === 3 && nums.every((n) => Number.isFinite(n))) out.load = nums;
    }
    if (m[1] === 'hostname' && value !== '') out.hostname = value;
  }
  return out;
}

export interface CheckOptions {
  /** seconds for the whole probe of one host */
  timeout: number;
  /** most ssh processes at once */
  parallel: number;
  signal?: AbortSignal;
  /** program to run instead of `ssh` */
  ssh?: string;
  /** extra ssh_config file (-F) */
  configFile?: string;
  /** put curve25519 first in the key exchange list (default true) */
  preferFastKex?: boolean;
}

/** `^` puts these at the head of ssh's default list (OpenSSH >= 8.2) instead of replacing it. */
export const FAST_KEX = '^curve25519-sha256,curve25519-sha256@libssh.org';

function localCheck(host: HostRecord): CheckRecord {
  const cpus = os.availableParallelism();
  return {
    kind: 'check', v: 1, host: host.name, address: host.address, up: true, rtt_ms: 0, cpus,
    load: os.loadavg().map((n) => Math.round(n * 100) / 100), hostname: os.hostname(), slots: host.slots, suggested_slots: cpus, local: true,
  };
}

function sshCheck(host: HostRecord, opts: CheckOptions, running: Set<ChildProcess>): Promise<CheckRecord> {
  // The default post-quantum key exchange (sntrup761x25519) costs ~85 ms of client CPU per connection,
  // curve25519 ~10 ms: with 64 probes on 2 cores that is most of the run. The probe carries nothing
  // secret, so check puts curve25519 first (the rest of the default list stays as a fallback); a
  // host's own KexAlgorithms wins.
  const ownKex = Object.keys(host.options ?? {}).some((k) => k.toLowerCase() === 'kexalgorithms');
  const probed: HostRecord = ownKex || opts.preferFastKex === false ? host : { ...host, options: { ...host.options, KexAlgorithms: FAST_KEX } };
  const args = [
    ...sshArgs(probed, { connectTimeout: Math.max(1, Math.ceil(opts.timeout)), configFile: opts.configFile }),
    PROBE_COMMAND,
  ];
  const started = process.hrtime.bigint();
  const elapsed = () => Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;
  return new Promise((resolve, reject) => {
    const child = spawn(opts.ssh ?? 'ssh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 64 * 1024) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 64 * 1024) stderr += d;
    });
    running.add(child);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeout * 1000);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      running.delete(child);
      if (err.code === 'ENOENT') reject(new CmError(`${opts.ssh ?? 'ssh'} not found: install the OpenSSH client`, ExitCode.ENVIRONMENT));
      else reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      const base = { kind: 'check' as const, v: 1 as const, host: host.name, address: host.address, rtt_ms: elapsed(), slots: host.slots };
      const probe = parseProbe(stdout);
      if (code === 0 && probe.cpus !== undefined) {
        resolve({ ...base, up: true, ...probe, suggested_slots: probe.cpus });
        return;
      }
      let reason: string;
      if (timedOut) reason = 'timed out';
      else if (opts.signal?.aborted) reason = 'interrupted';
      else if (code === SSH_CONNECTION_FAILURE) reason = classifySshError(stderr);
      else reason = `probe failed (exit ${code ?? 'signal'}): ${stderr.trim().split('\n').pop() ?? ''}`.trim();
      resolve({ ...base, up: false, reason });
    });
  });
}

/**
 * Probes every host, at most `parallel` at a time, calling `onResult` as each answers (completion
 * order). Resolves with all results in the order of `hosts`.
 */
export async function checkHosts(hosts: HostRecord[], opts: CheckOptions, onResult?: (r: CheckRecord) => void | Promise<void>): Promise<CheckRecord[]> {
  const results: CheckRecord[] = new Array(hosts.length);
  let next = 0;
  // One abort listener for all probes (not one per ssh: 64 would trip Node's leak warning).
  const running = new Set<ChildProcess>();
  const stopAll = () => {
    for (const c of running) c.kill('SIGKILL');
  };
  opts.signal?.addEventListener('abort', stopAll, { once: true });
  const worker = async (): Promise<void> => {
    while (next < hosts.length && !opts.signal?.aborted) {
      const i = next++;
      const host = hosts[i] as HostRecord;
      const r = host.local ? localCheck(host) : await sshCheck(host, opts, running);
      results[i] = r;
      await onResult?.(r);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.parallel, hosts.length)) }, worker));
  } finally {
    opts.signal?.removeEventListener('abort', stopAll);
  }
  return results.filter((r) => r !== undefined);
}
