import { afterAll, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, mkdirSync, writeFileSync, symlinkSync, openSync, writeSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { ensureDirs, safeJoin, safeRelative, UnsafePathError } from './paths';
import { readTar, TarFormatError } from './tar';
import { SafeExtractor, parseSums, fetchScript, LocalWriteError } from './fetch';
import { Limiter } from './limit';
import { describeFetch } from './people';

/** A tar header built by hand, so tests can say things GNU tar would refuse to write. */
function header(name: string, opts: { size?: number; type?: string; link?: string } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${(opts.size ?? 0).toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(opts.type ?? '0', 156);
  if (opts.link) h.write(opts.link, 157);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}
function entry(name: string, body: string | null, opts: { type?: string; link?: string } = {}): Buffer {
  const data = Buffer.from(body ?? '');
  const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  data.copy(padded);
  return Buffer.concat([header(name, { ...opts, size: data.length }), padded]);
}
const END = Buffer.alloc(1024);

async function* chunks(buf: Buffer, size = 100): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** Every file and folder under dir, relative to it, sorted. */
const listTree = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String).sort();

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
// every scratch folder of the file, removed at its end
const scratchRoot = mkdtempSync(path.join(os.tmpdir(), 'cm-t-'));
afterAll(() => rmSync(scratchRoot, { recursive: true, force: true }));
/** a fresh folder under the file's scratch folder */
const scratch = (): string => mkdtempSync(path.join(scratchRoot, 'd-'));
/** the local host the real-sh-and-tar specs run against (no ssh) */
const LAP = { kind: 'host' as const, v: 1 as const, name: 'lap', address: 'localhost', local: true, slots: 1, tags: [] };

describe('safeRelative', () => {
  it('normalises harmless names', () => {
    expect(safeRelative('./a//b/./c')).toBe('a/b/c');
    expect(safeRelative('out.txt')).toBe('out.txt');
    expect(safeRelative('a..b')).toBe('a..b');
  });
  it.each(['../x', 'a/../../x', '/etc/passwd', '', '.', 'a/..', 'C:\\x', 'a\\..\\b', 'x\0y'])('refuses %j', (name) => {
    expect(() => safeRelative(name)).toThrow(UnsafePathError);
  });
  it('keeps joins inside the root', () => {
    expect(safeJoin('/r', 'a/b')).toBe('/r/a/b');
    expect(() => safeJoin('/r', '../r2/x')).toThrow(UnsafePathError);
  });
  it('will not create directories through a planted symlink', async () => {
    const root = scratch();
    const outside = scratch();
    symlinkSync(outside, path.join(root, 'sub'));
    expect(() => ensureDirs(root, 'sub/deeper')).toThrow(/symlink/);
    expect(readdirSync(outside)).toEqual([]);
  });
});

describe('readTar + SafeExtractor', () => {
  it('extracts files and directories, with sizes and sha256', async () => {
    const root = scratch();
    const ex = new SafeExtractor(root);
    const big = 'x'.repeat(1300);
    const trailer = await readTar(chunks(Buffer.concat([entry('./d/', null, { type: '5' }), entry('./d/a.txt', 'hello\n'), entry('big', big), END, Buffer.from('cm-sha256\nrest')]), 97), ex);
    expect(trailer.toString().replace(/^\0+/, '')).toBe('cm-sha256\nrest');
    // nothing visible before commit: only temp names
    expect(listTree(root).filter((n) => !n.includes('.cm-part-'))).toEqual(['d']);
    const { files, errors } = await ex.commit();
    expect(errors).toEqual([]);
    expect(files.map((f) => [f.rel, f.size, f.sha256])).toEqual([
      ['d/a.txt', 6, sha('hello\n')],
      ['big', 1300, sha(big)],
    ]);
    expect(listTree(root)).toEqual(['big', 'd', 'd/a.txt']);
    expect(readFileSync(path.join(root, 'big'), 'utf8')).toBe(big);
  });

  it('refuses ../, absolute names, symlinks, devices and fifos, and keeps the other files', async () => {
    const parent = scratch();
    const root = path.join(parent, 'run', 'job');
    mkdirSync(root, { recursive: true });
    const ex = new SafeExtractor(root);
    const archive = Buffer.concat([
      entry('../../x', 'evil'),
      entry('/tmp/abs', 'evil'),
      entry('etc', null, { type: '2', link: '/etc' }),
      entry('etc/passwd', 'evil-through-link'),
      entry('null', null, { type: '3' }),
      entry('pipe', null, { type: '6' }),
      entry('ok.txt', 'fine'),
      entry('hl', null, { type: '1', link: '../../x' }),
      END,
    ]);
    await readTar(chunks(archive), ex);
    const { files } = await ex.commit();
    expect(files.map((f) => f.rel)).toEqual(['etc/passwd', 'ok.txt']);
    expect(ex.refused.join('\n')).toMatch(/"\.\.\/\.\.\/x": leaves the job directory/);
    expect(ex.refused.join('\n')).toMatch(/absolute path/);
    expect(ex.refused.join('\n')).toMatch(/"etc": a symlink \(to "\/etc"\)/);
    expect(ex.refused.join('\n')).toMatch(/"null": a device file/);
    expect(ex.refused.join('\n')).toMatch(/"pipe": a fifo/);
    expect(ex.refused.join('\n')).toMatch(/"hl": hard link to "\.\.\/\.\.\/x"/);
    // `etc` became a real directory inside the job dir, never a link to /etc
    expect(listTree(parent)).toEqual(['run', 'run/job', 'run/job/etc', 'run/job/etc/passwd', 'run/job/ok.txt']);
    expect(existsSync('/tmp/abs')).toBe(false);
  });

  it('reports a cut stream and leaves no temp file after discard', async () => {
    const root = scratch();
    const ex = new SafeExtractor(root);
    const full = entry('f', 'y'.repeat(2000));
    await expect(readTar(chunks(full.subarray(0, 1000)), ex)).rejects.toThrow(TarFormatError);
    await ex.discard();
    expect(listTree(root)).toEqual([]);
  });

  it('rejects a corrupted header', async () => {
    const bad = entry('f', 'z');
    bad[0] = 'g'.charCodeAt(0);
    await expect(readTar(chunks(Buffer.concat([bad, END])), new SafeExtractor(scratch()))).rejects.toThrow(/checksum/);
  });

  it('reads what GNU tar writes: long names, hard links', async () => {
    const src = scratch();
    const long = `${'n'.repeat(120)}/${'m'.repeat(150)}.txt`;
    mkdirSync(path.join(src, 'n'.repeat(120)));
    writeFileSync(path.join(src, long), 'long\n');
    writeFileSync(path.join(src, 'a'), 'same\n');
    execFileSync('ln', [path.join(src, 'a'), path.join(src, 'b')]);
    const tar = execFileSync('tar', ['-cf', '-', '-C', src, `./${'n'.repeat(120)}`, './a', './b']);
    const root = scratch();
    const ex = new SafeExtractor(root);
    await readTar(chunks(tar, 4096), ex);
    const { files } = await ex.commit();
    expect(files.map((f) => f.rel).sort()).toEqual(['a', 'b', long]);
    expect(readFileSync(path.join(root, 'b'), 'utf8')).toBe('same\n');
  });
});

describe('remote script and checksums', () => {
  it('runs with sh and produces an archive plus sums', () => {
    const wd = scratch();
    writeFileSync(path.join(wd, "it's"), 'q');
    const out = execFileSync('sh', ['-c', fetchScript(["it's", 'gone'], true)], { cwd: wd, stdio: ['ignore', 'pipe', 'pipe'] });
    const text = out.toString('latin1');
    expect(text).toContain('cm-sha256\n');
    expect(parseSums(text.slice(text.indexOf('cm-sha256\n') + 10)).get("it's")).toBe(sha('q'));
  });
  it('unescapes sha256sum names with backslashes', () => {
    expect(parseSums(`\\${sha('')}  a\\nb\n`).get('a\nb')).toBe(sha(''));
  });
});

describe('Limiter', () => {
  it('keeps to the total and per-key limits', async () => {
    const lim = new Limiter(3, 2);
    let now = 0;
    let max = 0;
    const perKey = new Map<string, number>();
    let maxKey = 0;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        lim.run(i % 4 === 0 ? 'a' : 'b', async () => {
          const k = i % 4 === 0 ? 'a' : 'b';
          now += 1;
          perKey.set(k, (perKey.get(k) ?? 0) + 1);
          max = Math.max(max, now);
          maxKey = Math.max(maxKey, perKey.get(k) as number);
          await new Promise((r) => setTimeout(r, 2));
          now -= 1;
          perKey.set(k, (perKey.get(k) as number) - 1);
        }),
      ),
    );
    expect(max).toBe(3);
    expect(maxKey).toBe(2);
  });
});

