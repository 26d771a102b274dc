import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { readRecords, readRecordBatches, parseRecords, RecordWriter, recordProblem, InputError, formatBytes, plural, freshRunId, randomHex, resultFileOf, leavesFiles } from './index';

async function readAll(text: string | Buffer, maxLineBytes?: number): Promise<unknown[]> {
  const input = new PassThrough();
  input.end(text);
  const out: unknown[] = [];
  for await (const { record } of readRecords(input, { source: 'stdin', maxLineBytes })) out.push(record);
  return out;
}

const job = { kind: 'job', v: 1, id: 'a', task: 'a', command: 'echo 1', deps: [] };

describe('recordProblem', () => {
  it('accepts a valid job and unknown kinds', () => {
    expect(recordProblem(job)).toBeNull();
    expect(recordProblem({ kind: 'something-else', x: 1 })).toBeNull();
  });
  it('names the field that is wrong', () => {
    expect(recordProblem({ ...job, deps: 'a' })).toMatch(/job record at deps/);
    expect(recordProblem({ ...job, id: '-oProxyCommand=x' })).toMatch(/job record at id/);
    expect(recordProblem({ ...job, id: '../x' })).toMatch(/at id/);
    expect(recordProblem([1])).toMatch(/JSON object/);
    expect(recordProblem({ v: 1 })).toMatch(/kind/);
  });
  it('rejects unknown fields of known kinds', () => {
    expect(recordProblem({ ...job, colour: 'red' })).not.toBeNull();
  });
});

describe('readRecords', () => {
  it('reads records and skips blank lines', async () => {
    expect(await readAll(`${JSON.stringify(job)}\n\n${JSON.stringify({ ...job, id: 'b' })}`)).toHaveLength(2);
  });
  it('names the line of malformed JSON', async () => {
    await expect(readAll(`${JSON.stringify(job)}\ngarbage\n`)).rejects.toThrow(/^stdin:2: malformed JSON/);
    await expect(readAll('garbage\n{"kind":"job"')).rejects.toThrow(InputError);
  });
  it('reports invalid UTF-8 with its line', async () => {
    const bad = Buffer.concat([Buffer.from('{"kind":"x","s":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
    await expect(readAll(bad)).rejects.toThrow(/stdin:1:\d+: invalid UTF-8/);
  });
  it('refuses over-long lines without buffering them', async () => {
    await expect(readAll(`${'x'.repeat(5000)}\n`, 1000)).rejects.toThrow(/stdin:1: line longer than 1000 bytes/);
  });
  it('ends when the input is destroyed while it waits for the next line (a command that stops reading)', async () => {
    const input = new PassThrough();
    input.write(`${JSON.stringify(job)}\n`);
    const seen: string[] = [];
    const reading = (async () => {
      for await (const { record } of readRecords(input)) {
        seen.push((record as { id: string }).id);
        // the consumer stops reading while the reader waits for more: no end, no error
        setImmediate(() => input.destroy());
      }
      return 'ended';
    })();
    const hung = new Promise((resolve) => setTimeout(() => resolve('still waiting'), 2000).unref());
    expect(await Promise.race([reading, hung])).toBe('ended');
    expect(seen).toEqual(['a']);
  });
});

describe('parseRecords', () => {
  it('validates like the stream reader', () => {
    expect(() => parseRecords('{"kind":"job","v":1}', 'f.ndjson')).toThrow(/^f\.ndjson:1: job record/);
  });
});

describe('RecordWriter', () => {
  it('waits for drain when the stream is full', async () => {
    const out = new PassThrough({ highWaterMark: 16 });
    const w = new RecordWriter(out);
    const pending = w.write(job);
    expect(pending).toBeInstanceOf(Promise);
    out.read();
    await pending;
  });
  it('goes quiet when the reader closes', async () => {
    const out = new PassThrough();
    const w = new RecordWriter(out);
    let closed = false;
    w.onClose(() => (closed = true));
    out.destroy();
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(true);
    expect(w.write(job)).toBeUndefined();
  });
  it('with batch, writes the lines of one turn in one write, in order, and all of them by end()', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString()));
    const w = new RecordWriter(out, { batch: true });
    w.writeLine('a');
    w.write(job);
    w.writeLine('b');
    expect(chunks).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(chunks).toEqual([`a\n${JSON.stringify(job)}\nb\n`]);
    w.writeLine('c');
    await w.end();
    expect(chunks.join('')).toBe(`a\n${JSON.stringify(job)}\nb\nc\n`);
  });
  it('with batch, still waits for drain when the stream is full', async () => {
    const out = new PassThrough({ highWaterMark: 16 });
    const w = new RecordWriter(out, { batch: true });
    w.write(job);
    const pending = w.flush();
    expect(pending).toBeInstanceOf(Promise);
    expect(w.writeLine('x')).toBe(pending);
    out.read();
    await pending;
  });
});

describe('resultFileOf and leavesFiles', () => {
  it('a result read from stdout is no file; outputs or a result file are files to fetch', () => {
    expect(resultFileOf({})).toBeUndefined();
    expect(resultFileOf({ result: 'stdout' })).toBeUndefined();
    expect(resultFileOf({ result: 'out/value.txt' })).toBe('out/value.txt');
    expect(leavesFiles({})).toBe(false);
    expect(leavesFiles({ outputs: [], result: 'stdout' })).toBe(false);
    expect(leavesFiles({ outputs: ['a.csv'] })).toBe(true);
    expect(leavesFiles({ result: 'value.txt' })).toBe(true);
  });
});

describe('formatBytes and plural', () => {
  it('give people binary units and counted words', () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(107 * 1024 * 1024)]).toEqual(['0 B', '1023 B', '1.5 KiB', '107.0 MiB']);
    expect([plural(1, 'file'), plural(0, 'file'), plural(3, 'host')]).toEqual(['1 file', '0 files', '3 hosts']);
  });
});

describe('readRecordBatches', () => {
  it('gives the records of each chunk together, lines split across chunks and CRLF endings included', async () => {
    const input = new PassThrough();
    const a = JSON.stringify(job);
    const b = JSON.stringify({ ...job, id: 'b' });
    const c = JSON.stringify({ ...job, id: 'c' });
    input.write(`${a}\r\n${b.slice(0, 10)}`);
    input.end(`${b.slice(10)}\n\n${c}`);
    const batches: string[][] = [];
    for await (const batch of readRecordBatches(input)) batches.push(batch.map((r) => `${r.line}:${r.raw}`));
    // (how the writes reach the reader as chunks is the stream's affair: fewer batches than lines here)
    expect(batches.flat()).toEqual([`1:${a}`, `2:${b}`, `4:${c}`]);
    expect(batches.length).toBeLessThan(3);
  });
});

describe('randomHex and freshRunId', () => {
  it('gives as many random bytes as asked, as hex, different each time', () => {
    const seen = new Set(Array.from({ length: 50 }, () => randomHex(12)));
    expect(seen.size).toBe(50);
    for (const h of seen) expect(h).toMatch(/^[0-9a-f]{24}$/);
  });
  it('names a run by its local start time and 4 hex digits', () => {
    expect(freshRunId(new Date(2026, 11, 5, 3, 4, 5))).toMatch(/^20261205-030405-[0-9a-f]{4}$/);
  });
});
