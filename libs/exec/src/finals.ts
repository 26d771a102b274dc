// How every ended job of a run ended, by id, in about 25 bytes a job: a run of a million jobs keeps
// this for the dependencies of jobs still to come and to refuse a duplicate id, and a Map of
// strings (some 60-70 bytes a job, and V8's heap growing past that) is what put cm-exec over
// 200 MB there. Job ids are ASCII (the protocol's SafeId): their bytes go into one buffer, found
// through an open-addressing table of offsets. Any other id (a test's, an engine's own) goes into
// a plain Map.

/** How a job ended, as the Scheduler counts it. */
export type Final = 'ok' | 'failed' | 'gave-up' | 'skipped';

const FINALS: readonly Final[] = ['ok', 'failed', 'gave-up', 'skipped'];
const CODE: Record<Final, number> = { ok: 0, failed: 1, 'gave-up': 2, skipped: 3 };

export class FinalIds {
  private bytes = Buffer.alloc(1 << 16);
  private used = 0;
  private offsets = new Uint32Array(1 << 12);
  private lengths = new Uint32Array(1 << 12);
  private codes = new Uint8Array(1 << 12);
  private count = 0;
  /** entry index + 1 per slot, 0 when free; never more than half full */
  private slots = new Int32Array(1 << 13);
  private readonly others = new Map<string, Final>();

  get size(): number {
    return this.count + this.others.size;
  }

  get(id: string): Final | undefined {
    if (!isAscii(id)) return this.others.get(id);
    const e = this.find(id);
    return e < 0 ? undefined : FINALS[this.codes[e]!];
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  set(id: string, how: Final): void {
    if (!isAscii(id)) {
      this.others.set(id, how);
      return;
    }
    const found = this.find(id);
    if (found >= 0) {
      this.codes[found] = CODE[how];
      return;
    }
    if ((this.count + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    if (this.count === this.offsets.length) this.growEntries();
    while (this.used + id.length > this.bytes.length) {
      const bigger = Buffer.alloc(this.bytes.length * 2);
      this.bytes.copy(bigger, 0, 0, this.used);
      this.bytes = bigger;
    }
    const e = this.count++;
    this.offsets[e] = this.used;
    this.lengths[e] = id.length;
    this.codes[e] = CODE[how];
    this.used += this.bytes.write(id, this.used, 'latin1');
    this.place(e, hashOf(id));
  }

  /** The entry holding `id`, or -1. */
  private find(id: string): number {
    const mask = this.slots.length - 1;
    for (let s = hashOf(id) & mask; ; s = (s + 1) & mask) {
      const v = this.slots[s]!;
      if (v === 0) return -1;
      if (this.equals(v - 1, id)) return v - 1;
    }
  }

  private equals(e: number, id: string): boolean {
    if (this.lengths[e] !== id.length) return false;
    const off = this.offsets[e]!;
    for (let k = 0; k < id.length; k++) if (this.bytes[off + k] !== id.charCodeAt(k)) return false;
    return true;
  }

  private place(e: number, hash: number): void {
    const mask = this.slots.length - 1;
    let s = hash & mask;
    while (this.slots[s] !== 0) s = (s + 1) & mask;
    this.slots[s] = e + 1;
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    for (let e = 0; e < this.count; e++) this.place(e, hashOf(this.bytes.toString('latin1', this.offsets[e]!, this.offsets[e]! + this.lengths[e]!)));
  }

  private growEntries(): void {
    const n = this.offsets.length * 2;
    const grow = <T extends Uint32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.offsets = grow(this.offsets, (k) => new Uint32Array(k));
    this.lengths = grow(this.lengths, (k) => new Uint32Array(k));
    this.codes = grow(this.codes, (k) => new Uint8Array(k));
  }
}

function isAscii(id: string): boolean {
  for (let k = 0; k < id.length; k++) if (id.charCodeAt(k) > 0x7f) return false;
  return true;
}

/** FNV-1a over the characters, as a 31-bit non-negative number. */
function hashOf(id: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < id.length; k++) h = Math.imul(h ^ id.charCodeAt(k), 0x01000193);
  return h >>> 1;
}
