// SAM preprocessing over plain typed arrays (persam-spec §1, §7.1 step 1): resize shape, bit-exact
// PIL bilinear resize, normalise + pad, prompt coordinate transforms and the reference-mask grid.

import type { Box, Point, Size, Tensor } from "../../util/tensor.js";
import { torchBilinearTaps } from "./postprocess.js";
import { type PilTaps, resizeRgbSimd } from "./preprocess-simd.js";
import { ENCODER_SIDE, GRID_SIDE, HALF, PIXEL_MEAN, PIXEL_STD, PRECISION_BITS } from "./sam-constants.js";

/**
 * Size `[h_in, w_in]` of an `height × width` image resized so that its long side is `longSide`
 * (persam-spec §1.1.2, SA `get_preprocess_shape`): `scale = longSide / max(H, W)` in float64, then
 * `floor(H·scale + 0.5)` per axis, multiplied in that order so that ties round as the reference.
 * Deviation: a side the reference would round to 0 (e.g. 1×2049) is kept at 1 pixel, because a
 * zero-sized image cannot be resized (the reference crashes there).
 * @default longSide 1024
 * @throws RangeError when a size is not a positive integer.
 */
export function preprocessShape(height: number, width: number, longSide = ENCODER_SIDE): Size {
  checkSize("height", height);
  checkSize("width", width);
  checkSize("longSide", longSide);
  const scale = (longSide * 1.0) / Math.max(height, width);
  return [Math.max(1, Math.floor(height * scale + 0.5)), Math.max(1, Math.floor(width * scale + 0.5))];
}

/**
 * PIL `precompute_coeffs` + `normalize_coeffs_8bpc` for the BILINEAR (triangle, support 1) filter
 * (persam-spec §1.1.3). Multiplication by `1/filterscale`, truncating casts and round-half-away
 * fixed-point conversion are kept exactly as in PIL: they decide ties bit for bit.
 */
function pilTaps(inSize: number, outSize: number): PilTaps {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weight = new Int32Array(outSize * ksize);
  const ss = 1.0 / filterscale;
  const k = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = Math.max(0, 1 - Math.abs((x + xmin - center + 0.5) * ss));
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      const fixed = w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS);
      weight[o * ksize + x] = Math.trunc(fixed);
    }
    start[o] = xmin;
    count[o] = Math.max(0, xmax);
  }
  return { start, count, weight, ksize };
}

/**
 * Bit-exact PIL `Image.resize(size, BILINEAR)` of interleaved uint8 pixels (persam-spec §1.1.3):
 * horizontal pass first, then vertical, each skipped when its axis keeps its size; the intermediate
 * is uint8; downscaling widens the triangle by the scale factor (antialiased). Channels are
 * independent, so any channel count works (1 for a mask's red channel, 3 for RGB; both have their
 * own fast horizontal kernel).
 *
 * Why the fast paths stay exact:
 * - The triangle's fixed-point weights are ≥ 0 and sum to 2^22 ± count/2 (rounding), so an
 *   accumulator lies in [2^21, 255.5 · 2^22 + 255 · count/2], far inside int32 for any real
 *   window: it is an exact integer whatever order the products are added in, which lets the
 *   kernels unroll and regroup taps freely (`Math.imul` / `| 0` keep V8 on int32 arithmetic).
 * - With such accumulators PIL's `clip8` is `min(acc >> 22, 255)` (the clamp only matters for
 *   windows of thousands of taps), which is exactly what storing the integer `acc >> 22` into a
 *   Uint8ClampedArray does (clamping, no rounding for integers).
 * - The passes keep PIL's order and uint8 intermediate but are interleaved row by row: each
 *   horizontal row is computed once, when the first vertical output needs it, into a ring of
 *   `ksize` rows (a vertical window never spans more), so the intermediate stays in cache
 *   instead of a 9 MB buffer for a 12 MP photo.
 * - RGB resized on both axes (every photo) runs on WebAssembly SIMD kernels with the same
 *   arithmetic (preprocess-simd.ts), several times faster; the tests check both paths against a plain
 *   oracle and Pillow's hashes.
 * @throws RangeError when a size is not a positive integer or `src` has the wrong length.
 */
export function pilResizeBilinear(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  return resizeBilinear(src, width, height, channels, outWidth, outHeight, true);
}

/**
 * {@link pilResizeBilinear} on the TypeScript kernels only, never the WebAssembly SIMD ones: the
 * path taken anyway for 1-channel images, one-axis resizes and where SIMD is unavailable. Exported
 * so that tests and the benchmark can check and time both paths.
 * @throws RangeError as pilResizeBilinear.
 */
