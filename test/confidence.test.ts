import { describe, expect, it } from "vitest";
import { DOUBTFUL_THRESHOLD, largestComponent, photoConfidence } from "../src/segment/confidence.js";

/** A 10×10 mask with the given (x, y) pixels set. */
function mask10(pixels: [number, number][]): Uint8Array {
  const m = new Uint8Array(100);
  for (const [x, y] of pixels) m[y * 10 + x] = 1;
  return m;
}
const square = (x0: number, y0: number, s: number): [number, number][] =>
  Array.from({ length: s * s }, (_, i) => [x0 + (i % s), y0 + Math.floor(i / s)] as [number, number]);

describe("largestComponent", () => {
  it("counts 4-connected components (diagonals do not connect)", () => {
    const m = mask10([...square(0, 0, 2), [2, 2], [5, 5], [6, 5]]);
    expect(largestComponent(m, 10, 10)).toEqual({ area: 7, largest: 4, components: 3 });
  });
});

describe("photoConfidence", () => {
  it("is 1 for a strong, clean, mid-sized mask", () => {
    const c = photoConfidence({
      peakSimilarity: 0.9,
      iouScore: 0.95,
      mask: mask10(square(2, 2, 4)),
      width: 10,
      height: 10,
    });
    expect(c.confidence).toBe(1);
    expect(c.doubtful).toBe(false);
    expect(c.reasons).toEqual([]);
  });

  it("follows the documented formula: s_sim^0.4 · s_iou^0.2 · s_area^0.2 · s_compact^0.2", () => {
    // peak 0.55 → s_sim 0.5; iou 0.7 → 0.5; area 16 % → 1; two 4-pixel squares + 8 → share 8/16 = 0.5.
    const m = mask10([...square(0, 0, 2), ...square(5, 0, 2), ...square(0, 5, 2), ...square(5, 5, 2)]);
    const c = photoConfidence({ peakSimilarity: 0.55, iouScore: 0.7, mask: m, width: 10, height: 10 });
    expect(c.largestComponentShare).toBeCloseTo(0.25, 12);
    expect(c.confidence).toBeCloseTo(0.5 ** 0.4 * 0.5 ** 0.2 * 0.25 ** 0.2, 12);
    expect(c.reasons).toEqual(["fragmented-mask"]);
    expect(c.doubtful).toBe(true);
  });

  it("flags an empty mask and a low peak as subject not found", () => {
    const c = photoConfidence({
      peakSimilarity: 0.3,
      iouScore: 0.9,
      mask: new Uint8Array(100),
      width: 10,
      height: 10,
    });
    expect(c.confidence).toBe(0);
    expect(c.reasons).toEqual(["empty-mask", "low-similarity"]);
    expect(c.subjectNotFound).toBe(true);
  });

  it("penalises a mask covering almost the whole photo", () => {
    const all = new Uint8Array(100).fill(1);
    const c = photoConfidence({ peakSimilarity: 0.9, iouScore: 0.95, mask: all, width: 10, height: 10 });
    expect(c.components.area).toBe(0);
    expect(c.reasons).toContain("mask-covers-photo");
    expect(c.confidence).toBeLessThan(DOUBTFUL_THRESHOLD);
  });
});
