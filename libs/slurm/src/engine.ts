// `cm-exec --engine slurm` in steps and workers mode: one allocation, its nodes as the hosts, and
// @cm/exec's execute() over them with a Slurm transport. Everything else (slots, dependencies,
// retries, timeouts, --halt, --joblog/--resume, --dry-run, the progress line, the events) is the one
// execution core every engine shares.
import { chooseRun, execute, type ExecIO, type ExecOptions, type Transport } from '@cm/exec';
import { CmError, ExitCode, type HostRecord } from '@cm/protocol';
import { allocate, allocateDetached, allocationHosts, partitionHost, SLURM_TAG, type Allocation } from './allocation';
import { checkPlacement, type SlurmOptions } from './options';
import { preflight } from './proc';
import { refusingTransport, SlurmStepTransport, workersTransport } from './transports';

/** execute()'s options, but for the hosts and transports, which the allocation gives. */
export type CoreOptions = Omit<ExecOptions, 'hosts' | 'select' | 'transports' | 'transport' | 'remoteLoop' | 'keepConnections'>;

export async function execOnAllocation(slurm: SlurmOptions, exec: CoreOptions, io: ExecIO): Promise<number> {
  const env = slurm.env ?? process.env;
  checkPlacement(slurm);
  const run = chooseRun(exec);
  // a dry run asks Slurm for nothing: the jobs are shown against the partition
  if (exec.dryRun) return execute({ ...exec, run, hosts: [partitionHost(slurm)] }, io);
  // exit 4 before a record is read or passed on: a missing Slurm writes nothing to stdout
  await preflight(env);
  // with --reattach-within the allocation outlives a cm-exec that dies, within the bound, and a
  // --resume collects what its steps still run; a --resume also adopts one a dead cm-exec left
  const within = exec.joblog ? (exec.reattachWithin ?? 0) : 0;
  const resume = exec.joblog !== undefined && (exec.resume === true || exec.retryFailed === true);
  const detach = within > 0 || resume ? { within, resume } : undefined;
  const p = await place(slurm, env, `cm-${run}`, io.signal, exec.grace, partitionHost(slurm), detach);
  if (p.refusal !== undefined && p.refusal !== 'interrupted') slurm.warn?.(p.refusal);
  // a SIGHUP with results kept (exit 129) leaves the jobs running: the allocation stays for a
  // --resume, within the bound its watchdog keeps
  let keep = false;
  try {
    const code = await execute({ ...exec, run, hosts: p.hosts, transports: { remote: p.transport } }, io);
    keep = code === 129 && within > 0;
    return code;
  } finally {
    if (!keep) await p.alloc?.release();
  }
}

/** Where a cluster's jobs run: the allocation's nodes and their transport, or the stand-in host whose jobs give up with Slurm's refusal. */
interface Placement {
  hosts: HostRecord[];
  transport: Transport;
  alloc?: Allocation;
  /** why there is no allocation: Slurm's words, or 'interrupted' */
  refusal?: string;
}

async function place(
  slurm: SlurmOptions,
  env: NodeJS.ProcessEnv,
  name: string,
  signal: AbortSignal,
  grace: number | undefined,
  standIn: HostRecord,
  detach?: { within: number; resume: boolean },
): Promise<Placement> {
  const alloc = detach ? await allocateDetached(slurm, env, name, signal, detach.within, detach.resume) : await allocate(slurm, env, name, signal);
  // every job gives up with Slurm's words (dependants are skipped); an interrupt stops the run
  if (typeof alloc === 'string') return { hosts: [standIn], transport: refusingTransport(alloc), refusal: alloc };
  const opts = { slurm, env, grace: grace ?? 2, detached: detach !== undefined };
  const transport = slurm.mode === 'workers' ? workersTransport(alloc, opts) : new SlurmStepTransport(alloc, opts);
  return { hosts: allocationHosts(alloc, slurm.cpusPerTask), transport, alloc };
}

/**
 * A run of the ssh engine whose inventory holds Slurm clusters (entries with `slurm:`): each asks for
 * its allocation before the first job, and its nodes join the hosts, tagged with the entry's name,
 * so a job pinned to the entry (or to @slurm) runs on them while every other job runs on its ssh or
 * local host as always, in one event stream, one joblog and one exit code.
 */
export async function execWithClusters(exec: ExecOptions, io: ExecIO, env: NodeJS.ProcessEnv, warn: (m: string) => void): Promise<number> {
  const clusters = exec.hosts.filter((h) => h.slurm !== undefined);
  if (clusters.length === 0 || exec.dryRun) return execute(exec, io);
  await preflight(env);
  const run = chooseRun(exec);
  const held: Allocation[] = [];
  const opened: Transport[] = [];
  const nodesOf = new Map<string, HostRecord[]>();
  const own = new Map<string, Transport>();
  try {
    for (const c of clusters) {
      const slurm: SlurmOptions = { ...c.slurm, mode: c.slurm?.mode ?? 'steps', env, warn };
      // the entry itself stands in when Slurm refuses: its jobs give up with Slurm's words
      const p = await place(slurm, env, `cm-${run}-${c.name}`, io.signal, exec.grace, c);
      if (p.refusal !== undefined && p.refusal !== 'interrupted') warn(`${c.name}: ${p.refusal}`);
      if (p.alloc) held.push(p.alloc);
      const nodes = p.alloc ? p.hosts.map((h) => ({ ...h, tags: [...new Set([SLURM_TAG, c.name, ...c.tags])] })) : p.hosts;
      opened.push(p.transport);
      nodesOf.set(c.name, nodes);
      for (const n of nodes) own.set(n.name, p.transport);
    }
    const plain = exec.hosts.filter((h) => h.slurm === undefined);
    const hosts = [...plain, ...[...nodesOf.values()].flat()];
    const clash = plain.find((h) => own.has(h.name));
    if (clash) throw new CmError(`host ${clash.name} of the inventory has the name of a node of a Slurm allocation`, ExitCode.INPUT);
    // a pin that names a cluster entry means its nodes
    const expand = (hs: HostRecord[]): HostRecord[] => hs.flatMap((h) => (h.slurm !== undefined ? (nodesOf.get(h.name) ?? []) : [h]));
    const select = (pin: string): HostRecord[] => expand(exec.select ? exec.select(pin) : []);
    return await execute({ ...exec, run, hosts, select, transports: { ...exec.transports, forHost: (h) => own.get(h.name) } }, io);
  } finally {
    for (const t of opened) await t.close();
    for (const a of held) await a.release();
  }
}
