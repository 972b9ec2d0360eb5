// Curation of photo folders by prepare(): a blurred shot, a re-save of another photo and a photo
// below the training resolution are flagged with their measured values (report.json, report.html's
// legend, the summary); --curate leaves them out of the set and a rerun does not write them again.
// Tiny random model, generated photos.

import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PrepareParams, prepare } from "../src/dataset/prepare.js";
import { FLAG_LEGEND } from "../src/dataset/report.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../src/segment/sam/embedding-cache.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { scene, writeJpeg, writeSceneMask } from "./support/photos.js";

let root: string;
let model: SamModel;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-curation-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
});

afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

/** Four distinct scenes, a blurred fifth, a PNG re-save of the first, a small seventh. */
async function messyFolder(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < 4; i++) {
    await writeJpeg(
      join(dir, `shot-${i + 1}.jpg`),
      scene({ width: 192, height: 144, at: [0.3 + 0.13 * i, 0.5], seed: i }),
    );
  }
  await writeSceneMask(join(dir, "shot-1.mask.png"), { width: 192, height: 144, at: [0.3, 0.5] });
  const sharpScene = scene({ width: 192, height: 144, at: [0.5, 0.4], seed: 7 });
  await sharp(sharpScene.data, { raw: { width: 192, height: 144, channels: 3 } })
    .blur(4)
    .jpeg({ quality: 95 })
    .toFile(join(dir, "shot-5.jpg"));
  await sharp(join(dir, "shot-2.jpg")).png().toFile(join(dir, "shot-2-copy.png"));
  await writeJpeg(join(dir, "shot-7.jpg"), scene({ width: 48, height: 36, at: [0.6, 0.6], seed: 9 }));
  return dir;
}

function run(inputDir: string, extra: Partial<PrepareParams> = {}) {
  return prepare({
    inputDir,
    model,
    className: "ball",
    keepDoubtful: true,
    resolution: 64,
    embeddingCache: new EmbeddingCache({ dir: `${inputDir}.embeddings` }),
    ...extra,
  });
}

describe("curation", () => {
  it("flags a blurred shot, a re-save and a small photo with their values, and keeps them without --curate", async () => {
    const dir = await messyFolder("flags");
    const result = await run(dir);
    const byFile = new Map(result.report!.photos.map((p) => [p.file, p]));
    const notes = (file: string) => byFile.get(file)!.curation ?? [];
    const blurry = notes("shot-5.jpg").find((n) => n.flag === "blurry");
    expect(blurry?.value).toBeLessThan(0.35);
    expect(blurry?.detail).toMatch(/^blurry: sharpness \d+(\.\d)?% of the sharpest$/);
    // Of a picture and its re-save (the same pixels), one is flagged, naming the other.
    const pair = ["shot-2.jpg", "shot-2-copy.png"];
    const flagged = pair.filter((f) => notes(f).some((n) => n.flag === "duplicate"));
    expect(flagged).toHaveLength(1);
    const other = pair.find((f) => f !== flagged[0])!;
    expect(notes(flagged[0]!).find((n) => n.flag === "duplicate")!.detail).toBe(
      `duplicate: the same picture as ${other} (0 of 64 hash bits differ)`,
    );
    const low = notes("shot-7.jpg").find((n) => n.flag === "low-resolution");
    expect(low?.value).toBe(36);
    for (const f of ["shot-1.jpg", "shot-3.jpg", "shot-4.jpg"]) {
      expect(notes(f).map((n) => n.flag)).not.toContain("blurry");
      expect(notes(f).map((n) => n.flag)).not.toContain("duplicate");
    }
    // Flagged, not left out.
    expect(result.counts.kept).toBe(7);
    expect(result.report!.varied).toEqual({ count: 5, curated: false });
    expect(result.summary).toContain("blurry: sharpness");
    expect(result.summary).toContain("5 varied images in the training set (DreamBooth wants 5–20): enough");
    const html = await readFile(join(result.outDir, "report.html"), "utf8");
    for (const flag of [
      "blurry",
      "duplicate",
      "near-duplicate",
      "subject-small",
      "subject-at-edge",
      "low-resolution",
    ]) {
      expect(FLAG_LEGEND[flag], flag).toBeDefined();
      expect(html).toContain(
        `<dt${["blurry", "duplicate", "low-resolution"].includes(flag) ? ' class="used"' : ""}>${flag}</dt>`,
      );
    }
    expect(html).toContain(`duplicate: the same picture as ${other}`);
  });

  it("--curate leaves the flagged photos out, removes their files, and a rerun does not write them again", async () => {
    const dir = await messyFolder("curate");
    const first = await run(dir);
    expect((await stat(join(first.outDir, "images", "shot-5.png"))).isFile()).toBe(true);
    const curated = await run(dir, { curate: true });
    const out = curated.photos.filter((p) => p.status === "excluded").map((p) => p.file);
    expect(out).toHaveLength(3);
    expect(out).toEqual(expect.arrayContaining(["shot-5.jpg", "shot-7.jpg"]));
    for (const p of curated.photos.filter((x) => x.status === "excluded")) {
      expect(p.reason).toMatch(/^left out by --curate: /);
      await expect(stat(join(curated.outDir, "images", `${p.stem}.png`))).rejects.toThrow();
    }
    const rows = (await readFile(join(curated.outDir, "metadata.jsonl"), "utf8")).trim().split("\n");
    expect(rows).toHaveLength(curated.counts.kept);
    expect(curated.report!.varied?.curated).toBe(true);
    const again = await run(dir, { curate: true });
    expect([again.counts.outputsWritten, again.counts.segmented]).toEqual([0, 0]);
    expect(
      again.photos
        .filter((p) => p.status === "excluded")
        .map((p) => p.file)
        .sort(),
    ).toEqual([...out].sort());
    // Without --curate they come back.
    const back = await run(dir);
    expect(back.counts.kept).toBe(7);
  });
});
