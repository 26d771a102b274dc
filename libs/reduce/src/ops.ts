// The reduce operations. Each keeps only what it needs: sum/min/max/mean/count hold one running
// value (a million-run sweep costs constant memory); concat and cmd keep the values (they print
// them); histogram keeps one counter per distinct value.
import { Dec } from './decimal';
import { kindOf, parseJson, parseValue, plus, toPlain, toText, ValueError, type JVal } from './value';

/** One input as it arrives: a job's text, or the value of another reduce. */
export interface ReduceInput {
  /** job or reduce id, for error messages */
  id: string;
  /** place in plan order (concat, cmd) */
  pos: number;
  text?: string;
  val?: JVal;
}

export interface Reducer {
  readonly op: string;
  /** folds one input; throws ValueError for junk */
  add(input: ReduceInput): void;
  /** the current value as plain JSON; undefined when this op has no partial value (cmd) */
  partial(): unknown;
  /** the final value, as plain JSON and as a JVal for reduces that take this one as input */
  final(): Promise<{ plain: unknown; val: JVal }>;
}

export type CmdRunner = (command: string, stdin: string) => Promise<string>;

export const OPS = ['sum', 'min', 'max', 'mean', 'count', 'concat', 'histogram'] as const;

export function isValidOp(op: string): boolean {
  return (OPS as readonly string[]).includes(op) || (op.startsWith('cmd:') && op.slice(4).trim() !== '');
}

function valueOf(input: ReduceInput): JVal {
  if (input.val !== undefined) return input.val;
  return parseValue(input.text ?? '');
}

function textOf(input: ReduceInput): string {
  return input.text !== undefined ? input.text.trim() : toText(input.val ?? null);
}

function numberOf(input: ReduceInput): Dec {
  const v = valueOf(input);
  if (!(v instanceof Dec)) throw new ValueError(`${kindOf(v)} is not a number`);
  return v;
}

function clone(v: JVal): JVal {
  if (Array.isArray(v)) return v.map(clone);
  if (v !== null && typeof v === 'object' && !(v instanceof Dec)) {
    const out: { [key: string]: JVal } = Object.create(null);
    for (const [k, x] of Object.entries(v)) out[k] = clone(x);
    return out;
  }
  return v;
}

/** Adds b into a, reusing a's arrays and objects (a is owned by the reducer). */
function plusInto(a: JVal, b: JVal): JVal {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (const x of b) a.push(clone(x));
    return a;
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b) && !(a instanceof Dec) && !(b instanceof Dec)) {
    for (const [k, v] of Object.entries(b)) a[k] = k in a ? plusInto(a[k] as JVal, v) : clone(v);
    return a;
  }
  return plus(a, b);
}

class Sum implements Reducer {
  readonly op = 'sum';
  private acc: JVal | undefined;
  add(input: ReduceInput): void {
    const v = valueOf(input);
    this.acc = this.acc === undefined ? clone(v) : plusInto(this.acc, v);
  }
  partial(): unknown {
    return toPlain(this.acc ?? Dec.ZERO);
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    const val = this.acc ?? Dec.ZERO;
    return { plain: toPlain(val), val };
  }
}

class Extreme implements Reducer {
  private best: Dec | undefined;
  constructor(readonly op: 'min' | 'max') {}
  add(input: ReduceInput): void {
    const d = numberOf(input);
    if (this.best === undefined) this.best = d;
    else if (this.op === 'min' ? d.cmp(this.best) < 0 : d.cmp(this.best) > 0) this.best = d;
  }
  partial(): unknown {
    return this.best === undefined ? null : this.best.toJSONValue();
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    return { plain: this.partial(), val: this.best ?? null };
  }
}

class Mean implements Reducer {
  readonly op = 'mean';
  private sum = Dec.ZERO;
  private n = 0n;
  add(input: ReduceInput): void {
    this.sum = this.sum.add(numberOf(input));
    this.n += 1n;
  }
  private dec(): Dec | null {
    return this.n === 0n ? null : this.sum.divInt(this.n);
  }
  partial(): unknown {
    return this.dec()?.toApprox() ?? null;
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    return { plain: this.partial(), val: this.dec() };
  }
}

class Count implements Reducer {
  readonly op = 'count';
  private n = 0;
  add(): void {
    this.n += 1;
  }
  partial(): unknown {
    return this.n;
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    return { plain: this.n, val: Dec.fromInt(this.n) };
  }
}

/** Keeps (position, text) pairs; the final value is in plan order. */
class Lines {
  protected items: Array<[number, string]> = [];
  protected sorted = true;
  add(input: ReduceInput): void {
    const last = this.items[this.items.length - 1];
    if (last && last[0] > input.pos) this.sorted = false;
    this.items.push([input.pos, textOf(input)]);
  }
  protected lines(): string[] {
    if (!this.sorted) {
      this.items.sort((a, b) => a[0] - b[0]);
      this.sorted = true;
    }
    return this.items.map(([, t]) => t);
  }
}

class Concat extends Lines implements Reducer {
  readonly op = 'concat';
  partial(): unknown {
    return this.lines().join('\n');
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    const text = this.lines().join('\n');
    return { plain: text, val: text };
  }
}

class Command extends Lines implements Reducer {
  constructor(
    readonly op: string,
    private readonly runner: CmdRunner,
  ) {
    super();
  }
  partial(): unknown {
    return undefined;
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    const lines = this.lines();
    const out = (await this.runner(this.op.slice(4), lines.length ? `${lines.join('\n')}\n` : '')).trim();
    let val: JVal = out;
    try {
      val = parseValue(out);
    } catch {
      try {
        val = parseJson(out);
      } catch {
        val = out;
      }
    }
    return { plain: toPlain(val), val };
  }
}

class Histogram implements Reducer {
  readonly op = 'histogram';
  private counts = new Map<string, number>();
  add(input: ReduceInput): void {
    const t = textOf(input);
    this.counts.set(t, (this.counts.get(t) ?? 0) + 1);
  }
  partial(): unknown {
    const keys = [...this.counts.keys()];
    const nums = keys.map((k) => Number(k));
    const numeric = keys.length > 0 && nums.every((n, i) => keys[i] !== '' && Number.isFinite(n));
    const order = keys.map((k, i) => [k, nums[i] as number] as const);
    order.sort(numeric ? (a, b) => a[1] - b[1] : (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const out: Record<string, number> = {};
    for (const [k] of order) out[k] = this.counts.get(k) as number;
    return out;
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    const plain = this.partial() as Record<string, number>;
    const val: { [key: string]: JVal } = Object.create(null);
    for (const [k, n] of Object.entries(plain)) val[k] = Dec.fromInt(n);
    return { plain, val };
  }
}

export function makeReducer(op: string, runner: CmdRunner): Reducer {
  switch (op) {
    case 'sum':
      return new Sum();
    case 'min':
    case 'max':
      return new Extreme(op);
    case 'mean':
      return new Mean();
    case 'count':
      return new Count();
    case 'concat':
      return new Concat();
    case 'histogram':
      return new Histogram();
    default:
      if (isValidOp(op)) return new Command(op, runner);
      throw new ValueError(`unknown op ${JSON.stringify(op)} (use ${OPS.join(', ')} or cmd:<shell command>)`);
  }
}
