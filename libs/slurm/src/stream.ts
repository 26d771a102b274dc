// The whole of `cm-exec --engine slurm`: job records from stdin go to runSlurm, its events and every
// other record go to stdout in the order read, so the command only has to call this.
import type { Readable, Writable } from 'node:stream';
import { readRecords, RecordWriter, type JobRecord } from '@cm/protocol';
import type { SlurmOptions } from './options';
import { runSlurm } from './run';
import { preflight } from './proc';

export interface StreamIO {
  stdin: Readable;
  stdout: Writable;
  signal: AbortSignal;
}

export async function execSlurm(opts: SlurmOptions, io: StreamIO): Promise<number> {
  // Exit 4 before a single record is read or passed on: a missing Slurm writes nothing to stdout.
  await preflight(opts.env ?? process.env);
  const writer = new RecordWriter(io.stdout);
  const pending: JobRecord[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let failure: unknown;
  // The reader keeps passing other records through while the engine takes jobs at its own pace;
  // stdin is never read to the end first, so a plan streams into Slurm as it is produced.
  const reading = (async () => {
    try {
      for await (const { record, raw } of readRecords(io.stdin)) {
        if (record.kind === 'job') pending.push(record as JobRecord);
        else await writer.writeLine(raw);
        wake?.();
      }
    } catch (err) {
      failure = err;
    } finally {
      done = true;
      wake?.();
    }
  })();
  async function* jobs(): AsyncGenerator<JobRecord> {
    for (;;) {
      if (pending.length > 0) {
        yield pending.shift()!;
        continue;
      }
      // A malformed line stops intake; jobs already handed to Slurm still get their final events.
      if (done) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  const code = await runSlurm(opts, jobs(), (ev) => writer.write(ev), io.signal);
  await reading;
  await writer.end();
  if (failure) throw failure;
  return code;
}
