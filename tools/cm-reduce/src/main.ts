import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { CmError, ExitCode, readRecordBatches, RecordWriter, type EventRecord, type FetchRecord, type ReduceRecord, type ValueRecord } from '@cm/protocol';
import { EXIT_CODES, flag, str, wantsRecords, type CommandIO, type DocoptArgs } from '@cm/cli';
import { parseOps, ReduceEngine, ValueError, valuesTable } from '@cm/reduce';

export const USAGE = `
cm-reduce: fold job results into values as they arrive.

Reads the NDJSON stream of cm-exec (and cm-fetch) on stdin. A job's value is its trimmed stdout
(from its \`finished\` event, exit 0) or, when the job declared a \`result\` file, the content of that
file as fetched by cm-fetch (the \`fetch\` record's \`result\` path). Each \`reduce\` record (from
cm-plan, one per \`+\`) is folded as soon as each of its inputs arrives (inputs are jobs, other
reduces, or whole sweeps), and a \`value\` record is printed when its last input is in.

In a pipe, reduce records are consumed and every other record (events, fetch records, jobs,
values) passes through unchanged, so the stream can be tee'd or read further down the pipe.
On a terminal (and with --table), the stream ends here: the values are shown as a table at the
end of the input (columns ID, one per --by parameter, one per op; HAVE/WANT and MISSING when
inputs are missing), and nothing else is printed on stdout.

Usage:
  cm-reduce [options] [<file>]
  cm-reduce -h | --help

Options:
  --op OPS         Use OPS (an op, or a comma list such as mean,p90: one value per op) for every
                   reduce record instead of its own op. When the input holds no reduce record at
                   all, reduce every job value into one value with id "all".
  --by PARAMS      Reduce per distinct combination of the values of these parameters (a comma list
                   such as size,rep; a reduce record's own \`by\` from \`+bench by size\` otherwise):
                   each value carries \`group\`, e.g. {"size": "4000"}, and keeps the reduce's id.
                   A job's parameters come from \`params\` on its finished event, or on the fetch
                   record for a fetched result; a job without one of them is an error. With no
                   reduce record at all, groups every job value into id "all" (op sum unless --op).
  --partial        Print a partial value (partial: true, with have/want) each time a value changes
                   (per group with --by; want is known only when the group's value is final).
  --allow-missing  Reduce what there is when inputs failed (exit != 0, gave-up, skipped) or never
                   came, and list them in "missing"; without it such a reduction fails. With --by a
                   failed job with params fails (or is missing from) its group only; one that never
                   came could be in any group, so it fails them all.
  --json           Print records even on a terminal.
  --table          Print the table even in a pipe.

Common options:
  -h --help        Show this text.

Operations:
  sum        the + of the plan language: integers exactly (beyond 2^53 too), decimals exactly,
             JSON arrays concatenate, JSON objects add per key
  min, max   numbers;  mean  numbers (rounded to 18 decimals);  count  inputs
  stddev     the sample standard deviation (n - 1 in the denominator, numpy's std(ddof=1));
             null for fewer than 2 numbers
  median     the same as p50
  pNN        the NN-th percentile, 0 < NN < 100 (p50, p90, p99, p99.9): linear interpolation
             between closest ranks, numpy's default: with the n numbers sorted x[0..n-1] and
             h = (n - 1) * NN / 100, x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h])
  concat     one line per input, in plan order
  histogram  {value: count}
  cmd:SHELL  runs SHELL with every value on stdin, one per line in plan order; its trimmed
             stdout is the value (no partial values). Always a single op: SHELL may hold commas.
  A value that is not a number where one is needed ("12 ms", "abc") fails the reduction with an
  error naming the job; it never becomes NaN. Integers beyond 2^53 are printed as decimal strings.
  Median, stddev and pNN are exact in decimals until the last rounding to a double.
  Memory: sum, min, max, mean, count and stddev keep running values, so a million-run sweep costs
  no memory; median and pNN keep every number, concat and cmd every value, histogram one counter
  per distinct value (per group with --by).

Reduce records may come before or after the values they reduce; values nobody asked for yet are
kept (up to 100,000) for a reduce record that comes later.

${EXIT_CODES}
  (1 here: a reduction failed, had junk, or missed inputs without --allow-missing)

Examples:
  cm-plan -d a='echo 1' -d b='echo 2' -d c='echo 3' 'a + b + c' | cm-exec | cm-reduce    # the sum: 6
  cm-plan -d 'b(size=[10,20],rep=1..5)=echo $((size*rep))' +b | cm-exec | cm-reduce --by size --op mean,p90
                      # per size: mean 30 and p90 46 for size 10, mean 60 and p90 92 for size 20
  cm-plan -f examples/sweep.cm | cm-exec | cm-reduce --partial | grep '"kind":"value"'
                      # the plan's sum (+bench + study) as it grows (partial: true), then 10520
  cm-plan -f examples/sweep.cm | cm-exec | cm-reduce --op min,median,max    # 2, 94 and 200
  cm-plan -f examples/sweep.cm | cm-exec | cm-reduce --op 'cmd:sort -n | tail -1'    # the largest: 200
`;

