// PerSAM-F: fit two fusion weights for SAM's three multimask outputs on the reference photo
// (persam-spec §8.1–8.2), then segment each photo with the fused output and two refinements (§8.3).

import type { Box, Point, Size } from "../../util/tensor.js";
import type { MaskDecoder } from "../sam/decoder-types.js";
import { lowResToOriginal, maskArea, maskBox } from "../sam/postprocess.js";
import { transformBox, transformPoints } from "../sam/preprocess.js";
import { LowResField, type RegionMask } from "../sam/region-upsample.js";
import { LOW_RES_SIDE } from "../sam/sam-constants.js";
import { type LocationPrior, locationPrior, locationPriorFromExtremes } from "./location-prior.js";
import {
  bestMultimask,
  checkWidths,
  clickPass,
  concatCoords,
  type EncodedImage,
  maskInputOf,
  type PerSamFlag,
  type PerSamResult,
  type PerSamStep,
  plane,
  StageClock,
  upsampleMaskBox,
  upsampleMaskLiteral,
  upsampleMaskRegion,
} from "./persam.js";
import {
  type FusionRowSource,
  type FusionTrainingOptions,
  type FusionTrainingResult,
  trainFusionWeights,
  trainFusionWeightsFromRows,
} from "./persam-f-trainer.js";
import { type SimilarityStats, similarityField, similarityMap } from "./similarity.js";
import { computeReferenceTarget, type ReferenceTarget } from "./target-embedding.js";

/** Trainer settings a caller may override (the maps and gt come from the reference). */
export type FusionTrainerOptions = FusionTrainingOptions;

/** Parameters of {@link adaptPerSamF}. */
export interface AdaptPerSamFParams {
  readonly decoder: MaskDecoder;
  readonly referenceImage: EncodedImage;
  /** Red channel of the reference mask at the photo's size (`H × W`); ground truth is `> 0` (§8.2). */
  readonly referenceMaskRed: Uint8Array;
  /** The reference mask on the 64×64 grid (`referenceMaskGrid`, §7.1 step 1). */
  readonly referenceGrid: Uint8Array;
  /** Optimiser settings; defaults are the reference's (§8.2). */
  readonly trainer?: FusionTrainerOptions;
  /**
   * Find the click on the literal `H × W` similarity map (`similarityMap` + `locationPrior`) instead
   * of `similarityField`'s branch and bound (the same point), and hand the trainer the three `H × W`
   * logit maps built in full with `lowResToOriginal` (`trainFusionWeights`) instead of row by row
   * (`trainFusionWeightsFromRows`): the same maps, so the same bins and λ. For tests and comparisons.
   * @default false
   */
  readonly literalFullResolution?: boolean;
}

/** A PerSAM-F model of one subject: its target feature and the trained fusion weights. */
export interface PerSamFAdaptation {
  /** Target with `targetFeat = normalise((max + mean) / 2)` (§8.1). */
  readonly target: ReferenceTarget;
  /** `[λ₀, λ₁, λ₂]` for multimask outputs 1, 2, 3. */
  readonly lambdas: readonly [number, number, number];
  readonly training: FusionTrainingResult;
  /** The positive click on the reference's own similarity map, original pixels. */
  readonly referencePoint: Point;
  /** IoU predictions of the reference pass (all 4 tokens). */
  readonly referenceIouScores: Float32Array;
}

/**
 * PerSAM-F adaptation on the reference (§8.1–8.2): target feature (max + mean)/2, positive click at
 * the max of the reference's own similarity, one decoder pass (click + padding point, multimask)
 * whose three full-resolution logit maps are computed once (the reference recomputes identical
 * maps every epoch under no-grad), then trained against `red > 0`: the maps go to
 * `trainFusionWeightsFromRows` as {@link fusionRows} computes them, and the trainer picks the solver
 * (`"binned"` bins them row by row and never stores them: same values, same bins, same λ as the
 * stored maps; at 12 MP this saves 3 × 48 MB of maps, a 12 MB gt array and a large share of the
 * adaptation's CPU time, see bench/README.md, case `persam-f`; `"exact"` assembles them).
 * @throws {UserError} when the reference grid is empty (from computeReferenceTarget).
 * @throws {Error} when the mask size differs from the reference photo's.
 */
