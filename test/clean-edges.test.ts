// The clean-edge rule of images/, checked as a trainer reads the files: through the real `prepare` on
// the tiny model with a reference mask given by hand (so the output mask is that mask), every pixel
// outside the output mask dilated by 2 px is exactly the background and every pixel inside it eroded
// by 2 px is the photo's (cropped and resized the same way, ±2 levels).

import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { noiseSeed, suppressBackground } from "../src/dataset/background.js";
import { type PrepareResult, prepare } from "../src/dataset/prepare.js";
import type { PrepareReport } from "../src/dataset/report.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { haveSharedFixtures, persegPath } from "./support/fixtures.js";

let root: string;
let model: SamModel;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-edges-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
});

afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

interface Plane {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

async function raw(path: string | Buffer): Promise<Plane> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: info.channels };
}

/** The mask grown (`grow` > 0) or shrunk by a disc of radius |grow| pixels. */
function morph(mask: Uint8Array, width: number, height: number, grow: number): Uint8Array {
  const r = Math.abs(grow);
  const offsets: [number, number][] = [];
  for (let dy = -r; dy <= r; dy++)
    for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r) offsets.push([dx, dy]);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let any = false;
      let all = true;
      for (const [dx, dy] of offsets) {
        const xx = x + dx;
        const yy = y + dy;
        // Outside the image counts as background for erosion (a subject cut by the crop keeps its edge).
        const v = xx >= 0 && yy >= 0 && xx < width && yy < height ? mask[yy * width + xx]! > 0 : false;
        any ||= v;
        all &&= v;
      }
      out[y * width + x] = (grow > 0 ? any : all) ? 1 : 0;
    }
  }
  return out;
}

/** The photo decoded upright, cropped to the report's crop and resized to the output size by sharp. */
async function photoAsTrained(
  path: string,
  crop: NonNullable<PrepareReport["photos"][number]["crop"]>,
  width: number,
  height: number,
): Promise<Plane> {
  const decoded = await sharp(path).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { data, info } = await sharp(decoded.data, {
    raw: { width: decoded.info.width, height: decoded.info.height, channels: 3 },
  })
    .extract(crop)
    .resize(width, height, { fit: "fill", kernel: "lanczos3" })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: info.channels };
}

interface EdgeCheck {
  /** Pixels outside the dilated mask that differ from the background, with the first one. */
  readonly bled: number;
  readonly firstBleed?: string;
  /** Pixels inside the eroded mask more than 2 levels from the photo. */
  readonly changed: number;
  readonly firstChange?: string;
  readonly outside: number;
  readonly inside: number;
}

/**
 * Check images/<stem>.png of a prepare result against its masks/<stem>.png. `background(photo, mask)`
 * gives, for the photo as trained and the output mask, the expected RGB(A) of each pixel where only
 * background may show.
 */
async function checkEdges(params: {
  result: PrepareResult;
  photo: string;
  stem: string;
  background: (photo: Plane, mask: Uint8Array) => (i: number) => readonly number[];
}): Promise<EdgeCheck> {
  const { result, stem } = params;
  const image = await raw(join(result.outDir, "images", `${stem}.png`));
  const maskPlane = await raw(join(result.outDir, "masks", `${stem}.png`));
  const { width, height } = image;
  const mask = Uint8Array.from({ length: width * height }, (_, i) =>
    maskPlane.data[i * maskPlane.channels]! > 127 ? 1 : 0,
  );
  const report = JSON.parse(await readFile(join(result.outDir, "report.json"), "utf8")) as PrepareReport;
  const crop = report.photos.find((p) => p.stem === stem)?.crop;
  expect(crop).toBeDefined();
  const photo = await photoAsTrained(params.photo, crop!, width, height);
  const grown = morph(mask, width, height, 2);
  const shrunk = morph(mask, width, height, -2);
  const backgroundAt = params.background(photo, mask);
  const c = image.channels;
  let bled = 0;
  let changed = 0;
  let outside = 0;
  let inside = 0;
  let firstBleed: string | undefined;
  let firstChange: string | undefined;
  for (let i = 0; i < width * height; i++) {
    const px = Array.from(image.data.subarray(c * i, c * i + c));
    const where = `(${i % width}, ${Math.floor(i / width)})`;
    if (!grown[i]) {
      outside++;
      const want = backgroundAt(i);
      if (px.some((v, k) => v !== want[k])) {
        bled++;
        firstBleed ??= `${where}: ${px.join(",")} instead of ${want.join(",")}`;
      }
    } else if (shrunk[i]) {
      inside++;
      const want = Array.from(photo.data.subarray(3 * i, 3 * i + 3));
      if (c === 4 && px[3] !== 255) changed++;
      if (want.some((v, k) => Math.abs(v - px[k]!) > 2)) {
        changed++;
        firstChange ??= `${where}: ${px.join(",")} instead of ${want.join(",")}`;
      }
    }
  }
  return {
    bled,
    changed,
    outside,
    inside,
    ...(firstBleed ? { firstBleed } : {}),
    ...(firstChange ? { firstChange } : {}),
  };
}

