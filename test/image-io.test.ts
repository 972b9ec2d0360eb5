// Image I/O against files the tests generate with sharp in a temp folder: orientation, colour
// conversions, refusals before decoding, mask formats, and the PerSeg fixtures when present.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cropImage } from "../src/dataset/crop.js";
import { UserError } from "../src/errors.js";
import {
  blurRgb,
  classifyMask,
  DEFAULT_MAX_PIXELS,
  encodeJpeg,
  encodePng,
  loadMaskRed,
  loadRgb,
  probeImage,
  type RgbImage,
  resizeRegion,
  resizeRgb,
} from "../src/image/image-io.js";
import { haveSharedFixtures, persegObjects, persegPath } from "./support/fixtures.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "persam-image-io-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Write a generated file into the temp folder and return its path. */
async function put(name: string, data: Uint8Array | string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, data);
  return path;
}

const raw = (data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4) =>
  sharp(data, { raw: { width, height, channels } });

/** A W×H RGB image in which every pixel differs from every other. */
function pattern(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++)
    out.set([(i * 37) & 255, (i * 11 + 50) & 255, (255 - i * 5) & 255], i * 3);
  return out;
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i]! - b[i]!);
  return d / a.length;
}

/** Assert that a promise rejects with a UserError whose one-line message contains every part. */
async function expectUserError(promise: Promise<unknown>, ...parts: string[]): Promise<UserError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UserError);
  const message = (error as UserError).message;
  expect(message).not.toContain("\n");
  for (const part of parts) expect(message).toContain(part);
  return error as UserError;
}

/** A PNG whose IHDR declares width×height, with a token IDAT (header-valid, never decodable, cheap). */
function pngHeader(width: number, height: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  const chunk = (type: string, body: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, "latin1");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, crc]);
  };
  const signature = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([
    signature,
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.alloc(64))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

describe("loadRgb: EXIF orientation", () => {
  // Upright 6×4 image U; the stored image for orientation o is U seen through the inverse of o, so
  // that applying o gives U back. Maps displayed (x, y) → stored (x, y) per EXIF's definition.
  const W = 6;
  const H = 4;
  const upright = pattern(W, H);
  const storedAt: Record<number, (x: number, y: number) => [number, number]> = {
    1: (x, y) => [x, y],
    2: (x, y) => [W - 1 - x, y],
    3: (x, y) => [W - 1 - x, H - 1 - y],
    4: (x, y) => [x, H - 1 - y],
    5: (x, y) => [y, x],
    6: (x, y) => [y, W - 1 - x],
    7: (x, y) => [H - 1 - y, W - 1 - x],
    8: (x, y) => [H - 1 - y, x],
  };

  it.each([1, 2, 3, 4, 5, 6, 7, 8])("orientation %i comes out upright with identical pixels", async (o) => {
    const swap = o >= 5;
    const sw = swap ? H : W;
    const sh = swap ? W : H;
    const stored = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const [xs, ys] = storedAt[o]!(x, y);
        stored.set(upright.subarray((y * W + x) * 3, (y * W + x) * 3 + 3), (ys * sw + xs) * 3);
      }
    }
    const path = await put(
      `orient-${o}.png`,
      await raw(stored, sw, sh, 3).withMetadata({ orientation: o }).png().toBuffer(),
    );
    const probe = await probeImage(path);
    expect([probe.orientation, probe.width, probe.height]).toEqual([o, W, H]);
    const image = await loadRgb(path);
    expect([image.width, image.height, image.channels]).toEqual([W, H, 3]);
    expect(Array.from(image.data)).toEqual(Array.from(upright));
  });
});

