// What a run tells the person at the terminal, whichever engine ran it: on stderr a line per notable
// event, the live progress line (TTY only), the failed jobs and the closing summary; on a terminal's
// stdout, each job's output tagged with job and host instead of records.
import type { Writable } from 'node:stream';
import { shQuote, type EventRecord, type RecordWriter } from '@cm/protocol';
import { isFinal } from './events';
import type { SchedulerStats } from './scheduler';

/** The line people read on stderr for an event: host-down always, the rest with -v. */
export function describeEvent(ev: EventRecord, say: (t: string) => void, verbose: boolean): void {
  switch (ev.event) {
    case 'host-down':
      say(`host ${ev.host} is down: ${ev.reason}`);
      break;
    case 'finished':
      if (verbose) say(`${ev.job} on ${ev.host}: exit ${ev.exit} in ${ev.duration}s${ev.replayed ? ' (replayed)' : ''}`);
      break;
    case 'retry':
    case 'gave-up':
    case 'skipped':
      say(`${ev.job}: ${ev.event}${ev.host ? ` on ${ev.host}` : ''}: ${ev.reason ?? ''}`);
      break;
    default:
      break;
  }
}

/**
 * The one owner of stderr's progress line: every message clears it, is written whole, and the line
 * is drawn again, so nothing ever shares a line with it.
 */
export class StatusLine {
  private shown = false;
  private timer: NodeJS.Timeout | undefined;
  private render: (() => string) | undefined;

  constructor(private readonly err: Writable) {}

  /** Redraws `render()` every `everyMs` until stop(). */
  start(render: () => string, everyMs = 250): void {
    this.render = render;
    this.timer = setInterval(() => this.draw(), everyMs);
    this.timer.unref();
  }

  /** A whole line on stderr. */
  line(text: string): void {
    this.clear();
    this.err.write(`${text}\n`);
    this.draw();
  }

  /** Before anything reaches the same terminal another way (stdout): the progress line goes first. */
  clear(): void {
    if (!this.shown) return;
    this.err.write('\r\x1b[K');
    this.shown = false;
  }

  private draw(): void {
    if (!this.render) return;
    this.err.write(`\r\x1b[K${this.render()}`);
    this.shown = true;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.render = undefined;
    this.clear();
  }
}

/** The progress line's text: done, running, failed, hosts, and an estimate of the time left. */
export function progressText(s: SchedulerStats, elapsedMs: number): string {
  const done = s.ok + s.failed + s.gaveUp + s.skipped;
  const rate = done / Math.max(0.001, elapsedMs / 1000);
  const left = s.seen - done;
  const eta = rate > 0 && left > 0 ? ` eta ${Math.ceil(left / rate)}s` : '';
  const hosts = s.hosts
    .slice(0, 8)
    .map((h) => `${h.name} ${h.down ? 'down' : `${h.running}/${h.slots}`}`)
    .join(' ');
  return `cm-exec: ${done}/${s.seen} done, ${s.running} running, ${s.failed + s.gaveUp} failed | ${hosts}${s.hosts.length > 8 ? ' ...' : ''}${eta}`;
}

/** "N ok, F failed, ..." when something did not end well; undefined when every job succeeded. */
export function summaryLine(st: SchedulerStats): string | undefined {
  const bad = st.failed + st.gaveUp + st.skipped;
  if (bad === 0) return undefined;
  return countsLine(st);
}

function countsLine(st: SchedulerStats): string {
  return `${st.ok} ok, ${st.failed} failed, ${st.gaveUp} gave up, ${st.skipped} skipped (of ${st.seen} jobs)`;
}

/** `bench.3 th1<TAB>line` for each line of a job's output, as `parallel --tag` prints them. */
export function taggedLines(ev: EventRecord, text: string | undefined): string[] {
  if (!text) return [];
  const tag = `${ev.job}${ev.host ? ` ${ev.host}` : ''}`;
  return text.replace(/\n$/, '').split('\n').map((l) => `${tag}\t${l}`);
}