describe('fetchBatch on a local host (real sh and tar)', () => {
  it('routes each job its own files, refuses hostile names per job, reports missing ones', async () => {
    const { Connections } = await import('./connections');
    const { fetchBatch } = await import('./fetch');
    const home = scratch();
    const dest = scratch();
    for (const j of ['a', 'b', 'c']) {
      mkdirSync(path.join(home, '.cm/runs/r', j, 'd'), { recursive: true });
      writeFileSync(path.join(home, '.cm/runs/r', j, 'v.txt'), `${j}\n`);
      writeFileSync(path.join(home, '.cm/runs/r', j, 'd/x'), `x${j}`);
    }
    symlinkSync('/etc', path.join(home, '.cm/runs/r/b/etc'));
    const conns = new Connections({ home });
    const host = LAP;
    const job = (j: string, outputs: string[]) => ({ job: j, run: 'r', host, workdir: `.cm/runs/r/${j}`, outputs, result: 'v.txt' });
    const outs = await fetchBatch(conns, host, [job('a', ['d']), job('b', ['etc', '../a/v.txt']), job('c', ['nope'])], { dir: dest, retries: 0, verify: true });
    await conns.close();
    expect(outs.map((o) => o.ok)).toEqual([true, false, false]);
    expect(outs[0]?.files.map((f) => f.remote).sort()).toEqual(['.cm/runs/r/a/d/x', '.cm/runs/r/a/v.txt']);
    expect(outs[0]?.result).toBe(path.join(dest, 'r/a/v.txt'));
    expect(outs[1]?.error).toMatch(/refused output "\.\.\/a\/v\.txt": leaves the job directory/);
    expect(outs[1]?.error).toMatch(/refused "etc": a symlink/);
    expect(outs[2]?.error).toBe('missing "nope" (not on lap)');
    expect(listTree(dest)).toEqual(['r', 'r/a', 'r/a/d', 'r/a/d/x', 'r/a/v.txt', 'r/b', 'r/b/v.txt', 'r/c', 'r/c/v.txt']);
    expect(readFileSync(path.join(dest, 'r/c/v.txt'), 'utf8')).toBe('c\n');
    expect(existsSync(conns.controlDir)).toBe(false);
  });
});

