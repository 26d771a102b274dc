import { createReadStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExitCode, readRecords, workdirOf, RecordWriter, type EventRecord, type FetchRecord, type HostRecord, type JobRecord } from '@cm/protocol';
import { EXIT_CODES, flag, intOpt, str, type CommandIO, type DocoptArgs } from '@cm/cli';
import { loadInventory, type Inventory } from '@cm/inventory';
import { Connections, FetchQueue, Limiter, Stager, type FetchOutcome } from '@cm/transfer';

export const USAGE = `
cm-fetch: copy job outputs back from the hosts as jobs finish (and stage inputs in).

Follows the events of cm-exec on stdin. For each \`finished\` event with exit 0 that declares
\`outputs\` or a \`result\` file, copies those files (relative to the job's \`workdir\`) back into
<dir>/<run>/<job>/ and prints a \`fetch\` record: direction "out", the files with local path, size
and sha256, \`result\` = local path of the job's result file. Every record is passed on at once, in
order; each fetch record follows when its transfer is done, while other jobs still run.

One \`ssh host 'tar -cf - ...'\` per transfer, through one ControlMaster connection per host that
cm-fetch opens in its own private directory and closes at exit (local hosts: \`sh -c\` in $HOME).
A job is fetched as soon as it finishes when a transfer is free; jobs that finish while all are
busy wait and then leave together, up to 64 of one host in one archive.
The archive is read by cm-fetch itself: a name that is absolute or holds \`..\`, a symlink, a device
or fifo is refused (an error in the fetch record, ok: false) and never written; the job's other
files are still fetched. Files are written to temp names, checked against the size in the
archive and the sha256 the host computes (sha256sum; --no-verify skips it), then renamed.
A broken connection, cut stream or checksum mismatch is retried (--retries), then reported.
A local write error (a full disk, EIO, permissions) fails the transfer at once, not retried:
its temp files are removed, the remote tar is stopped, and each job of that archive gets an
ok: false fetch record with the error (exit 1); the files stay on the host for a later fetch.

--stage-in runs in front of cm-exec instead: for each \`job\` record with \`inputs\` (local files or
directories), copies each input once per host into ~/.cm/stage/<sha256>/<name> on every host the
job may run on (its \`host\` pin, else the whole inventory), then passes the job on with a command
that first symlinks the inputs into the job's directory, preceded by a fetch record (direction
"in"). A host that cannot be reached is named in the record's error (ok stays true while some
host has the inputs; a job that lands on a host without them exits 125 saying so). Jobs sharing
an input share one copy per host; inputs are shared, so treat them as read-only. Records keep
their order: a job waits for its inputs, later records wait for it. Stage-in lives here, not in
cm-exec, so the transfer code stays in one library (@cm/transfer) and cm-exec stays a scheduler.

Usage:
  cm-fetch [options] [<file>]
  cm-fetch --stage-in [options] [<file>]
  cm-fetch -h | --help

Options:
  --dir DIR          Root of the local results tree [default: results].
  --transfers N      At most N transfers at once (and at most 8 per host) [default: 4].
  --retries N        Retry a failed transfer N times before reporting it [default: 2].
  --no-verify        Check sizes only; skip the sha256sum on the host.
  --stage-in         Stage job inputs to the hosts (in front of cm-exec).
  -i --inventory FILE  Inventory file (else $CM_INVENTORY, ./cm.yaml, ...; see cm-hosts).

Common options:
  -h --help          Show this text.

${EXIT_CODES}
  (1 here: some transfer failed or was refused; its fetch record says why)

Examples:
  cm-plan plan.cm | cm-exec | cm-fetch --dir results | cm-reduce
  cm-plan plan.cm | cm-fetch --stage-in | cm-exec | cm-fetch | cm-reduce --partial
  cm-exec < jobs.ndjson | cm-fetch --transfers 8 | grep '"kind":"fetch"'
`;

const PER_HOST = 8;
const MAX_BATCH = 64;

export interface Args {
  file?: string;
  dir: string;
  transfers: number;
  retries: number;
  verify: boolean;
  stageIn: boolean;
  inventory?: string;
}

