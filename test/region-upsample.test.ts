// The shortcuts of region-upsample.ts against the literal full-resolution path: same masks, areas,
// boxes and extrema bit for bit, same sampled values, moments and attn_sim up to float rounding.

import { describe, expect, it } from "vitest";
import { randomEmbedding } from "../src/segment/models/random-weights.js";
import { attnSim, attnSimFromField } from "../src/segment/persam/attn-sim.js";
import { locationPrior, locationPriorFromExtremes } from "../src/segment/persam/location-prior.js";
import { similarityField, similarityMap } from "../src/segment/persam/similarity.js";
import {
  bilinearResize,
  lowResToOriginal,
  maskArea,
  maskBox,
  thresholdMask,
} from "../src/segment/sam/postprocess.js";
import { preprocessShape } from "../src/segment/sam/preprocess.js";
import { bilinearResizeSampled, LowResField } from "../src/segment/sam/region-upsample.js";
import type { Size } from "../src/util/tensor.js";

const N = 256 * 256;
/** The largest float32 below 1. */
const NEXT_BELOW_1 = 1 - 2 ** -24;

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Low-res planes that exercise the classification: random, smooth blobs, ties, edges, tiny values. */
function planes(inputSize: Size, seed: number): [string, Float32Array][] {
  const rand = prng(seed);
  const hImg = Math.max(1, inputSize[0] / 4);
  const wImg = Math.max(1, inputSize[1] / 4);
  const make = (f: (y: number, x: number) => number): Float32Array => {
    const out = new Float32Array(N);
    for (let y = 0; y < 256; y++) for (let x = 0; x < 256; x++) out[y * 256 + x] = f(y, x);
    return out;
  };
  const phase = rand() * 6;
  const ellipse = (y: number, x: number, r0: number): number => {
    const dx = (x - wImg / 2) / (wImg / 5);
    const dy = (y - hImg / 2) / (hImg / 4);
    return 12 * (1 - Math.hypot(dx, dy) / r0) + 1.5 * Math.sin(x / 7 + phase) * Math.cos(y / 9 - phase);
  };
  const cx = Math.floor(rand() * wImg);
  const cy = Math.floor(rand() * hImg);
  return [
    ["random", make(() => rand() * 2 - 1)],
    ["sparse random", make(() => (rand() < 0.02 ? rand() : -rand()))],
    ["ellipse", make((y, x) => (y >= hImg || x >= wImg ? -20 : ellipse(y, x, 1)))],
    ["large ellipse", make((y, x) => ellipse(y, x, 2.5))],
    ["all negative", make(() => -1 - rand())],
    ["all positive", make(() => 1 + rand())],
    ["zero", make(() => 0)],
    ["single cell", make((y, x) => (y === cy && x === cx ? 3 : -3))],
    [
      "corners",
      make((y, x) => (y === 0 || x === 0 || y === Math.ceil(hImg) - 1 || x === Math.ceil(wImg) - 1 ? 1 : -1)),
    ],
    ["plateaus", make((y, x) => Math.round(3 * Math.sin(x / 9) * Math.cos(y / 13)) / 3)],
    // Ties within float rounding: weights summing to 1 ± 1e-7 can lift a pixel above its taps.
    ["near ties rows", make((y) => (y < hImg / 2 ? NEXT_BELOW_1 : 1))],
    ["near ties cols", make((_, x) => (x < wImg / 2 ? NEXT_BELOW_1 : x < wImg ? 1 : NEXT_BELOW_1))],
    ["near ties checker", make((y, x) => (((x >> 2) + (y >> 2)) % 2 ? NEXT_BELOW_1 : 1))],
    ["tiny", make(() => (rand() - 0.5) * 1e-33)],
    ["near zero", make((y, x) => (((x + y) % 3) - 1) * (rand() < 0.5 ? 1e-38 : 1e-44))],
  ];
}

function literalBox(mask: Uint8Array, w: number, h: number) {
  return maskBox(mask, w, h);
}

function literalExtremes(sim: Float32Array, w: number, h: number) {
  return locationPrior({ sim, width: w, height: h });
}

const SIZES: Size[] = [
  [480, 640],
  [640, 480],
  [48, 64],
  [200, 300],
  [1, 1],
  [1, 517],
  [517, 1],
  [7, 5],
  [1024, 1024],
];

