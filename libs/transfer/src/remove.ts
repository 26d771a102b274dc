// After a fetch: the job directories whose files arrived and matched the host's sha256 are removed
// from the host (remove.sh), so a run leaves nothing behind once its results are home. Never before
// the check; a failure here is a warning, the fetch stays good.
import { shQuote, type HostRecord } from '@cm/protocol';
import type { Connections } from './connections';
import type { FetchJob, FetchOutcome } from './fetch';
import REMOVE_SH from './remove.sh';
import type { FetchServers } from './server';

const REMOVE = REMOVE_SH.replace(/^\s*#.*\n/gm, '');

/** The directories to remove: jobs that asked for it, fetched whole and verified. */
export function removable(done: Array<{ job: FetchJob; out: FetchOutcome }>): string[] {
  return done.filter(({ job, out }) => job.remove === true && out.ok && out.verified === true).map(({ job }) => job.workdir);
}

export function removeScript(workdirs: string[]): string {
  return `set -- ${workdirs.map(shQuote).join(' ')}\n${REMOVE}`;
}

export async function removeWorkdirs(
  conns: Connections,
  host: HostRecord,
  done: Array<{ job: FetchJob; out: FetchOutcome }>,
  warn?: (m: string) => void,
  servers?: FetchServers,
): Promise<void> {
  const dirs = removable(done);
  if (dirs.length === 0) return;
  const say = (why: string): void => warn?.(`could not remove ${dirs.length === 1 ? dirs[0] : `${dirs.length} job folders`} on ${host.name} (its files are fetched and verified): ${why}`);
  // the server that just sent the files, when the host has one: no session, no rm per batch
  const server = servers && !servers.lacks(host) ? await servers.get(host).catch(() => null) : null;
  if (server) {
    try {
      const errors = await server.remove(dirs);
      if (errors.length > 0) say(errors.slice(-2).join(' / '));
      return;
    } catch {
      // the server is gone: the one-session way below
    }
  }
  try {
    const { child } = await conns.spawn(host, removeScript(dirs));
    let err = '';
    child.stderr?.on('data', (c: Buffer) => {
      if (err.length < 4096) err += c.toString('utf8');
    });
    child.stdout?.resume();
    const code = await new Promise<number | null>((resolve) => {
      child.on('error', (e) => {
        err += e.message;
        resolve(null);
      });
      child.on('close', (c) => resolve(c));
    });
    if (code !== 0) say(err.trim().split('\n').map((l) => l.replace(/\r$/, '')).filter(Boolean).slice(-2).join(' / ') || `exit ${code}`);
  } catch (e) {
    say((e as Error).message);
  }
}