export function pilResizeBilinearScalar(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  return resizeBilinear(src, width, height, channels, outWidth, outHeight, false);
}

function resizeBilinear(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  simd: boolean,
): Uint8Array {
  checkSize("width", width);
  checkSize("height", height);
  checkSize("channels", channels);
  checkSize("outWidth", outWidth);
  checkSize("outHeight", outHeight);
  if (src.length !== width * height * channels) {
    throw new RangeError(
      `Expected ${width * height * channels} bytes for ${width}×${height}×${channels} but received ${src.length}`,
    );
  }
  // A copy even for a Node Buffer, whose own `slice` would return a view of the caller's pixels.
  if (outWidth === width && outHeight === height) return new Uint8Array(src);
  const out = new Uint8Array(outWidth * outHeight * channels);
  const outClamped = new Uint8ClampedArray(out.buffer);
  const inRow = width * channels;
  const rowLen = outWidth * channels;
  const horizontal = outWidth === width ? undefined : pilTaps(width, outWidth);
  const rowKernel = channels === 3 ? horizontalRow3 : channels === 1 ? horizontalRow1 : horizontalRowN;
  if (outHeight === height) {
    for (let y = 0; y < height; y++) rowKernel(src, y * inRow, channels, horizontal!, outClamped, y * rowLen);
    return out;
  }
  const vertical = pilTaps(height, outHeight);
  if (simd && channels === 3 && horizontal !== undefined) {
    if (resizeRgbSimd(src, width, horizontal, vertical, out)) return out;
  }
  // Rows the vertical pass reads: `src` itself, or a ring of horizontally resampled rows where
  // input row y lives in slot y % ringRows.
  let rows = src;
  let ringRows = height;
  let ringClamped: Uint8ClampedArray | undefined;
  if (horizontal !== undefined) {
    ringRows = vertical.ksize;
    rows = new Uint8Array(ringRows * rowLen);
    ringClamped = new Uint8ClampedArray(rows.buffer);
  }
  const acc = new Int32Array(rowLen);
  let next = 0; // first input row not yet resampled horizontally
  for (let o = 0; o < outHeight; o++) {
    const first = vertical.start[o]!;
    const end = first + vertical.count[o]!;
    if (ringClamped !== undefined) {
      for (next = Math.max(next, first); next < end; next++) {
        rowKernel(src, next * inRow, channels, horizontal!, ringClamped, (next % ringRows) * rowLen);
      }
    }
    verticalRow(rows, rowLen, ringRows, first, end - first, vertical.weight, o * vertical.ksize, acc);
    for (let i = 0, d = o * rowLen; i < rowLen; i++, d++) outClamped[d] = acc[i]! >> PRECISION_BITS;
  }
  return out;
}

/**
 * Horizontal pass of one interleaved RGB row: `src[s…]` → `out[d…]`, the three channels of a
 * pixel accumulated together so that each weight is loaded once, two taps per iteration.
 */
function horizontalRow3(
  src: Uint8Array,
  s: number,
  _channels: number,
  taps: PilTaps,
  out: Uint8ClampedArray,
  d: number,
): void {
  const { start, count, weight, ksize } = taps;
  const outWidth = start.length;
  for (let o = 0, k0 = 0; o < outWidth; o++, k0 += ksize, d += 3) {
    let p = s + start[o]! * 3;
    const kEnd = k0 + count[o]!;
    let r = HALF;
    let g = HALF;
    let b = HALF;
    let k = k0;
    for (; k + 1 < kEnd; k += 2, p += 6) {
      const w = weight[k]!;
      const v = weight[k + 1]!;
      r = (r + Math.imul(src[p]!, w) + Math.imul(src[p + 3]!, v)) | 0;
      g = (g + Math.imul(src[p + 1]!, w) + Math.imul(src[p + 4]!, v)) | 0;
      b = (b + Math.imul(src[p + 2]!, w) + Math.imul(src[p + 5]!, v)) | 0;
    }
    if (k < kEnd) {
      const w = weight[k]!;
      r = (r + Math.imul(src[p]!, w)) | 0;
      g = (g + Math.imul(src[p + 1]!, w)) | 0;
      b = (b + Math.imul(src[p + 2]!, w)) | 0;
    }
    out[d] = r >> PRECISION_BITS;
    out[d + 1] = g >> PRECISION_BITS;
    out[d + 2] = b >> PRECISION_BITS;
  }
}

