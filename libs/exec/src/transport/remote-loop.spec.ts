import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { bootstrapCommand, FrameDecoder, remoteProgram, lineQuote, type Frame, type RemoteLoop } from './remote-loop';

const MARKER = 'cmdeadbeef0123456789';

/**
 * What a loop writes for one job: output blocks as `base64` (wrapped at `wrap`) prints them (the sh
 * loop), or raw blocks of at most `wrap` bytes (the perl loop, wrap < 0), then the status.
 */
function encodeJob(serial: number, out: Buffer, err: Buffer, status: number, sig: string, wrap: number): Buffer {
  const parts: string[] = [];
  for (const [tag, bytes] of [['o', out], ['e', err]] as const) {
    if (bytes.length === 0) continue;
    if (wrap < 0) {
      for (let i = 0; i < bytes.length; i += -wrap) {
        const piece = bytes.subarray(i, i - wrap);
        parts.push(`${MARKER} ${serial} ${tag.toUpperCase()} ${piece.length}\n${piece.toString('latin1')}`);
      }
      continue;
    }
    const b64 = bytes.toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < b64.length; i += wrap) lines.push(b64.slice(i, i + wrap));
    parts.push(`${MARKER} ${serial} ${tag}\n${lines.join('\n')}\n.\n`);
  }
  parts.push(`${MARKER} ${serial} x ${status} ${sig}\n`);
  return Buffer.from(parts.join(''), 'latin1');
}

function decodeAll(chunks: Buffer[]) {
  const got = new Map<number, { out: Buffer[]; err: Buffer[]; exit?: Frame }>();
  const other: Frame[] = [];
  const d = new FrameDecoder(MARKER, (f) => {
    if (f.type === 'data' || f.type === 'exit') {
      const j = got.get(f.serial) ?? { out: [], err: [] };
      got.set(f.serial, j);
      if (f.type === 'exit') j.exit = f;
      else (f.stream === 'stdout' ? j.out : j.err).push(f.bytes);
    } else other.push(f);
  });
  for (const c of chunks) d.push(c);
  return { got, other, partial: d.partial };
}

/** Output that tries hard to look like framing: the marker, end lines, base64 text, no final newline. */
const nasty = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc
    .array(fc.constantFrom(`${MARKER} 1 x 0 -\n`, '.\n', '\n.\n', `${MARKER} 2 o\n`, 'QUJD\n', '.', '\n', '\0', 'é'), {
      maxLength: 12,
    })
    .map((a) => Buffer.from(a.join(''))),
).map((b) => Buffer.from(b));

