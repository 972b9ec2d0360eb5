// PerSAM-F: fit two fusion weights for SAM's three multimask outputs on the reference photo
// (persam-spec §8.1–8.2), then segment each photo with the fused output and two refinements (§8.3).

import type { MaskDecoder } from "./decoder-types.js";
import { locationPrior } from "./location-prior.js";
import {
  bestMultimask,
  checkWidths,
  concatCoords,
  type EncodedImage,
  maskInputOf,
  PADDING_COORDS,
  type PerSamFlag,
  type PerSamResult,
  type PerSamStep,
  plane,
  StageClock,
  upsampleMask,
} from "./persam.js";
import {
  type FusionTrainingResult,
  type TrainFusionWeightsParams,
  trainFusionWeights,
} from "./persam-f-trainer.js";
import { lowResToOriginal, maskArea, maskBox, thresholdMask } from "./postprocess.js";
import { transformBox, transformPoints } from "./preprocess.js";
import { computeReferenceTarget, type ReferenceTarget } from "./reference.js";
import { LOW_RES_SIDE } from "./sam-constants.js";
import { similarityMap } from "./similarity.js";
import type { Point } from "./tensor.js";

/** Trainer settings a caller may override (the maps and gt come from the reference). */
export type FusionTrainerOptions = Omit<TrainFusionWeightsParams, "logitsHigh" | "gt">;

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
 * maps every epoch under no-grad), then `trainFusionWeights` against `red > 0`.
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
  const sim = similarityMap({
    embedding: image.embedding,
    targetFeat: target.targetFeat,
    originalSize: image.originalSize,
    inputSize: image.inputSize,
  });
  const referencePoint = locationPrior({ sim: sim.sim, width, height }).positive;
  const out = await decoder.run({
    imageEmbeddings: image.embedding,
    pointCoords: concatCoords(
      transformPoints([referencePoint], image.originalSize, image.inputSize),
      PADDING_COORDS,
    ),
    pointLabels: Float32Array.of(1, -1),
  });
  const n = LOW_RES_SIDE * LOW_RES_SIDE;
  // Multimask outputs = tokens 1, 2, 3 (§3.6.7), λ₀ ↔ token 1 (§9.23).
  const multimask = out.lowResMasks.data.slice(n, 4 * n);
  const high = lowResToOriginal(multimask, 3, image.inputSize, image.originalSize);
  const gt = new Uint8Array(m);
  for (let j = 0; j < m; j++) gt[j] = params.referenceMaskRed[j]! > 0 ? 1 : 0;
  const training = trainFusionWeights({
    ...params.trainer,
    logitsHigh: [high.subarray(0, m), high.subarray(m, 2 * m), high.subarray(2 * m, 3 * m)],
    gt,
  });
  return { target, lambdas: training.lambdas, training, referencePoint, referenceIouScores: out.iouScores };
}

/** Options of {@link runPerSamF}. */
export interface PerSamFOptions {
  /** Number of cascaded refinements, 0–2 (the reference runs 2). @default 2 */
  readonly refinements?: 0 | 1 | 2;
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
 * Z = post-process(ℓ) (§4.1 steps 1–3 are linear, so this equals Σ λᵢ·logits_high[i] up to float
 * rounding, with one up-sampling instead of three); refinement 1 with the box of Z > 0 and mask
 * input ℓ; refinement 2 with the box of the best mask and its logits. An empty mask skips the
 * remaining refinements (flag `empty-mask-fallback`, §9.19).
 * @throws {Error} when widths disagree.
 */
export async function runPerSamF(params: RunPerSamFParams): Promise<PerSamResult> {
  const { decoder, target, image, lambdas } = params;
  const refinements = params.options?.refinements ?? 2;
  checkWidths(decoder, target, image);
  const clock = new StageClock();
  const [height, width] = image.originalSize;
  const simMap = similarityMap({
    embedding: image.embedding,
    targetFeat: target.targetFeat,
    originalSize: image.originalSize,
    inputSize: image.inputSize,
  });
  const prior = locationPrior({ sim: simMap.sim, width, height });
  clock.lap("similarity");
  const click = transformPoints([prior.positive], image.originalSize, image.inputSize);

  const out = await decoder.run({
    imageEmbeddings: image.embedding,
    pointCoords: concatCoords(click, PADDING_COORDS),
    pointLabels: Float32Array.of(1, -1),
  });
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
  // Full-resolution mask of `current`, when already computed.
  let currentMask: Uint8Array | undefined = thresholdMask(
    lowResToOriginal(fused, 1, image.inputSize, image.originalSize),
  );
  clock.lap("upsample");

  for (let r = 1; r <= refinements; r++) {
    currentMask ??= upsampleMask(current.lowRes, image);
    const box = maskBox(currentMask, width, height);
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
    currentMask = undefined;
  }
  const mask = currentMask ?? upsampleMask(current.lowRes, image);
  clock.lap("upsample");
  const area = maskArea(mask);
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
    similarity: simMap.stats,
    sim64: simMap.sim64,
    timings: clock.totals(),
    flags,
  };
}
