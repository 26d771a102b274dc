// S3 (or an S3-compatible server) through @aws-sdk/client-s3. A file up to 5 GB goes up in one
// PutObject with its MD5 (the server refuses a body that does not match) and its sha256 as
// metadata: S3 makes an object visible only once all of it arrived, so nothing partial is ever
// under the key. Credentials and region come from the SDK's usual chain (AWS_* variables,
// ~/.aws); AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL names another server (path-style addressing).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { joinKey, LocationError, type Location, type LocationSpec, type StoredObject, type Want } from '../location';
import { streamToFile, checkWant } from './common';
import { loadSdk } from './common';

const MAX_SINGLE_PUT = 5 * 1024 ** 3;

type Sdk = typeof import('@aws-sdk/client-s3');

export class S3Location implements Location {
  private s3?: Promise<{ client: S3Client; sdk: Sdk }>;

  constructor(
    readonly spec: LocationSpec & { provider: 's3' },
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private client(): Promise<{ client: S3Client; sdk: Sdk }> {
    this.s3 ??= (async () => {
      const sdk = loadSdk<Sdk>('@aws-sdk/client-s3');
      const endpoint = this.env.AWS_ENDPOINT_URL_S3 ?? this.env.AWS_ENDPOINT_URL;
      const client = new sdk.S3Client({
        region: this.env.AWS_REGION ?? this.env.AWS_DEFAULT_REGION ?? 'us-east-1',
        ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
        // cm-fetch retries itself; the body's MD5 is the check, asked for on every put
        maxAttempts: 1,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      return { client, sdk };
    })();
    this.s3.catch(() => (this.s3 = undefined));
    return this.s3;
  }

  private name(key: string): string {
    return joinKey(this.spec.prefix, key);
  }

  async put(key: string, file: string, want: Want, signal?: AbortSignal): Promise<void> {
    if (want.size > MAX_SINGLE_PUT) throw new LocationError(`${key}: ${want.size} bytes is more than one S3 PutObject takes (multipart upload is not done yet)`);
    const { client, sdk } = await this.client();
    // hashed again as sent: a file changed since it was fetched must not go up under its old sum
    const md5 = createHash('md5');
    const sha = createHash('sha256');
    for await (const c of createReadStream(file) as AsyncIterable<Buffer>) {
      md5.update(c);
      sha.update(c);
    }
    checkWant(key, { size: want.size, sha256: sha.digest('hex') }, want);
    await client.send(
      new sdk.PutObjectCommand({
        Bucket: this.spec.bucket,
        Key: this.name(key),
        Body: createReadStream(file),
        ContentLength: want.size,
        ContentMD5: md5.digest('base64'),
        Metadata: { sha256: want.sha256 },
      }),
      { abortSignal: signal },
    );
    const head = await client.send(new sdk.HeadObjectCommand({ Bucket: this.spec.bucket, Key: this.name(key) }));
    if (head.ContentLength !== want.size) throw new LocationError(`${key}: the store holds ${head.ContentLength} bytes, not ${want.size}`);
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const { client, sdk } = await this.client();
    await client.send(new sdk.PutObjectCommand({ Bucket: this.spec.bucket, Key: this.name(key), Body: data, ContentLength: data.length, ContentMD5: createHash('md5').update(data).digest('base64') }));
  }

  async getToFile(key: string, file: string): Promise<Want> {
    const { client, sdk } = await this.client();
    const res = await client.send(new sdk.GetObjectCommand({ Bucket: this.spec.bucket, Key: this.name(key) }));
    return streamToFile(res.Body as Readable, file);
  }

  async read(key: string): Promise<Buffer> {
    const { client, sdk } = await this.client();
    const res = await client.send(new sdk.GetObjectCommand({ Bucket: this.spec.bucket, Key: this.name(key) }));
    return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const { client, sdk } = await this.client();
    const base = this.spec.prefix === '' ? '' : `${this.spec.prefix}/`;
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      const res = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.spec.bucket, Prefix: `${base}${prefix === '' ? '' : `${prefix}/`}`, ContinuationToken: token }));
      for (const o of res.Contents ?? []) out.push({ key: (o.Key as string).slice(base.length), size: o.Size ?? 0 });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async remove(key: string): Promise<void> {
    const { client, sdk } = await this.client();
    await client.send(new sdk.DeleteObjectCommand({ Bucket: this.spec.bucket, Key: this.name(key) }));
  }

  async close(): Promise<void> {
    if (this.s3) (await this.s3.catch(() => undefined))?.client.destroy();
  }
}

