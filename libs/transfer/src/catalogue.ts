// The fetch records are the catalogue: a job's files are stored at a location, each checked
// against its sha256, and only then its fetch record is written there too, under
// .cm/fetch/<run>/<job>.json. `cm-fetch ls|get|rm` read those records, so a file is listed only
// once all of its job's files are whole in the store.
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import type { FetchRecord } from '@cm/protocol';
import { LocationError, objectUrl, redact, type Location } from './location';
import { safeJoin, safeRelative } from './paths';
import { ChecksumError } from './stores/common';

export const CATALOGUE = '.cm/fetch';

export interface RetryOptions {
  retries: number;
  /** ms before retry k (1-based); tests make it 0 */
  backoff?: (attempt: number) => number;
  signal?: AbortSignal;
}

/** fn, again after a failure up to `retries` times; a bad location or an abort is not retried. */
export async function withRetries<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof LocationError || attempt > opts.retries || opts.signal?.aborted) throw err;
      const wait = opts.backoff ? opts.backoff(attempt) : 250 * attempt;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** The record's key in the catalogue. */
export function recordKey(rec: Pick<FetchRecord, 'run' | 'job'>): string {
  return `${CATALOGUE}/${safeRelative(rec.run ?? '_')}/${safeRelative(rec.job)}.json`;
}

/** the message of a provider's error, with anything that looks like a secret taken out */
export function storeError(err: unknown): string {
  const e = err as Error & { code?: string; statusCode?: number };
  const detail = e.message || e.code || (e.statusCode ? `HTTP ${e.statusCode}` : '') || e.name || String(err);
  return redact(detail.split('\n')[0] as string);
}

/**
 * Stores every file of an ok fetch record (its local copies below `dir`, at the same relative
 * paths) and then the record. Returns the record as stored: each file with provider and location.
 * Throws when any file could not be stored after the retries: the record is then not written,
 * so nothing of that job is listed as stored.
 */
export async function storeFetched(loc: Location, dir: string, rec: FetchRecord, opts: RetryOptions): Promise<FetchRecord> {
  const files = [];
  for (const f of rec.files) {
    const rel = path.relative(dir, f.path).split(path.sep).join('/');
    const key = safeRelative(rel);
    try {
      await withRetries(() => loc.put(key, f.path, { size: f.size, sha256: f.sha256 }, opts.signal), opts);
    } catch (err) {
      throw new Error(`not stored at ${loc.spec.url}: ${err instanceof ChecksumError ? err.message : `${key}: ${storeError(err)}`}`);
    }
    files.push({ ...f, provider: loc.spec.provider, location: objectUrl(loc.spec, key) });
  }
  const stored: FetchRecord = { ...rec, files, to: loc.spec.url };
  try {
    await withRetries(() => loc.putBytes(recordKey(stored), Buffer.from(`${JSON.stringify(stored)}\n`)), opts);
  } catch (err) {
    throw new Error(`not stored at ${loc.spec.url}: its record ${recordKey(stored)}: ${storeError(err)}`);
  }
  return stored;
}

/** Every fetch record in the location's catalogue, in key order. */
export async function readCatalogue(loc: Location): Promise<FetchRecord[]> {
  const keys = (await loc.list(CATALOGUE)).map((o) => o.key).filter((k) => k.endsWith('.json')).sort();
  const out: FetchRecord[] = [];
  for (const k of keys) {
    const text = (await loc.read(k)).toString('utf8').trim();
    if (text !== '') out.push(JSON.parse(text) as FetchRecord);
  }
  return out;
}

/** The key of a stored file below the location, from the URL its record gives. */
export function keyOf(loc: Location, url: string): string {
  const base = `${loc.spec.url.replace(/\/+$/, '')}/`;
  if (!url.startsWith(base)) throw new Error(`${url} is not below ${loc.spec.url}`);
  return safeRelative(url.slice(base.length));
}

/**
 * Brings a record's files back below `dir` (at their keys), each checked against its sha256 before
 * it takes its name; the record returned names the new local copies.
 */
export async function getStored(loc: Location, rec: FetchRecord, dir: string, opts: RetryOptions): Promise<FetchRecord> {
  const files = [];
  let result = rec.result;
  for (const f of rec.files) {
    if (!f.location) continue;
    const key = keyOf(loc, f.location);
    const local = safeJoin(path.resolve(dir), key);
    await withRetries(async () => {
      const got = await loc.getToFile(key, local);
      if (got.sha256 !== f.sha256 || got.size !== f.size) {
        await unlink(local).catch(() => undefined);
        throw new ChecksumError(`${f.location}: got ${got.size} bytes, sha256 ${got.sha256.slice(0, 12)}..., the record says ${f.size} bytes, ${f.sha256.slice(0, 12)}...`);
      }
    }, opts);
    if (rec.result === f.path) result = local;
    files.push({ ...f, path: local });
  }
  const out: FetchRecord = { ...rec, files };
  if (result !== undefined) out.result = result;
  return out;
}

/** Removes a record's files, then the record (so a half-removed job is still listed and can be removed again). */
export async function removeStored(loc: Location, rec: FetchRecord, opts: RetryOptions): Promise<void> {
  for (const f of rec.files) if (f.location) await withRetries(() => loc.remove(keyOf(loc, f.location as string)), opts);
  await withRetries(() => loc.remove(recordKey(rec)), opts);
}
