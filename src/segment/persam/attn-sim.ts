// PerSAM's target-guided attention bias: the similarity map standardised, shrunk to the 64×64
// token grid and squashed to (0, 1) (§7.2 step 5), fed to the decoder's token→image attention.

import type { Size } from "../../util/tensor.js";
import { bilinearResize } from "../sam/postprocess.js";
import { bilinearResizeSampled } from "../sam/region-upsample.js";
import { ENCODER_SIDE, GRID_SIDE, GRID_TOKENS } from "../sam/sam-constants.js";

/** Parameters of {@link attnSim}. */
export interface AttnSimParams {
  /** `H × W` full-resolution similarity map (row-major), as from `similarityMap`. */
  readonly sim: Float32Array;
  /** Original photo size `(H, W)`. */
  readonly originalSize: Size;
  /** `(h_in, w_in)` inside the 1024 frame; needed only with `aligned`. */
  readonly inputSize?: Size;
  /**
   * `false` (the reference): resize the standardised `(H, W)` map straight to 64×64, so the grid
   * spans the whole photo, not the padded 1024 canvas that the decoder's tokens span: for a
   * non-square photo the bias is stretched along the short side (§7.2.5, §9.15). Kept by default
   * for parity. `true`: place the map in the padded frame first (resize to `(h_in, w_in)`, pad the
   * rest of the 1024 canvas with the map's minimum standardised value, i.e. "least like the
   * target"), then 1024 → 64, so bias cell (r, c) lines up with token (r, c).
   * @default false
   */
  readonly aligned?: boolean;
}

/**
 * `sigmoid(bilinear64((sim − mean) / std))` flattened to 4096 values, std unbiased (N − 1) over all
 * H·W pixels as `torch.std` computes it (§7.2.5). A constant map (std 0, where the reference would
 * produce NaN) gives 0.5 everywhere.
 * @throws {Error} when sizes disagree, or `aligned` without `inputSize`.
 */
export function attnSim(params: AttnSimParams): Float32Array {
  const { sim, originalSize } = params;
  const [h, w] = originalSize;
  const n = h * w;
  if (sim.length !== n) throw new Error(`Expected ${w}×${h} similarity values but received ${sim.length}`);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sim[i]!;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = sim[i]! - mean;
    ss += d * d;
  }
  const std = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  const z = new Float32Array(n);
  if (std > 0) for (let i = 0; i < n; i++) z[i] = (sim[i]! - mean) / std;

  let grid: Float32Array;
  if (params.aligned) {
    if (!params.inputSize) throw new Error("Expected inputSize with aligned attn_sim but received none");
    const [hIn, wIn] = params.inputSize;
    let zMin = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) if (z[i]! < zMin) zMin = z[i]!;
    const resized = bilinearResize(z, 1, h, w, hIn, wIn);
    const canvas = new Float32Array(ENCODER_SIDE * ENCODER_SIDE).fill(zMin);
    for (let r = 0; r < hIn; r++) {
      canvas.set(resized.subarray(r * wIn, (r + 1) * wIn), r * ENCODER_SIDE);
    }
    grid = bilinearResize(canvas, 1, ENCODER_SIDE, ENCODER_SIDE, GRID_SIDE, GRID_SIDE);
  } else {
    // Straight (H, W) → 64×64, misaligned with the token grid for non-square photos: on purpose.
    grid = bilinearResize(z, 1, h, w, GRID_SIDE, GRID_SIDE);
  }
  const out = new Float32Array(GRID_TOKENS);
  for (let k = 0; k < GRID_TOKENS; k++) out[k] = 1 / (1 + Math.exp(-grid[k]!));
  return out;
}

/** Parameters of {@link attnSimFromField}. */
export interface AttnSimFromFieldParams {
  /** Full-resolution map values at `rows × cols` (row-major), as `LowResField.sample`. */
  readonly sample: (rows: Int32Array, cols: Int32Array) => Float32Array;
  /** `Σ v` and `Σ v²` over all H·W values (float64). */
  readonly sum: number;
  readonly sumSquares: number;
  /** Exact minimum of the map (for `aligned`'s padding). */
  readonly min: number;
  /** Exact maximum of the map (a constant map, max = min, has std 0). */
  readonly max: number;
  readonly originalSize: Size;
  readonly inputSize?: Size;
  readonly aligned?: boolean;
}

/**
 * {@link attnSim} without the `H × W` map: mean and unbiased std from `Σ v`, `Σ v²`, and the resizes
 * evaluated only at the ≤ 128 rows × 128 columns (≤ 256 × 256 with `aligned`) their taps read, in
 * the literal order. Equal to `attnSim` up to the float rounding of mean and std (≪ 1e-6).
 * @throws {Error} as {@link attnSim}.
 */
export function attnSimFromField(params: AttnSimFromFieldParams): Float32Array {
  const [h, w] = params.originalSize;
  const n = h * w;
  const mean = params.sum / n;
  const ss = Math.max(0, params.sumSquares - params.sum * mean);
  const std = n > 1 && params.max !== params.min ? Math.sqrt(ss / (n - 1)) : 0;
  const zAt = (rows: Int32Array, cols: Int32Array): Float32Array => {
    const v = params.sample(rows, cols);
    if (!(std > 0)) return v.fill(0);
    for (let i = 0; i < v.length; i++) v[i] = (v[i]! - mean) / std;
    return v;
  };
  let grid: Float32Array;
  if (params.aligned) {
    if (!params.inputSize) throw new Error("Expected inputSize with aligned attn_sim but received none");
    const [hIn, wIn] = params.inputSize;
    // z is a monotone function of the map, so its minimum is z(min), rounded as the literal's.
    const zMin = std > 0 ? Math.fround((params.min - mean) / std) : 0;
    const canvasAt = (rows: Int32Array, cols: Int32Array): Float32Array => {
      const out = new Float32Array(rows.length * cols.length).fill(zMin);
      const inRows = rows.filter((r) => r < hIn);
      const inCols = cols.filter((c) => c < wIn);
      if (inRows.length === 0 || inCols.length === 0) return out;
      // rows and cols are sorted, so the in-photo ones come first.
      const part = bilinearResizeSampled(zAt, h, w, hIn, wIn, inRows, inCols);
      for (let i = 0; i < inRows.length; i++) {
        out.set(part.subarray(i * inCols.length, (i + 1) * inCols.length), i * cols.length);
      }
      return out;
    };
    grid = bilinearResizeSampled(canvasAt, ENCODER_SIDE, ENCODER_SIDE, GRID_SIDE, GRID_SIDE);
  } else {
    grid = bilinearResizeSampled(zAt, h, w, GRID_SIDE, GRID_SIDE);
  }
  const out = new Float32Array(GRID_TOKENS);
  for (let k = 0; k < GRID_TOKENS; k++) out[k] = 1 / (1 + Math.exp(-grid[k]!));
  return out;
}
