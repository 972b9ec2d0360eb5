// PerSAM / PerSAM-F on one encoded photo (segmentPhoto; callers go through their photos with it),
// encoded once (embeddings reused by content hash), segmented with the resolved reference and scored
// with photoConfidence. One bad photo is recorded as failed with its one-line reason; the others go
// on (design §6).

import { isUserError } from "../../errors.js";
import type { Box, Point } from "../../util/tensor.js";
import type { PhotoEncoder, PhotoInput } from "../sam/photo-encoder.js";
import { type PhotoConfidence, photoConfidence } from "./confidence.js";
import type { LocationPrior } from "./location-prior.js";
import { type PerSamOptions, type PerSamResult, runPerSam } from "./persam.js";
import { runPerSamF } from "./persam-f.js";
import type { ReferenceMode, ResolvedReference } from "./reference-source.js";
import type { SimilarityStats } from "./similarity.js";

/** One decoder pass as reported (no logits). */
export interface SegmentStepSummary {
  readonly name: "first" | "refine1" | "refine2";
  /** All 4 IoU predictions of the pass. */
  readonly iouScores: readonly number[];
  /** Token kept (−1: PerSAM-F's λ-fused first pass). */
  readonly chosen: number;
  readonly box?: Box;
}

/** A segmented photo. */
export interface SegmentedPhoto {
  readonly status: "ok";
  readonly path: string;
  readonly index: number;
  readonly width: number;
  readonly height: number;
  /** Final binary mask `height × width`, 1 = subject; absent in results when `keepMasks` is false. */
  readonly mask?: Uint8Array;
  /** Foreground pixel count. */
  readonly area: number;
  readonly areaFraction: number;
  /** The decoder's IoU prediction for the final mask. */
  readonly iouScore: number;
  readonly steps: readonly SegmentStepSummary[];
  /** Positive / negative prior points (PerSAM-F uses only the positive one). */
  readonly prior: { readonly positive: Point; readonly negative?: Point };
  readonly similarity: SimilarityStats;
  readonly confidence: PhotoConfidence;
  /** PerSAM flags and confidence reasons, deduplicated. */
  readonly flags: readonly string[];
  readonly doubtful: boolean;
  /** Milliseconds per stage: loadMs, encodeMs, similarityMs, attnSimMs, decoderMs, upsampleMs, totalMs. */
  readonly timings: Readonly<Record<string, number>>;
  /** The embedding was reused (memory or disk cache). */
  readonly cachedEmbedding: boolean;
  /** The 64×64 similarity map (only in `onPhoto`, never kept in results). */
  readonly sim64?: Float32Array;
}

/** A photo that could not be segmented. */
export interface FailedPhoto {
  readonly status: "failed";
  readonly path: string;
  readonly index: number;
  /** One line: what went wrong and what to do. */
  readonly reason: string;
}

export type PhotoOutcome = SegmentedPhoto | FailedPhoto;

/** Parameters of {@link segmentPhoto}. */
export interface SegmentPhotoParams {
  /** Encodes the photo (or returns its cached embedding); its model's decoder is used. */
  readonly encoder: PhotoEncoder;
  readonly photo: PhotoInput;
  /** From `resolveReference`, built for the same mode. */
  readonly reference: ResolvedReference;
  /** @default reference.mode */
  readonly mode?: ReferenceMode;
  /** PerSAM options (ablations, aligned attn_sim); PerSAM-F uses only `refinements`. */
  readonly options?: PerSamOptions | undefined;
  /** Position of the photo in the caller's list, reported back. @default 0 */
  readonly index?: number;
  /**
   * Called once the photo is encoded, before PerSAM runs on this thread: the moment to start work
   * that can run beside it, such as the next photo's decode (PhotoEncoder.prefetch).
   */
  readonly onEncoded?: (() => void) | undefined;
}

/**
 * Segment one photo with the reference: encode (reusing embeddings by content hash), run PerSAM
 * (§7.2) or PerSAM-F (§8.3) with the reference's target (and λ), then `photoConfidence`. A photo
 * whose file cannot be read or decoded (a UserError) comes back as failed.
 * @throws {Error} for bugs (kept with their stack) and a reference built for another mode.
 */
export async function segmentPhoto(params: SegmentPhotoParams): Promise<PhotoOutcome> {
  const mode = checkedMode(params.reference, params.mode);
  const { encoder, reference } = params;
  const decoder = encoder.model.decoder;
  const path = params.photo.path;
  const index = params.index ?? 0;
  try {
    const started = performance.now();
    const { decoded: _pixels, ...file } = await encoder.encode(params.photo);
    params.onEncoded?.();
    const result: PerSamResult =
      mode === "persam-f"
        ? await runPerSamF({
            decoder,
            target: reference.target,
            lambdas: reference.persamF!.lambdas,
            image: file.encoded,
            ...(params.options?.refinements !== undefined
              ? { options: { refinements: params.options.refinements } }
              : {}),
          })
        : await runPerSam({
            decoder,
            target: reference.target,
            image: file.encoded,
            ...(params.options ? { options: params.options } : {}),
          });
    const confidence = photoConfidence({
      peakSimilarity: result.similarity.peak64Image,
      iouScore: result.iouScore,
      mask: result.mask,
      width: result.width,
      height: result.height,
    });
    return {
      status: "ok",
      path,
      index,
      width: result.width,
      height: result.height,
      mask: result.mask,
      area: result.area,
      areaFraction: confidence.areaFraction,
      iouScore: result.iouScore,
      steps: result.steps.map((s) => ({
        name: s.name,
        iouScores: [...s.iouScores],
        chosen: s.chosen,
        ...(s.box ? { box: s.box } : {}),
      })),
      prior: priorPoints(result.prior, mode),
      similarity: result.similarity,
      confidence,
      flags: [...new Set<string>([...result.flags, ...confidence.reasons])],
      doubtful: confidence.doubtful,
      timings: {
        loadMs: file.loadMs,
        encodeMs: file.encodeMs,
        ...Object.fromEntries(Object.entries(result.timings).map(([stage, ms]) => [`${stage}Ms`, ms])),
        totalMs: performance.now() - started,
      },
      cachedEmbedding: file.cached,
      sim64: result.sim64,
    };
  } catch (error) {
    if (!isUserError(error)) throw error;
    return { status: "failed", path, index, reason: error.toLine() };
  }
}

function checkedMode(reference: ResolvedReference, wanted: ReferenceMode | undefined): ReferenceMode {
  const mode = wanted ?? reference.mode;
  if (mode === "persam-f" && reference.persamF === undefined) {
    throw new Error(
      "Expected a reference resolved for persam-f (with fusion weights) but received a persam one",
    );
  }
  if (mode !== reference.target.variant) {
    throw new Error(`Expected a ${mode} reference target but received ${reference.target.variant}`);
  }
  return mode;
}

function priorPoints(prior: LocationPrior, mode: ReferenceMode): SegmentedPhoto["prior"] {
  // PerSAM-F clicks only the positive point (§8.3 step 1).
  return mode === "persam-f"
    ? { positive: prior.positive }
    : { positive: prior.positive, negative: prior.negative };
}
