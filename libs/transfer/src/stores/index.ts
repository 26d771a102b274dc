import type { HostRecord } from '@cm/protocol';
import type { Connections } from '../connections';
import { LocationError, parseLocation, type Location } from '../location';
import { AzureLocation } from './azure';
import { FileLocation } from './file';
import { S3Location } from './s3';
import { SshLocation } from './ssh';

export interface OpenContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  conns: Connections;
  /** the inventory's host of that name (ssh:// locations) */
  host: (name: string) => Promise<HostRecord>;
}

/** The location a URL names, its provider ready to use (an SDK is loaded on first use). */
export async function openLocation(url: string, ctx: OpenContext): Promise<Location> {
  const spec = parseLocation(url, ctx.cwd);
  switch (spec.provider) {
    case 'file':
      return new FileLocation(spec);
    case 'ssh': {
      let host: HostRecord;
      try {
        host = await ctx.host(spec.host);
      } catch (err) {
        throw new LocationError(`${url}: ${(err as Error).message}`);
      }
      return new SshLocation(spec, ctx.conns, host);
    }
    case 'az':
      return new AzureLocation(spec, ctx.env);
    case 's3':
      return new S3Location(spec, ctx.env);
  }
}

export { hashLocalFile, streamToFile, ChecksumError } from './common';
