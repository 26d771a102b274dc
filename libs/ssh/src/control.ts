// The folder of ControlMaster sockets a cm command multiplexes its ssh connections through.
//
// Private (the default): made 0700 under $TMPDIR as <prefix>-<pid>-XXXXXX; at close every master in
// it is told to stop listening (what `ssh -O stop` sends, spoken over its socket): it takes no new
// session and exits once the last one it has ends, at once when it has none. Another cm command of
// the same run may ride it meanwhile (cm-fetch behind cm-exec: `run` in the folder names the runs, see
// findRunControl), so closing never cuts a transfer. The folder is removed. A command killed with
// SIGKILL cannot do that, so each start first closes (exit) and removes the folders of <prefix>
// processes that no longer run.
//
// Shared (opt-in, `keep` seconds): ~/.cm/ssh, reused by the next command, as Ansible keeps
// ~/.ansible/cp. Masters stay up `keep` seconds after their last session; a run that follows
// inside that time skips the key exchange.
import { spawn } from 'node:child_process';
import { appendFileSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CmError, ExitCode, type HostRecord } from '@cm/protocol';
import { controlName } from './args';

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
  private readonly runs = new Set<string>();
  private end: 'stop' | 'exit' = 'stop';

  constructor(private readonly opts: ControlDirOptions) {
    const keep = opts.keep ?? 0;
    this.shared = keep > 0;
    if (this.shared) {
      this.path = sharedControlPath(opts.home ?? opts.env?.HOME ?? process.env.HOME ?? '/');
      mkdirSync(this.path, { recursive: true, mode: 0o700 });
      // a socket folder others can enter would let them ride our authenticated connections
      if (!isPrivate(statSync(this.path))) {
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

  /**
   * The command runs jobs of `run` over these masters: a private folder lists it in its file `run`
   * (a line each) for findRunControl. Cheap to call for every job.
   */
  serve(run: string): void {
    if (this.shared || this.closed || this.runs.has(run)) return;
    this.runs.add(run);
    try {
      appendFileSync(join(this.path, RUN_FILE), `${run}\n`, { mode: 0o600 });
    } catch {
      // only lets a cm-fetch skip its logins: without it, the cm-fetch logs in itself
    }
  }

  /**
   * The command ends without finishing its sessions (a run detached from its jobs, or interrupted):
   * close then tells the masters to exit, which cuts those sessions, instead of waiting for them.
   */
  cutAtClose(): void {
    this.end = 'exit';
  }

  /**
   * Private: stops every master in the folder (each ends with its last session), or tells it to exit
   * (cutAtClose), and removes the folder. Shared: leaves the masters up.
   */
  async close(): Promise<void> {
    if (this.closed || this.shared) return;
    this.closed = true;
    await controlMasters(this.path, this.end, this.opts.ssh, this.opts.env);
    rmSync(this.path, { recursive: true, force: true });
  }
}

const RUN_FILE = 'run';

/** The shared folder of kept masters (--keep-connections) under home. */
export function sharedControlPath(home: string): string {
  return join(home, '.cm', 'ssh');
}

/** Ours, and no one else can enter it: the only kind of folder whose masters cm uses. */
function isPrivate(st: { uid: number; mode: number }): boolean {
  return (!process.getuid || st.uid === process.getuid()) && (st.mode & 0o077) === 0;
}

/** A folder (not a link to one) that isPrivate. */
export function isPrivateFolder(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && isPrivate(st);
  } catch {
    return false;
  }
}

/**
 * The private folder of a running <prefix> command (cm-exec) of this user that serves `run`, among
 * the parents private folders are made in; undefined when there is none.
 */
export function findRunControl(prefix: string, run: string, tmps: string[] = [tmpdir(), '/tmp']): string | undefined {
  for (const tmp of new Set(tmps)) {
    for (const { dir, pid } of privateFolders(prefix, tmp)) {
      if (!isRunning(pid)) continue;
      try {
        // ours and no one else's, as the folder of its masters must be
        if (isPrivateFolder(dir) && readFileSync(join(dir, RUN_FILE), 'utf8').split('\n').includes(run)) return dir;
      } catch {
        continue;
      }
    }
  }
  return undefined;
}

/** The socket of host's master in the control folder dir, when there is one. */
export function masterSocket(dir: string, host: HostRecord): string | undefined {
  const p = join(dir, controlName(host));
  return isSocket(p) ? p : undefined;
}

/**
 * Tells the master behind every socket in `dir` to exit, or to stop listening (and end with its last
 * session); resolves when all have answered (5 s at most each).
 */
export function controlMasters(dir: string, command: 'exit' | 'stop', ssh = 'ssh', env?: NodeJS.ProcessEnv): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return Promise.resolve();
  }
  const sockets = names.map((n) => join(dir, n)).filter((p) => isSocket(p));
  return Promise.all(
    sockets.map((socket) => muxCommand(socket, command).then((spoken) => (spoken ? undefined : sshControl(socket, command, ssh, env)))),
  ).then(() => undefined);
}

