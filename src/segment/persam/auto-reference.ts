// Automatic reference: when the user gives no mask, propose SAM masks around the centre of every
// photo and keep the one whose target feature is found best in the OTHER photos (our extension; the
// paper always has a hand mask).

import { UserError } from "../../errors.js";
import type { Point } from "../../util/tensor.js";
import type { MaskDecoder } from "../sam/decoder-types.js";
import { referenceMaskGrid, transformPoints } from "../sam/preprocess.js";
import { GRID_SIDE, GRID_TOKENS, LOW_RES_SIDE } from "../sam/sam-constants.js";
import { clickPass, type EncodedImage, plane, upsampleMask } from "./persam.js";
import { imageCellExtent } from "./similarity.js";
import { embeddingChannels, l2Normalize } from "./target-embedding.js";

/** Parameters of {@link chooseAutoReference}. */
export interface ChooseAutoReferenceParams {
  readonly decoder: MaskDecoder;
  /** All photos of the subject (at least one). */
  readonly images: readonly EncodedImage[];
  /** Prompts per photo: a `gridPoints × gridPoints` grid of positive clicks. @default 3 */
  readonly gridPoints?: number;
  /** Fraction of each side that the click grid spans, centred (0.4 → clicks at 30/50/70 %). @default 0.4 */
  readonly centralSpread?: number;
  /** Candidates of one photo overlapping more than this (IoU of low-res masks) are merged. @default 0.9 */
  readonly dedupeIou?: number;
  /** Candidates with fewer foreground cells on the 64×64 grid are skipped. @default 4 */
  readonly minCells?: number;
  /** Candidates covering more than this fraction of the photo are skipped. @default 0.95 */
  readonly maxAreaFraction?: number;
  /** Score penalty per unit of area fraction above `penaltyFreeArea`, scaled to 1 at full area. @default 0.25 */
  readonly areaPenalty?: number;
  /** @default 0.5 */
  readonly penaltyFreeArea?: number;
}

/** One proposed reference mask and how it scored. */
export interface AutoReferenceCandidate {
  readonly photoIndex: number;
  /** Click in original pixels that produced it. */
  readonly point: Point;
  /** Multimask token (1..3). */
  readonly token: number;
  /** The decoder's IoU prediction. */
  readonly iouScore: number;
  /** Foreground cells of its 64×64 grid (low-res approximation, see `candidateGrid`). */
  readonly cells: number;
  /** Foreground share of the photo area (low-res). */
  readonly areaFraction: number;
  /** Mean over the other photos of the peak cosine similarity (NaN with a single photo). */
  readonly meanPeak: number;
  /** Final score (higher is better); NaN when skipped. */
  readonly score: number;
  /** Why it was not scored. */
  readonly skipped?: "too-small" | "too-large" | "duplicate";
}

/** The chosen reference. */
export interface AutoReferenceChoice {
  readonly photoIndex: number;
  /** The chosen mask at the photo's size, 1 = subject. */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** Its 64×64 grid by the exact mask-file rule (mask rendered as PerSeg red 128, §7.1 step 1). */
  readonly grid: Uint8Array;
  readonly score: number;
  readonly candidate: AutoReferenceCandidate;
  /** Every candidate, in photo / click / token order. */
  readonly candidates: readonly AutoReferenceCandidate[];
}

/**
 * Pick a reference photo and mask automatically. For each photo, SAM's three multimask outputs
 * for each click of a centred grid are candidates (near-duplicates merged, keeping the higher IoU
 * prediction). A candidate's target feature is the normalised mean of its cells' features (the
 * PerSAM rule), and its score is
 *
 *   score = mean over the other photos of max_cells cos(target, cell)
 *           − areaPenalty · max(0, area − penaltyFreeArea) / (1 − penaltyFreeArea).
 *
 * The first term asks "is this thing in every other photo", which is what a subject is. But the
 * background (floor, wall, sky) is in every photo too and would score as well; candidates that
 * cover most of the photo are usually background, hence the area penalty (and the hard
 * `maxAreaFraction` cut). With a single photo there is nothing to compare with; the score is then
 * the decoder's IoU prediction minus the same penalty. Ties keep the first candidate; the whole
 * procedure is deterministic.
 * @throws {UserError} when no candidate survives (every proposal empty, tiny or whole-photo).
 * @throws {Error} when no image is given or widths disagree.
 */
