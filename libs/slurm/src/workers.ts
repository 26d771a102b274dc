// Workers mode: one allocation, and on each allocated node ONE long-lived srun step running cm's
// persistent job loop (@cm/exec's remote-loop, the same program the ssh engine's persistent transport
// runs over ssh). cm places jobs on node slots itself and sends them down the step's stdin, so a tiny
// job costs a few forks on the node instead of a Slurm step (srun, slurmstepd, a controller RPC).
import { join } from 'node:path';
import type { HostRecord, JobRecord } from '@cm/protocol';
// Deep import until @cm/exec's index exports the persistent transport (requested in the report).
import { PersistentTransport } from '@cm/exec';
import { TRANSPORT } from './common';
import { StepsEngine, type Allocation } from './steps';

export class WorkersEngine extends StepsEngine {
  private transport?: PersistentTransport;
  private hosts: HostRecord[] = [];
  private busy = new Map<string, number>();

  protected override capacity(a: Allocation): number {
    this.prepare(a);
    return this.hosts.reduce((n, h) => n + h.slots, 0);
  }

  private prepare(a: Allocation): void {
    if (this.transport) return;
    const cpt = this.opts.cpusPerTask ?? 1;
    this.hosts = a.nodes.map((n) => ({
      kind: 'host',
      v: 1,
      name: n.name,
      address: n.name,
      tags: [],
      slots: Math.max(1, Math.floor(n.cpus / cpt)),
    }));
    const cpus = new Map(a.nodes.map((n) => [n.name, n.cpus]));
    const home = this.env.HOME ?? '/';
    this.transport = new PersistentTransport({
      killGrace: 2,
      helloTimeout: 60,
      // The loop's cwd is where workdirs are made, as the login directory is over ssh.
      sessionCommand: (host, remote) => ({
        file: 'srun',
        args: [
          `--jobid=${a.id}`,
          '--exclusive',
          '--ntasks=1',
          '--nodes=1',
          `--nodelist=${host.name}`,
          `--cpus-per-task=${cpus.get(host.name) ?? 1}`,
          `--job-name=cm-worker-${host.name}`,
          `--chdir=${home}`,
          '--quiet',
          'sh',
          '-c',
          remote,
        ],
      }),
    });
  }

  protected override async release(): Promise<void> {
    const t = this.transport;
    this.transport = undefined;
    await t?.close();
    await super.release();
  }

  protected override start(a: Allocation, job: JobRecord): void {
    this.prepare(a);
    const host = this.hosts
      .filter((h) => (this.busy.get(h.name) ?? 0) < h.slots)
      .sort((x, y) => (this.busy.get(x.name) ?? 0) - (this.busy.get(y.name) ?? 0))[0];
    if (!host || !this.transport) {
      // capacity() keeps running jobs under the slots, so this is only reachable after release.
      this.ready.unshift(job);
      return;
    }
    const attempt = (this.attempts.get(job.id) ?? 0) + 1;
    this.attempts.set(job.id, attempt);
    const running = (this.busy.get(host.name) ?? 0) + 1;
    this.busy.set(host.name, running);
    const abort = new AbortController();
    const entry = { job, stop: () => abort.abort(), timedOut: false };
    this.running.set(job.id, entry);
    const startedAt = new Date();
    const started = this.emit({
      kind: 'event',
      v: 1,
      event: 'started',
      job: job.id,
      task: job.task,
      run: this.run,
      host: host.name,
      attempt,
      transport: TRANSPORT,
      running,
      start: startedAt.toISOString(),
    });
    const transport = this.transport;
    void (async () => {
      await started;
      const outcome = await transport.run(
        host,
        {
          id: job.id,
          command: job.command,
          env: { ...job.env, CM_JOB: job.id, CM_RUN: this.run, CM_TASK: job.task },
          workdir: `.cm/runs/${this.run}/${job.id}`,
          timeout: job.timeout,
          maxOutput: this.opts.maxOutput ?? 1024 * 1024,
          logBase: join(this.logDir, `${job.id}.${attempt}`),
        },
        abort.signal,
      );
      this.busy.set(host.name, (this.busy.get(host.name) ?? 1) - 1);
      try {
        if (outcome.timedOut) {
          await this.finish(job, 'failed', 'gave-up', { reason: `timeout after ${job.timeout}s`, host: host.name, attempt });
        } else if (this.stopped || abort.signal.aborted) {
          await this.finish(job, 'failed', 'gave-up', { reason: 'interrupted', host: host.name, attempt });
        } else if (!outcome.ran) {
          const why = `worker on ${host.name}: ${outcome.reason ?? 'did not run'}`;
          if (attempt <= (job.retries ?? 0)) {
            await this.emit({ kind: 'event', v: 1, event: 'retry', job: job.id, task: job.task, run: this.run, attempt, host: host.name, reason: why });
            this.ready.unshift(job);
          } else {
            await this.finish(job, 'failed', 'gave-up', { reason: why, host: host.name, attempt });
          }
        } else {
          await this.finish(job, outcome.exit === 0 ? 'ok' : 'failed', 'finished', {
            host: host.name,
            attempt,
            transport: TRANSPORT,
            exit: outcome.exit,
            signal: outcome.signal,
            start: outcome.start.toISOString(),
            end: outcome.end.toISOString(),
            duration: (outcome.end.getTime() - outcome.start.getTime()) / 1000,
            stdout: outcome.stdout.toString('utf8'),
            stdout_bytes: outcome.stdoutBytes,
            stderr: outcome.stderr.toString('utf8'),
            stderr_bytes: outcome.stderrBytes,
            truncated: outcome.truncated,
            ...(outcome.log ? { log: outcome.log } : {}),
          });
        }
      } finally {
        this.running.delete(job.id);
        void this.pump();
        this.wake();
      }
    })();
  }
}
