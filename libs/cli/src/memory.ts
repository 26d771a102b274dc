// A command's run() against in-memory streams, for the specs of tools/*/src (in the style of gron's
// and xsv's tests): what it would read on stdin, what it wrote on stdout and stderr, its exit code.
import { readFileSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { parseUsage, type CommandIO, type DocoptArgs } from './main';

export interface MemoryRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Parses `argv` with the command's usage and runs it with `stdin` as its input. */
export async function runInMemory<A>(
  usage: string,
  toArgs: (a: DocoptArgs, env: NodeJS.ProcessEnv) => A,
  run: (args: A, io: CommandIO) => Promise<number>,
  argv: string[],
  /** terminal: stdout says it is a TTY, as a person's shell would give it */
  opts: { stdin?: string; env?: NodeJS.ProcessEnv; cwd: string; terminal?: boolean },
): Promise<MemoryRun> {
  const parsed = parseUsage(usage, argv);
  if (parsed === 'help') throw new Error('runInMemory: --help is not a run');
  const stdin = new PassThrough();
  stdin.end(opts.stdin ?? '');
  const stdout = opts.terminal ? Object.assign(new PassThrough(), { isTTY: true }) : new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const env = opts.env ?? { PATH: process.env.PATH, HOME: opts.cwd };
  const code = await run(toArgs(parsed, env), { stdin, stdout, stderr, env, cwd: opts.cwd, signal: new AbortController().signal });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/**
 * `actual` against the golden file at `path`; with CM_UPDATE_GOLDEN=1 the file is written instead.
 * Returns the golden text, for the spec's own expect().
 */
export function golden(path: string, actual: string): string {
  if (process.env.CM_UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  return readFileSync(path, 'utf8');
}
