// Cosine similarity between a target feature and every location of an image embedding, on the
// 64×64 grid and up-sampled to the original photo exactly as the reference code does (§7.2 1–3).

import type { Size, Tensor } from "../../util/tensor.js";
import { bilinearResize, lowResToOriginal } from "../sam/postprocess.js";
import { type FieldExtremes, LowResField } from "../sam/region-upsample.js";
import { ENCODER_SIDE, GRID_SIDE, GRID_TOKENS, LOW_RES_SIDE } from "../sam/sam-constants.js";
import { embeddingChannels } from "./target-embedding.js";

/** Parameters of {@link cosineSimilarityGrid}. */
export interface CosineSimilarityGridParams {
  /** `[1, C, 64, 64]` image embedding. */
  readonly embedding: Tensor;
  /** Unit-length target feature, C values. */
  readonly targetFeat: Float32Array;
}

/**
 * `sim64[r*64 + c] = targetFeat · F[:, r, c] / ‖F[:, r, c]‖` over all 4096 cells, including the
 * padded ones (§7.2 steps 1–2). A location with a zero feature vector gets 0 (the reference would
 * divide by zero). Float64 accumulation, float32 result.
 * @throws {Error} when the embedding is not `[1, C, 64, 64]` or targetFeat has another length.
 */
export function cosineSimilarityGrid(params: CosineSimilarityGridParams): Float32Array {
  const { embedding, targetFeat } = params;
  const channels = embeddingChannels(embedding, "embedding");
  if (targetFeat.length !== channels) {
    throw new Error(`Expected ${channels} values for targetFeat but received ${targetFeat.length}`);
  }
  const data = embedding.data;
  const dot = new Float64Array(GRID_TOKENS);
  const sq = new Float64Array(GRID_TOKENS);
  for (let ch = 0; ch < channels; ch++) {
    const t = targetFeat[ch]!;
    const base = ch * GRID_TOKENS;
    for (let k = 0; k < GRID_TOKENS; k++) {
      const v = data[base + k]!;
      dot[k]! += t * v;
      sq[k]! += v * v;
    }
  }
  const out = new Float32Array(GRID_TOKENS);
  for (let k = 0; k < GRID_TOKENS; k++) {
    const n = Math.sqrt(sq[k]!);
    out[k] = n === 0 ? 0 : dot[k]! / n;
  }
  return out;
}

/** Summary statistics of a similarity map. */
export interface SimilarityStats {
  /** Max / min / mean / population std of the full-resolution map `sim`. */
  readonly max: number;
  readonly min: number;
  readonly mean: number;
  readonly std: number;
  /** Max of `sim64` over all 4096 cells (padding included, as the reference sees them). */
  readonly peak64: number;
  /** Max of `sim64` over the cells that overlap the photo (padding excluded). */
  readonly peak64Image: number;
}

/** A similarity map at both resolutions. */
export interface SimilarityMap {
  /** 4096 values on the 64×64 grid. */
  readonly sim64: Float32Array;
  /** `H × W` values (row-major) on the original photo. */
  readonly sim: Float32Array;
  readonly width: number;
  readonly height: number;
  readonly stats: SimilarityStats;
}

/** Parameters of {@link similarityMap}. */
export interface SimilarityMapParams extends CosineSimilarityGridParams {
  /** Original photo size `(H, W)`. */
  readonly originalSize: Size;
  /** Resized size `(h_in, w_in)` inside the 1024 frame (§1.1 step 2). */
  readonly inputSize: Size;
}

/**
 * Cosine similarity on the grid, then bilinear ×4 to 256×256 and the mask post-processing of
 * §4.1 steps 1–3 (1024 frame, crop, resize to `(H, W)`), no threshold: exactly §7.2 steps 1–3.
 * The location prior is taken on this full-resolution map on purpose (§9.17), not on `sim64`.
 */