/** The last `n` non-empty lines of a job's stderr. */
export function lastLines(text: string | undefined, n = 3): string[] {
  return (text ?? '')
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.trim() !== '')
    .slice(-n);
}

/** One failed job for people: where, why, and the end of its stderr. */
export function describeFailure(ev: EventRecord): string[] {
  const where = ev.host ? ` on ${ev.host}` : '';
  const why = ev.event === 'finished' ? `exit ${ev.exit}${ev.signal ? ` (${ev.signal})` : ''}` : `gave up: ${ev.reason ?? ''}`;
  const head = ev.event === 'finished' ? `${ev.job} failed${where}: ${why}` : `${ev.job}${where}: ${why}`;
  return [head, ...lastLines(ev.stderr).map((l) => `  | ${l}`)];
}

/** The command line that finishes an interrupted run: the same options, with --resume. */
export function resumeCommand(words: string[]): string {
  const kept = words.filter((w) => w !== '--resume' && w !== '--retry-failed');
  const quote = (w: string): string => (/^[\w@%+=:,./-]+$/.test(w) ? w : shQuote(w));
  return ['cm-exec', ...kept, '--resume'].map(quote).join(' ');
}

interface HostTally {
  ok: number;
  failed: number;
  busy: number;
  down?: string;
}

export interface RunReportOptions {
  writer: RecordWriter;
  stderr: Writable;
  /** NDJSON on stdout (a pipe, or --json); else each job's output, tagged */
  records: boolean;
  /** stderr is a terminal: the progress line and the closing summary */
  tty: boolean;
  /** stdout is that terminal too: the progress line is cleared before anything goes to stdout */
  sameTerminal: boolean;
  quiet?: boolean;
  verbose?: boolean;
  joblog?: string;
  /** the command's words after `cm-exec`, for the resume hint after an interruption */
  commandLine?: string[];
  stats: () => SchedulerStats;
}

/** At most this many failed jobs are described at the end; the events hold every one. */
const FAILURES_SHOWN = 20;

/** At most this many of the jobs a stop killed are named. */
const KILLED_SHOWN = 5;

/** The person's view of a run, fed every event and pass-through record by the engine. */
export class RunReport {
  private readonly status: StatusLine;
  private readonly t0 = Date.now();
  private readonly hosts = new Map<string, HostTally>();
  /** the first FAILURES_SHOWN failed jobs' events, and how many failed: a long run holds no more */
  private readonly failures: EventRecord[] = [];
  private failed = 0;
  private readonly stopReasons = new Set(['halted']);
  /** jobs the stop killed while they ran (the first KILLED_SHOWN of them, and their number), and those it never started */
  private readonly killed: EventRecord[] = [];
  private killedCount = 0;
  private notStarted = 0;
  private stopReason: string | undefined;

  constructor(private readonly o: RunReportOptions) {
    this.status = new StatusLine(o.stderr);
  }

  /** A line of cm-exec's own on stderr (not with -q). */
  readonly say = (text: string): void => {
    if (!this.o.quiet) this.status.line(`cm-exec: ${text}`);
  };

  startProgress(): void {
    if (this.o.tty && !this.o.quiet) this.status.start(() => progressText(this.o.stats(), Date.now() - this.t0));
  }

  endProgress(): void {
    this.status.stop();
  }

  /** The run is stopping: jobs given up with this reason were stopped, not failed. */
  stopping(reason: string): void {
    this.stopReason ??= reason;
    this.stopReasons.add(reason);
  }