describe("loadRgb: colour conversions", () => {
  const w = 16;
  const h = 8;
  const rgb = pattern(w, h);

  it("converts a CMYK JPEG to sRGB RGB", async () => {
    // Mild colours stay inside the CMYK gamut, so the round trip is close.
    const mild = rgb.map((v) => 64 + (v >> 1));
    const path = await put(
      "cmyk.jpg",
      await raw(mild, w, h, 3).toColourspace("cmyk").jpeg({ quality: 100 }).toBuffer(),
    );
    expect((await probeImage(path)).space).toBe("cmyk");
    const image = await loadRgb(path);
    expect(image.channels).toBe(3);
    expect(image.data.length).toBe(w * h * 3);
    expect(meanAbsDiff(image.data, mild)).toBeLessThan(12);
  });

  it("reduces a 16-bit PNG to the same 8-bit values", async () => {
    const path = await put("rgb16.png", await raw(rgb, w, h, 3).toColourspace("rgb16").png().toBuffer());
    expect((await probeImage(path)).depth).toBe("ushort");
    expect(Array.from((await loadRgb(path)).data)).toEqual(Array.from(rgb));
  });

  it("expands a grey PNG to three equal channels", async () => {
    const grey = Uint8Array.from({ length: w * h }, (_, i) => (i * 29) & 255);
    const path = await put("grey.png", await raw(grey, w, h, 1).toColourspace("b-w").png().toBuffer());
    expect((await probeImage(path)).space).toBe("b-w");
    const image = await loadRgb(path);
    expect(image.channels).toBe(3);
    for (let i = 0; i < w * h; i++)
      expect([...image.data.subarray(i * 3, i * 3 + 3)]).toEqual([grey[i], grey[i], grey[i]]);
  });

  it("expands a palette PNG to its colours", async () => {
    const colours = [
      [128, 0, 0],
      [0, 0, 0],
      [10, 200, 30],
    ];
    const three = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) three.set(colours[i % 3]!, i * 3);
    const path = await put(
      "palette.png",
      await raw(three, w, h, 3).png({ palette: true, colours: 4, dither: 0 }).toBuffer(),
    );
    expect(Array.from((await loadRgb(path)).data)).toEqual(Array.from(three));
  });

  it("drops alpha and keeps the stored colour under it", async () => {
    const rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([...rgb.subarray(i * 3, i * 3 + 3), (i * 17) & 255], i * 4);
    const path = await put("alpha.png", await raw(rgba, w, h, 4).png().toBuffer());
    expect((await probeImage(path)).hasAlpha).toBe(true);
    const image = await loadRgb(path);
    expect(image.channels).toBe(3);
    expect(Array.from(image.data)).toEqual(Array.from(rgb));
  });

  it("honours an embedded ICC profile", async () => {
    const path = await put("p3.png", await raw(rgb, w, h, 3).withIccProfile("p3").png().toBuffer());
    expect((await probeImage(path)).hasIcc).toBe(true);
    const stored = await sharp(path, { ignoreIcc: true }).raw().toBuffer();
    expect(meanAbsDiff(stored, rgb)).toBeGreaterThan(3); // the file holds Display P3 values
    expect(meanAbsDiff((await loadRgb(path)).data, rgb)).toBeLessThan(1.5); // converted back to sRGB
  });

  it("decodes only the first frame of an animated GIF", async () => {
    const frame = (r: number, b: number) =>
      sharp({ create: { width: 4, height: 3, channels: 3, background: { r, g: 0, b } } })
        .png()
        .toBuffer();
    const gif = await sharp([await frame(255, 0), await frame(0, 255)], { join: { animated: true } })
      .gif()
      .toBuffer();
    const path = await put("anim.gif", gif);
    expect((await probeImage(path)).pages).toBe(2);
    const image = await loadRgb(path);
    expect([image.width, image.height]).toEqual([4, 3]);
    for (let i = 0; i < 12; i++) expect([...image.data.subarray(i * 3, i * 3 + 3)]).toEqual([255, 0, 0]);
  });
});

