import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FetchRecord } from '@cm/protocol';
import { getStored, readCatalogue, recordKey, removeStored, storeFetched, withRetries } from './catalogue';
import { LocationError, objectUrl, parseLocation, redact } from './location';
import { FileLocation } from './stores/file';
import { hashLocalFile } from './stores/common';

describe('parseLocation', () => {
  it('reads each provider', () => {
    expect(parseLocation('file:///srv/r', '/w')).toEqual({ provider: 'file', url: 'file:///srv/r', root: '/srv/r' });
    expect(parseLocation('file:out', '/w')).toEqual({ provider: 'file', url: 'file:///w/out', root: '/w/out' });
    expect(parseLocation('plain/dir', '/w')).toMatchObject({ provider: 'file', root: '/w/plain/dir' });
    expect(parseLocation('ssh://fs1/srv/results/', '/w')).toEqual({ provider: 'ssh', url: 'ssh://fs1/srv/results', host: 'fs1', root: '/srv/results' });
    expect(parseLocation('ssh://fs1/~/results', '/w')).toEqual({ provider: 'ssh', url: 'ssh://fs1/~/results', host: 'fs1', root: 'results' });
    expect(parseLocation('ssh://fs1', '/w')).toMatchObject({ url: 'ssh://fs1/~', root: '' });
    expect(parseLocation('az://results/bench//x/', '/w')).toEqual({ provider: 'az', url: 'az://results/bench/x', container: 'results', prefix: 'bench/x' });
    expect(parseLocation('s3://my.bucket', '/w')).toEqual({ provider: 's3', url: 's3://my.bucket', bucket: 'my.bucket', prefix: '' });
  });

  it('refuses credentials, ports, queries, bad names and ..', () => {
    for (const bad of ['az://res/x?sv=1&sig=abc', 'ssh://u@fs1/x', 'ssh://u:pw@fs1/x', 'ssh://fs1:22/x', 'az://Res/x', 'az://a/x', 's3://b/../x', 'ftp://x/y', 'az:res', 'file://host/x', 's3://bucket/x#frag']) {
      expect(() => parseLocation(bad, '/w'), bad).toThrow(LocationError);
    }
  });

  it('names a stored object below the location', () => {
    expect(objectUrl(parseLocation('az://res/p', '/'), 'r1/j/a.txt')).toBe('az://res/p/r1/j/a.txt');
  });
});

describe('redact', () => {
  it('takes secrets out of provider messages', () => {
    const m = redact('DefaultEndpointsProtocol=http;AccountName=a;AccountKey=c2VjcmV0;BlobEndpoint=x https://a/b?sv=1&sig=c2lnbmF0dXJl&se=2');
    expect(m).not.toContain('c2VjcmV0');
    expect(m).not.toContain('c2lnbmF0dXJl');
  });
});

describe('withRetries', () => {
  it('retries up to the count, never a bad location', async () => {
    let n = 0;
    await expect(withRetries(async () => (++n < 3 ? Promise.reject(new Error('gone')) : 'ok'), { retries: 2, backoff: () => 0 })).resolves.toBe('ok');
    n = 0;
    await expect(withRetries(async () => { n += 1; throw new LocationError('bad'); }, { retries: 5, backoff: () => 0 })).rejects.toThrow('bad');
    expect(n).toBe(1);
  });
});

describe('the catalogue on a file: location', () => {
  // every scratch folder of the block, removed at its end
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'cm-loc-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('stores files then the record; get brings them back checked; rm removes both', async () => {
    const tmp = await mkdtemp(path.join(scratch, 'd-'));
    const dir = path.join(tmp, 'results');
    const f = path.join(dir, 'r1', 'w', 'i=1', 'out.txt');
    await (await import('node:fs/promises')).mkdir(path.dirname(f), { recursive: true });
    await writeFile(f, 'hello\n');
    const h = await hashLocalFile(f);
    const loc = new FileLocation(parseLocation(path.join(tmp, 'store'), '/') as never);
    const rec: FetchRecord = { kind: 'fetch', v: 1, job: 'w.1', run: 'r1', direction: 'out', ok: true, files: [{ remote: 'x/out.txt', path: f, size: h.size, sha256: h.sha256 }], result: f };
    const stored = await storeFetched(loc, dir, rec, { retries: 0 });
    expect(stored.files[0]).toMatchObject({ provider: 'file', location: `file://${tmp}/store/r1/w/i=1/out.txt` });
    expect(await readCatalogue(loc)).toEqual([stored]);
    const back = await getStored(loc, stored, path.join(tmp, 'back'), { retries: 0 });
    expect(await readFile(path.join(tmp, 'back', 'r1', 'w', 'i=1', 'out.txt'), 'utf8')).toBe('hello\n');
    expect(back.result).toBe(path.join(tmp, 'back', 'r1', 'w', 'i=1', 'out.txt'));
    await removeStored(loc, stored, { retries: 0 });
    expect(await readCatalogue(loc)).toEqual([]);
    expect(recordKey(rec)).toBe('.cm/fetch/r1/w.1.json');
  });

  it('a file that does not match its sha256 is not stored and leaves no temp file', async () => {
    const tmp = await mkdtemp(path.join(scratch, 'd-'));
    const dir = path.join(tmp, 'results');
    await (await import('node:fs/promises')).mkdir(path.join(dir, 'r'), { recursive: true });
    const f = path.join(dir, 'r', 'a.txt');
    await writeFile(f, 'changed since the fetch\n');
    const loc = new FileLocation(parseLocation(path.join(tmp, 'store'), '/') as never);
    const rec: FetchRecord = { kind: 'fetch', v: 1, job: 'j', run: 'r', direction: 'out', ok: true, files: [{ remote: 'a.txt', path: f, size: 3, sha256: '0'.repeat(64) }] };
    await expect(storeFetched(loc, dir, rec, { retries: 1, backoff: () => 0 })).rejects.toThrow(/not stored at file:.*expected 3 bytes/);
    expect(await readdir(path.join(tmp, 'store', 'r'))).toEqual([]);
    expect(await readCatalogue(loc)).toEqual([]);
  });
});
