// Exact decimal numbers: a BigInt mantissa and a power-of-ten scale. Sums of integers beyond 2^53
// and of decimals like 0.1 + 0.2 stay exact; only mean (a division) rounds.

/** The value m / 10^s, with s >= 0. */
export class Dec {
  constructor(
    readonly m: bigint,
    readonly s: number,
  ) {}

  static readonly ZERO = new Dec(0n, 0);

  static fromInt(n: number | bigint): Dec {
    return new Dec(BigInt(n), 0);
  }

  add(o: Dec): Dec {
    const s = Math.max(this.s, o.s);
    return new Dec(this.m * 10n ** BigInt(s - this.s) + o.m * 10n ** BigInt(s - o.s), s).normal();
  }

  neg(): Dec {
    return new Dec(-this.m, this.s);
  }

  sub(o: Dec): Dec {
    return this.add(o.neg());
  }

  mul(o: Dec): Dec {
    return new Dec(this.m * o.m, this.s + o.s).normal();
  }

  /** The integer part, rounded toward minus infinity. */
  floor(): bigint {
    const p = 10n ** BigInt(this.s);
    const q = this.m / p;
    return this.m < 0n && q * p !== this.m ? q - 1n : q;
  }

  /**
   * The square root of this / n (this >= 0, n > 0), truncated to `digits` significant digits or
   * more: exact integer arithmetic, so neither a tiny nor a huge variance loses its digits.
   */
  sqrtDivInt(n: bigint, digits = 20): Dec {
    if (this.m < 0n || n <= 0n) throw new RangeError('square root of a negative number');
    // The root is at least 10^-(s/2) / sqrt(n) when this is not 0: that many more fractional digits.
    const k = Math.ceil(this.s / 2) + Math.ceil(n.toString().length / 2) + digits;
    // sqrt(m / 10^s / n) * 10^k = sqrt(m * 10^(2k - s) / n)
    return new Dec(isqrt((this.m * 10n ** BigInt(2 * k - this.s)) / n), k).normal();
  }

  cmp(o: Dec): number {
    const s = Math.max(this.s, o.s);
    const a = this.m * 10n ** BigInt(s - this.s);
    const b = o.m * 10n ** BigInt(s - o.s);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** this / n, rounded half away from zero to `digits` fractional digits. */
  divInt(n: bigint, digits = 18): Dec {
    if (n === 0n) throw new RangeError('division by zero');
    const scaled = this.m * 10n ** BigInt(digits);
    const d = n * 10n ** BigInt(this.s);
    let q = scaled / d;
    const r = scaled % d;
    const neg = scaled < 0n !== d < 0n;
    if ((r < 0n ? -r : r) * 2n >= (d < 0n ? -d : d)) q += neg ? -1n : 1n;
    return new Dec(q, digits).normal();
  }

  /** Drops trailing fractional zeros so equal values print alike. */
  normal(): Dec {
    let { m, s } = this;
    while (s > 0 && m % 10n === 0n) {
      m /= 10n;
      s -= 1;
    }
    return m === this.m && s === this.s ? this : new Dec(m, s);
  }

  toString(): string {
    const neg = this.m < 0n;
    let digits = (neg ? -this.m : this.m).toString();
    if (this.s === 0) return (neg ? '-' : '') + digits;
    if (digits.length <= this.s) digits = '0'.repeat(this.s - digits.length + 1) + digits;
    const cut = digits.length - this.s;
    return `${neg ? '-' : ''}${digits.slice(0, cut)}.${digits.slice(cut)}`;
  }

  /**
   * The JSON form: a number when that number prints back as the same decimal (so no digit is
   * lost), else the decimal string (integers beyond 2^53, long decimals).
   */
  toJSONValue(): number | string {
    const text = this.toString();
    const n = Number(text);
    // An integer beyond 2^53 may print back unchanged yet stand for a neighbour too: a string then.
    if (this.s === 0) return Number.isSafeInteger(n) ? n : text;
    return Number.isFinite(n) && String(n) === text && Math.abs(n) < 2 ** 53 ? n : text;
  }

  /** Rounded to a double, for values that are approximate anyway (mean). */
  toApprox(): number | string {
    const n = Number(this.toString());
    return Math.abs(n) < 2 ** 53 ? n : this.toString();
  }
}

const NUMBER = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Parses a plain decimal number (`12`, `-0.5`, `1e3`, `+.25`); null for anything else, units included. */
export function parseDec(text: string): Dec | null {
  const m = NUMBER.exec(text);
  if (!m) return null;
  const [, sign, int = '', frac = '', exp] = m;
  if (int === '' && frac === '') return null;
  const e = exp === undefined ? 0 : Number(exp);
  // A huge exponent would make a huge BigInt: treat it as junk rather than hang.
  if (!Number.isSafeInteger(e) || Math.abs(e) > 10000) return null;
  let mant = BigInt(`${int}${frac}` || '0');
  if (sign === '-') mant = -mant;
  let s = frac.length - e;
  if (s < 0) {
    mant *= 10n ** BigInt(-s);
    s = 0;
  }
  return new Dec(mant, s).normal();
}

/** floor(sqrt(n)) for n >= 0, by Newton's method on BigInt. */
export function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}
