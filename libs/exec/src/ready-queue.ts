import { SlotPool } from './slot-pool';

// Jobs ready to start, oldest first, and the host each goes to. A job pinned to a host or a tag
// that is full must wait while later jobs start elsewhere; skipping past it, job by job, on every
// slot that frees made a pinned job cost as much as the jobs waiting behind it (a thousand, or
// twice the slots of a big inventory). Jobs are kept by the hosts they may run on (a class: all
// hosts, or the list one pin names), each class with its own SlotPool, so the oldest job that can
// start is found in O(log classes) and a full class is passed over as a whole, until a slot frees
// on one of its hosts.

interface Class<T> {
  /** host indices, without repeats, in the order the pin named them */
  hosts: number[];
  pool: SlotPool;
  items: T[];
  seqs: number[];
  head: number;
  /** in the heap of classes to look at; else empty, or blocked until a slot frees on its hosts */
  queued: boolean;
}

export class ReadyQueue<T> {
  private readonly classes = new Map<readonly number[], Class<T>>();
  /** the classes each host is in, with its place there */
  private readonly ofHost: Array<Array<[Class<T>, number]>>;
  /** classes with jobs that may find a free host, by the age of their oldest job */
  private heap: Array<Class<T>> = [];
  private readonly free: Float64Array;
  private seq = 0;
  private count = 0;

  /** `hosts` hosts, each with `free[i]` slots free (-Infinity: down) */
  constructor(free: readonly number[]) {
    this.free = Float64Array.from(free);
    this.ofHost = free.map(() => []);
  }

  /** Jobs queued. */
  get size(): number {
    return this.count;
  }

  /**
   * Host `i` has `free` slots now (-Infinity once down). A slot freed there may let the classes it
   * is in start their next job.
   */
  setFree(i: number, free: number): void {
    this.free[i] = free;
    for (const [c, k] of this.ofHost[i]!) {
      c.pool.set(k, free);
      if (free > 0 && !c.queued && c.head < c.items.length) this.enqueue(c);
    }
  }

  /** Queues `item`, which may run on the hosts `eligible` (the same array for the same pin). */
  push(item: T, eligible: readonly number[]): void {
    const c = this.classes.get(eligible) ?? this.open(eligible);
    c.items.push(item);
    c.seqs.push(this.seq++);
    this.count += 1;
    if (!c.queued && c.items.length - c.head === 1 && c.pool.best() >= 0) this.enqueue(c);
  }

  /**
   * The oldest job that has a free host now, and the first of its hosts with the most free slots;
   * taken off the queue. Undefined when every queued job waits for a slot.
   */
  shift(): [T, number] | undefined {
    while (this.heap.length > 0) {
      const c = this.heap[0]!;
      const host = c.pool.best();
      this.pop();
      c.queued = false;
      if (host < 0) continue;
      const item = c.items[c.head]!;
      c.items[c.head] = undefined as T;
      c.head += 1;
      this.count -= 1;
      if (c.head === c.items.length) this.empty(c);
      else {
        if (c.head > 1024 && c.head * 2 > c.items.length) {
          c.items = c.items.slice(c.head);
          c.seqs = c.seqs.slice(c.head);
          c.head = 0;
        }
        this.enqueue(c);
      }
      return [item, c.hosts[host]!];
    }
    return undefined;
  }

  /** Takes off the queue the jobs of every class that has host `i` and no host that is up. */
  dropStranded(i: number): T[] {
    const out: T[] = [];
    for (const [c] of this.ofHost[i]!) {
      if (c.head === c.items.length || c.hosts.some((h) => this.free[h] !== -Infinity)) continue;
      out.push(...c.items.slice(c.head));
      this.count -= c.items.length - c.head;
      this.empty(c);
    }
    if (out.length > 0) {
      // (a class emptied in the middle of the heap: the others are put back in order)
      const left = this.heap.filter((c) => c.queued);
      this.heap = [];
      for (const c of left) this.enqueue(c);
    }
    return out;
  }

  /** Forgets every queued job. */
  clear(): void {
    for (const c of this.classes.values()) this.empty(c);
    this.heap = [];
    this.count = 0;
  }

  private empty(c: Class<T>): void {
    c.items = [];
    c.seqs = [];
    c.head = 0;
    c.queued = false;
  }

  private open(eligible: readonly number[]): Class<T> {
    const hosts = [...new Set(eligible)];
    const c: Class<T> = { hosts, pool: new SlotPool(hosts.length), items: [], seqs: [], head: 0, queued: false };
    hosts.forEach((h, k) => {
      c.pool.set(k, this.free[h]!);
      this.ofHost[h]!.push([c, k]);
    });
    this.classes.set(eligible, c);
    return c;
  }

  // a binary min-heap of classes by the queue number of their oldest job
  private enqueue(c: Class<T>): void {
    c.queued = true;
    const h = this.heap;
    let i = h.push(c) - 1;
    const key = c.seqs[c.head]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.seqs[h[p]!.head]! <= key) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = c;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    const key = last.seqs[last.head]!;
    let i = 0;
    for (;;) {
      let m = 2 * i + 1;
      if (m >= h.length) break;
      if (m + 1 < h.length && h[m + 1]!.seqs[h[m + 1]!.head]! < h[m]!.seqs[h[m]!.head]!) m += 1;
      if (h[m]!.seqs[h[m]!.head]! >= key) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
  }
}
