// What `review` decides, as `prepare` honours it (OUT/.persam/review/): a mask override replaces the
// prediction of its photo only and is ignored, with a note and a flag, once the photo's bytes change;
// include / exclude decide what is kept; a reference chosen in review is PerSAM's reference when the
// caller gives none; the run record says how the set was made. Tiny random model, generated photos.

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readRunRecord, recordedParams } from "../src/dataset/prepare/run-record.js";
import {
  type PrepareParams,
  type PrepareResult,
  planPrepare,
  prepare,
  runPrepare,
} from "../src/dataset/prepare.js";
import { readState } from "../src/dataset/prepare-state.js";
import {
  REVIEW_DECISIONS_FILE,
  type ReviewDecisions,
  readReviewDecisions,
  storeReviewMask,
  writeReviewDecisions,
} from "../src/dataset/review-decisions.js";
import { decodeMaskPng } from "../src/image/mask-png.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../src/segment/sam/embedding-cache.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { hashFile } from "../src/util/hash-file.js";
import { scene, writeJpeg, writeSceneMask } from "./support/photos.js";

let root: string;
let model: SamModel;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-review-decisions-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
});

afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

/** Three scene photos (96×72), the first with its mask beside it (a given reference). */
async function sceneFolder(): Promise<string> {
  const dir = join(root, `set-${++counter}`);
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < 3; i++) {
    await writeJpeg(join(dir, `photo-${i + 1}.jpg`), scene({ at: [0.35 + 0.1 * i, 0.5], seed: i }));
  }
  await writeSceneMask(join(dir, "photo-1.mask.png"), { at: [0.35, 0.5] });
  return dir;
}

function params(inputDir: string, extra: Partial<PrepareParams> = {}): PrepareParams {
  return {
    inputDir,
    modelFiles: model.files,
    className: "ball",
    keepDoubtful: true,
    resolution: 64,
    embeddingCache: new EmbeddingCache({ dir: `${inputDir}.embeddings` }),
    ...extra,
  };
}

/** A 96×72 mask: a rectangle. */
function rectangle(x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const mask = new Uint8Array(96 * 72);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) mask[y * 96 + x] = 1;
  return mask;
}

async function sha256Of(path: string): Promise<string> {
  return (await hashFile(path)).sha256;
}

