// Where fetched results are kept and where --stage-in inputs come from: a local folder, another ssh
// host, an Azure Blob container, an S3 bucket, each named by a URL and reached through one
// interface. A URL never carries a credential: those come from the environment or the provider's
// own configuration, so no record, event or log line can hold one.
import path from 'node:path';
import { CmError, ExitCode } from '@cm/protocol';
import { safeRelative } from './paths';

export type Provider = 'file' | 'ssh' | 'az' | 's3';

export type LocationSpec =
  | { provider: 'file'; url: string; root: string }
  /** root: absolute, or relative to the login directory when the URL says `~/` */
  | { provider: 'ssh'; url: string; host: string; root: string }
  | { provider: 'az'; url: string; container: string; prefix: string }
  | { provider: 's3'; url: string; bucket: string; prefix: string };

/** A location that cannot be used as given (a bad URL, no credentials set): exit 2. */
export class LocationError extends CmError {
  constructor(message: string) {
    super(message, ExitCode.USAGE);
  }
}

const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
// Azure: 3-63 lower-case letters, digits and single hyphens; S3 adds dots
const CONTAINER = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$/;
const BUCKET = /^(?=.{3,63}$)[a-z0-9][a-z0-9.-]*[a-z0-9]$/;

/** `a//b/` -> `a/b`; '' for none; refuses `..` and the like */
function cleanPrefix(p: string, url: string): string {
  const trimmed = p.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  try {
    return safeRelative(trimmed);
  } catch (err) {
    throw new LocationError(`${url}: ${(err as Error).message}`);
  }
}

/**
 * Reads a location URL: file:DIR (or a plain path), ssh://HOST/PATH (HOST from the inventory;
 * /PATH absolute, /~/PATH below the login directory), az://CONTAINER/PREFIX, s3://BUCKET/PREFIX.
 * User names, passwords, ports, queries (a SAS token) and fragments are refused: they would put a
 * credential or a second source of host settings into the records.
 */
export function parseLocation(url: string, cwd: string): LocationSpec {
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/s.exec(url);
  if (!m || (m[1] as string).length === 1) {
    if (url === '') throw new LocationError('empty location');
    const root = path.resolve(cwd, url);
    return { provider: 'file', url: `file://${root}`, root };
  }
  const scheme = m[1] as string;
  const rest = m[2] as string;
  if (/[?#]/.test(rest)) throw new LocationError(`${url}: a query or fragment is not allowed (credentials come from the environment)`);
  if (scheme === 'file') {
    const p = rest.startsWith('//') ? rest.slice(2) : rest;
    if (rest.startsWith('//') && !p.startsWith('/')) throw new LocationError(`${url}: file URLs name no host (file:///abs/path or file:rel/path)`);
    if (p === '') throw new LocationError(`${url}: names no folder`);
    const root = path.resolve(cwd, decodeURIComponent(p));
    return { provider: 'file', url: `file://${root}`, root };
  }
  if (!rest.startsWith('//')) throw new LocationError(`${url}: expected ${scheme}://...`);
  const body = rest.slice(2);
  const slash = body.indexOf('/');
  const authority = slash < 0 ? body : body.slice(0, slash);
  const tail = slash < 0 ? '' : decodeURIComponent(body.slice(slash));
  if (authority.includes('@')) throw new LocationError(`${url}: no user or credentials in the URL (the inventory and the environment say those)`);
  if (authority.includes(':')) throw new LocationError(`${url}: no port in the URL (the inventory says it)`);
  switch (scheme) {
    case 'ssh': {
      if (!HOST_NAME.test(authority)) throw new LocationError(`${url}: bad host name ${JSON.stringify(authority)}`);
      let root: string;
      if (tail === '' || tail === '/' || tail === '/~' || tail === '/~/') root = '';
      else if (tail.startsWith('/~/')) root = cleanPrefix(tail.slice(3), url);
      else root = `/${cleanPrefix(tail, url)}`;
      const shown = root === '' ? '/~' : root.startsWith('/') ? root : `/~/${root}`;
      return { provider: 'ssh', url: `ssh://${authority}${shown}`, host: authority, root };
    }
    case 'az':
    case 's3': {
      const ok = scheme === 'az' ? CONTAINER : BUCKET;
      if (!ok.test(authority)) throw new LocationError(`${url}: bad ${scheme === 'az' ? 'container' : 'bucket'} name ${JSON.stringify(authority)}`);
      const prefix = cleanPrefix(tail, url);
      const shown = `${scheme}://${authority}${prefix ? `/${prefix}` : ''}`;
      return scheme === 'az' ? { provider: 'az', url: shown, container: authority, prefix } : { provider: 's3', url: shown, bucket: authority, prefix };
    }
    default:
      throw new LocationError(`${url}: unknown location scheme ${JSON.stringify(scheme)} (file:, ssh://, az://, s3://)`);
  }
}

/** A URL's location and the key below it, for `get`/`rm` of one file or --stage-in of one input. */
export function joinKey(prefix: string, key: string): string {
  const k = safeRelative(key);
  return prefix === '' ? k : `${prefix}/${k}`;
}

/** Takes secrets out of a message a provider's error may carry (a connection string, a signature). */
export function redact(message: string): string {
  return message
    .replace(/(AccountKey|SharedAccessSignature|AccessKey|SecretAccessKey|sig|Signature|X-Amz-Signature|X-Amz-Credential|x-amz-security-token)=[^;&\s"']+/gi, '$1=***')
    .replace(/(Authorization:?\s*)(\S+\s+)?\S+/gi, '$1***');
}

export interface StoredObject {
  /** below the location's root */
  key: string;
  size: number;
}

export interface Want {
  size: number;
  sha256: string;
}

/**
 * One place files are kept. Every key is a relative path below the location's root. `put` stores
 * a file so that either the whole file, checked against `want`, is under the key afterwards, or
 * the key holds what it held before: the bytes go under a temporary name (or into uncommitted
 * blocks, or one single-request PUT) and are committed only once their checksum matched.
 */
export interface Location {
  readonly spec: LocationSpec;
  put(key: string, file: string, want: Want, signal?: AbortSignal): Promise<void>;
  putBytes(key: string, data: Buffer): Promise<void>;
  /** the object's bytes into `file` (created, or replaced); size and sha256 of what was written */
  getToFile(key: string, file: string): Promise<Want>;
  read(key: string): Promise<Buffer>;
  /** every object whose key starts with `prefix/` (keys below the root) */
  list(prefix: string): Promise<StoredObject[]>;
  remove(key: string): Promise<void>;
  close(): Promise<void>;
}

/** The URL of one stored object, as the records name it. */
export function objectUrl(spec: LocationSpec, key: string): string {
  return `${spec.url.replace(/\/+$/, '')}/${safeRelative(key)}`;
}
