// Subject-aware crop rectangles and the pure-TypeScript crop/resize of images and mask planes that
// keeps training images, masks and weight maps pixel-aligned.

import { photoSize, type RgbImage, resizeRegion } from "../image/image-io.js";
import type { Box } from "../util/tensor.js";

/** How the training crop is chosen: around the subject, the photo's centre, or not at all. */
export type CropMode = "subject" | "center" | "none";

/** An integer rectangle inside a photo, in pixels. */
export interface CropRect {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/** A crop plus what it had to give up. */
export interface SubjectCrop extends CropRect {
  /**
   * True when the crop does not contain the whole subject box: the subject is larger than the largest
   * crop of the requested aspect (the crop is then centred on the subject), or `mode` is `center` and
   * the subject lies outside the centre crop.
   */
  readonly cutsSubject: boolean;
  /** True when the margin could not be kept on every side (photo edge or aspect limit). */
  readonly marginReduced: boolean;
}

/** Parameters of {@link subjectCrop}. */
export interface SubjectCropParams {
  /** Photo width in pixels. */
  readonly width: number;
  /** Photo height in pixels. */
  readonly height: number;
  /** Subject bounding box, inclusive pixel extents; undefined when the mask is empty. */
  readonly box?: Box | undefined;
  /**
   * Context kept around the subject on each side, as a fraction of the subject box's width
   * (horizontally) and height (vertically).
   * @default 0.1
   */
  readonly margin?: number;
  /**
   * Crop aspect ratio, width / height (ignored for mode `none`).
   * @default 1
   */
  readonly aspect?: number;
  /** @default "subject" */
  readonly mode?: CropMode;
}

const EPS = 1e-9;

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new RangeError(
      `Expected positive integer width and height for photo but received ${width}×${height}`,
    );
  }
}

/**
 * The training crop of a `width × height` photo.
 *
 * - `subject`: the smallest crop of the requested aspect that holds the subject box plus `margin` on
 *   each side (margin clamped to the photo), centred on it and slid back inside the photo. When the
 *   margin does not fit, the largest crop that holds the subject is used (`marginReduced`); when the
 *   subject itself does not fit, the largest crop centred on the subject (`cutsSubject`). Without a
 *   box (empty mask) it falls back to `center`.
 * - `center`: the largest crop of the aspect, centred in the photo.
 * - `none`: the whole photo.
 *
 * The derived side is rounded to the nearest pixel, so `width / height` is the requested aspect to
 * within half a pixel on one side.
 * @throws RangeError for a non-integer or empty size, a box outside the photo, a negative margin or a
 * non-positive aspect.
 */
