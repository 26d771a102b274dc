// The one Slurm allocation that steps and workers mode run in: asked for with salloc before the first
// job, its nodes become the hosts the Scheduler places jobs on (a node's CPUs / --cpus are its
// slots), and it is given back when the run ends, however it ends: salloc holds it only while its
// command reads a pipe from cm-exec (see sallocArgs).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import type { HostRecord } from '@cm/protocol';
import HOLD_SH from './hold.sh';
import { ALLOCATION_MARKER, detachedSallocArgs, sallocArgs, type SlurmOptions } from './options';
import { parseSlurmTime, runCmd, slurmMessage } from './proc';

export interface Allocation {
  id: string;
  /** the allocated nodes and their CPUs */
  nodes: Array<{ name: string; cpus: number }>;
  /** seconds, undefined when unlimited */
  limit?: number;
  limitText: string;
  /** gives the allocation back (ends every step in it); resolves once salloc has */
  release(): Promise<void>;
}

/** The tag every host of an allocation carries. */
export const SLURM_TAG = 'slurm';

/**
 * Asks for the allocation: as many nodes of the partition as are free (at least one), exclusive.
 * Resolves to Slurm's refusal as a sentence when it says no (bad partition, account, limits), or to
 * 'interrupted' when `signal` aborts while salloc waits in the queue (the request is withdrawn).
 */
export async function allocate(opts: SlurmOptions, env: NodeJS.ProcessEnv, name: string, signal: AbortSignal): Promise<Allocation | string> {
  let maxNodes = 1;
  const part = opts.partition ? ['--partition', opts.partition] : [];
  const info = await runCmd('sinfo', ['-h', '-o', '%D', ...part], env);
  if (info.code === 0) maxNodes = Math.max(1, info.stdout.split('\n').reduce((n, l) => n + (Number(l) || 0), 0));
  const salloc = spawn('salloc', sallocArgs(opts, name, maxNodes), { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const granted = await grantOf(salloc, signal);
  if (typeof granted !== 'string' || !/^\d+$/.test(granted)) {
    salloc.kill('SIGTERM');
    if (signal.aborted) return 'interrupted';
    return `Slurm refused the allocation: ${typeof granted === 'string' ? 'no job id' : slurmMessage(granted.stderr)}`;
  }
  const id = granted;
  return described(id, env, () => relinquish(salloc, id, env));
}

/** The allocation's nodes, CPUs and time limit, as Slurm reports them. */
async function described(id: string, env: NodeJS.ProcessEnv, release: () => Promise<void>): Promise<Allocation> {
  const q = await runCmd('squeue', ['-h', '-j', id, '-o', '%l|%N'], env);
  const [l, nodeList] = q.stdout.trim().split('|');
  const names = await runCmd('scontrol', ['show', 'hostnames', nodeList ?? ''], env);
  const per = await runCmd('sinfo', ['-h', '-N', '-n', nodeList ?? '', '-o', '%N %c'], env);
  const cpusOf = new Map(per.stdout.split('\n').map((line) => line.trim().split(/\s+/) as [string, string]));
  const nodes = names.stdout
    .split('\n')
    .filter(Boolean)
    .map((n) => ({ name: n, cpus: Number(cpusOf.get(n)) || 1 }));
  return { id, nodes, limit: parseSlurmTime(l ?? ''), limitText: l ?? '', release };
}

/** The job id salloc's command prints, or salloc's stderr when it ends (or is stopped) without one. */
function grantOf(salloc: ChildProcessWithoutNullStreams, signal: AbortSignal): Promise<string | { stderr: string }> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    const onAbort = (): void => void salloc.kill('SIGTERM');
    signal.addEventListener('abort', onAbort, { once: true });
    salloc.stdin.on('error', () => undefined);
    salloc.stderr.setEncoding('utf8').on('data', (d: string) => {
      // salloc's own notes; kept for the refusal message (bounded)
      if (err.length < 65536) err += d;
    });
    salloc.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = new RegExp(`^${ALLOCATION_MARKER} (\\S*)$`, 'm').exec(out);
      if (m) {
        signal.removeEventListener('abort', onAbort);
        resolve(m[1]!);
      }
    });
    salloc.on('error', (e) => resolve({ stderr: `salloc: error: ${e.message}` }));
    salloc.on('close', () => {
      signal.removeEventListener('abort', onAbort);
      resolve({ stderr: err });
    });
  });
}

/** Ends salloc's command (its stdin closes), so salloc gives the allocation back; scancel if it is slow. */
async function relinquish(salloc: ChildProcessWithoutNullStreams, id: string, env: NodeJS.ProcessEnv): Promise<void> {
  if (salloc.exitCode !== null || salloc.signalCode !== null) return;
  const ended = new Promise<void>((resolve) => salloc.on('close', () => resolve()));
  salloc.stdin.end();
  const slow = setTimeout(() => void runCmd('scancel', [id], env).catch(() => undefined), 10_000);
  await ended;
  clearTimeout(slow);
}

