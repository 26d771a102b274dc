// The remote half of the persistent transport: a POSIX sh program that runs on the host for the life
// of one ssh session, and the decoder for what it writes back.
//
// Wire format, local -> remote (one line per request; every free-form value is single-quoted by
// lineQuote, so no quoting can break out and no external decoder is needed on the host):
//   r <serial> <lane> '<workdir>' '<command>' ['<NAME>' '<value>']...   start a job
//   k <serial> <lane> <SIGNAL>                                         signal a job's process group
// Remote -> local (lines; a per-session random marker starts every header, so a stray write is
// detected, never taken as a frame):
//   <M> hello 2 <runner>                    once, when the loop is ready; runner: perl, the setsid
//                                           path, or - (no process groups)
//   <M> fail <reason>                       the loop cannot run here (missing tool, no temp dir)
//   <M> <serial> o|e                        then base64 lines of the job's stdout|stderr, then "."
//   <M> <serial> O|E <length>               then exactly <length> raw bytes of its stdout|stderr
//   <M> <serial> x <status> <SIGNAME or ->  the job ended; always the last frame of a job
// Output travels as base64, whose alphabet has no ".", so the "." end line cannot appear inside it:
// no byte sequence a job writes can end or forge a frame. Under the sh loop a job writes into files
// on the host (stdout and stderr kept apart, binary safe) and its frames are shipped after it ends,
// under a lock (one token in a fifo) so concurrent jobs never interleave their frames.
//
// Two loops speak this format. Where the host has perl (perl-base is Essential on Debian and
// Ubuntu, and standard on RHEL-family systems), the sh program hands over to PERL_LOOP: one
// process that forks each job straight into its sh -c, reads its output from pipes, and ships it
// as raw length-framed blocks. A job then costs one fork and one exec on the host, where the sh
// loop spends a runner fork, mkdir, setsid, sh and base64 (about 4.5 ms of CPU against 1 ms on the
// reference machine).
// Elsewhere (busybox, minimal images) the POSIX sh loop runs, with the same semantics.
import { shQuote } from '@cm/protocol';

/** Bumped when the wire format changes; the hello line carries it. */
export const LOOP_VERSION = 2;

