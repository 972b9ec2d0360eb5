// Training-free PerSAM on one encoded photo: similarity map → location prior → target-guided first
// pass → two cascaded refinements (persam-spec §7.2). Talks to the decoder only through MaskDecoder.

import { argmax, type Box, type Point, type Size, type Tensor } from "../../util/tensor.js";
import type { DecoderOutputs, MaskDecoder } from "../sam/decoder-types.js";
import { lowResToOriginal, maskArea, maskBox, thresholdMask } from "../sam/postprocess.js";
import { transformBox, transformPoints } from "../sam/preprocess.js";
import { LowResField, type RegionMask } from "../sam/region-upsample.js";
import { LOW_RES_SIDE, NUM_MASK_TOKENS } from "../sam/sam-constants.js";
import { attnSim, attnSimFromField } from "./attn-sim.js";
import { type LocationPrior, locationPrior, locationPriorFromExtremes } from "./location-prior.js";
import { type SimilarityStats, similarityField, similarityMap } from "./similarity.js";
import type { ReferenceTarget } from "./target-embedding.js";

/** A photo as SAM sees it: its embedding and the two sizes needed to map coordinates. */
export interface EncodedImage {
  /** `[1, C, 64, 64]` image embedding. */
  readonly embedding: Tensor;
  /** Photo size `(H, W)`. */
  readonly originalSize: Size;
  /** Resized size `(h_in, w_in)` inside the 1024 frame. */
  readonly inputSize: Size;
}

/** Why a result deserves a second look (reported, never thrown). */
export type PerSamFlag =
  /** A refinement's box would have come from an empty mask; it was skipped (§9.19). */
  | "empty-mask-fallback"
  /** The final mask has no foreground pixel. */
  | "empty-mask";

/** One decoder pass of the cascade. */
export interface PerSamStep {
  readonly name: "first" | "refine1" | "refine2";
  /** All 4 IoU predictions of the pass. */
  readonly iouScores: Float32Array;
  /** The mask token kept (0 single-mask pass, 1..3 multimask, −1 PerSAM-F's λ-fused outputs). */
  readonly chosen: number;
  /** Raw low-res logits `[256 × 256]` of the kept token (or the fused ones, PerSAM-F's first pass). */
  readonly lowRes: Float32Array;
  /** The box prompt in original pixels (inclusive extents), when the pass had one. */
  readonly box?: Box;
}

/** Options of {@link runPerSam}. */
export interface PerSamOptions {
  /**
   * Align attn_sim with the padded token grid instead of the reference's stretched grid (§7.2.5).
   * @default false
   */
  readonly alignedAttnSim?: boolean;
  /** Target-guided attention in the first pass (ablation switch). @default true */
  readonly useAttnSim?: boolean;
  /** Target-semantic prompting in the first pass (ablation switch). @default true */
  readonly useTargetEmbedding?: boolean;
  /** Number of cascaded refinements, 0–2 (the reference runs 2). @default 2 */
  readonly refinements?: 0 | 1 | 2;
  /**
   * Build the `H × W` similarity map and logit maps literally (`similarityMap`, `locationPrior`,
   * `attnSim`, `lowResToOriginal` + `thresholdMask`) instead of evaluating them only where needed.
   * Same masks, box, prior and area; attn_sim equal up to float rounding (≤ 1e-6). Slow (several
   * 12 MP float maps per photo; bench/README.md, case `persam`): for tests and comparisons only.
   * @default false
   */
  readonly literalFullResolution?: boolean;
}

/** Parameters of {@link runPerSam}. */
export interface RunPerSamParams {
  readonly decoder: MaskDecoder;
  /** From `computeReferenceTarget` (variant "persam"). */
  readonly target: ReferenceTarget;
  readonly image: EncodedImage;
  readonly options?: PerSamOptions;
}

/** What PerSAM found on one photo. */
export interface PerSamResult {
  /** Final binary mask `H × W`, row-major, 1 = subject (logits > 0, strict). */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** Foreground pixel count of `mask`. */
  readonly area: number;
  /** The decoder's IoU prediction for the final mask. */
  readonly iouScore: number;
  /** The passes actually run, in order. */
  readonly steps: readonly PerSamStep[];
  /** Location prior on the full-resolution similarity map. */
  readonly prior: LocationPrior;
  /** Statistics of the similarity map (peak on the 64 grid feeds the confidence score). */
  readonly similarity: SimilarityStats;
  /** The 64×64 similarity map. */
  readonly sim64: Float32Array;
  /** Milliseconds per stage. */
  readonly timings: Readonly<Record<string, number>>;
  readonly flags: readonly PerSamFlag[];
}