export async function chooseAutoReference(params: ChooseAutoReferenceParams): Promise<AutoReferenceChoice> {
  const { decoder, images } = params;
  if (images.length === 0) throw new Error("Expected at least one image but received none");
  const gridPoints = params.gridPoints ?? 3;
  const spread = params.centralSpread ?? 0.4;
  const dedupeIou = params.dedupeIou ?? 0.9;
  const minCells = params.minCells ?? 4;
  const maxArea = params.maxAreaFraction ?? 0.95;
  const areaPenalty = params.areaPenalty ?? 0.25;
  const freeArea = params.penaltyFreeArea ?? 0.5;

  const normalized = images.map((image, i) => {
    const c = embeddingChannels(image.embedding, `images[${i}].embedding`);
    if (c !== decoder.embedDim) {
      throw new Error(`Expected width ${decoder.embedDim} for images[${i}] but received ${c}`);
    }
    return normalizedFeatures(image.embedding.data, c);
  });

  const candidates: AutoReferenceCandidate[] = [];
  let best: { candidate: AutoReferenceCandidate; lowRes: Float32Array } | undefined;
  const ranked: { candidate: AutoReferenceCandidate; photo: number; point: Point; token: number }[] = [];

  for (let i = 0; i < images.length; i++) {
    const image = images[i]!;
    const [height, width] = image.originalSize;
    const proposals: {
      point: Point;
      token: number;
      iouScore: number;
      lowRes: Float32Array;
      low: Uint32Array;
      cells: Uint8Array;
      count: number;
      area: number;
    }[] = [];
    for (const point of clickGrid(width, height, gridPoints, spread)) {
      const out = await clickPass(
        decoder,
        image,
        transformPoints([point], image.originalSize, image.inputSize),
      );
      for (let token = 1; token <= 3; token++) {
        const lowRes = plane(out, token);
        const { low, area } = lowResForeground(lowRes, image.inputSize);
        const cells = candidateGrid(lowRes, image.inputSize);
        let count = 0;
        for (let k = 0; k < GRID_TOKENS; k++) count += cells[k]!;
        proposals.push({
          point,
          token,
          iouScore: out.iouScores[token]!,
          lowRes,
          low: packBits(low),
          cells,
          count,
          area,
        });
      }
    }
    // Greedy dedupe: best IoU prediction first (stable on ties), drop near-copies of a kept one.
    const order = proposals
      .map((_, k) => k)
      .sort((a, b) => proposals[b]!.iouScore - proposals[a]!.iouScore || a - b);
    const kept: number[] = [];
    const verdict = new Map<number, AutoReferenceCandidate["skipped"]>();
    for (const k of order) {
      const p = proposals[k]!;
      if (p.count < minCells) verdict.set(k, "too-small");
      else if (p.area > maxArea) verdict.set(k, "too-large");
      else if (kept.some((q) => packedIou(proposals[q]!.low, p.low) > dedupeIou)) verdict.set(k, "duplicate");
      else kept.push(k);
    }
    // Every kept candidate's unit target (the mean of its cells' features), then one pass over
    // each other photo's cells for all of them at once.
    const scored = proposals.map((_, k) => !verdict.has(k));
    const targets = proposals.map((p, k) =>
      scored[k] ? l2Normalize(maskedChannelMean(image.embedding.data, p.cells, decoder.embedDim)) : undefined,
    );
    const peakSums = new Float64Array(proposals.length);
    for (let j = 0; j < images.length; j++) {
      if (j === i) continue;
      const peaks = peakSimilarities(targets, normalized[j]!, images[j]!.inputSize);
      for (let k = 0; k < proposals.length; k++) peakSums[k]! += peaks[k]!;
    }
    proposals.forEach((p, k) => {
      const skipped = verdict.get(k);
      const base = {
        photoIndex: i,
        point: p.point,
        token: p.token,
        iouScore: p.iouScore,
        cells: p.count,
        areaFraction: p.area,
      };
      if (skipped !== undefined) {
        candidates.push({ ...base, meanPeak: Number.NaN, score: Number.NaN, skipped });
        return;
      }
      const meanPeak = images.length > 1 ? peakSums[k]! / (images.length - 1) : Number.NaN;
      const penalty = (areaPenalty * Math.max(0, p.area - freeArea)) / (1 - freeArea);
      const score = (images.length > 1 ? meanPeak : p.iouScore) - penalty;
      const candidate: AutoReferenceCandidate = { ...base, meanPeak, score };
      candidates.push(candidate);
      ranked.push({ candidate, photo: i, point: p.point, token: p.token });
      if (best === undefined || score > best.candidate.score) best = { candidate, lowRes: p.lowRes };
    });
  }

  // The best candidate whose full-resolution mask still covers a grid cell by the exact rule.
  const order = ranked
    .map((r, k) => ({ ...r, k }))
    .sort((a, b) => b.candidate.score - a.candidate.score || a.k - b.k);
  for (const r of order) {
    const image = images[r.photo]!;
    const [height, width] = image.originalSize;
    let lowRes: Float32Array;
    if (best !== undefined && r.candidate === best.candidate) lowRes = best.lowRes;
    else {
      // Re-run the (deterministic) pass rather than keep every candidate's logits in memory.
      const out = await clickPass(
        decoder,
        image,
        transformPoints([r.point], image.originalSize, image.inputSize),
      );
      const n = LOW_RES_SIDE * LOW_RES_SIDE;
      lowRes = out.lowResMasks.data.slice(r.token * n, (r.token + 1) * n);
    }
    const mask = upsampleMask(lowRes, image);
    const red = new Uint8Array(mask.length);
    for (let j = 0; j < mask.length; j++) red[j] = mask[j] ? 128 : 0;
    const grid = referenceMaskGrid(red, width, height);
    if (grid.some((v) => v !== 0)) {
      return {
        photoIndex: r.photo,
        mask,
        width,
        height,
        grid,
        score: r.candidate.score,
        candidate: r.candidate,
        candidates,
      };
    }
  }
  throw new UserError(
    "Could not choose a reference automatically: no usable subject mask near the photos' centres",
    {
      hint: "give a reference mask, point or box for one photo",
    },
  );
}

