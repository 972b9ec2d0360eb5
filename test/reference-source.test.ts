// resolveReference on the tiny random-weight model with generated photos and masks: every source
// (mask file, <stem>.mask.png, clicks, several references, automatic) and the user errors.

import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { loadRgb } from "../src/image/image-io.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import {
  describeReference,
  maskPathBeside,
  resolveReference,
} from "../src/segment/persam/reference-source.js";
import { computeReferenceTarget } from "../src/segment/persam/target-embedding.js";
import { PhotoEncoder } from "../src/segment/sam/photo-encoder.js";
import { lowResToOriginal, thresholdMask } from "../src/segment/sam/postprocess.js";
import { predictMasks } from "../src/segment/sam/predict.js";
import { referenceMaskGrid } from "../src/segment/sam/preprocess.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { H, rectMask, W, writePng, writeSquarePhotos } from "./support/square-photos.js";

let dir: string;
let model: SamModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "persam-refsrc-"));
  const files = await writeTinyModel({ dir: join(dir, "model") });
  model = await SamModel.load({
    files: { encoderPath: files.encoderPath, decoderPath: files.decoderPath, label: "tiny test model" },
  });
  await writeSquarePhotos(dir);
  await writePng(join(dir, "a-mask.png"), rectMask(W, H, 20, 10, 60, 50));
  await writePng(join(dir, "b-mask.png"), rectMask(W, H, 40, 16, 76, 52));
});

