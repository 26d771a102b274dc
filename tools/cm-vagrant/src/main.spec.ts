import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { golden, runInMemory } from '@cm/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { run, toArgs, USAGE } from './main';

const here = fileURLToPath(new URL('.', import.meta.url));

// every scratch folder of the file, removed at its end
const scratchRoot = mkdtempSync(join(tmpdir(), 'cm-vagrant-spec-'));
afterAll(() => rmSync(scratchRoot, { recursive: true, force: true }));
// test/stand-ins/vagrant replays what vagrant 2.3.4 printed (test/helpers/vagrant-captures)
const standIns = fileURLToPath(new URL('../../../test/stand-ins', import.meta.url));

function vagrant(argv: string[], path: string, cwd = mkdtempSync(join(scratchRoot, 'run-')), terminal = false) {
  return runInMemory(USAGE, toArgs, run, [...argv, '--dir', cwd, '--inventory', join(cwd, 'hosts.yaml')], {
    cwd,
    env: { PATH: path, HOME: cwd, CM_VAGRANT_SCENARIO: 'libvirt' },
    terminal,
  });
}

describe('cm-vagrant run()', () => {
  it('exits 4 with a sentence of its own when vagrant is not installed', async () => {
    await expect(vagrant(['status'], '/nonexistent')).rejects.toMatchObject({ code: 4, message: expect.stringMatching(/vagrant/) });
  });

  it('up 2 then status: host records for the new machines, then one machine record each', async () => {
    const cwd = mkdtempSync(join(scratchRoot, 'run-'));
    // libvirt, the stand-in's provider, is usable when its program is on PATH: a fake virsh says so
    const fake = mkdtempSync(join(scratchRoot, 'fake-'));
    writeFileSync(join(fake, 'virsh'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(fake, 'virsh'), 0o755);
    const path = `${standIns}:${fake}:${process.env.PATH}`;
    const up = await vagrant(['up', '2', '--provider', 'libvirt', '--quiet'], path, cwd);
    expect(up.code).toBe(0);
    const status = await vagrant(['status'], path, cwd);
    expect(status.code).toBe(0);
    const both = (up.stdout + status.stdout).split(cwd).join('<dir>');
    expect(both).toBe(golden(`${here}/golden/up-status.ndjson`, both));
    // a person at a terminal reads the same as tables; --json gives the records there
    const shown = await vagrant(['status'], path, cwd, true);
    expect(shown.stdout.split(cwd).join('<dir>')).toBe(golden(`${here}/golden/status-table.txt`, shown.stdout.split(cwd).join('<dir>')));
    expect((await vagrant(['status', '--json'], path, cwd, true)).stdout).toBe(status.stdout);
  });
});
