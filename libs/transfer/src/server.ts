// cm-fetch's server on each host (serve.pl): one perl process per host for the whole run, through
// the host's shared connection, that answers fetch and remove requests one at a time. A batch of
// job folders then costs one request line and one reply, with no ssh session, shell or fork on
// the host; hosts without perl (or its Digest::SHA) keep the one-`ssh tar`-per-batch path.
import type { ChildProcess } from 'node:child_process';
import { shQuote, type HostRecord } from '@cm/protocol';
import type { Connections } from './connections';
import SERVE_PL from './serve.pl';
import { ByteReader, readArchive, TarFormatError, type TarHandler } from './tar';

// It travels inside one sh single-quoted word.
if (SERVE_PL.includes("'")) throw new Error('serve.pl must not contain a single quote');
const PROGRAM = SERVE_PL.replace(/^\s*#.*\n/gm, '');
const HELLO = 'cm-fetch-server 1';
const SSH_FAILURE = 255;

/** The login shell's command: the server where perl is, else the line that says there is none. */
export const SERVER_COMMAND = `command -v perl >/dev/null 2>&1 || { echo cm-fetch-server 0; exit 0; }; exec perl -e ${shQuote(PROGRAM)}`;

/** The reply to a fetch request, after its archive went to the handler. */
export interface ServerReply {
  /** archive name -> sha256 the host computed while sending it */
  sums: Map<string, string>;
  missing: string[];
  /** files whose size changed while they were read: what came is not what is there */
  changed: string[];
  errors: string[];
}

/** The server's stream broke (it died, or the connection did): it is gone, the request may be retried. */
export class ServerLost extends Error {}

function unescape(s: string): string {
  return s.replace(/\\(\\|n|r)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
}

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

export class FetchServer {
  private readonly reader: ByteReader;
  private busy: Promise<unknown> = Promise.resolve();
  private stderr = '';
  /** a reply failed: those still to come are not read */
  private broken = false;
  dead = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly host: HostRecord,
  ) {
    this.reader = new ByteReader((child.stdout as AsyncIterable<Buffer>)[Symbol.asyncIterator]());
    child.stderr?.on('data', (c: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += c.toString('utf8');
    });
    child.on('close', () => {
      this.dead = true;
    });
    child.on('error', () => {
      this.dead = true;
    });
    child.stdin?.on('error', () => {
      this.dead = true;
    });
  }

  /** The host's server, or null where it cannot run (no perl, no Digest::SHA: the caller falls back). */
  static async start(conns: Connections, host: HostRecord): Promise<FetchServer | null> {
    const { child, viaSsh } = await conns.spawn(host, SERVER_COMMAND, 'pipe');
    const exited = new Promise<number | null>((resolve) => {
      child.on('close', (code) => resolve(code));
      child.on('error', () => resolve(null));
    });
    const server = new FetchServer(child, host);
    let hello: string | null;
    try {
      hello = await server.reader.line(4096);
    } catch {
      hello = null;
    }
    if (hello === HELLO) return server;
    server.close();
    if (hello === 'cm-fetch-server 0') return null;
    const code = await exited;
    // the words fetch.sh's path uses for the same failure, so records read alike either way
    if (viaSsh && code === SSH_FAILURE) throw new ServerLost(`ssh connection to ${host.name} failed${server.why()}`);
    throw new ServerLost(`cm-fetch's server did not start on ${host.name}${server.why()}`);
  }

  private why(): string {
    const d = this.stderr.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 3).join(' / ');
    return d ? `: ${d}` : '';
  }

  /**
   * Sends a request at once and reads its reply after the replies of those sent before it: the
   * server answers in order, so a request written behind another (a batch's removal, then the next
   * batch) waits for no round trip of its own.
   */
  private request<T>(line: string, read: () => Promise<T>): Promise<T> {
    try {
      this.send(line);
    } catch (err) {
      return Promise.reject(err);
    }
    const inTurn = (): Promise<T> =>
      // a reply before this one broke: the stream is out of step, and this one will not come
      this.broken ? Promise.reject(new ServerLost(`cm-fetch's server on ${this.host.name} is gone${this.why()}`)) : this.reply(read);
    const p = this.busy.then(inTurn, inTurn);
    this.busy = p.catch(() => undefined);
    return p;
  }

  private send(line: string): void {
    if (this.dead || !this.child.stdin?.writable) throw new ServerLost(`cm-fetch's server on ${this.host.name} is gone${this.why()}`);
    this.child.stdin.write(`${line}\n`);
  }

  /** The lines after an archive, up to cm-end. */
  private async tail(): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.reader.line(1024 * 1024);
      if (l === null) throw new TarFormatError('reply ended before cm-end');
      if (l === 'cm-end') return lines;
      lines.push(l);
    }
  }

  /** Any failure inside a reply leaves the stream out of step: the server is done for. */
  private async reply<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.broken = true;
      this.close();
      if (err instanceof TarFormatError) throw new ServerLost(`transfer from ${this.host.name} broke: ${err.message}${this.why()}`);
      throw err;
    }
  }

  /**
   * Sends `paths` (relative to the login directory) as one archive into handler; with bigFrom > 0,
   * files of that size and more come as 'big' entries without their bytes (the caller fetches them).
   */
  fetch(paths: string[], verify: boolean, handler: TarHandler, bigFrom = 0): Promise<ServerReply> {
    return this.request(`f ${verify ? 1 : 0} ${bigFrom} ${paths.map(hex).join(' ')}`, async () => {
      await readArchive(this.reader, handler);
      const out: ServerReply = { sums: new Map(), missing: [], changed: [], errors: [] };
      for (const l of await this.tail()) {
        let m: RegExpExecArray | null;
        if ((m = /^cm-sha256 ([0-9a-f]{64}) (.*)$/.exec(l))) out.sums.set(unescape(m[2] as string), m[1] as string);
        else if (l.startsWith('cm-missing ')) out.missing.push(unescape(l.slice(11)));
        else if (l.startsWith('cm-changed ')) out.changed.push(unescape(l.slice(11)));
        else if (l.startsWith('cm-error ')) out.errors.push(unescape(l.slice(9)));
      }
      return out;
    });
  }

  /** Removes job folders (and their run's folder once empty); the errors, if any. */
  remove(workdirs: string[]): Promise<string[]> {
    return this.request(`r ${workdirs.map(hex).join(' ')}`, async () =>
      (await this.tail()).filter((l) => l.startsWith('cm-error ')).map((l) => unescape(l.slice(9))),
    );
  }

  /** Ends the server: EOF on its stdin ends it; a stream we stopped reading is cut. */
  close(): void {
    this.dead = true;
    this.child.stdin?.end();
    this.child.stdout?.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const t = setTimeout(() => this.child.kill('SIGTERM'), 2000);
      t.unref();
      this.child.once('close', () => clearTimeout(t));
    }
  }

  kill(): void {
    this.dead = true;
    this.child.kill('SIGTERM');
  }
}

