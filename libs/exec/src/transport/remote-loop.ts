// The remote half of the persistent transport: a POSIX sh program that runs on the host for the life
// of one ssh session, and the decoder for what it writes back.
//
// Wire format, local -> remote (one line per request; every free-form value is single-quoted by
// lineQuote, so no quoting can break out and no external decoder is needed on the host):
//   r <serial> <lane> <rm> '<workdir>' '<command>' ['<NAME>' '<value>']...   start a job; rm 1:
//                                                                   remove its workdir when it ends
//   k <serial> <lane> <SIGNAL>                                         signal a job's process group
//   s <serial> <cap> <linger> '<spool>'    the next r of <serial> keeps its first <cap>
//                                          bytes of stdout and stderr, start, end and status in the
//                                          folder <spool>, and the job outlives the session for
//                                          <linger> s after its controller is lost
//   a <serial> '<spool>'                   wait for the job another loop ran with that
//                                          spool and send its frames under <serial>
//   c <serial>                             the controller has the job: remove its spool folder
// Remote -> local (lines; a per-session random marker starts every header, so a stray write is
// detected, never taken as a frame):
//   <M> hello 3 <runner>                    once, when the loop is ready; runner: perl, the setsid
//                                           path, or - (no process groups)
//   <M> fail <reason>                       the loop cannot run here (missing tool, no temp dir)
//   <M> <serial> o|e                        then base64 lines of the job's stdout|stderr, then "."
//   <M> <serial> O|E <length>               then exactly <length> raw bytes of its stdout|stderr
//   <M> <serial> t <start> <end> <out> <err>   a collected job (request a): its start and end (ms
//                                           since the epoch) and the whole sizes of its streams
//   <M> <serial> l <reason>                 a collected job was lost: nothing ran it to its end
//   <M> <serial> x <status> <SIGNAME or ->  the job ended; always the last frame of a job
// Output travels as base64, whose alphabet has no ".", so the "." end line cannot appear inside it:
// no byte sequence a job writes can end or forge a frame. Under the sh loop a job writes into files
// on the host (stdout and stderr kept apart, binary safe) and its frames are shipped after it ends,
// under a lock (one token in a fifo) so concurrent jobs never interleave their frames.
//
// Two loops speak this format. Where the host has perl (perl-base is Essential on Debian and
// Ubuntu, and standard on RHEL-family systems), the sh program hands over to PERL_LOOP: one
// process that runs each job as a subshell of a long-lived sh of its lane (the lane of the r
// request; no exec per job), or forks it straight into its sh -c where that cannot be done (see
// loop.pl), reads its output from pipes, and ships it as raw length-framed blocks. A tiny job then
// costs about 2x a bare subshell of sh on the host, where the sh loop spends a runner fork, mkdir,
// setsid, sh and base64 (docs/design.md has the figures).
// Elsewhere (busybox, minimal images) the POSIX sh loop runs, with the same semantics.
import { shQuote } from '@cm/protocol';
import LOOP_PL from './loop.pl';
import LOOP_SH from './loop.sh';
import { MKDIRS } from './ssh';

/** Bumped when the wire format changes; the hello line carries it. */
export const LOOP_VERSION = 4;

// The programs are real files (checked by sh -n and perl -c in the test run), bundled as text.
const PROGRAM = LOOP_SH;
// Written without a single quote, so that it can travel inside one sh single-quoted word.
const PERL_LOOP = LOOP_PL;
if (PERL_LOOP.includes("'")) throw new Error('PERL_LOOP must not contain a single quote');

/** Which loop runs on the host: perl where it is installed (the default), or always the sh loop. */
export type RemoteLoop = 'auto' | 'sh';

/**
 * The loop's text with this session's marker in it. `lanes`: how many jobs the session will run at
 * once (the perl loop starts that many slot shells as soon as it has said hello); 0: as jobs come.
 */