export function subjectCrop(params: SubjectCropParams): SubjectCrop {
  const { width: W, height: H, box } = params;
  const margin = params.margin ?? 0.1;
  const aspect = params.aspect ?? 1;
  const mode = params.mode ?? "subject";
  checkSize(W, H);
  if (!Number.isFinite(margin) || margin < 0) {
    throw new RangeError(`Expected a finite number ≥ 0 for margin but received ${margin}`);
  }
  if (!Number.isFinite(aspect) || aspect <= 0) {
    throw new RangeError(`Expected a finite number > 0 for aspect but received ${aspect}`);
  }
  if (box) {
    const [x0, y0, x1, y1] = box;
    if (
      ![x0, y0, x1, y1].every(Number.isInteger) ||
      x0 < 0 ||
      y0 < 0 ||
      x1 >= W ||
      y1 >= H ||
      x1 < x0 ||
      y1 < y0
    ) {
      throw new RangeError(
        `Expected an integer box inside ${W}×${H} for box but received [${box.join(", ")}]`,
      );
    }
  }

  if (mode === "none")
    return { left: 0, top: 0, width: W, height: H, cutsSubject: false, marginReduced: false };

  // Crop height that fits the photo at this aspect (a real number; the integer sides come later).
  const heightLimited = H * aspect <= W;
  const maxT = heightLimited ? H : W / aspect;

  if (mode === "center" || !box) {
    const [cw, ch] = sides(maxT, aspect, heightLimited, W, H);
    const left = Math.floor((W - cw) / 2);
    const top = Math.floor((H - ch) / 2);
    const cutsSubject = box ? !contains({ left, top, width: cw, height: ch }, box) : false;
    return { left, top, width: cw, height: ch, cutsSubject, marginReduced: false };
  }

  const [x0, y0, x1, y1] = box;
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const padX = Math.round(margin * bw);
  const padY = Math.round(margin * bh);
  const mx0 = Math.max(0, x0 - padX);
  const my0 = Math.max(0, y0 - padY);
  const mx1 = Math.min(W - 1, x1 + padX);
  const my1 = Math.min(H - 1, y1 + padY);
  const clipped = mx0 !== x0 - padX || my0 !== y0 - padY || mx1 !== x1 + padX || my1 !== y1 + padY;

  const tWithMargin = Math.max(my1 - my0 + 1, (mx1 - mx0 + 1) / aspect);
  const tSubject = Math.max(bh, bw / aspect);
  let t: number;
  let centre: Box;
  let cutsSubject = false;
  let marginReduced = clipped;
  if (tWithMargin <= maxT + EPS) {
    t = tWithMargin;
    centre = [mx0, my0, mx1, my1];
  } else {
    t = maxT;
    centre = box;
    marginReduced = true;
    cutsSubject = tSubject > maxT + EPS;
  }
  const [cw, ch] = sides(t, aspect, heightLimited, W, H);
  const left = place(centre[0], centre[2], cw, W);
  const top = place(centre[1], centre[3], ch, H);
  return { left, top, width: cw, height: ch, cutsSubject, marginReduced };
}

/**
 * Integer sides for crop height `t`: the limiting side is rounded up (so the crop still holds what
 * needed `t`), the other derived from it by rounding; neither exceeds the photo.
 */
function sides(t: number, aspect: number, heightLimited: boolean, W: number, H: number): [number, number] {
  if (heightLimited) {
    const ch = Math.min(H, Math.max(1, Math.ceil(t - EPS)));
    return [Math.min(W, Math.max(1, Math.round(ch * aspect))), ch];
  }
  const cw = Math.min(W, Math.max(1, Math.ceil(t * aspect - EPS)));
  return [cw, Math.min(H, Math.max(1, Math.round(cw / aspect)))];
}

/** Start of a span of length `size` centred on [a, b] (inclusive), slid back inside [0, n). */
function place(a: number, b: number, size: number, n: number): number {
  const start = Math.round((a + b + 1) / 2 - size / 2);
  return Math.min(Math.max(0, start), n - size);
}

/** True when `rect` contains the inclusive box. */
export function contains(rect: CropRect, box: Box): boolean {
  const [x0, y0, x1, y1] = box;
  return x0 >= rect.left && y0 >= rect.top && x1 < rect.left + rect.width && y1 < rect.top + rect.height;
}

/**
 * Output size of a crop at training `resolution`: the shorter side becomes `resolution`, the longer
 * keeps the crop's aspect (so a square crop gives `resolution × resolution`). Small crops are scaled
 * up: every trainer needs its fixed size anyway.
 * @throws RangeError for a resolution that is not a positive integer.
 */
export function outputSize(crop: CropRect, resolution: number): { width: number; height: number } {
  if (!Number.isInteger(resolution) || resolution < 1) {
    throw new RangeError(`Expected a positive integer for resolution but received ${resolution}`);
  }
  const { width, height } = crop;
  if (width <= height)
    return { width: resolution, height: Math.max(1, Math.round((resolution * height) / width)) };
  return { width: Math.max(1, Math.round((resolution * width) / height)), height: resolution };
}

