import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostRecord } from '@cm/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlDir } from './control';
import { Masters } from './masters';

const root = mkdtempSync(join(tmpdir(), 'cm-masters-spec-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('Masters', () => {
  it('gives the reason a set-up failed, even when the control folder went meanwhile (a run closing)', async () => {
    const control = new ControlDir({ prefix: 'cm-t', tmp: root });
    // an ssh that fails after the folder (and the file its stderr goes to) was removed
    const ssh = join(root, 'ssh-gone');
    writeFileSync(ssh, `#!/bin/sh\nrm -rf '${control.path}'\nexit 255\n`, { mode: 0o755 });
    const host: HostRecord = { kind: 'host', v: 1, name: 'h', address: 'h', slots: 1, tags: [] };
    await expect(new Masters({ control, ssh }).ensure(host, ['h'])).resolves.toBe('ssh exit 255');
    const ssh2 = join(root, 'ssh-says');
    writeFileSync(ssh2, '#!/bin/sh\necho "ssh: connect to host h port 22: Connection refused" >&2\nexit 255\n', { mode: 0o755 });
    const control2 = new ControlDir({ prefix: 'cm-t', tmp: root });
    await expect(new Masters({ control: control2, ssh: ssh2 }).ensure(host, ['h'])).resolves.toBe('ssh: connect to host h port 22: Connection refused');
    await control2.close();
  });
});