function checkPlane(name: string, low: Float32Array, size: Size, rand: () => number): void {
  const [h, w] = size;
  const inputSize = preprocessShape(h, w);
  const full = lowResToOriginal(low, 1, inputSize, size);
  const field = new LowResField(low, inputSize, size);
  const where = `${name} ${w}×${h}`;
  // Masks, area, box.
  const mask = thresholdMask(full);
  const region = field.threshold();
  expect(Buffer.from(region.mask!).equals(Buffer.from(mask)), where).toBe(true);
  expect(region.area, where).toBe(maskArea(mask));
  expect(region.box, where).toEqual(literalBox(mask, w, h));
  expect(new LowResField(low, inputSize, size).box(), where).toEqual(region.box);
  // Extrema → the same prior, values bit for bit (Object.is).
  const prior = locationPriorFromExtremes(new LowResField(low, inputSize, size).extremes(), w);
  expect(prior, where).toStrictEqual(literalExtremes(full, w, h));
  // Sampled values and rows, bit for bit.
  const rows = Int32Array.from({ length: 9 }, () => Math.floor(rand() * h)).sort();
  const cols = Int32Array.from({ length: 11 }, () => Math.floor(rand() * w)).sort();
  const fresh = new LowResField(low, inputSize, size);
  const s = fresh.sample(rows, cols);
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < cols.length; j++) {
      expect(Object.is(s[i * cols.length + j], full[rows[i]! * w + cols[j]!]), where).toBe(true);
    }
  }
  const y = rows[0]!;
  const buf = new Float32Array(w);
  fresh.rowInto(y, 0, w, buf);
  expect(Buffer.from(buf.buffer).equals(Buffer.from(full.buffer, y * w * 4, w * 4)), where).toBe(true);
  // Moments up to float rounding.
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < full.length; i++) {
    sum += full[i]!;
    sq += full[i]! * full[i]!;
  }
  const m = fresh.moments();
  expect(Math.abs(m.sum - sum), where).toBeLessThanOrEqual(
    1e-6 * (Math.abs(sum) + full.length * 1e-30) + 1e-30,
  );
  expect(Math.abs(m.sumSquares - sq), where).toBeLessThanOrEqual(1e-6 * sq + 1e-60);
}

describe("LowResField equals the literal lowResToOriginal path", () => {
  it("on random and structured planes at small and odd sizes (1×N, N×1, < 256 rows)", () => {
    const rand = prng(11);
    for (const size of SIZES) {
      for (const [name, low] of planes(preprocessShape(...size), size[0] * 7 + size[1])) {
        checkPlane(name, low, size, rand);
      }
    }
  });

  it("at 12 MP, both orientations", () => {
    const rand = prng(12);
    for (const size of [
      [3024, 4032],
      [4032, 3024],
    ] as Size[]) {
      const all = planes(preprocessShape(...size), 3);
      for (const [name, low] of all.filter(([n]) =>
        ["ellipse", "single cell", "near ties checker"].includes(n),
      )) {
        checkPlane(name, low, size, rand);
      }
    }
  });

  it("falls back to the literal map for non-finite planes", () => {
    const size: Size = [60, 90];
    const inputSize = preprocessShape(...size);
    const low = planes(inputSize, 5)[2]![1];
    low[3] = Number.NaN;
    low[7 * 256 + 9] = Number.POSITIVE_INFINITY;
    const full = lowResToOriginal(low, 1, inputSize, size);
    const region = new LowResField(low, inputSize, size).threshold();
    expect(Buffer.from(region.mask!).equals(Buffer.from(thresholdMask(full)))).toBe(true);
    expect(locationPriorFromExtremes(new LowResField(low, inputSize, size).extremes(), 90)).toStrictEqual(
      locationPrior({ sim: full, width: 90, height: 60 }),
    );
  });
});