async function metadataFiles(outDir: string): Promise<string[]> {
  const text = await readFile(join(outDir, "metadata.jsonl"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => (JSON.parse(l) as { file_name: string }).file_name);
}

async function decide(outDir: string, change: (d: ReviewDecisions) => Promise<void> | void): Promise<void> {
  const { decisions } = await readReviewDecisions(outDir);
  await change(decisions);
  await writeReviewDecisions(outDir, decisions);
}

async function photoSha(outDir: string, stem: string): Promise<string> {
  return (await readState(outDir)).state.photos[stem]!.sha256;
}

describe("prepare honours the review's decisions", () => {
  it("a mask override replaces the prediction of its photo only, without opening the model", async () => {
    const dir = await sceneFolder();
    const first = await prepare({ ...params(dir), model });
    const outDir = first.outDir;
    const before = await sha256Of(join(outDir, ".persam/masks/photo-3.png"));
    const override = rectangle(10, 10, 40, 30);
    await decide(outDir, async (d) => {
      d.photos["photo-2"] = {
        photoSha256: await photoSha(outDir, "photo-2"),
        file: "photo-2.jpg",
        override: await storeReviewMask({ outDir, name: "photo-2", mask: override, width: 96, height: 72 }),
      };
    });

    const plan = await planPrepare(params(dir));
    expect(plan.entries.map((e) => [e.stem, e.action, e.reason])).toEqual([
      ["photo-1", "skip", "finished, nothing changed"],
      ["photo-2", "segment", "mask override added in review"],
      ["photo-3", "skip", "finished, nothing changed"],
    ]);
    expect(plan.needsModel).toBe(false);
    // No model: the override needs neither the encoder nor the decoder.
    const result = await runPrepare({ plan });
    expect(result.counts.segmented).toBe(1);
    expect(result.counts.encoded).toBe(0);

    const seg = (await readState(outDir)).state.photos["photo-2"]!.segmentation!;
    expect(seg).toMatchObject({ confidence: 1, doubtful: false, flags: ["override"], area: 30 * 20 });
    const stored = decodeMaskPng(await readFile(join(outDir, ".persam/masks/photo-2.png")))!;
    expect(Buffer.from(stored.mask).equals(Buffer.from(override))).toBe(true);
    // The training mask is cut from it: white where the rectangle is, black elsewhere.
    expect(await metadataFiles(outDir)).toContain("images/photo-2.png");
    const row = (await readFile(join(outDir, "metadata.jsonl"), "utf8"))
      .split("\n")
      .map((l) => (l ? JSON.parse(l) : undefined))
      .find((r) => r?.file_name === "images/photo-2.png");
    expect(row).toMatchObject({ mask_file_name: "masks/photo-2.png", confidence: 1, flags: ["override"] });
    // The other photos kept their masks.
    expect(await sha256Of(join(outDir, ".persam/masks/photo-3.png"))).toBe(before);

    // A rerun redoes nothing; removing the override redoes that photo with PerSAM.
    const again = await planPrepare(params(dir));
    expect(again.entries.every((e) => e.action === "skip")).toBe(true);
    await decide(outDir, (d) => {
      delete d.photos["photo-2"];
    });
    const removed = await planPrepare(params(dir));
    expect(removed.entries.find((e) => e.stem === "photo-2")).toMatchObject({
      action: "segment",
      reason: "mask override removed in review",
    });
    expect(removed.needsModel).toBe(true);
    await runPrepare({ plan: removed, model });
    const back = (await readState(outDir)).state.photos["photo-2"]!.segmentation!;
    expect(back.flags).not.toContain("override");
  });

  it("ignores an override with a note and a flag once its photo's bytes change", async () => {
    const dir = await sceneFolder();
    const { outDir } = await prepare({ ...params(dir), model });
    const override = await storeReviewMask({
      outDir,
      name: "photo-3",
      mask: rectangle(0, 0, 20, 20),
      width: 96,
      height: 72,
    });
    await decide(outDir, async (d) => {
      d.photos["photo-3"] = { photoSha256: await photoSha(outDir, "photo-3"), file: "photo-3.jpg", override };
    });
    await prepare({ ...params(dir), model });
    expect((await readState(outDir)).state.photos["photo-3"]!.segmentation!.flags).toEqual(["override"]);

    // The same photo, taken again: other bytes.
    await writeJpeg(join(dir, "photo-3.jpg"), scene({ at: [0.6, 0.4], seed: 9 }));
    const warnings: string[] = [];
    const result: PrepareResult = await prepare({
      ...params(dir, { onEvent: (e) => e.type === "warning" && warnings.push(e.message) }),
      model,
    });
    expect(warnings).toContain(
      "the mask drawn in review for photo-3.jpg is ignored: the photo changed since (review it again)",
    );
    const seg = (await readState(outDir)).state.photos["photo-3"]!.segmentation!;
    expect(seg.flags).toContain("override-outdated");
    expect(seg.flags).not.toContain("override");
    expect(seg.mask.sha256).not.toBe(override.sha256);
    expect(result.report!.photos.find((p) => p.stem === "photo-3")!.flags).toContain("override-outdated");
    expect(result.photos.find((p) => p.stem === "photo-3")!.flags).toContain("override-outdated");
  });

  it("include keeps a doubtful photo in the set, exclude takes any photo out", async () => {
    const dir = await sceneFolder();
    const first = await prepare({ ...params(dir, { keepDoubtful: false }), model });
    const { outDir } = first;
    // The tiny random model's masks of the photos without a given mask are doubtful; the reference
    // photo keeps the mask given for it.
    const excluded = first.photos.find((p) => p.status === "excluded")!;
    expect(excluded).toBeDefined();
    expect(first.photos.find((p) => p.stem === "photo-1")!.status).toBe("ok");
    expect(await metadataFiles(outDir)).not.toContain(`images/${excluded.stem}.png`);

    await decide(outDir, async (d) => {
      d.photos[excluded.stem] = {
        photoSha256: await photoSha(outDir, excluded.stem),
        file: excluded.file,
        decision: "include",
      };
      d.photos["photo-1"] = {
        photoSha256: await photoSha(outDir, "photo-1"),
        file: "photo-1.jpg",
        decision: "exclude",
      };
    });
    const plan = await planPrepare(params(dir, { keepDoubtful: false }));
    expect(plan.entries.find((e) => e.stem === "photo-1")).toMatchObject({
      action: "exclude",
      reason: "excluded in review",
    });
    expect(plan.entries.find((e) => e.stem === excluded.stem)!.action).toBe("outputs");
    const second = await runPrepare({ plan, model });
    const files = await metadataFiles(outDir);
    expect(files).toContain(`images/${excluded.stem}.png`);
    expect(files).not.toContain("images/photo-1.png");
    expect(second.photos.find((p) => p.stem === "photo-1")).toMatchObject({
      status: "excluded",
      reason: "excluded in review; left out of the training set",
    });
    expect(second.photos.find((p) => p.stem === excluded.stem)!.reason).toMatch(
      /kept \(included in review\)$/,
    );
  });

  it("takes the reference chosen in review when the caller gives none", async () => {
    const dir = await sceneFolder();
    const { outDir } = await prepare({ ...params(dir), model });
    const mask = rectangle(50, 20, 80, 55);
    await decide(outDir, async (d) => {
      d.reference = {
        stem: "photo-3",
        photoSha256: await photoSha(outDir, "photo-3"),
        file: "photo-3.jpg",
        mask: await storeReviewMask({ outDir, name: "reference", mask, width: 96, height: 72 }),
      };
    });
    const plan = await planPrepare(params(dir));
    expect(plan.params.references).toEqual([
      {
        photo: join(dir, "photo-3.jpg"),
        maskPath: expect.stringMatching(/\.persam\/review\/masks\/reference\.[0-9a-f]{12}\.png$/),
      },
    ]);
    expect(plan.userReferences).toBeUndefined();
    const result = await runPrepare({ plan, model });
    expect(result.report!.reference).toMatchObject({ stem: "photo-3", method: "mask-file" });
    const seg = (await readState(outDir)).state.photos["photo-3"]!.segmentation!;
    expect(seg.flags).toEqual(["reference"]);
    expect(
      Buffer.from(decodeMaskPng(await readFile(join(outDir, ".persam/masks/photo-3.png")))!.mask),
    ).toEqual(Buffer.from(mask));
    // A reference the caller gives wins over the review's.
    const given = await planPrepare(
      params(dir, {
        references: [{ photo: join(dir, "photo-1.jpg"), maskPath: join(dir, "photo-1.mask.png") }],
      }),
    );
    expect(given.params.references).toEqual([
      { photo: join(dir, "photo-1.jpg"), maskPath: join(dir, "photo-1.mask.png") },
    ]);
  });

  it("ignores an unreadable decisions file with a note, and a damaged override mask", async () => {
    const dir = await sceneFolder();
    const { outDir } = await prepare({ ...params(dir), model });
    await mkdir(join(outDir, ".persam/review"), { recursive: true });
    await writeFile(join(outDir, REVIEW_DECISIONS_FILE), "{ not json");
    const warnings: string[] = [];
    const plan = await planPrepare(
      params(dir, { onEvent: (e) => e.type === "warning" && warnings.push(e.message) }),
    );
    expect(warnings).toEqual([
      `${join(outDir, REVIEW_DECISIONS_FILE)} is not valid JSON; the review's decisions are ignored`,
    ]);
    expect(plan.entries.every((e) => e.action === "skip")).toBe(true);

    const record = await storeReviewMask({
      outDir,
      name: "photo-2",
      mask: rectangle(1, 1, 5, 5),
      width: 96,
      height: 72,
    });
    await writeReviewDecisions(outDir, {
      version: 1,
      photos: {
        "photo-2": { photoSha256: await photoSha(outDir, "photo-2"), file: "photo-2.jpg", override: record },
      },
    });
    await writeFile(join(outDir, ".persam/review", record.file), "damaged");
    const notes: string[] = [];
    const damaged = await planPrepare(
      params(dir, { onEvent: (e) => e.type === "warning" && notes.push(e.message) }),
    );
    expect(notes).toEqual([
      `the mask drawn in review for photo-2.jpg is ignored: its file .persam/review/${record.file} is missing or damaged`,
    ]);
    expect(damaged.entries.every((e) => e.action === "skip")).toBe(true);
  });

  it("records how the set was made, for review's rebuild", async () => {
    const dir = await sceneFolder();
    const { outDir } = await prepare({ ...params(dir, { background: "gray", feather: 3 }), model });
    const { record } = await readRunRecord(outDir);
    expect(record).toMatchObject({
      version: 1,
      inputDir: dir,
      model: {
        encoderPath: model.files.encoderPath,
        decoderPath: model.files.decoderPath,
        label: "tiny-test",
      },
    });
    expect(recordedParams(record!)).toEqual({
      references: [],
      className: "ball",
      keepDoubtful: true,
      resolution: 64,
      background: "gray",
      feather: 3,
    });
    // The decisions file is not a file of the set: push never sees .persam/.
    expect((await readState(outDir)).state.manifest!.files).not.toHaveProperty(".persam/run.json");
  });
});
