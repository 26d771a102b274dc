// Fetching a job's outputs: one `tar -cf -` per job through the host's shared connection, read by
// our own tar reader into temp files, checked against the remote's sha256sum, then renamed into
// <results>/<run>/<job>/. Refused names never stop the others; a broken transfer is retried whole.
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { closeSync, openSync, read, renameSync, writeSync } from 'node:fs';
import { copyFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { resultFileOf, shQuote, type FetchedFile, type HostRecord } from '@cm/protocol';
import type { Connections } from './connections';
import FETCH_SH from './fetch.sh';
import SEND_SH from './send.sh';
import { ensureDirs, safeJoin, safeRelative, tempBeside, UnsafePathError } from './paths';
import { ServerLost, type FetchServer, type FetchServers } from './server';
import { readTar, TarFormatError, type BodySink, type TarEntry, type TarHandler } from './tar';

const SUMS_MARK = 'cm-sha256\n';
const NO_SUMS_MARK = 'cm-nosha\n';

/**
 * The shell script run on the host (POSIX sh: the login shell may be anything), in the login
 * directory: names that exist go to one `tar -cf -`, the others are reported on stderr; with
 * verify, sha256sum of every file follows the archive on stdout.
 */
const FETCH = FETCH_SH.replace(/^\s*#.*\n/gm, '');

const SEND = SEND_SH.replace(/^\s*#.*\n/gm, '');

/**
 * Files of this size and more come from the host's server as an announcement only, and travel on a
 * session of their own whose stdout is the local temp file: the ssh master writes them there, where
 * the archive stream would pass every byte through cm-fetch (a read, a copy into the extractor, a
 * write). 200 MB here: cm-fetch and its master 1.35 s of CPU that way, 0.6 s this way, scp 0.85 s.
 * Below it, the session's own start costs more than the copy it saves.
 */
export const BIG_FROM = 16 * 1024 * 1024;

/** The command the login shell runs for one big file: send.sh over `remote` (relative to the login directory). */
export function sendScript(remote: string, verify: boolean): string {
  return `f=${shQuote(`./${remote}`)} v=${verify ? 1 : 0}\n${SEND}`;
}

/** The command the login shell runs in the job's directory: fetch.sh over these paths. */
export function fetchScript(paths: string[], verify: boolean): string {
  return `set -- ${paths.map((n) => shQuote(`./${n}`)).join(' ')}; v=${verify ? 1 : 0}\n${FETCH}`;
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

/** the C library's words for the errors a local disk gives (Node 20 has no strerror) */
const STRERROR: Record<string, string> = {
  ENOSPC: 'No space left on device',
  EDQUOT: 'Disk quota exceeded',
  EIO: 'Input/output error',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EROFS: 'Read-only file system',
  EFBIG: 'File too large',
  EMFILE: 'Too many open files',
  ENFILE: 'Too many open files in system',
};

/**
 * Writing into the local results tree failed (a full disk, a quota, EIO, permissions). It fails
 * the transfer at once and is not retried: the fault is our disk, not the link, and a retry would
 * fetch the whole batch again only to hit the same wall while the run waits.
 */
export class LocalWriteError extends Error {
  readonly code?: string;
  constructor(
    what: string,
    readonly file: string,
    err: unknown,
  ) {
    const code = (err as NodeJS.ErrnoException).code;
    super(`${what} ${file}: ${(code && STRERROR[code]) ?? (err as Error).message}${code ? ` (${code})` : ''}`);
    this.code = code;
  }
}

/** the file write the extractor uses; a test passes one that fails like a full disk */
export type WriteFn = (fd: number, buf: Buffer, off: number, len: number) => number;

interface Pending {
  rel: string;
  temp: string;
  final: string;
  size: number;
  sha256: string;
}

/** A big file the server announced: its temp file is open, waiting for its bytes (fetchBig). */
export interface BigFile {
  rel: string;
  temp: string;
  final: string;
  size: number;
  /** read-write: the ssh master writes it, we hash it; -1 once closed */
  fd: number;
}

/** Writes archive entries below root, refusing anything that is not a plain file or directory. */
export class SafeExtractor implements TarHandler {
  readonly pending = new Map<string, Pending>();
  readonly refused: string[] = [];
  /** big entries announced, to be fetched on sessions of their own (only where takesBig) */
  readonly bigs: BigFile[] = [];
  /** set by the server path, which asked for big entries; any other archive holding one is refused */
  takesBig = false;
  private current?: { fd: number; hash: ReturnType<typeof createHash>; written: number; pending: Pending };

  /** directories made (or checked) already, absolute: one check per directory, not per file */
  private readonly dirs = new Set<string>();

  /** `rootChecked`: the caller has made root and checked it is a real directory */
  constructor(
    private readonly root: string,
    rootChecked = false,
    private readonly writeFn: WriteFn = writeSync,
  ) {
    if (rootChecked) this.dirs.add(root);
  }

  /**
   * A refusal (a name or a planted symlink) is the host's doing and only skips that entry; any
   * other error is our disk failing, which fails the transfer.
   */
  private refuseOrFail(err: unknown, what: string, file: string, msg: string): void {
    if (err instanceof UnsafePathError) this.refused.push(msg);
    else throw new LocalWriteError(what, file, err);
  }

  private dir(rel: string): void {
    ensureDirs(this.root, rel, this.dirs);
  }

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
          this.dir(rel);
        } catch (err) {
          this.refuseOrFail(err, 'making directory', final, `refused ${(err as Error).message}`);
        }
        return null;
      case 'symlink':
        this.refused.push(`refused ${JSON.stringify(rel)}: a symlink (to ${JSON.stringify(e.linkname)}); only files and directories are fetched`);
        return null;
      case 'big':
        if (!this.takesBig) {
          this.refused.push(`refused ${JSON.stringify(rel)}: a special entry (tar type "B")`);
          return null;
        }
        {
          const opened = await this.openTemp(rel, final, fsc.O_RDWR);
          if (opened) this.bigs.push({ rel, temp: opened.temp, final, size: e.size, fd: opened.fd });
        }
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
        const temp = tempBeside(final);
        try {
          this.dir(path.posix.dirname(rel));
          await copyFile(src.temp, temp, fsc.COPYFILE_EXCL);
          this.replace({ rel, temp, final, size: src.size, sha256: src.sha256 });
        } catch (err) {
          await unlink(temp).catch(() => undefined);
          this.refuseOrFail(err, 'writing', final, `refused ${JSON.stringify(rel)}: ${(err as Error).message}`);
        }
        return null;
      }
      case 'file': {
        const opened = await this.openTemp(rel, final, fsc.O_WRONLY);
        if (!opened) return null;
        const { fd, temp } = opened;
        // Synchronous writes: local page-cache writes are quick, and a thread-pool round trip
        // per small file cost more than the write itself (1,000-file fetches were CPU-bound).
        const cur = { fd, hash: createHash('sha256'), written: 0, pending: { rel, temp, final, size: e.size, sha256: '' } };
        this.current = cur;
        const write = this.writeFn;
        return {
          write: (chunk: Buffer) => {
            cur.hash.update(chunk);
            cur.written += chunk.length;
            let off = 0;
            try {
              while (off < chunk.length) off += write(fd, chunk, off, chunk.length - off);
            } catch (err) {
              // discard() closes and removes the temp file; the caller stops the stream.
              throw new LocalWriteError('writing', final, err);
            }
          },
        };
      }
    }
  }

  /** A fresh temp file beside final (O_EXCL|O_NOFOLLOW: never something planted under that name); null when refused. */
  private async openTemp(rel: string, final: string, access: number): Promise<{ fd: number; temp: string } | null> {
    try {
      this.dir(path.posix.dirname(rel));
    } catch (err) {
      this.refuseOrFail(err, 'making directory for', final, `refused ${(err as Error).message}`);
      return null;
    }
    const temp = tempBeside(final);
    try {
      return { fd: openSync(temp, access | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644), temp };
    } catch (err) {
      throw new LocalWriteError('creating', final, err);
    }
  }

  /** A big file whose bytes all came, hashed here: pending like any other file. */
  landBig(b: BigFile, sha256: string): void {
    const fd = b.fd;
    b.fd = -1;
    try {
      closeSync(fd);
    } catch (err) {
      throw new LocalWriteError('writing', b.final, err);
    }
    this.replace({ rel: b.rel, temp: b.temp, final: b.final, size: b.size, sha256 });
  }

  async entryEnd(e: TarEntry): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    try {
      // close reports late write errors (NFS, quotas); the temp file is still ours to remove
      closeSync(cur.fd);
    } catch (err) {
      await unlink(cur.pending.temp).catch(() => undefined);
      throw new LocalWriteError('writing', cur.pending.final, err);
    }
    if (cur.written !== e.size) throw new TarFormatError(`${cur.pending.rel}: got ${cur.written} of ${e.size} bytes`);
    cur.pending.sha256 = cur.hash.digest('hex');
    this.replace(cur.pending);
  }

  private replace(p: Pending): void {
    const old = this.pending.get(p.rel);
    if (old) void unlink(old.temp).catch(() => undefined);
    this.pending.set(p.rel, p);
  }

  /** Removes every temp file (after a failed attempt). */
  async discard(): Promise<void> {
    if (this.current) {
      try {
        closeSync(this.current.fd);
      } catch {
        // already closed
      }
      await unlink(this.current.pending.temp).catch(() => undefined);
      this.current = undefined;
    }
    for (const b of this.bigs) {
      if (b.fd >= 0) {
        try {
          closeSync(b.fd);
        } catch {
          // the write error was reported already
        }
        b.fd = -1;
      }
    }
    await Promise.all([...this.pending.values(), ...this.bigs].map((p) => unlink(p.temp).catch(() => undefined)));
    this.pending.clear();
    this.bigs.length = 0;
  }

  /** Renames verified temp files into place; returns what landed and what did not. */
  async commit(): Promise<{ files: Array<Omit<FetchedFile, 'remote'> & { rel: string }>; errors: string[] }> {
    const files: Array<Omit<FetchedFile, 'remote'> & { rel: string }> = [];
    const errors: string[] = [];
    for (const p of this.pending.values()) {
      try {
        // rename() replaces a file or a symlink (never following it) and fails on a directory.
        renameSync(p.temp, p.final);
        files.push({ rel: p.rel, path: p.final, size: p.size, sha256: p.sha256 });
      } catch (err) {
        await unlink(p.temp).catch(() => undefined);
        const code = (err as NodeJS.ErrnoException).code;
        errors.push(`${JSON.stringify(p.rel)}: ${code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' ? 'a directory of that name is already there' : (err as Error).message}`);
      }
    }
    this.pending.clear();
    return { files, errors };
  }
}

