// What makes a training image worth keeping, measured on pixels and masks a run already has: the
// subject's sharpness (variance of the Laplacian over its box), a perceptual hash (re-saves of one
// picture), the subject's features (near-duplicates in the embedding), its pose and size in the
// frame; and the curation flags of a set (blurry, duplicate, near-duplicate, small, at the edge, low
// resolution) with the value that raised each. Pure functions over typed arrays.

import { GRID_SIDE } from "../segment/sam/sam-constants.js";
import { round3 } from "../util/numbers.js";
import type { Box, Tensor } from "../util/tensor.js";

/** Pixels as image-io gives them (only RGB is read). */
export interface CurationImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 3 | 4;
}

/**
 * Side the subject's box is brought down to before the Laplacian: sharpness then compares photos of
 * different resolutions on one scale (a 12 MP photo's grain is not detail at training size).
 */
export const SHARPNESS_SIDE = 256;

/**
 * Sharpness of the subject: the mean square of the 4-neighbour Laplacian of the grey values inside
 * `box` (the whole image without one), over the mean square gradient, after block-averaging the box
 * down to at most {@link SHARPNESS_SIDE} pixels on its longer side. Only comparable within one set (see
 * {@link curationFlags}, which compares each photo to the set's sharpest).
 */
export function sharpness(image: CurationImage, box?: Box): number {
  const [x0, y0, x1, y1] = clampBox(box, image.width, image.height);
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const f = Math.max(1, Math.ceil(Math.max(bw, bh) / SHARPNESS_SIDE));
  const w = Math.floor(bw / f);
  const h = Math.floor(bh / f);
  if (w < 3 || h < 3) return 0;
  const grey = blockGrey(image, x0, y0, w, h, f);
  // Second derivative against first: an edge blurred over s pixels has gradients ∝ 1/s and
  // Laplacians ∝ 1/s², so the ratio measures edge width whatever the number or contrast of edges
  // (a subject with much texture and one with little score alike when both are in focus). The
  // constant keeps a nearly flat box (codec noise only) from scoring high.
  let lap2 = 0;
  let grad2 = 0;
  let n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const lap = grey[i - 1]! + grey[i + 1]! + grey[i - w]! + grey[i + w]! - 4 * grey[i]!;
      const gx = (grey[i + 1]! - grey[i - 1]!) / 2;
      const gy = (grey[i + w]! - grey[i - w]!) / 2;
      lap2 += lap * lap;
      grad2 += gx * gx + gy * gy;
      n++;
    }
  }
  return lap2 / n / (grad2 / n + FLAT_GRADIENT);
}

/** Mean squared gradient (grey levels²) below which a box counts as flat rather than sharp. */
const FLAT_GRADIENT = 4;

/**
 * A 64-bit difference hash of the whole picture (grey, 9×8 block means, each compared with its right
 * neighbour), as 16 hex digits: re-saves, re-encodes and resizes of one picture stay within a few
 * bits of each other.
 */
export function differenceHash(image: CurationImage): string {
  const cols = 9;
  const rows = 8;
  const means = new Float64Array(cols * rows);
  for (let r = 0; r < rows; r++) {
    const ya = Math.floor((r * image.height) / rows);
    const yb = Math.max(ya + 1, Math.floor(((r + 1) * image.height) / rows));
    for (let c = 0; c < cols; c++) {
      const xa = Math.floor((c * image.width) / cols);
      const xb = Math.max(xa + 1, Math.floor(((c + 1) * image.width) / cols));
      // At most 16×16 samples per block: a hash needs no more.
      const sy = Math.max(1, Math.floor((yb - ya) / 16));
      const sx = Math.max(1, Math.floor((xb - xa) / 16));
      let s = 0;
      let n = 0;
      for (let y = ya; y < yb; y += sy) {
        for (let x = xa; x < xb; x += sx) {
          s += greyAt(image, x, y);
          n++;
        }
      }
      means[r * cols + c] = s / n;
    }
  }
  let hex = "";
  for (let r = 0; r < rows; r++) {
    let byte = 0;
    for (let c = 0; c < 8; c++)
      byte = (byte << 1) | (means[r * cols + c]! > means[r * cols + c + 1]! ? 1 : 0);
    hex += byte.toString(16).padStart(2, "0");
  }
  return hex;
}

