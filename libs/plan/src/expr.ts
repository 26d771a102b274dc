// The expression language: `|` parallel, `;` sequence, `+` sum, parentheses; precedence + over | over ;.
import { inputError, showChar, sourceError, type Pos, type Segment } from './source';

export type Node = NameNode | ListNode;
export interface NameNode {
  kind: 'name';
  name: string;
  at: Pos;
}
/** `seq` and `par` have two or more items; `sum` has one (`+bench`) or more. */
export interface ListNode {
  kind: 'seq' | 'par' | 'sum';
  items: Node[];
  at: Pos;
  /** a sum's `by size, rep`: one value per combination of these parameters' values */
  by?: NameNode[];
}

type TokenType = 'name' | 'by' | ',' | '|' | ';' | '+' | '(' | ')' | 'nl' | 'eof';
interface Token {
  type: TokenType;
  value: string;
  at: Pos;
}

/** Deeper nesting than this is refused instead of risking the stack. */
export const MAX_NESTING = 500;

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

// Common slips from other languages get a hint instead of a bare "unexpected character".
const HINTS: Record<string, string> = {
  '&': "use ';' to run one after the other, '|' to run side by side",
  '[': 'sweeps are declared on the def: def bench(i=1..100):',
  '-': "task names are letters, digits and '_' (no '-')",
  '.': "task names are letters, digits and '_' (no '.')",
};

function tokenize(segments: Segment[]): Token[] {
  const tokens: Token[] = [];
  segments.forEach((seg, s) => {
    const at = (i: number): Pos => ({ source: seg.source, line: seg.line, col: seg.col + i, text: seg.lineText });
    const text = seg.text;
    let i = 0;
    while (i < text.length) {
      const ch = text[i];
      if (ch === '#') break;
      if (ch === ' ' || ch === '\t' || ch === '\r') {
        i++;
        continue;
      }
      if (ch === '|' || ch === ';' || ch === '+' || ch === '(' || ch === ')' || ch === ',') {
        tokens.push({ type: ch, value: ch, at: at(i) });
        i++;
        continue;
      }
      if (NAME_START.test(ch)) {
        let j = i + 1;
        while (j < text.length && NAME_CHAR.test(text[j])) j++;
        const word = text.slice(i, j);
        tokens.push({ type: word === 'by' ? 'by' : 'name', value: word, at: at(i) });
        i = j;
        continue;
      }
      const hint = HINTS[ch] ?? (/[0-9]/.test(ch) ? 'a task name starts with a letter or _' : "expected a task name, '(', ')', '|', ';' or '+'");
      throw inputError(at(i), `unexpected character ${showChar(ch)}: ${hint}`);
    }
    const end = at(text.length);
    tokens.push({ type: s === segments.length - 1 ? 'eof' : 'nl', value: '', at: end });
  });
  if (tokens.length === 0) tokens.push({ type: 'eof', value: '', at: { source: 'expression', line: 1, col: 1, text: '' } });
  return lineBreaks(tokens);
}

const OPERATOR = new Set<TokenType>(['|', ';', '+', 'by', ',']);

/**
 * A line break between two complete operands means `;` (one step per line); a break inside
 * parentheses, after an operator or before `|`, `;` or `)` just continues the expression. A line
 * starting with `+` is a new step (`+bench`, the sum of a sweep); to go on with a sum, end the line with `+`.
 */
function lineBreaks(tokens: Token[]): Token[] {
  const out: Token[] = [];
  let depth = 0;
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.type === '(') depth++;
    if (t.type === ')') depth = Math.max(0, depth - 1);
    if (t.type !== 'nl') {
      out.push(t);
      continue;
    }
    const prev = out[out.length - 1];
    let n = k + 1;
    while (tokens[n].type === 'nl') n++;
    const next = tokens[n];
    if (depth > 0 || !prev || prev.type === '(' || OPERATOR.has(prev.type) || next.type === '|' || next.type === ';' || next.type === ')' || next.type === 'by' || next.type === ',' || next.type === 'eof') continue;
    out.push({ type: ';', value: '', at: t.at });
  }
  return out;
}

function describe(t: Token): string {
  if (t.type === 'eof') return 'the end of the plan';
  if (t.type === 'name' || t.type === 'by') return `'${t.value}'`;
  if (t.type === ';' && t.value === '') return 'a new line';
  return `'${t.value}'`;
}

