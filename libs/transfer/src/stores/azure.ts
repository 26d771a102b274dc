// Azure Blob Storage through @azure/storage-blob. A file goes up as blocks, each sent with its MD5
// (the service refuses a block whose bytes do not match), staged uncommitted: nothing is under the
// blob's name until the block list is committed, which happens only once the sha256 of every byte
// sent matched. The sha256 rides along as blob metadata. The account comes from
// AZURE_STORAGE_CONNECTION_STRING; the SDK is loaded only when an az:// location is used.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ContainerClient } from '@azure/storage-blob';
import { randomHex } from '@cm/protocol';
import { LocationError, type Location, type LocationSpec, type StoredObject, type Want } from '../location';
import { joinKey } from '../location';
import { checkWant, streamToFile } from './common';
import { loadSdk } from './common';

const BLOCK = 8 * 1024 * 1024;

export class AzureLocation implements Location {
  private container?: Promise<ContainerClient>;

  constructor(
    readonly spec: LocationSpec & { provider: 'az' },
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private client(): Promise<ContainerClient> {
    this.container ??= (async () => {
      const cs = this.env.AZURE_STORAGE_CONNECTION_STRING;
      if (!cs) throw new LocationError(`${this.spec.url}: AZURE_STORAGE_CONNECTION_STRING is not set`);
      const { BlobServiceClient } = loadSdk<typeof import('@azure/storage-blob')>('@azure/storage-blob');
      // the SDK's own retries would wait minutes on a store that is gone: cm-fetch retries itself
      const svc = BlobServiceClient.fromConnectionString(cs, { retryOptions: { maxTries: 1 }, userAgentOptions: { userAgentPrefix: 'cm-fetch' } });
      const c = svc.getContainerClient(this.spec.container);
      await c.createIfNotExists();
      return c;
    })();
    this.container.catch(() => (this.container = undefined));
    return this.container;
  }

  private name(key: string): string {
    return joinKey(this.spec.prefix, key);
  }

  async put(key: string, file: string, want: Want, signal?: AbortSignal): Promise<void> {
    const fh = await open(file, 'r');
    try {
      await this.putBlocks(key, fileBlocks(fh), want, signal);
    } finally {
      await fh.close();
    }
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const want = { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
    await this.putBlocks(key, (async function* () {
      for (let o = 0; o === 0 || o < data.length; o += BLOCK) yield data.subarray(o, o + BLOCK);
    })(), want);
  }

  private async putBlocks(key: string, blocks: AsyncIterable<Buffer>, want: Want, signal?: AbortSignal): Promise<void> {
    const c = await this.client();
    const blob = c.getBlockBlobClient(this.name(key));
    // a fresh id per upload: blocks an interrupted earlier upload left uncommitted are never mixed in
    const upload = randomHex(8);
    const ids: string[] = [];
    const h = createHash('sha256');
    let size = 0;
    for await (const chunk of blocks) {
      if (chunk.length === 0) continue;
      h.update(chunk);
      size += chunk.length;
      const id = Buffer.from(`${upload}-${String(ids.length).padStart(8, '0')}`).toString('base64');
      await blob.stageBlock(id, chunk, chunk.length, { transactionalContentMD5: createHash('md5').update(chunk).digest(), abortSignal: signal });
      ids.push(id);
    }
    // the file changed while it went up, or is not the one fetched: commit nothing
    checkWant(key, { size, sha256: h.digest('hex') }, want);
    await blob.commitBlockList(ids, { metadata: { sha256: want.sha256 }, abortSignal: signal });
  }

  async getToFile(key: string, file: string): Promise<Want> {
    const c = await this.client();
    const res = await c.getBlobClient(this.name(key)).download();
    return streamToFile(res.readableStreamBody as Readable, file);
  }

  async read(key: string): Promise<Buffer> {
    const c = await this.client();
    return c.getBlobClient(this.name(key)).downloadToBuffer();
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const c = await this.client();
    const base = this.spec.prefix === '' ? '' : `${this.spec.prefix}/`;
    const out: StoredObject[] = [];
    for await (const b of c.listBlobsFlat({ prefix: `${base}${prefix === '' ? '' : `${prefix}/`}` })) {
      out.push({ key: b.name.slice(base.length), size: b.properties.contentLength ?? 0 });
    }
    return out;
  }

  async remove(key: string): Promise<void> {
    const c = await this.client();
    await c.getBlobClient(this.name(key)).deleteIfExists();
  }

  async close(): Promise<void> {}
}

/** A file in blocks of BLOCK bytes (one empty block for an empty file: a blob needs one). */
async function* fileBlocks(fh: FileHandle): AsyncGenerator<Buffer> {
  for (let i = 0; ; i += 1) {
    const buf = Buffer.allocUnsafe(BLOCK);
    const { bytesRead } = await fh.read(buf, 0, BLOCK, null);
    if (bytesRead === 0 && i > 0) return;
    yield buf.subarray(0, bytesRead);
    if (bytesRead < BLOCK) return;
  }
}
