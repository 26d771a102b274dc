// Small statistics for the report: sorted-array percentiles, mean and spread, histograms, running
// jobs over time.
import type { Histogram } from './data';

/** numpy's default percentile (linear between closest ranks) of an ascending array. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const h = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** mean and sample standard deviation (n - 1; null for fewer than 2) */
export function meanSd(xs: number[]): { mean: number | null; sd: number | null } {
  if (xs.length === 0) return { mean: null, sd: null };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean, sd: null };
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, sd: Math.sqrt(v) };
}

export function histogram(xs: number[], bins = 20): Histogram | null {
  if (xs.length === 0) return null;
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const n = min === max ? 1 : Math.min(bins, Math.max(1, Math.ceil(Math.sqrt(xs.length))));
  const width = (max - min) / n || 1;
  const counts = new Array<number>(n).fill(0);
  for (const x of xs) counts[Math.min(n - 1, Math.floor((x - min) / width))]! += 1;
  return { edges: counts.map((_, i) => min + i * width), counts, max };
}

/**
 * Mean number of intervals open in each of `bins` equal bins over [0, wall] (time-weighted), for
 * every group (host) and in total.
 */
export function runningOverTime(
  intervals: { start: number; end: number; group: number }[],
  groups: number,
  wall: number,
  bins: number,
): { t: number[]; total: number[]; perGroup: number[][] } {
  const n = wall > 0 ? bins : 1;
  const width = wall > 0 ? wall / n : 1;
  const perGroup = Array.from({ length: groups }, () => new Array<number>(n).fill(0));
  for (const { start, end, group } of intervals) {
    if (end <= start) continue;
    const row = perGroup[group]!;
    const first = Math.min(n - 1, Math.floor(start / width));
    const last = Math.min(n - 1, Math.floor(end / width));
    for (let b = first; b <= last; b++) {
      const lo = Math.max(start, b * width);
      const hi = Math.min(end, (b + 1) * width);
      if (hi > lo) row[b]! += (hi - lo) / width;
    }
  }
  const total = new Array<number>(n).fill(0);
  for (const row of perGroup) for (let b = 0; b < n; b++) total[b]! += row[b]!;
  const round = (x: number) => Math.round(x * 100) / 100;
  return { t: total.map((_, b) => Math.round(b * width)), total: total.map(round), perGroup: perGroup.map((r) => r.map(round)) };
}
