// prepare() on videos made at test time with ffmpeg: a pan and zoom over a photo with blurred,
// repeated and subject-free stretches and a phone's rotation tag (generated photos always, the shared
// fixture photos when present); the chosen frames are sharp, distinct and show the subject, and
// become photos of the set at full resolution; the choice is reused by a rerun; bad videos are one
// line each. Tiny random model: the subject is told apart by its features (a red disc, or the
// fixture's annotated object, given as the reference). Skips visibly without ffmpeg.

import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type PrepareEvent,
  type PrepareParams,
  type PrepareResult,
  prepare,
} from "../src/dataset/prepare.js";
import type { VideoReport } from "../src/dataset/report.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../src/segment/sam/embedding-cache.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { haveSharedFixtures, persegPath } from "./support/fixtures.js";
import { hashTree, type Pixels, scene, writeJpeg, writeSceneMask } from "./support/photos.js";
import { ffmpeg, videoToolsOrSkip, viewOf, writeVideo } from "./support/videos.js";

const tools = await videoToolsOrSkip("prepare on videos");

let root: string;
let model: SamModel;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-prepare-video-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
});

afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

const FPS = 10;
const W = 160;
const H = 120;

/** What each stretch of the clip is, by video second; sampled at 2/s, sample i shows second i/2. */
interface Clip {
  readonly frames: Pixels[];
  /** Sample indices (at 2/s) that are blurred, show no subject, or repeat sample `repeats[1]`. */
  readonly blurred: number[];
  readonly empty: number[];
  readonly repeat: [number, number];
}

/**
 * A 9-second clip over `photo`: a pan (0–2 s), blurred (2–3 s), a zoom (3–5 s), `emptyView` (5–6 s),
 * the view of 0.5 s again (6–6.5 s), then a pan the other way.
 */
async function panZoomClip(photo: string | Pixels, emptyView: Pixels): Promise<Clip> {
  const frames: Pixels[] = [];
  const view = (x: number, y: number, w: number, blur = 0) => viewOf(photo, { x, y, w, h: w }, W, H, blur);
  for (let i = 0; i < 9 * FPS; i++) {
    const t = i / FPS;
    if (t < 2) frames.push(await view(0.05 + 0.1 * t, 0.1, 0.7));
    else if (t < 3) frames.push(await view(0.25, 0.1, 0.7, 4));
    else if (t < 5)
      frames.push(await view(0.2 + 0.05 * (t - 3), 0.15 + 0.05 * (t - 3), 0.7 - 0.12 * (t - 3)));
    else if (t < 6) frames.push(emptyView);
    else if (t < 6.5) frames.push(frames[5]!);
    else frames.push(await view(0.3 - 0.08 * (t - 6.5), 0.25, 0.6));
  }
  return { frames, blurred: [4, 5], empty: [10, 11], repeat: [1, 12] };
}

const cacheOf = (dir: string) => new EmbeddingCache({ dir: `${dir}.embeddings` });

function run(inputDir: string, extra: Partial<PrepareParams> = {}): Promise<PrepareResult> {
  return prepare({
    inputDir,
    model,
    className: "ball",
    keepDoubtful: true,
    resolution: 64,
    frames: 5,
    embeddingCache: cacheOf(inputDir),
    videoTools: tools,
    ...extra,
  });
}

function checkChoice(result: PrepareResult, clip: Clip): VideoReport {
  const video = result.report!.videos![0]!;
  const chosen = video.candidates.filter((c) => c.chosen).map((c) => c.index);
  const why = JSON.stringify(
    video.candidates.map((c) => [c.index, c.chosen, c.reason, c.similarity, c.sharpness]),
  );
  expect(chosen.length, why).toBeGreaterThanOrEqual(3);
  for (const i of clip.blurred) expect(chosen, why).not.toContain(i);
  for (const i of clip.empty) expect(chosen, why).not.toContain(i);
  expect(
    clip.repeat.every((i) => chosen.includes(i)),
    why,
  ).toBe(false);
  const byIndex = new Map(video.candidates.map((c) => [c.index, c]));
  for (const i of clip.blurred) expect(byIndex.get(i)!.reason, why).toMatch(/^blurry/);
  for (const i of clip.empty) expect(byIndex.get(i)!.reason, why).toMatch(/^no subject/);
  return video;
}

