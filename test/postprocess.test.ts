// Unit tests for SAM postprocessing: PyTorch bilinear (persam-spec §5.1), low-res → original (§4.1),
// threshold, area and inclusive mask box (§7.2.8, §9.20).

import { describe, expect, it } from "vitest";
import {
  bilinearResize,
  lowResToOriginal,
  maskArea,
  maskBox,
  thresholdMask,
  torchBilinearTaps,
} from "../src/segment/sam/postprocess.js";

function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = (x / 2 ** 32) * 40 - 20;
  }
  return out;
}

/** The literal §4.1 path: 256 → 1024, crop, → original. */
function twoStep(lowRes: Float32Array, planes: number, hIn: number, wIn: number, h: number, w: number) {
  const padded = bilinearResize(lowRes, planes, 256, 256, 1024, 1024);
  const cropped = new Float32Array(planes * hIn * wIn);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < hIn; y++) {
      cropped.set(
        padded.subarray(p * 1024 * 1024 + y * 1024, p * 1024 * 1024 + y * 1024 + wIn),
        (p * hIn + y) * wIn,
      );
    }
  }
  return bilinearResize(cropped, planes, hIn, wIn, h, w);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("torchBilinearTaps / bilinearResize (§5.1)", () => {
  it("upsamples 2 → 4 with half-pixel centres clamped at 0", () => {
    // src = 0.5(o + 0.5) − 0.5 = −0.25→0, 0.25, 0.75, 1.25 (i1 clamped to 1)
    expect(Array.from(bilinearResize(Float32Array.from([0, 4]), 1, 1, 2, 1, 4))).toEqual([0, 1, 3, 4]);
  });

  it("downsamples 3 → 2 reading src 0.25 and 1.75", () => {
    const out = bilinearResize(Float32Array.from([8, 4, 0]), 1, 1, 3, 1, 2);
    expect(Array.from(out)).toEqual([0.75 * 8 + 0.25 * 4, 0.25 * 4 + 0.75 * 0]);
  });

  it("downsamples 1024 → 64 from rows/cols 16i+7 and 16i+8 at ½ each", () => {
    const taps = torchBilinearTaps(1024, 64);
    for (let i = 0; i < 64; i++) {
      expect([taps.i0[i], taps.i1[i], taps.w0[i], taps.w1[i]]).toEqual([16 * i + 7, 16 * i + 8, 0.5, 0.5]);
    }
    // 2-D: value(y, x) = 1000y + x → cell (r, c) = 1000(16r + 7.5) + 16c + 7.5
    const src = new Float32Array(1024 * 1024);
    for (let y = 0; y < 1024; y++) for (let x = 0; x < 1024; x++) src[y * 1024 + x] = 1000 * y + x;
    const out = bilinearResize(src, 1, 1024, 1024, 64, 64);
    for (const [r, c] of [
      [0, 0],
      [5, 63],
      [63, 17],
    ] as const) {
      expect(out[r * 64 + c]).toBe(1000 * (16 * r + 7.5) + 16 * c + 7.5);
    }
  });

  it("upsamples 256 → 1024 ×4 with weights 5/8, 7/8 … and edge clamping", () => {
    const taps = torchBilinearTaps(256, 1024);
    // o = 0, 1: src −0.375, −0.125 → 0; o = 2: 0.125; o = 5: 0.875; o = 6: 1.125; o = 1023: 255.375 → i1 = 255
    expect([taps.i0[0], taps.w1[0]]).toEqual([0, 0]);
    expect([taps.i0[1], taps.w1[1]]).toEqual([0, 0]);
    expect([taps.i0[2], taps.i1[2], taps.w1[2]]).toEqual([0, 1, 0.125]);
    expect([taps.i0[5], taps.i1[5], taps.w1[5]]).toEqual([0, 1, 0.875]);
    expect([taps.i0[6], taps.i1[6], taps.w1[6]]).toEqual([1, 2, 0.125]);
    expect([taps.i0[1023], taps.i1[1023], taps.w1[1023]]).toEqual([255, 255, 0.375]);
  });

  it("resamples several planes independently", () => {
    const a = seeded(6 * 5, 1);
    const b = seeded(6 * 5, 2);
    const both = new Float32Array(60);
    both.set(a);
    both.set(b, 30);
    const out = bilinearResize(both, 2, 6, 5, 9, 4);
    expect(Array.from(out.subarray(0, 36))).toEqual(Array.from(bilinearResize(a, 1, 6, 5, 9, 4)));
    expect(Array.from(out.subarray(36))).toEqual(Array.from(bilinearResize(b, 1, 6, 5, 9, 4)));
  });

  it("keeps a constant plane constant", () => {
    const out = bilinearResize(new Float32Array(7 * 11).fill(2.5), 1, 7, 11, 30, 3);
    expect(out.every((v) => v === 2.5)).toBe(true);
  });

  it("rejects a buffer of the wrong length", () => {
    expect(() => bilinearResize(new Float32Array(5), 1, 2, 3, 4, 4)).toThrow(
      "Expected 6 values but received 5",
    );
  });
});