/** Horizontal pass of one single-channel row (masks), two taps per iteration. */
function horizontalRow1(
  src: Uint8Array,
  s: number,
  _channels: number,
  taps: PilTaps,
  out: Uint8ClampedArray,
  d: number,
): void {
  const { start, count, weight, ksize } = taps;
  const outWidth = start.length;
  for (let o = 0, k0 = 0; o < outWidth; o++, k0 += ksize, d++) {
    let p = s + start[o]!;
    const kEnd = k0 + count[o]!;
    let acc = HALF;
    let k = k0;
    for (; k + 1 < kEnd; k += 2, p += 2) {
      acc = (acc + Math.imul(src[p]!, weight[k]!) + Math.imul(src[p + 1]!, weight[k + 1]!)) | 0;
    }
    if (k < kEnd) acc = (acc + Math.imul(src[p]!, weight[k]!)) | 0;
    out[d] = acc >> PRECISION_BITS;
  }
}

/** Horizontal pass of one row with any channel count: one channel at a time. */
function horizontalRowN(
  src: Uint8Array,
  s: number,
  channels: number,
  taps: PilTaps,
  out: Uint8ClampedArray,
  d: number,
): void {
  const { start, count, weight, ksize } = taps;
  const outWidth = start.length;
  for (let o = 0, k0 = 0; o < outWidth; o++, k0 += ksize) {
    const base = s + start[o]! * channels;
    const kEnd = k0 + count[o]!;
    for (let c = 0; c < channels; c++, d++) {
      let acc = HALF;
      for (let k = k0, p = base + c; k < kEnd; k++, p += channels)
        acc = (acc + Math.imul(src[p]!, weight[k]!)) | 0;
      out[d] = acc >> PRECISION_BITS;
    }
  }
}

/**
 * Vertical pass of one output row into `acc` (`rowLen` values, before the final `>> 22`): input
 * rows `first … first + n − 1`, row y at `rows[(y % ringRows) · rowLen]`. Whole rows are
 * accumulated, up to four taps per sweep, so that every read is sequential and `acc` is
 * loaded and stored once per four taps.
 */
function verticalRow(
  rows: Uint8Array,
  rowLen: number,
  ringRows: number,
  first: number,
  n: number,
  weight: Int32Array,
  k: number,
  acc: Int32Array,
): void {
  acc.fill(HALF);
  let t = 0;
  for (; t + 3 < n; t += 4) {
    const s0 = ((first + t) % ringRows) * rowLen;
    const s1 = ((first + t + 1) % ringRows) * rowLen;
    const s2 = ((first + t + 2) % ringRows) * rowLen;
    const s3 = ((first + t + 3) % ringRows) * rowLen;
    const w0 = weight[k + t]!;
    const w1 = weight[k + t + 1]!;
    const w2 = weight[k + t + 2]!;
    const w3 = weight[k + t + 3]!;
    for (let i = 0; i < rowLen; i++) {
      acc[i] =
        (acc[i]! +
          Math.imul(rows[s0 + i]!, w0) +
          Math.imul(rows[s1 + i]!, w1) +
          Math.imul(rows[s2 + i]!, w2) +
          Math.imul(rows[s3 + i]!, w3)) |
        0;
    }
  }
  for (; t < n; t++) {
    const s0 = ((first + t) % ringRows) * rowLen;
    const w0 = weight[k + t]!;
    for (let i = 0; i < rowLen; i++) acc[i] = (acc[i]! + Math.imul(rows[s0 + i]!, w0)) | 0;
  }
}

/** Float32 lookup tables `(v − mean_c) / std_c` for v = 0..255, as PyTorch computes them (§1.1.4). */
const NORMALISED: readonly Float32Array[] = [0, 1, 2].map((c) => {
  const mean = Math.fround(PIXEL_MEAN[c as 0 | 1 | 2]);
  const std = Math.fround(PIXEL_STD[c as 0 | 1 | 2]);
  const table = new Float32Array(256);
  // Both float32 operations round once: an integer minus a float32 is exact in float64 before
  // fround, and float64 division of float32 operands rounds to the same float32 as PyTorch.
  for (let v = 0; v < 256; v++) table[v] = Math.fround(v - mean) / std;
  return table;
});

/**
 * Normalise interleaved RGB uint8 pixels per channel with SAM's pixel mean/std and zero-pad them
 * bottom/right into a `[1, 3, side, side]` float32 CHW tensor (persam-spec §1.1.4–5; zero is the
 * mean colour in normalised space).
 * @default side 1024
 * @throws RangeError when the image is larger than `side` or `rgb` has the wrong length.
 */
