// Unit tests for SAM preprocessing: resize shape, bit-exact PIL bilinear, normalisation, transforms,
// and the reference-mask 64×64 rule (persam-spec §1, §7.1).

import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadMaskRed } from "../src/image/image-io.js";
import {
  normalizeAndPad,
  pilResizeBilinear,
  pilResizeBilinearAt,
  pilResizeBilinearScalar,
  preprocessShape,
  referenceMaskGrid,
  samPreprocess,
  transformBox,
  transformPoints,
} from "../src/segment/sam/preprocess.js";
import { simdAvailable } from "../src/segment/sam/preprocess-simd.js";
import { haveSharedFixtures, persegPath } from "./support/fixtures.js";

/** Seeded xorshift32 bytes; the Python generator below uses the identical sequence. */
function noise(width: number, height: number, channels: number, seed: number): Uint8Array {
  const out = new Uint8Array(width * height * channels);
  let x = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 255;
  }
  return out;
}

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

describe("preprocessShape (§1.1.2)", () => {
  it.each([
    [1282, 1282, 1024, 1024],
    [480, 640, 768, 1024],
    [640, 480, 1024, 768],
    [1080, 1920, 576, 1024],
    [3024, 4032, 768, 1024],
    [1000, 1500, 683, 1024],
    [1, 1, 1024, 1024],
    [2, 1, 1024, 512],
    [3, 2048, 2, 1024],
  ])("%i×%i → %i×%i", (h, w, hIn, wIn) => {
    expect(preprocessShape(h, w)).toEqual([hIn, wIn]);
  });

  it("keeps 1-pixel-thin images at least 1 pixel thick where the reference would round to 0", () => {
    expect(preprocessShape(1, 2048)).toEqual([1, 1024]); // 0.5 + 0.5 → 1 in the reference too
    expect(preprocessShape(1, 2049)).toEqual([1, 1024]); // reference: int(0.49975… + 0.5) = 0
    expect(preprocessShape(5000, 1)).toEqual([1024, 1]);
  });

  it("honours another long side", () => {
    expect(preprocessShape(480, 640, 512)).toEqual([384, 512]);
  });

  it("rejects non-positive and fractional sizes", () => {
    expect(() => preprocessShape(0, 10)).toThrow("Expected a positive integer for height but received 0");
    expect(() => preprocessShape(10, 2.5)).toThrow(RangeError);
  });
});