function checkRect(rect: CropRect, width: number, height: number): void {
  const { left, top, width: w, height: h } = rect;
  if (
    ![left, top, w, h].every(Number.isInteger) ||
    left < 0 ||
    top < 0 ||
    w < 1 ||
    h < 1 ||
    left + w > width ||
    top + h > height
  ) {
    throw new RangeError(
      `Expected an integer rectangle inside ${width}×${height} for crop but received ${left},${top} ${w}×${h}`,
    );
  }
}

/**
 * Copy a rectangle out of an image (pure TypeScript). Keeps the channel count.
 * @throws RangeError when the rectangle is not inside the image.
 */
export function cropImage(image: RgbImage, rect: CropRect): RgbImage {
  checkRect(rect, image.width, image.height);
  const { channels } = image;
  const out = new Uint8Array(rect.width * rect.height * channels);
  const rowBytes = rect.width * channels;
  for (let y = 0; y < rect.height; y++) {
    const from = ((rect.top + y) * image.width + rect.left) * channels;
    out.set(image.data.subarray(from, from + rowBytes), y * rowBytes);
  }
  return { data: out, width: rect.width, height: rect.height, channels };
}

/**
 * Copy a rectangle out of a one-byte-per-pixel plane (mask or weights). With `on`, the copy is
 * binarized: non-zero values become `on`, zeros stay 0.
 * @throws RangeError when the plane length does not match or the rectangle is not inside it.
 */
export function cropPlane(
  plane: Uint8Array,
  width: number,
  height: number,
  rect: CropRect,
  on?: number,
): Uint8Array {
  if (plane.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} values (${width}×${height}) for plane but received ${plane.length}`,
    );
  }
  checkRect(rect, width, height);
  const out = new Uint8Array(rect.width * rect.height);
  for (let y = 0; y < rect.height; y++) {
    const from = (rect.top + y) * width + rect.left;
    if (on === undefined) out.set(plane.subarray(from, from + rect.width), y * rect.width);
    else for (let x = 0, i = y * rect.width; x < rect.width; x++, i++) if (plane[from + x]) out[i] = on;
  }
  return out;
}

/** Parameters of {@link resizeMask}. */
export interface ResizeMaskParams {
  /** Binary mask (non-zero = subject), `width × height`. */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly outWidth: number;
  readonly outHeight: number;
}

/**
 * Resize a binary mask to `outWidth × outHeight`, returning 0/1. The mask is treated as a coverage
 * plane in [0, 1]: area-averaged where it shrinks (every source pixel counts, so thin parts do not
 * alias away as with nearest or 2×2 bilinear sampling), bilinear where it grows, with pixel centres
 * aligned (`src = (dst + 0.5) · scale − 0.5`, as sharp when shrinking), then thresholded at 0.5; the
 * threshold keeps the subject's area and centroid instead of biasing them like nearest neighbour.
 * Pure and exact, for thumbnails and previews; training outputs use {@link cropAndResize}, which
 * shares sharp's geometry also when enlarging.
 * @throws RangeError when the sizes are not positive integers or the mask length does not match.
 */
export function resizeMask(params: ResizeMaskParams): Uint8Array {
  const { mask, width, height, outWidth, outHeight } = params;
  for (const [name, v] of [
    ["width", width],
    ["height", height],
    ["outWidth", outWidth],
    ["outHeight", outHeight],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`Expected a positive integer for ${name} but received ${v}`);
  }
  if (mask.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} values (${width}×${height}) for mask but received ${mask.length}`,
    );
  }
  if (outWidth === width && outHeight === height) {
    const same = new Uint8Array(mask.length);
    for (let i = 0; i < mask.length; i++) same[i] = mask[i] ? 1 : 0;
    return same;
  }
  const xs = resampleTable(width, outWidth);
  const ys = resampleTable(height, outHeight);
  // Horizontal pass: height × outWidth floats. A footprint wholly inside or outside the mask (all but
  // the few along the outline) sums to `full[o]` or 0 with the very same additions as the weighted
  // loop, so it is only counted, without the gather and float sum (same values to the bit, less
  // work).
  const { start, index, weight } = xs;
  const full = new Float32Array(outWidth);
  for (let o = 0; o < outWidth; o++) {
    let s = 0;
    for (let k = start[o]!; k < start[o + 1]!; k++) s += weight[k]!;
    full[o] = s;
  }
  const tmp = new Float32Array(height * outWidth);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let o = 0; o < outWidth; o++) {
      const k0 = start[o]!;
      const k1 = start[o + 1]!;
      // Every output reads consecutive inputs (see resampleTable), so the footprint is one run.
      const from = row + index[k0]!;
      const to = from + (k1 - k0);
      let set = 0;
      for (let j = from; j < to; j++) if (mask[j] !== 0) set++;
      let s = 0;
      if (set === k1 - k0) s = full[o]!;
      else if (set > 0) for (let k = k0; k < k1; k++) if (mask[row + index[k]!]) s += weight[k]!;
      tmp[y * outWidth + o] = s;
    }
  }
  const out = new Uint8Array(outWidth * outHeight);
  for (let o = 0; o < outHeight; o++) {
    for (let x = 0; x < outWidth; x++) {
      let s = 0;
      for (let k = ys.start[o]!; k < ys.start[o + 1]!; k++)
        s += ys.weight[k]! * tmp[ys.index[k]! * outWidth + x]!;
      out[o * outWidth + x] = s >= 0.5 - 1e-6 ? 1 : 0;
    }
  }
  return out;
}

