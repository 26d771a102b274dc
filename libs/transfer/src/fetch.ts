// Fetching a job's outputs: one `tar -cf -` per job through the host's shared connection, read by
// our own tar reader into temp files, checked against the remote's sha256sum, then renamed into
// <results>/<run>/<job>/. Refused names never stop the others; a broken transfer is retried whole.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { copyFile, lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { FetchedFile, HostRecord } from '@cm/protocol';
import { shQuote, type Connections } from './connections';
import { ensureDirs, safeJoin, safeRelative, UnsafePathError } from './paths';
import { readTar, TarFormatError, type BodySink, type TarEntry, type TarHandler } from './tar';

/** Exit code of the fetch script when the job directory does not exist. */
const NO_WORKDIR = 97;
const SUMS_MARK = 'cm-sha256\n';
const NO_SUMS_MARK = 'cm-nosha\n';

/** The shell script run on the host (POSIX sh: the login shell may be anything). */
export function fetchScript(workdir: string, names: string[], verify: boolean): string {
  const list = names.map((n) => shQuote(`./${n}`)).join(' ');
  const sums = verify
    ? `if command -v sha256sum >/dev/null 2>&1; then printf 'cm-sha256\\n'; find "$@" -type f -exec sha256sum {} +; else printf 'cm-nosha\\n'; fi; `
    : '';
  return (
    `cd -- ${shQuote(workdir)} || exit ${NO_WORKDIR}; set --; ` +
    `for f in ${list}; do if [ -e "$f" ] || [ -h "$f" ]; then set -- "$@" "$f"; else printf 'cm-missing %s\\n' "$f" >&2; fi; done; ` +
    `[ "$#" -gt 0 ] || exit 0; tar -cf - "$@"; s=$?; ${sums}exit $s`
  );
}

/** Parses `sha256sum` lines (with its backslash escaping of odd names) into name -> digest. */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\\?)([0-9a-f]{64}) [ *](.*)$/.exec(line);
    if (!m) continue;
    let name = m[3] as string;
    if (m[1] === '\\') name = name.replace(/\\(\\|n|r)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
    try {
      out.set(safeRelative(name), m[2] as string);
    } catch {
      // a name we would refuse anyway
    }
  }
  return out;
}

interface Pending {
  rel: string;
  temp: string;
  final: string;
  size: number;
  sha256: string;
}

/** Writes archive entries below root, refusing anything that is not a plain file or directory. */
export class SafeExtractor implements TarHandler {
  readonly pending = new Map<string, Pending>();
  readonly refused: string[] = [];
  private current?: { fh: FileHandle; hash: ReturnType<typeof createHash>; written: number; pending: Pending };

  constructor(private readonly root: string) {}

  async entry(e: TarEntry): Promise<BodySink | null> {
    let rel: string;
    let final: string;
    try {
      rel = safeRelative(e.name);
      final = safeJoin(this.root, rel);
    } catch (err) {
      this.refused.push(`refused ${(err as Error).message}`);
      return null;
    }
    switch (e.type) {
      case 'dir':
        try {
          await ensureDirs(this.root, rel);
        } catch (err) {
          this.refused.push(`refused ${(err as Error).message}`);
        }
        return null;
      case 'symlink':
        this.refused.push(`refused ${JSON.stringify(rel)}: a symlink (to ${JSON.stringify(e.linkname)}); only files and directories are fetched`);
        return null;
      case 'device':
      case 'fifo':
      case 'other':
        this.refused.push(`refused ${JSON.stringify(rel)}: a ${e.type === 'other' ? `special entry (tar type ${JSON.stringify(e.flag)})` : e.type === 'fifo' ? 'fifo' : 'device file'}`);
        return null;
      case 'hardlink': {
        let target: string;
        try {
          target = safeRelative(e.linkname);
        } catch (err) {
          this.refused.push(`refused ${JSON.stringify(rel)}: hard link to ${(err as Error).message}`);
          return null;
        }
        const src = this.pending.get(target);
        if (!src) {
          this.refused.push(`refused ${JSON.stringify(rel)}: hard link to ${JSON.stringify(target)}, which is not in the archive`);
          return null;
        }
        try {
          await ensureDirs(this.root, path.posix.dirname(rel));
          const temp = this.tempName(final);
          await copyFile(src.temp, temp, fsc.COPYFILE_EXCL);
          this.replace({ rel, temp, final, size: src.size, sha256: src.sha256 });
        } catch (err) {
          this.refused.push(`refused ${JSON.stringify(rel)}: ${(err as Error).message}`);
        }
        return null;
      }
      case 'file': {
        try {
          await ensureDirs(this.root, path.posix.dirname(rel));
        } catch (err) {
          this.refused.push(`refused ${(err as Error).message}`);
          return null;
        }
        const temp = this.tempName(final);
        // O_EXCL|O_NOFOLLOW: a fresh file of ours, never something planted under that name.
        const fh = await open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
        const cur = { fh, hash: createHash('sha256'), written: 0, pending: { rel, temp, final, size: e.size, sha256: '' } };
        this.current = cur;
        return {
          write: async (chunk: Buffer) => {
            cur.hash.update(chunk);
            cur.written += chunk.length;
            let off = 0;
            while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
          },
        };
      }
    }
  }

