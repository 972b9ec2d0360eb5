// `persam-db segment` in-process on the tiny random-weight model with generated photos: output
// files, per-photo JSON, the --json summary, a bad photo, reference option parsing and exit codes.
// (The masks are meaningless: the model has random weights.)

import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { referenceSpecsFromOptions } from "../src/cli/reference-options.js";
import { ExitCode } from "../src/errors.js";
import { loadRgb, probeImage } from "../src/image/image-io.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { runCli } from "./support/cli.js";
import { H, rectMask, W, writePng, writeSquarePhotos } from "./support/square-photos.js";

let work: string;
let photos: string;
let modelArgs: string[];

/** Run `persam-db <argv>` in-process in the work folder. */
const run = (argv: string[]) => runCli(argv, { env: { PERSAM_DB_CACHE: join(work, "cache") }, cwd: work });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "persam-segment-cli-"));
  const model = await writeTinyModel({ dir: join(work, "model") });
  modelArgs = ["--encoder", model.encoderPath, "--decoder", model.decoderPath];
  photos = join(work, "photos");
  await mkdir(photos);
  await writeSquarePhotos(photos);
  await writePng(join(work, "a-mask.png"), rectMask(W, H, 20, 10, 60, 50));
  await writePng(join(work, "small-mask.png"), new Uint8Array(50 * 40).fill(255), 50, 40);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface PhotoJson {
  status: string;
  stem: string;
  mask: string;
  size: { width: number; height: number };
  prior: { positive: number[]; negative?: number[] };
  steps: { name: string; iouScores: number[]; chosen: number; box?: number[] }[];
  similarity: Record<string, number>;
  confidence: { confidence: number; doubtful: boolean; reasons: string[] };
  flags: string[];
  timings: Record<string, number>;
  reason?: string;
}