// Expected hashes come from Pillow 9.4.0 (Debian python3-pil) run offline on the same xorshift32
// images: Image.frombytes(mode, (w, h), noise(w, h, c, seed)).resize((ow, oh), Image.BILINEAR).
// The 16×9 and 7×5 outputs are also embedded in full (base64) so a failure shows where it differs.
describe("pilResizeBilinear matches Pillow bit for bit (§1.1.3)", () => {
  const cases: [string, number, number, number, number, number, number, string][] = [
    [
      "down both axes",
      37,
      23,
      3,
      1,
      16,
      9,
      "9dfdb22ed559ca0b240a798abb1a8c28512bf77d17a846dd6c325be2e4b6812c",
    ],
    [
      "up both axes",
      37,
      23,
      3,
      1,
      80,
      50,
      "a2a1e3600f26a16658efd89fba45ecc762302f9160830b95fa705348b677cd86",
    ],
    [
      "vertical only",
      37,
      23,
      3,
      1,
      37,
      50,
      "38136f9ed720b194366e643cdc843daf9441fc44ea58c3907d2977d8c3768fe0",
    ],
    [
      "horizontal only",
      37,
      23,
      3,
      1,
      16,
      23,
      "d17ad53082ba46dba091df97b5f36b622f34700c015686cd08650a8f04bfc22d",
    ],
    [
      "large downscale",
      300,
      200,
      3,
      7,
      7,
      5,
      "9fcff8595ddb3294def6aa3e363ab3dc4426c60733ac10e54a2f0dd98ac4cc9e",
    ],
    ["one channel", 53, 41, 1, 3, 30, 23, "6e4ac022e390eb1a9202db3b288421b3d79f27cf89e65e07ef1e46b0e254a979"],
    [
      "640×480 photo size",
      640,
      480,
      3,
      11,
      1024,
      768,
      "b173fa8ec620caf547a077b629a58f103536a64218085d04a1460a41ae4919f7",
    ],
    [
      "1500×1000 photo size",
      1500,
      1000,
      3,
      13,
      1024,
      683,
      "b7f74bbf5b88a16f9e9e6e1bfa79350868fd812790b6db70e574341ac52a4868",
    ],
  ];
  it.each(cases)("%s: %i×%i×%i (seed %i) → %i×%i", (_name, w, h, c, seed, ow, oh, hash) => {
    expect(sha256(pilResizeBilinear(noise(w, h, c, seed), w, h, c, ow, oh))).toBe(hash);
  });

  it.each(cases)("TypeScript kernels only, %s", (_name, w, h, c, seed, ow, oh, hash) => {
    expect(sha256(pilResizeBilinearScalar(noise(w, h, c, seed), w, h, c, ow, oh))).toBe(hash);
  });

  it.each(cases)("the test oracle below, %s", (_name, w, h, c, seed, ow, oh, hash) => {
    expect(sha256(oracleResize(noise(w, h, c, seed), w, h, c, ow, oh))).toBe(hash);
  });

  it("runs RGB photos on the WebAssembly SIMD kernels in Node", () => {
    expect(simdAvailable()).toBe(true);
  });

  it("reproduces Pillow's 16×9 and 7×5 outputs byte for byte", () => {
    const small =
      "QHlob6mEjml2c32NenqCfr+knph6m7R3gnl6gIqPT4q3R3unWaCDl5KOppNzoX6LVJVRgoWDepCDbXp1flqTlJGacHqNfXqSdlCLZ3d0dq2UlJWimrl3n5RcbnmOc36uZIFgf4+bebKAnZxajJeMeKuKjoxuiWuQiVJ3aXl/gYNypH5khmdsfYZ7a4Fyd4qVYnhyfHKBlm1qgWBYaHJ5c7SHl5R4kquImF9xcn6MhpNseIV9d3VcaIx9aHxpnYebcW17hVp4mWeFn3dalHNwgphejZF8j5aadIt0ZYaWbZ18fp5tnItpfaaHhHKbipCOkn+giFKAnGaRgYF/pZqBmm1TcXuRiIWzkZR1koKUcIRqfo6CemyNYIV3g3JfmYeScYJ0fIxxe3xiomGUjJOKd3ludGuPj7CQfp2Ue6yUaHaiin6UgYeMc5BZaVRkmF98p4KHaphse3dEmGVykWaKbpOQeIWag56mgpe0bpF1eYCmlZCPg3NsipRheIqFYlWKqlyeeICAf2tMdnRYlmaAXG6EbIB/d4+IlKdup2tahIZ8Xp6QhY9ajYFwh4KQl6CN";
    const tiny =
      "fXx+fn5+fn+CgIKBfoGAgIB/f4J+g35+f359f35+gYB/f35/gX9+gYN9gH9+gH9+gH9/f39+gH+BgX+AgX9+gH1+gX+AgX+AgH1+fX1+f3+BfoCAgIB/gH2Af35/gn9/gX6BfYGCfn+B";
    expect(Array.from(pilResizeBilinear(noise(37, 23, 3, 1), 37, 23, 3, 16, 9))).toEqual(
      Array.from(Buffer.from(small, "base64")),
    );
    expect(Array.from(pilResizeBilinear(noise(300, 200, 3, 7), 300, 200, 3, 7, 5))).toEqual(
      Array.from(Buffer.from(tiny, "base64")),
    );
  });

  // ramp(x, y) = (7x + 3y) & 255, a smooth image whose weighted sums often land near .5.
  it.each([
    [29, 20, "257afe63da5c2cd7b7b7bef8074a28f93ca96f7003dde29aa8b153bfd3398422"],
    [100, 77, "5a02810e1b443437c42876d959e6ee3b215047c57363dc961ac20c92ae9ee2fa"],
  ])("matches Pillow on a 61×47 ramp resized to %i×%i", (ow, oh, hash) => {
    const ramp = new Uint8Array(61 * 47);
    for (let y = 0; y < 47; y++) for (let x = 0; x < 61; x++) ramp[y * 61 + x] = (x * 7 + y * 3) & 255;
    expect(sha256(pilResizeBilinear(ramp, 61, 47, 1, ow, oh))).toBe(hash);
  });

  it("returns an equal copy when the size is unchanged", () => {
    const src = noise(5, 4, 3, 9);
    const out = pilResizeBilinear(src, 5, 4, 3, 5, 4);
    expect(out).toEqual(src);
    expect(out).not.toBe(src);
    const buffer = Buffer.from(src); // Buffer#slice is a view: the copy must not alias it
    const copy = pilResizeBilinear(buffer, 5, 4, 3, 5, 4);
    buffer[0] = buffer[0]! ^ 255;
    expect(copy[0]).toBe(src[0]);
  });

  it("upscales a 2-pixel row as half-pixel linear interpolation", () => {
    // centres (o + 0.5)/2 − 0.5 → −0.25, 0.25, 0.75, 1.25 → clamp-normalised weights.
    expect(Array.from(pilResizeBilinear(Uint8Array.from([0, 200]), 2, 1, 1, 4, 1))).toEqual([
      0, 50, 150, 200,
    ]);
  });

  it("rejects a buffer of the wrong length", () => {
    expect(() => pilResizeBilinear(new Uint8Array(10), 2, 2, 3, 1, 1)).toThrow(
      "Expected 12 bytes for 2×2×3 but received 10",
    );
  });

  it("resizes a 12 MP photo in a reasonable time", () => {
    const w = 4032;
    const h = 3024;
    const src = new Uint8Array(w * h * 3);
    for (let i = 0; i < src.length; i++) src[i] = (i * 2654435761) >>> 24;
    const t0 = performance.now();
    const out = pilResizeBilinear(src, w, h, 3, 1024, 768);
    const ms = performance.now() - t0;
    expect(out.length).toBe(1024 * 768 * 3);
    expect(ms).toBeLessThan(5000);
  });
});