export interface FetchJob {
  job: string;
  run: string;
  /** where its files land below <dir>/<run>/: the job id (default) or <task>/<name>=<value>/... */
  folder?: string;
  /** remove its directory on the host once its files are fetched and their sha256 verified */
  remove?: boolean;
  host: HostRecord;
  /** remote job directory, relative to the login directory */
  workdir: string;
  outputs: string[];
  /** the declared result file (one of outputs, or added to them) */
  result?: string;
}

export interface FetchOptions {
  /** root of the local results tree; files land in <dir>/<run>/<folder>/ */
  dir: string;
  /** a message for people (stderr): a clean-up that failed while the fetch itself succeeded */
  warn?: (message: string) => void;
  retries: number;
  verify: boolean;
  signal?: AbortSignal;
  /** ms before retry k (1-based); tests make it 0 */
  backoff?: (attempt: number) => number;
  /** the local file write (default fs.writeSync); tests inject a full disk here */
  write?: WriteFn;
  /** hosts' servers (serve.pl); without, or where a host has none, one `ssh tar` per batch */
  servers?: FetchServers;
  /** files of this size and more travel on a session of their own (default BIG_FROM; tests make it small) */
  bigFrom?: number;
  /** CM_TRACE=2: a line for people per batch, when it leaves and when its files are home */
  trace?: (what: string) => void;
}

