import { restoreStringBuiltins } from './builtins';
import * as docoptModule from 'docopt';

restoreStringBuiltins();
const { docopt } = docoptModule;
// @types/docopt does not declare the error class docopt throws for a command line that does not match.
const { DocoptExit } = docoptModule as unknown as { DocoptExit: new (message: string) => Error };
import type { Readable, Writable } from 'node:stream';
import { CmError, ExitCode, signalNumber } from '@cm/protocol';

/** Printed at the end of every command's usage text, word for word. */
export const EXIT_CODES = `Exit codes (the same for every cm command):
  0    ok
  1    some jobs, hosts, transfers or reductions failed
  2    usage error (bad command line)
  3    input error (YAML, NDJSON, plan or inventory), with file:line:col
  4    a program cm needs is missing or unusable (ssh, vagrant, provider)
  5    stopped early by a --halt policy
  70   internal error (a bug: please report it)
  128+N  killed by signal N (130 for Ctrl-C)`;

export interface CommandIO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** aborted on SIGINT/SIGTERM; commands stop starting work and clean up */
  signal: AbortSignal;
}

export type DocoptArgs = Record<string, string | boolean | number | string[] | null>;

/**
 * docopt with the behaviour a pipeline needs: --help goes to stdout and exits 0, usage errors
 * become a CmError (exit 2) on stderr, and nothing calls process.exit.
 */
export function parseUsage(usage: string, argv: string[]): DocoptArgs | 'help' {
  const dashdash = argv.indexOf('--');
  const opts = dashdash < 0 ? argv : argv.slice(0, dashdash);
  if (opts.includes('-h') || opts.includes('--help')) return 'help';
  try {
    return docopt(usage, { argv, help: false, exit: false }) as DocoptArgs;
  } catch (err) {
    if (err instanceof DocoptExit) {
      throw new CmError(`bad command line (see --help)\n${(err as Error).message}`, ExitCode.USAGE);
    }
    throw new CmError(`usage error: ${(err as Error).message}`, ExitCode.USAGE);
  }
}

export function str(args: DocoptArgs, key: string): string | undefined {
  const v = args[key];
  return typeof v === 'string' ? v : undefined;
}

/** `args` with option `key` taken from an environment variable's `value` when the command line has none (an empty variable counts as unset). */
export function envDefault(args: DocoptArgs, key: string, value: string | undefined): DocoptArgs {
  return str(args, key) !== undefined || !value ? args : { ...args, [key]: value };
}

/** True when the command line gave option `key` (an option with a [default: ...] always counts as given). */
export function given(args: DocoptArgs, key: string): boolean {
  const v = args[key];
  return v !== null && v !== undefined && v !== false && v !== 0 && !(Array.isArray(v) && v.length === 0);
}

export function strs(args: DocoptArgs, key: string): string[] {
  const v = args[key];
  if (Array.isArray(v)) return v;
  return typeof v === 'string' ? [v] : [];
}

export function flag(args: DocoptArgs, key: string): boolean {
  return args[key] === true || (typeof args[key] === 'number' && (args[key] as number) > 0);
}

/** Parses an integer option, failing with a usage error that names the option. */
export function intOpt(args: DocoptArgs, key: string, { min = 0 }: { min?: number } = {}): number | undefined {
  const v = str(args, key);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v) || Number(v) < min) {
    throw new CmError(`${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`, ExitCode.USAGE);
  }
  return Number(v);
}

export function numOpt(args: DocoptArgs, key: string): number | undefined {
  const v = str(args, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new CmError(`${key} must be a non-negative number, got ${JSON.stringify(v)}`, ExitCode.USAGE);
  }
  return n;
}

/**
 * Records or text: NDJSON when stdout is not a terminal (a pipe, a file) or with --json, text for
 * people on a terminal (or with --table where a command offers it).
 */
export function wantsRecords(io: Pick<CommandIO, 'stdout'>, opts: { json?: boolean; table?: boolean } = {}): boolean {
  if (opts.json) return true;
  if (opts.table) return false;
  return !(io.stdout as { isTTY?: boolean }).isTTY;
}

/**
 * The whole life of a command: wires process streams, turns signals into an AbortSignal, prints
 * expected errors as one line and bugs with a stack, and sets process.exitCode (never
 * process.exit, which would truncate output still in the pipe).
 */
/** The bin scripts move NODE_EXTRA_CA_CERTS aside for node's start-up; jobs and tools get it back. */
function restoreCaCerts(env: NodeJS.ProcessEnv): void {
  const saved = env.CM_NODE_EXTRA_CA_CERTS;
  if (saved === undefined) return;
  env.NODE_EXTRA_CA_CERTS = saved;
  delete env.CM_NODE_EXTRA_CA_CERTS;
}

export function runMain(
  name: string,
  usage: string,
  run: (args: DocoptArgs, io: CommandIO) => Promise<number>,
  argv: string[] = process.argv.slice(2),
): void {
  restoreCaCerts(process.env);
  const controller = new AbortController();
  let signalled: string | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      // A second Ctrl-C means "now": skip the graceful stop.
      process.exit(128 + (signalNumber(sig) ?? 2));
    }
    signalled = sig;
    controller.abort(new CmError(`interrupted by ${sig}`, 128 + (signalNumber(sig) ?? 2)));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  // The reader of our stdout went away: that is a normal end of a pipeline, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
  const report = (err: unknown): number => {
    if (err instanceof CmError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      return err.code;
    }
    process.stderr.write(`${name}: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.INTERNAL;
  };
  let parsed: DocoptArgs | 'help';
  try {
    parsed = parseUsage(usage, argv);
  } catch (err) {
    process.exitCode = report(err);
    return;
  }
  if (parsed === 'help') {
    process.stdout.write(`${usage.trim()}\n`);
    return;
  }
  const io: CommandIO = {
    // on first use: node builds the stream (a file stdin loads fs streams) only then, 10 ms of start-up
    // of a command that never reads it (cm-plan -f FILE, cm-hosts list)
    get stdin() {
      return process.stdin;
    },
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  };
  run(parsed, io).then(
    (code) => {
      process.exitCode = signalled ? 128 + (signalNumber(signalled) ?? 2) : code;
    },
    (err) => {
      process.exitCode = signalled && !(err instanceof CmError && err.code < 128) ? 128 + (signalNumber(signalled) ?? 2) : report(err);
    },
  );
}