export function similarityMap(params: SimilarityMapParams): SimilarityMap {
  const sim64 = cosineSimilarityGrid(params);
  const [height, width] = params.originalSize;
  // F.interpolate(scale_factor=4) uses scale 1/4 = 64/256: identical to a resize to 256.
  const sim256 = bilinearResize(sim64, 1, GRID_SIDE, GRID_SIDE, LOW_RES_SIDE, LOW_RES_SIDE);
  const sim = lowResToOriginal(sim256, 1, params.inputSize, params.originalSize);
  return { sim64, sim, width, height, stats: similarityStats(sim, sim64, params.inputSize) };
}

/** Rows and columns of the 64×64 grid that overlap the photo inside the 1024 frame. */
export function imageCellExtent(inputSize: Size): { rows: number; cols: number } {
  const cell = ENCODER_SIDE / GRID_SIDE;
  return {
    rows: Math.min(GRID_SIDE, Math.ceil(inputSize[0] / cell)),
    cols: Math.min(GRID_SIDE, Math.ceil(inputSize[1] / cell)),
  };
}

/** Max of a 64×64 map over the cells that overlap the photo. */
export function gridPeakInImage(sim64: Float32Array, inputSize: Size): number {
  const { rows, cols } = imageCellExtent(inputSize);
  let peak = Number.NEGATIVE_INFINITY;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = sim64[r * GRID_SIDE + c]!;
      if (v > peak) peak = v;
    }
  }
  return peak;
}

function similarityStats(sim: Float32Array, sim64: Float32Array, inputSize: Size): SimilarityStats {
  let max = Number.NEGATIVE_INFINITY;
  let min = Number.POSITIVE_INFINITY;
  let sum = 0;
  for (let i = 0; i < sim.length; i++) {
    const v = sim[i]!;
    sum += v;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  const mean = sum / sim.length;
  let ss = 0;
  for (let i = 0; i < sim.length; i++) {
    const d = sim[i]! - mean;
    ss += d * d;
  }
  let peak64 = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < sim64.length; k++) if (sim64[k]! > peak64) peak64 = sim64[k]!;
  return {
    max,
    min,
    mean,
    std: Math.sqrt(ss / sim.length),
    peak64,
    peak64Image: gridPeakInImage(sim64, inputSize),
  };
}

/** A similarity map whose full-resolution values are computed only where needed (exact). */
export interface SimilarityField {
  /** 4096 values on the 64×64 grid. */
  readonly sim64: Float32Array;
  /** The `H × W` map of {@link similarityMap}, evaluated on demand (bit for bit the same values). */
  readonly field: LowResField;
  readonly width: number;
  readonly height: number;
  /** As {@link similarityMap}'s: max / min exact, mean / std up to float rounding (~1e-7 relative). */
  readonly stats: SimilarityStats;
  /** Position (row-major index) of the max and min of the full-resolution map, first on ties. */
  readonly extremes: FieldExtremes;
  /** `Σ v` and `Σ v²` over the full-resolution map (float64, for attn_sim's unbiased std). */
  readonly moments: { readonly sum: number; readonly sumSquares: number };
}

/**
 * {@link similarityMap} without the `H × W` array: the same 64×64 and 256×256 maps, the statistics
 * from the low-res plane (extrema by branch and bound, exact; mean and std through the operators'
 * Gram matrices), and the full-resolution values on demand through `field`.
 */
export function similarityField(params: SimilarityMapParams): SimilarityField {
  const sim64 = cosineSimilarityGrid(params);
  const [height, width] = params.originalSize;
  const sim256 = bilinearResize(sim64, 1, GRID_SIDE, GRID_SIDE, LOW_RES_SIDE, LOW_RES_SIDE);
  const field = new LowResField(sim256, params.inputSize, params.originalSize);
  const extremes = field.extremes();
  const moments = field.moments();
  const n = width * height;
  const mean = moments.sum / n;
  const variance = Math.max(0, moments.sumSquares / n - mean * mean);
  let peak64 = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < sim64.length; k++) if (sim64[k]! > peak64) peak64 = sim64[k]!;
  const stats: SimilarityStats = {
    max: extremes.maxValue,
    min: extremes.minValue,
    mean,
    std: extremes.maxValue === extremes.minValue ? 0 : Math.sqrt(variance),
    peak64,
    peak64Image: gridPeakInImage(sim64, params.inputSize),
  };
  return { sim64, field, width, height, stats, extremes, moments };
}
