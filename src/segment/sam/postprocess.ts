// SAM postprocessing over plain typed arrays: PyTorch bilinear resampling, low-res logits → original
// size (persam-spec §4.1, §5.1), thresholding and the mask's bounding box.

import type { Box, Size } from "../../util/tensor.js";
import { LOW_RES_SIDE, MASK_THRESHOLD } from "./sam-constants.js";

/**
 * Per-output-index taps of a 1-D PyTorch bilinear resample: output `o` reads `i0[o]` with weight
 * `w0[o]` and `i1[o]` with weight `w1[o]` (`i1` may equal `i0` at the far edge).
 */
export interface BilinearTaps {
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  readonly w0: Float64Array;
  readonly w1: Float64Array;
}

/**
 * The taps of PyTorch `interpolate(mode="bilinear", align_corners=False, antialias=False)` along one
 * axis (persam-spec §5.1): `src = scale·(o + 0.5) − 0.5` clamped to ≥ 0, `i1 = min(i0 + 1, in − 1)`.
 * The scale and source index are computed in float32, as PyTorch's CPU kernel does for float
 * tensors, so the fractional weights match it bit for bit.
 * @throws RangeError when a size is not a positive integer.
 */
export function torchBilinearTaps(inSize: number, outSize: number): BilinearTaps {
  checkSize("inSize", inSize);
  checkSize("outSize", outSize);
  const f = Math.fround;
  const scale = f(inSize / outSize);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w0 = new Float64Array(outSize);
  const w1 = new Float64Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let src = f(f(scale * f(o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const lo = Math.min(Math.floor(src), inSize - 1);
    const lambda = f(src - lo);
    i0[o] = lo;
    i1[o] = Math.min(lo + 1, inSize - 1);
    w0[o] = f(1 - lambda);
    w1[o] = lambda;
  }
  return { i0, i1, w0, w1 };
}

/**
 * PyTorch bilinear resize (align_corners=False, no antialias, §5.1) of `planes` stacked row-major
 * `inH × inW` float planes to `outH × outW`. Separable with precomputed taps, so results equal
 * PyTorch's within float32 rounding (it interpolates both axes in one step).
 * @throws RangeError when a size is not a positive integer or `src` has the wrong length.
 */
export function bilinearResize(
  src: Float32Array,
  planes: number,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
): Float32Array {
  checkSize("planes", planes);
  checkLength(src, planes * inH * inW);
  const rows = torchBilinearTaps(inH, outH);
  const cols = torchBilinearTaps(inW, outW);
  return separable(src, planes, inH, inW, outH, outW, toSparse(rows, 2), toSparse(cols, 2));
}

/**
 * Low-res mask logits `[planes, 256, 256]` (the padded 1024 frame at ¼ scale) to the original image
 * size `[planes, H, W]`: bilinear 256→1024, crop to `inputSize`, bilinear to `originalSize`
 * (persam-spec §4.1 steps 1–3). The two resamples of each axis are composed into one sparse operator
 * (at most 4 low-res taps per output index), which equals the two-step path up to float32 rounding
 * of the intermediate 1024 image and skips building it.
 * @throws RangeError when sizes are not positive integers, the input size exceeds 1024, or
 * `lowRes` has the wrong length.
 */
export function lowResToOriginal(
  lowRes: Float32Array,
  planes: number,
  inputSize: Size,
  originalSize: Size,
): Float32Array {
  const [hIn, wIn] = inputSize;
  const [h, w] = originalSize;
  checkSize("planes", planes);
  checkLength(lowRes, planes * LOW_RES_SIDE * LOW_RES_SIDE);
  const rows = composedAxis(hIn, h);
  const cols = composedAxis(wIn, w);
  return separable(lowRes, planes, LOW_RES_SIDE, LOW_RES_SIDE, h, w, rows, cols);
}

/**
 * Binary mask of logits strictly above `threshold` (§4.1 step 4: `logit > 0.0`), 1 = foreground.
 * @default threshold 0
 */
export function thresholdMask(logits: Float32Array, threshold: number = MASK_THRESHOLD): Uint8Array {
  const out = new Uint8Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! > threshold ? 1 : 0;
  return out;
}

/** A binary mask (non-zero = subject) as 8-bit grey 0/255: the pixels of a mask PNG. */
export function maskToGrey(mask: Uint8Array): Uint8Array {
  const grey = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) grey[i] = mask[i] ? 255 : 0;
  return grey;
}

/** Number of foreground (non-zero) pixels of a mask. */
export function maskArea(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) n++;
  return n;
}