export interface FetchOutcome {
  ok: boolean;
  /** every file was checked against the sha256 the host computed */
  verified?: boolean;
  files: FetchedFile[];
  result?: string;
  attempt: number;
  error?: string;
}

/** An attempt that may succeed if repeated (connection lost, stream cut, checksum mismatch). */
class Transient extends Error {
  /** the host's server went away: its connection may have too */
  lost = false;
}

function safeRelativeOrNull(name: string): string | null {
  try {
    return safeRelative(name);
  } catch {
    return null;
  }
}

/** One job of a batch: its checked names, where they go, and what went wrong before any transfer. */
interface Slot {
  job: FetchJob;
  /** the job directory as archive names start (normalised, relative) */
  prefix: string;
  names: string[];
  root: string;
  errors: string[];
  ex: SafeExtractor;
  missing: string[];
  /** root, relative to the results tree */
  rel: string;
}

export async function fetchOutputs(conns: Connections, job: FetchJob, opts: FetchOptions): Promise<FetchOutcome> {
  return (await fetchBatch(conns, job.host, [job], opts))[0] as FetchOutcome;
}

/**
 * Fetches the outputs of several jobs of one host in one `tar` stream: when jobs finish faster than
 * transfers go, the queue of a host is sent as one batch, so the per-transfer cost (a session, a
 * shell, tar, sha256sum) is paid once per batch instead of once per job.
 */
