import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { golden, parseUsage, runInMemory, type DocoptArgs } from '@cm/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const here = fileURLToPath(new URL('.', import.meta.url));
// the scratch folder of the file, removed at its end
const cwd = mkdtempSync(join(tmpdir(), 'cm-report-spec-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));
const report = (argv: string[], stdin: string) => runInMemory(USAGE, toArgs, run, argv, { cwd, stdin });
const T = (s: number) => new Date(Date.parse('2026-01-05T09:00:00Z') + s * 1000).toISOString();
const stream = [
  '{"kind":"event","v":1,"event":"queued","job":"a","task":"a","run":"r"}',
  `{"kind":"event","v":1,"event":"finished","job":"a","task":"a","run":"r","host":"h1","attempt":1,"exit":0,"start":"${T(0)}","end":"${T(2)}","stdout":"1\\n"}`,
  '{"kind":"note","v":1,"text":"passes through"}',
  `{"kind":"event","v":1,"event":"finished","job":"b","task":"b","run":"r","host":"h1","attempt":2,"exit":1,"signal":"SIGKILL","start":"${T(1)}","end":"${T(1.5)}"}`,
  '',
].join('\n');

describe('cm-report run()', () => {
  it('passes every record through unchanged and writes the report, its data inlined', async () => {
    const r = await report(['-o', 'r.html', '--title', 'spec run'], stream);
    expect(r).toMatchObject({ code: 0, stdout: stream, stderr: '' });
    const html = readFileSync(join(cwd, 'r.html'), 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    const data = JSON.parse(gunzipSync(Buffer.from(/id="cm-data">([^<]*)</.exec(html)![1]!, 'base64')).toString('utf8'));
    expect(data).toMatchObject({ title: 'spec run', runs: ['r'], wall: 2000, lanes: 2, counts: { jobs: 2, ok: 1, failed: 1 } });
  });

  it("--parallel-joblog: GNU parallel's columns, a line per attempt", async () => {
    const r = await report(['--parallel-joblog', 'p.log'], stream);
    expect(r.code).toBe(0);
    const text = readFileSync(join(cwd, 'p.log'), 'utf8');
    expect(text).toBe(golden(`${here}/golden/parallel.joblog`, text));
  });

  it('--svg: the timeline alone', async () => {
    await report(['--svg', 't.svg'], stream);
    const svg = readFileSync(join(cwd, 't.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" class="timeline"/);
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(2);
  });

  it('refuses to run with nothing to write (exit 2), and names the bad line of its input (exit 3)', async () => {
    await expect(report([], stream)).rejects.toMatchObject({ code: 2, message: expect.stringMatching(/nothing to write/) });
    await expect(report(['-o', 'x.html'], '{"kind":"event"}\n')).rejects.toMatchObject({ code: 3, message: expect.stringMatching(/^stdin:1:/) });
  });

  it('--serve PORT takes the port from the first argument of digits', () => {
    const a = (argv: string[]) => toArgs(parseUsage(USAGE, argv) as DocoptArgs);
    expect(a(['--serve', '8080', 'x.log']).serve).toEqual({ port: 8080, host: '127.0.0.1', lingerSecs: 0 });
    expect(a(['--serve', 'x.log']).files).toEqual(['x.log']);
  });
});
