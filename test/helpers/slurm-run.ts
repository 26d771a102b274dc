// Test driver for @cm/slurm until cm-exec wires `--engine slurm`: job records on stdin go to
// runSlurm, its events and every other record go to stdout. Bundled by slurm-build.sh.
import { runMain, str, flag, type CommandIO, type DocoptArgs } from '@cm/cli';
import { execSlurm, type SlurmMode } from '@cm/slurm';

const USAGE = `slurm-run: run a job stream through @cm/slurm (test driver; the real command is cm-exec).

Usage:
  slurm-run [--mode M] [--partition P] [--account A] [--qos Q] [--run ID] [--no-arrays] [--cpus N] [--max-output B]

Options:
  --mode M         steps, workers or jobs [default: steps]
  --partition P    Slurm partition
  --account A      Slurm account
  --qos Q          Slurm QOS
  --run ID         run id
  --no-arrays      jobs mode: one sbatch per job
  --cpus N         CPUs per job [default: 1]
  --max-output B   bytes of output kept per event [default: 1048576]
`;

async function run(args: DocoptArgs, io: CommandIO): Promise<number> {
  return execSlurm(
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
    io,
  );
}

runMain('slurm-run', USAGE, run);
