import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { HostRecord } from '@cm/protocol';
import { checkHosts, classifySshError, parseProbe, PROBE_COMMAND } from './check';

// every scratch folder of the file, removed at its end
const scratch = mkdtempSync(path.join(tmpdir(), 'check-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const host = (name: string, extra: Partial<HostRecord> = {}): HostRecord => ({ kind: 'host', v: 1, name, address: '127.0.0.1', tags: [], slots: 1, ...extra });

describe('classifySshError', () => {
  it('names the usual reasons', () => {
    expect(classifySshError('ssh: connect to host 127.0.10.2 port 22: Connection refused\r\n')).toBe('connection refused');
    expect(classifySshError('ssh: connect to host 10.1.1.1 port 22: Connection timed out')).toBe('timed out');
    expect(classifySshError('root@127.0.10.1: Permission denied (publickey).')).toBe('permission denied');
    expect(classifySshError('@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.')).toBe('host key changed');
    expect(classifySshError('Host key verification failed.')).toBe('host key verification failed');
    expect(classifySshError('ssh: Could not resolve hostname nope: Name or service not known')).toBe('name not resolved');
    expect(classifySshError('something odd\n\n')).toBe('something odd');
  });
});

describe('the probe', () => {
  it('runs in a POSIX sh and parses on Linux and BSD-style output', () => {
    const out = execFileSync('/bin/sh', ['-c', PROBE_COMMAND]).toString();
    const p = parseProbe(out);
    expect(p.cpus).toBeGreaterThan(0);
    expect(p.load).toHaveLength(3);
    expect(p.hostname).toBeTruthy();
    expect(parseProbe('motd noise\ncm-probe cpus=8\ncm-probe load={ 1.5 2.0 0.25 }\ncm-probe hostname=mac\n')).toEqual({ cpus: 8, load: [1.5, 2, 0.25], hostname: 'mac' });
    expect(parseProbe('cm-probe cpus=\ncm-probe load=\n')).toEqual({});
  });
});

describe('checkHosts', () => {
  it('reports a refused port as down, a local host as up, in host order', async () => {
    const results = await checkHosts([host('closed', { port: 1 }), host('me', { local: true })], { timeout: 10, parallel: 4 });
    expect(results.map((r) => [r.host, r.up, r.reason])).toEqual([
      ['closed', false, 'connection refused'],
      ['me', true, undefined],
    ]);
    expect(results[1]?.suggested_slots).toBe(results[1]?.cpus);
  });
  it('kills a probe that outlives --timeout', async () => {
    const dir = mkdtempSync(path.join(scratch, 'run-'));
    const fake = path.join(dir, 'slow-ssh');
    writeFileSync(fake, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const [r] = await checkHosts([host('slow')], { timeout: 0.3, parallel: 1, ssh: fake });
    expect(r).toMatchObject({ up: false, reason: 'timed out' });
  });
});
