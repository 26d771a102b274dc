// Generated bad input for the NDJSON reader (the hand-picked cases are in protocol.spec.ts): any
// chunking of the bytes gives the same result, unknown kinds come back byte for byte, a mutated
// record of a known kind is refused on its own line, and nothing but an InputError ever escapes.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PassThrough } from 'node:stream';
import { readRecords, InputError } from './index';

interface Outcome {
  raws: string[];
  lines: number[];
  error?: string;
}

async function read(chunks: Buffer[], maxLineBytes?: number): Promise<Outcome> {
  const input = new PassThrough();
  const out: Outcome = { raws: [], lines: [] };
  const done = (async () => {
    try {
      for await (const { raw, line } of readRecords(input, { source: 'stdin', maxLineBytes })) {
        out.raws.push(raw);
        out.lines.push(line);
      }
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      out.error = err.message;
    }
  })();
  for (const c of chunks) input.write(c);
  input.end();
  await done;
  return out;
}

/** the bytes cut at the given fractions (so a cut may fall inside a multi-byte character) */
function cut(buf: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((f) => Math.floor(f * buf.length)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(buf.subarray(prev, p));
    prev = p;
  }
  parts.push(buf.subarray(prev));
  return parts;
}

const job = { kind: 'job', v: 1, id: 'a', task: 'a', command: 'echo 1', deps: [] as string[] };

// strings with multi-byte characters, quotes, backslashes and control characters
const text = fc.string({ unit: fc.constantFrom('a', 'é', '€', '𝄞', '"', '\\', '\t', ' ', '\u2028', 'ü', '0') , maxLength: 20 });
const foreignKind = fc.stringMatching(/^[a-z][a-z-]{0,11}$/).filter(
  (k) => !['job', 'reduce', 'event', 'fetch', 'value', 'host', 'check', 'machine'].includes(k),
);
const foreign = fc.record({ kind: foreignKind, note: text, n: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })), nested: fc.array(text, { maxLength: 3 }) });

// a job with one field broken: wrong type, missing, unknown, or an id that would become a path or option
const brokenJob = fc.oneof(
  fc.constantFrom('id', 'task', 'command', 'deps', 'v').map((k) => {
    const r: Record<string, unknown> = { ...job };
    delete r[k];
    return r;
  }),
  // a value of the wrong type for each field
  fc.constantFrom<[string, unknown[]]>(
    ['id', [42, true, null, [1]]],
    ['task', [42, false, { x: 1 }]],
    ['command', [42, null, ['echo', '1']]],
    ['deps', ['a', 42, [1], { a: 1 }]],
    ['timeout', ['x', true, [1], { x: 1 }]],
    ['retries', ['x', true, [1], 1.5]],
    ['env', ['x', [1], { A: 1 }]],
    ['run', [42, true, ['r']]],
  ).chain(([k, vs]) => fc.constantFrom(...vs).map((v) => ({ ...job, [k]: v }))),
  fc.constantFrom('../x', '../../etc/passwd', '/abs', 'a/b', '-oProxyCommand=touch x', '.hidden', 'a b', '$(touch x)', 'a;touch x', '', '..').chain(
    (bad) => fc.constantFrom({ ...job, id: bad }, { ...job, run: bad }),
  ),
  text.map((k) => ({ ...job, [`x_${k}`]: 1 })),
);

describe('readRecords on generated input', () => {
  it('gives the same records for any chunking, multi-byte characters split or not', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(foreign, { minLength: 1, maxLength: 8 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), async (recs, at) => {
        const lines = recs.map((r) => JSON.stringify(r));
        const bytes = Buffer.from(`${lines.join('\n')}\n`);
        const whole = await read([bytes]);
        const pieces = await read(cut(bytes, at));
        expect(pieces).toEqual(whole);
        // unknown kinds pass through unchanged: the raw line is the line given
        expect(whole.raws).toEqual(lines);
        expect(whole.error).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a broken job on its own line, after passing the good lines before it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(foreign, { maxLength: 4 }), brokenJob, fc.array(foreign, { maxLength: 3 }), async (before, bad, after) => {
        const lines = [...before, bad, ...after].map((r) => JSON.stringify(r));
        const got = await read([Buffer.from(`${lines.join('\n')}\n`)]);
        expect(got.raws).toEqual(lines.slice(0, before.length));
        expect(got.error).toMatch(new RegExp(`^stdin:${before.length + 1}(:\\d+)?: job record`));
      }),
      { numRuns: 300 },
    );
  });

  it('names the line and column of invalid UTF-8 wherever it is, whatever the chunking', async () => {
    const invalid = fc.constantFrom([0xff], [0xfe], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf8, 0x88, 0x80, 0x80, 0x80]);
    await fc.assert(
      fc.asyncProperty(fc.array(foreign, { minLength: 1, maxLength: 4 }), fc.nat(), invalid, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }), async (recs, pick, bytes, at) => {
        const lines = recs.map((r) => JSON.stringify(r));
        const k = pick % lines.length;
        const target = Buffer.from(lines[k] as string);
        // inside the "kind" string value, so the line is otherwise valid JSON
        const pos = target.indexOf('"kind":"') + 8;
        const broken = Buffer.concat([target.subarray(0, pos), Buffer.from(bytes), target.subarray(pos)]);
        const all = Buffer.concat([Buffer.from(lines.slice(0, k).map((l) => `${l}\n`).join('')), broken, Buffer.from('\n')]);
        const got = await read(cut(all, at));
        expect(got.raws).toEqual(lines.slice(0, k));
        expect(got.error).toMatch(new RegExp(`^stdin:${k + 1}:\\d+: invalid UTF-8`));
      }),
      { numRuns: 200 },
    );
  });

  it('throws nothing but an InputError on random bytes, and never yields a line it did not read', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }), async (bytes, at) => {
        const got = await read(cut(Buffer.from(bytes), at));
        const source = Buffer.from(bytes).toString('utf8');
        for (const raw of got.raws) expect(source.includes(raw)).toBe(true);
        if (got.error !== undefined) expect(got.error).toMatch(/^stdin:\d+(:\d+)?: /);
      }),
      { numRuns: 500 },
    );
  });

  async function tenMegabytes(at: number[]): Promise<Outcome> {
    const big = Buffer.alloc(10 * 1024 * 1024, 0x61);
    const all = Buffer.concat([Buffer.from(`${JSON.stringify(job)}\n`), big, Buffer.from(`\n${JSON.stringify(job)}\n`)]);
    return read(cut(all, at), 1024 * 1024);
  }

  it('refuses a 10 MB line over a 1 MB limit, naming it, after the line before it', async () => {
    const got = await tenMegabytes([]);
    expect(got.error).toMatch(/^stdin:2: line longer than 1048576 bytes/);
    expect(got.raws).toHaveLength(1);
  }, 60_000);

  it('refuses a 10 MB line split over chunks on its own line, after the line before it', async () => {
    for (const at of [[0.5], [0.0001, 0.3, 0.99999]]) {
      const got = await tenMegabytes(at);
      expect(got.error, `chunks at ${at.join(',')}`).toMatch(/^stdin:2: line longer than 1048576 bytes/);
      expect(got.raws, `chunks at ${at.join(',')}`).toHaveLength(1);
    }
  }, 60_000);
});