/**
 * One server per host, started on first use. A host where it cannot run is remembered (its
 * transfers use fetch.sh); a server that broke is replaced by a fresh one on the next request.
 */
export class FetchServers {
  private readonly servers = new Map<string, Promise<FetchServer | null>>();
  private readonly live = new Set<FetchServer>();
  private readonly without = new Set<string>();
  private closed = false;

  constructor(private readonly conns: Connections) {}

  /** The host's server, null where there is none (fall back), or a ServerLost when it could not start. */
  async get(host: HostRecord): Promise<FetchServer | null> {
    if (this.closed) return null;
    let p = this.servers.get(host.name);
    if (p) {
      const s = await p.catch(() => undefined);
      if (s === undefined || (s !== null && s.dead)) {
        // another caller may have started its successor meanwhile: one server per host
        if (this.servers.get(host.name) !== p) return this.get(host);
        p = undefined;
      }
    }
    if (!p) {
      p = FetchServer.start(this.conns, host);
      this.servers.set(host.name, p);
      p.then(
        (s) => {
          if (!s) this.without.add(host.name);
          // started for a run that ended meanwhile (a warm-up)
          else if (this.closed) s.close();
          else this.live.add(s);
        },
        () => undefined,
      );
    }
    return p;
  }

  /** true once the host is known to have no server: its transfers take fetch.sh, several at once */
  lacks(host: HostRecord): boolean {
    return this.without.has(host.name);
  }

  /** Stops them all (abort, or the end of the run). */
  close(kill = false): void {
    this.closed = true;
    for (const s of this.live) (kill ? s.kill() : s.close());
    this.live.clear();
  }
}
