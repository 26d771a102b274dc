// The one rule of the results tree: nothing a remote host says (a declared output, a name inside
// an archive) may place a file outside the job's own directory.
import { lstatSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomHex } from '@cm/protocol';

export class UnsafePathError extends Error {}

/**
 * Checks a remote-supplied relative path and returns it normalised (`./a//b` -> `a/b`). Refuses
 * absolute paths, `..` components, empty names, NUL and backslashes (a Windows separator on the
 * remote would be a plain character here but is still not a name anyone means).
 */
export function safeRelative(name: string): string {
  if (name === '' || name.includes('\0')) throw new UnsafePathError(`${JSON.stringify(name)}: empty name or NUL byte`);
  if (name.startsWith('/') || /^[A-Za-z]:[\\/]/.test(name)) throw new UnsafePathError(`${JSON.stringify(name)}: absolute path`);
  if (name.includes('\\')) throw new UnsafePathError(`${JSON.stringify(name)}: backslash in name`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new UnsafePathError(`${JSON.stringify(name)}: names no file`);
  if (parts.includes('..')) throw new UnsafePathError(`${JSON.stringify(name)}: leaves the job directory (..)`);
  return parts.join('/');
}

/** root joined with a checked relative path; the result is always strictly inside root. */
export function safeJoin(root: string, rel: string): string {
  const clean = safeRelative(rel);
  const full = path.join(root, clean);
  const back = path.relative(root, full);
  if (back === '' || back.startsWith('..') || path.isAbsolute(back)) throw new UnsafePathError(`${JSON.stringify(rel)}: leaves the job directory`);
  return full;
}

/**
 * Creates the directories of `rel` below root one component at a time, refusing any component that
 * already exists as something other than a real directory (a symlink planted there would redirect
 * every later write). Synchronous: each step is one quick call, and a thread-pool round trip per
 * step cost more than the step (a batch of 64 jobs made 512 of them, one after the other).
 * `checked` holds the directories made or checked already by the caller's batch, so jobs of one
 * run check <dir>/<run>/<task> once, not once each.
 */
export function ensureDirs(root: string, rel: string, checked: Set<string> = new Set()): void {
  const clean = rel === '' || rel === '.' ? '' : safeRelative(rel);
  if (!checked.has(root)) {
    mkdirSync(root, { recursive: true });
    if (!lstatSync(root).isDirectory()) throw new UnsafePathError(`${root} is not a directory`);
    checked.add(root);
  }
  let cur = root;
  for (const part of clean === '' ? [] : clean.split('/')) {
    cur = path.join(cur, part);
    if (checked.has(cur)) continue;
    try {
      // made here: mkdir never follows or replaces what is there, so this is a real directory
      mkdirSync(cur);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = lstatSync(cur);
      if (!st.isDirectory()) throw new UnsafePathError(`${path.relative(root, cur)}: exists and is not a directory (${st.isSymbolicLink() ? 'a symlink' : 'a file'})`);
    }
    checked.add(cur);
  }
}

// one random draw per process: a getrandom call per file showed in 1,000-file fetches, and the
// temp file is opened O_EXCL anyway, so a name taken meanwhile fails rather than being shared
const PART_TAG = randomHex(6);
let parts = 0;

/** A fresh temp name beside final, for a file that takes its final name only once whole. */
export function tempBeside(final: string): string {
  parts += 1;
  return path.join(path.dirname(final), `.${path.basename(final).slice(0, 100)}.cm-part-${PART_TAG}-${parts.toString(36)}`);
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// what a value may hold to be one step of a local path on any file system people use: no `/`,
// `\`, whitespace, quotes, `*?<>|`, nothing a shell or a Windows share would take for something else
const PARAM_VALUE = /^[A-Za-z0-9_.+,@%-]+$/;

/**
 * The folder below <results>/<run>/ a job's files go to: <task>/<name>=<value>/... for a job with
 * parameters (size=4000's files are found by their path, not by a lookup), else the job id. A
 * name or value that would not make one safe path step, or a path that long, falls back to the id.
 */
export function resultFolder(job: { job: string; task?: string; params?: Record<string, string> }): string {
  const params = Object.entries(job.params ?? {});
  if (job.task === undefined || params.length === 0) return job.job;
  if (params.some(([k, v]) => !PARAM_NAME.test(k) || !PARAM_VALUE.test(v) || k.length + v.length > 200)) return job.job;
  const folder = [job.task, ...params.map(([k, v]) => `${k}=${v}`)].join('/');
  if (folder.length > 1000) return job.job;
  try {
    return safeRelative(folder) === folder ? folder : job.job;
  } catch {
    return job.job;
  }
}
