// `persam-db prepare A B C`: several subjects in one run, each its own set, the model opened once,
// --json as one JSON line per set; a video as the argument; a bad input among several is one line.
// In-process CLI on the tiny random model; the video parts skip visibly without ffmpeg.

import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type TinyModelFiles, writeTinyModel } from "../src/segment/models/tiny-model.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { runCli } from "./support/cli.js";
import { scene, writeJpeg, writeSceneMask } from "./support/photos.js";
import { videoToolsOrSkip, viewOf, writeVideo } from "./support/videos.js";

const tools = await videoToolsOrSkip("prepare of several subjects (the video input)");

let root: string;
let model: TinyModelFiles;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-subjects-cli-"));
  model = await writeTinyModel({ dir: join(root, "model") });
  for (const [name, seed] of [
    ["cat", 1],
    ["dog", 2],
  ] as const) {
    const dir = join(root, name);
    await mkdir(dir);
    for (let i = 0; i < 2; i++)
      await writeJpeg(join(dir, `${name}-${i}.jpg`), scene({ at: [0.4 + 0.2 * i, 0.5], seed: seed + i }));
    await writeSceneMask(join(dir, `${name}-0.mask.png`), { at: [0.4, 0.5] });
  }
  if (tools) {
    const frames = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        viewOf(scene({ width: 320, height: 240 }), { x: 0.02 * i, y: 0.1, w: 0.5, h: 0.5 }, 96, 72),
      ),
    );
    await writeVideo({ tools, path: join(root, "mug.mp4"), frames, width: 96, height: 72 });
  }
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const common = () => [
  "--encoder",
  model.encoderPath,
  "--decoder",
  model.decoderPath,
  "--threads",
  "1",
  "--resolution",
  "64",
  "--keep-doubtful",
  "--frames",
  "3",
];

describe("persam-db prepare with several inputs", () => {
  it("prepares each as its own set with the model opened once, one JSON line per set", async () => {
    const inputs = [join(root, "cat"), join(root, "dog"), ...(tools ? [join(root, "mug.mp4")] : [])];
    const load = vi.spyOn(SamModel, "load");
    try {
      const run = await runCli(["prepare", ...inputs, ...common(), "--json"], { cwd: root });
      expect(run.code, run.stderr).toBe(0);
      expect(load).toHaveBeenCalledTimes(1);
      const lines = run.stdout.trim().split("\n");
      expect(lines).toHaveLength(inputs.length);
      const docs = lines.map(
        (l) => JSON.parse(l) as { input: string; output: string; counts: { kept: number } },
      );
      expect(docs.map((d) => d.output)).toEqual([
        join(root, "cat.persam"),
        join(root, "dog.persam"),
        ...(tools ? [join(root, "mug.persam")] : []),
      ]);
      for (const d of docs) {
        expect(d.counts.kept).toBeGreaterThan(0);
        expect((await stat(join(d.output, "metadata.jsonl"))).isFile()).toBe(true);
      }
    } finally {
      load.mockRestore();
    }
    // Nothing changed: the plans need no model, so none is opened.
    const again = vi.spyOn(SamModel, "load");
    try {
      const run = await runCli(["prepare", ...inputs, ...common(), "--json"], { cwd: root });
      expect(run.code, run.stderr).toBe(0);
      expect(again).not.toHaveBeenCalled();
    } finally {
      again.mockRestore();
    }
  });

  it("reports a missing input among several in one line and prepares the others (exit 1)", async () => {
    const run = await runCli(["prepare", join(root, "cat"), join(root, "no-such"), ...common(), "--json"], {
      cwd: root,
    });
    expect(run.code).toBe(1);
    const docs = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { input: string; error?: { message: string }; output?: string });
    expect(docs).toHaveLength(2);
    expect(docs.find((d) => d.error)?.error?.message).toBe(
      `The photo folder ${join(root, "no-such")} does not exist`,
    );
    expect(docs.find((d) => d.output)?.output).toBe(join(root, "cat.persam"));
  });

  it("refuses --output with several inputs in one line", async () => {
    const run = await runCli([
      "prepare",
      join(root, "cat"),
      join(root, "dog"),
      ...common(),
      "-o",
      join(root, "x"),
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(
      "persam-db: error: --output names one folder, but several inputs were given — leave --output out: each set goes beside its input (<DIR>.persam, <VIDEO>.persam)",
    );
  });

  it.skipIf(!tools)("prepare ./mug.mp4 prints the frames chosen and the varied images", async () => {
    const run = await runCli(["prepare", "./mug.mp4", ...common(), "--force"], { cwd: root });
    expect(run.code, run.stderr).toBeLessThanOrEqual(2);
    expect(run.stderr).toContain('class: "mug", taken from the video\'s name "mug.mp4"');
    expect(run.stdout).toMatch(/mug\.mp4#t=\d/);
    expect(run.stdout).toMatch(/mug\.mp4: \d+ sampled frames, 3 chosen \(/);
    expect(run.stdout).toMatch(/varied images? in the training set \(DreamBooth wants 5–20\): too few/);
  });
});
