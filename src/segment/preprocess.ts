// SAM preprocessing over plain typed arrays (persam-spec §1, §7.1 step 1): resize shape, bit-exact
// PIL bilinear resize, normalise + pad, prompt coordinate transforms and the reference-mask grid.

import { torchBilinearTaps } from "./postprocess.js";
import { ENCODER_SIDE, GRID_SIDE, PIXEL_MEAN, PIXEL_STD } from "./sam-constants.js";
import type { Box, Point, Size, Tensor } from "./tensor.js";

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

/** PIL's fixed-point precision for 8-bit resampling (`PRECISION_BITS = 32 − 8 − 2`). */
const PRECISION_BITS = 22;

/** Precomputed taps of one PIL resample axis: output `o` reads `count[o]` inputs from `start[o]`. */
interface PilTaps {
  readonly start: Int32Array;
  readonly count: Int32Array;
  /** Fixed-point weights, `ksize` slots per output index. */
  readonly weight: Int32Array;
  readonly ksize: number;
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

/** PIL `clip8`: fixed-point accumulator → uint8. */
function clip8(acc: number): number {
  if (acc >= 1 << (PRECISION_BITS + 8)) return 255;
  if (acc <= 0) return 0;
  return acc >> PRECISION_BITS;
}

/**
 * Bit-exact PIL `Image.resize(size, BILINEAR)` of interleaved uint8 pixels (persam-spec §1.1.3):
 * horizontal pass first, then vertical, each skipped when its axis keeps its size; the intermediate
 * is uint8; downscaling widens the triangle by the scale factor (antialiased). Channels are
 * independent, so any channel count works (1 for a mask's red channel, 3 for RGB).
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
  let current = src;
  let curW = width;
  if (outWidth !== width) {
    current = resampleHorizontal(current, width, height, channels, outWidth, pilTaps(width, outWidth));
    curW = outWidth;
  }
  if (outHeight !== height) {
    current = resampleVertical(current, curW, channels, outHeight, pilTaps(height, outHeight));
  }
  return current === src ? src.slice() : current;
}

function resampleHorizontal(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  taps: PilTaps,
): Uint8Array {
  const { start, count, weight, ksize } = taps;
  const out = new Uint8Array(outWidth * height * channels);
  const half = 1 << (PRECISION_BITS - 1);
  const inRow = width * channels;
  const outRow = outWidth * channels;
  for (let y = 0; y < height; y++) {
    const rowOff = y * inRow;
    const outOff = y * outRow;
    for (let o = 0; o < outWidth; o++) {
      const n = count[o]!;
      const kOff = o * ksize;
      const base = rowOff + start[o]! * channels;
      for (let c = 0; c < channels; c++) {
        let acc = half;
        for (let x = 0, p = base + c; x < n; x++, p += channels) acc += src[p]! * weight[kOff + x]!;
        out[outOff + o * channels + c] = clip8(acc);
      }
    }
  }
  return out;
}

function resampleVertical(
  src: Uint8Array,
  width: number,
  channels: number,
  outHeight: number,
  taps: PilTaps,
): Uint8Array {
  const { start, count, weight, ksize } = taps;
  const rowLen = width * channels;
  const out = new Uint8Array(rowLen * outHeight);
  const half = 1 << (PRECISION_BITS - 1);
  // Row-wise accumulation keeps memory access sequential; values stay below 2^31 (PIL's int32 range).
  const acc = new Int32Array(rowLen);
  for (let o = 0; o < outHeight; o++) {
    acc.fill(half);
    const n = count[o]!;
    const kOff = o * ksize;
    for (let y = 0; y < n; y++) {
      const w = weight[kOff + y]!;
      const s = (start[o]! + y) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i]! += src[s + i]! * w;
    }
    const d = o * rowLen;
    for (let i = 0; i < rowLen; i++) out[d + i] = clip8(acc[i]!);
  }
  return out;
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
  for (let c = 0; c < 3; c++) {
    const table = NORMALISED[c]!;
    const off = c * plane;
    for (let y = 0; y < height; y++) {
      const s = y * width * 3 + c;
      const d = off + y * side;
      for (let x = 0; x < width; x++) data[d + x] = table[rgb[s + x * 3]!]!;
    }
  }
  return { data, dims: [1, 3, side, side] };
}

/**
 * The whole image side of SAM preprocessing (persam-spec §1.1): PIL-bilinear resize of interleaved
 * RGB uint8 to the long-side-1024 size, normalise, pad to `[1, 3, 1024, 1024]`.
 * @throws RangeError when a size is not a positive integer or `rgb` has the wrong length.
 */
export function samPreprocess(
  rgb: Uint8Array,
  width: number,
  height: number,
): { pixelValues: Tensor; inputSize: Size; originalSize: Size } {
  const inputSize = preprocessShape(height, width);
  const [hIn, wIn] = inputSize;
  const resized = pilResizeBilinear(rgb, width, height, 3, wIn, hIn);
  return { pixelValues: normalizeAndPad(resized, wIn, hIn), inputSize, originalSize: [height, width] };
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
  const red = pilResizeBilinear(maskRed, width, height, 1, wIn, hIn);
  const rows = torchBilinearTaps(ENCODER_SIDE, GRID_SIDE);
  const cols = torchBilinearTaps(ENCODER_SIDE, GRID_SIDE);
  const table = NORMALISED[0]!;
  // Normalised value of padded-frame pixel (y, x): zero outside the resized image (§1.1.5).
  const at = (y: number, x: number): number => (y < hIn && x < wIn ? table[red[y * wIn + x]!]! : 0);
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

function checkSize(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  }
}