/**
 * The oracle for the optimised resize: the implementation that first passed the Pillow hashes
 * above, restated plainly (one channel and one tap at a time, separate passes, a full uint8
 * intermediate, PIL's `clip8` spelled out), kept deliberately naive so that any regrouping,
 * unrolling, pass fusion or SIMD kernel in src/ is checked byte for byte against it on many shapes.
 */
function oracleResize(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  const bits = 22;
  const taps = (inSize: number, outSize: number) => {
    const scale = inSize / outSize;
    const filterscale = Math.max(scale, 1);
    const support = 1.0 * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const start = new Int32Array(outSize);
    const count = new Int32Array(outSize);
    const weight = new Int32Array(outSize * ksize);
    const ss = 1.0 / filterscale;
    const k = new Float64Array(ksize);
    for (let o = 0; o < outSize; o++) {
      const center = (o + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(center - support + 0.5));
      const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
      let ww = 0;
      for (let x = 0; x < xmax; x++) {
        const w = Math.max(0, 1 - Math.abs((x + xmin - center + 0.5) * ss));
        k[x] = w;
        ww += w;
      }
      for (let x = 0; x < xmax; x++) {
        const w = ww !== 0 ? k[x]! / ww : k[x]!;
        const fixed = w < 0 ? -0.5 + w * (1 << bits) : 0.5 + w * (1 << bits);
        weight[o * ksize + x] = Math.trunc(fixed);
      }
      start[o] = xmin;
      count[o] = Math.max(0, xmax);
    }
    return { start, count, weight, ksize };
  };
  const clip8 = (acc: number): number => {
    if (acc >= 1 << (bits + 8)) return 255;
    if (acc <= 0) return 0;
    return acc >> bits;
  };
  const half = 1 << (bits - 1);
  let current = src;
  let curW = width;
  if (outWidth !== width) {
    const { start, count, weight, ksize } = taps(width, outWidth);
    const out = new Uint8Array(outWidth * height * channels);
    for (let y = 0; y < height; y++) {
      for (let o = 0; o < outWidth; o++) {
        const base = y * width * channels + start[o]! * channels;
        for (let c = 0; c < channels; c++) {
          let acc = half;
          for (let x = 0; x < count[o]!; x++)
            acc += current[base + x * channels + c]! * weight[o * ksize + x]!;
          out[(y * outWidth + o) * channels + c] = clip8(acc);
        }
      }
    }
    current = out;
    curW = outWidth;
  }
  if (outHeight !== height) {
    const { start, count, weight, ksize } = taps(height, outHeight);
    const rowLen = curW * channels;
    const out = new Uint8Array(rowLen * outHeight);
    for (let o = 0; o < outHeight; o++) {
      for (let i = 0; i < rowLen; i++) {
        let acc = half;
        for (let y = 0; y < count[o]!; y++)
          acc += current[(start[o]! + y) * rowLen + i]! * weight[o * ksize + y]!;
        out[o * rowLen + i] = clip8(acc);
      }
    }
    current = out;
  }
  return current === src ? src.slice() : current;
}

