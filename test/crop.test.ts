import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CropRect,
  contains,
  cropAndResize,
  cropImage,
  cropPlane,
  maskCoverage,
  outputSize,
  resizeMask,
  subjectCrop,
} from "../src/dataset/crop.js";
import type { RgbImage } from "../src/image/image-io.js";
import { resizeRegion, resizeRgb } from "../src/image/image-io.js";
import { maskBox } from "../src/segment/sam/postprocess.js";
import type { Box } from "../src/util/tensor.js";

const aspects = [1, 4 / 3, 3 / 4, 16 / 9, 9 / 16, 2, 0.5, 3, 1 / 3, 1.5];

/** A photo and a subject box inside it. */
const photoAndBoxUpTo = (maxSide: number) =>
  fc
    .record({
      width: fc.integer({ min: 1, max: maxSide }),
      height: fc.integer({ min: 1, max: maxSide }),
      a: fc.double({ min: 0, max: 1, noNaN: true }),
      b: fc.double({ min: 0, max: 1, noNaN: true }),
      c: fc.double({ min: 0, max: 1, noNaN: true }),
      d: fc.double({ min: 0, max: 1, noNaN: true }),
      margin: fc.oneof(fc.constant(0), fc.constant(0.1), fc.double({ min: 0, max: 0.6, noNaN: true })),
      aspect: fc.oneof(fc.constantFrom(...aspects), fc.double({ min: 0.2, max: 5, noNaN: true })),
    })
    .map(({ width, height, a, b, c, d, margin, aspect }) => {
      const xs = [Math.floor(a * width), Math.floor(b * width)]
        .map((v) => Math.min(v, width - 1))
        .sort((p, q) => p - q);
      const ys = [Math.floor(c * height), Math.floor(d * height)]
        .map((v) => Math.min(v, height - 1))
        .sort((p, q) => p - q);
      const box: Box = [xs[0]!, ys[0]!, xs[1]!, ys[1]!];
      return { width, height, box, margin, aspect };
    });
const photoAndBox = photoAndBoxUpTo(600);
/** Small photos: rounding and edge cases are dense here. */
const smallPhotoAndBox = photoAndBoxUpTo(24);

function aspectWithinHalfPixel(w: number, h: number, aspect: number): boolean {
  return Math.abs(w - h * aspect) <= 0.5 + 1e-9 || Math.abs(h - w / aspect) <= 0.5 + 1e-9;
}