/**
 * Sparse 1-D resampling weights: output o reads `index[k]` with `weight[k]` for k in [start[o], start[o+1]).
 * Each output reads consecutive inputs (`index[k + 1] = index[k] + 1` within it): when shrinking, only
 * the first and last index of a footprint can have zero coverage, every one between covers fully;
 * when growing, the taps are i0 and i0 + 1.
 */
interface ResampleTable {
  readonly start: Int32Array;
  readonly index: Int32Array;
  readonly weight: Float32Array;
}

function resampleTable(n: number, m: number): ResampleTable {
  const scale = n / m;
  const start = new Int32Array(m + 1);
  const index: number[] = [];
  const weight: number[] = [];
  for (let o = 0; o < m; o++) {
    start[o] = index.length;
    if (scale > 1) {
      // Area average over the footprint [o·scale, (o+1)·scale).
      const a = o * scale;
      const b = (o + 1) * scale;
      for (let i = Math.floor(a); i < Math.min(n, Math.ceil(b)); i++) {
        const cover = Math.min(b, i + 1) - Math.max(a, i);
        if (cover > 0) {
          index.push(i);
          weight.push(cover / scale);
        }
      }
    } else {
      const s = Math.min(n - 1, Math.max(0, (o + 0.5) * scale - 0.5));
      const i0 = Math.floor(s);
      const f = s - i0;
      index.push(i0);
      weight.push(1 - f);
      if (f > 0 && i0 + 1 < n) {
        index.push(i0 + 1);
        weight.push(f);
      }
    }
  }
  start[m] = index.length;
  return { start, index: Int32Array.from(index), weight: Float32Array.from(weight) };
}

/** Parameters of {@link maskCoverage}. */
export interface MaskCoverageParams {
  /** Binary mask (non-zero = subject), `width × height`. */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** The rectangle of the mask that becomes the output. */
  readonly crop: CropRect;
  readonly outWidth: number;
  readonly outHeight: number;
}