/** First index where two byte arrays differ (−1 when equal), for readable failures. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe("pilResizeBilinear equals the straightforward oracle", () => {
  /** Pixels of one of four kinds: noise, all 255 (weight sums above 2^22 must clamp), all 0, ramps. */
  const pixels = (w: number, h: number, c: number, kind: number, seed: number): Uint8Array => {
    if (kind === 0) return noise(w, h, c, seed);
    if (kind === 1) return new Uint8Array(w * h * c).fill(255);
    if (kind === 2) return new Uint8Array(w * h * c);
    const out = new Uint8Array(w * h * c);
    for (let i = 0; i < out.length; i++) out[i] = (i * (seed | 1) + (i >> 7)) & 255;
    return out;
  };
  /** Both paths (SIMD where it applies, TypeScript only) against the oracle. */
  const same = (w: number, h: number, c: number, ow: number, oh: number, src: Uint8Array) => {
    const want = oracleResize(src, w, h, c, ow, oh);
    const fast = pilResizeBilinear(src, w, h, c, ow, oh);
    expect(firstDifference(fast, want), `${w}×${h}×${c} → ${ow}×${oh}`).toBe(-1);
    const scalar = pilResizeBilinearScalar(src, w, h, c, ow, oh);
    expect(firstDifference(scalar, want), `TypeScript only, ${w}×${h}×${c} → ${ow}×${oh}`).toBe(-1);
  };

  it.each([
    // [w, h, channels, outW, outH]: the bench shape scaled down, odd sizes, one axis only, 1-pixel
    // sides, extreme ratios (wide kernels, rings of many rows), mixed up/down, 2 and 4 channels.
    [403, 302, 3, 102, 77],
    [4032, 31, 3, 1024, 8],
    [31, 3024, 3, 8, 768],
    [1, 1, 3, 17, 9],
    [17, 9, 3, 1, 1],
    [1, 50, 1, 1, 7],
    [50, 1, 1, 7, 1],
    [333, 5, 3, 2, 3],
    [5, 333, 1, 3, 2],
    [97, 61, 3, 211, 13],
    [97, 61, 1, 13, 211],
    [64, 48, 3, 1024, 768],
    [64, 48, 3, 64, 771],
    [64, 48, 3, 1023, 48],
    [29, 31, 2, 13, 47],
    [29, 31, 4, 47, 13],
    [1000, 7, 4, 3, 7],
  ])("%i×%i×%i → %i×%i on noise, 255, 0 and ramps", (w, h, c, ow, oh) => {
    for (let kind = 0; kind < 4; kind++) same(w, h, c, ow, oh, pixels(w, h, c, kind, w + h + kind));
  });

  it("on random shapes, channel counts and contents", () => {
    const side = fc.integer({ min: 1, max: 90 });
    fc.assert(
      fc.property(
        side,
        side,
        fc.constantFrom(1, 3, 1, 3, 2, 4),
        side,
        side,
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 0x7fffffff }),
        (w, h, c, ow, oh, kind, seed) => same(w, h, c, ow, oh, pixels(w, h, c, kind, seed)),
      ),
      { seed: 0x5eed_2026, numRuns: 400 },
    );
  });

  it("reads an input that is a view at an odd offset into a larger buffer (as Node Buffers are)", () => {
    const backing = noise(101, 37, 3, 77);
    const view = backing.subarray(5, 5 + 41 * 29 * 3);
    same(41, 29, 3, 17, 11, view);
    same(41, 29 * 3, 1, 97, 13, view);
  });

  it("on the 12 MP photo shape, for a noise image", () => {
    const src = noise(4032, 3024, 3, 42);
    same(4032, 3024, 3, 1024, 768, src);
  });
});

