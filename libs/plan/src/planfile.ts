// The plan file: decorator lines, `def name(params):` with an indented shell body, and the expression.
import { parseParams, isSweep, sweepSize, type Param } from './params';
import { setOption, type TaskOptions } from './options';
import { inputError, showChar, type Pos, type Segment } from './source';

export interface Def {
  name: string;
  params: Param[];
  options: TaskOptions;
  /** the shell snippet, indentation stripped */
  body: string;
  at: Pos;
  /** runs: 1, or the size of the sweep */
  count: number;
  sweep: boolean;
}

export interface PlanText {
  defs: Def[];
  /** the expression lines (may be empty: the expression can come from elsewhere) */
  expression: Segment[];
}

export const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// `by` follows a sum in an expression (`+bench by size`), so no task may be called that.
const RESERVED = new Set(['def', 'step', 'by']);

function posAt(source: string, line: number, text: string, col: number): Pos {
  return { source, line, col, text };
}

export function checkTaskName(name: string, at: Pos): void {
  if (!NAME.test(name)) throw inputError(at, `a task name is letters, digits and '_', not starting with a digit; found '${name}'`);
  if (RESERVED.has(name)) throw inputError(at, `'${name}' is a reserved word, not a task name`);
  if (name.length > 190) throw inputError(at, 'task names are at most 190 characters');
}

/** Splits decorator arguments at top-level commas; quotes may hold commas and spaces. */
function splitArgs(text: string, at: (i: number) => Pos): Array<{ word: string; i: number }> {
  const out: Array<{ word: string; i: number }> = [];
  let i = 0;
  if (text.trim() === '') return out;
  for (;;) {
    while (i < text.length && /\s/.test(text[i])) i++;
    const start = i;
    let word = '';
    while (i < text.length && text[i] !== ',') {
      const q = text[i];
      if (q === '"' || q === "'") {
        const end = text.indexOf(q, i + 1);
        if (end < 0) throw inputError(at(i), 'unterminated quoted string');
        word += text.slice(i + 1, end);
        i = end + 1;
      } else {
        word += q;
        i++;
      }
    }
    out.push({ word: word.trim(), i: start });
    if (i >= text.length) return out;
    i++;
  }
}

function parseDecorator(opts: TaskOptions, line: string, at: (i: number) => Pos): void {
  const m = /^@([A-Za-z_][A-Za-z0-9_]*)/.exec(line);
  if (!m) throw inputError(at(1), `expected an option name after '@' (like @timeout(30)), found ${showChar(line[1] ?? ' ')}`);
  let i = m[0].length;
  while (line[i] === ' ' || line[i] === '\t') i++;
  if (line[i] !== '(') throw inputError(at(i), `expected '(' after @${m[1]} (like @${m[1]}(...))`);
  const close = line.lastIndexOf(')');
  if (close < i) throw inputError(at(i), `this '(' is never closed (expected ')')`);
  const rest = line.slice(close + 1).trim();
  if (rest !== '' && !rest.startsWith('#')) throw inputError(at(line.indexOf(rest, close + 1)), `unexpected text after @${m[1]}(...)`);
  const argsStart = i + 1;
  const args = splitArgs(line.slice(argsStart, close), (k) => at(argsStart + k));
  setOption(opts, m[1], args.map((a) => a.word), (k) => at(k < 0 ? 1 : argsStart + args[k].i));
}

const isComment = (line: string): boolean => line.trimStart().startsWith('#');

function commonIndent(lines: string[]): string | undefined {
  let indent: string | undefined;
  for (const l of lines) {
    const lead = /^[ \t]*/.exec(l)![0];
    if (indent === undefined) indent = lead;
    else {
      let n = 0;
      while (n < indent.length && n < lead.length && indent[n] === lead[n]) n++;
      indent = indent.slice(0, n);
    }
  }
  return indent;
}

/**
 * A def's body lines without their common indentation. The indentation is the code's: a comment
 * indented less than the code (at column 0, say) is a comment of the plan file and left out; one
 * indented as the code stays, as the shell (or a here-document) may read it.
 */
function dedent(lines: string[]): string {
  const code = lines.filter((l) => l.trim() !== '' && !isComment(l));
  const indent = commonIndent(code) ?? commonIndent(lines.filter((l) => l.trim() !== '' && /^[ \t]/.test(l))) ?? '';
  const kept = lines.filter((l) => l.trim() === '' || (l.startsWith(indent) && !l.startsWith('#')));
  while (kept.length > 0 && kept[kept.length - 1].trim() === '') kept.pop();
  while (kept.length > 0 && kept[0].trim() === '') kept.shift();
  return kept.map((l) => (l.trim() === '' ? '' : l.slice(indent.length))).join('\n');
}