  async entryEnd(e: TarEntry): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    await cur.fh.close();
    if (cur.written !== e.size) throw new TarFormatError(`${cur.pending.rel}: got ${cur.written} of ${e.size} bytes`);
    cur.pending.sha256 = cur.hash.digest('hex');
    this.replace(cur.pending);
  }

  private replace(p: Pending): void {
    const old = this.pending.get(p.rel);
    if (old) void unlink(old.temp).catch(() => undefined);
    this.pending.set(p.rel, p);
  }

  private tempName(final: string): string {
    return path.join(path.dirname(final), `.${path.basename(final).slice(0, 100)}.cm-part-${randomBytes(6).toString('hex')}`);
  }

  /** Removes every temp file (after a failed attempt). */
  async discard(): Promise<void> {
    if (this.current) {
      await this.current.fh.close().catch(() => undefined);
      await unlink(this.current.pending.temp).catch(() => undefined);
      this.current = undefined;
    }
    await Promise.all([...this.pending.values()].map((p) => unlink(p.temp).catch(() => undefined)));
    this.pending.clear();
  }

  /** Renames verified temp files into place; returns what landed and what did not. */
  async commit(): Promise<{ files: Array<Omit<FetchedFile, 'remote'> & { rel: string }>; errors: string[] }> {
    const files: Array<Omit<FetchedFile, 'remote'> & { rel: string }> = [];
    const errors: string[] = [];
    for (const p of this.pending.values()) {
      try {
        const st = await lstat(p.final).catch(() => null);
        if (st && st.isDirectory()) throw new UnsafePathError(`${JSON.stringify(p.rel)}: a directory of that name is already there`);
        await rename(p.temp, p.final);
        files.push({ rel: p.rel, path: p.final, size: p.size, sha256: p.sha256 });
      } catch (err) {
        await unlink(p.temp).catch(() => undefined);
        errors.push(`${p.rel}: ${(err as Error).message}`);
      }
    }
    this.pending.clear();
    return { files, errors };
  }
}

export interface FetchJob {
  job: string;
  run: string;
  host: HostRecord;
  /** remote job directory, relative to the login directory */
  workdir: string;
  outputs: string[];
  /** the declared result file (one of outputs, or added to them) */
  result?: string;
}

export interface FetchOptions {
  /** root of the local results tree; files land in <dir>/<run>/<job>/ */
  dir: string;
  retries: number;
  verify: boolean;
  signal?: AbortSignal;
  /** ms before retry k (1-based); tests make it 0 */
  backoff?: (attempt: number) => number;
}

export interface FetchOutcome {
  ok: boolean;
  files: FetchedFile[];
  result?: string;
  attempt: number;
  error?: string;
}

/** An attempt that may succeed if repeated (connection lost, stream cut, checksum mismatch). */
class Transient extends Error {}

