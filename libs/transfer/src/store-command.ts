// cm-fetch ls|get|rm URL: the catalogue of a results location (the fetch records stored there).
import os from 'node:os';
import path from 'node:path';
import { loadInventory, type Inventory } from '@cm/inventory';
import { ExitCode, type FetchRecord } from '@cm/protocol';
import { getStored, readCatalogue, removeStored, storeError } from './catalogue';
import { Connections } from './connections';
import { parseLocation } from './location';
import { openLocation } from './stores';

export interface StoreCommandOptions {
  op: 'ls' | 'get' | 'rm';
  url: string;
  /** get: the local folder the files land in, at their keys */
  dir: string;
  retries: number;
  /** only the records of this run */
  run?: string;
  inventory?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface StoreCommandIO {
  /** one record out (ls: as stored; get: naming the local copies; rm: as removed) */
  emit: (rec: FetchRecord) => Promise<void>;
  warn: (message: string) => void;
  signal: AbortSignal;
}

export async function storeCommand(opts: StoreCommandOptions, io: StoreCommandIO): Promise<number> {
  parseLocation(opts.url, opts.cwd);
  const home = opts.env.HOME && opts.env.HOME !== '' ? opts.env.HOME : os.homedir();
  const conns = new Connections({ home, env: opts.env });
  let inventory: Promise<Inventory> | undefined;
  const host = async (name: string) => {
    const inv = await (inventory ??= loadInventory({ path: opts.inventory, env: opts.env, cwd: opts.cwd }));
    const h = inv.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`host ${name} is not in ${inv.source}`);
    return h;
  };
  const retry = { retries: opts.retries, signal: io.signal };
  let failed = 0;
  try {
    const loc = await openLocation(opts.url, { cwd: opts.cwd, env: opts.env, conns, host });
    let records: FetchRecord[];
    try {
      records = await readCatalogue(loc);
    } catch (err) {
      io.warn(`${loc.spec.url}: ${storeError(err)}`);
      return ExitCode.FAILURES;
    }
    if (opts.run !== undefined) records = records.filter((r) => (r.run ?? '_') === opts.run);
    for (const rec of records) {
      if (io.signal.aborted) throw io.signal.reason;
      if (opts.op === 'ls') {
        await io.emit(rec);
        continue;
      }
      try {
        if (opts.op === 'get') await io.emit(await getStored(loc, rec, path.resolve(opts.cwd, opts.dir), retry));
        else {
          await removeStored(loc, rec, retry);
          await io.emit(rec);
        }
      } catch (err) {
        failed += 1;
        io.warn(`job ${rec.job}: ${storeError(err)}`);
        if (opts.op === 'get') await io.emit({ ...rec, ok: false, error: storeError(err) });
      }
    }
    await loc.close();
  } finally {
    await conns.close();
  }
  return failed > 0 ? ExitCode.FAILURES : ExitCode.OK;
}
