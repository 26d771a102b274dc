import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CmError, ExitCode, PATTERNS, RecordWriter, shQuote } from '@cm/protocol';
import { EXIT_CODES, flag, str, strs, wantsRecords, type CommandIO, type DocoptArgs } from '@cm/cli';
import { explain, loadPlanAsync, writePlan, type PlanInput } from '@cm/plan';

export const USAGE = `
cm-plan: turn tasks composed with | (parallel), ; (after) and + (add results) into job records.

Usage:
  cm-plan [options] [--def DEF]... [<expr>]
  cm-plan -h | --help

The plan comes from -f FILE, from stdin when FILE or <expr> is -, or from --def and <expr> alone.
An <expr> given with -f replaces the file's expression (run a part of a plan).
cm-plan reads stdin only for the plan: otherwise it is a source and starts a pipeline.

Options:
  -f FILE, --file FILE  plan file: defs and an expression, or YAML (tasks: and plan:); - = stdin
  -d DEF, --def DEF     define a task NAME=BODY or NAME(PARAMS)=BODY (repeatable)
  --explain             print the plan for people (stages, sums) instead of records: what
                        cm-plan prints when stdout is a terminal
  --json                records even on a terminal
  --run ID              put run ID on every record (default: cm-exec picks one)

Common options:
  -h, --help            show this help

Plan files:
  # a comment: on a line of its own anywhere (inside a def's body too), or at the end of a line
  @host(@gpu)                   options above a def: @host(NAME|RANGE|@TAG) @timeout(30|90s|5m)
  @timeout(5m)                  @retries(N) @env(K=V, ...) @inputs(FILE, ...) @outputs(FILE, ...)
  @result(out/value.txt)        @result(FILE: holds the value; default stdout)
  def fit():
      python3 fit.py > out/value.txt    # the body: shell lines, indented, run by sh -c remotely
  def bench(i=1..100, size=[64, 128]):  # a sweep: 200 runs, $i and $size in the environment
      ./bench.sh "$size"
  (fit | bench); +bench + fit   # the expression; one step per line also means ;

  @inputs: local files, relative to the plan file's folder (to the current directory for --def and
  stdin); cm-fetch --stage-in puts each in the job's working directory under its own name.
  @outputs, @result: paths relative to the job's working directory on its host.

  a | b    a and b side by side           a; b    b after a (and after all of a's side)
  a + b    the sum of their results        +bench  the sum of all runs of a sweep
  +bench by size, rep    one value per combination of values of these parameters of the sweep
  A name is one run of its def: used again, it is the same run's result. Precedence: + over | over ;
  Ranges: 1..100, 001..100 (zero-padded), 0..90 step 10; lists: [a, "b c", 3]; x=5: a constant.

Output: one job record per run (a sweep's runs are NAME.0, NAME.1, ... with sweep, index, env and
params), one reduce record (op sum) per +, named after what it adds (sum:a+b, sum:bench), with by
when given; the plan's value, when it is a sum, has final: true.

${EXIT_CODES}

Examples (from the repository's root):
  cm-plan -f examples/assignment.cm | cm-exec | cm-reduce        # 10: a + b + c + d
  cm-plan -d a='echo 1' -d b='echo 2' '(a | b); a + b' | cm-exec | cm-reduce     # 3
  cm-plan -d 'sq(i=1..100)=echo $((i * i))' +sq | cm-exec | cm-reduce           # 338350
  cm-plan --explain -f examples/sweep.cm              # stages, sweeps and sums, for people
  cm-plan -f examples/assignment.cm 'a | b'           # only a and b of the file
  cm-plan - < examples/assignment.yaml | cm-exec --dry-run     # what would run where
  cm-plan -f examples/bench.cm | cm-fetch --stage-in | cm-exec | cm-fetch --dir results | cm-reduce --op mean,p90
                                                      # bench.sh's mean time per size, 50 runs each
`;