describe("subjectCrop", () => {
  it("always returns an integer rectangle inside the photo at the requested aspect", () => {
    fc.assert(
      fc.property(photoAndBox, ({ width, height, box, margin, aspect }) => {
        const r = subjectCrop({ width, height, box, margin, aspect });
        expect([r.left, r.top, r.width, r.height].every(Number.isInteger)).toBe(true);
        expect(r.left).toBeGreaterThanOrEqual(0);
        expect(r.top).toBeGreaterThanOrEqual(0);
        expect(r.width).toBeGreaterThanOrEqual(1);
        expect(r.height).toBeGreaterThanOrEqual(1);
        expect(r.left + r.width).toBeLessThanOrEqual(width);
        expect(r.top + r.height).toBeLessThanOrEqual(height);
        // Tiny photos cannot hold an extreme aspect at all; otherwise it is exact to half a pixel.
        if (Math.min(r.width, r.height) > 1)
          expect(aspectWithinHalfPixel(r.width, r.height, aspect)).toBe(true);
      }),
      { numRuns: 3000, seed: 42 },
    );
  });

  it("contains the subject box whenever a crop of that aspect can, and flags it otherwise", () => {
    fc.assert(
      fc.property(fc.oneof(photoAndBox, smallPhotoAndBox), ({ width, height, box, margin, aspect }) => {
        const r = subjectCrop({ width, height, box, margin, aspect });
        const bw = box[2] - box[0] + 1;
        const bh = box[3] - box[1] + 1;
        const maxT = Math.min(height, width / aspect);
        const fits = Math.max(bh, bw / aspect) <= maxT + 1e-9;
        expect(r.cutsSubject).toBe(!fits);
        if (fits) expect(contains(r, box)).toBe(true);
        else {
          // The largest crop, centred on the subject (up to the photo edge).
          expect(r.width === width || r.height === height).toBe(true);
          const cx = (box[0] + box[2] + 1) / 2;
          const cropCx = r.left + r.width / 2;
          if (r.left > 0 && r.left + r.width < width) expect(Math.abs(cropCx - cx)).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 3000, seed: 7 },
    );
  });

  it("keeps the margin (clamped to the photo) when it fits, with a tight crop", () => {
    fc.assert(
      fc.property(fc.oneof(photoAndBox, smallPhotoAndBox), ({ width, height, box, margin, aspect }) => {
        const [x0, y0, x1, y1] = box;
        const padX = Math.round(margin * (x1 - x0 + 1));
        const padY = Math.round(margin * (y1 - y0 + 1));
        const m: Box = [
          Math.max(0, x0 - padX),
          Math.max(0, y0 - padY),
          Math.min(width - 1, x1 + padX),
          Math.min(height - 1, y1 + padY),
        ];
        const t = Math.max(m[3] - m[1] + 1, (m[2] - m[0] + 1) / aspect);
        const maxT = Math.min(height, width / aspect);
        const r = subjectCrop({ width, height, box, margin, aspect });
        if (t <= maxT + 1e-9) {
          expect(contains(r, m)).toBe(true);
          // No bigger than needed (one pixel of rounding on each side).
          // No bigger than needed: one pixel of rounding, plus what that pixel means on the other side.
          expect(r.height).toBeLessThanOrEqual(Math.ceil(t) + 1 + 1 / aspect);
          expect(r.width).toBeLessThanOrEqual(Math.ceil(t * aspect) + 1 + aspect);
        } else {
          expect(r.marginReduced).toBe(true);
        }
      }),
      { numRuns: 3000, seed: 11 },
    );
  });

  it("centres a small subject and squares the crop", () => {
    const r = subjectCrop({ width: 1000, height: 800, box: [450, 350, 549, 449], margin: 0.1 });
    expect(r).toEqual({
      left: 440,
      top: 340,
      width: 120,
      height: 120,
      cutsSubject: false,
      marginReduced: false,
    });
  });

  it("holds the subject on every small photo (dense seeded sweep where rounding bites)", () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return Math.floor((seed / 2 ** 32) * n);
    };
    let checked = 0;
    for (let W = 1; W <= 16; W++) {
      for (let H = 1; H <= 16; H++) {
        for (const aspect of [1, 1.5, 2, 3, 2 / 3, 0.5, 1 / 3, 0.7]) {
          for (let k = 0; k < 12; k++) {
            const xs = [rand(W), rand(W)].sort((p, q) => p - q);
            const ys = [rand(H), rand(H)].sort((p, q) => p - q);
            const box: Box = [xs[0]!, ys[0]!, xs[1]!, ys[1]!];
            const margin = [0, 0.1, 0.5][k % 3]!;
            const r = subjectCrop({ width: W, height: H, box, margin, aspect });
            const bw = box[2] - box[0] + 1;
            const bh = box[3] - box[1] + 1;
            const fits = Math.max(bh, bw / aspect) <= Math.min(H, W / aspect) + 1e-9;
            if (fits !== !r.cutsSubject || (fits && !contains(r, box))) {
              expect.fail(`${W}×${H} aspect ${aspect} box [${box}] → ${JSON.stringify(r)}`);
            }
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(16 * 16 * 8 * 12);
  });

  it("rounds the limiting side up so a wide subject fits a wide crop", () => {
    // t = 10 / 3 rows: 3 rows would give a 9-pixel-wide crop, one pixel short of the subject.
    const r = subjectCrop({ width: 300, height: 50, box: [100, 20, 109, 22], margin: 0, aspect: 3 });
    expect([r.width, r.height]).toEqual([12, 4]);
    expect(contains(r, [100, 20, 109, 22])).toBe(true);
  });

  it("slides the crop inside the photo for a subject at the edge", () => {
    const r = subjectCrop({ width: 1000, height: 800, box: [0, 700, 99, 799], margin: 0.1 });
    expect(r.left).toBe(0);
    expect(r.top + r.height).toBe(800);
    expect(r.marginReduced).toBe(true); // the margin falls outside the photo
    expect(r.cutsSubject).toBe(false);
  });

  it("flags a subject wider than the largest square crop and centres on it", () => {
    const r = subjectCrop({ width: 1000, height: 400, box: [100, 0, 899, 399], margin: 0.1 });
    expect(r).toEqual({ left: 300, top: 0, width: 400, height: 400, cutsSubject: true, marginReduced: true });
  });

  it("falls back to the centre crop without a box, and mode none keeps the whole photo", () => {
    expect(subjectCrop({ width: 1000, height: 600 })).toEqual({
      left: 200,
      top: 0,
      width: 600,
      height: 600,
      cutsSubject: false,
      marginReduced: false,
    });
    const centre = subjectCrop({ width: 1000, height: 600, box: [0, 0, 50, 50], mode: "center" });
    expect(centre.cutsSubject).toBe(true);
    expect(subjectCrop({ width: 1000, height: 600, box: [0, 0, 50, 50], mode: "none" })).toMatchObject({
      left: 0,
      top: 0,
      width: 1000,
      height: 600,
    });
  });

  it("rejects a box outside the photo and bad numbers with the value in the message", () => {
    expect(() => subjectCrop({ width: 10, height: 10, box: [0, 0, 10, 5] })).toThrow(
      "Expected an integer box inside 10×10 for box but received [0, 0, 10, 5]",
    );
    expect(() => subjectCrop({ width: 10, height: 10, aspect: 0 })).toThrow(
      "Expected a finite number > 0 for aspect but received 0",
    );
    expect(() => subjectCrop({ width: 10, height: 10, margin: -1 })).toThrow("for margin but received -1");
  });
});

describe("outputSize", () => {
  it("makes the shorter side the resolution and keeps the crop's aspect", () => {
    expect(outputSize({ left: 0, top: 0, width: 300, height: 300 }, 512)).toEqual({
      width: 512,
      height: 512,
    });
    expect(outputSize({ left: 0, top: 0, width: 400, height: 300 }, 768)).toEqual({
      width: 1024,
      height: 768,
    });
    expect(outputSize({ left: 0, top: 0, width: 300, height: 400 }, 768)).toEqual({
      width: 768,
      height: 1024,
    });
  });
});

describe("cropImage / cropPlane / maskBox", () => {
  it("copies the rectangle row by row", () => {
    const data = Uint8Array.from({ length: 4 * 3 * 3 }, (_, i) => i);
    const img = cropImage(
      { data, width: 4, height: 3, channels: 3 },
      { left: 1, top: 1, width: 2, height: 2 },
    );
    expect(Array.from(img.data)).toEqual([15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
    const plane = cropPlane(
      Uint8Array.from({ length: 12 }, (_, i) => i),
      4,
      3,
      { left: 2, top: 0, width: 2, height: 3 },
    );
    expect(Array.from(plane)).toEqual([2, 3, 6, 7, 10, 11]);
    expect(() => cropPlane(new Uint8Array(12), 4, 3, { left: 3, top: 0, width: 2, height: 1 })).toThrow(
      "Expected an integer rectangle inside 4×3 for crop but received 3,0 2×1",
    );
  });

  it("finds the inclusive bounding box of the mask", () => {
    const m = new Uint8Array(5 * 4);
    expect(maskBox(m, 5, 4)).toBeUndefined();
    m[1 * 5 + 2] = 1;
    m[3 * 5 + 4] = 1;
    expect(maskBox(m, 5, 4)).toEqual([2, 1, 4, 3]);
  });
});

describe("maskBox: the shortcut scan agrees with a full pass", () => {
  const fullPass = (mask: Uint8Array, width: number, height: number): Box | undefined => {
    let x0 = width;
    let y0 = height;
    let x1 = -1;
    let y1 = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (mask[y * width + x]) {
          x0 = Math.min(x0, x);
          x1 = Math.max(x1, x);
          y0 = Math.min(y0, y);
          y1 = y;
        }
      }
    }
    return x1 < 0 ? undefined : [x0, y0, x1, y1];
  };

  it("on random sparse and dense masks", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer(),
        (width, height, density, seed) => {
          const mask = new Uint8Array(width * height);
          let a = seed >>> 0;
          for (let i = 0; i < mask.length; i++) {
            a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
            if (a / 2 ** 32 < density * density * density) mask[i] = 1 + (a % 255);
          }
          expect(maskBox(mask, width, height)).toEqual(fullPass(mask, width, height));
        },
      ),
    );
  });
});

describe("cropAndResize", () => {
  /** The former implementation: crop both, the mask as a 3-band 0/255 image, two sharp resizes. */
  const reference = async (
    image: RgbImage,
    mask: Uint8Array,
    crop: CropRect,
    width: number,
    height: number,
  ) => {
    const cm = cropPlane(mask, image.width, image.height, crop);
    const cropped = cropImage(image, crop);
    if (crop.width === width && crop.height === height) {
      return { image: cropped, mask: Uint8Array.from(cm, (v) => (v ? 1 : 0)) };
    }
    const grey = new Uint8Array(cm.length * 3);
    for (let i = 0; i < cm.length; i++) if (cm[i]) grey.fill(255, 3 * i, 3 * i + 3);
    const resized = await resizeRgb(cropped, width, height, "lanczos3");
    const rm = await resizeRgb(
      { data: grey, width: crop.width, height: crop.height, channels: 3 },
      width,
      height,
    );
    return {
      image: resized,
      mask: Uint8Array.from({ length: width * height }, (_, i) => (rm.data[3 * i]! >= 128 ? 1 : 0)),
    };
  };

  it("gives the same pixels as cropping first, shrinking, enlarging and at the same size", async () => {
    const w = 90;
    const h = 70;
    const data = new Uint8Array(w * h * 3);
    const mask = new Uint8Array(w * h);
    let a = 11;
    for (let i = 0; i < data.length; i++) {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      data[i] = a >>> 24;
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if ((x - 45) ** 2 / 900 + (y - 30) ** 2 / 400 < 1 || (x + y) % 17 === 0) mask[y * w + x] = 1;
      }
    }
    const image: RgbImage = { data, width: w, height: h, channels: 3 };
    const cases: [CropRect, number, number][] = [
      [{ left: 10, top: 5, width: 60, height: 60 }, 24, 24],
      [{ left: 0, top: 0, width: w, height: h }, 31, 24],
      [{ left: 17, top: 9, width: 21, height: 33 }, 64, 101],
      [{ left: 3, top: 4, width: 20, height: 20 }, 20, 20],
    ];
    for (const [crop, ow, oh] of cases) {
      const got = await cropAndResize({ image, mask, crop, width: ow, height: oh });
      const want = await reference(image, mask, crop, ow, oh);
      expect(Buffer.from(got.image.data).equals(Buffer.from(want.image.data))).toBe(true);
      expect(Array.from(got.mask)).toEqual(Array.from(want.mask));
    }
    await expect(
      cropAndResize({ image, mask: new Uint8Array(5), crop: cases[0]![0], width: 8, height: 8 }),
    ).rejects.toThrow(RangeError);
  });
});

