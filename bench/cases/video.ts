// Case `video`: a 30-second 1080p clip (Conway's life generated with ffmpeg at bench time, cached) through the
// video stage of `prepare`: sampling (ffmpeg streams frames at 2 per second, written as candidates at
// the encoder's size), encoding every candidate, choosing 12 frames (segment with a box reference,
// measure, farthest-point choice) and decoding the chosen ones again at 1080p; against the encoder
// alone on the same number of frames. Benchmark encoder (SlimSAM-77 size, random weights; ViT-B size
// with --big) and the random width-256 decoder: the choice means nothing, the work is real.

import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { chooseVideoFrames, probeVideos, sampleVideo } from "../../src/dataset/prepare/video-stage.js";
import { emptyState, StateStore } from "../../src/dataset/prepare-state.js";
import type { ScannedVideo } from "../../src/dataset/scan.js";
import { PhotoLoader } from "../../src/image/photo-loader.js";
import { resolveReference } from "../../src/segment/persam/reference-source.js";
import type { EmbeddingKey, EmbeddingStore } from "../../src/segment/sam/embedding-cache.js";
import { PhotoEncoder } from "../../src/segment/sam/photo-encoder.js";
import type { EncodedPhoto } from "../../src/segment/sam/sam-model.js";
import { SamModel } from "../../src/segment/sam/sam-model.js";
import { hashFile } from "../../src/util/hash-file.js";
import { ffmpegVersion, findVideoTools, runTool } from "../../src/video/video-tools.js";
import { type BenchCase, type Measurement, round } from "../harness.js";
import { ensureVitEncoderModel, type VitPreset } from "../models/vit-encoder.js";
import { summarize } from "../stats.js";
import { benchmarkDecoder } from "./prepare.js";

/** Options of {@link videoCase}. */
export interface VideoCaseOptions {
  /** The clip, decoder and graphs live here (bench/out/cache). */
  readonly cacheDir: string;
  /** The run's output folder goes here (bench/out). */
  readonly outDir: string;
  readonly big: boolean;
}

const SECONDS = 30;
const FPS = 2;
const FRAMES = 12;

/** An in-memory embedding store: the choice reads back what the encoding step computed. */
class MemoryStore implements EmbeddingStore {
  private readonly map = new Map<string, EncodedPhoto>();
  async get(key: EmbeddingKey): Promise<EncodedPhoto | undefined> {
    return this.map.get(key.photoSha256);
  }
  async put(key: EmbeddingKey, photo: EncodedPhoto): Promise<boolean> {
    this.map.set(key.photoSha256, photo);
    return true;
  }
}

/** The `video` case. */
export function videoCase(options: VideoCaseOptions): BenchCase {
  return {
    name: "video",
    summary: `a ${SECONDS} s 1080p clip: sampling at ${FPS}/s, encoding, choosing ${FRAMES} frames, vs the encoder alone`,
    async run(ctx) {
      const tools = await findVideoTools();
      if (!tools) throw new Error("the video case needs ffmpeg (apt-get install ffmpeg)");
      const clip = join(options.cacheDir, `clip-life-${SECONDS}s-1080p.mp4`);
      if (!existsSync(clip)) {
        ctx.log(`video: generating ${clip}`);
        await mkdir(options.cacheDir, { recursive: true });
        const out = await runTool({
          program: tools.ffmpeg,
          args: [
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            // Every frame different (a still test pattern would be one picture sixty times over, and
            // the choice would rightly keep one): Conway's life on big cells.
            `life=size=480x270:rate=30:mold=10:ratio=0.5:death_color=#203040:life_color=#e0a040,scale=1920:1080:flags=neighbor,trim=duration=${SECONDS}`,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
            clip,
          ],
          timeoutMs: 600_000,
        });
        if (out.code !== 0) throw new Error(`ffmpeg could not make the clip: ${out.stderr}`);
      }
      const preset: VitPreset = options.big ? "sam-vit-base" : "slimsam-77";
      const files = {
        encoderPath: ensureVitEncoderModel({ preset, seed: 1 }),
        decoderPath: await benchmarkDecoder(options.cacheDir),
        label: "benchmark model",
      };
      const outDir = join(options.outDir, "video.persam");
      await rm(outDir, { recursive: true, force: true });
      await mkdir(outDir, { recursive: true });
      const model = await SamModel.load({
        files,
        threads: ctx.threads,
        modelCacheDir: join(options.cacheDir, "models"),
      });
      try {
        const video: ScannedVideo = {
          path: clip,
          relPath: "clip.mp4",
          stem: "clip",
          size: 0,
          sha256: (await hashFile(clip)).sha256,
          container: "mp4",
        };
        const settings = { fps: FPS, frames: FRAMES, maxPixels: 100_000_000 };
        const probed = await probeVideos({ videos: [video], settings, tools });
        const planned = probed.videos[0]!;

        ctx.log(`video/sample: ${SECONDS} s at ${FPS}/s → ${planned.sampleWidth}×${planned.sampleHeight}`);
        const t0 = performance.now();
        const candidates = await sampleVideo({ tools, video: planned, outDir, fps: FPS });
        const sampleMs = performance.now() - t0;

        const loader = new PhotoLoader();
        const encoder = new PhotoEncoder({ model, cache: new MemoryStore(), memoryEntries: 2, loader });
        ctx.log(`video/encode: ${candidates.length} candidates`);
        let encoderOnlyMs = 0;
        const t1 = performance.now();
        for (const c of candidates) {
          const r = await encoder.encode({ path: c.path, sha256: c.sha256 });
          encoderOnlyMs += r.encodeMs;
        }
        const encodeMs = performance.now() - t1;

        const reference = await resolveReference({
          model,
          encoder,
          references: [{ photo: candidates[0]!.path, box: [200, 150, 800, 450] }],
        });
        ctx.log(`video/choose: ${FRAMES} of ${candidates.length}`);
        const t2 = performance.now();
        const chosen = await chooseVideoFrames({
          tools,
          video: planned,
          candidates,
          encoder,
          loader,
          reference,
          mode: "persam",
          settings,
          choiceKey: "bench",
          outDir,
          store: new StateStore(outDir, emptyState()),
          taken: new Set(),
        });
        const chooseMs = performance.now() - t2;
        const n = candidates.length;
        const details = {
          encoder: preset,
          ffmpeg: (await ffmpegVersion(tools)).replace(/^ffmpeg version /, "").split(" ")[0] ?? "",
          candidates: n,
          chosen: chosen.length,
          sampleSize: `${planned.sampleWidth}x${planned.sampleHeight}`,
          encoderOnlyMs: round(encoderOnlyMs),
          encoderPerFrameMs: round(encoderOnlyMs / n),
        };
        const result = (name: string, description: string, ms: number): Measurement => ({
          name: `video/${name}`,
          description,
          stats: summarize([ms]),
          threads: ctx.threads,
          details,
        });
        return [
          result(
            "sample",
            `ffmpeg: ${SECONDS} s of 1080p H.264 → ${n} candidates at the encoder's size (PNG written)`,
            sampleMs,
          ),
          result(
            "encode",
            `${n} candidates: PNG decode + the image encoder (encoder alone: encoderOnlyMs)`,
            encodeMs,
          ),
          result(
            "choose",
            `segment + measure ${n} candidates (embeddings from the encode step), choose ${FRAMES}, ffmpeg again for them at 1080p`,
            chooseMs,
          ),
          result("total", "sample + encode + choose", sampleMs + encodeMs + chooseMs),
        ];
      } finally {
        await model.dispose();
      }
    },
  };
}