export async function fetchBatch(conns: Connections, host: HostRecord, jobs: FetchJob[], opts: FetchOptions): Promise<FetchOutcome[]> {
  const outcomes: Array<FetchOutcome | undefined> = jobs.map(() => undefined);
  const slots: Array<Slot & { i: number }> = [];
  const base = path.resolve(opts.dir);
  jobs.forEach((job, i) => {
    const errors: string[] = [];
    const names: string[] = [];
    const declared = [...job.outputs];
    const resultFile = resultFileOf(job);
    if (resultFile !== undefined && !declared.includes(resultFile)) declared.push(resultFile);
    for (const name of declared) {
      try {
        const clean = safeRelative(name);
        if (!names.includes(clean)) names.push(clean);
      } catch (err) {
        errors.push(`refused output ${(err as Error).message}`);
      }
    }
    let root: string;
    let prefix: string;
    try {
      root = safeJoin(base, path.posix.join(safeRelative(job.run), safeRelative(job.folder ?? job.job)));
    } catch (err) {
      outcomes[i] = { ok: false, files: [], attempt: 1, error: `bad run or job id: ${(err as Error).message}` };
      return;
    }
    try {
      prefix = safeRelative(job.workdir);
    } catch (err) {
      outcomes[i] = { ok: false, files: [], attempt: 1, error: `workdir must be a path below the login directory: ${(err as Error).message}` };
      return;
    }
    if (names.length === 0) {
      outcomes[i] = { ok: errors.length === 0, files: [], attempt: 1, error: errors.join('; ') || undefined };
      return;
    }
    slots.push({ i, job, prefix, names, root, errors, ex: new SafeExtractor(root, false, opts.write), missing: [], rel: path.relative(base, root) });
  });

  let attempt = 0;
  while (slots.length > 0) {
    attempt += 1;
    for (const s of slots) {
      s.ex = new SafeExtractor(s.root, false, opts.write);
      s.missing = [];
    }
    try {
      let making = base;
      try {
        // every step below the results root made or checked one at a time: a symlink planted on
        // the way (results/<run>/<task>/size=4000) would redirect every later write; the steps
        // the batch's jobs share are checked once per attempt
        const checked = new Set<string>();
        for (const s of slots) {
          making = s.root;
          ensureDirs(base, s.rel, checked);
          s.ex = new SafeExtractor(s.root, true, opts.write);
        }
      } catch (err) {
        throw err instanceof UnsafePathError ? err : new LocalWriteError('making directory', making, err);
      }
      const verified = await attemptBatch(conns, host, slots, opts);
      for (const s of slots) {
        const committed = await s.ex.commit();
        const files: FetchedFile[] = committed.files.map((f) => ({ remote: path.posix.join(s.job.workdir, f.rel), path: f.path, size: f.size, sha256: f.sha256 }));
        const all = [...s.errors, ...s.missing, ...s.ex.refused, ...committed.errors];
        const resultName = resultFileOf(s.job);
        const resultRel = resultName !== undefined ? safeRelativeOrNull(resultName) : null;
        const resultFile = resultRel ? committed.files.find((f) => f.rel === resultRel) : undefined;
        if (resultRel && !resultFile) all.push(`result file ${JSON.stringify(s.job.result)} was not fetched`);
        outcomes[s.i] = { ok: all.length === 0, verified, files, result: resultFile?.path, attempt, error: all.length ? all.join('; ') : undefined };
      }
      break;
    } catch (err) {
      await Promise.all(slots.map((s) => s.ex.discard()));
      const transient = err instanceof Transient || err instanceof TarFormatError;
      if (!transient || attempt > opts.retries || opts.signal?.aborted) {
        for (const s of slots) {
          let msg = (err as Error).message;
          // One archive carries the whole batch, so another job's file failing fails this one too.
          if (err instanceof LocalWriteError && !err.file.startsWith(`${s.root}${path.sep}`) && err.file !== s.root) msg = `not fetched, came in one archive with: ${msg}`;
          outcomes[s.i] = { ok: false, files: [], attempt, error: [...s.errors, msg].join('; ') };
        }
        break;
      }
      if (err instanceof Transient && (err.lost || err.message.includes('connection'))) conns.reset(host);
      const wait = opts.backoff ? opts.backoff(attempt) : 250 * attempt;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }
  return outcomes as FetchOutcome[];
}

/** Sends each archive entry to the extractor of the job whose directory holds it. */
class Router implements TarHandler {
  private current?: SafeExtractor;
  readonly unrouted: string[] = [];
  /** job directory -> its slot (the batch's first job of that directory, as a scan in order found) */
  private readonly byPrefix = new Map<string, Slot>();
  constructor(slots: Slot[]) {
    for (const s of slots) if (!this.byPrefix.has(s.prefix)) this.byPrefix.set(s.prefix, s);
  }

  /**
   * The slot and the name inside its job directory: the deepest job directory that holds the name,
   * found by looking its parent directories up, nearest first (a scan of the batch per entry made a
   * batch of 64 cost 4,096 comparisons).
   */
  route(name: string): { slot: Slot; rel: string } | null {
    let rel: string;
    try {
      rel = safeRelative(name);
    } catch {
      return null;
    }
    for (let cut = rel.lastIndexOf('/'); cut > 0; cut = rel.lastIndexOf('/', cut - 1)) {
      const slot = this.byPrefix.get(rel.slice(0, cut));
      if (slot) return { slot, rel: rel.slice(cut + 1) };
    }
    return null;
  }

  async entry(e: TarEntry): Promise<BodySink | null> {
    this.current = undefined;
    const r = this.route(e.name);
    if (!r) {
      // The job directory itself, or a name no job of the batch asked for: never written.
      const clean = safeRelativeOrNull(e.name);
      if (clean === null || !this.byPrefix.has(clean)) this.unrouted.push(e.name);
      return null;
    }
    let linkname = e.linkname;
    if (e.type === 'hardlink') {
      const l = this.route(e.linkname);
      linkname = l && l.slot === r.slot ? l.rel : `../${e.linkname}`;
    }
    this.current = r.slot.ex;
    return r.slot.ex.entry({ ...e, name: r.rel, linkname });
  }

  async entryEnd(e: TarEntry): Promise<void> {
    if (this.current) await this.current.entryEnd(e);
    this.current = undefined;
  }
}

function lost(err: ServerLost): Transient {
  const t = new Transient(err.message);
  t.lost = true;
  return t;
}

/** Fetches one batch; true when the host's sha256 sums were checked. */
async function attemptBatch(conns: Connections, host: HostRecord, slots: Slot[], opts: FetchOptions): Promise<boolean> {
  let server: FetchServer | null = null;
  try {
    server = opts.servers ? await opts.servers.get(host) : null;
  } catch (err) {
    throw err instanceof ServerLost ? lost(err) : err;
  }
  if (server) return attemptServer(conns, server, host, slots, opts);
  const paths = slots.flatMap((s) => s.names.map((n) => `${s.prefix}/${n}`));
  const router = new Router(slots);
  const { child, viaSsh } = await conns.spawn(host, fetchScript(paths, opts.verify));
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 65536) stderr += c.toString('utf8');
  });
  let killTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, sig) => {
      clearTimeout(killTimer);
      resolve({ code, sig });
    });
    child.on('exit', () => {
      clearTimeout(killTimer);
      // Once stopped, stderr may stay open in a process we do not own (tar under `sh -c`, the
      // ssh master holding a mux client's descriptors): give it a moment, then stop waiting.
      if (stopping) setTimeout(() => child.stderr?.destroy(), 2000);
    });
    child.on('error', (err) => {
      stderr += err.message;
      resolve({ code: null, sig: null });
    });
  });
  /**
   * Ends a transfer we no longer read. Closing our end of stdout is what stops the sender: the
   * remote tar (or the ssh master relaying it) gets EPIPE, where a signal to our child alone would
   * leave tar blocked on a full pipe and 'close' would never come.
   */
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    child.stdout?.destroy();
    if (child.exitCode !== null || child.signalCode !== null) {
      setTimeout(() => child.stderr?.destroy(), 2000);
      return;
    }
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
  };
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
    trailer = await readTar(source, router);
  } catch (err) {
    streamError = err as Error;
    stop();
  }
  const { code, sig } = await exited;
  opts.signal?.removeEventListener('abort', abort);
  let missingCount = 0;
  for (const m of stderr.matchAll(/^cm-missing \.\/(.*)$/gm)) {
    const r = router.route(m[1] as string);
    if (r) {
      r.slot.missing.push(`missing ${JSON.stringify(r.rel)} (not on ${host.name})`);
      missingCount += 1;
    }
  }
  const detail = stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('cm-missing '))
    .slice(0, 3)
    .join(' / ');
  // Our own disk failing is reported as it is, whatever the stopped child's exit says.
  if (streamError instanceof LocalWriteError) throw streamError;
  if (viaSsh && code === 255) throw new Transient(`ssh connection to ${host.name} failed${detail ? `: ${detail}` : ''}`);
  // Nothing there at all: the script exits 0 before tar, with every name reported missing.
  if (!sawBytes && code === 0 && missingCount === paths.length) return false;
  if (streamError) {
    if (streamError instanceof TarFormatError || sig) throw new Transient(`transfer from ${host.name} broke: ${streamError.message}${detail ? ` (${detail})` : ''}`);
    throw streamError;
  }
  // GNU tar: 1 = a file changed while read (the checksums below decide), 2 = fatal.
  if (code !== 0 && code !== 1) throw new Transient(`tar on ${host.name} exited with ${code ?? sig}${detail ? `: ${detail}` : ''}`);
  if (router.unrouted.length > 0) {
    for (const s of slots) s.ex.refused.push(`refused ${router.unrouted.length} archive entries outside the batch's job directories`);
  }
  return opts.verify && verifySums(slots, (trailer ?? Buffer.alloc(0)).toString('utf8'), host.name);
}

