// A job replayed by cm-exec --resume whose folder an earlier cm-fetch removed from its host once its
// files were home: its fetch record is made again from the results tree, so a resumed pipeline
// still gets a value for every job.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { resultFileOf, type FetchedFile } from '@cm/protocol';
import type { FetchJob, FetchOutcome } from './fetch';
import { safeJoin, safeRelative } from './paths';

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file) as AsyncIterable<Buffer>) h.update(c);
  return h.digest('hex');
}

/** The files of a job already in <dir>/<run>/<folder>/, every declared one there; else undefined. */
export async function alreadyFetched(dir: string, job: FetchJob): Promise<FetchOutcome | undefined> {
  try {
    const root = safeJoin(path.resolve(dir), path.posix.join(safeRelative(job.run), safeRelative(job.folder ?? job.job)));
    const declared = [...job.outputs];
    const resultFile = resultFileOf(job);
    if (resultFile !== undefined && !declared.includes(resultFile)) declared.push(resultFile);
    const names = [...new Set(declared.map(safeRelative))];
    if (names.length === 0) return undefined;
    const files: FetchedFile[] = [];
    const add = async (rel: string): Promise<boolean> => {
      const full = safeJoin(root, rel);
      const st = await lstat(full).catch(() => undefined);
      if (st?.isFile()) {
        files.push({ remote: path.posix.join(job.workdir, rel), path: full, size: st.size, sha256: await sha256(full) });
        return true;
      }
      if (!st?.isDirectory()) return false;
      for (const e of (await readdir(full)).sort()) await add(`${rel}/${e}`);
      return true;
    };
    for (const n of names) if (!(await add(n))) return undefined;
    const result = resultFile !== undefined ? files.find((f) => f.path === safeJoin(root, safeRelative(resultFile)))?.path : undefined;
    if (resultFile !== undefined && result === undefined) return undefined;
    return { ok: true, files, result, attempt: 1 };
  } catch {
    return undefined;
  }
}