export function toArgs(a: DocoptArgs): Args {
  const file = str(a, '<file>');
  return {
    file: file === '-' ? undefined : file,
    dir: str(a, '--dir') ?? 'results',
    transfers: intOpt(a, '--transfers', { min: 1 }) ?? 4,
    retries: intOpt(a, '--retries', { min: 0 }) ?? 2,
    verify: !flag(a, '--no-verify'),
    stageIn: flag(a, '--stage-in'),
    inventory: str(a, '--inventory'),
  };
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  const writer = new RecordWriter(io.stdout);
  const source = args.file ?? 'stdin';
  const input = args.file ? createReadStream(path.resolve(io.cwd, args.file)) : io.stdin;
  const home = io.env.HOME && io.env.HOME !== '' ? io.env.HOME : os.homedir();
  let inventory: Promise<Inventory> | undefined;
  const hosts = (): Promise<Inventory> => (inventory ??= loadInventory({ path: args.inventory, env: io.env, cwd: io.cwd }));
  const conns = new Connections({ home, env: io.env });
  const limiter = new Limiter(args.transfers, PER_HOST);
  const queue = new FetchQueue(
    conns,
    { dir: path.resolve(io.cwd, args.dir), retries: args.retries, verify: args.verify, signal: io.signal },
    { transfers: args.transfers, perHost: PER_HOST, maxBatch: MAX_BATCH },
  );
  const inflight = new Set<Promise<void>>();
  let failed = 0;
  let stopped = false;
  writer.onClose(() => {
    stopped = true;
    input.destroy();
  });

  // A broken inventory is the whole run's problem (exit 3), not one job's.
  let fatal: unknown;
  const inventoryOrStop = async (): Promise<Inventory> => {
    try {
      return await hosts();
    } catch (err) {
      fatal ??= err;
      input.destroy();
      throw err;
    }
  };
  const findHost = async (name: string | undefined): Promise<HostRecord> => {
    if (name === undefined) throw new Error('the event names no host');
    const inv = await inventoryOrStop();
    const host = inv.hosts.find((h) => h.name === name);
    if (!host) throw new Error(`host ${name} is not in ${inv.source}`);
    return host;
  };

  const fetchFor = async (ev: EventRecord & { job: string }): Promise<void> => {
    const run = ev.run ?? '_';
    let out: FetchOutcome;
    try {
      const host = await findHost(ev.host);
      out = await queue.add({ job: ev.job, run, host, workdir: ev.workdir ?? workdirOf(run, ev.job), outputs: ev.outputs ?? [], result: ev.result });
    } catch (err) {
      if (fatal) return;
      out = { ok: false, files: [], attempt: 1, error: (err as Error).message };
    }
    // Built field by field so the record reads in the order of docs/protocol.md.
    const rec = { kind: 'fetch', v: 1, job: ev.job } as FetchRecord;
    if (ev.task !== undefined) rec.task = ev.task;
    rec.run = run;
    if (ev.host !== undefined) rec.host = ev.host;
    rec.direction = 'out';
    rec.ok = out.ok;
    rec.files = out.files;
    if (out.result !== undefined) rec.result = out.result;
    rec.attempt = out.attempt;
    if (out.error !== undefined) rec.error = out.error;
    if (ev.sweep !== undefined) rec.sweep = ev.sweep;
    if (ev.index !== undefined) rec.index = ev.index;
    if (!rec.ok) {
      failed += 1;
      io.stderr.write(`cm-fetch: job ${ev.job}: ${rec.error ?? 'failed'}\n`);
    }
    await writer.write(rec);
  };

  // --stage-in keeps records in order: each waits for the one before it.
  let chain: Promise<void> = Promise.resolve();
  let queued = 0;
  const stager = new Stager(conns, { cwd: io.cwd, retries: args.retries, limit: (key, fn) => limiter.run(key, fn) });
  const stageFor = async (job: JobRecord, raw: string): Promise<string[]> => {
    if (!job.inputs || job.inputs.length === 0) return [raw];
    const inv = await inventoryOrStop();
    try {
      const targets = inv.select(job.host);
      const staged = await stager.stageJob(job, targets);
      const rec: FetchRecord = { kind: 'fetch', v: 1, job: job.id, task: job.task, direction: 'in', ok: true, files: staged.files };
      if (job.run !== undefined) rec.run = job.run;
      if (staged.unstaged.length > 0) {
        rec.error = `not staged on ${staged.unstaged.join('; ')}`;
        io.stderr.write(`cm-fetch: job ${job.id}: ${rec.error}\n`);
      }
      return [JSON.stringify(rec), JSON.stringify(staged.job)];
    } catch (err) {
      failed += 1;
      io.stderr.write(`cm-fetch: job ${job.id}: ${(err as Error).message}\n`);
      const rec: FetchRecord = { kind: 'fetch', v: 1, job: job.id, task: job.task, direction: 'in', ok: false, files: [], error: (err as Error).message };
      // The job still goes on: cm-exec runs it, and it fails visibly without its inputs.
      return [JSON.stringify(rec), raw];
    }
  };

  try {
    for await (const { record, raw: line } of readRecords(input, { source })) {
      if (stopped || io.signal.aborted || fatal) break;
      if (args.stageIn) {
        const out = record.kind === 'job' ? stageFor(record as JobRecord, line) : Promise.resolve([line]);
        out.catch(() => undefined);
        queued += 1;
        chain = chain.then(async () => {
          queued -= 1;
          for (const l of await out) {
            const w = writer.writeLine(l);
            if (w) await w;
          }
        });
        // Bound memory: do not read far ahead of what has been written.
        if (queued > 1000) await chain;
        continue;
      }
      const w = writer.writeLine(line);
      if (w) await w;
      if (record.kind !== 'event') continue;
      const ev = record as EventRecord;
      if (ev.event !== 'finished' || ev.exit !== 0 || ev.job === undefined) continue;
      const wantsResult = ev.result !== undefined && ev.result !== 'stdout';
      if ((ev.outputs?.length ?? 0) === 0 && !wantsResult) continue;
      const p: Promise<void> = fetchFor(ev as EventRecord & { job: string }).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await chain;
    await Promise.all(inflight);
  } catch (err) {
    await Promise.allSettled([chain, ...inflight]);
    await conns.close();
    if (fatal) throw fatal;
    if (stopped) return ExitCode.OK;
    throw err;
  }
  if (fatal) {
    await conns.close();
    throw fatal;
  }
  await conns.close();
  if (stopped) return ExitCode.OK;
  if (io.signal.aborted) throw io.signal.reason;
  await writer.end();
  return failed > 0 ? ExitCode.FAILURES : ExitCode.OK;
}
