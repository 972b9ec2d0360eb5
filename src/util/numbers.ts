// Small numeric helpers shared across floors: clamping and the rounding of reported timings.

/** `x` clamped to [0, 1]; NaN becomes 0, so no NaN travels downstream. */
export function clamp01(x: number): number {
  return x < 0 || Number.isNaN(x) ? 0 : Math.min(x, 1);
}

/** Milliseconds to one decimal, as reports and `--json` show them. */
export function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Every value of a timings record rounded with {@link roundMs}. */
export function roundTimings(timings: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, roundMs(v)]));
}
