// Integration tests of prepare() on the tiny random model with generated photos in temp folders.

import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type PrepareEvent,
  type PrepareParams,
  planPrepare,
  prepare,
  runPrepare,
} from "../src/dataset/prepare.js";
import { UserError } from "../src/errors.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../src/segment/sam/embedding-cache.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { haveSharedFixtures, persegMiniDir, persegPath } from "./support/fixtures.js";
import {
  hashTree,
  imageInfo,
  quadrantOf,
  quadrants,
  readPixels,
  scene,
  storedForOrientation,
  write16BitPng,
  writeCmykJpeg,
  writeEmptyFile,
  writeFakeJpeg,
  writeGreyPng,
  writeJpeg,
  writeRgbaPng,
  writeSceneMask,
  writeTruncatedJpeg,
} from "./support/photos.js";

let root: string;
let model: SamModel;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-prepare-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
});

afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

/**
 * A fresh photo folder `<root>/<name>-N/` with `count` scene JPEGs (disc in different places) and,
 * with `withMask`, `photo-1.mask.png` beside the first (a given reference: no automatic choice, faster).
 */
async function sceneFolder(name: string, count: number, withMask = false): Promise<string> {
  const dir = join(root, `${name}-${++counter}`);
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    await writeJpeg(join(dir, `photo-${i + 1}.jpg`), scene({ at: [0.35 + 0.1 * i, 0.5], seed: i }));
  }
  if (withMask) await writeSceneMask(join(dir, "photo-1.mask.png"), { at: [0.35, 0.5] });
  return dir;
}

/** An embedding cache of the photo folder's own, so that each test counts its own encoder runs. */
const cacheOf = (inputDir: string) => new EmbeddingCache({ dir: `${inputDir}.embeddings` });

function run(inputDir: string, extra: Partial<PrepareParams> = {}) {
  return prepare({
    inputDir,
    model,
    className: "ball",
    keepDoubtful: true,
    resolution: 64,
    embeddingCache: cacheOf(inputDir),
    ...extra,
  });
}

/** Per-photo training files and metadata of an output folder with their hashes. */
async function trainingFiles(outDir: string): Promise<Map<string, string>> {
  const all = await hashTree(outDir);
  return new Map(
    [...all].filter(
      ([k]) =>
        /^(images|masks|weights|rgba|captions|onetrainer)\//.test(k) ||
        ["metadata.jsonl", "dreambooth.json", "kohya.toml", "train.sh", "train_kohya.sh"].includes(k),
    ),
  );
}

function actions(events: PrepareEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) if (e.type === "photo") out[e.result.action] = (out[e.result.action] ?? 0) + 1;
  return out;
}