describe("lowResToOriginal (§4.1 steps 1–3)", () => {
  it("gives [planes, H, W] equal to the literal two-step path for a 480×640 photo", () => {
    const low = seeded(2 * 256 * 256, 7);
    const out = lowResToOriginal(low, 2, [768, 1024], [480, 640]);
    expect(out.length).toBe(2 * 480 * 640);
    expect(maxAbsDiff(out, twoStep(low, 2, 768, 1024, 480, 640))).toBeLessThan(1e-5);
  });

  it("gives [1, 3024, 4032] equal to the two-step path for a 12 MP photo", () => {
    const low = seeded(256 * 256, 9);
    const out = lowResToOriginal(low, 1, [768, 1024], [3024, 4032]);
    expect(out.length).toBe(3024 * 4032);
    expect(maxAbsDiff(out, twoStep(low, 1, 768, 1024, 3024, 4032))).toBeLessThan(1e-5);
  });

  it("ignores the padded area of the low-res logits", () => {
    // 683×1024 input: low-res rows ≥ 172 only feed padding (row 682 of the 1024 frame reads 170, 171).
    const low = seeded(256 * 256, 3);
    const poisoned = low.slice();
    poisoned.fill(1e6, 172 * 256);
    const clean = lowResToOriginal(low, 1, [683, 1024], [1000, 1500]);
    expect(maxAbsDiff(lowResToOriginal(poisoned, 1, [683, 1024], [1000, 1500]), clean)).toBe(0);
    // …whereas the last low-res row that does feed the image changes the result.
    poisoned.set(low);
    poisoned.fill(1e6, 171 * 256, 172 * 256);
    expect(maxAbsDiff(lowResToOriginal(poisoned, 1, [683, 1024], [1000, 1500]), clean)).toBeGreaterThan(1);
  });

  it("is the identity on a square 1024 photo's linear ramp at the sample centres", () => {
    // low(y, x) = x: the padded frame holds (x' + 0.5)/4 − 0.5 away from the borders.
    const low = new Float32Array(256 * 256);
    for (let i = 0; i < low.length; i++) low[i] = i % 256;
    const out = lowResToOriginal(low, 1, [1024, 1024], [1024, 1024]);
    expect(out[100 * 1024 + 500]).toBeCloseTo((500 + 0.5) / 4 - 0.5, 5);
  });

  it("rejects an input size beyond the 1024 frame", () => {
    expect(() => lowResToOriginal(new Float32Array(256 * 256), 1, [1025, 10], [10, 10])).toThrow(RangeError);
  });
});

describe("thresholdMask / maskArea / maskBox", () => {
  it("thresholds strictly above 0 by default", () => {
    const m = thresholdMask(Float32Array.from([-1, 0, 1e-30, 3, -0]));
    expect(Array.from(m)).toEqual([0, 0, 1, 1, 0]);
    expect(Array.from(thresholdMask(Float32Array.from([0.5, 1, 2]), 1))).toEqual([0, 0, 1]);
    expect(maskArea(m)).toBe(2);
  });

  it("returns inclusive extents [x_min, y_min, x_max, y_max]", () => {
    const w = 7;
    const h = 5;
    const m = new Uint8Array(w * h);
    m[1 * w + 4] = 1; // (x 4, y 1)
    m[3 * w + 2] = 1; // (x 2, y 3)
    m[3 * w + 5] = 1; // (x 5, y 3)
    expect(maskBox(m, w, h)).toEqual([2, 1, 5, 3]);
  });

  it("gives a single pixel a zero-width box, the full image its last indices", () => {
    const m = new Uint8Array(12);
    m[7] = 1;
    expect(maskBox(m, 4, 3)).toEqual([3, 1, 3, 1]);
    expect(maskBox(new Uint8Array(12).fill(1), 4, 3)).toEqual([0, 0, 3, 2]);
  });

  it("returns undefined for an empty mask", () => {
    expect(maskBox(new Uint8Array(12), 4, 3)).toBeUndefined();
  });

  it("rejects a mask of the wrong size", () => {
    expect(() => maskBox(new Uint8Array(11), 4, 3)).toThrow(
      "Expected 12 mask values for 4×3 but received 11",
    );
  });
});