afterAll(async () => {
  await model?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("resolveReference: mask files", () => {
  it("reads a 0/255 mask as PerSeg red 128 and builds the PerSAM target from its grid", async () => {
    const r = await resolveReference({
      model,
      references: [{ photo: join(dir, "a.png"), maskPath: join(dir, "a-mask.png") }],
    });
    expect(r.mode).toBe("persam");
    expect(r.references).toHaveLength(1);
    const ref = r.references[0]!;
    expect(ref).toMatchObject({
      source: "mask-file",
      maskKind: "binary",
      width: W,
      height: H,
      maskArea: 40 * 40,
    });
    // The red-128 rule: a cell needs all four taps inside the mask (the 255 rule would need two).
    const red = new Uint8Array(W * H);
    for (let j = 0; j < red.length; j++) red[j] = ref.mask[j] ? 128 : 0;
    expect([...ref.grid]).toEqual([...referenceMaskGrid(red, W, H)]);
    expect(ref.gridCells).toBeGreaterThan(0);
    expect(r.target.variant).toBe("persam");
    expect(r.target.cellCounts).toEqual([ref.gridCells]);
    expect(r.persamF).toBeUndefined();
    const described = describeReference(r) as { references: { source: string; gridCells: number }[] };
    expect(described.references[0]).toMatchObject({ source: "mask-file", gridCells: ref.gridCells });
  });

  it("refuses a mask whose size differs from the photo's, naming both files and sizes", async () => {
    const small = await writePng(join(dir, "small-mask.png"), rectMask(50, 40, 5, 5, 30, 30), 50, 40);
    const error = await resolveReference({
      model,
      references: [{ photo: join(dir, "a.png"), maskPath: small }],
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toBe(
      `The mask ${small} is 50×40 pixels but its photo ${join(dir, "a.png")} is 96×64`,
    );
  });

  it("refuses an empty mask and a mask too small for any 64×64 cell", async () => {
    const empty = await writePng(join(dir, "empty-mask.png"), new Uint8Array(W * H));
    await expect(
      resolveReference({ model, references: [{ photo: join(dir, "a.png"), maskPath: empty }] }),
    ).rejects.toThrow(/empty-mask\.png has no foreground pixels/);
    const tiny = await writePng(join(dir, "tiny-mask.png"), rectMask(W, H, 30, 30, 31, 31));
    await expect(
      resolveReference({ model, references: [{ photo: join(dir, "a.png"), maskPath: tiny }] }),
    ).rejects.toThrow(/tiny-mask\.png covers no cell of SAM's 64×64 feature grid/);
  });

  it("uses <stem>.mask.png beside a photo, for a bare --ref and when no reference is given", async () => {
    const folder = join(dir, "convention");
    await rm(folder, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(folder));
    const photoPath = join(folder, "cat.png");
    await copyFile(join(dir, "a.png"), photoPath);
    expect(maskPathBeside(photoPath)).toBe(join(folder, "cat.mask.png"));
    await expect(resolveReference({ model, references: [{ photo: photoPath }] })).rejects.toThrow(
      /No mask for the reference photo .*cat\.png/,
    );
    await copyFile(join(dir, "a-mask.png"), join(folder, "cat.mask.png"));
    const bare = await resolveReference({ model, references: [{ photo: photoPath }] });
    expect(bare.references[0]).toMatchObject({
      source: "mask-beside-photo",
      maskPath: join(folder, "cat.mask.png"),
    });
    const implicit = await resolveReference({
      model,
      references: [],
      photos: [join(dir, "b.png"), photoPath],
    });
    expect(implicit.references.map((r) => [r.photo, r.source])).toEqual([[photoPath, "mask-beside-photo"]]);
    expect(implicit.auto).toBeUndefined();
  });
});

describe("resolveReference: clicks, several references, automatic, PerSAM-F", () => {
  it("draws the mask with plain SAM from a click and applies the red-128 grid rule to it", async () => {
    const r = await resolveReference({
      model,
      references: [{ photo: join(dir, "a.png"), clicks: [{ point: [40, 30], label: 1 }] }],
    });
    const ref = r.references[0]!;
    expect(ref.source).toBe("prompt");
    expect(ref.clicks).toEqual([{ point: [40, 30], label: 1 }]);
    expect(ref.promptScore).toEqual(expect.any(Number));
    expect(ref.maskArea).toBeGreaterThan(0);
    const red = new Uint8Array(W * H);
    for (let j = 0; j < red.length; j++) red[j] = ref.mask[j] ? 128 : 0;
    expect([...ref.grid]).toEqual([...referenceMaskGrid(red, W, H)]);
  });

  it("refuses a click outside the photo and a mask together with clicks", async () => {
    await expect(
      resolveReference({
        model,
        references: [{ photo: join(dir, "a.png"), clicks: [{ point: [96, 10], label: 1 }] }],
      }),
    ).rejects.toThrow(/The reference prompt 96,10 lies outside .*a\.png \(96×64 pixels\)/);
    await expect(
      resolveReference({
        model,
        references: [{ photo: join(dir, "a.png"), maskPath: join(dir, "a-mask.png"), box: [1, 1, 20, 20] }],
      }),
    ).rejects.toThrow(/has both a mask file and clicks\/box/);
  });

  it("averages the target vectors of several references", async () => {
    const encoder = new PhotoEncoder({ model });
    const a = { photo: join(dir, "a.png"), maskPath: join(dir, "a-mask.png") };
    const b = { photo: join(dir, "b.png"), maskPath: join(dir, "b-mask.png") };
    const both = await resolveReference({ model, encoder, references: [a, b] });
    const [ra, rb] = both.references;
    expect(both.target.cellCounts).toEqual([ra!.gridCells, rb!.gridCells]);
    const ta = computeReferenceTarget({
      references: [{ embedding: ra!.encoded.encoded.embedding, grid: ra!.grid }],
    });
    const tb = computeReferenceTarget({
      references: [{ embedding: rb!.encoded.encoded.embedding, grid: rb!.grid }],
    });
    for (let ch = 0; ch < ta.targetEmbedding.length; ch++) {
      expect(both.target.targetEmbedding[ch]).toBeCloseTo(
        (ta.targetEmbedding[ch]! + tb.targetEmbedding[ch]!) / 2,
        5,
      );
    }
    // The shared encoder served the second resolution from memory.
    const again = await resolveReference({ model, encoder, references: [a] });
    expect(again.references[0]!.encoded.cached).toBe(true);
    expect([...again.target.targetFeat]).toEqual([...ta.targetFeat]);
  });

  it("chooses a reference automatically when nothing is given", async () => {
    const photos = [join(dir, "a.png"), join(dir, "b.png"), join(dir, "c.jpg")];
    const r = await resolveReference({ model, references: [], photos });
    expect(r.references).toHaveLength(1);
    expect(r.references[0]!.source).toBe("auto");
    expect(photos).toContain(r.references[0]!.photo);
    expect(r.auto!.photoIndex).toBe(photos.indexOf(r.references[0]!.photo));
    expect(r.auto!.candidates.length).toBeGreaterThan(0);
    expect(Number.isFinite(r.auto!.score)).toBe(true);
    expect(r.references[0]!.gridCells).toBeGreaterThan(0);
  });

  it("adapts PerSAM-F on the reference and reports λ and the loss history", async () => {
    const r = await resolveReference({
      model,
      mode: "persam-f",
      trainer: { steps: 20, logEvery: 10 },
      references: [{ photo: join(dir, "a.png"), maskPath: join(dir, "a-mask.png") }],
    });
    expect(r.target.variant).toBe("persam-f");
    const f = r.persamF!;
    expect(f.adaptations).toHaveLength(1);
    expect(f.lambdas).toEqual(f.adaptations[0]!.lambdas);
    expect(f.lambdas.reduce((s, l) => s + l, 0)).toBeCloseTo(1, 5);
    expect(f.adaptations[0]!.training.lossHistory.map((h) => h.step)).toEqual([0, 10, 20]);
    expect(r.target).toBe(f.adaptations[0]!.target);
  });
});

describe("predictMasks", () => {
  it("gives each selected mask exactly as thresholdMask(lowResToOriginal(lowRes)) would", async () => {
    const pixels = await loadRgb(join(dir, "a.png"));
    const image = await model.encode(pixels);
    for (const multimask of [true, false]) {
      const prediction = await predictMasks({
        image,
        decoder: model.decoder,
        prompt: { clicks: [{ point: [40, 30], label: 1 }], box: [20, 10, 60, 50] },
        multimask,
      });
      expect(prediction.masks.length).toBe(multimask ? 3 : 1);
      for (const m of prediction.masks) {
        const literal = thresholdMask(lowResToOriginal(m.lowRes, 1, image.inputSize, image.originalSize));
        expect(Buffer.from(m.mask).equals(Buffer.from(literal))).toBe(true);
      }
    }
  });
});