/**
 * Area coverage of a cropped, resized binary mask: for each output pixel, the fraction of its
 * footprint in the full-resolution mask that is subject, in [0, 1], with every mask pixel a unit
 * square. The footprints follow sharp's geometry (see {@link cropAndResize}) so the coverage lines up
 * with the resized photo: centre-aligned where an axis shrinks (output pixel o covers
 * `[o·s, (o+1)·s)`, s = crop / output), centred on `o·s` where it grows (sharp is half an output
 * pixel off there). A footprint is at most one output pixel wide, so coverage is fractional only on
 * output pixels that the mask's outline crosses.
 * @throws RangeError when a size is not a positive integer, the mask length does not match or the
 * crop is not inside the mask.
 */
export function maskCoverage(params: MaskCoverageParams): Float32Array {
  const { mask, width, height, crop, outWidth, outHeight } = params;
  for (const [name, v] of [
    ["outWidth", outWidth],
    ["outHeight", outHeight],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`Expected a positive integer for ${name} but received ${v}`);
  }
  if (mask.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} values (${width}×${height}) for mask but received ${mask.length}`,
    );
  }
  checkRect(crop, width, height);
  const xs = coverageTable(crop.width, outWidth);
  const ys = coverageTable(crop.height, outHeight);
  // Horizontal pass over the crop's rows only (crop.height × outWidth), then vertical.
  const tmp = new Float32Array(crop.height * outWidth);
  for (let y = 0; y < crop.height; y++) {
    const row = (crop.top + y) * width + crop.left;
    for (let o = 0; o < outWidth; o++) {
      let s = 0;
      for (let k = xs.start[o]!; k < xs.start[o + 1]!; k++) if (mask[row + xs.index[k]!]) s += xs.weight[k]!;
      tmp[y * outWidth + o] = s;
    }
  }
  const out = new Float32Array(outWidth * outHeight);
  for (let o = 0; o < outHeight; o++) {
    for (let x = 0; x < outWidth; x++) {
      let s = 0;
      for (let k = ys.start[o]!; k < ys.start[o + 1]!; k++)
        s += ys.weight[k]! * tmp[ys.index[k]! * outWidth + x]!;
      out[o * outWidth + x] = Math.min(1, Math.max(0, s));
    }
  }
  return out;
}

/**
 * Box-footprint weights of {@link maskCoverage} along one axis of `n` input pixels resampled to `m`:
 * the overlap of each output footprint with each input pixel, divided by the footprint's length
 * inside `[0, n)` (so the weights of an output sum to 1 also where a footprint leaves the crop).
 */
function coverageTable(n: number, m: number): ResampleTable {
  const scale = n / m;
  const start = new Int32Array(m + 1);
  const index: number[] = [];
  const weight: number[] = [];
  for (let o = 0; o < m; o++) {
    start[o] = index.length;
    const centre = m > n ? o * scale : (o + 0.5) * scale;
    const a = Math.max(0, centre - scale / 2);
    const b = Math.min(n, centre + scale / 2);
    for (let i = Math.floor(a); i < Math.min(n, Math.ceil(b)); i++) {
      const cover = Math.min(b, i + 1) - Math.max(a, i);
      if (cover > 0) {
        index.push(i);
        weight.push(cover / (b - a));
      }
    }
  }
  start[m] = index.length;
  return { start, index: Int32Array.from(index), weight: Float32Array.from(weight) };
}

/**
 * A crop in photo pixels moved onto the grid of a reduced decode (DCT factor f): its corner rounded
 * to a multiple of f and its sides shortened to multiples of f, so that the same region is whole
 * pixels in both the photo and the decode. The region moves by less than f photo pixels; callers
 * keep the output size of the crop before snapping. A crop of a full decode is unchanged.
 */
export function snapToDecodedGrid(crop: CropRect, image: RgbImage): CropRect {
  const f = image.scaledFrom?.factor ?? 1;
  if (f === 1) return crop;
  const full = photoSize(image);
  const snap = (start: number, size: number, limit: number): [number, number] => {
    const length = Math.max(f, Math.floor(size / f) * f);
    const at = Math.min(Math.round(start / f) * f, Math.floor((limit - length) / f) * f);
    return [Math.max(0, at), Math.min(length, limit)];
  };
  const [left, width] = snap(crop.left, crop.width, full.width);
  const [top, height] = snap(crop.top, crop.height, full.height);
  return { ...crop, left, top, width, height };
}

/** The same region in the decoded pixels (a crop on the decode's grid, see snapToDecodedGrid). */
function onDecodedGrid(crop: CropRect, image: RgbImage): CropRect {
  const f = image.scaledFrom?.factor ?? 1;
  if (f === 1) return crop;
  const left = crop.left / f;
  const top = crop.top / f;
  if (!Number.isInteger(left) || !Number.isInteger(top)) {
    throw new RangeError(`Expected a crop on the 1/${f} decode's grid but received ${JSON.stringify(crop)}`);
  }
  return {
    ...crop,
    left,
    top,
    width: Math.min(image.width - left, Math.ceil(crop.width / f)),
    height: Math.min(image.height - top, Math.ceil(crop.height / f)),
  };
}

