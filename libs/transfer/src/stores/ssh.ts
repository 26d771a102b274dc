// Another host as the store (a file server gathering results): store.sh runs there through the
// run's own ssh connection; the bytes go over the session's stdin into a temp file that the host
// checks against our sha256 before it renames it onto the final name.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { shQuote, type HostRecord } from '@cm/protocol';
import type { Connections } from '../connections';
import type { Location, LocationSpec, StoredObject, Want } from '../location';
import { safeRelative } from '../paths';
import { ChecksumError, streamToFile } from './common';
import STORE_SH from './store.sh';

const STORE = STORE_SH.replace(/^\s*#.*\n/gm, '');

export class SshLocation implements Location {
  constructor(
    readonly spec: LocationSpec & { provider: 'ssh' },
    private readonly conns: Connections,
    private readonly host: HostRecord,
  ) {}

  private path(key: string): string {
    const k = key === '' ? '' : safeRelative(key);
    const root = this.spec.root;
    if (root === '') return k === '' ? '.' : k;
    return k === '' ? root : `${root}/${k}`;
  }

  private async op(op: string, key: string, extra: Record<string, string>, input?: Readable | Buffer): Promise<{ out: Buffer; code: number | null; err: string }> {
    const vars = Object.entries({ op, k: this.path(key), ...extra })
      .map(([n, v]) => `${n}=${shQuote(v)}`)
      .join(' ');
    const { child, viaSsh } = await this.conns.spawn(this.host, `${vars}\n${STORE}`, input ? 'pipe' : 'ignore');
    const out: Buffer[] = [];
    let err = '';
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => {
      if (err.length < 8192) err += c.toString('utf8');
    });
    if (input) {
      child.stdin?.on('error', () => undefined);
      if (Buffer.isBuffer(input)) child.stdin?.end(input);
      else input.pipe(child.stdin as NodeJS.WritableStream);
    }
    const code = await new Promise<number | null>((resolve) => {
      child.on('error', (e) => {
        err += e.message;
        resolve(null);
      });
      child.on('close', (c) => resolve(c));
    });
    if (code === 255 && viaSsh) this.conns.reset(this.host);
    return { out: Buffer.concat(out), code, err: err.trim() };
  }

  private fail(what: string, key: string, r: { code: number | null; err: string }): Error {
    const msg = `${what} ${this.spec.url}/${key}: ${r.err.split('\n').slice(0, 3).join(' / ') || `exit ${r.code}`}`;
    return r.code === 3 ? new ChecksumError(msg) : new Error(msg);
  }

  async put(key: string, file: string, want: Want): Promise<void> {
    const r = await this.op('put', key, { w: want.sha256 }, createReadStream(file));
    if (r.code !== 0) throw this.fail('storing', key, r);
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const r = await this.op('put', key, { w: createHash('sha256').update(data).digest('hex') }, data);
    if (r.code !== 0) throw this.fail('storing', key, r);
  }

  async getToFile(key: string, file: string): Promise<Want> {
    const vars = `op=get k=${shQuote(this.path(key))}`;
    const { child } = await this.conns.spawn(this.host, `${vars}\n${STORE}`);
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const got = await streamToFile(child.stdout as Readable, file, () => undefined).catch(async (e) => {
      await exited;
      throw e;
    });
    const code = await exited;
    if (code !== 0) {
      await unlink(file).catch(() => undefined);
      throw this.fail('reading', key, { code, err });
    }
    return got;
  }

  async read(key: string): Promise<Buffer> {
    const r = await this.op('get', key, {});
    if (r.code !== 0) throw this.fail('reading', key, r);
    return r.out;
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const r = await this.op('list', prefix, {});
    if (r.code !== 0) throw this.fail('listing', prefix, r);
    const base = `${this.path('')}/`;
    const out: StoredObject[] = [];
    for (const line of r.out.toString('utf8').split('\n')) {
      const m = /^(\d+) (.*)$/.exec(line);
      if (!m) continue;
      let name = m[2] as string;
      if (this.spec.root === '') name = name.replace(/^\.\//, '');
      else if (name.startsWith(base)) name = name.slice(base.length);
      out.push({ key: name, size: Number(m[1]) });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async remove(key: string): Promise<void> {
    const r = await this.op('rm', key, {});
    if (r.code !== 0) throw this.fail('removing', key, r);
  }

  async close(): Promise<void> {}
}
