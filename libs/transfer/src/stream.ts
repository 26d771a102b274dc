// cm-fetch's whole stream: finished events in, their declared outputs copied into the results
// tree (fetch records out, direction "out"), or with stageIn, jobs' inputs copied to their hosts first
// (direction "in"); every record passes on, in order. The command only picks the input and calls this.
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { loadInventory, type Inventory } from '@cm/inventory';
import { ExitCode, leavesFiles, readRecordBatches, RecordWriter, workdirOf, type EventRecord, type FetchRecord, type HostRecord, type JobRecord } from '@cm/protocol';
import { Connections } from './connections';
import { FetchServers } from './server';
import type { FetchOutcome } from './fetch';
import { alreadyFetched } from './fetched';
import { Limiter } from './limit';
import { FetchQueue } from './queue';
import { resultFolder } from './paths';
import { Stager } from './stage';
import { storeError, storeFetched, withRetries } from './catalogue';
import { LocationError, objectUrl, parseLocation, type Location } from './location';
import { openLocation } from './stores';

const PER_HOST = 8;
const MAX_BATCH = 64;

export interface TransferOptions {
  /** root of the local results tree */
  dir: string;
  /** transfers at once (at most PER_HOST per host) */
  transfers: number;
  retries: number;
  /** sha256 of every file on the host against what arrived */
  verify: boolean;
  stageIn: boolean;
  /** leave the job directories on the hosts (else removed once their files are fetched and verified) */
  keepWorkdirs?: boolean;
  /** inventory file (else the usual search) */
  inventory?: string;
  /** a location URL: each job's fetched files are stored there too, with their record */
  to?: string;
  /** --stage-in: a location URL the jobs' inputs are taken from (by file name) */
  from?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface TransferIO {
  input: Readable;
  /** the input's name in messages (a file, or stdin) */
  source: string;
  stdout: Writable;
  stderr: Writable;
  signal: AbortSignal;
}

export async function transferStream(opts: TransferOptions, io: TransferIO): Promise<number> {
  // the records of one turn leave in one write: a line each was a write(2) each, 4,000 of them for
  // 1,000 jobs (queued, started, finished, fetch), and as many wake-ups of the reader downstream
  const writer = new RecordWriter(io.stdout, { batch: true });
  const { input, source } = io;
  const home = opts.env.HOME && opts.env.HOME !== '' ? opts.env.HOME : os.homedir();
  let inventory: Promise<Inventory> | undefined;
  const hosts = (): Promise<Inventory> => (inventory ??= loadInventory({ path: opts.inventory, env: opts.env, cwd: opts.cwd }));
  // each event's host by name, not by a scan of the inventory: a job costs the same on a thousand hosts
  let byName: Map<string, HostRecord> | undefined;
  const hostNamed = (inv: Inventory, name: string): HostRecord | undefined =>
    (byName ??= new Map(inv.hosts.map((h) => [h.name, h]))).get(name);
  const conns = new Connections({ home, env: opts.env });
  const limiter = new Limiter(opts.transfers, PER_HOST);
  // CM_REMOTE_LOOP=sh (as cm-exec --remote-loop sh): no perl on the hosts, one `ssh tar` per batch
  const servers = opts.env.CM_REMOTE_LOOP === 'sh' ? undefined : new FetchServers(conns);
  const stopServers = (): void => servers?.close(true);
  io.signal.addEventListener('abort', stopServers, { once: true });
  // servers still starting for warm(): closing their connections under them is not safe
  const warming = new Set<Promise<unknown>>();
  const closeAll = async (): Promise<void> => {
    await Promise.allSettled(warming);
    io.signal.removeEventListener('abort', stopServers);
    servers?.close();
    await conns.close();
  };
  const queue = new FetchQueue(
    conns,
    {
      dir: path.resolve(opts.cwd, opts.dir),
      retries: opts.retries,
      verify: opts.verify,
      signal: io.signal,
      warn: (m) => io.stderr.write(`cm-fetch: ${m}\n`),
      servers,
      trace: Number(opts.env.CM_TRACE) >= 2 ? (what) => io.stderr.write(`cm-fetch +${performance.now().toFixed(1)} ${what}\n`) : undefined,
    },
    { transfers: opts.transfers, perHost: PER_HOST, maxBatch: MAX_BATCH },
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
    const host = hostNamed(inv, name);
    if (!host) throw new Error(`host ${name} is not in ${inv.source}`);
    return host;
  };

  const dirOf = path.resolve(opts.cwd, opts.dir);
  // a bad URL is a usage error before anything runs; the location itself opens on first use
  if (opts.to !== undefined) parseLocation(opts.to, opts.cwd);
  if (opts.from !== undefined) parseLocation(opts.from, opts.cwd);
  const locations = new Map<string, Promise<Location>>();
  const location = (url: string): Promise<Location> => {
    let l = locations.get(url);
    if (!l) {
      l = openLocation(url, { cwd: opts.cwd, env: opts.env, conns, host: findHost });
      locations.set(url, l);
    }
    return l;
  };
  const retry = { retries: opts.retries, signal: io.signal };
  // two jobs of a run with the same task and parameters: the second keeps to its id's folder
  const folders = new Map<string, string>();
  const folderOf = (ev: EventRecord & { job: string }, run: string): string => {
    const want = resultFolder({ job: ev.job, task: ev.task, params: ev.params });
    const key = `${run}/${want}`;
    const owner = folders.get(key) ?? ev.job;
    folders.set(key, owner);
    return owner === ev.job ? want : ev.job;
  };

  const fetchFor = async (ev: EventRecord & { job: string }): Promise<void> => {
    const run = ev.run ?? '_';
    let out: FetchOutcome;
    try {
      const host = await findHost(ev.host);
      const workdir = ev.workdir ?? workdirOf(run, ev.job);
      // only the directory cm-exec made for this very job, never a folder an event merely names
      const remove = !opts.keepWorkdirs && ev.kept !== true && workdir === workdirOf(run, ev.job);
      const job = { job: ev.job, run, folder: folderOf(ev, run), remove, host, workdir, outputs: ev.outputs ?? [], result: ev.result };
      out = await queue.add(job);
      // --resume replayed it: its folder may be gone from the host because its files are home already
      if (!out.ok && ev.replayed === true) out = (await alreadyFetched(dirOf, job)) ?? out;
    } catch (err) {
      if (fatal) return;
      out = { ok: false, files: [], attempt: 1, error: (err as Error).message };
    }
    // Built field by field so the record reads in the order of docs/protocol.md.
    let rec = { kind: 'fetch', v: 1, job: ev.job } as FetchRecord;
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
    if (ev.params !== undefined) rec.params = ev.params;
    if (opts.to !== undefined && rec.ok && rec.files.length > 0) {
      const to = opts.to;
      try {
        const loc = await location(to);
        rec = await limiter.run(`store ${to}`, () => storeFetched(loc, dirOf, rec, retry));
      } catch (err) {
        // nothing of this job is listed at the location; its files stay in the local tree
        rec.ok = false;
        rec.error = err instanceof LocationError ? err.message : storeError(err);
        rec.to = parseLocation(to, opts.cwd).url;
      }
    }
    if (!rec.ok) {
      failed += 1;
      io.stderr.write(`cm-fetch: job ${ev.job}: ${rec.error ?? 'failed'}\n`);
    }
    await writer.write(rec);
  };

  // A host's server starts with the first job started there that will leave files to fetch (its
  // started event names its outputs), not its first finished one: its login (a key exchange, on
  // hosts busy with the run) then overlaps the job instead of delaying the fetch. A run whose jobs
  // leave nothing to fetch opens no connection.
  const warmed = new Set<string>();
  const warm = (name: string): void => {
    if (!servers || warmed.has(name)) return;
    warmed.add(name);
    // the inventory's own errors are for the first fetch to report, as without this
    const p = hosts()
      .then((inv) => {
        const host = hostNamed(inv, name);
        return host && servers.get(host);
      })
      .catch(() => undefined)
      .finally(() => warming.delete(p));
    warming.add(p);
  };

  // --stage-in keeps records in order: each waits for the one before it.
  let chain: Promise<void> = Promise.resolve();
  let queued = 0;
  const stager = new Stager(conns, { cwd: opts.cwd, retries: opts.retries, limit: (key, fn) => limiter.run(key, fn) });
  // inputs taken from a location: brought into <dir>/.cm/inputs/ once per run, checked, then staged
  const pulled = new Map<string, Promise<{ local: string; url: string; provider: string }>>();
  const pull = (input: string): Promise<{ local: string; url: string; provider: string }> | undefined => {
    const isUrl = /^(file|ssh|az|s3):/.test(input);
    if (!isUrl && opts.from === undefined) return undefined;
    const base = isUrl ? input.replace(/\/+[^/]*$/, '') : (opts.from as string);
    const key = path.posix.basename(input);
    const id = `${base}\0${key}`;
    let p = pulled.get(id);
    if (!p) {
      const n = pulled.size;
      p = (async () => {
        const loc = await location(base);
        const local = path.join(dirOf, '.cm', 'inputs', loc.spec.provider, String(n), key);
        try {
          await withRetries(() => loc.getToFile(key, local), retry);
        } catch (err) {
          throw new Error(`input ${objectUrl(loc.spec, key)}: ${storeError(err)}`);
        }
        return { local, url: objectUrl(loc.spec, key), provider: loc.spec.provider };
      })();
      pulled.set(id, p);
    }
    return p;
  };
  const stageFor = async (job: JobRecord, raw: string): Promise<string[]> => {
    if (!job.inputs || job.inputs.length === 0) return [raw];
    const inv = await inventoryOrStop();
    try {
      const targets = inv.select(job.host);
      const sources = await Promise.all(job.inputs.map((i) => pull(i)));
      const localJob = sources.some((x) => x) ? { ...job, inputs: job.inputs.map((i, k) => sources[k]?.local ?? i) } : job;
      const staged = await stager.stageJob(localJob, targets);
      sources.forEach((x, k) => {
        const f = staged.files[k];
        if (x && f) Object.assign(f, { provider: x.provider, location: x.url });
      });
      const rec: FetchRecord = { kind: 'fetch', v: 1, job: job.id, task: job.task, direction: 'in', ok: true, files: staged.files };
      if (job.params !== undefined) rec.params = job.params;
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
    reading: for await (const lines of readRecordBatches(input, { source })) {
      for (const { record, raw: line } of lines) {
        if (stopped || io.signal.aborted || fatal) break reading;
        if (opts.stageIn) {
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
        // only a job that leaves files needs a session to its host: a run without any reads no folder
        if (!leavesFiles(ev)) continue;
        if (ev.run !== undefined) conns.ride(ev.run);
        if (ev.event === 'started' && ev.host !== undefined) warm(ev.host);
        if (ev.event !== 'finished' || ev.exit !== 0 || ev.job === undefined) continue;
        const p: Promise<void> = fetchFor(ev as EventRecord & { job: string }).finally(() => inflight.delete(p));
        inflight.add(p);
      }
    }
    await chain;
    await Promise.all(inflight);
  } catch (err) {
    await Promise.allSettled([chain, ...inflight]);
    await closeAll();
    if (fatal) throw fatal;
    if (stopped) return ExitCode.OK;
    throw err;
  }
  if (fatal) {
    await closeAll();
    throw fatal;
  }
  await closeAll();
  if (stopped) return ExitCode.OK;
  if (io.signal.aborted) throw io.signal.reason;
  await writer.end();
  return failed > 0 ? ExitCode.FAILURES : ExitCode.OK;
}
