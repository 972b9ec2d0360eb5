// PerSeg metrics as the reference's eval_mioU.py computes them: pixel counts, pooled IoU / accuracy
// per object, OpenCV's grey > 0 binarisation, the folder layout, and ground truth scored against
// itself (100) on a generated folder and on the shared perseg-mini fixture.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EVAL_EPSILON,
  evaluatePerSeg,
  listPersegObjects,
  maskCounts,
  openCvForeground,
  pooledScores,
  REFERENCE_SKIPPED_OBJECTS,
  referenceStem,
} from "../src/eval/perseg-eval.js";
import { encodePng } from "../src/image/image-io.js";
import { haveSharedFixtures, persegMiniDir, persegObjects } from "./support/fixtures.js";

describe("metrics", () => {
  it("counts intersection, union and target pixels", () => {
    const pred = Uint8Array.of(1, 1, 0, 0, 1, 0);
    const gt = Uint8Array.of(1, 0, 1, 0, 255, 0);
    expect(maskCounts(pred, gt)).toEqual({ intersection: 2, union: 4, target: 3 });
    expect(() => maskCounts(pred, new Uint8Array(5))).toThrow(/Expected a prediction of 5 pixels/);
  });

  it("pools counts over an object's photos before dividing (ΣI/ΣU, not a mean of ratios)", () => {
    // Photo 1: I=2, U=4, T=3; photo 2: I=0, U=6, T=6.
    const { iou, accuracy } = pooledScores([
      { intersection: 2, union: 4, target: 3 },
      { intersection: 0, union: 6, target: 6 },
    ]);
    expect(iou).toBe(2 / (10 + 1e-10));
    expect(accuracy).toBe(2 / (9 + 1e-10));
    // The mean of the per-photo IoUs would be (0.5 + 0) / 2 = 0.25.
    expect(iou).not.toBeCloseTo(0.25, 3);
    // Empty union: 0 (the reference's +1e-10), never NaN.
    expect(pooledScores([{ intersection: 0, union: 0, target: 0 }])).toEqual({ iou: 0, accuracy: 0 });
    expect(EVAL_EPSILON).toBe(1e-10);
  });

  it("binarises like cv2.cvtColor(BGR2GRAY) > 0 in 8-bit fixed point", () => {
    const pixels: [number, number, number][] = [
      [0, 0, 0],
      [128, 0, 0], // PerSeg red: grey 38
      [255, 255, 255],
      [1, 0, 0], // 4899 < 8192 → grey 0
      [2, 0, 0], // 9798 → grey 1
      [0, 1, 0], // 9617 → 1
      [0, 0, 4], // 7472 → 0
      [0, 0, 5], // 9340 → 1
      [1, 0, 1], // 6767 → 0
    ];
    const rgb = Uint8Array.from(pixels.flat());
    expect([...openCvForeground(rgb, pixels.length)]).toEqual([0, 1, 1, 0, 1, 1, 0, 1, 0]);
  });
});

