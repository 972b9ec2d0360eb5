// Choosing a video's training frames from its sampled candidates: the subject present (PerSAM's
// similarity against the video's best), sharp against the video's sharpest, no re-take of a frame
// already in, then diverse (farthest-point selection over the subject's features and pose) with a
// minimum time gap; frames whose mask is doubtful or whose subject is small or at the edge only fill
// what is left. Every candidate gets a verdict with its reason. Pure.

import { CONFIDENCE_CALIBRATION } from "../segment/persam/confidence.js";
import { round3 } from "../util/numbers.js";
import type { Box } from "../util/tensor.js";
import {
  CURATION_LIMITS,
  cosine,
  type PhotoMeasure,
  poseDistance,
  poseOf,
  sameness,
  touchesEdge,
} from "./curation.js";

/** One sampled frame as PerSAM and the curation measures saw it. */
export interface FrameCandidate {
  readonly index: number;
  /** Seconds from the start. */
  readonly time: number;
  /** Peak cosine similarity of the target in the frame (`peak64Image`). */
  readonly similarity: number;
  readonly confidence: number;
  readonly doubtful: boolean;
  readonly measure: PhotoMeasure;
}

/** What became of a candidate. */
export interface FrameVerdict {
  readonly index: number;
  readonly time: number;
  readonly chosen: boolean;
  /** Why it was chosen or dropped, in a few words. */
  readonly reason: string;
  /** Ranking score in [0, 1] (sharpness against the best, and confidence). */
  readonly score: number;
  readonly similarity: number;
  readonly confidence: number;
  /** Sharpness as a fraction of the video's sharpest subject. */
  readonly sharpness: number;
}

/** Parameters of {@link chooseFrames}. */
export interface ChooseFramesParams {
  readonly candidates: readonly FrameCandidate[];
  /** Frames wanted. */
  readonly count: number;
  /** Smallest time between two chosen frames, seconds. */
  readonly minGap: number;
}

/**
 * The limits of the choice (heuristics): a frame shows the subject when its peak similarity is at
 * least PerSAM's own minimum and most of the video's best.
 */
export const FRAME_CHOICE = {
  /** Present: peak similarity at least this fraction of the video's best… */
  presentRelative: 0.85,
  /** …and at least this. */
  presentMin: CONFIDENCE_CALIBRATION.minSimilarity,
} as const;

/** The default smallest gap between chosen frames: the video shared out, between ½ and 3 s. */
export function defaultMinGap(duration: number, count: number): number {
  return Math.min(3, Math.max(0.5, duration / (2 * Math.max(1, count))));
}