describe("probeImage / loadRgb: bad input is one clear UserError", () => {
  it("refuses a truncated JPEG instead of returning grey pixels", async () => {
    const noisy = Uint8Array.from({ length: 96 * 96 * 3 }, (_, i) => (i * 7919) & 255);
    const jpeg = await raw(noisy, 96, 96, 3).jpeg().toBuffer();
    const path = await put("truncated.jpg", jpeg.subarray(0, jpeg.length >> 1));
    const error = await expectUserError(loadRgb(path), "Cannot decode JPEG image", path);
    expect(error.hint).toContain("truncated");
  });

  it("refuses a zero-byte file", async () => {
    const path = await put("empty.jpg", new Uint8Array(0));
    await expectUserError(loadRgb(path), path, "empty (0 bytes)");
  });

  it("refuses a text file named .jpg", async () => {
    const path = await put("notes.jpg", "these are my holiday notes, not a photo\n");
    await expectUserError(probeImage(path), path, "is not an image");
  });

  it("refuses a missing file and a folder", async () => {
    await expectUserError(loadRgb(join(dir, "nope.jpg")), "nope.jpg", "file not found");
    await expectUserError(loadRgb(dir), dir, "folder");
  });

  it("refuses HEIC with a hint to convert", async () => {
    const ftyp = Buffer.alloc(24);
    ftyp.writeUInt32BE(24, 0);
    ftyp.write("ftypheic", 4, "latin1");
    ftyp.write("mif1heic", 16, "latin1");
    const path = await put("IMG_0001.HEIC", Buffer.concat([ftyp, Buffer.alloc(200, 7)]));
    const error = await expectUserError(loadRgb(path), path, "HEIC");
    expect(error.hint).toContain("JPEG");
  });

  it("refuses SVG, which sharp could render but is no photo", async () => {
    const path = await put("drawing.png", '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>');
    await expectUserError(probeImage(path), path, "SVG");
  });

  it("refuses a huge declared size from the header, before decoding", async () => {
    const path = await put("bomb.png", pngHeader(20_000, 20_000));
    await expectUserError(probeImage(path), path, "20000×20000", "400.0 MP", "limit of 100.0 MP");
    await expectUserError(loadRgb(path), "limit of 100.0 MP");
    expect(DEFAULT_MAX_PIXELS).toBe(100_000_000);
  });

  it("applies a caller's maxPixels", async () => {
    const path = await put("small.png", await raw(pattern(10, 10), 10, 10, 3).png().toBuffer());
    await expectUserError(loadRgb(path, { maxPixels: 99 }), path, "10×10");
    expect((await loadRgb(path, { maxPixels: 100 })).width).toBe(10);
  });
});