describe("PerSeg folders", () => {
  let dir: string;
  const W = 8;
  const H = 4;

  /** Write Images/<obj>/<nn>.png and Annotations/<obj>/<nn>.png with the foreground columns < cols. */
  async function add(root: string, object: string, nn: string, cols: number): Promise<void> {
    await mkdir(join(root, "Images", object), { recursive: true });
    await mkdir(join(root, "Annotations", object), { recursive: true });
    await writeFile(
      join(root, "Images", object, `${nn}.png`),
      await encodePng({ data: new Uint8Array(W * H * 3).fill(90), width: W, height: H, channels: 3 }),
    );
    await writeFile(join(root, "Annotations", object, `${nn}.png`), await maskPng(cols));
  }

  /** A PerSeg-style RGB mask: red 128 where x < cols. */
  async function maskPng(cols: number): Promise<Buffer> {
    const data = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < cols; x++) data[(y * W + x) * 3] = 128;
    return encodePng({ data, width: W, height: H, channels: 3 });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "persam-perseg-"));
    for (const object of ["bird", "clock", "box00"]) {
      for (const [nn, cols] of [
        ["00", 4],
        ["01", 2],
        ["02", 6],
      ] as const) {
        await add(dir, object, nn, cols);
      }
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("lists objects sorted, skips the reference's excluded objects and the reference photo", async () => {
    expect(REFERENCE_SKIPPED_OBJECTS).toContain("clock");
    const { objects, skipped } = await listPersegObjects({ dir });
    expect(objects.map((o) => o.name)).toEqual(["bird", "box00"]);
    expect(skipped).toEqual(["clock"]);
    // The reference drops any path containing "00"; we compare stems, so box00 keeps its tests.
    expect(objects[1]!.tests.map((t) => t.name)).toEqual(["01", "02"]);
    expect(objects[0]!.referenceImage).toBe(join(dir, "Images", "bird", "00.png"));
    const all = await listPersegObjects({ dir, skipLikeReference: false, refIdx: "01" });
    expect(all.objects.map((o) => o.name)).toEqual(["bird", "box00", "clock"]);
    expect(all.objects[0]!.tests.map((t) => t.name)).toEqual(["00", "02"]);
    expect((await listPersegObjects({ dir, objects: ["clock"] })).objects.map((o) => o.name)).toEqual([
      "clock",
    ]);
    await expect(listPersegObjects({ dir, objects: ["cat"] })).rejects.toThrow(
      /Unknown PerSeg object cat in .* — |Unknown PerSeg object cat in /,
    );
    await expect(listPersegObjects({ dir, refIdx: "07" })).rejects.toThrow(
      /Object bird has no reference annotation/,
    );
    await expect(listPersegObjects({ dir: join(dir, "Images") })).rejects.toThrow(/is not a PerSeg folder/);
  });

  it("finds the zero-padded annotation of a numeric --ref-idx (1 is 01)", async () => {
    const one = await listPersegObjects({ dir, refIdx: "1" });
    expect(one.objects[0]!.referenceMask).toBe(join(dir, "Annotations", "bird", "01.png"));
    expect(one.objects[0]!.tests.map((t) => t.name)).toEqual(["00", "02"]);
    expect(referenceStem(["00", "01", "02"], "2")).toBe("02");
    expect(referenceStem(["00", "01"], "001")).toBe("01");
    expect(referenceStem(["00", "01"], "7")).toBeUndefined();
    expect(referenceStem(["a", "b"], "a")).toBe("a");
  });

  it("scores predictions against hand-computed IoU and accuracy", async () => {
    const preds = join(dir, "preds");
    // bird: GT 01 has x<2 (8 px), 02 has x<6 (24 px). Predictions: 01 → x<4 (I=8, U=16);
    // 02 → x<3 (I=12, U=24). IoU = 20/40 = 0.5, Acc = 20/32 = 0.625.
    await mkdir(join(preds, "bird"), { recursive: true });
    await writeFile(join(preds, "bird", "01.png"), await maskPng(4));
    await writeFile(join(preds, "bird", "02.png"), await maskPng(3));
    const result = await evaluatePerSeg({
      dir,
      objects: ["bird"],
      predictions: { kind: "files", dir: preds },
    });
    expect(result.source).toBe("files");
    const bird = result.objects[0]!;
    expect(bird.photos.map((p) => [p.name, p.intersection, p.union, p.target])).toEqual([
      ["01", 8, 16, 8],
      ["02", 12, 24, 24],
    ]);
    expect(bird.iou).toBeCloseTo(0.5, 9);
    expect(bird.accuracy).toBeCloseTo(0.625, 9);
    expect(result.mIoU).toBeCloseTo(0.5, 9);
    await expect(
      evaluatePerSeg({ dir, objects: ["box00"], predictions: { kind: "files", dir: preds } }),
    ).rejects.toThrow(/Missing prediction .*box00.*01\.png for box00\/01/);
  });

  it("gives 100 % with the ground truth as predictions", async () => {
    const result = await evaluatePerSeg({
      dir,
      predictions: { kind: "files", dir: join(dir, "Annotations") },
    });
    expect(result.objects.map((o) => o.name)).toEqual(["bird", "box00"]);
    expect(result.mIoU).toBeCloseTo(1, 9);
    expect(result.mAcc).toBeCloseTo(1, 9);
  });
});

describe("perseg-mini fixture", () => {
  const present = haveSharedFixtures("perseg-eval ground truth as predictions");
  it.skipIf(!present)("scores 100.0 mIoU / mAcc with the annotations as predictions", async () => {
    const result = await evaluatePerSeg({
      dir: persegMiniDir,
      predictions: { kind: "files", dir: join(persegMiniDir, "Annotations") },
    });
    expect(result.objects.map((o) => o.name)).toEqual([...persegObjects]);
    expect(result.objects.every((o) => o.photos.length === 2)).toBe(true);
    expect((100 * result.mIoU).toFixed(1)).toBe("100.0");
    expect((100 * result.mAcc).toFixed(1)).toBe("100.0");
  });
});
