// The transport against the real loop, carried by a local `sh` instead of ssh (same pipes, same
// program, no network). Real ssh hosts are exercised in test/transport-persistent.bats.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setMaxListeners } from 'node:events';
import type { HostRecord } from '@cm/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PERSISTENT_UNAVAILABLE, PersistentTransport, type PersistentTransportOptions } from './persistent';
import type { RemoteLoop } from './remote-loop';
import type { JobLaunch } from './types';

const dir = mkdtempSync(join(tmpdir(), 'cm-persistent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const host: HostRecord = { kind: 'host', v: 1, name: 'h1', address: '127.0.0.1', tags: [], slots: 4 };
const open: PersistentTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

/** A transport whose "ssh" is `sh -c` in the scratch dir; `spawned` collects the pids of the carriers. */
const pidFile = join(dir, 'loop-pids');
/** the loop of the describe block running now: every behaviour is checked on both */
let loop: RemoteLoop = 'auto';

function transport(opts: PersistentTransportOptions = {}) {
  const spawned: string[] = [];
  const t = new PersistentTransport({
    killGrace: 0.3,
    loop,
    restartBackoff: { initialMs: 50, maxMs: 200 },
    sessionCommand: (_h, remote) => {
      spawned.push(remote);
      // the carrier notes its pid, then becomes the loop (exec), as sshd's session child would
      return { file: 'sh', args: ['-c', 'echo $$ >>"$1"; exec sh -c "$0"', remote, pidFile], cwd: dir };
    },
    ...opts,
  });
  open.push(t);
  return { t, spawned };
}

let n = 0;
function job(command: string, extra: Partial<JobLaunch> = {}): JobLaunch {
  n += 1;
  const id = `j${n}`;
  return { id, command, env: { CM_JOB: id }, workdir: `runs/${id}`, maxOutput: 1 << 20, logBase: join(dir, id), ...extra };
}

const never = new AbortController().signal;
// one signal shared by every job, as a scheduler's halt signal would be
setMaxListeners(Infinity, never);

/** Processes whose command line holds `token` (the test's own ps excluded). */
function processesWith(token: string): string[] {
  return execFileSync('ps', ['-eo', 'pid=,args='])
    .toString()
    .split('\n')
    .filter((l) => l.includes(token) && !l.includes('ps -eo'));
}

describe.each(['auto', 'sh'] as const)('PersistentTransport over a local sh, loop %s', (which) => {
  beforeAll(() => {
    loop = which;
  });

  it('reports exit codes, separate stdout and stderr, env and workdir like a per-job shell', async () => {
    const { t } = transport();
    const env = { CM_JOB: 'x', WEIRD: `it's "$HOME" \`id\` \n\ttab; $(exit 9)` };
    const [a, b] = await Promise.all([
      t.run(host, job('printf "%s" "$WEIRD"; echo err >&2; pwd >&2; exit 3', { env, workdir: 'w/a b' }), never),
      t.run(host, job('printf "no newline"'), never),
    ]);
    expect(a).toMatchObject({ ran: true, exit: 3, signal: null, truncated: false });
    expect(a.stdout.toString()).toBe(env.WEIRD);
    expect(a.stderr.toString()).toBe(`err\n${join(dir, 'w/a b')}\n`);
    expect(b).toMatchObject({ ran: true, exit: 0, signal: null });
    expect(b.stdout.toString()).toBe('no newline');
    expect(b.stdoutBytes).toBe(10);
  });

  it('runs each job with stdin from /dev/null and its own process group', async () => {
    const { t } = transport();
    const r = await t.run(host, job('cat; ps -o pgid= -p $$; echo $$'), never);
    const [pgid, pid] = r.stdout.toString().trim().split(/\s+/);
    expect(r.exit).toBe(0);
    expect(pgid).toBe(pid);
  });

  it('reports a job that kills its own shell as a signal, and the session goes on', async () => {
    const { t, spawned } = transport();
    const killed = await t.run(host, job('echo before; kill -9 $$'), never);
    // as the per-job ssh transport: 128+9, no signal name (sh cannot tell it from `exit 137`)
    expect(killed).toMatchObject({ ran: true, exit: 137, signal: null });
    expect(killed.stdout.toString()).toBe('before\n');
    const parent = await t.run(host, job('kill -TERM $PPID; sleep 0.2; exit 4'), never);
    expect(parent).toMatchObject({ ran: true, exit: 4 });
    expect((await t.run(host, job('echo still here'), never)).stdout.toString()).toBe('still here\n');
    expect(spawned).toHaveLength(1);
  });

  it('kills the whole remote group on timeout and stays usable', async () => {
    const { t } = transport();
    const token = `77.${process.pid}${n}`;
    const r = await t.run(host, job(`(sleep ${token} &); sleep ${token}`, { timeout: 0.4 }), never);
    expect(r).toMatchObject({ ran: true, timedOut: true, reason: 'timeout after 0.4s', exit: 143, signal: 'SIGTERM' });
    expect(processesWith(`sleep ${token}`)).toEqual([]);
    // TERM ignored: KILL follows after the grace
    const stubborn = await t.run(host, job(`trap "" TERM; sleep ${token}1`, { timeout: 0.2 }), never);
    expect(stubborn).toMatchObject({ timedOut: true, exit: 137, signal: 'SIGKILL' });
    expect(processesWith(`sleep ${token}1`)).toEqual([]);
    expect((await t.run(host, job('exit 0'), never)).exit).toBe(0);
  });

  it('cancels through the abort signal', async () => {
    const { t } = transport();
    const ac = new AbortController();
    const token = `30.${process.pid}${n}`;
    const p = t.run(host, job(`sleep ${token}`), ac.signal);
    // cancelled while it runs on the host, not before it got there
    await vi.waitFor(() => expect(processesWith(`sleep ${token}`)).not.toEqual([]), { timeout: 10000, interval: 20 });
    ac.abort();
    expect(await p).toMatchObject({ ran: true, reason: 'cancelled', exit: 143, signal: 'SIGTERM' });
    const pre = new AbortController();
    pre.abort();
    expect(await t.run(host, job('sleep 30'), pre.signal)).toMatchObject({ reason: 'cancelled' });
  });

  it('streams output past the cap into the log files, not into memory', async () => {
    const { t } = transport();
    const r = await t.run(host, job('head -c 3000000 /dev/urandom | tee big.bin; echo e >&2; sha256sum big.bin >&2', { maxOutput: 1000 }), never);
    expect(r).toMatchObject({ ran: true, exit: 0, truncated: true, stdoutBytes: 3000000 });
    expect(r.stdout.length).toBe(1000);
    expect(r.log).toBe(`${join(dir, `j${n}`)}.stdout`);
    const full = readFileSync(r.log as string);
    expect(full.subarray(0, 1000)).toEqual(r.stdout);
    const sum = r.stderr.toString().split('\n')[1]?.split(' ')[0];
    expect(createHash('sha256').update(full).digest('hex')).toBe(sum);
  });

  it('runs many jobs at once in one session and keeps their outputs apart', async () => {
    const { t, spawned } = transport();
    const jobs = Array.from({ length: 40 }, (_, i) => job(`printf "%s" "$CM_JOB"; echo ${i} >&2; exit ${i % 7}`));
    const rs = await Promise.all(jobs.map((j) => t.run(host, j, never)));
    rs.forEach((r, i) => {
      expect(r.stdout.toString()).toBe(jobs[i]?.id);
      expect(r.stderr.toString()).toBe(`${i}\n`);
      expect(r.exit).toBe(i % 7);
    });
    expect(spawned).toHaveLength(1);
  });

  it('passes each job its own values of the same variables, and refuses names sh cannot take or the loop reserves', async () => {
    const { t } = transport();
    const values = ['a', 'a', "it's\nb", 'a', ''];
    const got = await Promise.all(values.map((v) => t.run(host, job('printf "%s|" "$CM_RUN"', { env: { CM_RUN: v } }), never)));
    expect(got.map((r) => r.stdout.toString())).toEqual(values.map((v) => `${v}|`));
    for (const bad of ['_cmq_nl', '1X']) {
      const r = await t.run(host, job('true', { env: { [bad]: 'x' } }), never);
      expect(r.ran).toBe(false);
      expect(r.reason).toContain(JSON.stringify(bad));
    }
  });

  it('the perl loop starts the shells of all the lanes of its share of the slots before the first job', async () => {
    const { t } = transport();
    await t.run(host, job('true'), never);
    const loopPid = Number(readFileSync(pidFile, 'utf8').trim().split('\n').pop());
    const shells = execFileSync('ps', ['--ppid', String(loopPid), '-o', 'args=']).toString().split('\n').filter((l) => /^sh -s/.test(l));
    // where perl or the slot shells are unavailable both loops start what a job needs, when it comes
    if (which === 'auto' && process.platform === 'linux') expect(shells).toHaveLength(host.slots);
    else expect(shells).toHaveLength(0);
  });

  it("opens one session per slot with sessionsPerHost 'slots'", async () => {
    const { t, spawned } = transport({ sessionsPerHost: 'slots' });
    await Promise.all(Array.from({ length: 8 }, () => t.run(host, job('sleep 0.2'), never)));
    expect(spawned).toHaveLength(4);
  });

  it('fails in-flight jobs as not run when the session dies, then restarts it', async () => {
    const { t, spawned } = transport();
    expect((await t.run(host, job('echo warm'), never)).exit).toBe(0);
    const token = `88.${process.pid}${n}`;
    const inflight = t.run(host, job(`sleep ${token}`), never);
    await vi.waitFor(() => expect(processesWith(`sleep ${token}`)).not.toEqual([]), { timeout: 10000, interval: 20 });
    // SIGKILL the loop itself, as a dead sshd or a cut network would end it: no goodbye, pipes closed
    const loopPid = Number(readFileSync(pidFile, 'utf8').trim().split('\n').pop());
    process.kill(loopPid, 'SIGKILL');
    const r = await inflight;
    expect(r.ran).toBe(false);
    expect(r.reason).toMatch(/^session to h1 lost: /);
    const again = await t.run(host, job('echo back'), never);
    expect(again).toMatchObject({ ran: true, exit: 0 });
    expect(again.stdout.toString()).toBe('back\n');
    expect(spawned.length).toBe(2);
    // the orphaned job of the killed loop is ours to clean up (an sshd would have cut its pipes)
    for (const l of processesWith(`sleep ${token}`)) process.kill(Number(l.trim().split(' ')[0]), 'SIGKILL');
  });

  it('says the loop is unavailable when the host has no POSIX sh, and not for a refused connection', async () => {
    const noSh = new PersistentTransport({
      sessionCommand: () => ({ file: 'sh', args: ['-c', 'echo "fish: Unknown command: sh" >&2; exit 127'] }),
    });
    open.push(noSh);
    const r = await noSh.run(host, job('true'), never);
    expect(r.ran).toBe(false);
    expect(r.reason?.startsWith(`${PERSISTENT_UNAVAILABLE} on h1:`)).toBe(true);
    expect(r.reason).toContain('fish: Unknown command: sh');
    expect(noSh.unavailable('h1')).toBe(r.reason);

    const refused = new PersistentTransport({
      restartBackoff: { initialMs: 10, maxMs: 10 },
      sessionCommand: () => ({ file: 'sh', args: ['-c', 'echo "ssh: connect to host 127.0.0.1 port 22: Connection refused" >&2; exit 255'] }),
    });
    open.push(refused);
    const c = await refused.run(host, job('true'), never);
    expect(c).toMatchObject({ ran: false, reason: 'ssh: connect to host 127.0.0.1 port 22: Connection refused' });
    expect(refused.unavailable('h1')).toBeUndefined();
  });

  it('removes its sessions and the remote temp dirs on close', async () => {
    const { t } = transport();
    await t.run(host, job('true'), never);
    const before = execFileSync('sh', ['-c', 'ls -d ${TMPDIR:-/tmp}/cm-persist.* 2>/dev/null || true']).toString();
    await t.close();
    const after = execFileSync('sh', ['-c', 'ls -d ${TMPDIR:-/tmp}/cm-persist.* 2>/dev/null || true']).toString();
    // the sh loop keeps outputs in a temp dir; the perl loop makes none
    if (which === 'sh') expect(after.split('\n').length).toBeLessThan(before.split('\n').length);
    else expect(after).toBe(before);
    expect((await t.run(host, job('true'), never)).ran).toBe(false);
  });
});