class Parser {
  private k = 0;
  private depth = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.k];
  }
  private next(): Token {
    return this.tokens[this.k++];
  }

  parsePlan(): Node {
    const node = this.parseSeq();
    const t = this.peek();
    if (t.type === ')') throw inputError(t.at, "unbalanced parentheses: this ')' has no matching '('");
    if (t.type === 'name' || t.type === '(') {
      throw inputError(t.at, `expected an operator ('|', ';' or '+') before ${describe(t)}`);
    }
    this.stray(t);
    if (t.type !== 'eof') throw inputError(t.at, `expected '|', ';', '+' or the end of the plan, found ${describe(t)}`);
    return node;
  }

  private list(kind: 'seq' | 'par', op: TokenType, item: () => Node): Node {
    const first = item();
    const items = [first];
    while (this.peek().type === op) {
      this.next();
      items.push(item());
    }
    return items.length === 1 ? first : { kind, items, at: first.at };
  }

  private parseSeq(): Node {
    return this.list('seq', ';', () => this.parsePar());
  }

  private parsePar(): Node {
    return this.list('par', '|', () => this.parseSum());
  }

  private parseSum(): Node {
    const start = this.peek();
    const unary = start.type === '+';
    if (unary) this.next();
    const items = [this.parseAtom(unary ? "after the '+' that sums a single task or sweep" : undefined)];
    while (this.peek().type === '+') {
      this.next();
      items.push(this.parseAtom("after '+'"));
    }
    if (!unary && items.length === 1) return items[0];
    const sum: ListNode = { kind: 'sum', items, at: start.at };
    if (this.peek().type === 'by') {
      sum.by = this.parseBy();
      const t = this.peek();
      if (t.type === '+') throw inputError(t.at, "a sum with 'by' has one value per group: it cannot be added to (put the other terms before 'by')");
    }
    return sum;
  }

  /** Errors for a token that has a meaning only elsewhere: ',' and 'by' belong after a sum. */
  private stray(t: Token): void {
    if (t.type === ',') throw inputError(t.at, "unexpected character ',': use '|' to run tasks in parallel");
    if (t.type === 'by') {
      const prev = this.tokens[this.k - 1];
      const example = prev?.type === 'name' ? `+${prev.value} by PARAM` : '+NAME by PARAM';
      throw inputError(t.at, `'by' follows a sum: ${example} gives one value per value of PARAM`);
    }
  }

  /** `by size, rep` after a sum: parameter names, separated by commas. */
  private parseBy(): NameNode[] {
    const by: NameNode[] = [];
    let prev = this.next();
    for (;;) {
      const t = this.next();
      if (t.type !== 'name') throw inputError(t.at, `expected a parameter name after ${describe(prev)}, found ${describe(t)}`);
      if (by.some((b) => b.name === t.value)) throw inputError(t.at, `parameter ${t.value} is given twice after 'by'`);
      by.push({ kind: 'name', name: t.value, at: t.at });
      if (this.peek().type !== ',') return by;
      prev = this.next();
    }
  }

  private parseAtom(context?: string): Node {
    const t = this.next();
    if (t.type === 'name') return { kind: 'name', name: t.value, at: t.at };
    if (t.type === '(') {
      if (this.peek().type === ')') throw inputError(this.peek().at, "empty parentheses: expected a task name or '(' inside");
      if (++this.depth > MAX_NESTING) throw inputError(t.at, `parentheses nested deeper than ${MAX_NESTING}`);
      const inner = this.parseSeq();
      this.depth--;
      const close = this.peek();
      if (close.type === ')') {
        this.next();
        return inner;
      }
      if (close.type === 'eof') throw inputError(t.at, "unbalanced parentheses: this '(' is never closed (expected ')')");
      this.stray(close);
      throw inputError(close.at, `expected '|', ';', '+' or ')', found ${describe(close)}`);
    }
    const prev = this.tokens[this.k - 2];
    const after = context ?? (prev ? `after ${describe(prev)}` : 'at the start of the plan');
    this.stray(t);
    if (t.type === ')') throw inputError(t.at, `expected a task name or '(' ${after}, found ')'`);
    throw inputError(t.at, `expected a task name or '(' ${after}, found ${describe(t)}`);
  }
}

/** Parses expression text (one or more segments: lines of a file or an argument). */
export function parseExpression(segments: Segment[], source = segments[0]?.source ?? 'expression'): Node {
  const tokens = tokenize(segments);
  if (tokens.length === 1) throw sourceError(source, "empty plan: no expression to run (write one such as 'a | b; c')");
  return new Parser(tokens).parsePlan();
}

/** Splits text into one segment per line, for an expression given as a string. */
export function segmentsOf(text: string, source: string, line = 1, col = 1): Segment[] {
  return text.split('\n').map((t, i) => ({ source, line: line + i, col: i === 0 ? col : 1, text: t, lineText: t }));
}

export function parseExpressionText(text: string, source = 'expression'): Node {
  return parseExpression(segmentsOf(text, source), source);
}

/** Prints a node so that parsing the text gives the same tree (parentheses only where needed). */
export function printExpression(node: Node): string {
  if (node.kind === 'name') return node.name;
  const wrap = (n: Node, needed: boolean): string => (needed ? `(${printExpression(n)})` : printExpression(n));
  switch (node.kind) {
    case 'seq':
      return node.items.map((n) => wrap(n, n.kind === 'seq')).join('; ');
    case 'par':
      return node.items.map((n) => wrap(n, n.kind === 'seq' || n.kind === 'par')).join(' | ');
    case 'sum': {
      const by = node.by ? ` by ${node.by.map((b) => b.name).join(', ')}` : '';
      if (node.items.length === 1) return `+${wrap(node.items[0], node.items[0].kind !== 'name')}${by}`;
      return `${node.items.map((n) => wrap(n, n.kind !== 'name')).join(' + ')}${by}`;
    }
  }
}

/** The tree without positions: what round-trip tests compare. */
export type Shape = string | { [K in 'seq' | 'par' | 'sum']?: Shape[] };
export function shapeOf(node: Node): Shape {
  return node.kind === 'name' ? node.name : { [node.kind]: node.items.map(shapeOf) };
}