const PROGRAM = `_cmq_M=@MARKER@
_cmq_nl='
'
_cmq_sh=$(command -v sh) || _cmq_sh=/bin/sh
# A perl that cannot even compile the loop fails the session, and the host gets the per-job transport.
if [ @TRY_PERL@ = 1 ] && command -v perl >/dev/null 2>&1; then
  exec perl -e '@PERL@' "$_cmq_M" "$_cmq_sh" @VERSION@
fi
for _cmq_t in base64 mkfifo mkdir rm; do
  command -v "$_cmq_t" >/dev/null 2>&1 || { printf '%s fail the host has no %s command\\n' "$_cmq_M" "$_cmq_t"; exit 3; }
done
_cmq_setsid=$(command -v setsid 2>/dev/null) || _cmq_setsid=
_cmq_b64=$(command -v base64)
# loops killed with SIGKILL leave their folder: remove the ones of ours whose loop no longer runs
_cmq_tmp=\${TMPDIR:-/tmp}
for _cmq_o in "$_cmq_tmp"/cm-persist.*; do
  _cmq_p=\${_cmq_o##*/cm-persist.}
  _cmq_p=\${_cmq_p%%.*}
  case $_cmq_p in '' | *[!0-9]*) continue ;; esac
  [ -O "$_cmq_o" ] && ! kill -0 "$_cmq_p" 2>/dev/null && rm -rf "$_cmq_o"
done
# a folder left by a killed loop whose pid came round again is not ours: take the next name
_cmq_d=$_cmq_tmp/cm-persist.$$ _cmq_i=0
until mkdir -m 700 "$_cmq_d" 2>/dev/null; do
  _cmq_i=$((_cmq_i + 1))
  [ "$_cmq_i" -lt 100 ] || { printf '%s fail cannot create %s\\n' "$_cmq_M" "$_cmq_d"; exit 3; }
  _cmq_d=$_cmq_tmp/cm-persist.$$.$_cmq_i
done
mkfifo "$_cmq_d/lock" || { printf '%s fail cannot create %s/lock\\n' "$_cmq_M" "$_cmq_d"; exit 3; }
exec 3<>"$_cmq_d/lock"
printf '\\n' >&3
_cmq_kill() { kill -"$1" -"$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null; }
_cmq_end() {
  trap - EXIT
  for _cmq_f in "$_cmq_d"/*.p; do
    [ -s "$_cmq_f" ] && read -r _cmq_x _cmq_p <"$_cmq_f" && _cmq_kill KILL "$_cmq_p"
  done
  rm -rf "$_cmq_d"
}
trap _cmq_end EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
_cmq_k() {
  printf '%s %s\\n' "$1" "$3" >"$_cmq_d/$2.k"
  [ -s "$_cmq_d/$2.p" ] && read -r _cmq_x _cmq_p <"$_cmq_d/$2.p" && [ "$_cmq_x" = "$1" ] && _cmq_kill "$3" "$_cmq_p"
}
_cmq_run() {
  _cmq_n=$1 _cmq_f=$_cmq_d/$2 _cmq_w=$3 _cmq_c=$4
  shift 4
  (
    # a job that signals its parent must not lose its own status; the job itself gets default handlers
    trap : HUP INT TERM
    # The runner becomes the job's environment (one fork less per job): past this point it uses
    # only quoted expansions, absolute paths and _cmq_ names, which the transport never exports.
    _cmq_x=0
    { [ -d "$_cmq_w" ] || mkdir -p "$_cmq_w"; } 2>"$_cmq_f.e" && cd "$_cmq_w" 2>>"$_cmq_f.e" || _cmq_x=1
    if [ "$_cmq_x" = 0 ]; then
      while [ $# -gt 1 ]; do export "$1=$2"; shift 2; done
      if [ -n "$_cmq_setsid" ]; then
        "$_cmq_setsid" "$_cmq_sh" -c "$_cmq_c" </dev/null >"$_cmq_f.o" 2>"$_cmq_f.e" 3>&- &
      else
        "$_cmq_sh" -c "$_cmq_c" </dev/null >"$_cmq_f.o" 2>"$_cmq_f.e" 3>&- &
      fi
      _cmq_p=$!
      printf '%s %s\\n' "$_cmq_n" "$_cmq_p" >"$_cmq_f.p"
      if [ -s "$_cmq_f.k" ] && read -r _cmq_x _cmq_s <"$_cmq_f.k" && [ "$_cmq_x" = "$_cmq_n" ]; then
        _cmq_kill "$_cmq_s" "$_cmq_p"
      fi
      wait "$_cmq_p"
      _cmq_rc=$?
      while kill -0 "$_cmq_p" 2>/dev/null; do wait "$_cmq_p"; _cmq_rc=$?; done
      # what the job left running in its process group ends with it, as with the per-job transport
      [ -n "$_cmq_setsid" ] && kill -KILL -"$_cmq_p" 2>/dev/null
      : >"$_cmq_f.p"
    else
      # like the per-job transport's mkdir -p DIR && cd DIR && sh -c ...: status 1, the reason on stderr
      : >"$_cmq_f.o"
      _cmq_rc=1
    fi
    _cmq_s=-
    if [ "$_cmq_rc" -gt 128 ]; then _cmq_s=$(kill -l "$_cmq_rc" 2>/dev/null) || _cmq_s=-; fi
    read -r _cmq_x <&3
    if [ -s "$_cmq_f.o" ]; then printf '%s %s o\\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_f.o"; printf '.\\n'; fi
    if [ -s "$_cmq_f.e" ]; then printf '%s %s e\\n' "$_cmq_M" "$_cmq_n"; "$_cmq_b64" <"$_cmq_f.e"; printf '.\\n'; fi
    printf '%s %s x %s %s\\n' "$_cmq_M" "$_cmq_n" "$_cmq_rc" "\${_cmq_s:--}"
    printf '\\n' >&3
  ) &
}
printf '%s hello @VERSION@ %s\\n' "$_cmq_M" "\${_cmq_setsid:--}"
while IFS= read -r _cmq_line; do
  case $_cmq_line in
    'r '*) eval "_cmq_run \${_cmq_line#r }" ;;
    'k '*) eval "_cmq_k \${_cmq_line#k }" ;;
  esac
done
exit 0
`;

