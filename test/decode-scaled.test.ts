// prepare's reduced decode (`decode: "scaled"`, PhotoLoader.scaled): JPEGs decoded at a DCT scale
// that keeps the encoder's 1024 pixels and the training resolution, with masks, coordinates and
// crops still in the photo's own pixels; a crop that needs more pixels is cut from a full decode.

import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cropAndResize, snapToDecodedGrid } from "../src/dataset/crop.js";
import { type PrepareEvent, prepare } from "../src/dataset/prepare.js";
import { readState } from "../src/dataset/prepare-state.js";
import { loadRgb, photoSize } from "../src/image/image-io.js";
import { PhotoLoader, shrinkFactor } from "../src/image/photo-loader.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../src/segment/sam/embedding-cache.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { scene, writeJpeg, writePng } from "./support/photos.js";

let root: string;
let model: SamModel;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-decode-scaled-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

describe("reduced decode", () => {
  it("shrinkFactor keeps the encoder's long side and the training resolution", () => {
    const need = { longSide: 1024, shortSide: 512 };
    expect(shrinkFactor(4032, 3024, need)).toBe(2); // 2016×1512; 1/4 would be 1008 < 1024
    expect(shrinkFactor(8064, 6048, need)).toBe(4);
    expect(shrinkFactor(2048, 2048, need)).toBe(2);
    expect(shrinkFactor(2047, 1000, need)).toBe(1);
    expect(shrinkFactor(4032, 3024, { longSide: 1024, shortSide: 1024 })).toBe(2);
    expect(shrinkFactor(4032, 1800, { longSide: 1024, shortSide: 1024 })).toBe(1);
  });

  it("loadRgb decodes a JPEG at 1/2 with the photo's upright size recorded; PNGs in full", async () => {
    const jpeg = join(root, "rotated.jpg");
    await writeJpeg(jpeg, scene({ width: 300, height: 200 }), 6); // stored rotated: upright 200×300
    const half = await loadRgb(jpeg, { shrink: 2 });
    expect([half.width, half.height]).toEqual([100, 150]);
    expect(half.scaledFrom).toEqual({ width: 200, height: 300, factor: 2 });
    expect(photoSize(half)).toEqual({ width: 200, height: 300 });
    const odd = join(root, "odd.jpg");
    await writeJpeg(odd, scene({ width: 301, height: 199 }));
    const quarter = await loadRgb(odd, { shrink: 4 });
    expect([quarter.width, quarter.height]).toEqual([76, 50]);
    const png = join(root, "photo.png");
    await writePng(png, scene({ width: 300, height: 200 }));
    const whole = await loadRgb(png, { shrink: 2 });
    expect([whole.width, whole.height, whole.scaledFrom]).toEqual([300, 200, undefined]);
    // The reduced pixels are the photo at half size: near a 2×2 box average of the full decode (the
    // DCT scaling is not a box filter, and the scene's texture is pixel-fine; garbage would be ~60).
    const full = await loadRgb(jpeg);
    let diff = 0;
    for (let y = 0; y < half.height; y++) {
      for (let x = 0; x < half.width; x++) {
        for (let c = 0; c < 3; c++) {
          const at = (yy: number, xx: number) => full.data[(yy * full.width + xx) * 3 + c]!;
          const box =
            (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4;
          diff += Math.abs(half.data[(y * half.width + x) * 3 + c]! - box);
        }
      }
    }
    expect(diff / (half.width * half.height * 3)).toBeLessThan(10);
  });

  it("snaps a crop onto the decode's grid by less than one decoded pixel, inside the photo", () => {
    const image = {
      data: new Uint8Array(0),
      width: 1008,
      height: 756,
      channels: 3 as const,
      scaledFrom: { width: 4031, height: 3023, factor: 4 },
    };
    for (const crop of [
      { left: 0, top: 0, width: 4031, height: 3023 },
      { left: 1001, top: 603, width: 1499, height: 1499 },
      { left: 2530, top: 1522, width: 1501, height: 1501 },
      { left: 3, top: 2, width: 5, height: 5 },
    ]) {
      const s = snapToDecodedGrid(crop, image);
      for (const v of [s.left, s.top, s.width, s.height]) expect(v % 4).toBe(0);
      expect(Math.abs(s.left - crop.left)).toBeLessThan(4 + (crop.left + crop.width > 4028 ? 4 : 0));
      expect(s.width).toBeGreaterThan(crop.width - 4);
      expect(s.left + s.width).toBeLessThanOrEqual(4031);
      expect(s.top + s.height).toBeLessThanOrEqual(3023);
    }
    const fullDecode = { ...image, scaledFrom: undefined } as typeof image & { scaledFrom?: undefined };
    const crop = { left: 1, top: 2, width: 3, height: 4 };
    expect(snapToDecodedGrid(crop, fullDecode)).toBe(crop);
  });

  it("cuts the same training image from a reduced decode as from the full one, and the same mask", async () => {
    const path = join(root, "big.jpg");
    await writeJpeg(path, scene({ width: 1600, height: 1200, at: [0.5, 0.5], radius: 0.3, seed: 3 }));
    const full = await loadRgb(path);
    const half = await loadRgb(path, { shrink: 2 });
    const mask = new Uint8Array(1600 * 1200);
    for (let y = 0; y < 1200; y++)
      for (let x = 0; x < 1600; x++) mask[y * 1600 + x] = (x - 800) ** 2 + (y - 600) ** 2 <= 360 ** 2 ? 1 : 0;
    const crop = { left: 400, top: 200, width: 800, height: 800 };
    const a = await cropAndResize({ image: full, mask, crop, width: 256, height: 256 });
    const b = await cropAndResize({
      image: half,
      mask,
      crop: snapToDecodedGrid(crop, half),
      width: 256,
      height: 256,
    });
    expect(b.mask).toEqual(a.mask);
    let diff = 0;
    for (let i = 0; i < a.image.data.length; i++) diff += Math.abs(a.image.data[i]! - b.image.data[i]!);
    expect(diff / a.image.data.length).toBeLessThan(2);
  });

  it("prepare --decode scaled: one reduced decode per photo, masks at the photo's size, outputs like the full path", async () => {
    const dir = join(root, "big-photos");
    await mkdir(dir);
    for (let i = 0; i < 2; i++) {
      await writeJpeg(
        join(dir, `ball-${i + 1}.jpg`),
        scene({ width: 2200, height: 1650, at: [0.4 + 0.2 * i, 0.5], seed: i }),
      );
    }
    const run = async (decode: "full" | "scaled", out: string) => {
      const decodes: string[] = [];
      const result = await prepare({
        inputDir: dir,
        outDir: join(root, out),
        model,
        className: "ball",
        keepDoubtful: true,
        resolution: 256,
        decode,
        references: [{ photo: join(dir, "ball-1.jpg"), box: [600, 500, 1150, 1150] }],
        embeddingCache: new EmbeddingCache({ dir: join(root, `${out}-cache`) }),
        onEvent: (e: PrepareEvent) => {
          if (e.type === "decode") decodes.push(e.path.slice(e.path.lastIndexOf("/") + 1));
        },
      });
      return { result, decodes: decodes.sort() };
    };
    const full = await run("full", "full.persam");
    expect(full.result.counts).toMatchObject({ kept: 2, segmented: 2, encoded: 2 });
    const scaled = await run("scaled", "scaled.persam");
    expect(scaled.result.counts).toMatchObject({ kept: 2, segmented: 2, encoded: 2 });
    expect(scaled.decodes).toEqual(["ball-1.jpg", "ball-2.jpg"]);
    const { state } = await readState(join(root, "scaled.persam"));
    for (const stem of ["ball-1", "ball-2"]) {
      const seg = state.photos[stem]!.segmentation!;
      expect([seg.width, seg.height]).toEqual([2200, 1650]);
    }
    // The training images of the two paths agree closely (the same crop, the same size).
    for (const stem of ["ball-1", "ball-2"]) {
      const a = await loadRgb(join(root, "full.persam", "images", `${stem}.png`));
      const b = await loadRgb(join(root, "scaled.persam", "images", `${stem}.png`));
      expect([b.width, b.height]).toEqual([a.width, a.height]);
    }
    // A loader with a scale decodes a JPEG reduced, and says so before decoding.
    const loader = new PhotoLoader({ scaled: { longSide: 1024, shortSide: 256 } });
    expect(await loader.factorFor(join(dir, "ball-1.jpg"))).toBe(2);
    expect((await loader.load(join(dir, "ball-1.jpg"))).scaledFrom?.factor).toBe(2);
    expect((await loader.loadFull(join(dir, "ball-1.jpg"))).scaledFrom).toBeUndefined();
    expect(
      JSON.parse(await readFile(join(root, "scaled.persam", "report.json"), "utf8")).photos[0].width,
    ).toBe(2200);
  });
});
