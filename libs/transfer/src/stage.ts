// Stage-in: a job's inputs reach every host it may run on before cm-exec sees the job. Each input
// is copied once per host into a content-addressed cache, ~/.cm/stage/<sha256>/<name>, and the job's
// command first links it into the job directory; jobs sharing an input share one copy.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { shQuote, type FetchedFile, type HostRecord, type JobRecord } from '@cm/protocol';
import type { Connections } from './connections';

export interface StagedInput {
  /** local absolute path */
  local: string;
  /** the name the job sees in its directory */
  name: string;
  key: string;
  size: number;
  sha256: string;
  /** remote path relative to the login directory */
  remote: string;
}

async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(file) as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { sha256: h.digest('hex'), size };
}

/** A directory's key: the sorted list of its files' relative paths and digests. */
async function hashTree(dir: string): Promise<{ sha256: string; size: number }> {
  const lines: string[] = [];
  let size = 0;
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const st = await stat(path.join(dir, r));
      if (st.isDirectory()) await walk(r);
      else if (st.isFile()) {
        const f = await hashFile(path.join(dir, r));
        size += f.size;
        lines.push(`${JSON.stringify(r)} ${f.sha256}`);
      }
    }
  };
  await walk('');
  return { sha256: createHash('sha256').update(`dir\n${lines.join('\n')}`).digest('hex'), size };
}

export class StageError extends Error {}

export class Stager {
  private readonly inputs = new Map<string, Promise<StagedInput>>();
  private readonly copies = new Map<string, Promise<void>>();

  constructor(
    private readonly conns: Connections,
    private readonly opts: { cwd: string; retries: number; limit: <T>(key: string, fn: () => Promise<T>) => Promise<T> },
  ) {}

  /** Hashes a local input once per run of cm-fetch. */
  input(file: string): Promise<StagedInput> {
    const local = path.resolve(this.opts.cwd, file);
    let p = this.inputs.get(local);
    if (!p) {
      p = (async () => {
        let st;
        try {
          st = await stat(local);
        } catch {
          throw new StageError(`input ${JSON.stringify(file)}: no such file or directory`);
        }
        if (!st.isFile() && !st.isDirectory()) throw new StageError(`input ${JSON.stringify(file)}: not a file or directory`);
        const { sha256, size } = st.isDirectory() ? await hashTree(local) : await hashFile(local);
        const name = path.basename(local);
        return { local, name, key: sha256, size, sha256, remote: `.cm/stage/${sha256}/${name}` };
      })();
      this.inputs.set(local, p);
    }
    return p;
  }

  /** Copies one input to one host, once. */
  copy(host: HostRecord, input: StagedInput): Promise<void> {
    const id = `${host.name}\0${input.key}`;
    let p = this.copies.get(id);
    if (!p) {
      p = this.opts.limit(host.name, () => this.copyWithRetries(host, input));
      this.copies.set(id, p);
      // A failure is reported to every job waiting on it, and the next job may try again.
      p.catch(() => this.copies.delete(id));
    }
    return p;
  }

