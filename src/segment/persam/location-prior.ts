// PerSAM's location prior: the photo pixel most like the target (positive click) and the one least
// like it (negative click), read off the full-resolution similarity map (§7.2 step 4).

import type { Point } from "../../util/tensor.js";

/** Parameters of {@link locationPrior}. */
export interface LocationPriorParams {
  /** `height × width` similarity values, row-major. */
  readonly sim: Float32Array;
  readonly width: number;
  readonly height: number;
}

/** The two prior points, in original-pixel integer coordinates. */
export interface LocationPrior {
  /** `(x, y)` = (column, row) of the global max. */
  readonly positive: Point;
  /** `(x, y)` = (column, row) of the global min. */
  readonly negative: Point;
  readonly positiveValue: number;
  readonly negativeValue: number;
}

/**
 * Global max and min of `sim`, each as `(x, y)` = (column, row).
 *
 * The reference's `point_selection` names its variables as if it returned (row, col), but with
 * `w, h = sim.shape` (really H, W) its arithmetic yields `(j mod W, floor(j / W))`, i.e. (x, y):
 * the order SAM's point prompts expect. We reproduce that on purpose (§7.2.4, §9.17).
 * Ties go to the first index in row-major order (torch.topk's order on ties is unspecified;
 * §9.21). NaN values are never selected.
 * @throws {Error} when the map length is not width × height or the map is empty.
 */
export function locationPrior(params: LocationPriorParams): LocationPrior {
  const { sim, width, height } = params;
  if (width <= 0 || height <= 0 || sim.length !== width * height) {
    throw new Error(`Expected ${width}×${height} similarity values but received ${sim.length}`);
  }
  let maxIdx = -1;
  let minIdx = -1;
  let maxV = Number.NEGATIVE_INFINITY;
  let minV = Number.POSITIVE_INFINITY;
  for (let j = 0; j < sim.length; j++) {
    const v = sim[j]!;
    if (v > maxV || (maxIdx < 0 && v === maxV)) {
      maxV = v;
      maxIdx = j;
    }
    if (v < minV || (minIdx < 0 && v === minV)) {
      minV = v;
      minIdx = j;
    }
  }
  if (maxIdx < 0 || minIdx < 0)
    throw new Error("Expected a similarity map with finite values but all are NaN");
  return {
    positive: [maxIdx % width, Math.floor(maxIdx / width)],
    negative: [minIdx % width, Math.floor(minIdx / width)],
    positiveValue: maxV,
    negativeValue: minV,
  };
}

/**
 * {@link locationPrior} from the row-major indices and values of the max and min (as
 * `LowResField.extremes` finds them without the full map): the same points and values.
 */
export function locationPriorFromExtremes(
  extremes: { maxIndex: number; maxValue: number; minIndex: number; minValue: number },
  width: number,
): LocationPrior {
  const { maxIndex, minIndex } = extremes;
  if (maxIndex < 0 || minIndex < 0)
    throw new Error("Expected a similarity map with finite values but all are NaN");
  return {
    positive: [maxIndex % width, Math.floor(maxIndex / width)],
    negative: [minIndex % width, Math.floor(minIndex / width)],
    positiveValue: extremes.maxValue,
    negativeValue: extremes.minValue,
  };
}
