// Which host a job that may run anywhere goes to: the one with the most free slots, the first in
// inventory order on a tie. A scan over every host per job would make each job cost more on a
// thousand hosts than on four; this max tree answers in O(log hosts) and updates in the same.

/** Free slots per host (by index), and the host with the most. */
export class SlotPool {
  private readonly size: number;
  /** tree[1] is the root; leaves start at `size`; each node holds the max of its children */
  private readonly tree: Float64Array;

  constructor(hosts: number) {
    let size = 1;
    while (size < hosts) size *= 2;
    this.size = size;
    this.tree = new Float64Array(2 * size).fill(-Infinity);
  }

  /** Host `i` has `free` slots now; a host that is down has none to give (-Infinity). */
  set(i: number, free: number): void {
    let n = this.size + i;
    this.tree[n] = free;
    for (n >>= 1; n >= 1; n >>= 1) this.tree[n] = Math.max(this.tree[2 * n]!, this.tree[2 * n + 1]!);
  }

  /** The first host with the most free slots, or -1 when no host has one. */
  best(): number {
    const top = this.tree[1]!;
    if (!(top > 0)) return -1;
    let n = 1;
    while (n < this.size) n = this.tree[2 * n] === top ? 2 * n : 2 * n + 1;
    return n - this.size;
  }
}
