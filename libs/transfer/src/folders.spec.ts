import { describe, expect, it } from 'vitest';
import type { HostRecord } from '@cm/protocol';
import { resultFolder, safeRelative } from './paths';
import { removable, removeScript } from './remove';
import type { FetchJob, FetchOutcome } from './fetch';

describe('resultFolder', () => {
  it('puts a job with parameters under its task, one step per parameter, in their order', () => {
    expect(resultFolder({ job: 'bench.55', task: 'bench', params: { size: '4000', rep: '3' } })).toBe('bench/size=4000/rep=3');
    expect(resultFolder({ job: 'x.1', task: 'x', params: { f: 'data-1.csv', v: '-0.5e+3' } })).toBe('x/f=data-1.csv/v=-0.5e+3');
  });

  it('keeps the job id without parameters or a task', () => {
    expect(resultFolder({ job: 'a', task: 'a' })).toBe('a');
    expect(resultFolder({ job: 'a', task: 'a', params: {} })).toBe('a');
    expect(resultFolder({ job: 'a.1', params: { i: '1' } })).toBe('a.1');
  });

  it('falls back to the job id when a name or value would not be one plain path step', () => {
    for (const v of ['..', '../x', 'a/b', '/etc', 'a b', "it's", 'a\\b', '', '*', 'x'.repeat(300), 'a\nb']) {
      expect(resultFolder({ job: 'j.1', task: 'j', params: { p: v } })).toBe(v === '..' ? 'j/p=..' : 'j.1');
    }
    expect(resultFolder({ job: 'j.1', task: 'j', params: { 'a/b': '1' } })).toBe('j.1');
    expect(resultFolder({ job: 'j.1', task: 'j', params: { '..': '1' } })).toBe('j.1');
  });

  it('is always a clean relative path', () => {
    for (const params of [{ a: '..' }, { a: '.' }, { a: '-' }, { a: '%2F' }]) {
      const f = resultFolder({ job: 'j.1', task: 'j', params });
      expect(safeRelative(f)).toBe(f);
      expect(f.split('/')).not.toContain('..');
    }
  });
});

describe('removable', () => {
  const host = { name: 'h' } as HostRecord;
  const job = (id: string, remove: boolean): FetchJob => ({ job: id, run: 'r', host, workdir: `.cm/runs/r/${id}`, outputs: ['o'], remove });
  const out = (ok: boolean, verified: boolean): FetchOutcome => ({ ok, verified, files: [], attempt: 1 });

  it('removes only what asked for it, arrived whole and was verified', () => {
    expect(
      removable([
        { job: job('a', true), out: out(true, true) },
        { job: job('b', false), out: out(true, true) },
        { job: job('c', true), out: out(false, true) },
        { job: job('d', true), out: out(true, false) },
      ]),
    ).toEqual(['.cm/runs/r/a']);
  });

  it('passes the folders as quoted words', () => {
    expect(removeScript(['.cm/runs/r/a', ".cm/runs/r/it's"]).split('\n')[0]).toBe(`set -- '.cm/runs/r/a' '.cm/runs/r/it'\\''s'`);
  });
});

describe('removeWorkdirs', () => {
  it('only warns when the host is gone by clean-up time (the fetch stays good)', async () => {
    const { Connections } = await import('./connections');
    const { removeWorkdirs } = await import('./remove');
    const conns = new Connections({ home: '/nonexistent', sshOptions: { connectTimeout: 2 } });
    // nothing listens on port 1 of the loopback address: ssh itself fails (exit 255)
    const host = { kind: 'host', v: 1, name: 'gone', address: '127.0.0.1', port: 1, tags: [], slots: 1 } as HostRecord;
    const warnings: string[] = [];
    const job: FetchJob = { job: 'a', run: 'r', host, workdir: '.cm/runs/r/a', outputs: ['o'], remove: true };
    await removeWorkdirs(conns, host, [{ job, out: { ok: true, verified: true, files: [], attempt: 1 } }], (m) => warnings.push(m));
    await conns.close();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^could not remove \.cm\/runs\/r\/a on gone \(its files are fetched and verified\): .*(refused|port 1)/);
  });
});
