// cm-exec --status: a run's state read from its joblog alone, so looking never disturbs the run (its
// cm-exec, alive or dead, and its hosts): the jobs that started and have no final line yet, where
// and since when, and the counts of those that ended.
import { formatTable, type EventRecord } from '@cm/protocol';
import { isFinal } from './events';
import { readJoblog } from './joblog';

export interface RunStatus {
  /** started (with a spool kept on the host, or by the live cm-exec) and not ended in the joblog */
  running: EventRecord[];
  /** the last final line of every job that ended */
  ended: EventRecord[];
}

export function runStatus(path: string): RunStatus {
  const log = readJoblog(path);
  const running: EventRecord[] = [];
  const ended: EventRecord[] = [];
  for (const ev of log.values()) (isFinal(ev) ? ended : running).push(ev);
  running.sort((a, b) => (a.host ?? '').localeCompare(b.host ?? '') || (a.start ?? '').localeCompare(b.start ?? ''));
  return { running, ended };
}

/** For people: one row per running job (HOST JOB ATTEMPT SINCE), then the counts of the ended ones. */
export function statusText(st: RunStatus, now: Date): string {
  const rows = st.running.map((e) => [e.host ?? '-', e.job ?? '-', String(e.attempt ?? 1), since(e.start, now)]);
  const ok = st.ended.filter((e) => e.event === 'finished' && e.exit === 0).length;
  const failed = st.ended.filter((e) => e.event === 'finished' && e.exit !== 0).length;
  const gaveUp = st.ended.filter((e) => e.event === 'gave-up').length;
  const skipped = st.ended.filter((e) => e.event === 'skipped').length;
  const hosts = new Set(st.running.map((e) => e.host)).size;
  const head = rows.length > 0 ? formatTable(['HOST', 'JOB', 'ATTEMPT', 'RUNNING FOR'], rows) : '';
  return `${head}${st.running.length} running on ${hosts} host${hosts === 1 ? '' : 's'}; ended: ${ok} ok, ${failed} failed, ${gaveUp} gave up, ${skipped} skipped\n`;
}

function since(start: string | undefined, now: Date): string {
  if (start === undefined) return '-';
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(start)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}