describe("persam-db segment", () => {
  it("writes a 0/255 mask and a diagnostics JSON per photo, and a --json summary", async () => {
    const r = await run([
      "segment",
      "photos",
      "--ref",
      "photos/a.png",
      "--ref-mask",
      "a-mask.png",
      "-o",
      "out",
      "--json",
      ...modelArgs,
    ]);
    expect(r.stderr).toBe("");
    const doc = JSON.parse(r.stdout) as {
      command: string;
      mode: string;
      testModel: boolean;
      reference: { references: { photo: string; source: string; gridCells: number }[]; maskFiles: string[] };
      photos: PhotoJson[];
      counts: { photos: number; ok: number; failed: number; doubtful: number; skipped: number };
      exitCode: number;
    };
    expect(doc).toMatchObject({ command: "segment", mode: "persam", testModel: true });
    expect(doc.reference.references).toEqual([
      expect.objectContaining({ photo: join(photos, "a.png"), source: "mask-file" }),
    ]);
    expect(doc.counts).toMatchObject({ photos: 3, ok: 3, failed: 0, skipped: 0 });
    expect(r.code).toBe(doc.counts.doubtful > 0 ? ExitCode.partial : ExitCode.ok);
    expect(doc.exitCode).toBe(r.code);

    const files = (await readdir(join(work, "out"))).sort();
    expect(files).toEqual([".persam", "a.json", "a.png", "b.json", "b.png", "c.json", "c.png"]);
    const state = (await readdir(join(work, "out", ".persam"))).sort();
    expect(state).toEqual(["reference-1.png", "segment.json"]);
    // The embeddings went to the user's cache (PERSAM_DB_CACHE), where every command finds them.
    const cached = await readdir(join(work, "cache", "embeddings"));
    expect(cached.filter((f) => !f.startsWith("."))).toHaveLength(3);

    const probe = await probeImage(join(work, "out", "b.png"));
    expect([probe.format, probe.width, probe.height, probe.space]).toEqual(["png", W, H, "b-w"]);
    const { data } = await loadRgb(join(work, "out", "b.png"));
    expect(new Set(data).size).toBeLessThanOrEqual(2);
    expect([...new Set(data)].every((v) => v === 0 || v === 255)).toBe(true);

    const b = JSON.parse(await readFile(join(work, "out", "b.json"), "utf8")) as PhotoJson;
    expect(b).toMatchObject({ status: "ok", stem: "b", mask: "b.png", size: { width: W, height: H } });
    expect(b.prior.positive).toHaveLength(2);
    expect(b.prior.negative).toHaveLength(2);
    expect(b.steps.map((s) => s.name)[0]).toBe("first");
    expect(b.steps.every((s) => s.iouScores.length === 4)).toBe(true);
    expect(Object.keys(b.similarity)).toEqual(
      expect.arrayContaining(["max", "min", "mean", "std", "peak64Image"]),
    );
    expect(b.confidence.confidence).toBeGreaterThanOrEqual(0);
    expect(b.confidence.confidence).toBeLessThanOrEqual(1);
    expect(Object.keys(b.timings)).toEqual(
      expect.arrayContaining(["loadMs", "encodeMs", "decoderMs", "totalMs"]),
    );
    expect(doc.photos.map((p) => p.stem)).toEqual(["a", "b", "c"]);

    // A rerun reuses the embeddings cached in out/.persam.
    const again = await run([
      "segment",
      "photos",
      "--ref",
      "a.png",
      "--ref-mask",
      "a-mask.png",
      "-o",
      "out",
      "--json",
      ...modelArgs,
    ]);
    const doc2 = JSON.parse(again.stdout) as { photos: (PhotoJson & { cachedEmbedding: boolean })[] };
    expect(doc2.photos.every((p) => p.cachedEmbedding)).toBe(true);
    expect(doc2.photos[1]!.prior).toEqual(b.prior);
  });

  it("records a corrupt photo as failed, segments the others, warns about skipped files and exits 2", async () => {
    const dir = join(work, "with-bad");
    await mkdir(dir);
    await copyFile(join(photos, "a.png"), join(dir, "a.png"));
    await copyFile(join(photos, "b.png"), join(dir, "b.png"));
    const jpeg = await readFile(join(photos, "c.jpg"));
    await writeFile(join(dir, "broken.jpg"), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    await writeFile(join(dir, "notes.jpg"), "not a photo");
    await copyFile(join(work, "a-mask.png"), join(dir, "a.mask.png"));
    const r = await run(["segment", "with-bad", "-o", "with-bad-out", ...modelArgs]);
    expect(r.code).toBe(ExitCode.partial);
    expect(r.stderr).toMatch(/^warning: .*notes\.jpg is not an image persam-db can read/m);
    expect(r.stderr).toMatch(/warning: .*broken\.jpg: .*/);
    expect(r.stderr).toMatch(/reference 1: a\.png \(mask-beside-photo /);
    expect(r.stdout).toMatch(/^broken +FAILED +/m);
    expect(r.stdout).toMatch(/^a +confidence \d\.\d\d +IoU /m);
    expect(r.stdout).toMatch(/2 of 3 photos segmented into .*with-bad-out, 1 failed/);
    const out = (await readdir(join(work, "with-bad-out"))).filter((f) => !f.startsWith("."));
    expect(out.sort()).toEqual(["a.json", "a.png", "b.json", "b.png", "broken.json"]);
    const broken = JSON.parse(await readFile(join(work, "with-bad-out", "broken.json"), "utf8")) as PhotoJson;
    expect(broken.status).toBe("failed");
    expect(broken.reason).toMatch(/broken\.jpg/);
  });

  it("runs PerSAM-F from a click and reports the fusion weights", async () => {
    const r = await run([
      "segment",
      "photos",
      "--ref",
      "a.png",
      "--ref-point",
      "40,30",
      "--mode",
      "persam-f",
      "--fusion-steps",
      "10",
      "-o",
      "out-f",
      "--json",
      ...modelArgs,
    ]);
    const doc = JSON.parse(r.stdout) as {
      mode: string;
      reference: {
        references: { source: string }[];
        persamF: { lambdas: number[]; adaptations: { lossHistory: unknown[] }[] };
      };
      photos: PhotoJson[];
    };
    expect(doc.mode).toBe("persam-f");
    expect(doc.reference.references[0]!.source).toBe("prompt");
    expect(doc.reference.persamF.lambdas).toHaveLength(3);
    expect(doc.reference.persamF.adaptations[0]!.lossHistory.length).toBeGreaterThan(0);
    expect(doc.photos[0]!.prior.negative).toBeUndefined();
    expect(doc.photos[0]!.steps[0]!.chosen).toBe(-1);
  });

  it("reports usage mistakes as one line with exit code 1", async () => {
    const noRef = await run(["segment", "photos", "--ref-point", "4,4", "-o", "x", ...modelArgs]);
    expect(noRef.code).toBe(ExitCode.userError);
    expect(noRef.stderr).toBe(
      "persam-db: error: --ref-point given without --ref — name the reference photo with --ref PHOTO\n",
    );
    const same = await run(["segment", "photos", "-o", "photos", ...modelArgs]);
    expect(same.stderr).toMatch(/The output folder .*photos is the photo folder/);
    const missing = await run(["segment", "photos", "--ref", "nope.jpg", "-o", "x", ...modelArgs]);
    expect(missing.stderr).toMatch(/The reference photo nope\.jpg \(--ref\) does not exist/);
    const mismatch = await run([
      "segment",
      "photos",
      "--ref",
      "a.png",
      "--ref-mask",
      "small-mask.png",
      "-o",
      "x",
      ...modelArgs,
    ]);
    expect(mismatch.code).toBe(ExitCode.userError);
    expect(mismatch.stderr).toMatch(
      /^persam-db: error: The mask .*small-mask\.png is 50×40 pixels but its photo .*a\.png is 96×64 — /m,
    );
  });

  it("--help lists the reference options and examples", async () => {
    const r = await run(["segment", "--help"]);
    expect(r.stdout).toMatch(/--ref-mask/);
    expect(r.stdout).toMatch(/--mode/);
    expect(r.stdout).toMatch(/Examples:/);
    expect(r.stdout).toMatch(/--ref-point 420,310/);
  });
});

describe("reference options", () => {
  const ctx = () => ({ cwd: work, photosDir: photos });
  const base = { mode: "persam" as const, fusionSteps: 1000, fusionSolver: "exact" as const };

  it("pairs values with one --ref, or with several by N: prefixes and mask order", async () => {
    expect(
      await referenceSpecsFromOptions(
        { ...base, ref: ["a.png"], refPoint: ["1,2", "3,4"], refBox: ["0,0,9,9"] },
        ctx(),
      ),
    ).toEqual([
      {
        photo: join(photos, "a.png"),
        clicks: [
          { point: [1, 2], label: 1 },
          { point: [3, 4], label: 1 },
        ],
        box: [0, 0, 9, 9],
      },
    ]);
    const two = await referenceSpecsFromOptions(
      { ...base, ref: ["a.png", "b.png"], refPoint: ["2:5,6"], refMask: ["1:a-mask.png"] },
      ctx(),
    );
    expect(two).toEqual([
      { photo: join(photos, "a.png"), maskPath: join(work, "a-mask.png") },
      { photo: join(photos, "b.png"), clicks: [{ point: [5, 6], label: 1 }] },
    ]);
    const inOrder = await referenceSpecsFromOptions(
      { ...base, ref: ["a.png", "b.png"], refMask: ["a-mask.png", "a-mask.png"] },
      ctx(),
    );
    expect(inOrder.map((s) => s.maskPath)).toEqual([join(work, "a-mask.png"), join(work, "a-mask.png")]);
    await expect(
      referenceSpecsFromOptions({ ...base, ref: ["a.png", "b.png"], refPoint: ["5,6"] }, ctx()),
    ).rejects.toThrow(/With 2 --ref photos, say which one each --ref-point is for/);
    await expect(
      referenceSpecsFromOptions({ ...base, ref: ["a.png"], refPoint: ["3:5,6"] }, ctx()),
    ).rejects.toThrow(/--ref-point 3:5,6 names reference 3, but there is 1 --ref/);
    await expect(
      referenceSpecsFromOptions(
        { ...base, ref: ["a.png"], refMask: ["a-mask.png"], refPoint: ["5,6"] },
        ctx(),
      ),
    ).rejects.toThrow(/Both --ref-mask and --ref-point\/--ref-box/);
    expect(await referenceSpecsFromOptions({ ...base }, ctx())).toEqual([]);
  });
});
