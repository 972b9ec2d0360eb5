// `persam-db eval` in-process: the ground truth given as predictions scores 100, and `segment` +
// `eval` run end to end on perseg-mini with the tiny random-weight model (numbers meaningless; the
// files, JSON fields and exit codes are what is checked).

import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../src/errors.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { runCli } from "./support/cli.js";
import { haveSharedFixtures, persegMiniDir } from "./support/fixtures.js";

const present = haveSharedFixtures("eval CLI on perseg-mini");
let work: string;
let modelArgs: string[];

/** Run `persam-db <argv>` in-process in the work folder. */
const run = (argv: string[]) => runCli(argv, { env: { PERSAM_DB_CACHE: join(work, "cache") }, cwd: work });

interface EvalJson {
  command: string;
  mIoU: number;
  mAcc: number;
  units: string;
  source: string;
  mode?: string;
  refIdx: string;
  objects: {
    name: string;
    iou: number;
    accuracy: number;
    photos: { name: string; iou: number; intersection: number; union: number; target: number }[];
    reference?: { references: { source: string; maskKind: string }[] };
  }[];
  failedPhotos: number;
  exitCode: number;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "persam-eval-cli-"));
  const model = await writeTinyModel({ dir: join(work, "model") });
  modelArgs = ["--encoder", model.encoderPath, "--decoder", model.decoderPath];
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.skipIf(!present)("persam-db eval on perseg-mini", () => {
  it("eval with the ground truth given as predictions returns 100", async () => {
    const r = await run(["eval", persegMiniDir, "--predictions", join(persegMiniDir, "Annotations")]);
    expect(r.code).toBe(ExitCode.ok);
    expect(r.stderr).toBe(
      "eval 1/6 cat/01\neval 2/6 cat/02\n".concat(
        "eval 3/6 colorful_sneaker/01\neval 4/6 colorful_sneaker/02\neval 5/6 duck_toy/01\neval 6/6 duck_toy/02\n",
      ),
    );
    expect(r.stdout).toMatch(/^cat +100\.00 +100\.00 +2$/m);
    expect(r.stdout).toMatch(
      /^mIoU 100\.00 {2}mAcc 100\.00 {2}over 3 objects \(reference 00, predictions from files\)$/m,
    );
    const json = await run([
      "eval",
      persegMiniDir,
      "--predictions",
      join(persegMiniDir, "Annotations"),
      "--json",
    ]);
    const doc = JSON.parse(json.stdout) as EvalJson;
    expect(doc).toMatchObject({
      command: "eval",
      mIoU: 100,
      mAcc: 100,
      units: "percent",
      source: "files",
      refIdx: "00",
    });
    expect(doc.objects.map((o) => o.name)).toEqual(["cat", "colorful_sneaker", "duck_toy"]);
  });

  it("reports a malformed request as one line", async () => {
    const r = await run(["eval", persegMiniDir, "--objects", "dog", "--predictions", "x"]);
    expect(r.code).toBe(ExitCode.userError);
    expect(r.stderr).toMatch(
      /^persam-db: error: Unknown PerSeg object dog in .* — choose from cat, colorful_sneaker, duck_toy\n$/,
    );
    const missing = await run([
      "eval",
      persegMiniDir,
      "--objects",
      "cat",
      "--predictions",
      join(work, "none"),
    ]);
    expect(missing.stderr).toMatch(/Missing prediction .*none\/cat\/01\.png for cat\/01/);
  });

  it("segment then eval end to end with the tiny model; eval --save-masks agrees with --predictions", async () => {
    const images = join(persegMiniDir, "Images", "cat");
    const seg = await run([
      "segment",
      images,
      "--ref",
      "00.jpg",
      "--ref-mask",
      join(persegMiniDir, "Annotations", "cat", "00.png"),
      "-o",
      join(work, "pred", "cat"),
      "--json",
      ...modelArgs,
    ]);
    expect(seg.stderr).toBe("");
    const segDoc = JSON.parse(seg.stdout) as {
      counts: { ok: number; doubtful: number };
      reference: { references: { source: string; maskKind: string }[] };
    };
    expect(segDoc.counts.ok).toBe(3);
    expect(segDoc.reference.references[0]).toMatchObject({ source: "mask-file", maskKind: "perseg" });
    expect(seg.code).toBe(segDoc.counts.doubtful > 0 ? ExitCode.partial : ExitCode.ok);
    expect((await readdir(join(work, "pred", "cat"))).filter((f) => f.endsWith(".png")).sort()).toEqual([
      "00.png",
      "01.png",
      "02.png",
    ]);

    const fromFiles = await run([
      "eval",
      persegMiniDir,
      "--objects",
      "cat",
      "--predictions",
      join(work, "pred"),
      "--json",
    ]);
    expect(fromFiles.code).toBe(ExitCode.ok);
    const filesDoc = JSON.parse(fromFiles.stdout) as EvalJson;
    expect(filesDoc.objects[0]!.photos.map((p) => p.name)).toEqual(["01", "02"]);

    const live = await run([
      "eval",
      persegMiniDir,
      "--objects",
      "cat",
      "--save-masks",
      join(work, "saved"),
      "--json",
      ...modelArgs,
    ]);
    expect(live.code).toBe(ExitCode.ok);
    const liveDoc = JSON.parse(live.stdout) as EvalJson;
    expect(liveDoc).toMatchObject({ source: "model", mode: "persam", failedPhotos: 0, exitCode: 0 });
    expect(liveDoc.objects[0]!.reference!.references[0]).toMatchObject({
      source: "mask-file",
      maskKind: "perseg",
    });
    expect(liveDoc.mIoU).toBeGreaterThanOrEqual(0);
    expect(liveDoc.mIoU).toBeLessThanOrEqual(100);
    // Same model, same reference, same photos: the segment command's masks score the same.
    expect(liveDoc.mIoU).toBeCloseTo(filesDoc.mIoU, 9);
    expect(liveDoc.objects[0]!.photos.map((p) => p.intersection)).toEqual(
      filesDoc.objects[0]!.photos.map((p) => p.intersection),
    );
    const again = await run([
      "eval",
      persegMiniDir,
      "--objects",
      "cat",
      "--predictions",
      join(work, "saved"),
      "--json",
    ]);
    expect((JSON.parse(again.stdout) as EvalJson).mIoU).toBeCloseTo(liveDoc.mIoU, 9);
  });
});
