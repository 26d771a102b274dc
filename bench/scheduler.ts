// The scheduler alone (libs/exec Scheduler, no transport): CPU per job as the number of hosts and of
// jobs grows. A job's cost must not grow with either (issue 22). Each job that launches is ended at
// once, oldest first, and a new one is added, so about `backlog` jobs wait all along, as under
// cm-exec's backpressure. Run through bench/scheduler.sh.
import { Scheduler, type Action } from '../libs/exec/src/scheduler';
import type { HostRecord, JobRecord } from '../libs/protocol/src/index';
import type { JobOutcome } from '../libs/exec/src/transport/types';

const done: JobOutcome = {
  ran: true, exit: 0, signal: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), stdoutBytes: 0, stderrBytes: 0, truncated: false, start: new Date(0), end: new Date(1),
};

/**
 * microseconds of CPU per job for `jobs` jobs on `hosts` hosts x `slots`, about `backlog` of them
 * waiting; with `pin`, every job may run only there (the first 4 hosts have the tag `a`)
 */
function perJob(hosts: number, slots: number, jobs: number, backlog: number, pin?: string): number {
  const inventory: HostRecord[] = Array.from({ length: hosts }, (_, i) => ({ kind: 'host', v: 1, name: `h${i}`, address: `h${i}`, slots, tags: i < 4 ? ['a'] : [] }));
  const s = new Scheduler({ hosts: inventory, run: 'bench' });
  const running: string[] = [];
  let head = 0;
  let next = 0;
  const take = (acts: Action[]): void => {
    for (const a of acts) if (a.type === 'launch') running.push(a.job.id);
  };
  const add = (): void => take(s.add({ kind: 'job', v: 1, id: `j${next++}`, task: 'j', command: 'true', deps: [], ...(pin ? { host: pin } : {}) } as JobRecord));
  const t0 = process.cpuUsage();
  while (next < jobs && next < backlog + hosts * slots) add();
  while (head < running.length) {
    take(s.done(running[head++]!, done));
    if (next < jobs) add();
    // the launched ids are dropped as they are ended, as the engine does
    if (head > 65536) {
      running.splice(0, head);
      head = 0;
    }
  }
  take(s.endInput());
  const c = process.cpuUsage(t0);
  if (s.stats().ok !== jobs) throw new Error(`bench: ${s.stats().ok} of ${jobs} jobs ended ok`);
  return (c.user + c.system) / jobs;
}

const [jobs, hostsList, jobsList, backlogList] = [
  Number(process.argv[2] ?? 200000),
  (process.argv[3] ?? '16,256,4096').split(',').map(Number),
  (process.argv[4] ?? '20000,200000,1000000').split(',').map(Number),
  (process.argv[5] ?? '1024,32768').split(',').map(Number),
];
perJob(16, 4, 20000, 1024); // warm-up: the JIT, not the first row, pays for compiling
// each kind of row against its first: a job must cost the same as the hosts, the jobs or the jobs
// waiting behind pinned ones grow
const kinds: Array<Array<[string, number]>> = [
  hostsList.map((h) => [`${h} hosts x 4 slots, ${jobs} jobs`, perJob(h, 4, jobs, 1024)]),
  jobsList.map((n) => [`16 hosts x 4 slots, ${n} jobs`, perJob(16, 4, n, 1024)]),
  backlogList.map((b) => [`16 x 4, ${jobs} jobs on @a (4 hosts), ${b} waiting`, perJob(16, 4, jobs, b, '@a')]),
];
console.log(`${'scheduler alone'.padEnd(52)} ${'us/job'.padStart(8)}  x first of its kind`);
for (const rows of kinds) {
  for (const [name, us] of rows) console.log(`${name.padEnd(52)} ${us.toFixed(2).padStart(8)}  ${(us / rows[0]![1]).toFixed(2)}x`);
}
