// `cm-exec --engine slurm` in steps and workers mode: one allocation, its nodes as the hosts, and
// @cm/exec's execute() over them with a Slurm transport. Everything else (slots, dependencies,
// retries, timeouts, --halt, --joblog/--resume, --dry-run, the progress line, the events) is the one
// execution core every engine shares.
import { chooseRun, execute, type ExecIO, type ExecOptions, type Transport } from '@cm/exec';
import { CmError, ExitCode, type HostRecord } from '@cm/protocol';
import { allocate, allocationHosts, partitionHost, SLURM_TAG, type Allocation } from './allocation';
import { checkToken, type SlurmOptions } from './options';
import { preflight } from './proc';
import { refusingTransport, SlurmStepTransport, workersTransport } from './transports';

/** execute()'s options, but for the hosts and transports, which the allocation gives. */
export type CoreOptions = Omit<ExecOptions, 'hosts' | 'select' | 'transports' | 'transport' | 'remoteLoop' | 'keepConnections'>;

export async function execOnAllocation(slurm: SlurmOptions, exec: CoreOptions, io: ExecIO): Promise<number> {
  const env = slurm.env ?? process.env;
  checkToken('partition', slurm.partition);
  checkToken('account', slurm.account);
  checkToken('qos', slurm.qos);
  const run = chooseRun(exec);
  // a dry run asks Slurm for nothing: the jobs are shown against the partition
  if (exec.dryRun) return execute({ ...exec, run, hosts: [partitionHost(slurm)] }, io);
  // exit 4 before a record is read or passed on: a missing Slurm writes nothing to stdout
  await preflight(env);
  const alloc = await allocate(slurm, env, `cm-${run}`, io.signal);
  let hosts: HostRecord[];
  let transport: Transport;
  if (typeof alloc === 'string') {
    // every job gives up with Slurm's words (dependants are skipped); an interrupt stops the run
    if (alloc !== 'interrupted') slurm.warn?.(alloc);
    hosts = [partitionHost(slurm)];
    transport = refusingTransport(alloc);
  } else {
    hosts = allocationHosts(alloc, slurm.cpusPerTask);
    transport = transportFor(slurm, alloc, env, exec.grace ?? 2);
  }
  try {
    return await execute({ ...exec, run, hosts, transports: { remote: transport } }, io);
  } finally {
    if (typeof alloc !== 'string') await alloc.release();
  }
}

function transportFor(slurm: SlurmOptions, alloc: Allocation, env: NodeJS.ProcessEnv, grace: number): Transport {
  const opts = { slurm, env, grace };
  return slurm.mode === 'workers' ? workersTransport(alloc, opts) : new SlurmStepTransport(alloc, opts);
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
      const alloc = await allocate(slurm, env, `cm-${run}-${c.name}`, io.signal);
      let nodes: HostRecord[];
      let transport: Transport;
      if (typeof alloc === 'string') {
        // the entry stays one host whose jobs give up with Slurm's words
        if (alloc !== 'interrupted') warn(`${c.name}: ${alloc}`);
        nodes = [c];
        transport = refusingTransport(alloc);
      } else {
        held.push(alloc);
        nodes = allocationHosts(alloc).map((h) => ({ ...h, tags: [...new Set([SLURM_TAG, c.name, ...c.tags])] }));
        transport = transportFor(slurm, alloc, env, exec.grace ?? 2);
      }
      opened.push(transport);
      nodesOf.set(c.name, nodes);
      for (const n of nodes) own.set(n.name, transport);
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
