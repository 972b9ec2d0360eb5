import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePng, loadMaskRed } from "../src/image/image-io.js";
import { decodeMaskPng, encodeMaskPng } from "../src/image/mask-png.js";

/** A pseudo-random mask (LCG), non-zero values other than 1 included. */
function randomMask(width: number, height: number, seed: number, density = 0.5): Uint8Array {
  const mask = new Uint8Array(width * height);
  let a = seed >>> 0;
  for (let i = 0; i < mask.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    if (a / 2 ** 32 < density) mask[i] = 1 + (a % 3 === 0 ? 254 : 0);
  }
  return mask;
}

const binary = (mask: Uint8Array): number[] => Array.from(mask, (v) => (v ? 1 : 0));

describe("encodeMaskPng / decodeMaskPng", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "persam-mask-png-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips any size, widths that are not a multiple of 8 included", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (width, height, seed, density) => {
          const mask = randomMask(width, height, seed, density);
          const back = decodeMaskPng(encodeMaskPng(mask, width, height));
          expect(back?.width).toBe(width);
          expect(back?.height).toBe(height);
          expect(Array.from(back!.mask)).toEqual(binary(mask));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("is a standard 1-bit grey PNG: sharp reads it as 0/255 and loadMaskRed as a binary mask", async () => {
    const width = 37;
    const height = 23;
    const mask = randomMask(width, height, 5);
    const png = encodeMaskPng(mask, width, height);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height, meta.space, meta.channels]).toEqual([
      "png",
      width,
      height,
      "b-w",
      1,
    ]);
    const { data, info } = await sharp(png).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(1);
    expect(Array.from(data)).toEqual(binary(mask).map((v) => v * 255));
    const path = join(dir, "m.png");
    await writeFile(path, png);
    const red = await loadMaskRed(path);
    expect(red.kind).toBe("binary");
    expect(Array.from(red.red)).toEqual(binary(mask).map((v) => v * 128));
  });

  it("declines PNGs it did not write, so that the caller falls back to a general decoder", async () => {
    const grey = Uint8Array.from(randomMask(9, 4, 3), (v) => (v ? 255 : 0));
    expect(decodeMaskPng(await encodePng({ data: grey, width: 9, height: 4, channels: 1 }))).toBeUndefined();
    expect(decodeMaskPng(Buffer.from("not a png at all, not even close"))).toBeUndefined();
    // A 1-bit PNG with a row filter other than "none" (as libpng may write).
    const filtered = await sharp(grey, { raw: { width: 9, height: 4, channels: 1 } })
      .toColourspace("b-w")
      .png({ colours: 2, palette: false, adaptiveFiltering: true })
      .toBuffer();
    const back = decodeMaskPng(filtered);
    if (back) expect(Array.from(back.mask)).toEqual(Array.from(grey, (v) => (v ? 1 : 0)));
  });

  it("throws on a corrupt chunk and on a bad size", () => {
    const png = encodeMaskPng(randomMask(16, 16, 1), 16, 16);
    const broken = Buffer.from(png);
    broken[broken.length - 20] = broken[broken.length - 20]! ^ 0xff; // inside IDAT
    expect(() => decodeMaskPng(broken)).toThrow("Bad CRC in PNG chunk IDAT");
    expect(() => decodeMaskPng(png.subarray(0, png.length - 12))).toThrow();
    expect(() => encodeMaskPng(new Uint8Array(5), 2, 2)).toThrow(
      "Expected 4 mask values (2×2) for mask but received 5",
    );
    expect(() => encodeMaskPng(new Uint8Array(0), 0, 2)).toThrow(RangeError);
  });
});