/**
 * PerSAM on one photo (§7.2 steps 1–8):
 * 1. cosine similarity with `target.targetFeat`, up-sampled to the photo; positive click at its
 *    max, negative click at its min;
 * 2. first pass: the two clicks + padding point, attn_sim and target embedding, single-mask output;
 * 3. refinement 1: same 3 tokens, mask input = first logits, multimask, best IoU (first on ties);
 * 4. refinement 2: the two clicks + the box of refinement 1's best mask (original resolution,
 *    inclusive extents), mask input = its logits, multimask, best IoU.
 * If refinement 1's mask is empty, refinement 2 is skipped and refinement 1's result kept, flagged
 * `empty-mask-fallback` (the reference would crash, §9.19). Only the masks actually needed are
 * up-sampled to full resolution.
 * @throws {Error} when the decoder's width differs from the embedding's or the target's.
 */
export async function runPerSam(params: RunPerSamParams): Promise<PerSamResult> {
  const { decoder, target, image } = params;
  const options = params.options ?? {};
  const refinements = options.refinements ?? 2;
  checkWidths(decoder, target, image);
  const clock = new StageClock();
  const [height, width] = image.originalSize;

  const literal = options.literalFullResolution ?? false;
  const aligned = options.alignedAttnSim ?? false;
  let prior: LocationPrior;
  let bias: Float32Array | undefined;
  let similarity: SimilarityStats;
  let sim64: Float32Array;
  const simParams = {
    embedding: image.embedding,
    targetFeat: target.targetFeat,
    originalSize: image.originalSize,
    inputSize: image.inputSize,
  };
  if (literal) {
    const simMap = similarityMap(simParams);
    prior = locationPrior({ sim: simMap.sim, width, height });
    clock.lap("similarity");
    bias =
      options.useAttnSim === false
        ? undefined
        : attnSim({ sim: simMap.sim, originalSize: image.originalSize, inputSize: image.inputSize, aligned });
    ({ stats: similarity, sim64 } = simMap);
  } else {
    // No H × W map: extrema, moments and the sampled resizes straight from the 256² plane (exact).
    const sim = similarityField(simParams);
    prior = locationPriorFromExtremes(sim.extremes, width);
    clock.lap("similarity");
    bias =
      options.useAttnSim === false
        ? undefined
        : attnSimFromField({
            sample: (rows, cols) => sim.field.sample(rows, cols),
            sum: sim.moments.sum,
            sumSquares: sim.moments.sumSquares,
            min: sim.extremes.minValue,
            max: sim.extremes.maxValue,
            originalSize: image.originalSize,
            inputSize: image.inputSize,
            aligned,
          });
    ({ stats: similarity, sim64 } = sim);
  }
  clock.lap("attnSim");

  const clicks: Point[] = [prior.positive, prior.negative];
  const clickCoords = transformPoints(clicks, image.originalSize, image.inputSize);
  // §2.2: with points and no box the caller appends the padding point (0, 0) with label −1.
  const paddedCoords = concatCoords(clickCoords, PADDING_COORDS);
  const paddedLabels = Float32Array.of(1, 0, -1);

  // §7.2.6: single-mask output (token 0) with both PerSAM hooks.
  const first = await decoder.run({
    imageEmbeddings: image.embedding,
    pointCoords: paddedCoords,
    pointLabels: paddedLabels,
    attnSim: bias,
    targetEmbedding: options.useTargetEmbedding === false ? undefined : target.targetEmbedding,
  });
  clock.lap("decoder");
  const steps: PerSamStep[] = [
    { name: "first", iouScores: first.iouScores, chosen: 0, lowRes: plane(first, 0) },
  ];
  const flags: PerSamFlag[] = [];
  let current = steps[0]!;
  const threshold = (lowRes: Float32Array): RegionMask =>
    literal ? literalRegion(lowRes, image) : upsampleMaskRegion(lowRes, image);

  if (refinements >= 1) {
    // §7.2.7: same 3 tokens, mask input = logits[0], multimask, no PerSAM hooks.
    const out = await decoder.run({
      imageEmbeddings: image.embedding,
      pointCoords: paddedCoords,
      pointLabels: paddedLabels,
      maskInput: maskInputOf(current.lowRes),
    });
    clock.lap("decoder");
    const b = bestMultimask(out.iouScores);
    current = { name: "refine1", iouScores: out.iouScores, chosen: b, lowRes: plane(out, b) };
    steps.push(current);
  }
  if (refinements >= 2) {
    // Only the box of refinement 1's mask is needed (§7.2.8).
    const box = literal ? literalRegion(current.lowRes, image).box : upsampleMaskBox(current.lowRes, image);
    clock.lap("upsample");
    if (box === undefined) {
      flags.push("empty-mask-fallback");
    } else {
      // §7.2.8: 2 clicks + box corners (labels 2, 3), no padding point; mask input = logits[b].
      const out = await decoder.run({
        imageEmbeddings: image.embedding,
        pointCoords: concatCoords(clickCoords, transformBox(box, image.originalSize, image.inputSize)),
        pointLabels: Float32Array.of(1, 0, 2, 3),
        maskInput: maskInputOf(current.lowRes),
      });
      clock.lap("decoder");
      const b = bestMultimask(out.iouScores);
      current = { name: "refine2", iouScores: out.iouScores, chosen: b, lowRes: plane(out, b), box };
      steps.push(current);
    }
  }
  const final = threshold(current.lowRes);
  const mask = final.mask;
  const area = final.area;
  clock.lap("upsample");
  if (area === 0) flags.push("empty-mask");
  return {
    mask,
    width,
    height,
    area,
    iouScore: current.iouScores[current.chosen]!,
    steps,
    prior,
    similarity,
    sim64,
    timings: clock.totals(),
    flags,
  };
}