describe("prepare: layout and pixels", () => {
  it("writes aligned images, masks, weights and rgba, valid metadata and every export, inputs untouched", async () => {
    const dir = await sceneFolder("layout", 3);
    const before = await hashTree(dir);
    const result = await run(dir, { bgWeight: 0.2 });
    expect(result.outDir).toBe(`${dir}.persam`);
    expect(result.counts.found).toBe(3);
    expect(result.counts.kept).toBe(3);
    expect(result.exitCode).toBe(0);
    expect(await hashTree(dir)).toEqual(before);

    const out = result.outDir;
    for (const f of [
      "metadata.jsonl",
      "dreambooth.json",
      "train.sh",
      "kohya.toml",
      "train_kohya.sh",
      "onetrainer/concepts.json",
      "onetrainer/train-config.json",
      "README.md",
      "report.html",
      "report.json",
      ".persam/state.json",
    ]) {
      expect((await stat(join(out, f))).size, f).toBeGreaterThan(0);
    }
    const rows = (await readFile(join(out, "metadata.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row.file_name).toMatch(/^images\/photo-\d\.png$/);
      expect(row.text).toBe("a photo of sks ball");
      expect(row.confidence).toBeGreaterThanOrEqual(0);
      const stem = row.file_name.slice("images/".length, -4);
      for (const key of ["file_name", "mask_file_name", "weight_file_name", "rgba_file_name"]) {
        expect((await stat(join(out, row[key]))).isFile()).toBe(true);
      }
      const dims = await Promise.all(
        ["images", "masks", "weights", "rgba"].map((f) => imageInfo(join(out, f, `${stem}.png`))),
      );
      for (const d of dims) expect([d.width, d.height]).toEqual([64, 64]);
      expect(dims.map((d) => d.channels)).toEqual([3, 1, 1, 4]);
      const mask = await readPixels(join(out, "masks", `${stem}.png`));
      expect(new Set(mask.data)).toSatisfy((s: Set<number>) => [...s].every((v) => v === 0 || v === 255));
      const weights = await readPixels(join(out, "weights", `${stem}.png`));
      const floor = Math.floor(0.2 * 255);
      for (const v of weights.data) {
        expect(v).toBeGreaterThanOrEqual(floor);
        expect(v).toBeLessThanOrEqual(255);
      }
      expect(await readFile(join(out, "rgba", `${stem}.txt`), "utf8")).toBe("a photo of sks ball");
      expect((await stat(join(out, "onetrainer", `${stem}-masklabel.png`))).isFile()).toBe(true);
    }
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
    expect(report.photos).toHaveLength(3);
    // Every stage outside the encoder is timed: state mask, outputs, thumbnails, state update.
    for (const p of report.photos as { timingsMs: Record<string, number> }[]) {
      for (const key of ["maskWriteMs", "writeMs", "thumbsMs", "stateMs", "totalMs"]) {
        expect(p.timingsMs[key], key).toBeGreaterThanOrEqual(0);
      }
    }
    // The state masks are 1-bit PNGs that sharp reads as grey 0/255.
    const stateMasks = await readdir(join(out, ".persam", "masks"));
    expect(stateMasks).toHaveLength(3);
    for (const name of stateMasks) {
      const meta = await sharp(join(out, ".persam", "masks", name)).metadata();
      expect([meta.format, meta.space, meta.channels], name).toEqual(["png", "b-w", 1]);
    }
    expect(result.summary).toContain("3 photos");
  });

  it("bakes every EXIF orientation 1–8 into upright pixels", async () => {
    const dir = join(root, `exif-${++counter}`);
    await mkdir(dir);
    const upright = quadrants(80, 60);
    for (let o = 1; o <= 8; o++) await writeJpeg(join(dir, `o${o}.jpg`), storedForOrientation(upright, o), o);
    await writeSceneMask(join(dir, "o1.mask.png"), { width: 80, height: 60 });
    const result = await run(dir, { crop: "none", background: "keep" });
    expect(result.counts.kept).toBe(8);
    for (let o = 1; o <= 8; o++) {
      const img = await readPixels(join(result.outDir, "images", `o${o}.png`));
      expect([img.width, img.height], `orientation ${o}`).toEqual([85, 64]);
      const at = (fx: number, fy: number): number => {
        const i = (Math.floor(fy * img.height) * img.width + Math.floor(fx * img.width)) * img.channels;
        return quadrantOf(img.data[i]!, img.data[i + 1]!, img.data[i + 2]!);
      };
      expect([at(0.25, 0.25), at(0.75, 0.25), at(0.25, 0.75), at(0.75, 0.75)], `orientation ${o}`).toEqual([
        0, 1, 2, 3,
      ]);
    }
  });
});

describe("prepare: unusual and bad files", () => {
  it("processes CMYK, 16-bit, grey and RGBA photos and skips broken files with one line each (exit 2)", async () => {
    const dir = join(root, `odd-${++counter}`);
    await mkdir(dir);
    await writeCmykJpeg(join(dir, "cmyk.jpg"), scene({ seed: 1 }));
    await write16BitPng(join(dir, "deep.png"), scene({ seed: 2, at: [0.4, 0.4] }));
    await writeGreyPng(join(dir, "grey.png"), scene({ seed: 3, at: [0.6, 0.5] }));
    await writeRgbaPng(join(dir, "alpha.png"), scene({ seed: 4, at: [0.5, 0.6] }));
    await writeTruncatedJpeg(join(dir, "truncated.jpg"), scene({ seed: 5, width: 200, height: 150 }));
    await writeEmptyFile(join(dir, "empty.jpg"));
    await writeFakeJpeg(join(dir, "fake.jpg"));
    const before = await hashTree(dir);
    const result = await run(dir);
    expect(await hashTree(dir)).toEqual(before);
    expect(result.exitCode).toBe(2);
    const byFile = new Map(result.photos.map((p) => [p.file, p]));
    for (const f of ["cmyk.jpg", "deep.png", "grey.png", "alpha.png"]) {
      expect(byFile.get(f)?.status, f).not.toBe("failed");
      expect(
        (await imageInfo(join(result.outDir, "images", `${f.replace(/\.\w+$/, "")}.png`))).channels,
      ).toBe(3);
    }
    for (const bad of ["truncated.jpg", "empty.jpg", "fake.jpg"]) {
      expect(
        result.warnings.filter((w) => w.includes(bad)),
        bad,
      ).toHaveLength(1);
    }
    expect(byFile.get("truncated.jpg")?.status).toBe("failed");
    expect(result.counts.kept).toBe(4);
  });

  it("refuses an empty folder and a folder without photos with a UserError", async () => {
    const empty = join(root, `empty-${++counter}`);
    await mkdir(empty);
    await expect(run(empty)).rejects.toThrow(UserError);
    await expect(run(empty)).rejects.toThrow(/No photos found/);
    const junk = join(root, `junk-${++counter}`);
    await mkdir(junk);
    await writeFakeJpeg(join(junk, "a.jpg"));
    const error = await run(junk).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).toLine()).toMatch(
      /^No photos found in .* — skipped .*a\.jpg is not an image/,
    );
  });

  it("works with a single photo (it is its own reference)", async () => {
    const dir = await sceneFolder("single", 1);
    const result = await run(dir);
    expect(result.counts.kept).toBe(1);
    expect(result.report?.reference.file).toBe("photo-1.jpg");
  });

  it("leaves doubtful photos out of the training set unless told to keep them", async () => {
    const dir = await sceneFolder("doubtful", 3);
    const strict = await run(dir, { keepDoubtful: false });
    const excluded = strict.photos.filter((p) => p.status === "excluded");
    for (const p of excluded) {
      expect(p.reason).toMatch(/doubtful.*--keep-doubtful/);
      await expect(stat(join(strict.outDir, "images", `${p.stem}.png`))).rejects.toThrow();
    }
    expect(strict.exitCode).toBe(excluded.length > 0 ? 2 : 0);
    const kept = await run(dir, { keepDoubtful: true });
    expect(kept.counts.kept).toBe(3);
    // Keeping them again needs no segmentation: masks are reused.
    expect(kept.counts.segmented).toBe(0);
  });
});

