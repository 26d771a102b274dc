import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { golden, runInMemory } from '@cm/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const here = fileURLToPath(new URL('.', import.meta.url));

// every scratch folder of the file, removed at its end
const scratchRoot = mkdtempSync(join(tmpdir(), 'cm-fetch-spec-'));
afterAll(() => rmSync(scratchRoot, { recursive: true, force: true }));

/** A finished job on the local host (the embedded inventory) whose workdir holds `files`. */
function finishedJob(home: string, job: string, files: Record<string, string>): string {
  const wd = join(home, '.cm/runs/r1', job);
  mkdirSync(wd, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(wd, name), text);
  return JSON.stringify({ kind: 'event', v: 1, event: 'finished', job, task: 'w', run: 'r1', host: 'localhost', exit: 0, workdir: `.cm/runs/r1/${job}`, outputs: Object.keys(files) });
}

/** The fetch records without the local root, which differs per run. */
const stable = (ndjson: string, root: string) => ndjson.split(root).join('<results>');

describe('cm-fetch run()', () => {
  it("copies each finished job's outputs under <dir>/<run>/<job>, checksummed, and passes every record on", async () => {
    const home = mkdtempSync(join(scratchRoot, 'home-'));
    const stdin = `${finishedJob(home, 'a', { 'out.txt': 'one\n' })}\n${finishedJob(home, 'b', { 'out.txt': 'two\n', 'log.txt': 'x' })}\n`;
    const r = await runInMemory(USAGE, toArgs, run, ['--dir', 'results'], { cwd: home, stdin, env: { PATH: process.env.PATH, HOME: home } });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; job: string });
    // both events, and one fetch record per job; fetches of the two may end in either order
    expect(lines.filter((l) => l.kind === 'event').map((l) => l.job)).toEqual(['a', 'b']);
    const fetches = `${r.stdout.trim().split('\n').filter((l) => l.includes('"kind":"fetch"')).sort().join('\n')}\n`;
    expect(stable(fetches, join(home, 'results'))).toBe(golden(`${here}/golden/fetch.ndjson`, stable(fetches, join(home, 'results'))));
    expect(readFileSync(join(home, 'results/r1/b/out.txt'), 'utf8')).toBe('two\n');
  });

  it("starts a host's server when the first job with outputs starts there, before any job finished, and waits for it at the end; none for jobs without", async () => {
    const home = mkdtempSync(join(scratchRoot, 'home-'));
    // a perl that only leaves a mark and says it cannot serve (the server's own "no Digest::SHA" line)
    const bin = join(home, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'perl'), '#!/bin/sh\ntouch "$HOME/server-started"\necho cm-fetch-server 0\n');
    chmodSync(join(bin, 'perl'), 0o755);
    const fetchIn = async (started: string) =>
      runInMemory(USAGE, toArgs, run, ['--dir', 'results'], { cwd: home, stdin: `${started}\n`, env: { PATH: `${bin}:${process.env.PATH}`, HOME: home } });
    const nothing = JSON.stringify({ kind: 'event', v: 1, event: 'started', job: 'a', task: 'w', run: 'r1', host: 'localhost', attempt: 1 });
    expect(await fetchIn(nothing)).toMatchObject({ code: 0, stderr: '', stdout: `${nothing}\n` });
    expect(existsSync(join(home, 'server-started'))).toBe(false);
    const files = JSON.stringify({ kind: 'event', v: 1, event: 'started', job: 'a', task: 'w', run: 'r1', host: 'localhost', attempt: 1, outputs: ['out.txt'] });
    expect(await fetchIn(files)).toMatchObject({ code: 0, stderr: '', stdout: `${files}\n` });
    expect(existsSync(join(home, 'server-started'))).toBe(true);
  });
});
