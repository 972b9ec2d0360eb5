// Small numeric helpers shared across floors: clamping and the rounding of reported timings.

/** `x` clamped to [0, 1]; NaN becomes 0, so no NaN travels downstream. */
export function clamp01(x: number): number {
  return x < 0 || Number.isNaN(x) ? 0 : Math.min(x, 1);
}

/** Milliseconds to one decimal, as reports and `--json` show them. */
export function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** A measure to three decimals, as reports and curation verdicts show them. */
export function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** Every value of a timings record rounded with {@link roundMs}. */
export function roundTimings(timings: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, roundMs(v)]));
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/**
 * A size in bytes from text: a number with an optional unit K, M, G or T (powers of 1024; `B`,
 * `iB` and any case accepted), e.g. `2G`, `512MiB`, `1.5 GB`, `0`.
 * @returns undefined when the text is not such a size
 */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}
