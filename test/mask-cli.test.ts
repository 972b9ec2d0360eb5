import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vitFourierMatrix, writeVitEncoderModel } from "../bench/models/vit-encoder.js";
import { randomDecoderWeights } from "../src/segment/models/random-weights.js";
import { type TinyModelFiles, writeTinyModel } from "../src/segment/models/tiny-model.js";
import { POSITIONAL_EMBEDDING_KEY, writeSafetensors } from "../src/segment/sam/safetensors.js";
import { TEST_MODEL_METADATA_KEY } from "../src/segment/sam/test-weights.js";
import { runCli } from "./support/cli.js";
import { EXPORT_KINDS, type ExportModelFiles, writeExportModel } from "./support/export-encoders.js";
import { haveSharedFixtures, persegPath } from "./support/fixtures.js";

let dir: string;
let model: TinyModelFiles;
let photo: string;
/** Encoders shaped like the Hub's exports, of two random checkpoints (test/support/export-encoders.ts). */
let exports: [ExportModelFiles, ExportModelFiles];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "persam-mask-"));
  model = await writeTinyModel({ dir: join(dir, "model") });
  exports = [
    await writeExportModel({ dir: join(dir, "exports"), seed: 1 }),
    await writeExportModel({ dir: join(dir, "exports"), seed: 2 }),
  ];
  photo = join(dir, "photo.png");
  // A 320×200 photo: a bright disc on a dark gradient.
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200">
    <defs><linearGradient id="g"><stop offset="0" stop-color="#222"/><stop offset="1" stop-color="#555"/></linearGradient></defs>
    <rect width="320" height="200" fill="url(#g)"/><circle cx="200" cy="90" r="50" fill="#e33"/></svg>`;
  await sharp(Buffer.from(svg)).png().toFile(photo);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const modelArgs = () => ["--encoder", model.encoderPath, "--decoder", model.decoderPath];

describe("persam-db mask", () => {
  it("writes the best mask at the photo's size and reports it as JSON", async () => {
    const out = join(dir, "best.png");
    const run = await runCli(["mask", photo, "--point", "200,90", ...modelArgs(), "-o", out, "--json"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.size).toEqual({ width: 320, height: 200 });
    expect(report.masks).toHaveLength(1);
    expect(report.masks[0].path).toBe(out);
    expect(report.masks[0].best).toBe(true);
    expect(report.prompt.clicks).toEqual([{ point: [200, 90], label: 1 }]);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([320, 200, 1]);
    const { data } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    expect(new Set(data).size).toBeLessThanOrEqual(2);
    for (const v of new Set(data)) expect([0, 255]).toContain(v);
  });

  it("warns when the encoder's large attention cannot be computed in pieces, and still runs", async () => {
    // One global-attention block with a single head: its scores are [1, 4096, 4096] fp32 = 64 MiB,
    // large enough to be a candidate, but a batch × heads axis of length 1 cannot be cut.
    const seed = 7;
    const width = 32;
    const encoderPath = join(dir, "one-head-encoder.onnx");
    writeVitEncoderModel(encoderPath, {
      preset: {
        embedDim: 8,
        depth: 1,
        heads: 1,
        mlpDim: 8,
        windowSize: 14,
        globalAttnIndexes: [0],
        outChans: width,
      },
      seed,
    });
    const weights = randomDecoderWeights({ embedDim: width, seed });
    weights.set(POSITIONAL_EMBEDDING_KEY, { data: vitFourierMatrix(seed, width), dims: [2, width / 2] });
    const decoderPath = join(dir, "one-head-decoder.safetensors");
    await writeSafetensors(decoderPath, weights, { [TEST_MODEL_METADATA_KEY]: "random test weights" });
    const out = join(dir, "one-head.png");
    const run = await runCli([
      "mask",
      photo,
      "--point",
      "200,90",
      "--encoder",
      encoderPath,
      "--decoder",
      decoderPath,
      "-o",
      out,
    ]);
    expect(run.code).toBe(0);
    const warnings = run.stderr.split("\n").filter((l) => l.includes("large attention"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^warning: .+: 1 large attention\(s\) run whole \(Softmax .+: the batch × heads axis has length 1, left alone\); expect up to ~768 MiB more memory per attention/,
    );
    expect(warnings[0]).toContain(encoderPath);
    // The tiny model's attentions are all small: no such warning.
    const tiny = await runCli([
      "mask",
      photo,
      "--point",
      "200,90",
      ...modelArgs(),
      "-o",
      join(dir, "tiny.png"),
    ]);
    expect(tiny.code).toBe(0);
    expect(tiny.stderr).not.toContain("large attention");
  });

  it("warns that the tiny model holds random test weights", async () => {
    const run = await runCli(["mask", photo, "--point", "10,10", ...modelArgs(), "-o", join(dir, "w.png")]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain("RANDOM TEST WEIGHTS");
  });

  it("writes all three candidates with --multimask, clicks and a box together", async () => {
    const out = join(dir, "multi.png");
    const run = await runCli([
      "mask",
      photo,
      "--point",
      "200,90",
      "--point",
      "20,20",
      "--label",
      "1",
      "--label",
      "0",
      "--box",
      "140,30,260,150",
      "--multimask",
      ...modelArgs(),
      "-o",
      out,
      "--json",
    ]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.masks.map((m: { path: string }) => m.path)).toEqual(
      [1, 2, 3].map((i) => join(dir, `multi-${i}.png`)),
    );
    expect(report.masks.filter((m: { best: boolean }) => m.best)).toHaveLength(1);
    expect(report.prompt.box).toEqual([140, 30, 260, 150]);
  });

  it.each([
    [["--point", "200"], "Expected 2 non-negative numbers for --point but received '200'"],
    [["--point", "400,90"], "--point 400,90 lies outside"],
    [["--box", "50,50,10,10"], "Expected x0 ≤ x1 and y0 ≤ y1 for --box"],
    [[], "no prompt given"],
    [["--point", "1,1", "--label", "2"], "Expected --label 0 or 1"],
  ])("refuses bad prompts with one line: %s", async (args, message) => {
    const run = await runCli(["mask", photo, ...args, ...modelArgs()]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(message);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("names a missing photo and a half-given model", async () => {
    const missing = await runCli(["mask", join(dir, "nope.jpg"), "--point", "1,1", ...modelArgs()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("nope.jpg");
    const half = await runCli(["mask", photo, "--point", "1,1", "--encoder", model.encoderPath]);
    expect(half.code).toBe(1);
    expect(half.stderr).toContain("--encoder and --decoder must be given together");
  });

  it("refuses a decoder file as the encoder with a message naming the file", async () => {
    const run = await runCli([
      "mask",
      photo,
      "--point",
      "1,1",
      "--encoder",
      model.decoderPath,
      "--decoder",
      model.decoderPath,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot load the image encoder ${model.decoderPath}`);
  });

  describe.each(EXPORT_KINDS)("with an encoder shaped like the Hub's %s export", (kind) => {
    /** stderr without the line that says the decoder holds random test weights. */
    const problems = (stderr: string) =>
      stderr.split("\n").filter((l) => l !== "" && !l.includes("RANDOM TEST WEIGHTS"));

    it("runs with its checkpoint's decoder, the attention examined and rewritten", async () => {
      const [own] = exports;
      const out = join(dir, `export-${kind}.png`);
      const args = ["--encoder", own.encoders[kind], "--decoder", own.decoderPath, "-o", out, "--json"];
      const run = await runCli(["mask", photo, "--point", "200,90", ...args]);
      expect(problems(run.stderr)).toEqual([]);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout).masks).toHaveLength(1);
      const meta = await sharp(out).metadata();
      expect([meta.width, meta.height]).toEqual([320, 200]);
    });

    it("refuses another checkpoint's decoder in one line", async () => {
      const [own, other] = exports;
      const args = ["--encoder", own.encoders[kind], "--decoder", other.decoderPath];
      const run = await runCli(["mask", photo, "--point", "200,90", ...args, "-o", join(dir, "never.png")]);
      expect(run.code).toBe(1);
      const lines = problems(run.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(
        `${own.encoders[kind]} and ${other.decoderPath} come from different SAM checkpoints`,
      );
    });
  });

  it.skipIf(!haveSharedFixtures("mask CLI on a real photo"))(
    "runs end to end on a real PerSeg photo",
    async () => {
      const out = join(dir, "cat.png");
      const run = await runCli([
        "mask",
        persegPath("Images", "cat", "00"),
        "--point",
        "300,300",
        ...modelArgs(),
        "-o",
        out,
        "--json",
      ]);
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout);
      const meta = await sharp(out).metadata();
      expect([meta.width, meta.height]).toEqual([report.size.width, report.size.height]);
    },
  );
});