/** Bits that differ between two {@link differenceHash} values. */
export function hashDistance(a: string, b: string): number {
  let d = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i += 2) {
    let x = Number.parseInt(a.slice(i, i + 2), 16) ^ Number.parseInt(b.slice(i, i + 2), 16);
    while (x) {
      d += x & 1;
      x >>= 1;
    }
  }
  return d + Math.abs(a.length - b.length) * 4;
}

/**
 * The subject's feature: the mean of the L2-normalised embedding vectors of the 64×64 cells whose
 * centre lies on the mask (the cell under the mask's centre when none does), normalised; the same
 * kind of vector as PerSAM's target, so two photos of one pose of the subject score near 1.
 * Undefined for an empty mask.
 * @param inputSize `[h_in, w_in]`, the photo's size inside the encoder's 1024 frame.
 */
export function subjectFeature(
  embedding: Tensor,
  inputSize: readonly [number, number],
  mask: Uint8Array,
  width: number,
  height: number,
): Float32Array | undefined {
  const channels = embedding.dims[1] ?? 0;
  const side = GRID_SIDE;
  if (embedding.data.length !== channels * side * side || mask.length !== width * height) return undefined;
  const cell = 1024 / side;
  const scale = inputSize[0] / height;
  const sum = new Float64Array(channels);
  let cells = 0;
  const add = (r: number, c: number): void => {
    let norm = 0;
    for (let k = 0; k < channels; k++) norm += embedding.data[(k * side + r) * side + c]! ** 2;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < channels; k++) sum[k]! += embedding.data[(k * side + r) * side + c]! * inv;
    cells++;
  };
  let sx = 0;
  let sy = 0;
  let area = 0;
  for (let r = 0; r < side; r++) {
    const y = Math.floor(((r + 0.5) * cell) / scale);
    if (y >= height) break;
    for (let c = 0; c < side; c++) {
      const x = Math.floor(((c + 0.5) * cell) / scale);
      if (x >= width) break;
      if (mask[y * width + x]) add(r, c);
    }
  }
  if (cells === 0) {
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      sx += i % width;
      sy += Math.floor(i / width);
      area++;
    }
    if (area === 0) return undefined;
    const r = Math.min(side - 1, Math.floor(((sy / area) * scale) / cell));
    const c = Math.min(side - 1, Math.floor(((sx / area) * scale) / cell));
    add(r, c);
  }
  let norm = 0;
  for (let k = 0; k < channels; k++) norm += sum[k]! ** 2;
  const out = new Float32Array(channels);
  const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let k = 0; k < channels; k++) out[k] = sum[k]! * inv;
  return out;
}

/** Cosine similarity of two vectors (0 when either is empty). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** Where and how large the subject is in its picture: box centre and area as fractions. */
export interface SubjectPose {
  readonly cx: number;
  readonly cy: number;
  readonly area: number;
}

/** The pose of a subject box in a `width × height` picture. */
export function poseOf(box: Box, width: number, height: number): SubjectPose {
  const [x0, y0, x1, y1] = box;
  return {
    cx: (x0 + x1 + 1) / 2 / width,
    cy: (y0 + y1 + 1) / 2 / height,
    area: ((x1 - x0 + 1) * (y1 - y0 + 1)) / (width * height),
  };
}

/** How far apart two poses are: centre shift (fractions of the picture) plus a quarter of the log size ratio. */
export function poseDistance(a: SubjectPose, b: SubjectPose): number {
  return (
    Math.abs(a.cx - b.cx) +
    Math.abs(a.cy - b.cy) +
    Math.abs(Math.log(Math.max(a.area, 1e-6) / Math.max(b.area, 1e-6))) / 4
  );
}