/** Parameters of {@link cropAndResize}. */
export interface CropAndResizeParams {
  /** The photo: in full, or decoded reduced (`image.scaledFrom`) when the crop is on its grid. */
  readonly image: RgbImage;
  /** Its binary subject mask at the photo's own size (`photoSize(image)`). */
  readonly mask: Uint8Array;
  readonly crop: CropRect;
  /** Output size (see {@link outputSize}). */
  readonly width: number;
  readonly height: number;
}

/**
 * Crop a photo and its mask to the same rectangle and resize both to `width × height` with sharp's
 * lanczos3 (sharp detail, no ringing worth noticing at training resolution). The mask goes through
 * the very same resize as the photo (as a grey plane, then thresholded at 128), so its geometry is the
 * photo's by construction: sharp is centre-aligned when shrinking but (sharp 0.35) half an output
 * pixel off when enlarging, which a separate pure resize ({@link resizeMask}) would not match.
 * Weight maps are then computed from this mask, so everything aligns. `coverage` is the
 * full-resolution mask's area coverage at the output size ({@link maskCoverage}): the anti-aliased
 * edge that images/ is composited with (background.ts, edgeAlpha).
 * @throws RangeError when the mask does not match the photo or the crop is not inside it.
 */
export async function cropAndResize(
  params: CropAndResizeParams,
): Promise<{ image: RgbImage; mask: Uint8Array; coverage: Float32Array }> {
  const { image, mask, crop, width, height } = params;
  const n = width * height;
  const full = photoSize(image);
  const imageCrop = onDecodedGrid(crop, image);
  if (crop.width === width && crop.height === height && image.scaledFrom === undefined) {
    const same = cropPlane(mask, full.width, full.height, crop, 1);
    return { image: cropImage(image, crop), mask: same, coverage: Float32Array.from(same) };
  }
  // Only the crop of the mask becomes a 0/255 grey plane (one byte per pixel: sharp resizes bands
  // independently, so this is byte for byte the first band of an RGB rendering of the mask), and
  // the photo is resized straight from its full buffer without a cropped copy.
  const grey = cropPlane(mask, full.width, full.height, crop, 255);
  const whole = { left: 0, top: 0, width: crop.width, height: crop.height };
  const [resized, resizedMask] = await Promise.all([
    resizeRegion(image, imageCrop, width, height, "lanczos3"),
    resizeRegion(
      { data: grey, width: crop.width, height: crop.height, channels: 1 },
      whole,
      width,
      height,
      "lanczos3",
    ),
  ]);
  const out = new Uint8Array(n);
  const m = resizedMask.data;
  for (let i = 0; i < n; i++) out[i] = m[i]! >= 128 ? 1 : 0;
  const coverage = maskCoverage({
    mask,
    width: full.width,
    height: full.height,
    crop,
    outWidth: width,
    outHeight: height,
  });
  return { image: resized, mask: out, coverage };
}
