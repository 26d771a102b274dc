// One exit-code table for every command, printed in every usage text (see libs/cli).
export const ExitCode = {
  OK: 0,
  /** some jobs, hosts, transfers or reductions failed; the stream itself was fine */
  FAILURES: 1,
  /** bad command line */
  USAGE: 2,
  /** bad input: YAML, NDJSON, plan file or inventory */
  INPUT: 3,
  /** a program cm needs is missing or unusable (ssh, vagrant, a provider, slurm) */
  ENVIRONMENT: 4,
  /** stopped early by a --halt policy */
  HALTED: 5,
  /** a bug in cm: please report it with the stack trace */
  INTERNAL: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An expected error: printed as one line `cm-x: message`, never with a stack. */
export class CmError extends Error {
  constructor(
    message: string,
    readonly code: number = ExitCode.INPUT,
  ) {
    super(message);
    this.name = 'CmError';
  }
}

/** Bad input, located: `file:line:col: message` (col omitted when unknown). */
export class InputError extends CmError {
  constructor(
    readonly source: string,
    readonly line: number | undefined,
    readonly column: number | undefined,
    readonly reason: string,
    readonly excerpt?: string,
  ) {
    super(InputError.format(source, line, column, reason, excerpt), ExitCode.INPUT);
    this.name = 'InputError';
  }

  static format(source: string, line?: number, column?: number, reason = '', excerpt?: string): string {
    let where = source;
    if (line !== undefined) where += `:${line}`;
    if (line !== undefined && column !== undefined) where += `:${column}`;
    let text = `${where}: ${reason}`;
    if (excerpt !== undefined) {
      text += `\n  ${excerpt}`;
      if (column !== undefined) text += `\n  ${' '.repeat(Math.max(0, column - 1))}^`;
    }
    return text;
  }
}