/**
 * The limits behind the curation flags (heuristics: a blurred photo keeps a small fraction of the
 * sharpest one's Laplacian variance; a re-saved picture differs in a few hash bits; two photos of
 * one pose have subject features above 0.97 and poses within a few percent of the picture).
 */
export const CURATION_LIMITS = {
  /** Blurry below this fraction of the set's (or video's) sharpest subject. */
  blurryRelative: 0.35,
  /** Same picture (a re-save) at or below this many differing hash bits. */
  duplicateBits: 6,
  /** Near-duplicate: subject features at least this similar… */
  nearDuplicateFeature: 0.97,
  /** …and poses at most this far apart… */
  nearDuplicatePose: 0.08,
  /** …and the pictures at most this many hash bits apart. */
  nearDuplicateBits: 20,
  /** Subject too small below this fraction of the picture. */
  smallArea: 0.02,
  /** A box within this fraction of the picture's side of an edge touches it. */
  edgeMargin: 0.005,
} as const;

/**
 * True when the box touches one to three edges of the picture (the subject is probably cut off). A
 * box on all four edges is the whole picture: a close-up or a mask of the background, which the
 * mask's own checks judge (confidence.ts), not a cut.
 */
export function touchesEdge(box: Box, width: number, height: number): boolean {
  const mx = Math.max(1, CURATION_LIMITS.edgeMargin * width);
  const my = Math.max(1, CURATION_LIMITS.edgeMargin * height);
  const sides = [box[0] < mx, box[1] < my, box[2] > width - 1 - mx, box[3] > height - 1 - my].filter(
    Boolean,
  ).length;
  return sides > 0 && sides < 4;
}

/** What the curation measures of one photo (kept in the state: no decode on an unchanged rerun). */
export interface PhotoMeasure {
  readonly sharpness: number;
  readonly hash: string;
  readonly width: number;
  readonly height: number;
  /** The subject's box, inclusive. */
  readonly box?: Box | undefined;
  /** The subject's feature (see {@link subjectFeature}), rounded. */
  readonly feature?: readonly number[] | undefined;
}

/** One curation flag with the value that raised it. */
export interface CurationFlag {
  /** `blurry`, `duplicate`, `near-duplicate`, `subject-small`, `subject-at-edge`, `low-resolution`. */
  readonly flag: string;
  /** The measured value (a fraction, a count of bits, pixels). */
  readonly value: number;
  /** The flag in words, with the value and the other photo where there is one. */
  readonly detail: string;
}

/** Flags that make an image add nothing new to the set (not counted as varied). */
export const REDUNDANT_FLAGS: ReadonlySet<string> = new Set(["blurry", "duplicate", "near-duplicate"]);

/** One photo of a set, for {@link curationFlags}. */
export interface CurationEntry {
  readonly stem: string;
  /** The name shown for it (its file). */
  readonly file: string;
  readonly measure: PhotoMeasure;
}

/**
 * The curation flags of a set, by stem: blurry against the set's sharpest subject; duplicate or
 * near-duplicate of an earlier photo that is at least as sharp (so the better one of each pair stays
 * unflagged); subject small or touching the edge; picture smaller than the training resolution.
 */
