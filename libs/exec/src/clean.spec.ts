import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanRecord, cleanScript, parseAge } from './clean';

describe('parseAge', () => {
  it('reads minutes, hours and days as minutes', () => {
    expect([parseAge('30m'), parseAge('12h'), parseAge('7d')]).toEqual([30, 720, 10080]);
  });
  it('refuses anything else with a usage error', () => {
    for (const bad of ['', '7', '0d', '1.5h', '7 d', '-1d', '3w']) expect(() => parseAge(bad)).toThrow(/--older-than/);
  });
});

describe('cleanRecord', () => {
  it('lists what clean.sh removed, with the sum', () => {
    expect(cleanRecord('th1', 0, 'cm-removed 4096 r1\nnoise\ncm-removed 8192 r2\n', '', true)).toEqual({
      kind: 'clean', v: 1, host: 'th1', ok: true, runs: [{ run: 'r1', bytes: 4096 }, { run: 'r2', bytes: 8192 }], bytes: 12288,
    });
  });
  it('names an unreachable host as such', () => {
    const r = cleanRecord('th2', 255, '', 'ssh: connect to host 127.0.10.2 port 22: Connection refused\r\n', true);
    expect(r).toMatchObject({ ok: false, runs: [], error: 'cannot connect: ssh: connect to host 127.0.10.2 port 22: Connection refused' });
  });
});

describe('clean.sh under dash', () => {
  const home = mkdtempSync(join(tmpdir(), 'cm-clean-'));
  afterAll(() => rmSync(home, { recursive: true, force: true }));
  const runs = join(home, '.cm/runs');
  const old = (dir: string): void => {
    const t = new Date(Date.now() - 8 * 86400e3);
    for (const p of execFileSync('find', [dir]).toString().trim().split('\n')) utimesSync(p, t, t);
  };
  const clean = (run?: string, minutes?: number): string => execFileSync('dash', ['-c', cleanScript(run, minutes)], { cwd: home }).toString();

  it('removes one run, old runs, then all; never a symlink, a bad name or .cm/runs itself', () => {
    for (const r of ['a', 'b', 'c', 'd']) {
      mkdirSync(join(runs, r, 'job.1'), { recursive: true });
      writeFileSync(join(runs, r, 'job.1', 'f'), 'x'.repeat(10000));
    }
    mkdirSync(join(home, 'elsewhere'));
    symlinkSync(join(home, 'elsewhere'), join(runs, 'link'));
    mkdirSync(join(runs, '-odd'));
    old(join(runs, 'b'));
    old(join(runs, 'c'));
    // c has one fresh file: not old
    writeFileSync(join(runs, 'c', 'job.1', 'fresh'), '');
    expect(clean('a')).toMatch(/^cm-removed \d+ a\n$/);
    expect(clean(undefined, 7 * 1440)).toMatch(/^cm-removed \d+ b\n$/);
    expect(readdirSync(runs).sort()).toEqual(['-odd', 'c', 'd', 'link']);
    expect(clean().split('\n').filter(Boolean).map((l) => l.split(' ')[2])).toEqual(['c', 'd']);
    expect(readdirSync(runs).sort()).toEqual(['-odd', 'link']);
    expect(readdirSync(join(home, 'elsewhere'))).toEqual([]);
  });

  it('says nothing and succeeds where there is no .cm/runs', () => {
    rmSync(join(home, '.cm'), { recursive: true });
    expect(clean()).toBe('');
  });
});
