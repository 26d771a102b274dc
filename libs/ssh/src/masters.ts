// The one owner of "one ssh master per host": cm-exec's per-job transport and cm-fetch's connections
// both open a host's ControlMaster here, once, before their clients multiplex over it. Without it,
// the first clients to a host would each race to become master and most would get a connection of
// their own. Set-ups are paced so sshd's MaxStartups never drops one.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HostRecord } from '@cm/protocol';
import type { ControlDir } from './control';

/** A counting semaphore. */
export class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}
  async enter(): Promise<void> {
    if (this.active < this.max) {
      this.active += 1;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }
  leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active -= 1;
  }
}

export interface MastersOptions {
  control: ControlDir;
  /** program to run (tests, wrappers); default `ssh` */
  ssh?: string;
  env?: NodeJS.ProcessEnv;
  /** concurrent set-ups over all hosts; default 8 */
  maxSetups?: number;
}

export class Masters {
  private readonly masters = new Map<string, Promise<string | undefined>>();
  private readonly gate: Gate;

  constructor(private readonly opts: MastersOptions) {
    this.gate = new Gate(opts.maxSetups ?? 8);
  }

  /**
   * The host's master, set up once with `args` (sshArgs with this control folder); resolves to
   * undefined once it is up, or to the reason it could not be. A failed set-up is forgotten, so the
   * next caller tries again (callers count the failures).
   */
  ensure(host: HostRecord, args: string[]): Promise<string | undefined> {
    let p = this.masters.get(host.name);
    if (!p) {
      p = this.start(host, args);
      this.masters.set(host.name, p);
      void p.then((err) => {
        if (err !== undefined && this.masters.get(host.name) === p) this.masters.delete(host.name);
      });
    }
    return p;
  }

  /** Forgets a host's master (its connection failed): the next ensure() opens a fresh one. */
  forget(host: HostRecord): void {
    this.masters.delete(host.name);
  }

  private async start(host: HostRecord, args: string[]): Promise<string | undefined> {
    await this.gate.enter();
    const ssh = this.opts.ssh ?? 'ssh';
    // the folder may be the shared ~/.cm/ssh: the name must be this process's own
    const errFile = join(this.opts.control.path, `${host.name}.${process.pid}.master.err`);
    const fd = openSync(errFile, 'w', 0o600);
    try {
      // -f: ssh backgrounds itself once authenticated; its stdout/stderr must not be our pipes, or
      // the daemonised master would hold them open
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(ssh, ['-f', '-N', ...args], { stdio: ['ignore', 'ignore', fd], env: this.opts.env });
        child.on('error', () => resolve(null));
        child.on('exit', (c) => resolve(c));
      });
      if (code === 0) return undefined;
      return lastLine(errFile) ?? (code === null ? `cannot run ${ssh}` : `ssh exit ${code}`);
    } finally {
      closeSync(fd);
      rmSync(errFile, { force: true });
      this.gate.leave();
    }
  }
}

/** The last line ssh wrote there; none when the control folder went meanwhile (a run closing). */
function lastLine(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).at(-1);
  } catch {
    return undefined;
  }
}