/** Choose `count` frames (see the module comment); verdicts in candidate order. */
export function chooseFrames(params: ChooseFramesParams): FrameVerdict[] {
  const { candidates, count, minGap } = params;
  const bestSimilarity = Math.max(0, ...candidates.map((c) => c.similarity));
  const presentAt = Math.max(FRAME_CHOICE.presentMin, FRAME_CHOICE.presentRelative * bestSimilarity);
  const present = candidates.filter((c) => c.similarity >= presentAt);
  const sharpest = Math.max(0, ...present.map((c) => c.measure.sharpness));
  const relSharp = (c: FrameCandidate): number => (sharpest > 0 ? c.measure.sharpness / sharpest : 0);
  const weak = (c: FrameCandidate): boolean => {
    const { box, width, height } = c.measure;
    return (
      c.doubtful ||
      box === undefined ||
      poseOf(box, width, height).area < CURATION_LIMITS.smallArea ||
      touchesEdge(box, width, height)
    );
  };
  const score = (c: FrameCandidate): number => 0.6 * relSharp(c) + 0.4 * c.confidence;
  const verdicts = new Map<number, FrameVerdict>();
  const verdict = (c: FrameCandidate, chosen: boolean, reason: string): void => {
    verdicts.set(c.index, {
      index: c.index,
      time: c.time,
      chosen,
      reason,
      score: round3(score(c)),
      similarity: round3(c.similarity),
      confidence: round3(c.confidence),
      sharpness: round3(relSharp(c)),
    });
  };
  const at = (c: FrameCandidate): string => `${c.time.toFixed(1)} s`;

  // 1. Subject present, 2. sharp, 3. not a re-take of a better frame (best first).
  const pool: FrameCandidate[] = [];
  for (const c of [...candidates].sort((a, b) => score(b) - score(a) || a.index - b.index)) {
    if (c.similarity < presentAt) {
      verdict(c, false, `no subject: similarity ${c.similarity.toFixed(2)}, below ${presentAt.toFixed(2)}`);
      continue;
    }
    const rel = relSharp(c);
    if (rel < CURATION_LIMITS.blurryRelative) {
      verdict(c, false, `blurry: sharpness ${Math.round(rel * 100)}% of the sharpest frame`);
      continue;
    }
    const twin = pool.find((p) => sameness(c.measure, p.measure) !== undefined);
    if (twin) {
      const why = sameness(c.measure, twin.measure)!;
      verdict(
        c,
        false,
        `${why.flag === "duplicate" ? "duplicate" : "near-duplicate"} of the frame at ${at(twin)}`,
      );
      continue;
    }
    pool.push(c);
  }

  // 4. Diverse: farthest-point selection, good frames before weak ones, never two within minGap.
  const chosen: FrameCandidate[] = [];
  const distance = (a: FrameCandidate, b: FrameCandidate): number => {
    const fa = a.measure.feature;
    const fb = b.measure.feature;
    const feature = fa && fb ? 1 - cosine(fa, fb) : 1;
    const pose =
      a.measure.box && b.measure.box
        ? poseDistance(
            poseOf(a.measure.box, a.measure.width, a.measure.height),
            poseOf(b.measure.box, b.measure.width, b.measure.height),
          )
        : 1;
    return feature + 0.5 * pose;
  };
  const tooClose = (c: FrameCandidate): FrameCandidate | undefined =>
    chosen.find((k) => Math.abs(k.time - c.time) < minGap);
  for (const tier of [pool.filter((c) => !weak(c)), pool.filter(weak)]) {
    const left = [...tier];
    while (chosen.length < count && left.length > 0) {
      let pick = -1;
      let far = -1;
      for (let i = 0; i < left.length; i++) {
        const c = left[i]!;
        if (tooClose(c)) continue;
        // The first pick is the best-scoring frame; then the farthest from those chosen, ties by score.
        const d =
          chosen.length === 0 ? score(c) : Math.min(...chosen.map((k) => distance(c, k))) + 1e-3 * score(c);
        if (d > far) {
          far = d;
          pick = i;
        }
      }
      if (pick < 0) break;
      const c = left.splice(pick, 1)[0]!;
      chosen.push(c);
      verdict(
        c,
        true,
        weak(c)
          ? `chosen to fill up (${weakReason(c)})`
          : chosen.length === 1
            ? "chosen: best frame"
            : "chosen: adds variety",
      );
    }
  }
  for (const c of pool) {
    if (verdicts.has(c.index)) continue;
    const near = tooClose(c);
    verdict(
      c,
      false,
      near
        ? `within ${minGap.toFixed(1)} s of the chosen frame at ${at(near)}`
        : weak(c)
          ? `weaker frame (${weakReason(c)}), not needed`
          : `enough frames: ${count} chosen`,
    );
  }
  return candidates.map((c) => verdicts.get(c.index)!);
}

function weakReason(c: FrameCandidate): string {
  const { box, width, height } = c.measure;
  if (c.doubtful) return "doubtful mask";
  if (box === undefined) return "no subject mask";
  if (poseOf(box, width, height).area < CURATION_LIMITS.smallArea) return "subject small";
  if (touchesEdge(box as Box, width, height)) return "subject at the edge";
  return "weak";
}