/** The click grid in original pixels, row by row. */
export function clickGrid(width: number, height: number, points: number, spread: number): Point[] {
  const fractions =
    points <= 1 ? [0.5] : Array.from({ length: points }, (_, i) => 0.5 + spread * (i / (points - 1) - 0.5));
  const out: Point[] = [];
  for (const fy of fractions) {
    for (const fx of fractions) {
      out.push([Math.min(width - 1, Math.floor(fx * width)), Math.min(height - 1, Math.floor(fy * height))]);
    }
  }
  return out;
}

/**
 * A candidate's 64×64 grid straight from its low-res logits, without going to full resolution.
 * The mask-file rule (§7.1 step 1) with a red-128 mask marks cell (r, c) iff the mask holds at all
 * four taps, 1024-frame pixels 16r+7, 16r+8 × 16c+7, 16c+8, and those taps must lie inside the
 * resized photo. In low-res coordinates ((y + 0.5)/4 − 0.5) the taps sit at 4r+1.375 and 4r+1.625,
 * between low-res pixels 4r+1 and 4r+2; we require all four of those low-res logits > 0. This is an
 * approximation of the full-resolution rule (two resamplings differ at the mask edge), good enough
 * for ranking; the chosen candidate's grid is recomputed exactly.
 */
export function candidateGrid(lowRes: Float32Array, inputSize: readonly [number, number]): Uint8Array {
  const [hIn, wIn] = inputSize;
  const grid = new Uint8Array(GRID_TOKENS);
  for (let r = 0; r < GRID_SIDE; r++) {
    if (16 * r + 8 >= hIn) break;
    for (let c = 0; c < GRID_SIDE; c++) {
      if (16 * c + 8 >= wIn) break;
      const y = 4 * r + 1;
      const x = 4 * c + 1;
      const a = lowRes[y * LOW_RES_SIDE + x]!;
      const b = lowRes[y * LOW_RES_SIDE + x + 1]!;
      const d = lowRes[(y + 1) * LOW_RES_SIDE + x]!;
      const e = lowRes[(y + 1) * LOW_RES_SIDE + x + 1]!;
      grid[r * GRID_SIDE + c] = a > 0 && b > 0 && d > 0 && e > 0 ? 1 : 0;
    }
  }
  return grid;
}