export function remoteProgram(marker: string, loop: RemoteLoop = 'auto', lanes = 0): string {
  if (!/^[A-Za-z0-9]{8,64}$/.test(marker)) throw new Error(`bad session marker ${JSON.stringify(marker)}`);
  if (!Number.isInteger(lanes) || lanes < 0) throw new Error(`bad lane count ${lanes}`);
  return PROGRAM.replace('@MARKER@', marker)
    .replace('@TRY_PERL@', loop === 'auto' ? '1' : '0')
    .replace('@LANES@', String(Math.min(lanes, 64)))
    .replace('@MKDIRS@', () => MKDIRS)
    .replace('@PERL@', () => PERL_LOOP)
    .replaceAll('@VERSION@', String(LOOP_VERSION));
}

/**
 * The command ssh hands to the login shell. It reads the program (exactly `length` bytes, sent
 * first on stdin) and runs it with sh. The text holds no backslash, `!` or newline, so csh- and
 * fish-family login shells pass it to sh unchanged, as POSIX ones do. `head -c` may read past the
 * program, which is harmless because nothing else is sent until the loop says hello.
 */
export function bootstrapCommand(length: number): string {
  return `exec sh -c 'eval "$(head -c ${length})"'`;
}

/**
 * A single-quoted sh word holding exactly `value`. A newline becomes '"$_cmq_nl"' so a request
 * stays on one line; the loop defines _cmq_nl before it evaluates any request.
 */
export function lineQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a NUL byte cannot be passed through sh');
  return shQuote(value).replace(/\n/g, `'"$_cmq_nl"'`);
}

export type Frame =
  /** runner: perl, the setsid path the sh loop uses, or null (no process groups on that host) */
  | { type: 'hello'; version: number; runner: string | null }
  | { type: 'fail'; reason: string }
  | { type: 'data'; serial: number; stream: 'stdout' | 'stderr'; bytes: Buffer }
  | { type: 'exit'; serial: number; status: number; signal: string | null }
  /** a job collected from its spool: its real start and end, and the whole sizes of its streams */
  | { type: 'times'; serial: number; start: number; end: number; stdoutBytes: number; stderrBytes: number }
  /** a job to collect that no loop ran to its end */
  | { type: 'lost'; serial: number; reason: string }
  /** a line that is not a frame: login-shell noise before hello, a broken session after it */
  | { type: 'noise'; line: string };

const NL = 0x0a;
const DIGITS = /^\d+$/;
const EMPTY = Buffer.alloc(0);
const END_OF_BLOCK = Buffer.from('\n.\n');

/**
 * Turns the loop's output, in chunks of any size, into frames. Job output is handed on as it is
 * decoded (a block is never held whole), so a 10 MB stdout costs a few KB of memory here.
 */
export class FrameDecoder {
  private pending: Buffer = EMPTY;
  /** inside an output block: whose, and the base64 characters not yet forming a 4-char group */
  private block: { serial: number; stream: 'stdout' | 'stderr' } | null = null;
  private carry = '';
  /** inside a raw block: whose, and how many bytes are still to come */
  private raw: { serial: number; stream: 'stdout' | 'stderr'; left: number } | null = null;
  private readonly prefix: string;

  constructor(
    marker: string,
    private readonly onFrame: (frame: Frame) => void,
  ) {
    this.prefix = `${marker} `;
  }