describe('fetch.sh hashes big files with openssl where the host has it', () => {
  it('a 5 MiB file and a small one in one batch: both verified, whichever tool hashed them', async () => {
    const { Connections } = await import('./connections');
    const { fetchBatch } = await import('./fetch');
    const home = scratch();
    const dest = scratch();
    const big = randomBytes(5 * 1024 * 1024);
    mkdirSync(path.join(home, '.cm/runs/r/a'), { recursive: true });
    writeFileSync(path.join(home, '.cm/runs/r/a/big.bin'), big);
    writeFileSync(path.join(home, '.cm/runs/r/a/v.txt'), 'a\n');
    // an openssl that says what it hashed, then hashes
    const bin = scratch();
    const real = execFileSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).trim();
    writeFileSync(path.join(bin, 'openssl'), `#!/bin/sh\necho "$@" >>${bin}/asked\nexec ${real} "$@"\n`, { mode: 0o755 });
    const conns = new Connections({ home, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    const [out] = await fetchBatch(conns, LAP, [{ job: 'a', run: 'r', host: LAP, workdir: '.cm/runs/r/a', outputs: ['big.bin', 'v.txt'] }], { dir: dest, retries: 0, verify: true });
    await conns.close();
    expect(readFileSync(path.join(bin, 'asked'), 'utf8')).toBe('dgst -sha256 -r ./.cm/runs/r/a/big.bin\n');
    expect(out).toMatchObject({ ok: true, verified: true });
    expect(out?.files.map((f) => [f.remote, f.sha256])).toEqual([
      ['.cm/runs/r/a/big.bin', createHash('sha256').update(big).digest('hex')],
      ['.cm/runs/r/a/v.txt', sha('a\n')],
    ]);
  });
});

describe('Stager on a local host (real sh and tar)', () => {
  it('copies an input shared by many jobs once, and the rewritten command links it in', async () => {
    const { Connections } = await import('./connections');
    const { Stager } = await import('./stage');
    const home = scratch();
    const cwd = scratch();
    writeFileSync(path.join(cwd, 'in.txt'), 'payload\n');
    const conns = new Connections({ home });
    const scripts: string[] = [];
    const spawn = conns.spawn.bind(conns);
    conns.spawn = (host, script, stdin) => {
      scripts.push(script);
      return spawn(host, script, stdin);
    };
    const stager = new Stager(conns, { cwd, retries: 0, limit: (_k, fn) => fn() });
    const host = LAP;
    const jobs = Array.from({ length: 10 }, (_, i) => ({ kind: 'job' as const, v: 1 as const, id: `j${i}`, task: 't', command: 'cat in.txt', deps: [], inputs: ['in.txt'] }));
    const staged = await Promise.all(jobs.map((j) => stager.stageJob(j, [host])));
    await conns.close();
    expect(scripts.filter((s) => s.includes('tar -xf')).length).toBe(1);
    const key = sha('payload\n');
    expect(staged[3]?.files).toEqual([{ remote: `.cm/stage/${key}/in.txt`, path: path.join(cwd, 'in.txt'), size: 8, sha256: key }]);
    expect(readFileSync(path.join(home, '.cm/stage', key, 'in.txt'), 'utf8')).toBe('payload\n');
    const jobDir = path.join(home, '.cm/runs/r/j3');
    mkdirSync(jobDir, { recursive: true });
    const out = execFileSync('sh', ['-c', staged[3]?.job.command as string], { cwd: jobDir, env: { ...process.env, HOME: home }, encoding: 'utf8' });
    expect(out).toBe('payload\n');
    // on a host where the input never arrived, the job stops before its command runs
    const bare = scratch();
    let status = 0;
    try {
      execFileSync('sh', ['-c', staged[3]?.job.command as string], { cwd: bare, env: { ...process.env, HOME: bare }, stdio: 'pipe' });
    } catch (err) {
      status = (err as { status: number }).status;
    }
    expect(status).toBe(125);
  });
});

describe('verification', () => {
  it('a checksum that does not match the host is retried, then reported, and nothing is renamed into place', async () => {
    const { Connections } = await import('./connections');
    const { fetchBatch } = await import('./fetch');
    const home = scratch();
    const dest = scratch();
    const bin = scratch();
    mkdirSync(path.join(home, '.cm/runs/r/a'), { recursive: true });
    writeFileSync(path.join(home, '.cm/runs/r/a/v.txt'), 'real\n');
    // a host whose sha256sum disagrees with what arrived (a file changing under tar, a bad disk)
    writeFileSync(path.join(bin, 'sha256sum'), `#!/bin/sh\nfor f; do echo "${'0'.repeat(64)}  $f"; done\n`, { mode: 0o755 });
    const conns = new Connections({ home, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    const host = LAP;
    const [out] = await fetchBatch(conns, host, [{ job: 'a', run: 'r', host, workdir: '.cm/runs/r/a', outputs: ['v.txt'] }], { dir: dest, retries: 2, verify: true, backoff: () => 0 });
    await conns.close();
    expect(out).toMatchObject({ ok: false, attempt: 3, files: [] });
    expect(out?.error).toMatch(/v\.txt: sha256 .* differs from the remote 000000000000/);
    expect(listTree(dest)).toEqual(['r', 'r/a']);
  });
});

describe('a local disk that fills up during a fetch', () => {
  /**
   * A write that lands in real files until `budget` bytes are used, then goes to /dev/full, so
   * the kernel itself answers ENOSPC, as a full results disk would (no root or tmpfs needed).
   */
  function fillingDisk(budget: number): { write: (fd: number, buf: Buffer, off: number, len: number) => number; used: () => number } {
    let used = 0;
    const full = openSync('/dev/full', 'w');
    return {
      write: (fd, buf, off, len) => {
        const n = Math.min(len, budget - used);
        if (n <= 0) return writeSync(full, buf, off, len);
        used += n;
        return writeSync(fd, buf, off, n);
      },
      used: () => used,
    };
  }

  const procsIn = (dir: string): string[] =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readlinkSync(`/proc/${p}/cwd`) === dir;
        } catch {
          return false;
        }
      });

  it('fails the batch at once with the disk error, leaves no temp file, and stops tar', async () => {
    const { Connections } = await import('./connections');
    const { fetchBatch } = await import('./fetch');
    const home = scratch();
    const dest = scratch();
    for (const j of ['a', 'b', 'c']) {
      mkdirSync(path.join(home, '.cm/runs/r', j), { recursive: true });
      writeFileSync(path.join(home, '.cm/runs/r', j, 'out.bin'), randomBytes(1024 * 1024));
    }
    const disk = fillingDisk(1536 * 1024);
    // the host's TMPDIR: fetch.sh hashes into a temp file there
    const hostTmp = scratch();
    const conns = new Connections({ home, env: { ...process.env, TMPDIR: hostTmp } });
    const host = LAP;
    const job = (j: string) => ({ job: j, run: 'r', host, workdir: `.cm/runs/r/${j}`, outputs: ['out.bin'], result: 'out.bin' });
    // Before the fix tar was left blocked on a pipe nobody read: this call never returned.
    const outs = await fetchBatch(conns, host, [job('a'), job('b'), job('c')], { dir: dest, retries: 2, verify: true, backoff: () => 0, write: disk.write });
    await conns.close();
    expect(disk.used()).toBe(1536 * 1024);
    for (const o of outs) {
      // not retried: attempt 1 although retries is 2
      expect(o).toMatchObject({ ok: false, attempt: 1, files: [] });
      expect(o.error).toMatch(/writing .*\/r\/b\/out\.bin: No space left on device \(ENOSPC\)$/);
    }
    expect(outs[1]?.error).toMatch(/^writing /);
    expect(outs[0]?.error).toMatch(/^not fetched, came in one archive with: writing /);
    expect(listTree(dest)).toEqual(['r', 'r/a', 'r/b', 'r/c']);
    // tar got EPIPE once its reader was gone; nothing is left running in the host's directory
    for (let i = 0; i < 50 && procsIn(home).length > 0; i += 1) await new Promise((r) => setTimeout(r, 100));
    expect(procsIn(home)).toEqual([]);
    // nor its temp file of sums on the host
    expect(readdirSync(hostTmp)).toEqual([]);
  }, 30000);

  it('a batch after the failed one still fetches once there is room', async () => {
    const { Connections } = await import('./connections');
    const { fetchBatch } = await import('./fetch');
    const home = scratch();
    const dest = scratch();
    for (const j of ['a', 'b']) {
      mkdirSync(path.join(home, '.cm/runs/r', j), { recursive: true });
      writeFileSync(path.join(home, '.cm/runs/r', j, 'out.bin'), `${j}\n`.repeat(100000));
    }
    const hostTmp = scratch();
    const conns = new Connections({ home, env: { ...process.env, TMPDIR: hostTmp } });
    const host = LAP;
    const job = (j: string) => ({ job: j, run: 'r', host, workdir: `.cm/runs/r/${j}`, outputs: ['out.bin'] });
    const [bad] = await fetchBatch(conns, host, [job('a')], { dir: dest, retries: 0, verify: true, write: fillingDisk(1000).write });
    const [good] = await fetchBatch(conns, host, [job('b')], { dir: dest, retries: 0, verify: true });
    await conns.close();
    expect(bad).toMatchObject({ ok: false, files: [] });
    expect(bad?.error).toMatch(/No space left on device/);
    expect(good).toMatchObject({ ok: true, files: [{ remote: '.cm/runs/r/b/out.bin', size: 200000 }] });
    expect(listTree(dest)).toEqual(['r', 'r/a', 'r/b', 'r/b/out.bin']);
    await vi.waitFor(() => expect(readdirSync(hostTmp)).toEqual([]), { timeout: 5000, interval: 50 });
  }, 30000);

  it('SafeExtractor: a failing write rejects readTar with the disk error; discard removes the temp file', async () => {
    const root = scratch();
    const ex = new SafeExtractor(root, false, fillingDisk(700).write);
    const archive = Buffer.concat([entry('small', 'ok'), entry('big', 'b'.repeat(3000)), END]);
    await expect(readTar(chunks(archive), ex)).rejects.toThrow(LocalWriteError);
    expect(listTree(root).filter((n) => n.includes('.cm-part-')).length).toBe(2);
    await ex.discard();
    expect(listTree(root)).toEqual([]);
  });
});

