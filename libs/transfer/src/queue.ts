// The fetch queue of cm-fetch: at most `transfers` transfers at once and `perHost` per host; jobs
// that queue up for a host while its transfers are busy leave together, as one batch.
import type { HostRecord } from '@cm/protocol';
import type { Connections } from './connections';
import { fetchBatch, type FetchJob, type FetchOptions, type FetchOutcome } from './fetch';
import { removeWorkdirs } from './remove';

interface Waiting {
  job: FetchJob;
  resolve: (o: FetchOutcome) => void;
}

export class FetchQueue {
  private running = 0;
  private readonly perHostRunning = new Map<string, number>();
  private readonly waiting = new Map<string, { host: HostRecord; jobs: Waiting[] }>();

  constructor(
    private readonly conns: Connections,
    private readonly opts: FetchOptions,
    private readonly limits: { transfers: number; perHost: number; maxBatch: number },
  ) {}

  add(job: FetchJob): Promise<FetchOutcome> {
    return new Promise((resolve) => {
      let q = this.waiting.get(job.host.name);
      if (!q) {
        q = { host: job.host, jobs: [] };
        this.waiting.set(job.host.name, q);
      }
      q.jobs.push({ job, resolve });
      this.pump();
    });
  }

  private pump(): void {
    for (const [name, q] of this.waiting) {
      if (this.running >= this.limits.transfers) return;
      // a host's server sends one batch at a time: the jobs that finish meanwhile make the next one
      const perHost = this.opts.servers && !this.opts.servers.lacks(q.host) ? 1 : this.limits.perHost;
      if ((this.perHostRunning.get(name) ?? 0) >= perHost) continue;
      const batch = q.jobs.splice(0, this.limits.maxBatch);
      if (q.jobs.length === 0) this.waiting.delete(name);
      // Round robin: a host that just got a batch goes to the back of the line.
      else {
        this.waiting.delete(name);
        this.waiting.set(name, q);
      }
      this.running += 1;
      this.perHostRunning.set(name, (this.perHostRunning.get(name) ?? 0) + 1);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.running -= 1;
        this.perHostRunning.set(name, (this.perHostRunning.get(name) ?? 1) - 1);
        this.pump();
      };
      const sent = performance.now();
      this.opts.trace?.(`${name}: a batch of ${batch.length} (${q.jobs.length} more waiting)`);
      fetchBatch(this.conns, q.host, batch.map((w) => w.job), this.opts)
        .then(
          async (outs) => {
            this.opts.trace?.(`${name}: ${batch.length} home in ${(performance.now() - sent).toFixed(0)} ms`);
            // the host is free for the next batch once this one's files are home: its request
            // follows the removal below on the server's stream without waiting for its reply
            release();
            // each record leaves once its job's directory is gone: a fetch record means done with the host
            await removeWorkdirs(this.conns, q.host, batch.map((w, i) => ({ job: w.job, out: outs[i] as FetchOutcome })), this.opts.warn, this.opts.servers);
            batch.forEach((w, i) => w.resolve(outs[i] as FetchOutcome));
          },
          (err: Error) => batch.forEach((w) => w.resolve({ ok: false, files: [], attempt: 1, error: err.message })),
        )
        .finally(release);
      this.pump();
      return;
    }
  }
}
