// `persam-db eval` in-process: the ground truth given as predictions scores 100, and `segment` +
// `eval` run end to end on perseg-mini with the tiny random-weight model (numbers meaningless; the
// files, JSON fields and exit codes are what is checked).

import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import yargs, { type Argv } from "yargs";
import type { CommandContext, CommandDefinition, GlobalOptions } from "../src/cli/command.js";
import { evalCommand } from "../src/cli/eval-command.js";
import { type CliIo, Reporter } from "../src/cli/io.js";
import { segmentCommand } from "../src/cli/segment-command.js";
import { ExitCode, isUserError } from "../src/errors.js";
import { writeTinyModel } from "../src/segment/tiny-model.js";
import { haveSharedFixtures, persegMiniDir } from "./helpers/fixtures.js";

const present = haveSharedFixtures("eval CLI on perseg-mini");
let work: string;
let modelArgs: string[];

/** Run `persam-db <argv>` with segment and eval registered on a parser configured like main.ts. */
async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d) => {
    out += d;
  });
  stderr.on("data", (d) => {
    err += d;
  });
  const io: CliIo = {
    stdout,
    stderr,
    env: { PERSAM_DB_CACHE: join(work, "cache") },
    cwd: work,
    isTty: false,
  };
  let code: number = ExitCode.ok;
  const context: CommandContext = {
    io,
    reporter: (o: GlobalOptions) => new Reporter(io, o.json, o.quiet),
    setExitCode: (c) => {
      code = Math.max(code, c);
    },
  };
  let parser = (yargs(argv) as Argv)
    .scriptName("persam-db")
    .option("json", { type: "boolean", default: false })
    .option("verbose", { type: "boolean", default: false })
    .option("quiet", { type: "boolean", default: false })
    .strict()
    .help()
    .version(false)
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new Error(message);
    });
  for (const command of [segmentCommand, evalCommand] as CommandDefinition<unknown>[]) {
    parser = parser.command({
      command: command.command,
      describe: command.describe,
      builder: (y: Argv) => command.builder(y as Argv<GlobalOptions>) as unknown as Argv,
      handler: async (o) => command.handler(o as never, context),
    });
  }
  try {
    await parser.parseAsync(argv, {}, (_e, _p, output) => {
      if (output) out += output;
    });
  } catch (error) {
    if (!isUserError(error)) throw error;
    err += `persam-db: error: ${error.toLine()}\n`;
    code = error.exitCode;
  }
  return { code, out, err };
}

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
    expect(r.err).toBe(
      "eval 1/6 cat/01\neval 2/6 cat/02\n".concat(
        "eval 3/6 colorful_sneaker/01\neval 4/6 colorful_sneaker/02\neval 5/6 duck_toy/01\neval 6/6 duck_toy/02\n",
      ),
    );
    expect(r.out).toMatch(/^cat +100\.00 +100\.00 +2$/m);
    expect(r.out).toMatch(
      /^mIoU 100\.00 {2}mAcc 100\.00 {2}over 3 objects \(reference 00, predictions from files\)$/m,
    );
    const json = await run([
      "eval",
      persegMiniDir,
      "--predictions",
      join(persegMiniDir, "Annotations"),
      "--json",
    ]);
    const doc = JSON.parse(json.out) as EvalJson;
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
    expect(r.err).toMatch(
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
    expect(missing.err).toMatch(/Missing prediction .*none\/cat\/01\.png for cat\/01/);
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
    expect(seg.err).toBe("");
    const segDoc = JSON.parse(seg.out) as {
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
    const filesDoc = JSON.parse(fromFiles.out) as EvalJson;
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
    const liveDoc = JSON.parse(live.out) as EvalJson;
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
    expect((JSON.parse(again.out) as EvalJson).mIoU).toBeCloseTo(liveDoc.mIoU, 9);
  });
});