describe("prepare: resume", () => {
  it("encodes each photo once, with --force too, when the automatic reference encoded them all", async () => {
    // The reference step encodes every photo; prepare keeps only 2 embeddings in memory, so the
    // per-photo step reads the others back from this run's embedding cache instead of encoding again.
    const dir = await sceneFolder("auto-embeddings", 4);
    const first = await run(dir);
    expect(first.counts).toMatchObject({ encoded: 4, segmented: 4 });
    const forced = await run(dir, { force: true });
    expect(forced.counts).toMatchObject({ encoded: 4, segmented: 4 });
  });

  it("encodes each photo once when the embedding cache is off and the automatic reference encoded them all", async () => {
    // Nothing is kept on disk (size 0): the per-photo step takes the reference step's embeddings
    // from the run's memory instead of encoding every photo a second time.
    const dir = await sceneFolder("auto-no-cache", 4);
    const off = await run(dir, {
      embeddingCache: new EmbeddingCache({ dir: `${dir}.embeddings`, maxBytes: 0 }),
    });
    expect(off.counts).toMatchObject({ encoded: 4, segmented: 4 });
  });

  it("plans the model only when something needs segmenting (not for unchanged or outputs-only runs)", async () => {
    const dir = await sceneFolder("lazy-model", 2);
    let loads = 0;
    const planned = async (extra: Partial<PrepareParams> = {}) => {
      const plan = await planPrepare({
        inputDir: dir,
        modelFiles: model.files,
        embeddingCache: cacheOf(dir),
        className: "ball",
        keepDoubtful: true,
        resolution: 64,
        ...extra,
      });
      if (plan.needsModel) loads++;
      return runPrepare({ plan, model: plan.needsModel ? model : undefined });
    };
    const first = await planned();
    expect(first.counts).toMatchObject({ segmented: 2 });
    expect(loads).toBe(1);
    const unchanged = await planned();
    expect(unchanged.counts).toMatchObject({ unchanged: 2, segmented: 0 });
    const outputsOnly = await planned({ resolution: 96 });
    expect(outputsOnly.counts).toMatchObject({ outputsWritten: 2, segmented: 0 });
    expect(loads).toBe(1);
    // The report still names the model and whether it is the test model, without loading it.
    const report = JSON.parse(await readFile(join(`${dir}.persam`, "report.json"), "utf8"));
    expect(report.settings).toMatchObject({ model: "tiny-test", testModel: true });
    await planned({ force: true });
    expect(loads).toBe(2);
  });

  it("skips finished photos, redoes only outputs for a new background, everything with force", async () => {
    const dir = await sceneFolder("resume", 3, true);
    const first = await run(dir);
    expect(first.counts.segmented).toBe(3);
    expect(first.counts.encoded).toBe(3);
    const masksBefore = await hashTree(join(first.outDir, ".persam", "masks"));
    const imagesBefore = await hashTree(join(first.outDir, "images"));

    const events: PrepareEvent[] = [];
    const again = await run(dir, { onEvent: (e) => events.push(e) });
    expect(again.counts.encoded).toBe(0);
    expect(again.counts.unchanged).toBe(3);
    expect(actions(events)).toEqual({ skip: 3 });
    expect(events.some((e) => e.type === "encode")).toBe(false);

    const gray = await run(dir, { background: "gray" });
    expect(gray.counts).toMatchObject({ encoded: 0, segmented: 0, outputsWritten: 3 });
    expect(await hashTree(join(first.outDir, ".persam", "masks"))).toEqual(masksBefore);
    expect(await hashTree(join(first.outDir, "images"))).toHaveProperty("size", imagesBefore.size);
    expect(gray.report?.settings.background).toBe("gray");

    const persamF = await run(dir, { background: "gray", mode: "persam-f", fusionTrainer: { steps: 5 } });
    expect(persamF.counts).toMatchObject({ encoded: 0, segmented: 3 });

    const forced = await run(dir, { background: "gray", force: true });
    expect(forced.counts).toMatchObject({ encoded: 3, segmented: 3, outputsWritten: 3 });
  });

  it("decodes each photo once per run, only for outputs when its embedding is cached, none when unchanged", async () => {
    const dir = await sceneFolder("decode-once", 3, true);
    const decodes = async (extra: Partial<PrepareParams> = {}) => {
      const counts: Record<string, number> = {};
      const result = await run(dir, {
        ...extra,
        onEvent: (e) => {
          if (e.type === "decode") {
            const name = e.path.slice(e.path.lastIndexOf("/") + 1);
            counts[name] = (counts[name] ?? 0) + 1;
          }
        },
      });
      return { result, counts };
    };
    const once = { "photo-1.jpg": 1, "photo-2.jpg": 1, "photo-3.jpg": 1 };
    // The reference photo (photo-1) is decoded by the reference step and handed on; the others are
    // decoded once by the per-photo step, for both encoding and outputs.
    const first = await decodes();
    expect(first.result.counts).toMatchObject({ encoded: 3, segmented: 3, outputsWritten: 3 });
    expect(first.counts).toEqual(once);
    const gray = await decodes({ background: "gray" });
    expect(gray.result.counts).toMatchObject({ encoded: 0, segmented: 0, outputsWritten: 3 });
    expect(gray.counts).toEqual(once);
    const unchanged = await decodes({ background: "gray" });
    expect(unchanged.result.counts).toMatchObject({ encoded: 0, unchanged: 3 });
    expect(unchanged.counts).toEqual({});
    // Several workers: still one decode per photo, and the same files.
    const parallel = await decodes({ background: "gray", force: true, jobs: 3 });
    expect(parallel.result.counts).toMatchObject({ encoded: 3, segmented: 3, outputsWritten: 3 });
    expect(parallel.counts).toEqual(once);
  });

  it("decodes a photo whose mask is given once more for its outputs, not twice, when it is not handed on", async () => {
    const dir = await sceneFolder("decode-given", 4, true);
    await writeSceneMask(join(dir, "photo-3.mask.png"), { at: [0.55, 0.5] });
    const counts: Record<string, number> = {};
    const order: string[] = [];
    const result = await run(dir, {
      onEvent: (e) => {
        if (e.type === "photo-start") order.push(e.stem);
        if (e.type === "decode") {
          const name = e.path.slice(e.path.lastIndexOf("/") + 1);
          counts[name] = (counts[name] ?? 0) + 1;
        }
      },
    });
    expect(result.counts).toMatchObject({ segmented: 4, outputsWritten: 4 });
    // Both references are decoded by the reference stage, which hands only the last on. The
    // other one is decoded again for its outputs (its mask is given: nothing encodes it then),
    // ahead of its turn by the photo before it; that decode must be the one its outputs use.
    const handed = order[0]!;
    const other = handed === "photo-1" ? "photo-3" : "photo-1";
    expect(counts).toEqual({ [`${handed}.jpg`]: 1, [`${other}.jpg`]: 2, "photo-2.jpg": 1, "photo-4.jpg": 1 });
  });

  it("an interrupted run, rerun, gives the same files as an uninterrupted one", async () => {
    const dir = await sceneFolder("interrupt", 3, true);
    const whole = await run(dir, { outDir: join(root, `whole-${counter}`) });
    const outDir = join(root, `interrupted-${counter}`);
    const controller = new AbortController();
    await expect(
      run(dir, {
        outDir,
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === "photo") controller.abort();
        },
      }),
    ).rejects.toThrow(/abort/i);
    const partial = await readdir(join(outDir, "images"));
    expect(partial).toHaveLength(1);
    const rerun = await run(dir, { outDir });
    expect(rerun.counts.unchanged).toBe(1);
    expect(rerun.counts.segmented).toBe(2);
    // Every file, the OneTrainer JSON included: none names the output folder.
    const a = await trainingFiles(whole.outDir);
    const b = await trainingFiles(outDir);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) expect(b.get(k), k).toBe(v);
  });

  it("removes the files of a photo that left the folder", async () => {
    const dir = await sceneFolder("removed", 3, true);
    const first = await run(dir);
    await rm(join(dir, "photo-3.jpg"));
    const second = await run(dir);
    expect(second.counts.found).toBe(2);
    expect((await readdir(join(first.outDir, "images"))).sort()).toEqual(["photo-1.png", "photo-2.png"]);
    expect((await readFile(join(first.outDir, "metadata.jsonl"), "utf8")).trim().split("\n")).toHaveLength(2);
  });

  it("--dry-run writes nothing and tells what would be done", async () => {
    const dir = await sceneFolder("dry", 2);
    const plan = await prepare({ inputDir: dir, dryRun: true, className: "ball" });
    expect(plan.plan.map((e) => e.action)).toEqual(["segment", "segment"]);
    await expect(stat(`${dir}.persam`)).rejects.toThrow();
    await run(dir);
    const before = await hashTree(`${dir}.persam`);
    const again = await prepare({
      inputDir: dir,
      dryRun: true,
      className: "ball",
      model,
      keepDoubtful: true,
      resolution: 64,
    });
    expect(again.plan.map((e) => e.action)).toEqual(["skip", "skip"]);
    const changed = await prepare({
      inputDir: dir,
      dryRun: true,
      className: "ball",
      model,
      keepDoubtful: true,
      resolution: 96,
    });
    expect(changed.plan.map((e) => e.reason)).toEqual(["output settings changed", "output settings changed"]);
    expect(await hashTree(`${dir}.persam`)).toEqual(before);
  });

  it("an output folder inside the photo folder is warned about and not scanned", async () => {
    const dir = await sceneFolder("inside", 2, true);
    const result = await run(dir, { outDir: join(dir, "out") });
    expect(result.warnings.some((w) => /inside the photo folder/.test(w))).toBe(true);
    const again = await run(dir, { outDir: join(dir, "out") });
    expect(again.counts.found).toBe(2);
  });
});

