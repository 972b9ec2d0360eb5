// A per-photo confidence in [0, 1] for a PerSAM mask, from signals we already have: how much the
// photo looks like the target at its best cell, the decoder's own IoU guess, and the mask's shape.
// Our heuristic (not in the paper): it ranks photos and flags doubtful ones for the report.

import { clamp01 } from "../../util/numbers.js";
import { grown } from "../../util/tensor.js";

/** Below this confidence a photo is reported as doubtful. */
export const DOUBTFUL_THRESHOLD = 0.5;

/**
 * Calibration points of the score (heuristic, chosen from SAM feature statistics: a photo's own
 * object typically scores a cosine peak above 0.75 against its target, unrelated content stays
 * below 0.4; SAM's IoU head gives 0.85–1.0 to clean masks).
 */
export const CONFIDENCE_CALIBRATION = {
  /** Peak cosine similarity mapped to 0 / 1. */
  simLow: 0.35,
  simHigh: 0.75,
  /** IoU prediction mapped to 0 / 1. */
  iouLow: 0.5,
  iouHigh: 0.9,
  /** Area fraction at which a small mask reaches full area score. */
  areaFull: 0.01,
  /** Area fraction above which a mask loses area score (0 at the whole photo). */
  areaCrowded: 0.9,
  /** Hard limits behind the reasons below. */
  minSimilarity: 0.5,
  minIou: 0.5,
  minArea: 0.001,
  maxArea: 0.95,
  minLargestShare: 0.5,
} as const;

/** Why a photo is doubtful. */
export type ConfidenceReason =
  | "empty-mask"
  | "tiny-mask"
  | "mask-covers-photo"
  | "fragmented-mask"
  | "low-similarity"
  | "low-iou";

