// The reference side of PerSAM / PerSAM-F: from a reference photo's embedding and its 64×64 mask
// grid to the target embedding `t` and the normalised target feature used for cosine similarity
// (persam-spec §7.1, §8.1).

import { UserError } from "../../errors.js";
import type { Tensor } from "../../util/tensor.js";
import { GRID_TOKENS } from "../sam/sam-constants.js";

/** Which reference rule to apply. */
export type ReferenceVariant = "persam" | "persam-f";

/** One reference: its encoder output and the 0/1 64×64 grid of `referenceMaskGrid` (§7.1 step 1). */
export interface ReferenceInput {
  /** `[1, C, 64, 64]` image embedding of the reference photo. */
  readonly embedding: Tensor;
  /** 4096 cells, 1 = foreground (row-major `r*64 + c`). */
  readonly grid: Uint8Array;
}

/** What the per-photo passes need from the reference(s). */
export interface ReferenceTarget {
  /** Which rule built `targetFeat`. */
  readonly variant: ReferenceVariant;
  /** Mean of the masked cells' features, NOT normalised: PerSAM's `t` (§7.1 step 3). C values. */
  readonly targetEmbedding: Float32Array;
  /** Unit-length target feature for cosine similarity (§7.1 step 4, or §8.1 step 2). C values. */
  readonly targetFeat: Float32Array;
  /** Foreground cell count of each reference grid, in input order. */
  readonly cellCounts: readonly number[];
}

/** Parameters of {@link computeReferenceTarget}. */
export interface ReferenceTargetParams {
  /** One or more references of the same subject. */
  readonly references: readonly ReferenceInput[];
  /**
   * `"persam"`: targetFeat = normalise(mean) (§7.1). `"persam-f"`: targetFeat =
   * normalise((max + mean) / 2) with a per-channel max over the masked cells (§8.1 step 2).
   * @default "persam"
   */
  readonly variant?: ReferenceVariant;
}

/**
 * Build the target embedding and target feature from one or more references.
 *
 * With several references the per-reference vectors (mean, and for PerSAM-F (max+mean)/2) are
 * averaged with equal weight before normalising. This is our extension, not in the paper; with one
 * reference the computation is exactly the reference code's.
 *
 * @throws {UserError} when a reference grid has no foreground cell (the reference code would take
 *   the mean of an empty set and produce NaN; §9.18).
 * @throws {Error} when no reference is given or shapes disagree (a bug in the caller).
 */
export function computeReferenceTarget(params: ReferenceTargetParams): ReferenceTarget {
  const variant = params.variant ?? "persam";
  const refs = params.references;
  if (refs.length === 0) throw new Error("Expected at least one reference but received none");
  const first = refs[0]!;
  const channels = embeddingChannels(first.embedding, "references[0].embedding");
  const meanAcc = new Float64Array(channels);
  const featAcc = new Float64Array(channels);
  const cellCounts: number[] = [];

  refs.forEach((ref, index) => {
    const c = embeddingChannels(ref.embedding, `references[${index}].embedding`);
    if (c !== channels) {
      throw new Error(`Expected ${channels} channels for references[${index}] but received ${c}`);
    }
    if (ref.grid.length !== GRID_TOKENS) {
      throw new Error(
        `Expected ${GRID_TOKENS} cells for references[${index}].grid but received ${ref.grid.length}`,
      );
    }
    const stats = maskedChannelStats(ref.embedding.data, ref.grid, channels);
    if (stats.count === 0) {
      throw new UserError(
        `Reference mask ${refs.length > 1 ? `#${index + 1} ` : ""}covers no cell of SAM's 64×64 feature grid`,
        {
          hint:
            "the mask is too small (each 16×16-pixel cell of the 1024-pixel frame must be almost entirely inside it) " +
            "or its foreground is not a light/red colour (a 0/1 mask looks empty); use a larger mask or a 0/255 or PerSeg red mask",
        },
      );
    }
    cellCounts.push(stats.count);
    for (let ch = 0; ch < channels; ch++) {
      const mean = stats.mean[ch]!;
      meanAcc[ch]! += mean;
      // §8.1 step 2: (max / 2 + mean / 2), the reference code's order of operations.
      featAcc[ch]! += variant === "persam-f" ? stats.max[ch]! / 2 + mean / 2 : mean;
    }
  });

  const n = refs.length;
  const targetEmbedding = new Float32Array(channels);
  const featRaw = new Float64Array(channels);
  for (let ch = 0; ch < channels; ch++) {
    targetEmbedding[ch] = meanAcc[ch]! / n;
    featRaw[ch] = featAcc[ch]! / n;
  }
  return { variant, targetEmbedding, targetFeat: l2Normalize(featRaw), cellCounts };
}

/** Per-channel mean and max of the embedding over the grid's foreground cells (float64). */
export function maskedChannelStats(
  embedding: Float32Array,
  grid: Uint8Array,
  channels: number,
): { count: number; mean: Float64Array; max: Float64Array } {
  const mean = new Float64Array(channels);
  const max = new Float64Array(channels).fill(Number.NEGATIVE_INFINITY);
  let count = 0;
  for (let k = 0; k < GRID_TOKENS; k++) if (grid[k]! > 0) count++;
  if (count === 0) return { count, mean, max };
  for (let ch = 0; ch < channels; ch++) {
    const base = ch * GRID_TOKENS;
    let sum = 0;
    let m = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < GRID_TOKENS; k++) {
      if (grid[k]! > 0) {
        const v = embedding[base + k]!;
        sum += v;
        if (v > m) m = v;
      }
    }
    mean[ch] = sum / count;
    max[ch] = m;
  }
  return { count, mean, max };
}

/** L2-normalise a vector (float64 maths) into float32. A zero vector stays zero. */
export function l2Normalize(v: ArrayLike<number>): Float32Array {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
  const norm = Math.sqrt(ss);
  const out = new Float32Array(v.length);
  if (norm === 0) return out;
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / norm;
  return out;
}

/** Channel count C of a `[1, C, 64, 64]` embedding; throws on another shape. */
export function embeddingChannels(embedding: Tensor, name: string): number {
  const d = embedding.dims;
  if (d.length !== 4 || d[0] !== 1 || d[2] !== 64 || d[3] !== 64) {
    throw new Error(`Expected [1,C,64,64] for ${name} but received [${d.join(",")}]`);
  }
  const c = d[1]!;
  if (embedding.data.length !== c * GRID_TOKENS) {
    throw new Error(`Expected ${c * GRID_TOKENS} values for ${name} but received ${embedding.data.length}`);
  }
  return c;
}