export async function adaptPerSamF(params: AdaptPerSamFParams): Promise<PerSamFAdaptation> {
  const { decoder, referenceImage: image } = params;
  const [height, width] = image.originalSize;
  const m = height * width;
  if (params.referenceMaskRed.length !== m) {
    throw new Error(
      `Expected ${m} reference mask values (${width}×${height}) but received ${params.referenceMaskRed.length}`,
    );
  }
  const target = computeReferenceTarget({
    references: [{ embedding: image.embedding, grid: params.referenceGrid }],
    variant: "persam-f",
  });
  checkWidths(decoder, target, image);
  const literal = params.literalFullResolution ?? false;
  const referencePoint = similarityPrior(image, target, literal).prior.positive;
  const out = await clickPass(
    decoder,
    image,
    transformPoints([referencePoint], image.originalSize, image.inputSize),
  );
  const n = LOW_RES_SIDE * LOW_RES_SIDE;
  // Multimask outputs = tokens 1, 2, 3 (§3.6.7), λ₀ ↔ token 1 (§9.23).
  const multimask = out.lowResMasks.data.slice(n, 4 * n);
  let training: FusionTrainingResult;
  if (literal) {
    const high = lowResToOriginal(multimask, 3, image.inputSize, image.originalSize);
    // The trainer takes non-zero as foreground: `red > 0` for bytes.
    training = trainFusionWeights({
      ...params.trainer,
      logitsHigh: [high.subarray(0, m), high.subarray(m, 2 * m), high.subarray(2 * m, 3 * m)],
      gt: params.referenceMaskRed,
    });
  } else {
    // The maps computed from the low-res logits as the trainer asks for each row (the same float32
    // values, bit for bit), instead of 3 × H × W floats and H × W ground-truth bytes.
    training = trainFusionWeightsFromRows({
      ...params.trainer,
      rows: fusionRows(multimask, params.referenceMaskRed, image.inputSize, image.originalSize),
    });
  }
  return { target, lambdas: training.lambdas, training, referencePoint, referenceIouScores: out.iouScores };
}

/**
 * The trainer's input without `H × W` arrays: row y of `lowResToOriginal(multimask, 3, …)` from
 * three {@link LowResField}s (`rowInto`: the literal operators, order of additions and float32
 * roundings) and the same row of `red` (foreground: `red > 0`, i.e. non-zero).
 */
export function fusionRows(
  multimask: Float32Array,
  red: Uint8Array,
  inputSize: Size,
  originalSize: Size,
): FusionRowSource {
  const n = LOW_RES_SIDE * LOW_RES_SIDE;
  const [height, width] = originalSize;
  const planes = [0, 1, 2].map(
    (i) => new LowResField(multimask.subarray(i * n, (i + 1) * n), inputSize, originalSize),
  );
  const [f1, f2, f3] = planes as [LowResField, LowResField, LowResField];
  return {
    width,
    height,
    fillRow(y, l1, l2, l3, gt) {
      for (const f of planes) f.discardBefore(y);
      f1.rowInto(y, 0, width, l1);
      f2.rowInto(y, 0, width, l2);
      f3.rowInto(y, 0, width, l3);
      // `red > 0` is red ≠ 0 for bytes: the trainer takes non-zero as foreground.
      gt.set(red.subarray(y * width, (y + 1) * width));
    },
  };
}

/** Options of {@link runPerSamF}. */
export interface PerSamFOptions {
  /** Number of cascaded refinements, 0–2 (the reference runs 2). @default 2 */
  readonly refinements?: 0 | 1 | 2;
  /**
   * Build the `H × W` similarity map and logit maps literally (`similarityMap`, `locationPrior`,
   * `lowResToOriginal` + `thresholdMask` + `maskBox`) instead of evaluating them only where needed
   * (`similarityField`, `upsampleMaskBox`, `upsampleMaskRegion`). Same prior, boxes, masks and area;
   * similarity mean / std equal up to float rounding (~1e-7). Slow: for tests and comparisons only.
   * @default false
   */
  readonly literalFullResolution?: boolean;
}

/** Parameters of {@link runPerSamF}. */
export interface RunPerSamFParams {
  readonly decoder: MaskDecoder;
  /** `adaptation.target` (variant "persam-f"). */
  readonly target: ReferenceTarget;
  /** `adaptation.lambdas`. */
  readonly lambdas: readonly [number, number, number];
  readonly image: EncodedImage;
  readonly options?: PerSamFOptions;
}

/**
 * PerSAM-F on one photo (§8.3): positive click at the similarity max (no negative click), one pass
 * (click + padding point, multimask), fused low-res logits ℓ = Σ λᵢ·logits[i] and fused full-res
 * Z = post-process(ℓ); refinement 1 with the box of Z > 0 and mask input ℓ; refinement 2 with the
 * box of the best mask and its logits. An empty mask skips the remaining refinements (flag
 * `empty-mask-fallback`, §9.19).
 *
 * The spec fuses the full-resolution maps (Z = Σ λᵢ·logits_high[i]). §4.1 steps 1–3 are linear, so
 * post-process(ℓ) equals it up to float rounding, with one up-sampling instead of three; a pixel
 * whose fused value is within that rounding of 0 (an exact 0 included) can land on the other side of
 * the strict `> 0` threshold, and move the box by a pixel when it is on the box's edge. Such flips
 * are vanishingly rare: the survey in test/persam-fast.test.ts (PERSAM_F_FLIP_SURVEY=1) counts them
 * over planes, λ and sizes up to 12 MP.
 *
 * No `H × W` float map is built (unless `literalFullResolution`): the prior comes from
 * `similarityField`'s exact extrema, each box from `upsampleMaskBox` and the final mask and area from
 * `upsampleMaskRegion` — bit for bit the literal `thresholdMask(lowResToOriginal(·))` results.
 * @throws {Error} when widths disagree.
 */
