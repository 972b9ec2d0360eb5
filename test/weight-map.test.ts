import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { featherAlpha, lossWeightMap, squaredDistanceToMask } from "../src/dataset/weight-map.js";

/** Brute-force squared distance to the nearest mask pixel. */
function bruteForce(mask: Uint8Array, w: number, h: number): Float64Array {
  const out = new Float64Array(w * h).fill(Number.POSITIVE_INFINITY);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let v = 0; v < h; v++)
        for (let u = 0; u < w; u++)
          if (mask[v * w + u]) out[y * w + x] = Math.min(out[y * w + x]!, (x - u) ** 2 + (y - v) ** 2);
  return out;
}

function disc(w: number, h: number, cx: number, cy: number, r: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) m[y * w + x] = 1;
  return m;
}

describe("squaredDistanceToMask", () => {
  it("matches brute force on random masks", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 14 }),
        fc.integer({ min: 1, max: 14 }),
        fc.double({ min: 0.01, max: 0.5, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (w, h, density, seed) => {
          let s = seed;
          const m = new Uint8Array(w * h);
          for (let i = 0; i < m.length; i++) {
            s = (Math.imul(s, 1103515245) + 12345) >>> 0;
            m[i] = s / 2 ** 32 < density ? 1 : 0;
          }
          if (!m.some((v) => v)) m[0] = 1;
          const got = squaredDistanceToMask(m, w, h);
          const want = bruteForce(m, w, h);
          for (let i = 0; i < m.length; i++) expect(got[i]).toBe(want[i]);
        },
      ),
      { numRuns: 300, seed: 5 },
    );
  });
});

describe("lossWeightMap", () => {
  const w = 64;
  const h = 48;
  const mask = disc(w, h, 30, 24, 10);

  it("is 255 on the subject, the background floor far away and within [bg, 255] everywhere", () => {
    const weights = lossWeightMap({ mask, width: w, height: h, bgWeight: 0.1, feather: 6 });
    const bg = Math.round(0.1 * 255);
    for (let i = 0; i < weights.length; i++) {
      expect(weights[i]).toBeGreaterThanOrEqual(bg);
      expect(weights[i]).toBeLessThanOrEqual(255);
      if (mask[i]) expect(weights[i]).toBe(255);
    }
    expect(weights[0]).toBe(bg); // corner, far from the disc
    // Soft edge: strictly between floor and full just outside the boundary, decreasing outwards.
    const row = 24 * w;
    const ramp = [41, 42, 43, 44, 45, 46].map((x) => weights[row + x]!);
    expect(ramp[0]).toBeLessThan(255);
    expect(ramp[0]).toBeGreaterThan(bg);
    for (let i = 1; i < ramp.length; i++) expect(ramp[i]).toBeLessThan(ramp[i - 1]!);
    expect(weights[row + 47]).toBe(bg);
  });

  it("stays within [bg, 255] for any feather and floor", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 30, noNaN: true }),
        (bgWeight, feather) => {
          const weights = lossWeightMap({ mask, width: w, height: h, bgWeight, feather });
          const bg = Math.round(bgWeight * 255);
          let lo = 255;
          for (const v of weights) lo = Math.min(lo, v);
          expect(lo).toBeGreaterThanOrEqual(bg);
        },
      ),
      { numRuns: 40, seed: 3 },
    );
  });

  it("gives a hard edge with feather 0 and the floor everywhere for an empty mask", () => {
    const hard = lossWeightMap({ mask, width: w, height: h, bgWeight: 0, feather: 0 });
    expect(new Set(hard)).toEqual(new Set([0, 255]));
    const empty = lossWeightMap({ mask: new Uint8Array(w * h), width: w, height: h, bgWeight: 0.2 });
    expect(new Set(empty)).toEqual(new Set([51]));
  });

  it("rejects a bad floor, feather or mask size with the value in the message", () => {
    expect(() => lossWeightMap({ mask, width: w, height: h, bgWeight: 1.5 })).toThrow(
      "Expected a number in [0, 1] for bgWeight but received 1.5",
    );
    expect(() => featherAlpha({ mask, width: w, height: h, feather: -2 })).toThrow(
      "Expected a finite number ≥ 0 for feather but received -2",
    );
    expect(() => lossWeightMap({ mask, width: w + 1, height: h })).toThrow(
      `Expected ${(w + 1) * h} mask values (${w + 1}×${h}) for featherAlpha but received ${w * h}`,
    );
  });
});