export interface Args {
  file?: string;
  defs: string[];
  expression?: string;
  explain: boolean;
  json: boolean;
  run?: string;
}

export function toArgs(a: DocoptArgs): Args {
  return {
    file: str(a, '--file'),
    defs: strs(a, '--def'),
    expression: str(a, '<expr>'),
    explain: flag(a, '--explain'),
    json: flag(a, '--json'),
    run: str(a, '--run'),
  };
}

const MAX_PLAN_BYTES = 16 * 1024 * 1024;

async function readAll(io: CommandIO): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_PLAN_BYTES) throw new CmError(`stdin: a plan larger than ${MAX_PLAN_BYTES} bytes`, ExitCode.INPUT);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readPlanFile(path: string, io: CommandIO): Promise<{ text: string; source: string; dir?: string }> {
  if (path === '-') return { text: await readAll(io), source: 'stdin' };
  const full = resolve(io.cwd, path);
  try {
    return { text: await readFile(full, 'utf8'), source: path, dir: dirname(full) };
  } catch (err) {
    throw new CmError(`${path}: cannot read the plan file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, ExitCode.INPUT);
  }
}

/**
 * True when <expr> is meant as a plan file (`cm-plan plan.cm`): a name ending in .cm/.yaml/.yml, or an
 * existing file that could not be an expression, or any existing file when nothing defines a task.
 */
function looksLikePlanFile(expr: string, cwd: string, nothingDefined: boolean): boolean {
  if (/\.(cm|ya?ml)$/i.test(expr.trim())) return true;
  let isFile = false;
  try {
    isFile = statSync(resolve(cwd, expr)).isFile();
  } catch {
    return false;
  }
  return isFile && (nothingDefined || !/^[\sA-Za-z0-9_|;+(),#]*$/.test(expr));
}

export async function run(args: Args, io: CommandIO): Promise<number> {
  if (args.run !== undefined && !new RegExp(PATTERNS.safeId).test(args.run)) {
    throw new CmError(`--run must be letters, digits and _.:@+=,- (not starting with - or .), got ${JSON.stringify(args.run)}`, ExitCode.USAGE);
  }
  const expr = args.expression;
  if (expr !== undefined && expr !== '-' && looksLikePlanFile(expr, io.cwd, args.file === undefined && args.defs.length === 0)) {
    const path = /^[A-Za-z0-9_./@:+=,-]+$/.test(expr) ? expr : shQuote(expr);
    throw new CmError(`${path} is a plan file, not an expression: did you mean -f ${path}?`, ExitCode.USAGE);
  }
  const input: PlanInput = { defs: args.defs };
  if (args.file !== undefined) input.file = await readPlanFile(args.file, io);
  if (args.expression === '-' && args.file === undefined) input.file = await readPlanFile('-', io);
  else if (args.expression !== undefined) input.expression = args.expression;
  if (input.file === undefined && input.expression === undefined && args.defs.length === 0) {
    throw new CmError('no plan: give -f FILE, - (stdin), or --def and an expression (see cm-plan --help)', ExitCode.USAGE);
  }
  // Everything is parsed and checked here, before the first record: a bad plan prints no job.
  const { plan, expression } = await loadPlanAsync(input);
  for (const d of plan.unused) io.stderr.write(`cm-plan: warning: def ${d.name} is never used (${d.at.source}:${d.at.line})\n`);
  // records are for the next command of a pipe; a person at a terminal reads the plan instead
  if (args.explain || !wantsRecords(io, { json: args.json })) {
    io.stdout.write(explain(plan, expression));
    if (!args.explain) io.stderr.write('cm-plan: (the plan for people; in a pipe, or with --json, job and reduce records)\n');
    return ExitCode.OK;
  }
  const writer = new RecordWriter(io.stdout);
  await writePlan(plan, writer, { run: args.run });
  await writer.end();
  return ExitCode.OK;
}