export interface Args {
  file?: string;
  op?: string;
  by?: string[];
  partial: boolean;
  allowMissing: boolean;
  json: boolean;
  table: boolean;
}

export function toArgs(a: DocoptArgs): Args {
  const op = str(a, '--op');
  if (op !== undefined) {
    try {
      parseOps(op);
    } catch (err) {
      if (err instanceof ValueError) throw new CmError(`--op: ${err.message}`, ExitCode.USAGE);
      throw err;
    }
  }
  const byText = str(a, '--by');
  const by = byText?.split(',').map((p) => p.trim());
  if (by?.some((p) => p === '')) throw new CmError(`--by ${JSON.stringify(byText)}: an empty parameter name`, ExitCode.USAGE);
  if (by && new Set(by).size !== by.length) throw new CmError(`--by ${JSON.stringify(byText)} names a parameter twice`, ExitCode.USAGE);
  if (flag(a, '--json') && flag(a, '--table')) throw new CmError('--json and --table exclude each other', ExitCode.USAGE);
  const file = str(a, '<file>');
  return {
    file: file === '-' ? undefined : file,
    op,
    by,
    partial: flag(a, '--partial'),
    allowMissing: flag(a, '--allow-missing'),
    json: flag(a, '--json'),
    table: flag(a, '--table'),
  };
}

/** Result files are read whole; a runaway one is an error rather than an out-of-memory. */
const MAX_RESULT_BYTES = 64 * 1024 * 1024;

async function readResult(file: string): Promise<string> {
  const st = await stat(file);
  if (st.size > MAX_RESULT_BYTES) throw new Error(`larger than ${MAX_RESULT_BYTES} bytes`);
  return readFile(file, 'utf8');
}

function runCmd(signal: AbortSignal, cwd: string, env: NodeJS.ProcessEnv) {
  return (command: string, input: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['pipe', 'pipe', 'inherit'], signal });
      const chunks: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => chunks.push(c));
      child.stdin.on('error', () => undefined); // a reducer may stop reading early (head -1)
      child.on('error', (err) => reject(new ValueError(`cmd: ${err.message}`)));
      child.on('close', (code, sig) => {
        if (code === 0) resolve(Buffer.concat(chunks).toString('utf8'));
        else reject(new ValueError(`cmd: ${JSON.stringify(command)} ${sig ? `killed by ${sig}` : `exited with ${code}`}`));
      });
      child.stdin.end(input);
    });
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  // records of one turn leave in one write (cm-reduce draws no progress line)
  const writer = new RecordWriter(io.stdout, { batch: true });
  const source = args.file ?? 'stdin';
  const input = args.file ? createReadStream(path.resolve(io.cwd, args.file)) : io.stdin;
  // For people, the values become a table at the end; partial ones would only be overwritten.
  const records = wantsRecords(io, { json: args.json, table: args.table });
  const shown: ValueRecord[] = [];
  const engine = new ReduceEngine({
    op: args.op,
    by: args.by,
    partial: args.partial && records,
    allowMissing: args.allowMissing,
    emit: (rec) => (records ? writer.write(rec) : void shown.push(rec)),
    readResult: (p) => readResult(path.resolve(io.cwd, p)),
    runCmd: runCmd(io.signal, io.cwd, io.env),
    warn: (m) => io.stderr.write(`cm-reduce: ${m}\n`),
  });
  let stopped = false;
  writer.onClose(() => {
    stopped = true;
    input.destroy();
  });
  try {
    reading: for await (const batch of readRecordBatches(input, { source })) {
      for (const { record, raw: line, line: n } of batch) {
        if (stopped || io.signal.aborted) break reading;
        try {
          if (record.kind === 'reduce') {
            await engine.onReduce(record as ReduceRecord);
            continue;
          }
          // Pass on first: a value computed from this record follows it in the stream.
          const w = records ? writer.writeLine(line) : undefined;
          if (w) await w;
          if (record.kind === 'event') await engine.onEvent(record as EventRecord);
          else if (record.kind === 'fetch') await engine.onFetch(record as FetchRecord);
        } catch (err) {
          if (err instanceof ValueError) throw new CmError(`${source}:${n}: ${err.message}`, ExitCode.INPUT);
          throw err;
        }
      }
    }
  } catch (err) {
    if (stopped) return ExitCode.OK;
    throw err;
  }
  if (stopped) return ExitCode.OK;
  if (io.signal.aborted) throw io.signal.reason;
  const code = await engine.end();
  if (!records && shown.length > 0) await writer.writeLine(valuesTable(shown).trimEnd());
  await writer.end();
  return code;
}
