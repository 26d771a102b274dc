// Runs a shell script on a host: over ssh through one ControlMaster connection per host, or as a
// local `sh -c` in $HOME for local hosts. The master is cm-exec's when it runs the same run (cm-exec |
// cm-fetch: ride), or one kept in ~/.cm/ssh (--keep-connections), so that a host is logged in to once;
// else one of its own, in a private control directory removed at close.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { HostRecord } from '@cm/protocol';
import { ControlDir, findRunControl, isPrivateFolder, Masters, masterSocket, sharedControlPath, sshArgs, type SshArgOptions } from '@cm/ssh';

export interface ConnectionOptions {
  ssh?: string;
  sshOptions?: Omit<SshArgOptions, 'controlDir' | 'controlPersist'>;
  /** the login directory of local hosts (cm-exec runs local jobs there) */
  home: string;
  env?: NodeJS.ProcessEnv;
}

export interface Spawned {
  child: ChildProcess;
  /** true when the exit code 255 is ssh's own (connection) failure, not the script's */
  viaSsh: boolean;
}

export class Connections {
  private readonly control: ControlDir;
  private readonly masters: Masters;
  private closed = false;
  /** the run ride() was last told of, its cm-exec's control folder, and when that was looked for */
  private run: string | undefined;
  private exec: string | undefined;
  private lookedAt = 0;
  /** ~/.cm/ssh, where cm-exec --keep-connections keeps masters */
  private readonly kept: string;

  constructor(private readonly opts: ConnectionOptions) {
    // Short and private: socket paths are limited to ~104 bytes.
    this.control = new ControlDir({ prefix: 'cm-fetch', ssh: opts.ssh, env: opts.env });
    this.masters = new Masters({ control: this.control, ssh: opts.ssh, env: opts.env });
    this.kept = sharedControlPath(opts.env?.HOME ?? process.env.HOME ?? '/');
  }

  get controlDir(): string {
    return this.control.path;
  }

  /**
   * The records are of `run`: its cm-exec, while it runs, holds a master to each of its hosts, which
   * the sessions to them then ride instead of logging in again. Cheap to call for every record.
   */
  ride(run: string): void {
    // not found yet (its cm-exec may start no job of the run before a while, or be gone): looked
    // for again at most once a second, since each look reads the temp folder
    if (run === this.run && (this.exec !== undefined || Date.now() - this.lookedAt < 1000)) return;
    this.run = run;
    this.lookedAt = Date.now();
    this.exec = findRunControl('cm-exec', run);
  }

  private args(host: HostRecord, rideSocket?: string): string[] {
    return sshArgs(host, { ...this.opts.sshOptions, controlDir: this.control.path, controlPersist: this.control.persist, rideSocket });
  }

  /**
   * Spawns `script` on host with stdin/stdout/stderr as pipes, or stdout straight into the file
   * descriptor `stdout` (the ssh master then writes the bytes there itself).
   */
  async spawn(host: HostRecord, script: string, stdin: 'pipe' | 'ignore' = 'ignore', stdout: 'pipe' | number = 'pipe'): Promise<Spawned> {
    if (this.closed) throw new Error('connections closed');
    if (host.local) {
      const child = spawn('sh', ['-c', script], { cwd: this.opts.home, stdio: [stdin, stdout, 'pipe'], env: this.opts.env });
      return { child, viaSsh: false };
    }
    const ride = (this.exec && (await execMaster(this.exec, host))) || (isPrivateFolder(this.kept) ? masterSocket(this.kept, host) : undefined);
    // a master that could not be set up fails this spawn's own ssh, which says why
    if (!ride) await this.masters.ensure(host, this.args(host));
    const child = spawn(this.opts.ssh ?? 'ssh', [...this.args(host, ride), script], { stdio: [stdin, stdout, 'pipe'], env: this.opts.env });
    return { child, viaSsh: true };
  }

  /** Forgets a host's master so the next transfer opens a fresh one (after a connection failure). */
  reset(host: HostRecord): void {
    this.masters.forget(host);
  }

  /** Stops every master in the control directory and removes it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.control.close();
  }
}

/**
 * The master cm-exec holds to host in its control folder dir. A job's started event can come before
 * its session is up (the key exchange still under way), so it is waited for, 15 s at most (cm-exec's
 * connect timeout is 10); undefined if it does not come, or cm-exec closes its folder first.
 */
async function execMaster(dir: string, host: HostRecord): Promise<string | undefined> {
  const deadline = Date.now() + MASTER_WAIT_MS;
  for (;;) {
    const socket = masterSocket(dir, host);
    if (socket || Date.now() > deadline || !existsSync(dir)) return socket;
    await delay(MASTER_POLL_MS);
  }
}
const MASTER_WAIT_MS = 15_000;
const MASTER_POLL_MS = 20;
