/**
 * How a running job gets stopped early, shared by the transports that spawn a process per job:
 * cancellation (the run's AbortSignal) and the job's own timeout both call `stop` once, with a
 * reason; the transport's `onStop` does the killing its way, and `later` schedules escalations.
 */
export class JobStops {
  reason: string | undefined;
  timedOut = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly onAbort = (): void => this.stop('cancelled');

  constructor(
    private readonly signal: AbortSignal,
    timeout: number | undefined,
    private readonly onStop: (stops: JobStops) => void,
  ) {
    if (timeout !== undefined) {
      this.later(timeout * 1000, () => {
        this.timedOut = true;
        this.stop(`timeout after ${timeout}s`);
      });
    }
    if (signal.aborted) this.onAbort();
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  stop(reason: string): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.onStop(this);
  }

  later(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(fn, ms));
  }

  /** The job ended: no more stops. */
  done(): void {
    for (const t of this.timers) clearTimeout(t);
    this.signal.removeEventListener('abort', this.onAbort);
  }
}
