// The folder of ControlMaster sockets a cm command multiplexes its ssh connections through.
//
// Private (the default): made 0700 under $TMPDIR as <prefix>-<pid>-XXXXXX; at close every master in
// it is told to exit (`ssh -O exit`), including the ones ssh started by itself for ControlMaster=auto
// clients, and the folder is removed. A command killed with SIGKILL cannot do that, so each start
// first closes and removes the folders of <prefix> processes that no longer run.
//
// Shared (opt-in, `keep` seconds): ~/.cm/ssh, reused by the next command, as Ansible keeps
// ~/.ansible/cp. Masters stay up `keep` seconds after their last session; a run that follows
// inside that time skips the key exchange.
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CmError, ExitCode } from '@cm/protocol';

export interface ControlDirOptions {
  /** names private folders <prefix>-<pid>-XXXXXX (cm-exec, cm-fetch) */
  prefix: string;
  /** seconds masters outlive the command in the shared folder; 0 or absent: a private folder */
  keep?: number;
  /** home of the shared folder (default $HOME) */
  home?: string;
  /** parent of private folders (default the OS temp dir) */
  tmp?: string;
  /** ssh program (tests); default ssh */
  ssh?: string;
  env?: NodeJS.ProcessEnv;
}

// ssh binds <folder>/<%C: 40 hex>.<16 random> while it sets a master up; sun_path holds 107 bytes
const SOCKET_NAME = 1 + 40 + 17;
const SUN_PATH = 107;

export class ControlDir {
  readonly path: string;
  /** ControlPersist for the masters made in it */
  readonly persist: number;
  readonly shared: boolean;
  private closed = false;

  constructor(private readonly opts: ControlDirOptions) {
    const keep = opts.keep ?? 0;
    this.shared = keep > 0;
    if (this.shared) {
      const home = opts.home ?? opts.env?.HOME ?? process.env.HOME ?? '/';
      this.path = join(home, '.cm', 'ssh');
      mkdirSync(this.path, { recursive: true, mode: 0o700 });
      const st = statSync(this.path);
      // a socket folder others can enter would let them ride our authenticated connections
      if ((process.getuid && st.uid !== process.getuid()) || (st.mode & 0o077) !== 0) {
        throw new CmError(`${this.path} must be a folder of yours that only you can use (mode 0700)`, ExitCode.INPUT);
      }
      if (this.path.length + SOCKET_NAME > SUN_PATH) {
        throw new CmError(`${this.path} is too long a path for ssh control sockets (HOME must be under ${SUN_PATH - SOCKET_NAME - 8} bytes)`, ExitCode.INPUT);
      }
      this.persist = keep;
    } else {
      let tmp = opts.tmp ?? tmpdir();
      // a long TMPDIR would make every master fail ("too long for Unix domain socket")
      if (tmp.length + `/${opts.prefix}-${process.pid}-XXXXXX`.length + SOCKET_NAME > SUN_PATH) tmp = '/tmp';
      sweepStale(opts.prefix, tmp, opts.ssh, opts.env);
      this.path = mkdtempSync(join(tmp, `${opts.prefix}-${process.pid}-`));
      // masters of a command killed by SIGKILL end this long after their last session
      this.persist = 60;
    }
  }

  /** Private: closes every master in the folder and removes it. Shared: leaves the masters up. */
  async close(): Promise<void> {
    if (this.closed || this.shared) return;
    this.closed = true;
    await exitMasters(this.path, this.opts.ssh, this.opts.env);
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Tells the master behind every socket in `dir` to exit; resolves when all have answered (5 s at most each). */
export function exitMasters(dir: string, ssh = 'ssh', env?: NodeJS.ProcessEnv): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return Promise.resolve();
  }
  const sockets = names.map((n) => join(dir, n)).filter((p) => isSocket(p));
  return Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          // the destination is not used with -O; ControlPath (-S) picks the master
          const child = spawn(ssh, ['-S', socket, '-O', 'exit', 'cm-control'], { stdio: 'ignore', env });
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          const done = () => {
            clearTimeout(timer);
            resolve();
          };
          child.on('exit', done);
          child.on('error', done);
        }),
    ),
  ).then(() => undefined);
}

function isSocket(p: string): boolean {
  try {
    return lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

/**
 * Closes the masters of, and removes, the private folders left by <prefix> processes of this user
 * that no longer run. Not awaited: the next start finishes what this one could not.
 */
export function sweepStale(prefix: string, tmp: string, ssh?: string, env?: NodeJS.ProcessEnv): void {
  const pattern = new RegExp(`^${prefix}-(\\d+)-[A-Za-z0-9]{6}$`);
  let names: string[];
  try {
    names = readdirSync(tmp);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid === process.pid || isRunning(pid)) continue;
    const dir = join(tmp, name);
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) continue;
    } catch {
      continue;
    }
    void exitMasters(dir, ssh, env).then(() => rmSync(dir, { recursive: true, force: true }));
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