/**
 * Parses the header `def name(params): [inline body]` (without the body lines), `line` being the
 * whole line. Exported for `--def NAME(PARAMS)=BODY`, which shares the name and parameter syntax.
 */
export function parseHeader(line: string, start: number, end: (i: number) => boolean, expect: string, at: (i: number) => Pos): { name: string; params: Param[]; at: Pos; next: number } {
  let i = start;
  while (line[i] === ' ' || line[i] === '\t') i++;
  const m = /^[A-Za-z0-9_]+/.exec(line.slice(i));
  if (!m) throw inputError(at(i), `expected a task name, found ${i >= line.length ? 'the end of the line' : showChar(line[i])}`);
  const name = m[0];
  const nameAt = at(i);
  checkTaskName(name, nameAt);
  i += name.length;
  while (line[i] === ' ' || line[i] === '\t') i++;
  let params: Param[] = [];
  if (line[i] === '(') {
    let depth = 0;
    let close = -1;
    let quote = '';
    for (let j = i; j < line.length; j++) {
      const c = line[j];
      if (quote) {
        if (c === quote) quote = '';
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '(' || c === '[') depth++;
      else if (c === ')' || c === ']') {
        depth--;
        if (depth === 0 && c === ')') {
          close = j;
          break;
        }
      }
    }
    if (close < 0) throw inputError(at(i), "unbalanced parentheses: this '(' is never closed (expected ')')");
    const inner = i + 1;
    params = parseParams(line.slice(inner, close), (k) => at(inner + k));
    i = close + 1;
    while (line[i] === ' ' || line[i] === '\t') i++;
  } else if (!end(i)) {
    throw inputError(at(i), `expected '(' or ${expect} after the task name ${name}, found ${i >= line.length ? 'the end of the line' : showChar(line[i])}`);
  }
  if (!end(i)) throw inputError(at(i), `expected ${expect} after ${name}(...), found ${i >= line.length ? 'the end' : showChar(line[i])}`);
  return { name, params, at: nameAt, next: i + 1 };
}

export function makeDef(name: string, params: Param[], options: TaskOptions, body: string, at: Pos, hint = 'indented on the lines below it'): Def {
  if (body.trim() === '') {
    throw inputError(at, `def ${name} has an empty body: give the shell commands it runs, ${hint}`);
  }
  const sweep = isSweep(params);
  return { name, params, options, body, at, sweep, count: sweep ? sweepSize(params, at) : 1 };
}

/** Parses a plan file in the def form. */
export function parsePlanText(text: string, source: string): PlanText {
  const lines = text.replace(/^\uFEFF/, '').split('\n').map((l) => l.replace(/\r$/, ''));
  const defs: Def[] = [];
  const expression: Segment[] = [];
  let pending: { opts: TaskOptions; at: Pos } | undefined;
  let afterExpression = false;
  let n = 0;
  while (n < lines.length) {
    const line = lines[n];
    const lineNo = n + 1;
    const at = (i: number): Pos => posAt(source, lineNo, line, i + 1);
    n++;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const indented = /^[ \t]/.test(line);
    if (indented && afterExpression && !pending) {
      expression.push({ source, line: lineNo, col: 1, text: line, lineText: line });
      continue;
    }
    if (indented && pending) throw inputError(at(line.search(/\S/)), 'unexpected indentation: option lines are followed by a def at the start of a line');
    if (line.startsWith('@')) {
      pending ??= { opts: {}, at: at(0) };
      parseDecorator(pending.opts, line, at);
      continue;
    }
    if (/^def[ \t]/.test(line) || line === 'def') {
      const h = parseHeader(line, 3, (i) => line[i] === ':', "':'", at);
      // `def a():  # why` is a comment of the plan file, not a first line of the body
      const inline = line.slice(h.next).trim().replace(/^#.*/, '');
      const body: string[] = [];
      // Blank lines and comments (at any indentation) do not end a body; the next line at column 0 does.
      while (n < lines.length && (lines[n].trim() === '' || /^[ \t]/.test(lines[n]) || lines[n].startsWith('#'))) body.push(lines[n++]);
      const text = [inline, dedent(body)].filter((t) => t !== '').join('\n');
      defs.push(makeDef(h.name, h.params, pending?.opts ?? {}, text, h.at));
      pending = undefined;
      afterExpression = false;
      continue;
    }
    if (pending) throw inputError(pending.at, "an option line (@...) must be followed by the def it applies to");
    expression.push({ source, line: lineNo, col: 1, text: line, lineText: line });
    afterExpression = true;
  }
  if (pending) throw inputError(pending.at, 'an option line (@...) must be followed by the def it applies to');
  return { defs, expression };
}