describe("images/ on the PerSeg cat with its hand mask", () => {
  const present = haveSharedFixtures("clean edges on perseg-mini/cat");
  it.skipIf(!present)("has no background bleeding in and keeps the cat's own pixels", async () => {
    const dir = join(root, "cat");
    await mkdir(dir);
    const photo = join(dir, "00.jpg");
    await copyFile(persegPath("Images", "cat", "00"), photo);
    const result = await prepare({
      inputDir: dir,
      outDir: join(root, "cat.persam"),
      model,
      className: "cat",
      references: [{ photo, maskPath: persegPath("Annotations", "cat", "00") }],
    });
    expect(result.counts.kept).toBe(1);
    const check = await checkEdges({ result, photo, stem: "00", background: () => () => [255, 255, 255] });
    expect(check.outside).toBeGreaterThan(10_000);
    expect(check.inside).toBeGreaterThan(10_000);
    expect(check.firstBleed, `${check.bled} background pixels are not white`).toBeUndefined();
    expect(check.firstChange, `${check.changed} subject pixels differ from the photo`).toBeUndefined();
  });
});

describe("images/ on a generated photo, in every background mode", () => {
  const W = 300;
  const H = 240;
  const inDisc = (x: number, y: number): boolean => (x - 150) ** 2 + (y - 120) ** 2 <= 70 ** 2;
  const nearDisc = (x: number, y: number): boolean => (x - 150) ** 2 + (y - 120) ** 2 <= 78 ** 2;

  /**
   * A textured orange disc (the subject) hugged by a dark ring outside its mask (a shadow, the
   * bushes behind the PerSeg cat) on a light striped background, and the disc's mask beside it.
   */
  async function discFolder(name: string): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir, { recursive: true });
    const rgb = new Uint8Array(W * H * 3);
    const mask = new Uint8Array(W * H);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = y * W + x;
        let c: [number, number, number];
        if (inDisc(x, y)) {
          mask[i] = 255;
          c = [200 + ((x * 7 + y * 3) % 40), 110 + ((x + y) % 30), 40];
        } else if (nearDisc(x, y)) {
          c = [25, 30, 20];
        } else {
          c = ((x >> 3) & 1) === 0 ? [235, 235, 230] : [205, 215, 225];
        }
        rgb.set(c, 3 * i);
      }
    }
    await sharp(Buffer.from(rgb), { raw: { width: W, height: H, channels: 3 } })
      .png()
      .toFile(join(dir, "disc.png"));
    await sharp(Buffer.from(mask), { raw: { width: W, height: H, channels: 1 } })
      .png()
      .toFile(join(dir, "disc.mask.png"));
    return dir;
  }

  const uniform = (rgb: readonly number[]) => () => () => rgb;
  /** The background alone of this photo: the same suppression with an edge of 0 everywhere. */
  const alone = (background: "noise" | "blur") => (photo: Plane, mask: Uint8Array) => {
    const pure = suppressBackground({
      image: { data: photo.data, width: photo.width, height: photo.height, channels: 3 },
      mask,
      background,
      edge: new Float32Array(photo.width * photo.height),
      seed: noiseSeed("disc"),
    });
    return (i: number): readonly number[] => Array.from(pure.data.subarray(3 * i, 3 * i + 3));
  };

  const modes = [
    ["white", uniform([255, 255, 255])],
    ["gray", uniform([128, 128, 128])],
    ["color:#336699", uniform([0x33, 0x66, 0x99])],
    ["transparent", uniform([255, 255, 255, 0])],
    ["noise", alone("noise")],
    ["blur", alone("blur")],
  ] as const;

  // 128 px shrinks the subject crop (~170 px), 512 px enlarges it: sharp's two geometries.
  for (const resolution of [128, 512]) {
    it.each(modes)(
      `%s at ${resolution} px: background exactly outside, photo inside`,
      async (background, expected) => {
        const dir = await discFolder(`disc-${resolution}-${background.replace(/\W/g, "")}`);
        const result = await prepare({
          inputDir: dir,
          model,
          className: "disc",
          resolution,
          background,
        });
        expect(result.counts.kept).toBe(1);
        const check = await checkEdges({
          result,
          photo: join(dir, "disc.png"),
          stem: "disc",
          background: expected,
        });
        expect(check.outside).toBeGreaterThan(1000);
        expect(check.inside).toBeGreaterThan(1000);
        expect(
          check.firstBleed,
          `${check.bled} pixels outside the subject are not the background`,
        ).toBeUndefined();
        expect(check.firstChange, `${check.changed} subject pixels differ from the photo`).toBeUndefined();
      },
    );
  }
});