export function curationFlags(
  entries: readonly CurationEntry[],
  resolution: number,
): Map<string, CurationFlag[]> {
  const out = new Map<string, CurationFlag[]>(entries.map((e) => [e.stem, []]));
  const best = Math.max(0, ...entries.map((e) => e.measure.sharpness));
  const pct = (v: number): string => `${Math.round(v * 1000) / 10}%`;
  for (const e of entries) {
    const m = e.measure;
    const flags = out.get(e.stem)!;
    const rel = best > 0 ? m.sharpness / best : 1;
    if (rel < CURATION_LIMITS.blurryRelative) {
      flags.push({
        flag: "blurry",
        value: round3(rel),
        detail: `blurry: sharpness ${pct(rel)} of the sharpest`,
      });
    }
    if (m.box) {
      const pose = poseOf(m.box, m.width, m.height);
      if (pose.area < CURATION_LIMITS.smallArea) {
        flags.push({
          flag: "subject-small",
          value: round3(pose.area),
          detail: `subject small: its box is ${pct(pose.area)} of the picture`,
        });
      }
      if (touchesEdge(m.box, m.width, m.height)) {
        flags.push({ flag: "subject-at-edge", value: 1, detail: "subject at the edge: it may be cut off" });
      }
    }
    const side = Math.min(m.width, m.height);
    if (side < resolution) {
      flags.push({
        flag: "low-resolution",
        value: side,
        detail: `low resolution: ${side} px on the shorter side, below the training ${resolution} px`,
      });
    }
  }
  // Pairs, the sharper photo first: the later one of a pair is the one flagged.
  const order = [...entries].sort((a, b) => b.measure.sharpness - a.measure.sharpness);
  const kept: CurationEntry[] = [];
  for (const e of order) {
    const twin = kept
      .map((k) => ({ k, why: sameness(e.measure, k.measure) }))
      .find((x) => x.why !== undefined);
    if (twin) {
      const { flag, value } = twin.why!;
      out.get(e.stem)!.push({
        flag,
        value,
        detail:
          flag === "duplicate"
            ? `duplicate: the same picture as ${twin.k.file} (${value} of 64 hash bits differ)`
            : `near-duplicate of ${twin.k.file}: subject features ${value.toFixed(3)} alike, same pose`,
      });
    } else {
      kept.push(e);
    }
  }
  return out;
}

/** Why two measured pictures count as one, if they do. */
export function sameness(
  a: PhotoMeasure,
  b: PhotoMeasure,
): { flag: "duplicate" | "near-duplicate"; value: number } | undefined {
  const bits = hashDistance(a.hash, b.hash);
  if (bits <= CURATION_LIMITS.duplicateBits) return { flag: "duplicate", value: bits };
  if (!a.feature || !b.feature || !a.box || !b.box || bits > CURATION_LIMITS.nearDuplicateBits)
    return undefined;
  const similarity = cosine(a.feature, b.feature);
  const pose = poseDistance(poseOf(a.box, a.width, a.height), poseOf(b.box, b.width, b.height));
  return similarity >= CURATION_LIMITS.nearDuplicateFeature && pose <= CURATION_LIMITS.nearDuplicatePose
    ? { flag: "near-duplicate", value: round3(similarity) }
    : undefined;
}

function clampBox(box: Box | undefined, width: number, height: number): [number, number, number, number] {
  if (!box) return [0, 0, width - 1, height - 1];
  const x0 = Math.max(0, Math.min(width - 1, Math.floor(box[0])));
  const y0 = Math.max(0, Math.min(height - 1, Math.floor(box[1])));
  const x1 = Math.max(x0, Math.min(width - 1, Math.ceil(box[2])));
  const y1 = Math.max(y0, Math.min(height - 1, Math.ceil(box[3])));
  return [x0, y0, x1, y1];
}

function greyAt(image: CurationImage, x: number, y: number): number {
  const i = (y * image.width + x) * image.channels;
  return (77 * image.data[i]! + 150 * image.data[i + 1]! + 29 * image.data[i + 2]!) / 256;
}

/** Grey block means of an `(w·f) × (h·f)` region starting at (x0, y0). */
function blockGrey(
  image: CurationImage,
  x0: number,
  y0: number,
  w: number,
  h: number,
  f: number,
): Float64Array {
  const grey = new Float64Array(w * h);
  const inv = 1 / (f * f);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let dy = 0; dy < f; dy++) {
        for (let dx = 0; dx < f; dx++) s += greyAt(image, x0 + x * f + dx, y0 + y * f + dy);
      }
      grey[y * w + x] = s * inv;
    }
  }
  return grey;
}
