// GNU parallel's --joblog format, for scripts written against it: a header, then one tab-separated line
// per job that ran: Seq Host Starttime JobRuntime Send Receive Exitval Signal Command.
import { signalNumber } from '@cm/protocol';
import type { Attempt } from './model';

export const PARALLEL_JOBLOG_HEADER = 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand';

/** One line per attempt that ended; Exitval -1 as parallel writes it for a job killed (a timeout). */
export function parallelJoblog(attempts: Array<Attempt & { seq: number; command?: string }>): string {
  const lines = attempts.map((a) => {
    const sig = a.signal ? (signalNumber(a.signal) ?? 0) : 0;
    const exit = a.exit ?? -1;
    const runtime = ((a.end - a.start) / 1000).toFixed(3).padStart(8);
    const command = (a.command ?? a.job).replace(/[\t\n]/g, ' ');
    return [a.seq, a.host, (a.start / 1000).toFixed(3), runtime, 0, 0, exit, sig, command].join('\t');
  });
  return `${[PARALLEL_JOBLOG_HEADER, ...lines].join('\n')}\n`;
}