/** Parameters of {@link photoConfidence}. */
export interface PhotoConfidenceParams {
  /** Max of the 64×64 cosine-similarity map over the photo's cells (`stats.peak64Image`). */
  readonly peakSimilarity: number;
  /** The decoder's IoU prediction for the final mask. */
  readonly iouScore: number;
  /** Final binary mask, `height × width`, non-zero = subject. */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** The confidence and its parts. */
export interface PhotoConfidence {
  /** Weighted geometric mean of the four components, in [0, 1]. */
  readonly confidence: number;
  /** `confidence < DOUBTFUL_THRESHOLD` or any reason present. */
  readonly doubtful: boolean;
  /** True when the subject was probably not found (low similarity or empty mask). */
  readonly subjectNotFound: boolean;
  readonly reasons: readonly ConfidenceReason[];
  /** Each component in [0, 1]. */
  readonly components: {
    readonly similarity: number;
    readonly iou: number;
    readonly area: number;
    readonly compactness: number;
  };
  /** Mask pixels / photo pixels. */
  readonly areaFraction: number;
  /** Pixels of the largest 4-connected component / mask pixels (0 for an empty mask). */
  readonly largestComponentShare: number;
}

/**
 * `confidence = s_sim^0.4 · s_iou^0.2 · s_area^0.2 · s_compact^0.2` with
 * - `s_sim = clamp((peak − 0.35) / (0.75 − 0.35))`: is the target in this photo at all;
 * - `s_iou = clamp((iou − 0.5) / (0.9 − 0.5))`: does SAM trust its own mask;
 * - `s_area = min(1, a / 0.01)` for small masks, `clamp((1 − a) / (1 − 0.9))` above 0.9, else 1
 *   (a = area fraction; a mask of almost the whole photo is usually background);
 * - `s_compact` = share of the mask in its largest 4-connected component.
 * A zero in any component gives zero. Reasons (each also makes the photo doubtful): empty mask,
 * area < 0.1 %, area > 95 %, largest component < 50 % of the mask, peak < 0.5, IoU < 0.5.
 * @throws {Error} when the mask length is not width × height.
 */
export function photoConfidence(params: PhotoConfidenceParams): PhotoConfidence {
  const { mask, width, height } = params;
  if (mask.length !== width * height || mask.length === 0) {
    throw new Error(`Expected ${width}×${height} mask values but received ${mask.length}`);
  }
  const k = CONFIDENCE_CALIBRATION;
  const { area, largest } = largestComponent(mask, width, height);
  const areaFraction = area / mask.length;
  const largestComponentShare = area === 0 ? 0 : largest / area;
  const similarity = clamp01((params.peakSimilarity - k.simLow) / (k.simHigh - k.simLow));
  const iou = clamp01((params.iouScore - k.iouLow) / (k.iouHigh - k.iouLow));
  const areaScore =
    areaFraction > k.areaCrowded
      ? clamp01((1 - areaFraction) / (1 - k.areaCrowded))
      : Math.min(1, areaFraction / k.areaFull);
  const confidence = similarity ** 0.4 * iou ** 0.2 * areaScore ** 0.2 * largestComponentShare ** 0.2;

  const reasons: ConfidenceReason[] = [];
  if (area === 0) reasons.push("empty-mask");
  else if (areaFraction < k.minArea) reasons.push("tiny-mask");
  if (areaFraction > k.maxArea) reasons.push("mask-covers-photo");
  if (area > 0 && largestComponentShare < k.minLargestShare) reasons.push("fragmented-mask");
  if (!(params.peakSimilarity >= k.minSimilarity)) reasons.push("low-similarity");
  if (!(params.iouScore >= k.minIou)) reasons.push("low-iou");
  return {
    confidence,
    doubtful: confidence < DOUBTFUL_THRESHOLD || reasons.length > 0,
    subjectNotFound: reasons.includes("empty-mask") || reasons.includes("low-similarity"),
    reasons,
    components: { similarity, iou, area: areaScore, compactness: largestComponentShare },
    areaFraction,
    largestComponentShare,
  };
}

/**
 * Foreground pixel count and the size of the largest 4-connected component. Works on runs rather
 * than pixels: each row's runs of non-zero pixels are joined (union–find with sizes) to the runs
 * of the row above that share a column with them. A 12 MP mask then costs one pass over its bytes
 * and memory in proportion to its runs, where a pixel flood fill would need a 12 MB visited map and
 * a 48 MB stack per photo, its time going mostly to page faults on those fresh buffers.
 */
export function largestComponent(
  mask: Uint8Array,
  width: number,
  height: number,
): { area: number; largest: number; components: number } {
  let parent = new Int32Array(1024);
  let size = new Int32Array(1024); // run and component sizes: pixel counts
  let runs = 0;
  // Runs of the previous and the current row: [start, end) columns and run ids.
  let prevStart = new Int32Array(16);
  let prevEnd = new Int32Array(16);
  let prevId = new Int32Array(16);
  let prevCount = 0;
  let curStart = new Int32Array(16);
  let curEnd = new Int32Array(16);
  let curId = new Int32Array(16);
  let area = 0;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let curCount = 0;
    let p = 0; // first run of the previous row that may still overlap
    let x = 0;
    while (x < width) {
      while (x < width && mask[row + x] === 0) x++;
      if (x === width) break;
      const start = x;
      while (x < width && mask[row + x] !== 0) x++;
      const id = runs++;
      if (id === parent.length) {
        parent = grown(parent, id * 2);
        size = grown(size, id * 2);
      }
      parent[id] = id;
      size[id] = x - start;
      area += x - start;
      // 4-connected: a run above touches this one when their column ranges intersect.
      while (p < prevCount && prevEnd[p]! <= start) p++;
      for (let q = p; q < prevCount && prevStart[q]! < x; q++) {
        const a = findRoot(parent, id);
        const b = findRoot(parent, prevId[q]!);
        if (a !== b) {
          // Union by size: the smaller tree hangs under the larger root.
          const big = size[a]! >= size[b]! ? a : b;
          const small = big === a ? b : a;
          parent[small] = big;
          size[big]! += size[small]!;
        }
      }
      if (curCount === curStart.length) {
        curStart = grown(curStart, curCount * 2);
        curEnd = grown(curEnd, curCount * 2);
        curId = grown(curId, curCount * 2);
      }
      curStart[curCount] = start;
      curEnd[curCount] = x;
      curId[curCount] = id;
      curCount++;
    }
    [prevStart, curStart] = [curStart, prevStart];
    [prevEnd, curEnd] = [curEnd, prevEnd];
    [prevId, curId] = [curId, prevId];
    prevCount = curCount;
  }
  let largest = 0;
  let components = 0;
  for (let r = 0; r < runs; r++) {
    if (parent[r] !== r) continue;
    components++;
    if (size[r]! > largest) largest = size[r]!;
  }
  return { area, largest, components };
}

/** Root of `r`'s tree, halving the path on the way (every other node points to its grandparent). */
function findRoot(parent: Int32Array, r: number): number {
  while (parent[r] !== r) {
    const up = parent[parent[r]!]!;
    parent[r] = up;
    r = up;
  }
  return r;
}