/**
 * Bounding box `[x_min, y_min, x_max, y_max]` of the non-zero pixels of a row-major mask, with
 * inclusive extents (x_max is the last foreground column, no +1: persam-spec §7.2.8, §9.20).
 * Returns undefined for an empty mask so callers cannot emit a degenerate box (§9.19). Rows are
 * scanned from the top and the bottom for the first and last non-empty row, and each row in between
 * only up to the box found so far from either side, so a large subject (the usual 12 MP photo)
 * costs a fraction of a full pass.
 * @throws RangeError when `mask.length !== width·height`.
 */
export function maskBox(mask: Uint8Array, width: number, height: number): Box | undefined {
  if (mask.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} mask values for ${width}×${height} but received ${mask.length}`,
    );
  }
  const firstIn = (row: number, from: number, to: number): number => {
    for (let x = from; x < to; x++) if (mask[row + x]) return x;
    return -1;
  };
  let y0 = 0;
  let x0 = -1;
  for (; y0 < height; y0++) {
    x0 = firstIn(y0 * width, 0, width);
    if (x0 >= 0) break;
  }
  if (x0 < 0) return undefined;
  let y1 = height - 1;
  while (y1 > y0 && firstIn(y1 * width, 0, width) < 0) y1--;
  let x1 = x0;
  for (let y = y0; y <= y1; y++) {
    const row = y * width;
    // Left edge: only the pixels left of the box so far can move it.
    for (let x = 0; x < x0; x++) {
      if (mask[row + x]) {
        x0 = x;
        break;
      }
    }
    // Right edge: only the pixels right of the box so far can move it.
    for (let x = width - 1; x > x1; x--) {
      if (mask[row + x]) {
        x1 = x;
        break;
      }
    }
  }
  return [x0, y0, x1, y1];
}

/** A 1-D linear operator with `k` (2 or 4) taps per output index (unused taps weigh 0, index 0). */
export interface SparseAxis {
  readonly k: 2 | 4;
  readonly index: Int32Array;
  readonly weight: Float64Array;
}

/** The 2-tap operator of {@link torchBilinearTaps}, as {@link bilinearResize} applies it. */
export function toSparse(taps: BilinearTaps, k: 2): SparseAxis {
  const n = taps.i0.length;
  const index = new Int32Array(n * k);
  const weight = new Float64Array(n * k);
  for (let o = 0; o < n; o++) {
    index[o * 2] = taps.i0[o]!;
    index[o * 2 + 1] = taps.i1[o]!;
    weight[o * 2] = taps.w0[o]!;
    weight[o * 2 + 1] = taps.w1[o]!;
  }
  return { k, index, weight };
}

/**
 * One axis of §4.1: low-res (256) → padded frame (1024) → crop to `cropSize` → `outSize`, as one
 * operator with up to 4 low-res taps per output (coinciding taps merged), as
 * {@link lowResToOriginal} applies it.
 * @throws RangeError when a size is not a positive integer or `cropSize` exceeds 1024.
 */
export function composedAxis(cropSize: number, outSize: number): SparseAxis {
  checkSize("inputSize", cropSize);
  if (cropSize > LOW_RES_SIDE * 4) {
    throw new RangeError(`Expected an input size of at most ${LOW_RES_SIDE * 4} but received ${cropSize}`);
  }
  const up = torchBilinearTaps(LOW_RES_SIDE, LOW_RES_SIDE * 4);
  const down = torchBilinearTaps(cropSize, outSize);
  const k = 4 as const;
  const index = new Int32Array(outSize * k);
  const weight = new Float64Array(outSize * k);
  for (let o = 0; o < outSize; o++) {
    let n = 0;
    const add = (i: number, w: number): void => {
      for (let t = 0; t < n; t++) {
        if (index[o * k + t] === i) {
          weight[o * k + t]! += w;
          return;
        }
      }
      index[o * k + n] = i;
      weight[o * k + n] = w;
      n++;
    };
    for (const [mid, wMid] of [
      [down.i0[o]!, down.w0[o]!],
      [down.i1[o]!, down.w1[o]!],
    ] as const) {
      add(up.i0[mid]!, wMid * up.w0[mid]!);
      add(up.i1[mid]!, wMid * up.w1[mid]!);
    }
    // Unused taps keep index 0 and weight 0.
  }
  return { k, index, weight };
}

/** Apply a row operator and a column operator to each plane, shrinking axis first. */
function separable(
  src: Float32Array,
  planes: number,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
  rows: SparseAxis,
  cols: SparseAxis,
): Float32Array {
  const out = new Float32Array(planes * outH * outW);
  // Shrink rows first when the height shrinks (large downsamples then read only the rows they
  // need); otherwise widen rows first so that the big pass is the contiguous vertical one.
  const verticalFirst = outH < inH;
  const tmp = new Float32Array(verticalFirst ? outH * inW : inH * outW);
  for (let p = 0; p < planes; p++) {
    const inOff = p * inH * inW;
    const outOff = p * outH * outW;
    if (verticalFirst) {
      verticalPass(src, inOff, inW, tmp, 0, outH, rows);
      horizontalPass(tmp, 0, inW, out, outOff, outH, outW, cols);
    } else {
      horizontalPass(src, inOff, inW, tmp, 0, inH, outW, cols);
      verticalPass(tmp, 0, outW, out, outOff, outH, rows);
    }
  }
  return out;
}

function horizontalPass(
  src: Float32Array,
  srcOff: number,
  srcW: number,
  dst: Float32Array,
  dstOff: number,
  nRows: number,
  outW: number,
  cols: SparseAxis,
): void {
  const { k, index, weight } = cols;
  for (let y = 0; y < nRows; y++) {
    const s = srcOff + y * srcW;
    const d = dstOff + y * outW;
    for (let x = 0; x < outW; x++) {
      let acc = 0;
      for (let t = x * k, end = t + k; t < end; t++) acc += weight[t]! * src[s + index[t]!]!;
      dst[d + x] = acc;
    }
  }
}

function verticalPass(
  src: Float32Array,
  srcOff: number,
  width: number,
  dst: Float32Array,
  dstOff: number,
  outH: number,
  rows: SparseAxis,
): void {
  const { k, index, weight } = rows;
  // Rows are contiguous, so the taps are applied as whole-row multiply-adds (unused taps weigh 0
  // and read row 0, which keeps the loop branch-free).
  for (let y = 0; y < outH; y++) {
    const t = y * k;
    const d = dstOff + y * width;
    const s0 = srcOff + index[t]! * width;
    const s1 = srcOff + index[t + 1]! * width;
    const w0 = weight[t]!;
    const w1 = weight[t + 1]!;
    if (k === 2) {
      for (let x = 0; x < width; x++) dst[d + x] = w0 * src[s0 + x]! + w1 * src[s1 + x]!;
      continue;
    }
    const s2 = srcOff + index[t + 2]! * width;
    const s3 = srcOff + index[t + 3]! * width;
    const w2 = weight[t + 2]!;
    const w3 = weight[t + 3]!;
    for (let x = 0; x < width; x++) {
      dst[d + x] = w0 * src[s0 + x]! + w1 * src[s1 + x]! + w2 * src[s2 + x]! + w3 * src[s3 + x]!;
    }
  }
}

function checkSize(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  }
}

function checkLength(data: Float32Array, expected: number): void {
  if (data.length !== expected) {
    throw new RangeError(`Expected ${expected} values but received ${data.length}`);
  }
}