describe("prepare: shared PerSeg fixture", () => {
  const present = haveSharedFixtures("prepare on perseg-mini/cat");
  it.skipIf(!present)("prepares the cat photos with the annotated reference mask", async () => {
    const catDir = join(persegMiniDir, "Images", "cat");
    const before = await hashTree(catDir);
    const result = await prepare({
      inputDir: catDir,
      outDir: join(root, "cat.persam"),
      model,
      className: "cat",
      resolution: 64,
      keepDoubtful: true,
      references: [
        { photo: persegPath("Images", "cat", "00"), maskPath: persegPath("Annotations", "cat", "00") },
      ],
    });
    expect(await hashTree(catDir)).toEqual(before);
    expect(result.counts.kept).toBe(3);
    const ref = result.photos.find((p) => p.file === "00.jpg")!;
    expect(ref.confidence).toBe(1);
    expect(result.report?.reference.method).toBe("mask-file");
    const mask = await sharp(join(result.outDir, ".persam", "masks", "00.png"))
      .extractChannel(0)
      .raw()
      .toBuffer();
    const annotation = await sharp(persegPath("Annotations", "cat", "00"))
      .extractChannel(0)
      .raw()
      .toBuffer();
    let agree = 0;
    for (let i = 0; i < mask.length; i++) if (mask[i]! > 0 === annotation[i]! > 0) agree++;
    expect(agree / mask.length).toBe(1);
  });
});
