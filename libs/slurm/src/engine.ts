// `cm-exec --engine slurm` in steps and workers mode: one allocation, its nodes as the hosts, and
// @cm/exec's execute() over them with a Slurm transport. Everything else (slots, dependencies,
// retries, timeouts, --halt, --joblog/--resume, --dry-run, the progress line, the events) is the one
// execution core every engine shares.
import { chooseRun, execute, type ExecIO, type ExecOptions, type Transport } from '@cm/exec';
import type { HostRecord } from '@cm/protocol';
import { allocate, allocationHosts, partitionHost, type Allocation } from './allocation';
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
