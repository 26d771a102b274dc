// Test driver for @cm/slurm until cm-exec wires `--engine slurm`: job records on stdin go to
// runSlurm, its events and every other record go to stdout. Bundled by slurm-build.sh.
import { runMain, str, flag, type CommandIO, type DocoptArgs } from '@cm/cli';
import { readRecords, RecordWriter, type JobRecord } from '@cm/protocol';
import { runSlurm, type SlurmMode } from '@cm/slurm';

const USAGE = `slurm-run: run a job stream through @cm/slurm (test driver; the real command is cm-exec).

Usage:
  slurm-run [--mode M] [--partition P] [--account A] [--qos Q] [--run ID] [--no-arrays] [--cpus N] [--max-output B]

Options:
  --mode M         steps or jobs [default: steps]
  --partition P    Slurm partition
  --account A      Slurm account
  --qos Q          Slurm QOS
  --run ID         run id
  --no-arrays      jobs mode: one sbatch per job
  --cpus N         CPUs per job [default: 1]
  --max-output B   bytes of output kept per event [default: 1048576]
`;

async function run(args: DocoptArgs, io: CommandIO): Promise<number> {
  const writer = new RecordWriter(io.stdout);
  const pending: JobRecord[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let failure: unknown;
  // The reader keeps passing other records through while runSlurm consumes jobs at its own pace.
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
      if (done) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  const code = await runSlurm(
    {
      mode: (str(args, '--mode') ?? 'steps') as SlurmMode,
      partition: str(args, '--partition'),
      account: str(args, '--account'),
      qos: str(args, '--qos'),
      run: str(args, '--run'),
      arrays: !flag(args, '--no-arrays'),
      cpusPerTask: Number(str(args, '--cpus') ?? 1),
      maxOutput: Number(str(args, '--max-output') ?? 1048576),
      env: io.env,
      warn: (m) => io.stderr.write(`slurm-run: ${m}\n`),
    },
    jobs(),
    (ev) => writer.write(ev),
    io.signal,
  );
  await reading;
  await writer.end();
  if (failure) throw failure;
  return code;
}

runMain('slurm-run', USAGE, run);
