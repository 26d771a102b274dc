// The reduce operations. Each keeps only what it needs: sum/min/max/mean/count/stddev hold running
// values (a million-run sweep costs constant memory); median and pNN keep every number (a rank
// needs them all); concat and cmd keep the values (they print them); histogram keeps one counter
// per distinct value.
import { Dec, parseDec } from './decimal';
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

export const OPS = ['sum', 'min', 'max', 'mean', 'median', 'stddev', 'count', 'concat', 'histogram'] as const;

/** The NN of a pNN op (0 < NN < 100, decimals allowed: p99.9), or undefined. */
function percentOf(op: string): Dec | undefined {
  const m = /^p(\d{1,2}(?:\.\d{1,6})?)$/.exec(op);
  const d = m ? parseDec(m[1] as string) : null;
  return d && d.cmp(Dec.ZERO) > 0 ? d : undefined;
}

export function isValidOp(op: string): boolean {
  return (OPS as readonly string[]).includes(op) || percentOf(op) !== undefined || (op.startsWith('cmd:') && op.slice(4).trim() !== '');
}

/**
 * The ops of an --op or a reduce record's op: a comma list (`mean,p90`), except that `cmd:SHELL`
 * is always one op (its shell may hold commas). Throws ValueError naming the first unknown op.
 */
export function parseOps(spec: string): string[] {
  if (spec.startsWith('cmd:')) {
    if (!isValidOp(spec)) throw new ValueError(`op ${JSON.stringify(spec)} has no command`);
    return [spec];
  }
  const ops = spec.split(',').map((o) => o.trim());
  for (const op of ops) {
    if (!isValidOp(op)) throw new ValueError(`${JSON.stringify(op)} is not an op (${OPS.join(', ')}, pNN for 0 < NN < 100, cmd:<shell>)`);
  }
  if (new Set(ops).size !== ops.length) throw new ValueError(`op ${JSON.stringify(spec)} names an op twice`);
  return ops;
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

/**
 * Sample standard deviation (n - 1 in the denominator, numpy's ddof=1) from exact running sums:
 * n * sum(x^2) - sum(x)^2 has no rounding to cancel, so only the final square root rounds.
 * Fewer than two numbers have none: null.
 */
class Stddev implements Reducer {
  readonly op = 'stddev';
  private n = 0n;
  private s1 = Dec.ZERO;
  private s2 = Dec.ZERO;
  add(input: ReduceInput): void {
    const d = numberOf(input);
    this.n += 1n;
    this.s1 = this.s1.add(d);
    this.s2 = this.s2.add(d.mul(d));
  }
  private dec(): Dec | null {
    if (this.n < 2n) return null;
    return Dec.fromInt(this.n).mul(this.s2).sub(this.s1.mul(this.s1)).sqrtDivInt(this.n * (this.n - 1n));
  }
  partial(): unknown {
    return this.dec()?.toApprox() ?? null;
  }
  async final(): Promise<{ plain: unknown; val: JVal }> {
    return { plain: this.partial(), val: this.dec() };
  }
}

const HUNDREDTH = new Dec(1n, 2);

/**
 * The NN-th percentile by linear interpolation between closest ranks (numpy's default, "linear"):
 * with the n numbers sorted x[0..n-1], h = (n - 1) * NN / 100, the value is
 * x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h]). Exact in decimals. Keeps every number.
 */
class Percentile implements Reducer {
  private xs: Dec[] = [];
  private sorted = true;
  constructor(
    readonly op: string,
    private readonly percent: Dec,
  ) {}
  add(input: ReduceInput): void {
    const d = numberOf(input);
    const last = this.xs[this.xs.length - 1];
    if (last && last.cmp(d) > 0) this.sorted = false;
    this.xs.push(d);
  }
  private dec(): Dec | null {
    const n = this.xs.length;
    if (n === 0) return null;
    if (!this.sorted) {
      // Mostly sorted already between partial values: the sort's runs make this near linear.
      this.xs.sort((a, b) => a.cmp(b));
      this.sorted = true;
    }
    const h = Dec.fromInt(n - 1).mul(this.percent).mul(HUNDREDTH);
    const lo = h.floor();
    const frac = h.sub(Dec.fromInt(lo));
    const x = this.xs[Number(lo)] as Dec;
    if (frac.m === 0n) return x;
    const next = this.xs[Number(lo) + 1] as Dec;
    return x.add(frac.mul(next.sub(x)));
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
    case 'median':
      return new Percentile(op, Dec.fromInt(50));
    case 'stddev':
      return new Stddev();
    case 'count':
      return new Count();
    case 'concat':
      return new Concat();
    case 'histogram':
      return new Histogram();
    default: {
      const percent = percentOf(op);
      if (percent) return new Percentile(op, percent);
      if (isValidOp(op)) return new Command(op, runner);
      throw new ValueError(`unknown op ${JSON.stringify(op)} (use ${OPS.join(', ')}, pNN or cmd:<shell command>)`);
    }
  }
}