describe('FrameDecoder', () => {
  it('recovers every job output exactly, whatever the bytes, wrapping and chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ out: nasty, err: nasty, status: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 5 }),
        fc.constantFrom(4, 76, 1000, 100000, -1, -7, -65536),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
        (jobs, wrap, cuts) => {
          const stream = Buffer.concat(
            jobs.map((j, i) => encodeJob(i + 1, j.out, j.err, j.status, j.status > 128 ? 'KILL' : '-', wrap)),
          );
          const chunks: Buffer[] = [];
          let pos = 0;
          for (let i = 0; pos < stream.length; i++) {
            const n = cuts[i % cuts.length] as number;
            chunks.push(stream.subarray(pos, pos + n));
            pos += n;
          }
          const { got, other, partial } = decodeAll(chunks);
          expect(other).toEqual([]);
          expect(partial).toBe(0);
          jobs.forEach((j, i) => {
            const g = got.get(i + 1);
            expect(Buffer.concat(g?.out ?? [])).toEqual(j.out);
            expect(Buffer.concat(g?.err ?? [])).toEqual(j.err);
            expect(g?.exit).toEqual({
              type: 'exit',
              serial: i + 1,
              status: j.status,
              signal: j.status > 128 ? 'SIGKILL' : null,
            });
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads hello and fail lines and reports anything without the marker as noise', () => {
    const { other } = decodeAll([
      Buffer.from(`Welcome to th1\n${MARKER} hello 2 /usr/bin/setsid\n${MARKER} fail no base64\ncm0000 1 x 0 -\n`),
    ]);
    expect(other).toEqual([
      { type: 'noise', line: 'Welcome to th1' },
      { type: 'hello', version: 2, runner: '/usr/bin/setsid' },
      { type: 'fail', reason: 'no base64' },
      { type: 'noise', line: 'cm0000 1 x 0 -' },
    ]);
  });

  it('reads the times of a collected job and the loss of one', () => {
    const { other } = decodeAll([Buffer.from(`${MARKER} 7 t 1700000000000 1700000008000 12 0\n${MARKER} 8 l its loop on the host is gone\n`)]);
    expect(other).toEqual([
      { type: 'times', serial: 7, start: 1700000000000, end: 1700000008000, stdoutBytes: 12, stderrBytes: 0 },
      { type: 'lost', serial: 8, reason: 'its loop on the host is gone' },
    ]);
  });

  it('copies a small raw block out of a big chunk, and hands on one that fills its chunk as it is', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(MARKER, (f) => frames.push(f));
    const big = Buffer.concat([Buffer.from(`${MARKER} 1 O 3\nabc${MARKER} 1 x 0 -\n`), Buffer.alloc(65536, 0x0a)]);
    decoder.push(big);
    const whole = Buffer.concat([Buffer.from(`${MARKER} 2 O 65536\n`)]);
    decoder.push(whole);
    const body = Buffer.alloc(65536, 0x41);
    decoder.push(body);
    const data = frames.filter((f): f is Extract<Frame, { type: 'data' }> => f.type === 'data');
    expect(data.map((f) => [f.serial, f.bytes.length])).toEqual([
      [1, 3],
      [2, 65536],
    ]);
    expect(data[0]!.bytes.toString()).toBe('abc');
    // the 3 bytes kept for job 1 do not keep the 64 KB chunk they came in alive
    expect(data[0]!.bytes.buffer.byteLength).toBeLessThan(big.length);
    expect(data[1]!.bytes.buffer).toBe(body.buffer);
  });

  it('counts a frame cut off by a dying session as partial', () => {
    const { partial } = decodeAll([Buffer.from(`${MARKER} 1 o\nQUJD\nRE`)]);
    expect(partial).toBeGreaterThan(0);
  });
});

describe('lineQuote', () => {
  it('gives sh the exact string back, newlines and quotes included', { timeout: 60000 }, () => {
    const str = fc.string({ unit: 'binary', maxLength: 80 }).filter((x) => !x.includes('\0'));
    fc.assert(
      fc.property(fc.array(str, { minLength: 1, maxLength: 40 }), (strings) => {
        // one dash per batch: each word evaluated as the loop does, NUL after each
        const lines = strings.map((x) => `eval "printf %s ${lineQuote(x).replace(/["\\$`]/g, '\\$&')}"; printf '\\000'`);
        const out = execFileSync('dash', ['-c', `_cmq_nl='\n'\n${lines.join('\n')}`]);
        expect(out.toString('utf8').split('\0').slice(0, -1)).toEqual(strings);
        for (const x of strings) expect(lineQuote(x)).not.toContain('\n');
      }),
      { numRuns: 8 },
    );
  });
});