// Written without a single quote, so that it can travel inside one sh single-quoted word.
const PERL_LOOP = String.raw`use strict;
# The wire format of the sh loop, from one process that runs every job of the session.
# No modules at start-up: POSIX alone costs 12 ms of CPU per session, which every host pays at
# once on the machine running cm-exec when the hosts are local, and in the latency of the first job.
# The stdout and stderr of a job are pipes that this loop reads as the job writes: no file is
# created on the host, and no output waits on a disk.
my ($M, $SH, $VERSION) = @ARGV;
my $LOOP = $$;
# WNOHANG is 1 wherever cm runs hosts (Linux, the BSDs, macOS); POSIX says so elsewhere
my $WNOHANG = $^O =~ /^(linux|darwin|freebsd|openbsd|netbsd|dragonfly|cygwin)$/ ? 1 : do { require POSIX; POSIX::WNOHANG() };
sub signame { require Config; (split / /, $Config::Config{sig_name})[$_[0]] || "-" }
my (%job, %pid_of, %pipe);    # pid => serial; serial => pid; fileno => [handle, serial, O|E, pid]
my $closing = 0;
sub put {
  my $s = $_[0];
  while (length $s) {
    my $w = syswrite STDOUT, $s;
    if (!defined $w) { next if $!{EINTR}; finish(141) }
    substr($s, 0, $w) = "";
  }
}
sub finish {
  # a forked job not yet in its exec gets the signal as its status, and must not touch the loop state
  exit $_[0] if $$ != $LOOP;
  return if $closing++;
  kill "KILL", -$_ for keys %job;
  exit $_[0];
}
# HUP, INT and TERM are caught and ignored: a job that signals its parent (kill PPID) must not
# end the session, and perl cannot tell the sender from a deferred handler. The session ends when
# its stdin closes (ssh gone) or stdout breaks. Caught, not ignored, so a job starts with the
# default handlers after its exec.
$SIG{$_} = sub {} for qw(HUP INT TERM);
$SIG{PIPE} = sub { finish(141) };
pipe(my $wake_r, my $wake_w) or finish(3);
# (blocking writes are fine: the loop drains it on every turn, one byte per SIGCHLD)
$SIG{CHLD} = sub { syswrite $wake_w, "c" if $$ == $LOOP };

sub words {
  my @w;
  for my $word ($_[0] =~ /((?:\x27[^\x27]*\x27|\\\x27|"\$_cmq_nl")+)/g) {
    my $v = "";
    $v .= defined $1 ? $1 : defined $2 ? "\x27" : "\n" while $word =~ /\G(?:\x27([^\x27]*)\x27|(\\\x27)|"\$_cmq_nl")/gc;
    push @w, $v;
  }
  return @w;
}

# mkdir -p: a single mkdir when the parent exists, as for every job after the first of a run
sub mkpath {
  return 1 if mkdir($_[0]) || -d $_[0];
  my $p = "";
  for my $part (split m{(?=/)}, $_[0]) {
    $p .= $part;
    next if $p eq "" || $p eq "/" || -d $p;
    mkdir $p or -d $p or return 0;
  }
  return 1;
}

# Replies wait for a job to end (or for 64 KB of output), then leave in one write with those of
# the other jobs that ended in the same turn: a tiny job costs sshd and ssh part of one packet.
my ($reply, $ended) = ("", 0);
sub failed {
  my ($serial, $why) = @_;
  $reply .= "$M $serial E " . length($why) . "\n$why$M $serial x 1 -\n";
  $ended = 1;
}

sub start {
  my ($serial, $wd, $cmd, @env) = @_;
  # as the per-job transport: mkdir -p DIR && cd DIR, else status 1 with the reason on stderr
  return failed($serial, "mkdir: cannot create directory $wd: $!\n") if !mkpath($wd);
  # perl marks the pipes close-on-exec: a job holds its own two ends and nothing else of the loop
  my ($or, $ow, $er, $ew);
  pipe($or, $ow) && pipe($er, $ew) or return failed($serial, "cannot make a pipe for a new job: $!\n");
  my $pid = fork;
  return failed($serial, "cannot fork a new job: $!\n") if !defined $pid;
  if ($pid == 0) {
    setpgrp(0, 0);
    open STDIN, "<", "/dev/null";
    open STDOUT, ">&", $ow or exit 1;
    open STDERR, ">&", $ew or exit 1;
    if (!chdir $wd) { print STDERR "cd: $wd: $!\n"; exit 1 }
    while (@env) { my $k = shift @env; $ENV{$k} = shift @env }
    exec { $SH } "sh", "-c", $cmd;
    print STDERR "cannot run $SH: $!\n";
    exit 127;
  }
  close $ow;
  close $ew;
  $job{$pid} = $serial;
  $pid_of{$serial} = $pid;
  $pipe{fileno $or} = [$or, $serial, "O", $pid];
  $pipe{fileno $er} = [$er, $serial, "E", $pid];
}

# Reads what the pipe of a job holds. Returns false at end of file, when the pipe is closed.
sub drain {
  my $p = $_[0];
  my $n = sysread $p->[0], my $buf, 65536;
  return 1 if !defined $n && $!{EINTR};
  if ($n) {
    $reply .= "$M $p->[1] $p->[2] $n\n" . $buf;
    if (length $reply > 1 << 20) { put($reply); $reply = "" }
    return 1;
  }
  delete $pipe{fileno $p->[0]};
  close $p->[0];
  return 0;
}

sub reap {
  while ((my $pid = waitpid(-1, $WNOHANG)) > 0) {
    my $status = $?;
    defined(my $serial = delete $job{$pid}) or next;
    delete $pid_of{$serial};
    # what the job left running in its process group ends with it, as with the sh loop
    kill "KILL", -$pid;
    # All the job wrote is in its pipes now. A process that left the group may still hold them:
    # take what is there and close them rather than wait for it.
    for my $p (grep { $_->[3] == $pid } values %pipe) {
      my $bits = "";
      vec($bits, fileno $p->[0], 1) = 1;
      1 while select(my $ready = $bits, undef, undef, 0) > 0 && drain($p);
      if ($pipe{fileno $p->[0]}) { delete $pipe{fileno $p->[0]}; close $p->[0] }
    }
    my ($rc, $sig) = ($status >> 8, "-");
    if ($status & 127) { $rc = 128 + ($status & 127); $sig = signame($status & 127) }
    $reply .= "$M $serial x $rc $sig\n";
    $ended = 1;
  }
}

sub request {
  my $line = $_[0];
  if ($line =~ /^r (\d+) \d+ (.*)$/s) { start($1, words($2)) }
  elsif ($line =~ /^k (\d+) \d+ ([A-Z0-9]+)$/) {
    my $pid = $pid_of{$1};
    kill($2, -$pid) or kill($2, $pid) if $pid;
  }
}

put("$M hello $VERSION perl\n");
my $in = "";
for (;;) {
  reap();
  if ($ended || length $reply > 65536) { put($reply); ($reply, $ended) = ("", 0) }
  my $rin = "";
  vec($rin, 0, 1) = 1;
  vec($rin, fileno $wake_r, 1) = 1;
  vec($rin, $_, 1) = 1 for keys %pipe;
  # A SIGCHLD that lands between reap and select runs its (deferred) handler only after select
  # returns, so the self-pipe cannot always wake us: poll every 10 ms while jobs run.
  my $n = select(my $rout = $rin, undef, undef, %job ? 0.01 : undef);
  next if $n <= 0;
  sysread $wake_r, my $junk, 4096 if vec($rout, fileno $wake_r, 1);
  for my $fd (keys %pipe) { drain($pipe{$fd}) if vec($rout, $fd, 1) }
  next unless vec($rout, 0, 1);
  my $got = sysread STDIN, $in, 65536, length $in;
  next if !defined $got && $!{EINTR};
  finish(0) unless $got;
  while ((my $i = index $in, "\n") >= 0) {
    my $line = substr $in, 0, $i + 1, "";
    chop $line;
    request($line);
  }
}
`;
if (PERL_LOOP.includes("'")) throw new Error('PERL_LOOP must not contain a single quote');