// OpenSSH's multiplexing protocol (PROTOCOL.mux): each message is a uint32 length, then a uint32 type.
const MUX_MSG_HELLO = 0x00000001;
const MUX_VERSION = 4;
const MUX_C_COMMAND = { exit: 0x10000005, stop: 0x10000009 } as const;

function muxMessage(...words: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * words.length);
  b.writeUInt32BE(4 * words.length, 0);
  words.forEach((w, i) => b.writeUInt32BE(w, 4 + 4 * i));
  return b;
}

/**
 * Sends the master behind `socket` what `ssh -O exit` or `ssh -O stop` sends (hello, then the
 * command) without starting an ssh: four masters cost four ssh start-ups at the end of every run,
 * 60-130 ms of its wall time on a loaded 2-core machine. Resolves true once the master has answered or
 * closed the connection (it may exit before its reply leaves, which `ssh -O exit` accepts too); false
 * when the socket is not an OpenSSH master's (another ssh program): then ssh is asked. A socket nobody
 * listens on any more (the master is gone) needs nothing.
 */
function muxCommand(socket: string, command: 'exit' | 'stop'): Promise<boolean> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    let spoken = true;
    const conn = connect(socket);
    const timer = setTimeout(() => conn.destroy(), 5000);
    conn.on('connect', () => conn.write(Buffer.concat([muxMessage(MUX_MSG_HELLO, MUX_VERSION), muxMessage(MUX_C_COMMAND[command], 1)])));
    conn.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      // the master's hello comes first; anything else is not the protocol this speaks
      if (got.length >= 8 && got.readUInt32BE(4) !== MUX_MSG_HELLO) {
        spoken = false;
        conn.destroy();
      }
      // a reply after it: OK (the master exits, or stops listening) or a refusal (ControlMaster=ask), nothing more to wait for
      else if (got.length >= 8 && got.length >= 4 + got.readUInt32BE(0) + 8) conn.destroy();
    });
    conn.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ECONNREFUSED' && e.code !== 'ENOENT' && e.code !== 'ECONNRESET' && e.code !== 'EPIPE') spoken = false;
    });
    conn.on('close', () => {
      clearTimeout(timer);
      resolve(spoken);
    });
  });
}

function sshControl(socket: string, command: 'exit' | 'stop', ssh: string, env?: NodeJS.ProcessEnv): Promise<void> {
  return new Promise<void>((resolve) => {
    // the destination is not used with -O; ControlPath (-S) picks the master
    const child = spawn(ssh, ['-S', socket, '-O', command, 'cm-control'], { stdio: 'ignore', env });
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    child.on('exit', done);
    child.on('error', done);
  });
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
  for (const { dir, pid } of privateFolders(prefix, tmp)) {
    if (pid === process.pid || isRunning(pid)) continue;
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) continue;
    } catch {
      continue;
    }
    void controlMasters(dir, 'exit', ssh, env).then(() => rmSync(dir, { recursive: true, force: true }));
  }
}

/** The private folders <prefix>-<pid>-XXXXXX (mkdtemp's six characters) in tmp, by name, with their pid. */
function privateFolders(prefix: string, tmp: string): Array<{ dir: string; pid: number }> {
  let names: string[];
  try {
    names = readdirSync(tmp);
  } catch {
    return [];
  }
  const found: Array<{ dir: string; pid: number }> = [];
  for (const name of names) {
    if (!name.startsWith(`${prefix}-`)) continue;
    const m = /^(\d+)-[A-Za-z0-9]{6}$/.exec(name.slice(prefix.length + 1));
    if (m) found.push({ dir: join(tmp, name), pid: Number(m[1]) });
  }
  return found;
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
