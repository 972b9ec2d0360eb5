// The review's decisions inside the per-photo stage of `prepare`: a photo with a mask override takes
// that mask instead of a prediction, a photo whose override no longer applies says so in its flags,
// and include / exclude decisions change what is kept (plan.ts, isKept).

import type { SegmentationRecord } from "../prepare-state.js";
import {
  type ApplicableReview,
  loadReviewMask,
  type PhotoDecision,
  photoSegmentationKey,
} from "../review-decisions.js";
import type { ScannedPhoto } from "../scan.js";

/** Flag of a photo whose mask was drawn in review. */
export const OVERRIDE_FLAG = "override";
/** Flag of a photo whose override was ignored because the photo changed since. */
export const OVERRIDE_OUTDATED_FLAG = "override-outdated";

/** The segmentation key of a photo in this run (the run's, joined with its override's hash). */
export function photoKey(review: ApplicableReview | undefined, stem: string, runKey: string): string {
  return photoSegmentationKey(runKey, review?.overrides.get(stem));
}

/** The review's include / exclude decision on a photo, if any. */
export function photoDecision(review: ApplicableReview | undefined, stem: string): PhotoDecision | undefined {
  return review?.decisions.get(stem);
}

/**
 * The mask override of a photo as its segmentation (confidence 1, never doubtful, flag `override`),
 * or undefined when it has none.
 * @throws Error when the override's mask file changed after the plan checked it
 */
export async function overrideSegmentation(params: {
  readonly review: ApplicableReview | undefined;
  readonly outDir: string;
  readonly photo: ScannedPhoto;
  readonly key: string;
  readonly maskFile: string;
}): Promise<{ mask: Uint8Array; record: SegmentationRecord } | undefined> {
  const override = params.review?.overrides.get(params.photo.stem);
  if (!override) return undefined;
  const t = performance.now();
  const mask = await loadReviewMask(params.outDir, override);
  return {
    mask,
    record: {
      key: params.key,
      maskFile: params.maskFile,
      mask: { sha256: "", size: 0 },
      width: override.width,
      height: override.height,
      area: override.area,
      confidence: 1,
      doubtful: false,
      flags: [OVERRIDE_FLAG],
      iouScore: 1,
      timingsMs: { maskLoadMs: Math.round(performance.now() - t) },
    },
  };
}

/** The record with the flag of an ignored override added, when the photo's override was ignored. */
export function withOutdatedFlag(
  record: SegmentationRecord,
  review: ApplicableReview | undefined,
  stem: string,
): SegmentationRecord {
  return review?.outdated.has(stem)
    ? { ...record, flags: [...record.flags, OVERRIDE_OUTDATED_FLAG] }
    : record;
}
