// Summary statistics of repeated timings: median, 10th/90th percentiles (linear interpolation, as
// numpy's default), min, mean and the number of runs.

/** Summary of one measured quantity, all values in milliseconds. */
export interface Stats {
  readonly runs: number;
  readonly median: number;
  readonly p10: number;
  readonly p90: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * The `q`-quantile (0–1) of ascending-sorted values, linearly interpolated between the two nearest
 * ranks (numpy `percentile(..., method="linear")`).
 * @throws {Error} for an empty array or q outside [0, 1].
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error("Expected at least one value for quantile but received none");
  if (!(q >= 0 && q <= 1)) throw new Error(`Expected a number in [0, 1] for q but received ${q}`);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * Summarise samples (any order).
 * @throws {Error} for an empty array.
 */
export function summarize(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new Error("Expected at least one sample for summarize but received none");
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    runs: sorted.length,
    median: quantile(sorted, 0.5),
    p10: quantile(sorted, 0.1),
    p90: quantile(sorted, 0.9),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length,
  };
}