/** Which loop runs on the host: perl where it is installed (the default), or always the sh loop. */
export type RemoteLoop = 'auto' | 'sh';

/** The loop's text with this session's marker in it. */
export function remoteProgram(marker: string, loop: RemoteLoop = 'auto'): string {
  if (!/^[A-Za-z0-9]{8,64}$/.test(marker)) throw new Error(`bad session marker ${JSON.stringify(marker)}`);
  return PROGRAM.replace('@MARKER@', marker)
    .replace('@TRY_PERL@', loop === 'auto' ? '1' : '0')
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
  /** a line that is not a frame: login-shell noise before hello, a broken session after it */
  | { type: 'noise'; line: string };

const NL = 0x0a;
const END_OF_BLOCK = Buffer.from('\n.\n');

/**
 * Turns the loop's output, in chunks of any size, into frames. Job output is handed on as it is
 * decoded (a block is never held whole), so a 10 MB stdout costs a few KB of memory here.
 */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);
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
        this.onFrame({ type: 'data', serial, stream, bytes: Buffer.from(buf.subarray(pos, pos + n)) });
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
    this.pending = pos < buf.length ? Buffer.from(buf.subarray(pos)) : Buffer.alloc(0);
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
    if (f[0] === 'hello' && f.length === 3) {
      this.onFrame({ type: 'hello', version: Number(f[1]), runner: f[2] === '-' ? null : (f[2] as string) });
    } else if (f[0] === 'fail') {
      this.onFrame({ type: 'fail', reason: f.slice(1).join(' ') });
    } else if (/^\d+$/.test(f[0] ?? '') && (f[1] === 'o' || f[1] === 'e') && f.length === 2) {
      this.block = { serial: Number(f[0]), stream: f[1] === 'o' ? 'stdout' : 'stderr' };
    } else if (/^\d+$/.test(f[0] ?? '') && (f[1] === 'O' || f[1] === 'E') && f.length === 3 && /^\d+$/.test(f[2] ?? '')) {
      const left = Number(f[2]);
      if (left > 0) this.raw = { serial: Number(f[0]), stream: f[1] === 'O' ? 'stdout' : 'stderr', left };
    } else if (/^\d+$/.test(f[0] ?? '') && f[1] === 'x' && f.length === 4 && /^\d+$/.test(f[2] ?? '')) {
      const status = Number(f[2]);
      const signal = f[3] !== '-' && status > 128 ? `SIG${f[3]}` : null;
      this.onFrame({ type: 'exit', serial: Number(f[0]), status, signal });
    } else {
      this.onFrame({ type: 'noise', line });
    }
  }
}
