import { afterAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connections } from './connections';
import { fetchBatch, type FetchJob } from './fetch';
import { FetchServers, ServerLost } from './server';
import { TarFormatError } from './tar';
import { FetchQueue } from './queue';

// every scratch folder of the file, removed at its end
const scratchRoot = mkdtempSync(path.join(os.tmpdir(), 'cm-srv-'));
afterAll(() => rmSync(scratchRoot, { recursive: true, force: true }));
const scratch = (): string => mkdtempSync(path.join(scratchRoot, 'd-'));
const LAP = { kind: 'host' as const, v: 1 as const, name: 'lap', address: 'localhost', local: true, slots: 1, tags: [] };
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Every file and folder under dir, relative to it, sorted. */
const listTree = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String).sort();

/** a job's folder on the local "host" with these files (name -> content) */
function jobDir(home: string, job: string, files: Record<string, string | Buffer>): void {
  for (const [name, body] of Object.entries(files)) {
    const f = path.join(home, '.cm/runs/r', job, name);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, body);
  }
}

const job = (j: string, outputs: string[], extra: Partial<FetchJob> = {}): FetchJob => ({ job: j, run: 'r', host: LAP, workdir: `.cm/runs/r/${j}`, outputs, ...extra });

describe("cm-fetch's server (serve.pl) on a local host", () => {
  it('sends a batch as one archive: nested folders, long and odd names, a big file, each checked against its sha256', async () => {
    const home = scratch();
    const dest = scratch();
    const long = `${'n'.repeat(120)}/${'f'.repeat(110)}.txt`;
    const big = randomBytes(5 * 1024 * 1024);
    jobDir(home, 'a', { 'v.txt': 'a\n', 'd/e/x': 'xa', [long]: 'long', 'new\nline': 'n' });
    jobDir(home, 'b', { 'big.bin': big });
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    const outs = await fetchBatch(conns, LAP, [job('a', ['v.txt', 'd', long, 'new\nline']), job('b', ['big.bin', 'nope'])], { dir: dest, retries: 0, verify: true, servers });
    servers.close();
    await conns.close();
    expect(servers.lacks(LAP)).toBe(false);
    expect(outs[0]?.error).toBeUndefined();
    expect(outs[0]).toMatchObject({ ok: true, verified: true, attempt: 1 });
    expect(outs[0]?.files.map((f) => f.remote).sort()).toEqual(['.cm/runs/r/a/d/e/x', `.cm/runs/r/a/${long}`, '.cm/runs/r/a/new\nline', '.cm/runs/r/a/v.txt'].sort());
    expect(readFileSync(path.join(dest, 'r/a', long), 'utf8')).toBe('long');
    expect(readFileSync(path.join(dest, 'r/a/new\nline'), 'utf8')).toBe('n');
    expect(outs[1]).toMatchObject({ ok: false, error: 'missing "nope" (not on lap)' });
    expect(outs[1]?.files).toEqual([{ remote: '.cm/runs/r/b/big.bin', path: path.join(dest, 'r/b/big.bin'), size: big.length, sha256: sha(big) }]);
    expect(sha(readFileSync(path.join(dest, 'r/b/big.bin')))).toBe(sha(big));
    expect(existsSync(conns.controlDir)).toBe(false);
  }, 30000);

  it('refuses a symlink and a fifo per job; the server goes on with the next batch', async () => {
    const home = scratch();
    const dest = scratch();
    jobDir(home, 'a', { 'v.txt': 'a\n' });
    jobDir(home, 'b', { 'v.txt': 'b\n' });
    symlinkSync('/etc', path.join(home, '.cm/runs/r/a/etc'));
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    const spawned: string[] = [];
    const spawn = conns.spawn.bind(conns);
    conns.spawn = (host, script, stdin) => {
      spawned.push(script);
      return spawn(host, script, stdin);
    };
    const [a] = await fetchBatch(conns, LAP, [job('a', ['v.txt', 'etc'])], { dir: dest, retries: 0, verify: true, servers });
    const [b] = await fetchBatch(conns, LAP, [job('b', ['v.txt'])], { dir: dest, retries: 0, verify: true, servers });
    servers.close();
    await conns.close();
    expect(a).toMatchObject({ ok: false, files: [{ remote: '.cm/runs/r/a/v.txt' }] });
    expect(a?.error).toMatch(/refused "etc": a symlink/);
    expect(b).toMatchObject({ ok: true, files: [{ remote: '.cm/runs/r/b/v.txt' }] });
    // both batches went through the one server
    expect(spawned.length).toBe(1);
    expect(listTree(dest)).toEqual(['r', 'r/a', 'r/a/v.txt', 'r/b', 'r/b/v.txt']);
  }, 30000);

  it('the queue removes verified folders through the server, then the run folder once empty', async () => {
    const home = scratch();
    const dest = scratch();
    for (const j of ['a', 'b', 'c']) jobDir(home, j, { 'o/v.txt': `${j}\n` });
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    const queue = new FetchQueue(conns, { dir: dest, retries: 0, verify: true, servers }, { transfers: 4, perHost: 8, maxBatch: 64 });
    const outs = await Promise.all(['a', 'b'].map((j) => queue.add(job(j, ['o'], { remove: true }))));
    expect(outs.map((o) => o.ok)).toEqual([true, true]);
    expect(readdirSync(path.join(home, '.cm/runs/r'))).toEqual(['c']);
    expect((await queue.add(job('c', ['o'], { remove: true }))).ok).toBe(true);
    servers.close();
    await conns.close();
    expect(readdirSync(path.join(home, '.cm/runs'))).toEqual([]);
    expect(listTree(dest)).toContain('r/c/o/v.txt');
  }, 30000);

  it('removes a folder the job left read-only, and a symlink in it without touching what it points to', async () => {
    const home = scratch();
    const outside = scratch();
    writeFileSync(path.join(outside, 'keep.txt'), 'keep');
    jobDir(home, 'a', { 'v.txt': 'a\n', 'ro/deep/x.txt': 'x' });
    symlinkSync(outside, path.join(home, '.cm/runs/r/a/link'));
    chmodSync(path.join(home, '.cm/runs/r/a/ro/deep'), 0o500);
    chmodSync(path.join(home, '.cm/runs/r/a/ro'), 0o500);
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    const server = await servers.get(LAP);
    if (!server) throw new Error('no server');
    const errors = await server.remove(['.cm/runs/r/a', '.cm/runs/r/not-there']);
    servers.close();
    await conns.close();
    expect(errors).toEqual([]);
    expect(existsSync(path.join(home, '.cm/runs'))).toBe(true);
    expect(readdirSync(path.join(home, '.cm/runs'))).toEqual([]);
    expect(readFileSync(path.join(outside, 'keep.txt'), 'utf8')).toBe('keep');
  }, 30000);

  it('requests sent back to back, before any reply: each reply is read in its turn, whole', async () => {
    const home = scratch();
    for (const j of ['a', 'b', 'c']) jobDir(home, j, { 'v.txt': `${j}\n` });
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    const server = await servers.get(LAP);
    if (!server) throw new Error('no server');
    const names: string[][] = [];
    const into = (k: number) => ({
      entry: async (e: { name: string }) => {
        (names[k] ??= []).push(e.name);
        return { write: () => undefined };
      },
      entryEnd: async () => undefined,
    });
    // written at once, one behind the other: a fetch, a removal, then another fetch
    const first = server.fetch(['.cm/runs/r/a/v.txt'], true, into(0));
    const removed = server.remove(['.cm/runs/r/a']);
    const second = server.fetch(['.cm/runs/r/b/v.txt', '.cm/runs/r/c/v.txt'], true, into(1));
    const [r1, errors, r2] = await Promise.all([first, removed, second]);
    servers.close();
    await conns.close();
    expect(names).toEqual([['.cm/runs/r/a/v.txt'], ['.cm/runs/r/b/v.txt', '.cm/runs/r/c/v.txt']]);
    expect([...r1.sums.values()]).toEqual([sha('a\n')]);
    expect(errors).toEqual([]);
    expect([...r2.sums.values()]).toEqual([sha('b\n'), sha('c\n')]);
    expect(readdirSync(path.join(home, '.cm/runs/r')).sort()).toEqual(['b', 'c']);
  }, 30000);

  it('a reply that breaks fails the requests sent behind it as lost (they are retried on a fresh server)', async () => {
    const home = scratch();
    for (const j of ['a', 'b']) jobDir(home, j, { 'v.txt': `${j}\n` });
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    const server = await servers.get(LAP);
    if (!server) throw new Error('no server');
    const failing = {
      entry: async () => {
        throw new TarFormatError('a bad entry');
      },
      entryEnd: async () => undefined,
    };
    const first = server.fetch(['.cm/runs/r/a/v.txt'], true, failing);
    const second = server.fetch(['.cm/runs/r/b/v.txt'], true, { entry: async () => null, entryEnd: async () => undefined });
    await expect(first).rejects.toThrow(ServerLost);
    await expect(second).rejects.toThrow(ServerLost);
    expect(server.dead).toBe(true);
    const fresh = await servers.get(LAP);
    expect(fresh).not.toBe(server);
    servers.close();
    await conns.close();
  }, 30000);

  it('a host without perl: no server, the same fetch by one `sh` with tar per batch', async () => {
    const home = scratch();
    const dest = scratch();
    jobDir(home, 'a', { 'v.txt': 'a\n' });
    // a PATH with what fetch.sh needs and no perl
    const bin = scratch();
    for (const tool of ['sh', 'tar', 'find', 'sha256sum', 'mktemp', 'cat', 'rm']) {
      const real = ['/usr/bin', '/bin'].map((d) => path.join(d, tool)).find((f) => existsSync(f));
      if (real) symlinkSync(real, path.join(bin, tool));
    }
    const conns = new Connections({ home, env: { ...process.env, PATH: bin } });
    const servers = new FetchServers(conns);
    const [out] = await fetchBatch(conns, LAP, [job('a', ['v.txt'])], { dir: dest, retries: 0, verify: true, servers });
    servers.close();
    await conns.close();
    expect(servers.lacks(LAP)).toBe(true);
    expect(out).toMatchObject({ ok: true, verified: true, files: [{ remote: '.cm/runs/r/a/v.txt', sha256: sha('a\n') }] });
  }, 30000);

  it('a server that dies in the middle of an archive: the batch is retried whole through a fresh one', async () => {
    const home = scratch();
    const dest = scratch();
    const body = randomBytes(3 * 1024 * 1024);
    jobDir(home, 'a', { 'big.bin': body, 'v.txt': 'a\n' });
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    let killed = 0;
    const write = (fd: number, buf: Buffer, off: number, len: number): number => {
      if (killed === 0) {
        killed += 1;
        void servers.get(LAP).then((s) => s?.kill());
      }
      return writeSync(fd, buf, off, len);
    };
    const [out] = await fetchBatch(conns, LAP, [job('a', ['big.bin', 'v.txt'])], { dir: dest, retries: 2, verify: true, backoff: () => 0, servers, write });
    servers.close();
    await conns.close();
    expect(killed).toBe(1);
    expect(out).toMatchObject({ ok: true, verified: true, attempt: 2 });
    expect(sha(readFileSync(path.join(dest, 'r/a/big.bin')))).toBe(sha(body));
    expect(listTree(dest).filter((n) => n.includes('.cm-part-'))).toEqual([]);
  }, 30000);

  it('a big file (from bigFrom bytes) comes on a session of its own, straight into its file, checked like the others', async () => {
    const home = scratch();
    const dest = scratch();
    const big = randomBytes(3 * 1024 * 1024 + 7);
    const nested = randomBytes(2 * 1024 * 1024);
    jobDir(home, 'a', { 'big.bin': big, 'v.txt': 'a\n', 'd/nested.bin': nested });
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    const spawned: string[] = [];
    const spawn = conns.spawn.bind(conns);
    conns.spawn = (host, script, stdin, stdout) => {
      spawned.push(script);
      return spawn(host, script, stdin, stdout);
    };
    const opts = { dir: dest, retries: 0, verify: true, servers, bigFrom: 1024 * 1024 };
    const [out] = await fetchBatch(conns, LAP, [job('a', ['big.bin', 'v.txt', 'd'])], opts);
    const [unverified] = await fetchBatch(conns, LAP, [job('a', ['big.bin'], { run: 'r', folder: 'again' })], { ...opts, verify: false });
    servers.close();
    await conns.close();
    expect(out?.error).toBeUndefined();
    expect(out).toMatchObject({ ok: true, verified: true, attempt: 1 });
    expect(Object.fromEntries((out?.files ?? []).map((f) => [f.remote, f.sha256]))).toEqual({
      '.cm/runs/r/a/big.bin': sha(big),
      '.cm/runs/r/a/v.txt': sha('a\n'),
      '.cm/runs/r/a/d/nested.bin': sha(nested),
    });
    expect(sha(readFileSync(path.join(dest, 'r/a/big.bin')))).toBe(sha(big));
    expect(sha(readFileSync(path.join(dest, 'r/a/d/nested.bin')))).toBe(sha(nested));
    expect(unverified).toMatchObject({ ok: true, verified: false, files: [{ remote: '.cm/runs/r/a/big.bin', sha256: sha(big) }] });
    expect(sha(readFileSync(path.join(dest, 'r/again/big.bin')))).toBe(sha(big));
    // the server, then one session per big file
    expect(spawned.filter((s) => s.startsWith('f=')).map((s) => s.split('\n')[0])).toEqual([
      "f='./.cm/runs/r/a/big.bin' v=1",
      "f='./.cm/runs/r/a/d/nested.bin' v=1",
      "f='./.cm/runs/r/a/big.bin' v=0",
    ]);
    expect(spawned.length).toBe(4);
    expect(listTree(dest).filter((n) => n.includes('.cm-part-'))).toEqual([]);
  }, 30000);

  it("a big file's session that fails: the batch is retried whole, no temp file is left", async () => {
    const home = scratch();
    const dest = scratch();
    const big = randomBytes(2 * 1024 * 1024);
    jobDir(home, 'a', { 'big.bin': big, 'v.txt': 'a\n' });
    const conns = new Connections({ home });
    const servers = new FetchServers(conns);
    let failed = 0;
    const spawn = conns.spawn.bind(conns);
    conns.spawn = (host, script, stdin, stdout) => {
      // the first big file's session sends half of it and dies
      if (script.startsWith('f=') && failed++ === 0) return spawn(host, 'head -c 1000000 .cm/runs/r/a/big.bin; exit 3', stdin, stdout);
      return spawn(host, script, stdin, stdout);
    };
    const [out] = await fetchBatch(conns, LAP, [job('a', ['big.bin', 'v.txt'])], { dir: dest, retries: 2, verify: true, backoff: () => 0, servers, bigFrom: 1024 * 1024 });
    servers.close();
    await conns.close();
    expect(failed).toBe(2);
    expect(out).toMatchObject({ ok: true, verified: true, attempt: 2 });
    expect(sha(readFileSync(path.join(dest, 'r/a/big.bin')))).toBe(sha(big));
    expect(listTree(dest).filter((n) => n.includes('.cm-part-'))).toEqual([]);
  }, 30000);

  it('a big entry in an archive that did not ask for one (fetch.sh, GNU tar) is refused', async () => {
    const dest = scratch();
    const { SafeExtractor } = await import('./fetch');
    const ex = new SafeExtractor(dest, true);
    expect(await ex.entry({ name: 'x.bin', type: 'big', flag: 'B', size: 5, linkname: '', mode: 0o644 })).toBeNull();
    expect(ex.refused).toEqual(['refused "x.bin": a special entry (tar type "B")']);
    expect(ex.bigs).toEqual([]);
  });
});