describe("bilinearResizeSampled", () => {
  it("equals bilinearResize at the sampled outputs, shrinking and growing", () => {
    const rand = prng(3);
    for (const [inH, inW, outH, outW] of [
      [300, 500, 64, 64],
      [30, 50, 64, 64],
      [1, 7, 64, 64],
      [1024, 1024, 64, 64],
      [480, 640, 768, 1024],
    ] as const) {
      const src = Float32Array.from({ length: inH * inW }, () => rand() * 4 - 2);
      const literal = bilinearResize(src, 1, inH, inW, outH, outW);
      const at = (rows: Int32Array, cols: Int32Array): Float32Array => {
        const out = new Float32Array(rows.length * cols.length);
        for (let i = 0; i < rows.length; i++)
          for (let j = 0; j < cols.length; j++) out[i * cols.length + j] = src[rows[i]! * inW + cols[j]!]!;
        return out;
      };
      const sampled = bilinearResizeSampled(at, inH, inW, outH, outW);
      expect(Buffer.from(sampled.buffer).equals(Buffer.from(literal.buffer))).toBe(true);
      const rows = Int32Array.of(0, Math.floor(outH / 3), outH - 1);
      const cols = Int32Array.of(1 % outW, outW - 1);
      const part = bilinearResizeSampled(at, inH, inW, outH, outW, rows, cols);
      for (let i = 0; i < rows.length; i++)
        for (let j = 0; j < cols.length; j++)
          expect(part[i * cols.length + j]).toBe(literal[rows[i]! * outW + cols[j]!]);
    }
  });
});

describe("similarityField and attnSimFromField equal similarityMap, locationPrior and attnSim", () => {
  const check = (size: Size, seed: number, blob: boolean): void => {
    const [h, w] = size;
    const inputSize = preprocessShape(h, w);
    const embedding = randomEmbedding(32, seed);
    if (blob) {
      // A block of cells sharing the target's direction: a clear peak plateau.
      for (let ch = 0; ch < 32; ch++)
        for (let r = 10; r < 14; r++)
          for (let c = 20; c < 26; c++) embedding.data[ch * 4096 + r * 64 + c] = ch % 3;
    }
    const targetFeat = new Float32Array(32);
    for (let ch = 0; ch < 32; ch++) targetFeat[ch] = ch % 3;
    const norm = Math.hypot(...targetFeat);
    for (let ch = 0; ch < 32; ch++) targetFeat[ch]! /= norm;
    const params = { embedding, targetFeat, originalSize: size, inputSize };
    const literal = similarityMap(params);
    const fast = similarityField(params);
    const where = `${w}×${h} seed ${seed}`;
    expect(Buffer.from(fast.sim64.buffer).equals(Buffer.from(literal.sim64.buffer))).toBe(true);
    expect(locationPriorFromExtremes(fast.extremes, w), where).toStrictEqual(
      locationPrior({ sim: literal.sim, width: w, height: h }),
    );
    expect(fast.stats.max).toBe(literal.stats.max);
    expect(fast.stats.min).toBe(literal.stats.min);
    expect(fast.stats.peak64).toBe(literal.stats.peak64);
    expect(fast.stats.peak64Image).toBe(literal.stats.peak64Image);
    expect(Math.abs(fast.stats.mean - literal.stats.mean), where).toBeLessThan(1e-7);
    expect(Math.abs(fast.stats.std - literal.stats.std), where).toBeLessThan(1e-7);
    for (const aligned of [false, true]) {
      const ref = attnSim({ sim: literal.sim, originalSize: size, inputSize, aligned });
      const got = attnSimFromField({
        sample: (r, c) => fast.field.sample(r, c),
        sum: fast.moments.sum,
        sumSquares: fast.moments.sumSquares,
        min: fast.extremes.minValue,
        max: fast.extremes.maxValue,
        originalSize: size,
        inputSize,
        aligned,
      });
      let worst = 0;
      for (let k = 0; k < 4096; k++) worst = Math.max(worst, Math.abs(got[k]! - ref[k]!));
      expect(worst, `${where} aligned ${aligned}`).toBeLessThanOrEqual(1e-6);
    }
  };

  it("at small and odd sizes", () => {
    for (const [i, size] of (
      [
        [480, 640],
        [640, 480],
        [48, 64],
        [1, 300],
        [300, 1],
        [9, 13],
        [1024, 1024],
      ] as Size[]
    ).entries()) {
      check(size, 40 + i, i % 2 === 0);
    }
  });

  it("at 12 MP, both orientations", () => {
    check([3024, 4032], 50, true);
    check([4032, 3024], 51, false);
  });
});