describe.each([
  ['sh', 'the sh loop under dash', /(\/\S+|-)/],
  ['auto', 'the perl loop', /perl/],
] as const)('%s: %s', (loop: RemoteLoop, _title, runner) => {
  const dir = mkdtempSync(join(tmpdir(), 'cm-loop-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Runs the loop with `requests`, ends its stdin once `exits` jobs have reported, returns all it wrote.
   * `oneByOne`: each request once the job before it has reported, as the transport does on one lane.
   */
  function runLoop(requests: string[], exits: number, oneByOne = false, env: NodeJS.ProcessEnv = {}): Promise<Buffer> {
    const program = remoteProgram(MARKER, loop);
    const child = spawn('dash', ['-c', bootstrapCommand(Buffer.byteLength(program))], {
      cwd: dir,
      env: { ...process.env, TMPDIR: dir, ...env },
    });
    const out: Buffer[] = [];
    let seen = 0;
    const d = new FrameDecoder(MARKER, (f) => {
      // requests only after hello, as the transport does; EOF ends the loop and kills what runs
      if (f.type === 'hello') child.stdin.write(oneByOne ? (requests[0] ?? '') : requests.join(''));
      if (f.type === 'exit') seen += 1;
      if (f.type === 'exit' && oneByOne && seen < requests.length) child.stdin.write(requests[seen] as string);
      if ((f.type === 'hello' || f.type === 'exit') && seen === exits) child.stdin.end();
    });
    child.stdout.on('data', (c: Buffer) => {
      out.push(c);
      d.push(c);
    });
    child.stdin.write(program);
    return new Promise((resolve) => child.on('close', () => resolve(Buffer.concat(out))));
  }

  it('ships arbitrary bytes of stdout and stderr back unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ out: nasty, err: nasty }), { minLength: 1, maxLength: 4 }), async (jobs) => {
        const reqs = jobs.map((j, i) => {
          const o = join(dir, `o${i}`);
          const e = join(dir, `e${i}`);
          writeFileSync(o, j.out);
          writeFileSync(e, j.err);
          return `r ${i + 1} ${i} 0 ${lineQuote('w')} ${lineQuote(`cat ${o}; cat ${e} >&2; exit ${i}`)}\n`;
        });
        const { got } = decodeAll([await runLoop(reqs, reqs.length)]);
        jobs.forEach((j, i) => {
          const g = got.get(i + 1);
          expect(Buffer.concat(g?.out ?? [])).toEqual(j.out);
          expect(Buffer.concat(g?.err ?? [])).toEqual(j.err);
          expect(g?.exit).toMatchObject({ status: i, signal: null });
        });
      }),
      { numRuns: 15 },
    );
  });

  it('says hello with its runner and cleans its temp dir on EOF', async () => {
    const out = await runLoop([], 0);
    const hello = out.toString().split('\n')[0] ?? '';
    expect(hello).toMatch(new RegExp(`^${MARKER} hello 4 ${runner.source}$`));
    expect(readdirSync(dir).filter((n) => n.startsWith('cm-persist.'))).toEqual([]);
  });

  it.runIf(loop === 'sh')('removes the folders of killed loops, and keeps those of loops that still run', async () => {
    const dead = Number(execFileSync('sh', ['-c', 'echo $$']).toString().trim());
    for (const n of [`cm-persist.${dead}`, `cm-persist.${dead}.2`, `cm-persist.${process.pid}`]) {
      mkdirSync(join(dir, n));
      writeFileSync(join(dir, n, '3.o'), 'x');
    }
    await runLoop([], 0);
    expect(readdirSync(dir).filter((n) => n.startsWith('cm-persist.'))).toEqual([`cm-persist.${process.pid}`]);
    rmSync(join(dir, `cm-persist.${process.pid}`), { recursive: true });
  });

  it.runIf(loop === 'sh')("makes a job's folder though mkdir fails again and again (another job's clean-up removing the run's folder)", async () => {
    // a mkdir first on the PATH that fails its first 6 calls for the job's folder, as mkdir -p does
    // when the run's folder goes between its steps
    const bin = join(dir, 'flaky-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'mkdir'),
      `#!/bin/sh\ncase "$*" in *flaky*) n=$(cat ${bin}/n 2>/dev/null || echo 0); echo $((n + 1)) >${bin}/n\n  [ "$n" -ge 6 ] || { echo "mkdir: cannot create directory: No such file or directory" >&2; exit 1; } ;; esac\nexec /bin/mkdir "$@"\n`,
      { mode: 0o755 },
    );
    const { got } = decodeAll([await runLoop([`r 1 0 1 ${lineQuote('./.cm/runs/flaky/j1')} ${lineQuote('echo ran')}\n`], 1, false, { PATH: `${bin}:${process.env.PATH}` })]);
    expect(Buffer.concat(got.get(1)?.out ?? []).toString()).toBe('ran\n');
    expect(got.get(1)?.exit).toMatchObject({ status: 0 });
    rmSync(bin, { recursive: true });
    rmSync(join(dir, '.cm'), { recursive: true, force: true });
  });

  it('removes a workdir asked to (rm 1) before the job reports its end, and the run folder once empty', async () => {
    const mk = (n: number, rm: 0 | 1, wd: string, cmd: string): string => `r ${n} ${n} ${rm} ${lineQuote(wd)} ${lineQuote(cmd)}\n`;
    // a symlink to a folder outside: removed as a link, its target untouched
    mkdirSync(join(dir, 'outside'), { recursive: true });
    writeFileSync(join(dir, 'outside', 'keep'), 'x');
    const reqs = [
      mk(1, 1, './.cm/runs/r1/a', `mkdir -p d/e; echo x > d/e/f; chmod 500 d/e; ln -s ${join(dir, 'outside')} link; echo a`),
      mk(2, 0, './.cm/runs/r1/b', 'echo b > f'),
      mk(3, 1, './.cm/runs/r2/c', 'echo c > f'),
    ];
    const { got } = decodeAll([await runLoop(reqs, 3)]);
    expect([1, 2, 3].map((n) => got.get(n)?.exit)).toMatchObject([{ status: 0 }, { status: 0 }, { status: 0 }]);
    expect(readdirSync(join(dir, '.cm/runs')).sort()).toEqual(['r1']);
    expect(readdirSync(join(dir, '.cm/runs/r1'))).toEqual(['b']);
    expect(readdirSync(join(dir, 'outside'))).toEqual(['keep']);
    rmSync(join(dir, '.cm'), { recursive: true });
  });

  it('gives a job an empty stdin: what it reads is not the loop\'s, and the next job of its lane runs', async () => {
    const mk = (n: number, cmd: string): string => `r ${n} 0 1 ${lineQuote(`./.cm/runs/i/j${n}`)} ${lineQuote(cmd)}\n`;
    const reqs = [mk(1, 'cat; read x || echo "end of input"'), mk(2, 'echo next')];
    const { got } = decodeAll([await runLoop(reqs, 2, true)]);
    const out = (n: number) => Buffer.concat(got.get(n)?.out ?? []).toString();
    expect(out(1)).toBe('end of input\n');
    expect(out(2)).toBe('next\n');
    rmSync(join(dir, '.cm'), { recursive: true, force: true });
  });

  it.runIf(loop === 'auto' && process.platform === 'linux')('runs a job as sh -c would, in a subshell of its lane\'s shell', async () => {
    const mk = (n: number, lane: number, cmd: string, env: string[] = []): string =>
      `r ${n} ${lane} 1 ${lineQuote(`./.cm/runs/s/j${n}`)} ${lineQuote(cmd)}${env.map((w) => ` ${lineQuote(w)}`).join('')}\n`;
    const reqs = [
      // the parent of a job's subshell is the lane's shell, not the loop ($PPID)
      mk(1, 0, 'p=$(ps -o ppid= -p $(sh -c "echo \\$PPID")); [ $p != $PPID ] && echo "$0 $# [$V]" && pwd', ['V', "a\nb'c"]),
      mk(2, 1, 'trap "echo bye" EXIT; exit 3'),
      mk(3, 2, 'if then'),
      mk(4, 3, 'exec sh -c "exit 5"'),
    ];
    const { got } = decodeAll([await runLoop(reqs, 4)]);
    const out = (n: number) => Buffer.concat(got.get(n)?.out ?? []).toString();
    expect(out(1)).toBe(`sh 0 [a\nb'c]\n${join(dir, '.cm/runs/s/j1')}\n`);
    expect(out(2)).toBe('bye\n');
    expect([1, 2, 3, 4].map((n) => got.get(n)?.exit)).toMatchObject([{ status: 0 }, { status: 3 }, { status: 2 }, { status: 5 }]);
    expect(Buffer.concat(got.get(3)?.err ?? []).toString()).toMatch(/Syntax error/);
    // the folders go, each job's and then its run's, spare folders of lanes included
    expect(readdirSync(join(dir, '.cm/runs'))).toEqual([]);
    rmSync(join(dir, '.cm'), { recursive: true });
  });

  it.runIf(loop === 'auto' && process.platform === 'linux')('ships what a job writes at once past its pipes, and ps shows each job of a lane as sh -c with its own command', async () => {
    const mk = (n: number, cmd: string): string => `r ${n} 0 1 ${lineQuote(`./.cm/runs/t/j${n}`)} ${lineQuote(cmd)}\n`;
    // the command line of the job's subshell, as ps reads it (the parent of a sh it starts)
    const title = `sh -c 'cat /proc/$PPID/cmdline' | tr -s '\\0' '|'`;
    const reqs = [
      // more than a pipe holds, before the loop watches the pipes of the lane (5 ms), then ends
      mk(1, `head -c 1000000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | tr '\\0' b >&2; : ${'x'.repeat(200)}`),
      mk(2, `${title} # a shorter command after a longer one`),
      mk(3, title),
    ];
    const { got } = decodeAll([await runLoop(reqs, 3, true)]);
    const out = (n: number) => Buffer.concat(got.get(n)?.out ?? []).toString();
    expect(out(1)).toBe('a'.repeat(1000000));
    expect(Buffer.concat(got.get(1)?.err ?? []).toString()).toBe('b'.repeat(300000));
    expect(out(2)).toBe(`sh|-c|${title} # a shorter command after a longer one|`);
    expect(out(3)).toBe(`sh|-c|${title}|`);
    expect([1, 2, 3].map((n) => got.get(n)?.exit)).toMatchObject([{ status: 0 }, { status: 0 }, { status: 0 }]);
    rmSync(join(dir, '.cm'), { recursive: true, force: true });
  });

  it.runIf(loop === 'auto')('writes no file on the host: outputs come through pipes', async () => {
    // the sh loop's folder would be there while the job runs
    const out = await runLoop([`r 1 0 0 ${lineQuote('w')} ${lineQuote('ls ${TMPDIR}; echo e >&2')}\n`], 1);
    const { got } = decodeAll([out]);
    const listing = Buffer.concat(got.get(1)?.out ?? []).toString();
    expect(listing).toContain('w\n');
    expect(listing).not.toContain('cm-persist');
    expect(Buffer.concat(got.get(1)?.err ?? []).toString()).toBe('e\n');
  });
});
