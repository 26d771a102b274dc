// What every provider does the same way: hash what goes out, write what comes in under a temp
// name beside its final one and rename it there only when whole.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Want } from '../location';
import { tempBeside } from '../paths';

export async function hashLocalFile(file: string): Promise<Want> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(file) as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { size, sha256: h.digest('hex') };
}

/** A stream into `file`, through a temp file renamed into place once whole (and `check` passed). */
export async function streamToFile(source: Readable | AsyncIterable<Buffer>, file: string, check?: (got: Want) => void): Promise<Want> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = tempBeside(file);
  const h = createHash('sha256');
  let size = 0;
  let got: Want;
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const c of chunks) {
          h.update(c);
          size += c.length;
          yield c;
        }
      },
      createWriteStream(temp, { flags: 'wx', mode: 0o644 }),
    );
    got = { size, sha256: h.digest('hex') };
    check?.(got);
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  return got;
}

export class ChecksumError extends Error {}

export function checkWant(key: string, got: Want, want: Want): void {
  if (got.size !== want.size || got.sha256 !== want.sha256)
    throw new ChecksumError(`${key}: stored ${got.size} bytes, sha256 ${got.sha256.slice(0, 12)}..., expected ${want.size} bytes, ${want.sha256.slice(0, 12)}...`);
}

/**
 * A cloud SDK, loaded on first use from node_modules (the build leaves it out of the bundle).
 * require, not import(): the bundle runs from V8's code cache in a vm.Script, which has no
 * dynamic import callback.
 */
export function loadSdk<T>(name: string): T {
  return require(name) as T;
}