describe.skipIf(!tools)("prepare on a video", () => {
  it("chooses sharp, distinct frames of the subject from a rotated pan-and-zoom clip, never the blurred, repeated or subject-free ones", async () => {
    const dir = join(root, `ball-${++counter}`);
    await mkdir(dir, { recursive: true });
    const big = scene({ width: 480, height: 360, at: [0.55, 0.5], radius: 0.2 });
    const clip = await panZoomClip(big, scene({ width: W, height: H, radius: 0, seed: 3 }));
    await writeVideo({
      tools: tools!,
      path: join(dir, "ball.mp4"),
      frames: clip.frames,
      width: W,
      height: H,
      fps: FPS,
      rotate: 90,
    });
    // The reference: a still photo of the disc with its mask (outside the input folder).
    const ref = join(root, `ref-${counter}.jpg`);
    await writeJpeg(ref, scene({ width: 160, height: 120, radius: 0.3 }));
    await writeSceneMask(join(root, `ref-${counter}.mask.png`), { width: 160, height: 120, radius: 0.3 });
    const before = await hashTree(dir);
    const events: PrepareEvent[] = [];
    const result = await run(dir, {
      references: [{ photo: ref, maskPath: join(root, `ref-${counter}.mask.png`) }],
      onEvent: (e) => events.push(e),
    });
    expect(await hashTree(dir)).toEqual(before);
    const video = checkChoice(result, clip);
    expect([video.rotation === 90 || video.rotation === 270, video.width, video.height]).toEqual([
      true,
      H,
      W,
    ]);
    // The chosen frames are photos of the set, decoded again at full (turned) size.
    const chosen = video.candidates.filter((c) => c.chosen);
    const stems = result.photos.map((p) => p.stem);
    expect(stems).toEqual(chosen.map((c) => c.stem));
    expect(stems.every((s) => /^ball-t\d{3}\.\d$/.test(s ?? ""))).toBe(true);
    for (const c of chosen) {
      const png = join(result.outDir, ".persam", "frames", `${c.stem}.png`);
      const meta = await sharp(png).metadata();
      expect([meta.width, meta.height]).toEqual([H, W]);
      expect((await stat(join(result.outDir, "images", `${c.stem}.png`))).isFile()).toBe(true);
    }
    expect(result.photos.map((p) => p.file)).toEqual(chosen.map((c) => `ball.mp4#t=${c.time}`));
    expect(events.filter((e) => e.type === "video")).toHaveLength(1);
    const html = await readFile(join(result.outDir, "report.html"), "utf8");
    expect(html).toContain("<h2>Videos</h2>");
    expect(html).toContain("blurry: sharpness");
    expect(result.summary).toMatch(/ball\.mp4: \d+ sampled frames, \d+ chosen/);
    expect(result.summary).toMatch(/varied images? in the training set \(DreamBooth wants 5–20\)/);

    // A rerun reuses the choice: nothing sampled, encoded or segmented again.
    const again = await run(dir, {
      references: [{ photo: ref, maskPath: join(root, `ref-${counter}.mask.png`) }],
    });
    expect([again.counts.segmented, again.counts.encoded, again.counts.unchanged]).toEqual([
      0,
      0,
      chosen.length,
    ]);
    expect(again.report!.videos![0]!.candidates).toEqual(video.candidates);

    // Fewer frames wanted: chosen again from the cached samples; farthest-point selection picks the
    // same first frames, whose embeddings are cached: the encoder does not run.
    const fewer = await run(dir, {
      frames: 3,
      references: [{ photo: ref, maskPath: join(root, `ref-${counter}.mask.png`) }],
    });
    expect(fewer.report!.videos![0]!.candidates.filter((c) => c.chosen)).toHaveLength(3);
    expect(fewer.counts.encoded).toBe(0);
    const frames = await readdir(join(fewer.outDir, ".persam", "frames"));
    expect(frames.sort()).toEqual(fewer.photos.map((p) => `${p.stem}.png`).sort());
  });

  it.skipIf(!haveSharedFixtures("prepare on a video of fixture photos"))(
    "does the same on a clip made from the fixture's cat photos",
    async () => {
      const dir = join(root, `cat-${++counter}`);
      await mkdir(dir, { recursive: true });
      const grey: Pixels = { data: new Uint8Array(W * H * 3).fill(128), width: W, height: H };
      const clip = await panZoomClip(persegPath("Images", "cat", "01"), grey);
      await writeVideo({
        tools: tools!,
        path: join(dir, "cat.mp4"),
        frames: clip.frames,
        width: W,
        height: H,
        fps: FPS,
        rotate: 270,
      });
      const result = await run(dir, {
        className: "cat",
        references: [
          { photo: persegPath("Images", "cat", "00"), maskPath: persegPath("Annotations", "cat", "00") },
        ],
      });
      checkChoice(result, clip);
    },
  );

  it("takes one video as the input: ./ball.mp4 gives ./ball.persam, the class from its name", async () => {
    const dir = join(root, `single-${++counter}`);
    await mkdir(dir, { recursive: true });
    const frames = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        viewOf(scene({ width: 320, height: 240 }), { x: 0.02 * i, y: 0.1, w: 0.4, h: 0.4 }, 96, 72),
      ),
    );
    await writeVideo({ tools: tools!, path: join(dir, "red ball.mp4"), frames, width: 96, height: 72 });
    await writeJpeg(join(dir, "other.jpg"), scene({ seed: 4 }));
    const result = await prepare({
      inputDir: join(dir, "red ball.mp4"),
      model,
      resolution: 64,
      frames: 3,
      embeddingCache: cacheOf(dir),
      videoTools: tools,
    });
    expect(result.outDir).toBe(join(dir, "red ball.persam"));
    expect(result.report!.settings.class).toBe("ball");
    expect(result.photos.every((p) => p.file.startsWith("red ball.mp4#t="))).toBe(true);
    expect(result.counts.videos).toBe(1);
  });

  it("leaves out truncated, empty and audio-only videos with one line each; the rest goes on", async () => {
    const dir = join(root, `bad-${++counter}`);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < 2; i++)
      await writeJpeg(join(dir, `photo-${i}.jpg`), scene({ at: [0.4 + 0.2 * i, 0.5], seed: i }));
    await writeSceneMask(join(dir, "photo-0.mask.png"), { at: [0.4, 0.5] });
    const frames = Array.from({ length: 20 }, (_, i) =>
      scene({ width: 96, height: 72, at: [0.3 + 0.02 * i, 0.5] }),
    );
    await writeVideo({ tools: tools!, path: join(dir, "cut.mp4"), frames, width: 96, height: 72 });
    await truncate(join(dir, "cut.mp4"), 700);
    await ffmpeg(tools!, [
      "-f",
      "lavfi",
      "-i",
      "sine=frequency=440:duration=1",
      "-c:a",
      "aac",
      join(dir, "sound.m4a"),
    ]);
    await writeFile(join(dir, "empty.mp4"), "");
    const result = await run(dir);
    expect(result.counts.kept).toBe(2);
    expect(result.exitCode).toBe(2);
    const lines = result.warnings.filter((w) => /cut\.mp4|sound\.m4a|empty\.mp4/.test(w));
    expect(lines).toHaveLength(3);
    for (const w of lines) expect(w).not.toContain("\n");
    expect(lines.find((w) => w.includes("sound.m4a"))).toContain("sound but no picture (audio only)");
    expect(lines.find((w) => w.includes("cut.mp4"))).toMatch(/Cannot read the video cut\.mp4 .* truncated/);
    expect(lines.find((w) => w.includes("empty.mp4"))).toContain("empty file (0 bytes)");
  });

  it("without ffmpeg, a video is one line saying how to install it; the photos are prepared", async () => {
    const dir = join(root, `noffmpeg-${++counter}`);
    await mkdir(dir, { recursive: true });
    await writeJpeg(join(dir, "photo-1.jpg"), scene());
    await writeSceneMask(join(dir, "photo-1.mask.png"), {});
    const frames = Array.from({ length: 10 }, () => scene({ width: 96, height: 72 }));
    await writeVideo({ tools: tools!, path: join(dir, "clip.mp4"), frames, width: 96, height: 72 });
    const result = await run(dir, { videoTools: null });
    expect(result.counts.kept).toBe(1);
    const line = result.warnings.find((w) => w.includes("clip.mp4"));
    expect(line).toMatch(
      /^skipped clip\.mp4 is a video, and reading videos needs ffmpeg, which was not found — install ffmpeg/,
    );
  });
});

describe("prepare on photos never looks for ffmpeg", () => {
  it("prepares a photo folder with no ffmpeg and says nothing about videos", async () => {
    const dir = join(root, `photos-${++counter}`);
    await mkdir(dir, { recursive: true });
    await writeJpeg(join(dir, "photo-1.jpg"), scene());
    await writeSceneMask(join(dir, "photo-1.mask.png"), {});
    const result = await run(dir, { videoTools: null });
    expect(result.counts.kept).toBe(1);
    expect(result.warnings.join("\n")).not.toMatch(/ffmpeg|video/);
    expect(result.report!.videos).toBeUndefined();
  });
});