/** Low-res foreground (logit > 0) inside the photo's part of the frame, and its area fraction. */
function lowResForeground(
  lowRes: Float32Array,
  inputSize: readonly [number, number],
): { low: Uint8Array; area: number } {
  const rows = Math.max(1, Math.round(inputSize[0] / 4));
  const cols = Math.max(1, Math.round(inputSize[1] / 4));
  const low = new Uint8Array(LOW_RES_SIDE * LOW_RES_SIDE);
  let count = 0;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const j = y * LOW_RES_SIDE + x;
      if (lowRes[j]! > 0) {
        low[j] = 1;
        count++;
      }
    }
  }
  return { low, area: count / (rows * cols) };
}

/** A 0/1 mask packed 32 pixels to a word, for {@link packedIou}. */
function packBits(mask: Uint8Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(mask.length / 32));
  for (let j = 0; j < mask.length; j++) if (mask[j]) words[j >>> 5]! |= 1 << (j & 31);
  return words;
}

/** Set bits of a 32-bit word. */
function bitCount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** IoU of two packed masks; two empty masks count as identical (1). */
function packedIou(a: Uint32Array, b: Uint32Array): number {
  let inter = 0;
  let union = 0;
  for (let w = 0; w < a.length; w++) {
    inter += bitCount(a[w]! & b[w]!);
    union += bitCount(a[w]! | b[w]!);
  }
  return union === 0 ? 1 : inter / union;
}

/**
 * Per-channel mean of a `[C, 4096]` embedding over the grid's foreground cells: the same sums, in
 * the same order, as `maskedChannelStats`, without the maxima.
 */
function maskedChannelMean(embedding: Float32Array, grid: Uint8Array, channels: number): Float64Array {
  const cells: number[] = [];
  for (let k = 0; k < GRID_TOKENS; k++) if (grid[k]! > 0) cells.push(k);
  const mean = new Float64Array(channels);
  if (cells.length === 0) return mean;
  for (let ch = 0; ch < channels; ch++) {
    const base = ch * GRID_TOKENS;
    let sum = 0;
    for (const k of cells) sum += embedding[base + k]!;
    mean[ch] = sum / cells.length;
  }
  return mean;
}

/** Per-location unit feature vectors, laid out cell-major `[4096, C]` for fast dot products. */
function normalizedFeatures(data: Float32Array, channels: number): Float32Array {
  // Channel by channel, so both passes read the channel-major embedding in order.
  const ss = new Float64Array(GRID_TOKENS);
  for (let ch = 0; ch < channels; ch++) {
    const base = ch * GRID_TOKENS;
    for (let k = 0; k < GRID_TOKENS; k++) {
      const v = data[base + k]!;
      ss[k]! += v * v;
    }
  }
  const inv = new Float64Array(GRID_TOKENS);
  for (let k = 0; k < GRID_TOKENS; k++) inv[k] = ss[k]! > 0 ? 1 / Math.sqrt(ss[k]!) : 0;
  const out = new Float32Array(GRID_TOKENS * channels);
  for (let ch = 0; ch < channels; ch++) {
    const base = ch * GRID_TOKENS;
    for (let k = 0; k < GRID_TOKENS; k++) out[k * channels + ch] = data[base + k]! * inv[k]!;
  }
  return out;
}

/**
 * For each unit target (undefined: not scored, gives −∞), the max cosine similarity over the cells
 * that overlap the photo. Each cell's features are read once for all targets.
 */
function peakSimilarities(
  targets: readonly (Float32Array | undefined)[],
  features: Float32Array,
  inputSize: readonly [number, number],
): Float64Array {
  const peaks = new Float64Array(targets.length).fill(Number.NEGATIVE_INFINITY);
  const live = targets.flatMap((t, k) => (t === undefined ? [] : [{ t, k }]));
  if (live.length === 0) return peaks;
  const channels = live[0]!.t.length;
  const { rows, cols } = imageCellExtent(inputSize);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const base = (r * GRID_SIDE + c) * channels;
      for (const { t, k } of live) {
        let dot = 0;
        for (let ch = 0; ch < channels; ch++) dot += t[ch]! * features[base + ch]!;
        if (dot > peaks[k]!) peaks[k] = dot;
      }
    }
  }
  return peaks;
}