const readAt = promisify(read);

/**
 * sha256 of the file as it grows, read from its start (the fd's own offset is the writer's): the
 * hash keeps up with the transfer instead of following it. Caught up, it waits for more, briefly;
 * once `done` says the writer has ended, it reads to the end and returns the sha256 and the length.
 */
async function hashGrowing(fd: number, done: () => boolean): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  for (let pos = 0; ; ) {
    const ended = done();
    const { bytesRead } = await readAt(fd, buf, 0, buf.length, pos);
    if (bytesRead > 0) {
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    } else if (ended) {
      return { sha256: hash.digest('hex'), size: pos };
    } else {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * One announced big file on a session of its own, its stdout the temp file: the bytes go from the
 * ssh master to the disk without passing through us. Then its size, and the sha256 of what landed
 * (ours; the host's, with verify).
 */
async function fetchBig(conns: Connections, host: HostRecord, remote: string, big: BigFile, opts: FetchOptions): Promise<{ local: string; host?: string }> {
  const { child, viaSsh } = await conns.spawn(host, sendScript(remote, opts.verify), 'ignore', big.fd);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 65536) stderr += c.toString('utf8');
  });
  const abort = (): void => {
    child.kill('SIGTERM');
  };
  opts.signal?.addEventListener('abort', abort, { once: true });
  let ended = false;
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (c, s) => {
      ended = true;
      resolve({ code: c, sig: s });
    });
    child.on('error', (err) => {
      ended = true;
      stderr += err.message;
      resolve({ code: null, sig: null });
    });
  });
  let hashed: { sha256: string; size: number } | undefined;
  let readError: unknown;
  try {
    hashed = await hashGrowing(big.fd, () => ended);
  } catch (err) {
    readError = err;
    child.kill('SIGTERM');
  }
  const { code, sig } = await exited;
  opts.signal?.removeEventListener('abort', abort);
  // openssl -r: "HEX *NAME", with a backslash first where the name holds one
  const sumLine = /^\\?([0-9a-f]{64}) /;
  const detail = stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !sumLine.test(l))
    .slice(0, 3)
    .join(' / ');
  // our disk, not the link: not retried
  if (!hashed) throw new LocalWriteError('reading back', big.final, readError);
  if (viaSsh && code === 255) throw new Transient(`ssh connection to ${host.name} failed${detail ? `: ${detail}` : ''}`);
  if (code !== 0) throw new Transient(`sending ${JSON.stringify(remote)} from ${host.name} exited with ${code ?? sig}${detail ? `: ${detail}` : ''}`);
  if (hashed.size !== big.size) throw new Transient(`${JSON.stringify(remote)} changed on ${host.name} while sent (${hashed.size} bytes came of ${big.size})`);
  const local = hashed.sha256;
  if (!opts.verify) return { local };
  const m = stderr.split('\n').map((l) => sumLine.exec(l)).find((x) => x);
  if (!m) throw new Transient(`no checksum came back from ${host.name} for ${JSON.stringify(remote)}${detail ? `: ${detail}` : ''}`);
  return { local, host: m[1] as string };
}