  push(chunk: Buffer): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let pos = 0;
    while (pos < buf.length) {
      if (this.raw) {
        const n = Math.min(this.raw.left, buf.length - pos);
        const { serial, stream } = this.raw;
        const bytes = buf.subarray(pos, pos + n);
        // handed on as is when it is most of the memory it lives in; a small piece of a big chunk is
        // copied, so a job's kept output does not hold on to the whole chunk
        this.onFrame({ type: 'data', serial, stream, bytes: 2 * n >= buf.buffer.byteLength ? bytes : Buffer.from(bytes) });
        pos += n;
        this.raw.left -= n;
        if (this.raw.left === 0) this.raw = null;
        continue;
      }
      if (this.block) {
        // A block ends at a line holding only ".": either right here or after some base64 lines.
        if (buf[pos] === 0x2e && pos + 1 < buf.length && buf[pos + 1] === NL) {
          this.endBlock();
          pos += 2;
          continue;
        }
        if (buf[pos] === 0x2e && pos + 1 === buf.length) break;
        const end = buf.indexOf(END_OF_BLOCK, pos);
        if (end >= 0) {
          this.data(buf.subarray(pos, end));
          this.endBlock();
          pos = end + 3;
          continue;
        }
        // No end yet: decode the complete lines, keep the partial one for the next chunk.
        const lastNl = buf.lastIndexOf(NL);
        if (lastNl < pos) break;
        this.data(buf.subarray(pos, lastNl));
        pos = lastNl + 1;
        continue;
      }
      const nl = buf.indexOf(NL, pos);
      if (nl < 0) break;
      this.header(buf.toString('latin1', pos, nl));
      pos = nl + 1;
    }
    this.pending = pos < buf.length ? Buffer.from(buf.subarray(pos)) : EMPTY;
  }

  /** bytes received after the last complete line (a session that died mid-frame) */
  get partial(): number {
    return this.pending.length + (this.block || this.raw ? 1 : 0);
  }

  private data(b64lines: Buffer): void {
    const text = this.carry + b64lines.toString('latin1').replace(/\n/g, '');
    const whole = text.length - (text.length % 4);
    this.carry = text.slice(whole);
    if (whole > 0 && this.block) {
      this.onFrame({ type: 'data', ...this.block, bytes: Buffer.from(text.slice(0, whole), 'base64') });
    }
  }

  private endBlock(): void {
    if (this.carry.length > 0 && this.block) {
      // base64 always pads to a multiple of 4; a remainder means the block was damaged
      this.onFrame({ type: 'noise', line: `truncated base64 in output block of job ${this.block.serial}` });
    }
    this.carry = '';
    this.block = null;
  }

  private header(line: string): void {
    if (!line.startsWith(this.prefix)) {
      this.onFrame({ type: 'noise', line });
      return;
    }
    const f = line.slice(this.prefix.length).split(' ');
    const what = f[0] as string;
    if (!DIGITS.test(what)) {
      if (what === 'hello' && f.length === 3) {
        this.onFrame({ type: 'hello', version: Number(f[1]), runner: f[2] === '-' ? null : (f[2] as string) });
      } else if (what === 'fail') {
        this.onFrame({ type: 'fail', reason: f.slice(1).join(' ') });
      } else {
        this.onFrame({ type: 'noise', line });
      }
      return;
    }
    const serial = Number(what);
    const kind = f[1];
    if ((kind === 'O' || kind === 'E') && f.length === 3 && DIGITS.test(f[2] as string)) {
      const left = Number(f[2]);
      if (left > 0) this.raw = { serial, stream: kind === 'O' ? 'stdout' : 'stderr', left };
    } else if (kind === 'x' && f.length === 4 && DIGITS.test(f[2] as string)) {
      const status = Number(f[2]);
      const signal = f[3] !== '-' && status > 128 ? `SIG${f[3]}` : null;
      this.onFrame({ type: 'exit', serial, status, signal });
    } else if ((kind === 'o' || kind === 'e') && f.length === 2) {
      this.block = { serial, stream: kind === 'o' ? 'stdout' : 'stderr' };
    } else if (kind === 't' && f.length === 6 && f.slice(2).every((x) => DIGITS.test(x))) {
      const [start, end, stdoutBytes, stderrBytes] = f.slice(2).map(Number) as [number, number, number, number];
      this.onFrame({ type: 'times', serial, start, end, stdoutBytes, stderrBytes });
    } else if (kind === 'l') {
      this.onFrame({ type: 'lost', serial, reason: f.slice(2).join(' ') });
    } else {
      this.onFrame({ type: 'noise', line });
    }
  }
}
