// Which lane of its host each attempt is drawn in: greedy by start, the free lane that ended first.

export interface Interval {
  start: number;
  end: number;
}

/**
 * Lane of each interval (same order as given) and the lanes used. With `cap`, never more than cap
 * lanes: an interval that finds none free (clocks rounded to ms, a host record with fewer slots than
 * the run used) goes to the lane that ends first.
 */
export function assignLanes(items: Interval[], cap?: number): { lane: number[]; lanes: number } {
  const order = items.map((_, i) => i).sort((a, b) => items[a]!.start - items[b]!.start || items[a]!.end - items[b]!.end);
  const laneEnd: number[] = [];
  const lane = new Array<number>(items.length).fill(0);
  for (const i of order) {
    const it = items[i]!;
    let best = -1;
    let earliest = -1;
    for (let l = 0; l < laneEnd.length; l++) {
      if (laneEnd[l]! <= it.start) {
        best = l;
        break;
      }
      if (earliest < 0 || laneEnd[l]! < laneEnd[earliest]!) earliest = l;
    }
    if (best < 0) best = cap !== undefined && laneEnd.length >= cap ? earliest : laneEnd.length;
    laneEnd[best] = Math.max(laneEnd[best] ?? 0, it.end);
    lane[i] = best;
  }
  return { lane, lanes: laneEnd.length };
}
