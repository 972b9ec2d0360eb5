import { describe, expect, it } from "vitest";
import { DOUBTFUL_THRESHOLD, largestComponent, photoConfidence } from "../src/segment/persam/confidence.js";

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

/** The former pixel flood fill, kept as the oracle of the run-based version. */
function floodFillOracle(mask: Uint8Array, width: number, height: number) {
  const n = width * height;
  const seen = new Uint8Array(n);
  const stack: number[] = [];
  let area = 0;
  let largest = 0;
  let components = 0;
  for (let start = 0; start < n; start++) {
    if (mask[start] === 0 || seen[start] === 1) continue;
    components++;
    let size = 0;
    stack.push(start);
    seen[start] = 1;
    while (stack.length > 0) {
      const j = stack.pop()!;
      size++;
      const x = j % width;
      const next = [x > 0 ? j - 1 : -1, x < width - 1 ? j + 1 : -1, j - width, j + width];
      for (const k of next) {
        if (k >= 0 && k < n && mask[k] !== 0 && seen[k] === 0) {
          seen[k] = 1;
          stack.push(k);
        }
      }
    }
    area += size;
    largest = Math.max(largest, size);
  }
  return { area, largest, components };
}

describe("largestComponent against a pixel flood fill", () => {
  it("agrees on random masks of every density, thin shapes and spirals", () => {
    let seed = 12345;
    const random = (): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    const sizes: [number, number][] = [
      [1, 1],
      [1, 40],
      [40, 1],
      [7, 5],
      [64, 48],
      [33, 97],
      [200, 150],
    ];
    let cases = 0;
    for (const [w, h] of sizes) {
      for (const density of [0, 0.05, 0.3, 0.5, 0.59, 0.7, 0.95, 1]) {
        const m = new Uint8Array(w * h);
        for (let i = 0; i < m.length; i++) m[i] = random() < density ? 1 + Math.floor(random() * 255) : 0;
        expect(largestComponent(m, w, h), `${w}×${h} density ${density}`).toEqual(floodFillOracle(m, w, h));
        cases++;
      }
    }
    // A comb and a spiral: components that merge late through long detours.
    const w = 61;
    const h = 61;
    const comb = new Uint8Array(w * h);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) comb[y * w + x] = x % 2 === 0 || y === h - 1 ? 1 : 0;
    expect(largestComponent(comb, w, h)).toEqual(floodFillOracle(comb, w, h));
    const spiral = new Uint8Array(w * h);
    let [x, y, dx, dy, len, step] = [30, 30, 1, 0, 1, 0];
    for (let i = 0; i < 1500; i++) {
      if (x >= 0 && x < w && y >= 0 && y < h) spiral[y * w + x] = 1;
      x += dx;
      y += dy;
      if (++step === len) {
        step = 0;
        [dx, dy] = [-dy, dx];
        if (dy === 0) len += 2;
      }
    }
    expect(largestComponent(spiral, w, h)).toEqual(floodFillOracle(spiral, w, h));
    expect(cases).toBe(56);
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