/** One batch through the host's server: the same archive and checks, without a session of its own. */
async function attemptServer(conns: Connections, server: FetchServer, host: HostRecord, slots: Slot[], opts: FetchOptions): Promise<boolean> {
  const paths = slots.flatMap((s) => s.names.map((n) => `${s.prefix}/${n}`));
  const router = new Router(slots);
  for (const s of slots) s.ex.takesBig = true;
  const abort = (): void => server.kill();
  opts.signal?.addEventListener('abort', abort, { once: true });
  let reply;
  try {
    reply = await server.fetch(paths, opts.verify, router, opts.bigFrom ?? BIG_FROM);
  } catch (err) {
    throw err instanceof ServerLost ? lost(err) : err;
  } finally {
    opts.signal?.removeEventListener('abort', abort);
  }
  if (reply.changed.length > 0) throw new Transient(`${reply.changed.slice(0, 3).map((n) => JSON.stringify(n)).join(', ')} changed on ${host.name} while sent`);
  for (const name of reply.missing) {
    const r = router.route(name);
    if (r) r.slot.missing.push(`missing ${JSON.stringify(r.rel)} (not on ${host.name})`);
  }
  for (const text of reply.errors) {
    // "PATH: why": the job whose folder holds PATH, else every job of the batch
    const owner = slots.find((s) => text.startsWith(`${s.prefix}/`));
    for (const s of owner ? [owner] : slots) s.missing.push(`not read on ${host.name}: ${owner ? text.slice(owner.prefix.length + 1) : text}`);
  }
  if (router.unrouted.length > 0) {
    for (const s of slots) s.ex.refused.push(`refused ${router.unrouted.length} archive entries outside the batch's job directories`);
  }
  const sums = new Map<string, string>();
  for (const s of slots) {
    for (const b of s.ex.bigs) {
      const remote = `${s.prefix}/${b.rel}`;
      const sum = await fetchBig(conns, host, remote, b, opts);
      s.ex.landBig(b, sum.local);
      if (sum.host !== undefined) sums.set(remote, sum.host);
    }
    s.ex.bigs.length = 0;
  }
  if (!opts.verify) return false;
  for (const [name, sum] of reply.sums) {
    const clean = safeRelativeOrNull(name);
    if (clean !== null) sums.set(clean, sum);
  }
  checkSums(slots, sums);
  return true;
}

/** false: the host has no sha256sum, so only sizes were checked */
function verifySums(slots: Slot[], trailer: string, hostName: string): boolean {
  const text = trailer.replace(/^\0+/, '');
  if (text.startsWith(NO_SUMS_MARK)) return false;
  if (!text.startsWith(SUMS_MARK)) throw new Transient(`no checksums came back from ${hostName}`);
  checkSums(slots, parseSums(text.slice(SUMS_MARK.length)));
  return true;
}

/** Every file that arrived against the sha256 its host computed (keys: archive names). */
function checkSums(slots: Slot[], sums: Map<string, string>): void {
  for (const s of slots) {
    for (const p of s.ex.pending.values()) {
      const remote = sums.get(`${s.prefix}/${p.rel}`);
      if (remote !== p.sha256) throw new Transient(`${p.rel}: sha256 ${p.sha256.slice(0, 12)}... differs from the remote ${remote ? `${remote.slice(0, 12)}...` : '(none)'}`);
    }
  }
}