describe("normalizeAndPad (§1.1.4–5)", () => {
  it("normalises per channel in float32 and zero-pads bottom/right", () => {
    const rgb = Uint8Array.from([0, 128, 255, 124, 116, 104]); // 2×1 image
    const { data, dims } = normalizeAndPad(rgb, 2, 1, 4);
    expect(dims).toEqual([1, 3, 4, 4]);
    expect(data[0]).toBe(Math.fround((0 - Math.fround(123.675)) / Math.fround(58.395)));
    expect(data[1]).toBeCloseTo((124 - 123.675) / 58.395, 6);
    expect(data[16]).toBeCloseTo((128 - 116.28) / 57.12, 6);
    expect(data[17]).toBeCloseTo((116 - 116.28) / 57.12, 6);
    expect(data[32]).toBeCloseTo((255 - 103.53) / 57.375, 6);
    expect(data[33]).toBeCloseTo((104 - 103.53) / 57.375, 6);
    for (const i of [2, 3, 4, 15, 18, 31, 34, 47]) expect(data[i]).toBe(0);
  });

  it("rejects an image larger than the side", () => {
    expect(() => normalizeAndPad(new Uint8Array(5 * 3), 5, 1, 4)).toThrow(RangeError);
  });
});

describe("samPreprocess", () => {
  it("returns the 1024 tensor with input and original sizes", () => {
    const rgb = noise(64, 48, 3, 5);
    const { pixelValues, inputSize, originalSize } = samPreprocess(rgb, 64, 48);
    expect(inputSize).toEqual([768, 1024]);
    expect(originalSize).toEqual([48, 64]);
    expect(pixelValues.dims).toEqual([1, 3, 1024, 1024]);
    const resized = pilResizeBilinear(rgb, 64, 48, 3, 1024, 768);
    expect(pixelValues.data[1024 * 5 + 7]).toBe(normalizeAndPad(resized, 1024, 768).data[1024 * 5 + 7]);
    expect(pixelValues.data[1024 * 768 + 3]).toBe(0); // first padded row
  });
});

describe("transformPoints / transformBox (§1.2)", () => {
  it("scales by the rounded size ratios, not by 1024/max", () => {
    // 1000×1500 → 683×1024: y uses 683/1000 = 0.683, not 1024/1500 = 0.68266…
    const pts = transformPoints(
      [
        [750, 500],
        [0, 999],
      ],
      [1000, 1500],
      [683, 1024],
    );
    expect(pts).toBeInstanceOf(Float32Array);
    expect(Array.from(pts)).toEqual([
      Math.fround(750 * (1024 / 1500)),
      Math.fround(500 * 0.683),
      0,
      Math.fround(999 * 0.683),
    ]);
  });

  it("treats a box as its two corners", () => {
    const box = transformBox([10, 20, 629, 479], [480, 640], [768, 1024]);
    expect(Array.from(box)).toEqual([16, 32, Math.fround(629 * 1.6), Math.fround(479 * 1.6)]);
  });
});

/** An ellipse mask with value v, computed exactly as in the Python generator (float64). */
function ellipse(w: number, h: number, v: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const a = (x - 0.55 * w) / (0.3 * w);
      const b = (y - 0.45 * h) / (0.35 * h);
      if (a * a + b * b <= 1) m[y * w + x] = v;
    }
  }
  return m;
}

describe("pilResizeBilinearAt (the resize at chosen pixels)", () => {
  it("gives the full single-channel resize's pixels, on both axes, one axis and none", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (w, h, ow, oh, seed) => {
          const src = noise(w, h, 1, seed);
          const full = pilResizeBilinearScalar(src, w, h, 1, ow, oh);
          const rows = Array.from({ length: oh }, (_, y) => y).filter((y) => (y * 7 + seed) % 3 !== 0);
          const cols = Array.from({ length: ow }, (_, x) => x).filter((x) => (x * 5 + seed) % 4 !== 1);
          const at = pilResizeBilinearAt(src, w, h, ow, oh, rows, cols);
          for (const y of rows) for (const x of cols) expect(at(y, x)).toBe(full[y * ow + x]);
        },
      ),
      { numRuns: 60, seed: 7 },
    );
    const src = noise(40, 30, 1, 3);
    const same = pilResizeBilinearAt(src, 40, 30, 40, 30, [0, 29], [0, 39]);
    expect([same(0, 0), same(29, 39)]).toEqual([src[0], src[29 * 40 + 39]]);
  });

  it("refuses a pixel it was not asked for", () => {
    const at = pilResizeBilinearAt(noise(20, 20, 1, 1), 20, 20, 10, 10, [1], [2]);
    expect(() => at(2, 2)).toThrow(RangeError);
  });
});

