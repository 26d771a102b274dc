// What a run tells the person at the terminal, on stderr, whichever engine ran it: a line per
// notable event, the live progress line (TTY only) and the closing summary.
import type { Writable } from 'node:stream';
import type { EventRecord } from '@cm/protocol';
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

/** `\r`-rewritten status line; returns a function that clears it. */
export function startProgress(stats: () => SchedulerStats, err: Writable): () => void {
  const t0 = Date.now();
  const draw = (): void => {
    const s = stats();
    const done = s.ok + s.failed + s.gaveUp + s.skipped;
    const rate = done / Math.max(0.001, (Date.now() - t0) / 1000);
    const left = s.seen - done;
    const eta = rate > 0 && left > 0 ? ` eta ${Math.ceil(left / rate)}s` : '';
    const hosts = s.hosts
      .slice(0, 8)
      .map((h) => `${h.name} ${h.down ? 'down' : `${h.running}/${h.slots}`}`)
      .join(' ');
    err.write(`\r\x1b[Kcm-exec: ${done}/${s.seen} done, ${s.running} running, ${s.failed + s.gaveUp} failed | ${hosts}${s.hosts.length > 8 ? ' ...' : ''}${eta}`);
  };
  const timer = setInterval(draw, 250);
  timer.unref();
  return () => {
    clearInterval(timer);
    err.write('\r\x1b[K');
  };
}

/** "N ok, F failed, ..." when something did not end well; undefined when every job succeeded. */
export function summaryLine(st: SchedulerStats): string | undefined {
  const bad = st.failed + st.gaveUp + st.skipped;
  if (bad === 0) return undefined;
  return `${st.ok} ok, ${st.failed} failed, ${st.gaveUp} gave up, ${st.skipped} skipped (of ${st.seen} jobs)`;
}
