// Loss-weight maps and the feathered subject alpha they share with background suppression: an exact
// Euclidean distance transform of the mask, then a linear ramp over `feather` pixels outside it.

/** Parameters of {@link featherAlpha}. */
export interface FeatherAlphaParams {
  /** Binary mask, `width × height`, row-major; any non-zero value is subject. */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
  /**
   * Width of the soft edge in pixels, measured outwards from the mask boundary. The subject itself
   * always keeps alpha 1: PerSAM masks err on both sides, and a few pixels of real background around
   * the subject are harmless in a training image while a cut-off ear or paw is learned as the subject.
   * `0` gives a hard edge.
   * @default 8
   */
  readonly feather?: number;
}

/** Parameters of {@link lossWeightMap}. */
export interface LossWeightMapParams extends FeatherAlphaParams {
  /**
   * Weight of background pixels in [0, 1], stored as `round(bgWeight × 255)`. Not 0 by default: a small
   * floor keeps the model from learning arbitrary pixels where the mask is wrong.
   * @default 0.1
   */
  readonly bgWeight?: number;
  /**
   * The {@link featherAlpha} of this mask and feather when the caller already has it (background
   * suppression uses the same one), so the distance transform runs once.
   * @default computed from `mask` and `feather`
   */
  readonly alpha?: Float32Array;
}

/** Default background weight of {@link lossWeightMap}. */
export const DEFAULT_BG_WEIGHT = 0.1;
/** Default feather width in pixels. */
export const DEFAULT_FEATHER = 8;

const FAR = 1e20;

function checkPlane(name: string, mask: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new RangeError(
      `Expected positive integer width and height for ${name} but received ${width}×${height}`,
    );
  }
  if (mask.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} mask values (${width}×${height}) for ${name} but received ${mask.length}`,
    );
  }
}

function checkFeather(feather: number): void {
  if (!Number.isFinite(feather) || feather < 0) {
    throw new RangeError(`Expected a finite number ≥ 0 for feather but received ${feather}`);
  }
}

/**
 * 1-D squared Euclidean distance transform (Felzenszwalb & Huttenlocher, 2012) of `f` (0 on the mask,
 * FAR elsewhere) of length `n`, written into `d`. `v` and `z` are scratch buffers of length n and n+1.
 */
function edt1d(f: Float64Array, n: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = Number.NEGATIVE_INFINITY;
  z[1] = Number.POSITIVE_INFINITY;
  for (let q = 1; q < n; q++) {
    const fq = f[q]! + q * q;
    let s: number;
    // z[0] is −∞, so k never drops below 0 (all values of f are finite).
    for (;;) {
      const p = v[k]!;
      s = (fq - (f[p]! + p * p)) / (2 * q - 2 * p);
      if (s <= z[k]!) k--;
      else break;
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Number.POSITIVE_INFINITY;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1]! < q) k++;
    const p = v[k]!;
    d[q] = (q - p) * (q - p) + f[p]!;
  }
}

/**
 * Squared Euclidean distance from every pixel centre to the nearest mask pixel centre (0 on the mask;
 * a huge value everywhere when the mask is empty). Exact, O(width × height), buffers allocated once.
 */
export function squaredDistanceToMask(mask: Uint8Array, width: number, height: number): Float32Array {
  checkPlane("squaredDistanceToMask", mask, width, height);
  const n = Math.max(width, height);
  const f = new Float64Array(n);
  const d = new Float64Array(n);
  const v = new Int32Array(n);
  const z = new Float64Array(n + 1);
  const out = new Float32Array(width * height);
  // Columns first, then rows.
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) f[y] = mask[y * width + x] ? 0 : FAR;
    edt1d(f, height, d, v, z);
    for (let y = 0; y < height; y++) out[y * width + x] = d[y]!;
  }
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) f[x] = out[row + x]!;
    edt1d(f, width, d, v, z);
    for (let x = 0; x < width; x++) out[row + x] = d[x]!;
  }
  return out;
}

/**
 * Soft subject alpha in [0, 1]: 1 on the mask, then a linear ramp down to 0 over `feather` pixels
 * outside it (alpha = (feather + 0.5 − d) / feather at distance d from the nearest mask pixel, so the
 * ramp starts at the mask boundary and ends `feather` pixels out).
 * @throws RangeError when the mask length does not match the size or `feather` is negative.
 */
export function featherAlpha(params: FeatherAlphaParams): Float32Array {
  const { mask, width, height } = params;
  const feather = params.feather ?? DEFAULT_FEATHER;
  checkFeather(feather);
  checkPlane("featherAlpha", mask, width, height);
  const alpha = new Float32Array(width * height);
  if (feather === 0) {
    for (let i = 0; i < alpha.length; i++) alpha[i] = mask[i] ? 1 : 0;
    return alpha;
  }
  const d2 = squaredDistanceToMask(mask, width, height);
  const reach = (feather + 0.5) * (feather + 0.5);
  for (let i = 0; i < alpha.length; i++) {
    const s = d2[i]!;
    if (s === 0) alpha[i] = 1;
    else if (s < reach) alpha[i] = Math.min(1, (feather + 0.5 - Math.sqrt(s)) / feather);
  }
  return alpha;
}

/**
 * The 8-bit loss-weight map written to `weights/`: 255 on the subject, `round(bgWeight × 255)` on the
 * background and a linear feathered edge between them (see {@link featherAlpha}). Every value lies in
 * `[round(bgWeight × 255), 255]`.
 * @throws RangeError when `bgWeight` is outside [0, 1], `feather` is negative or the mask length does
 * not match the size.
 */
export function lossWeightMap(params: LossWeightMapParams): Uint8Array {
  const bgWeight = params.bgWeight ?? DEFAULT_BG_WEIGHT;
  if (!Number.isFinite(bgWeight) || bgWeight < 0 || bgWeight > 1) {
    throw new RangeError(`Expected a number in [0, 1] for bgWeight but received ${bgWeight}`);
  }
  const alpha = params.alpha ?? featherAlpha(params);
  if (alpha.length !== params.width * params.height) {
    throw new RangeError(
      `Expected ${params.width * params.height} values (${params.width}×${params.height}) for alpha but received ${alpha.length}`,
    );
  }
  const bg = Math.round(bgWeight * 255);
  const span = 255 - bg;
  const out = new Uint8Array(alpha.length);
  for (let i = 0; i < out.length; i++) out[i] = bg + Math.round(span * alpha[i]!);
  return out;
}