describe("referenceMaskGrid (§7.1 step 1)", () => {
  // Expected hashes: Pillow 9.4.0 resize of the mask, then numpy float32 (r − 123.675)/58.395,
  // zero pad to 1024, mean of rows/cols 16i+7 and 16i+8, > 0 — the reference pipeline, offline.
  it.each([
    [300, 200, 128, 882, "06b97d27290191662cce69eb3d6cedaa78e53b1615e4054a5f33dc8cf43cee08"],
    [300, 200, 255, 903, "336773618704df712c2e5421952e78bba52066e67f263c36ea5d5b2110bd422a"],
    [150, 260, 128, 762, "1ea429b9c5997910331575be0b00ba1c140af7da0d690f225e5096214d05c2e0"],
    [150, 260, 255, 779, "9c6be590f3a3da58bc9ea2cb07434863441a3f49c7f3d933b8b9768dca9aa6b2"],
  ])("%i×%i ellipse of value %i has %i cells as in the reference", (w, h, v, cells, hash) => {
    const grid = referenceMaskGrid(ellipse(w, h, v), w, h);
    expect(grid.length).toBe(4096);
    expect(grid.reduce((s, x) => s + x, 0)).toBe(cells);
    expect(sha256(grid)).toBe(hash);
  });

  it("finds nothing in a 0/1 mask (why masks are binarised to 128 first, §9.18)", () => {
    expect(referenceMaskGrid(ellipse(300, 200, 1), 300, 200).every((x) => x === 0)).toBe(true);
  });

  it("needs all 4 taps inside for value 128 but only 2 of 4 for 255", () => {
    // A 1024×1024 mask (no resize): cell (0, 0) taps rows/cols 7 and 8.
    const side = 1024;
    const withTaps = (value: number, taps: [number, number][]): Uint8Array => {
      const m = new Uint8Array(side * side);
      for (const [y, x] of taps) m[y * side + x] = value;
      return m;
    };
    const all: [number, number][] = [
      [7, 7],
      [7, 8],
      [8, 7],
      [8, 8],
    ];
    expect(referenceMaskGrid(withTaps(128, all), side, side)[0]).toBe(1);
    expect(referenceMaskGrid(withTaps(128, all.slice(0, 3)), side, side)[0]).toBe(0); // mean 96
    expect(referenceMaskGrid(withTaps(255, all.slice(0, 2)), side, side)[0]).toBe(1); // mean 127.5
    expect(referenceMaskGrid(withTaps(255, all.slice(0, 1)), side, side)[0]).toBe(0); // mean 63.75
    // Pixels outside the taps never count.
    expect(referenceMaskGrid(withTaps(255, [[0, 0]]), side, side)[0]).toBe(0);
  });

  it("never marks padding as foreground and uses the padded-frame grid", () => {
    // 1024 wide × 512 high, all foreground: rows 0..31 of the grid are image, 32.. are padding.
    const w = 1024;
    const h = 512;
    const grid = referenceMaskGrid(new Uint8Array(w * h).fill(128), w, h);
    expect(grid.slice(0, 32 * 64).every((x) => x === 1)).toBe(true);
    expect(grid.slice(32 * 64).every((x) => x === 0)).toBe(true);
  });
});

// Expected values: Pillow 9.4.0 offline on the same files — Image.open(png).convert("RGB") red
// channel, then the numpy pipeline described above the ellipse cases.
describe.skipIf(!haveSharedFixtures("referenceMaskGrid on PerSeg masks"))(
  "referenceMaskGrid on PerSeg fixtures",
  () => {
    it.each([
      ["cat", 1156, "24dc9a4b1d944a08ee8cda8e43b03bc4631d0489ffed67c5352194abd698671f"],
      ["colorful_sneaker", 412, "81d6b9755ee6eee631efbaa48e5f375051898bcc69c4d45464b5828325be9f28"],
      ["duck_toy", 818, "8d9e35be2befb6a73b45385d18b80cb817d9317b73d0e02cc572886fdf4f49eb"],
    ])("%s/00.png selects %i cells, as the reference does", async (object, cells, hash) => {
      const { red, width, height } = await loadMaskRed(persegPath("Annotations", object, "00"));
      const grid = referenceMaskGrid(red, width, height);
      expect(grid.reduce((s, x) => s + x, 0)).toBe(cells);
      expect(sha256(grid)).toBe(hash);
    });
  },
);