  private async copyWithRetries(host: HostRecord, input: StagedInput): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.copyOnce(host, input);
      } catch (err) {
        if (attempt > this.opts.retries) throw err;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  }

  private async copyOnce(host: HostRecord, input: StagedInput): Promise<void> {
    const dest = `.cm/stage/${input.key}`;
    const q = shQuote;
    // Already there (an earlier run, another cm-fetch): nothing to send.
    const check = await this.conns.spawn(host, `[ -e ${q(`${dest}/${input.name}`)} ] && echo have || echo need`);
    const answer = await collect(check.child);
    if (answer.code === 0 && answer.out.trim() === 'have') return;
    if (answer.code !== 0) throw new StageError(`cannot reach ${host.name} to stage ${input.name}: ${answer.err.trim() || `exit ${answer.code}`}`);
    const verify = input.sha256 && (await stat(input.local)).isFile() ? `sha256sum ${q(`${dest}/${input.name}`)} 2>/dev/null || true` : 'true';
    const script =
      `mkdir -p .cm/stage && t=$(mktemp -d .cm/stage/.tmp.XXXXXX) && tar -xf - -C "$t" || exit 1; ` +
      `if [ -e ${q(dest)} ]; then rm -rf "$t"; else mv "$t" ${q(dest)}; fi; ${verify}`;
    const put = await this.conns.spawn(host, script, 'pipe');
    const tar = spawn('tar', ['-chf', '-', '-C', path.dirname(input.local), '--', input.name], { stdio: ['ignore', 'pipe', 'pipe'] });
    tar.stdout.pipe(put.child.stdin as NodeJS.WritableStream);
    put.child.stdin?.on('error', () => undefined);
    const [res, tarRes] = await Promise.all([collect(put.child), collect(tar, false)]);
    if (tarRes.code !== 0) throw new StageError(`tar of ${input.local} failed: ${tarRes.err.trim()}`);
    if (res.code !== 0) throw new StageError(`staging ${input.name} on ${host.name} failed: ${res.err.trim() || `exit ${res.code}`}`);
    const sum = /^([0-9a-f]{64})\s/.exec(res.out);
    if (verify !== 'true' && sum && sum[1] !== input.sha256) throw new StageError(`staged ${input.name} on ${host.name}: checksum differs`);
  }

  /**
   * Stages every input of job on every host in `hosts`, and returns the job with a command that
   * first links the inputs into its directory, plus the files for a `fetch` record (direction in).
   */
  async stageJob(job: JobRecord, hosts: HostRecord[]): Promise<{ job: JobRecord; files: FetchedFile[]; unstaged: string[] }> {
    const inputs = await Promise.all((job.inputs ?? []).map((f) => this.input(f)));
    const names = new Set<string>();
    for (const i of inputs) {
      if (names.has(i.name)) throw new StageError(`two inputs named ${JSON.stringify(i.name)}: a job directory can hold only one`);
      names.add(i.name);
    }
    if (inputs.length === 0) return { job, files: [], unstaged: [] };
    // A host that cannot be reached must not sink the job: cm-exec moves jobs off dead hosts. The
    // job fails only when no host got its inputs (and, should it land on one that did not, the
    // link step below stops it with exit 125 and says why).
    const results = await Promise.allSettled(hosts.map((h) => Promise.all(inputs.map((i) => this.copy(h, i)))));
    const unstaged: string[] = [];
    results.forEach((r, k) => {
      if (r.status === 'rejected') unstaged.push(`${(hosts[k] as HostRecord).name}: ${(r.reason as Error).message}`);
    });
    if (hosts.length === 0) throw new StageError('no host to stage to');
    if (unstaged.length === hosts.length) throw new StageError(unstaged.join('; '));
    const links = inputs
      .map((i) => `[ -e "$HOME"/${shQuote(i.remote)} ] && ln -sfn "$HOME"/${shQuote(i.remote)} ${shQuote(`./${i.name}`)}`)
      .join(' && ');
    const command = `{ ${links}; } || { echo "cm-fetch: staged inputs are missing in $HOME/.cm/stage on $(hostname)" >&2; exit 125; }\n${job.command}`;
    return {
      job: { ...job, command, staged: true },
      files: inputs.map((i) => ({ remote: i.remote, path: i.local, size: i.size, sha256: i.sha256 })),
      unstaged,
    };
  }
}

function collect(child: ReturnType<typeof spawn>, readOut = true): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    if (readOut) child.stdout?.on('data', (c: Buffer) => {
      if (out.length < 65536) out += c.toString('utf8');
    });
    child.stderr?.on('data', (c: Buffer) => {
      if (err.length < 16384) err += c.toString('utf8');
    });
    child.on('error', (e) => {
      err += e.message;
      resolve({ code: null, out, err });
    });
    child.on('close', (code) => resolve({ code, out, err }));
  });
}