export function normalizeAndPad(rgb: Uint8Array, width: number, height: number, side = ENCODER_SIDE): Tensor {
  checkSize("width", width);
  checkSize("height", height);
  if (width > side || height > side) {
    throw new RangeError(`Expected an image of at most ${side}×${side} but received ${width}×${height}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `Expected ${width * height * 3} RGB bytes for ${width}×${height} but received ${rgb.length}`,
    );
  }
  const plane = side * side;
  const data = new Float32Array(3 * plane);
  const [t0, t1, t2] = NORMALISED as [Float32Array, Float32Array, Float32Array];
  // One pass over the interleaved pixels, writing the three planes (the same lookups as three passes).
  for (let y = 0; y < height; y++) {
    let s = y * width * 3;
    const d = y * side;
    const end = d + width;
    for (let i = d; i < end; i++, s += 3) {
      data[i] = t0[rgb[s]!]!;
      data[i + plane] = t1[rgb[s + 1]!]!;
      data[i + 2 * plane] = t2[rgb[s + 2]!]!;
    }
  }
  return { data, dims: [1, 3, side, side] };
}

/**
 * The whole image side of SAM preprocessing (persam-spec §1.1): PIL-bilinear resize of interleaved
 * RGB uint8 to the long-side-1024 size, normalise, pad to `[1, 3, 1024, 1024]`.
 * @param originalSize `[H, W]` of the photo when `rgb` is a reduced decode of it (DCT scaling): the
 *   input size and every coordinate stay those of the photo; only the resize starts from fewer
 *   pixels. @default [height, width]
 * @throws RangeError when a size is not a positive integer or `rgb` has the wrong length.
 */
export function samPreprocess(
  rgb: Uint8Array,
  width: number,
  height: number,
  originalSize: Size = [height, width],
): { pixelValues: Tensor; inputSize: Size; originalSize: Size } {
  const inputSize = preprocessShape(originalSize[0], originalSize[1]);
  const [hIn, wIn] = inputSize;
  const resized = pilResizeBilinear(rgb, width, height, 3, wIn, hIn);
  return { pixelValues: normalizeAndPad(resized, wIn, hIn), inputSize, originalSize };
}

/**
 * Points `(x, y)` in original pixels → the 1024 frame (persam-spec §1.2, SA `apply_coords`): scaled
 * by the rounded ratios `w_in/W`, `h_in/H` in float64, then cast to float32; no +0.5 (the prompt
 * encoder adds it). Returns `[x0', y0', x1', y1', …]`.
 */
export function transformPoints(points: readonly Point[], originalSize: Size, inputSize: Size): Float32Array {
  const [h, w] = originalSize;
  const [hIn, wIn] = inputSize;
  const sx = wIn / w;
  const sy = hIn / h;
  const out = new Float32Array(points.length * 2);
  points.forEach(([x, y], i) => {
    out[i * 2] = x * sx;
    out[i * 2 + 1] = y * sy;
  });
  return out;
}

/**
 * A box `[x0, y0, x1, y1]` in original pixels → the 1024 frame, as its two corners (§1.2,
 * SA `apply_boxes`). Returns 4 numbers.
 */
export function transformBox(box: Box, originalSize: Size, inputSize: Size): Float32Array {
  return transformPoints(
    [
      [box[0], box[1]],
      [box[2], box[3]],
    ],
    originalSize,
    inputSize,
  );
}

/**
 * The reference mask on the 64×64 embedding grid (persam-spec §7.1 step 1), 4096 values 0/1 in
 * row-major order. Reproduces the reference on purpose, threshold included: the red channel is
 * PIL-resized like the image, normalised with the R mean/std, zero-padded to 1024, then
 * torch-bilinear downsampled to 64×64 (2×2 taps at ½ each); a cell is foreground iff the result
 * is > 0, i.e. iff the mean of its tapped red values exceeds 123.675 (padding taps count as exactly
 * the mean). Hence PerSeg's red 128 needs all 4 taps inside the object, 255 needs 2 of 4, and a
 * 0/1 mask gives nothing (callers binarise masks to 128 first, §9.18).
 * @throws RangeError when a size is not a positive integer or `maskRed` has the wrong length.
 */
export function referenceMaskGrid(maskRed: Uint8Array, width: number, height: number): Uint8Array {
  const [hIn, wIn] = preprocessShape(height, width);
  const rows = torchBilinearTaps(ENCODER_SIDE, GRID_SIDE);
  const cols = torchBilinearTaps(ENCODER_SIDE, GRID_SIDE);
  // The grid reads 2 × 2 pixels per cell, so only those pixels of the resized mask are computed.
  const red = pilResizeBilinearAt(
    maskRed,
    width,
    height,
    wIn,
    hIn,
    [...rows.i0, ...rows.i1],
    [...cols.i0, ...cols.i1],
  );
  const table = NORMALISED[0]!;
  // Normalised value of padded-frame pixel (y, x): zero outside the resized image (§1.1.5).
  const at = (y: number, x: number): number => (y < hIn && x < wIn ? table[red(y, x)]! : 0);
  const grid = new Uint8Array(GRID_SIDE * GRID_SIDE);
  for (let r = 0; r < GRID_SIDE; r++) {
    const y0 = rows.i0[r]!;
    const y1 = rows.i1[r]!;
    const a0 = rows.w0[r]!;
    const a1 = rows.w1[r]!;
    for (let c = 0; c < GRID_SIDE; c++) {
      const x0 = cols.i0[c]!;
      const x1 = cols.i1[c]!;
      const b0 = cols.w0[c]!;
      const b1 = cols.w1[c]!;
      // The margin to the threshold (≥ 0.3/4 grey levels) dwarfs any float32-vs-float64 rounding.
      const v = a0 * (b0 * at(y0, x0) + b1 * at(y0, x1)) + a1 * (b0 * at(y1, x0) + b1 * at(y1, x1));
      grid[r * GRID_SIDE + c] = v > 0 ? 1 : 0;
    }
  }
  return grid;
}

/**
 * Single-channel {@link pilResizeBilinear} evaluated only at the output pixels whose row is in
 * `rows` and column in `cols` (others, and those outside the output, are never read): the same
 * fixed-point taps, the same horizontal-then-vertical order and the same uint8 intermediate, so each
 * pixel it gives is the full resize's, to the bit. Horizontal results are computed once per input
 * row and needed column.
 * @returns the pixel at output `(y, x)`, for `y` in `rows` and `x` in `cols`.
 */
export function pilResizeBilinearAt(
  src: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  rows: ArrayLike<number>,
  cols: ArrayLike<number>,
): (y: number, x: number) => number {
  checkSize("width", width);
  checkSize("height", height);
  checkSize("outWidth", outWidth);
  checkSize("outHeight", outHeight);
  if (src.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} bytes for ${width}×${height}×1 but received ${src.length}`,
    );
  }
  const wanted = [...new Set(Array.from(cols))].filter((x) => x >= 0 && x < outWidth).sort((a, b) => a - b);
  const column = new Int32Array(outWidth).fill(-1);
  wanted.forEach((x, i) => {
    column[x] = i;
  });
  const horizontal = outWidth === width ? undefined : pilTaps(width, outWidth);
  // Input row y after the horizontal pass, at the wanted columns only.
  const resampled = new Map<number, Uint8Array>();
  const rowAt = (y: number): Uint8Array => {
    let row = resampled.get(y);
    if (row !== undefined) return row;
    row = new Uint8Array(wanted.length);
    const s = y * width;
    for (let i = 0; i < wanted.length; i++) {
      const x = wanted[i]!;
      if (horizontal === undefined) {
        row[i] = src[s + x]!;
        continue;
      }
      const k0 = x * horizontal.ksize;
      const p = s + horizontal.start[x]!;
      let acc = HALF;
      for (let k = 0; k < horizontal.count[x]!; k++)
        acc = (acc + Math.imul(src[p + k]!, horizontal.weight[k0 + k]!)) | 0;
      row[i] = clip8(acc);
    }
    resampled.set(y, row);
    return row;
  };
  const vertical = outHeight === height ? undefined : pilTaps(height, outHeight);
  const values = new Map<number, Uint8Array>();
  for (const y of new Set(Array.from(rows))) {
    if (y < 0 || y >= outHeight) continue;
    const out = new Uint8Array(wanted.length);
    if (vertical === undefined) out.set(rowAt(y));
    else {
      const first = vertical.start[y]!;
      const k0 = y * vertical.ksize;
      const taps = Array.from({ length: vertical.count[y]! }, (_, j) => rowAt(first + j));
      for (let i = 0; i < wanted.length; i++) {
        let acc = HALF;
        for (let j = 0; j < taps.length; j++)
          acc = (acc + Math.imul(taps[j]![i]!, vertical.weight[k0 + j]!)) | 0;
        out[i] = clip8(acc);
      }
    }
    values.set(y, out);
  }
  return (y, x) => {
    const row = values.get(y);
    const i = column[x];
    if (row === undefined || i === undefined || i < 0) {
      throw new RangeError(`Expected a row in rows and a column in cols but received (${y}, ${x})`);
    }
    return row[i]!;
  };
}

/** PIL's `clip8` of a fixed-point accumulator (as storing `acc >> PRECISION_BITS` into a Uint8ClampedArray). */
function clip8(acc: number): number {
  return Math.min(255, Math.max(0, acc >> PRECISION_BITS));
}

function checkSize(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  }
}