describe("maskCoverage", () => {
  it("is the mean of each block when shrinking by a whole factor, and 0/1 at the same size", () => {
    const w = 12;
    const h = 8;
    const mask = Uint8Array.from({ length: w * h }, (_, i) => ((i * 7) % 5 < 2 ? 1 : 0));
    const crop = { left: 0, top: 0, width: w, height: h };
    const got = maskCoverage({ mask, width: w, height: h, crop, outWidth: 4, outHeight: 2 });
    for (let oy = 0; oy < 2; oy++) {
      for (let ox = 0; ox < 4; ox++) {
        let s = 0;
        for (let y = 4 * oy; y < 4 * oy + 4; y++)
          for (let x = 3 * ox; x < 3 * ox + 3; x++) s += mask[y * w + x]!;
        expect(got[oy * 4 + ox]).toBeCloseTo(s / 12, 6);
      }
    }
    const same = maskCoverage({ mask, width: w, height: h, crop, outWidth: w, outHeight: h });
    expect(Array.from(same)).toEqual(Array.from(mask));
  });

  it.each([
    [10, 40],
    [10, 25],
    [40, 10],
    [100, 37],
    [64, 512],
  ])("puts a step's half-covered pixel where sharp's resize does (%i → %i px)", async (n, m) => {
    // A vertical step at the middle of a crop taken from a wider mask (subject on the right).
    const w = n + 6;
    const mask = Uint8Array.from({ length: w * 3 }, (_, i) => ((i % w) - 3 >= n / 2 ? 1 : 0));
    const crop = { left: 3, top: 1, width: n, height: 1 };
    const coverage = maskCoverage({ mask, width: w, height: 3, crop, outWidth: m, outHeight: 1 });
    const grey = Uint8Array.from(mask, (v) => v * 255);
    const resized = await resizeRegion({ data: grey, width: w, height: 3, channels: 1 }, crop, m, 1);
    // Coverage is a box filter, sharp's lanczos is wider, but both put the step at the same
    // sub-pixel position: the sum along the row is the number of output pixels right of the step.
    // (A geometry half an output pixel off, as centre-aligned footprints are when enlarging, fails.)
    const sum = (values: ArrayLike<number>, scale: number): number => {
      let t = 0;
      for (let o = 0; o < m; o++) t += values[o]! / scale;
      return t;
    };
    expect(Math.abs(sum(coverage, 1) - sum(resized.data, 255))).toBeLessThan(0.2);
    // Fractional only on the pixels the step runs through (at most one when shrinking or enlarging).
    expect(Array.from(coverage).filter((v) => v > 0 && v < 1).length).toBeLessThanOrEqual(1);
  });

  it("rejects a crop outside the mask", () => {
    expect(() =>
      maskCoverage({
        mask: new Uint8Array(16),
        width: 4,
        height: 4,
        crop: { left: 2, top: 0, width: 4, height: 4 },
        outWidth: 2,
        outHeight: 2,
      }),
    ).toThrow(RangeError);
  });
});