describe('describeFetch: a fetch record for people', () => {
  const base = { kind: 'fetch' as const, v: 1 as const, job: 'bench.3', host: 'th1', direction: 'out' as const, ok: true };
  const file = (p: string, size: number) => ({ remote: `.cm/runs/r/bench.3/${p}`, path: `/w/results/r/bench/size=4/${p}`, size, sha256: 'a'.repeat(64) });
  it('names the job, its host, the count and size of its files, and where they landed (relative to the cwd)', () => {
    expect(describeFetch({ ...base, files: [file('out/t.txt', 5)] }, '/w')).toBe('fetched  bench.3  th1  1 file, 5 B  results/r/bench/size=4/out/t.txt');
    expect(describeFetch({ ...base, files: [file('out/t.txt', 1024), file('log/x', 512)] }, '/w')).toBe('fetched  bench.3  th1  2 files, 1.5 KiB  results/r/bench/size=4/');
    expect(describeFetch({ ...base, files: [file('a', 1)] }, '/elsewhere')).toBe('fetched  bench.3  th1  1 file, 1 B  /w/results/r/bench/size=4/a');
  });
  it('says why a fetch failed, and what a stage-in moved', () => {
    expect(describeFetch({ ...base, ok: false, files: [], error: 'missing "f.bin"' }, '/w')).toBe('FAILED   bench.3  th1  missing "f.bin"');
    expect(describeFetch({ ...base, direction: 'in', files: [file('bench.sh', 380)] }, '/w')).toBe('staged   bench.3  1 input (380 B)');
  });
});
