import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { CmError, ExitCode, readRecords, RecordWriter, type EventRecord, type FetchRecord, type ReduceRecord } from '@cm/protocol';
import { EXIT_CODES, flag, str, type CommandIO, type DocoptArgs } from '@cm/cli';
import { isValidOp, ReduceEngine, ValueError } from '@cm/reduce';

export const USAGE = `
cm-reduce: fold job results into values as they arrive.

Reads the NDJSON stream of cm-exec (and cm-fetch) on stdin. A job's value is its trimmed stdout
(from its \`finished\` event, exit 0) or, when the job declared a \`result\` file, the content of that
file as fetched by cm-fetch (the \`fetch\` record's \`result\` path). Each \`reduce\` record (from
cm-plan, one per \`+\`) is folded as soon as each of its inputs arrives (inputs are jobs, other
reduces, or whole sweeps), and a \`value\` record is printed when its last input is in.
Reduce records are consumed; every other record (events, fetch records, jobs, values) passes
through unchanged, so the stream can be tee'd or read further down the pipe.

Usage:
  cm-reduce [options] [<file>]
  cm-reduce -h | --help

Options:
  --op OP          Use OP for every reduce record instead of its own op. When the input holds
                   no reduce record at all, reduce every job value into one value with id "all".
  --partial        Print a partial value (partial: true, with have/want) each time a value changes.
  --allow-missing  Reduce what there is when inputs failed (exit != 0, gave-up, skipped) or never
                   came, and list them in "missing"; without it such a reduction fails.

Common options:
  -h --help        Show this text.

Operations:
  sum        the + of the plan language: integers exactly (beyond 2^53 too), decimals exactly,
             JSON arrays concatenate, JSON objects add per key
  min, max   numbers;  mean  numbers (rounded to 18 decimals);  count  inputs
  concat     one line per input, in plan order
  histogram  {value: count}
  cmd:SHELL  runs SHELL with every value on stdin, one per line in plan order; its trimmed
             stdout is the value (no partial values)
  A value that is not a number where one is needed ("12 ms", "abc") fails the reduction with an
  error naming the job; it never becomes NaN. Integers beyond 2^53 are printed as decimal strings.
  sum, min, max, mean and count keep one running value, so a million-run sweep costs no memory.

Reduce records may come before or after the values they reduce; values nobody asked for yet are
kept (up to 100,000) for a reduce record that comes later.

${EXIT_CODES}
  (1 here: a reduction failed, had junk, or missed inputs without --allow-missing)

Examples:
  cm-plan 'a + b + c' | cm-exec | cm-reduce
  cm-plan plan.cm | cm-exec | cm-fetch | cm-reduce --partial | grep '"kind":"value"'
  cm-exec < jobs.ndjson | cm-reduce --op mean
  cm-reduce --op 'cmd:sort -n | tail -1' < events.ndjson
`;

export interface Args {
  file?: string;
  op?: string;
  partial: boolean;
  allowMissing: boolean;
}

export function toArgs(a: DocoptArgs): Args {
  const op = str(a, '--op');
  if (op !== undefined && !isValidOp(op)) {
    throw new CmError(`--op ${JSON.stringify(op)} is not an op (sum, min, max, mean, count, concat, histogram, cmd:<shell>)`, ExitCode.USAGE);
  }
  const file = str(a, '<file>');
  return { file: file === '-' ? undefined : file, op, partial: flag(a, '--partial'), allowMissing: flag(a, '--allow-missing') };
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
  const writer = new RecordWriter(io.stdout);
  const source = args.file ?? 'stdin';
  const input = args.file ? createReadStream(path.resolve(io.cwd, args.file)) : io.stdin;
  const engine = new ReduceEngine({
    op: args.op,
    partial: args.partial,
    allowMissing: args.allowMissing,
    emit: (rec) => writer.write(rec),
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
    for await (const { record, raw: line, line: n } of readRecords(input, { source })) {
      if (stopped || io.signal.aborted) break;
      try {
        if (record.kind === 'reduce') {
          await engine.onReduce(record as ReduceRecord);
          continue;
        }
        // Pass on first: a value computed from this record follows it in the stream.
        const w = writer.writeLine(line);
        if (w) await w;
        if (record.kind === 'event') await engine.onEvent(record as EventRecord);
        else if (record.kind === 'fetch') await engine.onFetch(record as FetchRecord);
      } catch (err) {
        if (err instanceof ValueError) throw new CmError(`${source}:${n}: ${err.message}`, ExitCode.INPUT);
        throw err;
      }
    }
  } catch (err) {
    if (stopped) return ExitCode.OK;
    throw err;
  }
  if (stopped) return ExitCode.OK;
  if (io.signal.aborted) throw io.signal.reason;
  const code = await engine.end();
  await writer.end();
  return code;
}
