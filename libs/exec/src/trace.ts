// CM_TRACE=1: where a run's start-up goes, as lines on stderr of milliseconds (and CPU milliseconds)
// since the process started (performance.now() counts from there), so a slow start can be taken apart
// without a profiler; CM_TRACE=2 adds a line per request, with each slot's turnaround (from a job's x
// frame to the next request on its lane), at a cost per job. Off, a call costs one boolean test, and
// node:perf_hooks is not loaded (node's global performance loads it when first used).
import type { performance as nodePerformance } from 'node:perf_hooks';

const level = Number(process.env.CM_TRACE) || 0;
export const tracing = level > 0;
/** CM_TRACE=2: a line per request too */
export const tracingJobs = level > 1;

let first = true;

/** One line `cm-exec +<ms> (cpu <ms>) <what>` on stderr when CM_TRACE is set. */
export function trace(what: string): void {
  if (!tracing) return;
  if (first) {
    first = false;
    process.once('exit', () => trace('exit'));
    // node's own start-up, before any of cm's code ran
    const t = (performance as unknown as typeof nodePerformance).nodeTiming;
    process.stderr.write(`cm-exec +${t.bootstrapComplete.toFixed(1)} node bootstrapped (main script at +${t.environment.toFixed(1)} environment)\n`);
  }
  // CPU beside the wall: on a loaded machine the wall clock says more about the neighbours
  const cpu = process.cpuUsage();
  process.stderr.write(`cm-exec +${performance.now().toFixed(1)} (cpu ${((cpu.user + cpu.system) / 1000).toFixed(1)}) ${what}\n`);
}