describe("resizeMask", () => {
  it("gives the values of the plain weighted sum (the all-inside shortcut changes no bit)", () => {
    // The weighted sums of resizeMask without the shortcut, from its documented geometry.
    const plain = (mask: Uint8Array, width: number, height: number, ow: number, oh: number): Uint8Array => {
      const taps = (n: number, m: number): [number, number][][] =>
        Array.from({ length: m }, (_, o) => {
          const scale = n / m;
          const out: [number, number][] = [];
          if (scale > 1) {
            const a = o * scale;
            const b = (o + 1) * scale;
            for (let i = Math.floor(a); i < Math.min(n, Math.ceil(b)); i++) {
              const cover = Math.min(b, i + 1) - Math.max(a, i);
              if (cover > 0) out.push([i, Math.fround(cover / scale)]);
            }
          } else {
            const src = Math.min(n - 1, Math.max(0, (o + 0.5) * scale - 0.5));
            const i0 = Math.floor(src);
            const f = src - i0;
            out.push([i0, Math.fround(1 - f)]);
            if (f > 0 && i0 + 1 < n) out.push([i0 + 1, Math.fround(f)]);
          }
          return out;
        });
      const xs = taps(width, ow);
      const ys = taps(height, oh);
      const tmp = new Float32Array(height * ow);
      for (let y = 0; y < height; y++) {
        for (let o = 0; o < ow; o++) {
          let s = 0;
          for (const [i, w] of xs[o]!) if (mask[y * width + i]) s += w;
          tmp[y * ow + o] = s;
        }
      }
      const out = new Uint8Array(ow * oh);
      for (let o = 0; o < oh; o++) {
        for (let x = 0; x < ow; x++) {
          let s = 0;
          for (const [i, w] of ys[o]!) s += w * tmp[i * ow + x]!;
          out[o * ow + x] = s >= 0.5 - 1e-6 ? 1 : 0;
        }
      }
      return out;
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer(),
        (width, height, ow, oh, seed) => {
          const mask = new Uint8Array(width * height);
          const cx = (seed >>> 0) % width;
          const cy = (seed >>> 8) % height;
          const r2 = ((seed >>> 16) % 30) ** 2;
          for (let y = 0; y < height; y++)
            for (let x = 0; x < width; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r2) mask[y * width + x] = 1;
          const got = resizeMask({ mask, width, height, outWidth: ow, outHeight: oh });
          expect(Array.from(got)).toEqual(Array.from(plain(mask, width, height, ow, oh)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("upscales with pixel centres aligned (left half stays the left half)", () => {
    const m = new Uint8Array(16);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 2; x++) m[y * 4 + x] = 1;
    const out = resizeMask({ mask: m, width: 4, height: 4, outWidth: 8, outHeight: 8 });
    for (let y = 0; y < 8; y++) {
      expect(Array.from(out.subarray(y * 8, y * 8 + 8))).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    }
  });

  it("downscales by area so a 1-pixel line survives a factor of 2 and the area is kept", () => {
    const w = 40;
    const m = new Uint8Array(w * w);
    for (let y = 0; y < w; y++) m[y * w + 11] = 1; // a thin vertical line
    for (let y = 10; y < 30; y++) for (let x = 20; x < 36; x++) m[y * w + x] = 255; // a block
    const out = resizeMask({ mask: m, width: w, height: w, outWidth: 20, outHeight: 20 });
    expect(new Set(out)).toEqual(new Set([0, 1]));
    let line = 0;
    for (let y = 0; y < 20; y++) line += out[y * 20 + 5]!;
    expect(line).toBe(20);
    let block = 0;
    for (let y = 0; y < 20; y++) for (let x = 10; x < 20; x++) block += out[y * 20 + x]!;
    expect(block).toBe(10 * 8);
  });

  it("keeps the area of a disc across arbitrary factors within a few percent", () => {
    const w = 301;
    const m = new Uint8Array(w * w);
    for (let y = 0; y < w; y++)
      for (let x = 0; x < w; x++) if ((x - 150) ** 2 + (y - 150) ** 2 <= 100 ** 2) m[y * w + x] = 1;
    for (const size of [37, 128, 512]) {
      const out = resizeMask({ mask: m, width: w, height: w, outWidth: size, outHeight: size });
      const area = out.reduce((s, v) => s + v, 0) / (size * size);
      expect(Math.abs(area / (Math.PI * (100 / w) ** 2) - 1)).toBeLessThan(0.03);
    }
  });
});