// ---- helpers shared with PerSAM-F and auto-reference ------------------------------------------

/** `(0, 0)`: coordinates of the padding point (its PE is replaced, §2.2). */
export const PADDING_COORDS = new Float32Array(2);

/** One decoder pass with the positive click (model input coordinates) and the padding point. */
export function clickPass(
  decoder: MaskDecoder,
  image: EncodedImage,
  click: Float32Array,
): Promise<DecoderOutputs> {
  return decoder.run({
    imageEmbeddings: image.embedding,
    pointCoords: concatCoords(click, PADDING_COORDS),
    pointLabels: Float32Array.of(1, -1),
  });
}

/** Low-res plane of mask token `token`, copied (`[256 × 256]`). */
export function plane(out: DecoderOutputs, token: number): Float32Array {
  const n = LOW_RES_SIDE * LOW_RES_SIDE;
  if (out.lowResMasks.data.length !== NUM_MASK_TOKENS * n) {
    throw new Error(
      `Expected ${NUM_MASK_TOKENS * n} low-res mask values but received ${out.lowResMasks.data.length}`,
    );
  }
  return out.lowResMasks.data.slice(token * n, (token + 1) * n);
}

/** Token 1..3 with the highest IoU prediction, the first on ties (§7.2.7, §9.21). */
export function bestMultimask(iouScores: Float32Array): number {
  return 1 + argmax(iouScores.subarray(1, 4));
}

/** `[1, 1, 256, 256]` mask input from raw low-res logits, unchanged (§4.3, §9.22). */
export function maskInputOf(lowRes: Float32Array): Tensor {
  return { data: lowRes, dims: [1, 1, LOW_RES_SIDE, LOW_RES_SIDE] };
}

/**
 * Low-res logits → binary mask at the photo's size (§4.1, threshold `> 0`): identical to
 * {@link upsampleMaskLiteral}, computed only around the low-res positive cells.
 */
export function upsampleMask(lowRes: Float32Array, image: EncodedImage): Uint8Array {
  return upsampleMaskRegion(lowRes, image).mask;
}

/** The literal {@link upsampleMask}: the whole `H × W` logit map, then the threshold. */
export function upsampleMaskLiteral(lowRes: Float32Array, image: EncodedImage): Uint8Array {
  return thresholdMask(lowResToOriginal(lowRes, 1, image.inputSize, image.originalSize));
}

/**
 * Mask, area and box (inclusive extents) of the up-sampled low-res logits, without the `H × W` float
 * map: the same results as `upsampleMask` + `maskArea` + `maskBox`.
 */
export function upsampleMaskRegion(lowRes: Float32Array, image: EncodedImage): RegionMask {
  return new LowResField(lowRes, image.inputSize, image.originalSize).threshold();
}

/**
 * `maskBox(upsampleMask(lowRes, image), W, H)` without the mask: its inclusive extents, undefined
 * when empty.
 */
export function upsampleMaskBox(lowRes: Float32Array, image: EncodedImage): Box | undefined {
  return new LowResField(lowRes, image.inputSize, image.originalSize).box();
}

function literalRegion(lowRes: Float32Array, image: EncodedImage): RegionMask {
  const mask = upsampleMaskLiteral(lowRes, image);
  const [height, width] = image.originalSize;
  return { mask, area: maskArea(mask), box: maskBox(mask, width, height) };
}

/** Concatenate coordinate lists. */
export function concatCoords(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Throw when decoder, embedding and target disagree on the width C. */
export function checkWidths(decoder: MaskDecoder, target: ReferenceTarget, image: EncodedImage): void {
  const c = image.embedding.dims[1];
  if (c !== decoder.embedDim || target.targetFeat.length !== decoder.embedDim) {
    throw new Error(
      `Expected embedding and target width ${decoder.embedDim} (the decoder's) but received ${c} and ${target.targetFeat.length}`,
    );
  }
}

/** Accumulates elapsed milliseconds per named stage. */
export class StageClock {
  private last = performance.now();
  private readonly spent: Record<string, number> = {};

  /** Charge the time since the previous lap to `stage`. */
  lap(stage: string): void {
    const now = performance.now();
    this.spent[stage] = (this.spent[stage] ?? 0) + (now - this.last);
    this.last = now;
  }

  totals(): Readonly<Record<string, number>> {
    return { ...this.spent };
  }
}
