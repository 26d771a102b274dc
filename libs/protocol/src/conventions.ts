// The conventions every command and engine shares, each spelled once: where a job works on its host,
// how a string is quoted for sh, which environment names a job may set, what a signal is called,
// how a run is named, and how a table for people is laid out.
import { closeSync, openSync, readSync } from 'node:fs';
import { constants } from 'node:os';

/** A job's working directory, relative to the login directory on its host (or $HOME on a local host). */
export function workdirOf(run: string, job: string): string {
  return `.cm/runs/${run}/${job}`;
}

/** The file a job's result is read from, in its directory; undefined when it is its stdout (or unset). */
export function resultFileOf(rec: { result?: string }): string | undefined {
  return rec.result === undefined || rec.result === 'stdout' ? undefined : rec.result;
}

/** A job leaves files in its directory for cm-fetch: outputs, or a result file. */
export function leavesFiles(rec: { outputs?: readonly string[]; result?: string }): boolean {
  return (rec.outputs?.length ?? 0) > 0 || resultFileOf(rec) !== undefined;
}

/** The folder holding every job directory of a run on a host. */
export function runDirOf(run: string): string {
  return `.cm/runs/${run}`;
}

/** Single-quotes a string for any POSIX sh: the result is one word, whatever the input holds. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Names a job may set in its environment: what sh accepts in `export NAME=...`. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isEnvName(name: string): boolean {
  return ENV_NAME.test(name);
}

const SIGNAL_NUMBERS = constants.signals as Record<string, number>;
// the first name of a number is the usual one (SIGABRT before SIGIOT, SIGIO before SIGPOLL)
const SIGNAL_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(SIGNAL_NUMBERS)) if (!SIGNAL_NAMES.has(n)) SIGNAL_NAMES.set(n, name);

/** SIGTERM -> 15; undefined for null or an unknown name. */
export function signalNumber(name: string | null | undefined): number | undefined {
  return name ? SIGNAL_NUMBERS[name] : undefined;
}

/** 15 -> SIGTERM; null for a number no signal has here. */
export function signalName(n: number): string | null {
  return SIGNAL_NAMES.get(n) ?? null;
}

/** A fresh run id, YYYYmmdd-HHMMSS-xxxx in local time: sorts by start, unique enough per second. */
export function freshRunId(now = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `${stamp}-${randomHex(2)}`;
}

/**
 * `bytes` random bytes from the kernel, as hex: run ids, session markers, temp names. Read from
 * /dev/urandom, not node:crypto, which costs cm-exec 14 ms of CPU to load at every start and nothing
 * else of the commands that run jobs needs. (WebCrypto where /dev/urandom cannot be read.)
 */
export function randomHex(bytes: number): string {
  const b = Buffer.alloc(bytes);
  try {
    const fd = openSync('/dev/urandom', 'r');
    try {
      readSync(fd, b, 0, bytes, null);
    } finally {
      closeSync(fd);
    }
  } catch {
    globalThis.crypto.getRandomValues(b);
  }
  return b.toString('hex');
}

/** Aligned columns for people, two spaces apart; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** 107374182 -> "102.4 MiB": for the table people read. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** "1 file", "3 files": counts in lines for people. */
export function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