/**
 * A detached allocation (--reattach-within): it outlives this cm-exec by at most `within` seconds.
 * salloc --no-shell leaves it to Slurm; a watchdog started apart from cm-exec (hold.sh) cancels it
 * once no cm-exec of the run has touched its heartbeat file for `within` seconds. A --resume of the
 * run (`resume`) adopts the allocation still running under the run's name instead of asking again,
 * so what its steps still run is collected there. release() cancels it: once, when the run is done.
 */
export async function allocateDetached(
  opts: SlurmOptions,
  env: NodeJS.ProcessEnv,
  name: string,
  signal: AbortSignal,
  within: number,
  resume: boolean,
): Promise<Allocation | string> {
  const adopted = resume ? await runningAllocation(env, name) : undefined;
  let id = adopted;
  if (id === undefined) {
    let maxNodes = 1;
    const part = opts.partition ? ['--partition', opts.partition] : [];
    const info = await runCmd('sinfo', ['-h', '-o', '%D', ...part], env);
    if (info.code === 0) maxNodes = Math.max(1, info.stdout.split('\n').reduce((n, l) => n + (Number(l) || 0), 0));
    const salloc = spawn('salloc', detachedSallocArgs(opts, name, maxNodes), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const granted = await noShellGrant(salloc, signal);
    if (!/^\d+$/.test(granted)) {
      if (signal.aborted) return 'interrupted';
      return `Slurm refused the allocation: ${slurmMessage(granted)}`;
    }
    id = granted;
  }
  const heartbeat = heartbeatOf(env, id);
  const fresh = !existsSync(heartbeat);
  touch(heartbeat);
  // a watchdog of its own, out of cm-exec's process group: a signal to cm-exec's group spares it
  if (fresh || adopted === undefined) {
    const w = spawn('sh', ['-c', HOLD_SH, 'cm-hold', heartbeat, String(Math.max(MIN_HOLD, within)), id, name.replace(/^cm-/, '')], { env, detached: true, stdio: 'ignore' });
    w.on('error', () => undefined);
    w.unref();
  }
  const beat = setInterval(() => touch(heartbeat), 1000);
  beat.unref();
  let released: Promise<void> | undefined;
  const release = (): Promise<void> =>
    (released ??= (async () => {
      clearInterval(beat);
      rmSync(heartbeat, { force: true });
      await runCmd('scancel', [id], env).catch(() => undefined);
    })());
  return described(id, env, release);
}

/** Seconds a detached allocation outlives its last cm-exec at least: more than the heartbeat's period and the watchdog's look. */
export const MIN_HOLD = 10;

/** The heartbeat file of a detached allocation, on this machine (where its watchdog runs). */
export function heartbeatOf(env: NodeJS.ProcessEnv, id: string): string {
  return join(env.HOME ?? '/tmp', '.cm', 'slurm', `allocation-${id}.alive`);
}

function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    mkdirSync(join(path, '..'), { recursive: true });
    closeSync(openSync(path, 'a'));
  }
}

/** The id of the run's allocation still running (a cm-exec of the run that died left it), if any. */
async function runningAllocation(env: NodeJS.ProcessEnv, name: string): Promise<string | undefined> {
  const q = await runCmd('squeue', ['-h', '-n', name, '-t', 'RUNNING', '-o', '%i'], env);
  const id = q.stdout.split('\n').map((l) => l.trim()).find((l) => /^\d+$/.test(l));
  return q.code === 0 ? id : undefined;
}

/** The job id salloc --no-shell was granted, or its stderr when it was not. */
function noShellGrant(salloc: ChildProcessWithoutNullStreams | ReturnType<typeof spawn>, signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    let err = '';
    const onAbort = (): void => void salloc.kill('SIGTERM');
    signal.addEventListener('abort', onAbort, { once: true });
    salloc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (err.length < 65536) err += d;
    });
    salloc.on('error', (e) => resolve(`salloc: error: ${e.message}`));
    salloc.on('close', (code) => {
      signal.removeEventListener('abort', onAbort);
      const m = /Granted job allocation (\d+)/.exec(err);
      resolve(code === 0 && m ? m[1]! : err);
    });
  });
}

/** The allocation's nodes as hosts: a node's slots are the jobs of --cpus CPUs it holds at once. */
export function allocationHosts(a: Pick<Allocation, 'nodes'>, cpusPerTask = 1): HostRecord[] {
  return a.nodes.map((n) => ({
    kind: 'host',
    v: 1,
    name: n.name,
    address: n.name,
    tags: [SLURM_TAG],
    slots: Math.max(1, Math.floor(n.cpus / cpusPerTask)),
  }));
}

/** The stand-in host of a run that has no allocation (dry run, refused): named after the partition. */
export function partitionHost(opts: SlurmOptions): HostRecord {
  return { kind: 'host', v: 1, name: `slurm:${opts.partition ?? 'default'}`, address: 'slurm', tags: [SLURM_TAG], slots: 1 };
}
