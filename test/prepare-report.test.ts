// What prepare puts into report.json, report.html and the card about the run: the class it used and
// only paths relative to the set (no absolute folder, home folder or user name: the set is published).

import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepare } from "../src/dataset/prepare.js";
import type { PrepareReport } from "../src/dataset/report.js";
import { UserError } from "../src/errors.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { scene, writeJpeg, writeSceneMask } from "./support/photos.js";

let root: string;
let model: SamModel;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-prepare-report-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
});

afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

describe("prepare's report", () => {
  it("names the folders and the reference mask relative to the set, never by absolute path", async () => {
    const dir = join(root, "photos of my backpack");
    await mkdir(dir);
    await writeJpeg(join(dir, "a.jpg"), scene({ at: [0.4, 0.5] }));
    await writeJpeg(join(dir, "b.jpg"), scene({ at: [0.6, 0.5], seed: 1 }));
    // The reference mask lives outside the photo folder, as PerSeg's Annotations/ do.
    const maskDir = join(root, "elsewhere");
    await mkdir(maskDir);
    await writeSceneMask(join(maskDir, "a-mask.png"), { at: [0.4, 0.5] });
    const outDir = join(root, "out", "backpack set");
    const result = await prepare({
      inputDir: dir,
      outDir,
      model,
      resolution: 64,
      keepDoubtful: true,
      references: [{ photo: join(dir, "a.jpg"), maskPath: join(maskDir, "a-mask.png") }],
    });
    expect(result.counts.kept).toBe(2);
    const json = await readFile(join(outDir, "report.json"), "utf8");
    const html = await readFile(join(outDir, "report.html"), "utf8");
    const card = await readFile(join(outDir, "README.md"), "utf8");
    const report = JSON.parse(json) as PrepareReport;
    expect(report.input).toBe("photos of my backpack");
    expect(report.output).toBe("backpack set");
    expect(report.reference.maskFile).toBe("a-mask.png");
    expect(report.settings.class).toBe("backpack");
    for (const [name, text] of [
      ["report.json", json],
      ["report.html", html],
      ["README.md", card],
    ] as const) {
      expect(text, name).not.toContain(root);
      expect(text, name).not.toContain(homedir());
    }
    expect(html).toContain("backpack");
  });

  it("refuses a generic folder name without a class, and takes the class it is given", async () => {
    const dir = join(root, "Photos 2024");
    await mkdir(dir);
    await writeJpeg(join(dir, "a.jpg"), scene());
    await expect(prepare({ inputDir: dir, model, resolution: 64, dryRun: true })).rejects.toThrow(UserError);
    await expect(prepare({ inputDir: dir, model, resolution: 64, dryRun: true })).rejects.toThrow(
      'The folder name "Photos 2024" does not say what the subject is',
    );
    const named = await prepare({ inputDir: dir, model, resolution: 64, dryRun: true, className: "cat" });
    expect(named.plan).toHaveLength(1);
  });
});