describe("loadMaskRed: mask formats", () => {
  const w = 12;
  const h = 10;
  /** Foreground: a 5×4 block at (3, 2). */
  const inside = (x: number, y: number): boolean => x >= 3 && x < 8 && y >= 2 && y < 6;
  const expected = Uint8Array.from({ length: w * h }, (_, i) => (inside(i % w, Math.floor(i / w)) ? 128 : 0));
  const greyMask = (fg: number, bg = 0) =>
    Uint8Array.from({ length: w * h }, (_, i) => (inside(i % w, Math.floor(i / w)) ? fg : bg));

  it("returns a PerSeg palette mask (128,0,0) as is", async () => {
    const rgb = new Uint8Array(w * h * 3);
    greyMask(128).forEach((v, i) => {
      rgb[i * 3] = v;
    });
    const path = await put(
      "perseg.png",
      await raw(rgb, w, h, 3).png({ palette: true, colours: 2, dither: 0 }).toBuffer(),
    );
    const mask = await loadMaskRed(path);
    expect([mask.kind, mask.width, mask.height]).toEqual(["perseg", w, h]);
    expect(Array.from(mask.red)).toEqual(Array.from(expected));
  });

  it.each([
    ["0/1", 1, "binary"],
    ["0/255", 255, "binary"],
  ] as const)("binarises a %s grey mask to 128", async (name, fg, kind) => {
    const path = await put(
      `mask-${fg}.png`,
      await raw(greyMask(fg), w, h, 1).toColourspace("b-w").png().toBuffer(),
    );
    const mask = await loadMaskRed(path);
    expect(mask.kind).toBe(kind);
    expect(Array.from(mask.red), name).toEqual(Array.from(expected));
  });

  it("thresholds an anti-aliased grey mask at 127", async () => {
    const grey = greyMask(255);
    grey[0] = 127; // background-ish
    grey[w + 1] = 40;
    grey[2 * w + 3] = 128; // already inside
    grey[5 * w + 8] = 200; // just right of the block: foreground
    const path = await put("mask-grey.png", await raw(grey, w, h, 1).toColourspace("b-w").png().toBuffer());
    const mask = await loadMaskRed(path);
    expect(mask.kind).toBe("grey");
    const want = expected.slice();
    want[5 * w + 8] = 128;
    expect(Array.from(mask.red)).toEqual(Array.from(want));
  });

  it("binarises a palette mask of another colour (green on black)", async () => {
    const rgb = new Uint8Array(w * h * 3);
    greyMask(200).forEach((v, i) => {
      rgb[i * 3 + 1] = v;
    });
    const path = await put(
      "mask-green.png",
      await raw(rgb, w, h, 3).png({ palette: true, colours: 2, dither: 0 }).toBuffer(),
    );
    const mask = await loadMaskRed(path);
    expect(mask.kind).toBe("binary");
    expect(Array.from(mask.red)).toEqual(Array.from(expected));
  });

  it("reads an RGBA mask whose alpha carries the subject", async () => {
    const rgba = new Uint8Array(w * h * 4);
    greyMask(255, 30).forEach((a, i) => {
      rgba.set([0, 0, 0, a], i * 4);
    });
    const path = await put("mask-alpha.png", await raw(rgba, w, h, 4).png().toBuffer());
    const mask = await loadMaskRed(path);
    expect(mask.kind).toBe("alpha");
    expect(Array.from(mask.red)).toEqual(Array.from(expected));
  });

  it("refuses an empty mask, naming the file", async () => {
    const path = await put(
      "mask-empty.png",
      await raw(new Uint8Array(w * h), w, h, 1)
        .png()
        .toBuffer(),
    );
    await expectUserError(loadMaskRed(path), path, "no foreground");
  });

  it("classifies raw pixels without files", () => {
    expect(classifyMask(Uint8Array.from([0, 1, 1, 0]), 4, 1).kind).toBe("binary");
    expect(classifyMask(Uint8Array.from([0, 128, 10, 255]), 4, 1).kind).toBe("grey");
    expect(Array.from(classifyMask(Uint8Array.from([0, 128, 10, 255]), 4, 1).red)).toEqual([0, 128, 0, 128]);
    expect(() => classifyMask(new Uint8Array(5), 4, 1)).toThrow(RangeError);
  });
});

describe.skipIf(!haveSharedFixtures("image-io PerSeg masks"))("PerSeg fixtures", () => {
  it.each(persegObjects)(
    "%s: the annotation loads as a PerSeg mask the size of its photo",
    async (object) => {
      const mask = await loadMaskRed(persegPath("Annotations", object, "00"));
      expect(mask.kind).toBe("perseg");
      expect(mask.red.some((v) => v === 128)).toBe(true);
      const photo = await probeImage(persegPath("Images", object, "00"));
      expect([mask.width, mask.height]).toEqual([photo.width, photo.height]);
    },
  );
});

