#!/usr/bin/env node
// Prints every example a person can copy from README.md and from each command's --help, one per line:
// SOURCE<TAB>EXAMPLE. test/examples.bats requires an entry in test/examples/table.txt for each.
//   README.md: the command lines of its fenced code blocks (in a block that shows a session, only the
//   `$ ` lines; otherwise every line that is not blank or a comment).
//   cm-<cmd> --help: the indented lines under "Examples:", run from the built bin (what users get).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = process.env.CM_REPO ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function readmeExamples(text) {
  const out = [];
  let block;
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) {
      if (block === undefined) block = [];
      else {
        const session = block.some((l) => l.startsWith('$ '));
        for (const l of block) {
          if (session) {
            if (l.startsWith('$ ')) out.push(l.slice(2).trimEnd());
          } else if (l.trim() !== '' && !l.trimStart().startsWith('#')) out.push(l.trimEnd());
        }
        block = undefined;
      }
    } else if (block !== undefined) block.push(line);
  }
  return out;
}

export function helpExamples(text) {
  const out = [];
  let inside = false;
  for (const line of text.split('\n')) {
    // "Examples:" or "Examples (from the repository's root):"
    if (/^Examples\b.*:\s*$/.test(line)) inside = true;
    else if (inside && /^\S/.test(line)) inside = false;
    // a line holding only a comment continues the example above it: it is no example of its own
    else if (inside && line.trim() !== '' && !line.trimStart().startsWith('#')) out.push(line.replace(/^ {2}/, '').trimEnd());
  }
  return out;
}

const rows = [];
for (const ex of readmeExamples(readFileSync(join(repo, 'README.md'), 'utf8'))) rows.push(['README.md', ex]);
for (const tool of readdirSync(join(repo, 'tools')).sort()) {
  const bin = join(repo, 'node_modules', '.bin', tool);
  if (!existsSync(bin)) continue;
  const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
  for (const ex of helpExamples(help)) rows.push([`${tool} --help`, ex]);
}
for (const [source, ex] of rows) process.stdout.write(`${source}\t${ex}\n`);