  /** An event: a record on stdout, or on a terminal the job's output; and what people should know. */
  event(ev: EventRecord): Promise<void> | undefined {
    if (this.o.verbose || (!this.o.quiet && ev.event === 'host-down')) describeEvent(ev, this.say, this.o.verbose === true);
    this.tally(ev);
    if (this.o.records) {
      if (this.o.sameTerminal) this.status.clear();
      return this.o.writer.write(ev);
    }
    if (!isFinal(ev) || ev.replayed) return undefined;
    for (const l of taggedLines(ev, ev.stderr)) this.status.line(l);
    if (ev.truncated) this.status.line(`${ev.job}${ev.host ? ` ${ev.host}` : ''}\t... (output cut at --max-output; all of it in ${ev.log ?? 'the log folder'})`);
    if (this.o.sameTerminal) this.status.clear();
    let wait: Promise<void> | undefined;
    for (const l of taggedLines(ev, ev.stdout)) wait = this.o.writer.writeLine(l) ?? wait;
    return wait;
  }

  /** A record that is not a job: passed on in a pipe; people on a terminal have no use for it. */
  passThrough(raw: string): Promise<void> | undefined {
    if (!this.o.records) return undefined;
    if (this.o.sameTerminal) this.status.clear();
    return this.o.writer.writeLine(raw);
  }

  private tally(ev: EventRecord): void {
    if (ev.event === 'host-down' && ev.host) {
      this.hostOf(ev.host).down = ev.reason ?? 'down';
      return;
    }
    if (!isFinal(ev) || ev.replayed) return;
    if (ev.event === 'gave-up' && this.stopReasons.has(ev.reason ?? '')) {
      if (!ev.host) this.notStarted += 1;
      else if (++this.killedCount <= KILLED_SHOWN) this.killed.push(ev);
      return;
    }
    const ok = ev.event === 'finished' && ev.exit === 0;
    if (ev.host && ev.event !== 'skipped') {
      const h = this.hostOf(ev.host);
      if (ok) h.ok += 1;
      else h.failed += 1;
      h.busy += ev.duration ?? 0;
    }
    if (!ok && ev.event !== 'skipped' && ++this.failed <= FAILURES_SHOWN) this.failures.push(ev);
  }

  private hostOf(name: string): HostTally {
    let h = this.hosts.get(name);
    if (!h) {
      h = { ok: 0, failed: 0, busy: 0 };
      this.hosts.set(name, h);
    }
    return h;
  }

  /**
   * The end of the run on stderr: the failed jobs (always, unless -q); on a terminal the counts, the
   * wall time and a line per host, else the counts only when something failed; after a signal, what
   * was killed and the command that resumes.
   */
  finish(end: { signalled?: boolean } = {}): void {
    this.endProgress();
    if (this.o.quiet) return;
    const st = this.o.stats();
    for (const ev of this.failures) for (const l of describeFailure(ev)) this.say(l);
    if (this.failed > FAILURES_SHOWN) this.say(`... and ${this.failed - FAILURES_SHOWN} more failed jobs (their final events say why)`);
    if (this.o.tty) {
      this.say(`${countsLine(st)} in ${((Date.now() - this.t0) / 1000).toFixed(1)}s`);
      for (const [name, h] of [...this.hosts].sort(([a], [b]) => a.localeCompare(b))) {
        this.say(`  ${name}: ${h.ok} ok, ${h.failed} failed, busy ${h.busy.toFixed(1)}s${h.down ? `; down: ${h.down}` : ''}`);
      }
    } else {
      const line = summaryLine(st);
      if (line !== undefined) this.say(line);
    }
    if (end.signalled) this.interrupted();
  }

  private interrupted(): void {
    const killed = this.killedCount;
    const shown = this.killed.map((e) => `${e.job} on ${e.host}`);
    const list = shown.length > 0 ? ` (${shown.join(', ')}${killed > shown.length ? ', ...' : ''})` : '';
    this.say(`${this.stopReason ?? 'interrupted'}: killed ${killed} running job${killed === 1 ? '' : 's'}${list}; ${this.notStarted} not started`);
    if (this.o.joblog) {
      this.say(`to run what is left, give the same job records to: ${resumeCommand(this.o.commandLine ?? ['--joblog', this.o.joblog])}`);
    } else {
      this.say('nothing was logged: --joblog FILE makes a run resumable (then --resume finishes what is left)');
    }
  }
}