export async function runPerSamF(params: RunPerSamFParams): Promise<PerSamResult> {
  const { decoder, target, image, lambdas } = params;
  const refinements = params.options?.refinements ?? 2;
  const literal = params.options?.literalFullResolution ?? false;
  checkWidths(decoder, target, image);
  const clock = new StageClock();
  const [height, width] = image.originalSize;
  const { prior, similarity, sim64 } = similarityPrior(image, target, literal);
  clock.lap("similarity");
  const click = transformPoints([prior.positive], image.originalSize, image.inputSize);

  const out = await clickPass(decoder, image, click);
  clock.lap("decoder");
  const n = LOW_RES_SIDE * LOW_RES_SIDE;
  const fused = new Float32Array(n);
  // The reference multiplies float32 logits by float32 λ.
  const l0 = Math.fround(lambdas[0]);
  const l1 = Math.fround(lambdas[1]);
  const l2 = Math.fround(lambdas[2]);
  const d = out.lowResMasks.data;
  for (let k = 0; k < n; k++) fused[k] = l0 * d[n + k]! + l1 * d[2 * n + k]! + l2 * d[3 * n + k]!;
  let current: PerSamStep = { name: "first", iouScores: out.iouScores, chosen: -1, lowRes: fused };
  const steps: PerSamStep[] = [current];
  const flags: PerSamFlag[] = [];
  const boxOf = (lowRes: Float32Array): Box | undefined =>
    literal ? literalRegion(lowRes, image).box : upsampleMaskBox(lowRes, image);

  for (let r = 1; r <= refinements; r++) {
    // Only the box of the previous step's mask is needed here (the fused ℓ's for refinement 1).
    const box = boxOf(current.lowRes);
    clock.lap("upsample");
    if (box === undefined) {
      flags.push("empty-mask-fallback");
      break;
    }
    // §8.3 steps 4–5: click + box corners (3 tokens, no padding point), mask input = the previous
    // step's raw logits (the fused ℓ for refinement 1).
    const next = await decoder.run({
      imageEmbeddings: image.embedding,
      pointCoords: concatCoords(click, transformBox(box, image.originalSize, image.inputSize)),
      pointLabels: Float32Array.of(1, 2, 3),
      maskInput: maskInputOf(current.lowRes),
    });
    clock.lap("decoder");
    const b = bestMultimask(next.iouScores);
    current = {
      name: r === 1 ? "refine1" : "refine2",
      iouScores: next.iouScores,
      chosen: b,
      lowRes: plane(next, b),
      box,
    };
    steps.push(current);
  }
  const final = literal ? literalRegion(current.lowRes, image) : upsampleMaskRegion(current.lowRes, image);
  clock.lap("upsample");
  const { mask, area } = final;
  if (area === 0) flags.push("empty-mask");
  // For the fused first pass there is no single IoU prediction: report the λ-weighted one.
  const iouScore =
    current.chosen >= 0
      ? current.iouScores[current.chosen]!
      : l0 * current.iouScores[1]! + l1 * current.iouScores[2]! + l2 * current.iouScores[3]!;
  return {
    mask,
    width,
    height,
    area,
    iouScore,
    steps,
    prior,
    similarity,
    sim64,
    timings: clock.totals(),
    flags,
  };
}

/**
 * Location prior and statistics of the similarity of `image` with the target: from
 * `similarityField` (exact extrema, no `H × W` map), or from the literal `similarityMap` +
 * `locationPrior`.
 */
function similarityPrior(
  image: EncodedImage,
  target: ReferenceTarget,
  literal: boolean,
): { prior: LocationPrior; similarity: SimilarityStats; sim64: Float32Array } {
  const params = {
    embedding: image.embedding,
    targetFeat: target.targetFeat,
    originalSize: image.originalSize,
    inputSize: image.inputSize,
  };
  const [height, width] = params.originalSize;
  if (literal) {
    const map = similarityMap(params);
    return { prior: locationPrior({ sim: map.sim, width, height }), similarity: map.stats, sim64: map.sim64 };
  }
  const field = similarityField(params);
  return {
    prior: locationPriorFromExtremes(field.extremes, width),
    similarity: field.stats,
    sim64: field.sim64,
  };
}

/** The literal mask, area and box: the whole `H × W` logit map, threshold, `maskArea`, `maskBox`. */
function literalRegion(lowRes: Float32Array, image: EncodedImage): RegionMask {
  const mask = upsampleMaskLiteral(lowRes, image);
  const [height, width] = image.originalSize;
  return { mask, area: maskArea(mask), box: maskBox(mask, width, height) };
}
