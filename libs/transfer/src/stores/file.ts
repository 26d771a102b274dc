// A local (or mounted) folder: copied to a temp name beside the final one, hashed as written,
// renamed into place once it matched.
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Location, LocationSpec, StoredObject, Want } from '../location';
import { safeJoin } from '../paths';
import { checkWant, streamToFile } from './common';

export class FileLocation implements Location {
  constructor(readonly spec: LocationSpec & { provider: 'file' }) {}

  private full(key: string): string {
    return safeJoin(this.spec.root, key);
  }

  async put(key: string, file: string, want: Want): Promise<void> {
    await streamToFile(createReadStream(file), this.full(key), (got) => checkWant(key, got, want));
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    await streamToFile(Readable.from([data]), this.full(key));
  }

  async getToFile(key: string, file: string): Promise<Want> {
    return streamToFile(createReadStream(this.full(key)), file);
  }

  read(key: string): Promise<Buffer> {
    return readFile(this.full(key));
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(rel === '' ? this.spec.root : this.full(rel), { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const r = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) await walk(r);
        else if (e.isFile() && !/\.cm-part-[0-9a-f]+$/.test(e.name)) out.push({ key: r, size: (await stat(this.full(r))).size });
      }
    };
    await walk(prefix);
    return out;
  }

  async remove(key: string): Promise<void> {
    await unlink(this.full(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  async close(): Promise<void> {}
}