export async function fetchOutputs(conns: Connections, job: FetchJob, opts: FetchOptions): Promise<FetchOutcome> {
  const errors: string[] = [];
  const names: string[] = [];
  const declared = [...job.outputs];
  if (job.result !== undefined && job.result !== 'stdout' && !declared.includes(job.result)) declared.push(job.result);
  for (const name of declared) {
    try {
      const clean = safeRelative(name);
      if (!names.includes(clean)) names.push(clean);
    } catch (err) {
      errors.push(`refused output ${(err as Error).message}`);
    }
  }
  let root: string;
  try {
    root = safeJoin(path.resolve(opts.dir), path.posix.join(safeRelative(job.run), safeRelative(job.job)));
  } catch (err) {
    return { ok: false, files: [], attempt: 1, error: `bad run or job id: ${(err as Error).message}` };
  }
  if (names.length === 0) return { ok: errors.length === 0, files: [], attempt: 1, error: errors.join('; ') || undefined };

  let attempt = 0;
  for (;;) {
    attempt += 1;
    const ex = new SafeExtractor(root);
    try {
      await ensureDirs(path.resolve(opts.dir), path.posix.join(job.run, job.job));
      const got = await attemptFetch(conns, job, names, ex, opts);
      const committed = await ex.commit();
      const files: FetchedFile[] = committed.files.map((f) => ({ remote: path.posix.join(job.workdir, f.rel), path: f.path, size: f.size, sha256: f.sha256 }));
      const all = [...errors, ...got.problems, ...ex.refused, ...committed.errors];
      const resultRel = job.result !== undefined && job.result !== 'stdout' ? safeRelativeOrNull(job.result) : null;
      const resultFile = resultRel ? committed.files.find((f) => f.rel === resultRel) : undefined;
      if (resultRel && !resultFile) all.push(`result file ${JSON.stringify(job.result)} was not fetched`);
      return { ok: all.length === 0, files, result: resultFile?.path, attempt, error: all.length ? all.join('; ') : undefined };
    } catch (err) {
      await ex.discard();
      const transient = err instanceof Transient || err instanceof TarFormatError;
      if (!transient || attempt > opts.retries || opts.signal?.aborted) {
        return { ok: false, files: [], attempt, error: [...errors, (err as Error).message].join('; ') };
      }
      if (err instanceof Transient && err.message.includes('connection')) conns.reset(job.host);
      const wait = opts.backoff ? opts.backoff(attempt) : 250 * attempt;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function safeRelativeOrNull(name: string): string | null {
  try {
    return safeRelative(name);
  } catch {
    return null;
  }
}

async function attemptFetch(conns: Connections, job: FetchJob, names: string[], ex: SafeExtractor, opts: FetchOptions): Promise<{ problems: string[] }> {
  const { child, viaSsh } = await conns.spawn(job.host, fetchScript(job.workdir, names, opts.verify));
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 16384) stderr += c.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, sig) => resolve({ code, sig }));
    child.on('error', (err) => {
      stderr += err.message;
      resolve({ code: null, sig: null });
    });
  });
  const abort = (): void => {
    child.kill('SIGTERM');
  };
  opts.signal?.addEventListener('abort', abort, { once: true });
  let trailer: Buffer | undefined;
  let streamError: Error | undefined;
  let sawBytes = false;
  try {
    const source = (async function* () {
      for await (const c of child.stdout as AsyncIterable<Buffer>) {
        sawBytes = true;
        yield c;
      }
    })();
    trailer = await readTar(source, ex);
  } catch (err) {
    streamError = err as Error;
    child.kill('SIGTERM');
  }
  const { code, sig } = await exited;
  opts.signal?.removeEventListener('abort', abort);
  const missing = [...stderr.matchAll(/^cm-missing \.\/(.*)$/gm)].map((m) => `missing ${JSON.stringify(m[1])} (not on ${job.host.name})`);
  const detail = stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('cm-missing '))
    .slice(0, 3)
    .join(' / ');
  if (code === NO_WORKDIR) throw new Error(`job directory ${JSON.stringify(job.workdir)} not found on ${job.host.name}`);
  if (viaSsh && code === 255) throw new Transient(`ssh connection to ${job.host.name} failed${detail ? `: ${detail}` : ''}`);
  if (!sawBytes && code === 0 && missing.length > 0 && streamError) return { problems: missing };
  if (streamError) {
    if (streamError instanceof TarFormatError || sig) throw new Transient(`transfer from ${job.host.name} broke: ${streamError.message}${detail ? ` (${detail})` : ''}`);
    throw streamError;
  }
  // GNU tar: 1 = a file changed while read (the checksums below decide), 2 = fatal.
  if (code !== 0 && code !== 1) throw new Transient(`tar on ${job.host.name} exited with ${code ?? sig}${detail ? `: ${detail}` : ''}`);
  if (opts.verify) verifySums(ex, (trailer ?? Buffer.alloc(0)).toString('utf8'), job.host.name);
  return { problems: missing };
}

function verifySums(ex: SafeExtractor, trailer: string, hostName: string): void {
  const text = trailer.replace(/^\0+/, '');
  if (text.startsWith(NO_SUMS_MARK)) return;
  if (!text.startsWith(SUMS_MARK)) throw new Transient(`no checksums came back from ${hostName}`);
  const sums = parseSums(text.slice(SUMS_MARK.length));
  for (const p of ex.pending.values()) {
    const remote = sums.get(p.rel);
    if (remote !== p.sha256) throw new Transient(`${p.rel}: sha256 ${p.sha256.slice(0, 12)}... differs from the remote ${remote ? `${remote.slice(0, 12)}...` : '(none)'}`);
  }
}