describe("encode / resize / blur", () => {
  const image: RgbImage = { data: pattern(9, 7), width: 9, height: 7, channels: 3 };

  it("round-trips PNG exactly, RGB and grey", async () => {
    const png = await encodePng(image);
    expect(Array.from(await sharp(png).raw().toBuffer())).toEqual(Array.from(image.data));
    const grey = {
      data: Uint8Array.from({ length: 12 }, (_, i) => i * 20),
      width: 4,
      height: 3,
      channels: 1 as const,
    };
    const info = await sharp(await encodePng(grey)).metadata();
    expect([info.channels, info.width, info.height]).toEqual([1, 4, 3]);
  });

  it("encodes JPEG at the requested quality and drops alpha", async () => {
    const flat: RgbImage = {
      data: new Uint8Array(64 * 64 * 4).fill(200),
      width: 64,
      height: 64,
      channels: 4,
    };
    const jpeg = await encodeJpeg(flat);
    const meta = await sharp(jpeg).metadata();
    expect([meta.format, meta.channels, meta.chromaSubsampling]).toEqual(["jpeg", 3, "4:4:4"]);
    const back = await sharp(jpeg).raw().toBuffer();
    expect(meanAbsDiff(back, new Uint8Array(back.length).fill(200))).toBeLessThan(1);
    expect((await encodeJpeg(flat, 30)).length).toBeLessThanOrEqual(jpeg.length);
    await expect(encodeJpeg(flat, 0)).rejects.toThrow(
      "Expected an integer between 1 and 100 for quality but received 0",
    );
  });

  it("resizes to the exact size and keeps flat colour flat", async () => {
    const flat: RgbImage = { data: new Uint8Array(20 * 10 * 3).fill(90), width: 20, height: 10, channels: 3 };
    for (const kernel of ["lanczos3", "cubic", "linear"] as const) {
      const out = await resizeRgb(flat, 7, 13, kernel);
      expect([out.width, out.height, out.channels, out.data.length]).toEqual([7, 13, 3, 7 * 13 * 3]);
      expect(out.data.every((v) => v === 90)).toBe(true);
    }
    await expect(resizeRgb(flat, 0, 3)).rejects.toThrow(RangeError);
  });

  it("resizes a region as resizeRgb of the cropped pixels, and a grey plane as the first RGB band", async () => {
    const w = 61;
    const h = 47;
    const rgb = new Uint8Array(w * h * 3);
    let seed = 7;
    for (let i = 0; i < rgb.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      rgb[i] = seed >>> 24;
    }
    const image: RgbImage = { data: rgb, width: w, height: h, channels: 3 };
    const grey = new Uint8Array(w * h);
    for (let i = 0; i < grey.length; i++) grey[i] = rgb[3 * i]!;
    const greyRgb = new Uint8Array(w * h * 3);
    for (let i = 0; i < grey.length; i++) greyRgb.fill(grey[i]!, 3 * i, 3 * i + 3);
    const rects = [
      { left: 5, top: 3, width: 40, height: 31 },
      { left: 0, top: 0, width: w, height: h },
      { left: 60, top: 46, width: 1, height: 1 },
    ];
    for (const rect of rects) {
      for (const [ow, oh] of [
        [13, 11],
        [97, 80],
        [rect.width, rect.height + 3],
      ] as const) {
        const cropped = cropImage(image, rect);
        const expected = await resizeRgb(cropped, ow, oh);
        const got = await resizeRegion(image, rect, ow, oh);
        expect([got.width, got.height, got.channels]).toEqual([ow, oh, 3]);
        expect(Buffer.from(got.data).equals(Buffer.from(expected.data))).toBe(true);
        const g = await resizeRegion({ data: grey, width: w, height: h, channels: 1 }, rect, ow, oh);
        const viaRgb = await resizeRgb(
          cropImage({ data: greyRgb, width: w, height: h, channels: 3 }, rect),
          ow,
          oh,
        );
        expect(g.channels).toBe(1);
        expect(Array.from(g.data)).toEqual(Array.from(viaRgb.data.filter((_, i) => i % 3 === 0)));
      }
    }
    await expect(resizeRegion(image, { left: 30, top: 0, width: 32, height: 5 }, 4, 4)).rejects.toThrow(
      "Expected an integer rectangle inside 61×47 for rect but received 30,0 32×5",
    );
    await expect(resizeRegion(image, rects[0]!, 0, 4)).rejects.toThrow(RangeError);
  });

  it("blurs a step edge and leaves tiny sigmas alone", async () => {
    const step = new Uint8Array(16 * 4 * 3);
    for (let i = 0; i < 16 * 4; i++) if (i % 16 >= 8) step.fill(255, i * 3, i * 3 + 3);
    const edge: RgbImage = { data: step, width: 16, height: 4, channels: 3 };
    const blurred = await blurRgb(edge, 2);
    expect(blurred.data[7 * 3]).toBeGreaterThan(40);
    expect(blurred.data[7 * 3]).toBeLessThan(128);
    expect(blurred.data[8 * 3]).toBeGreaterThan(128);
    expect(Array.from((await blurRgb(edge, 0.1)).data)).toEqual(Array.from(step));
    await expect(blurRgb(edge, -1)).rejects.toThrow(RangeError);
  });

  it("rejects raw data of the wrong length", async () => {
    await expect(encodePng({ data: new Uint8Array(5), width: 2, height: 2, channels: 3 })).rejects.toThrow(
      "Expected 12 bytes for 2×2×3 but received 5",
    );
  });
});
