// Case `prepare`: the whole `prepare` job (what `persam-db prepare DIR` does: load the model, scan,
// reference, encode, PerSAM, outputs, exports, report) on N generated 12 MP JPEGs, in a child
// process of its own so that its peak RSS is measured cleanly (bench/rss.ts). Two runs: the first
// into an empty output folder, then an unchanged rerun, which must be ≥ 20× faster (everything is
// skipped from the resume state). Encoder: the SlimSAM-77-size benchmark encoder (random weights,
// vit-encoder.ts), or ViT-B size with --big; decoder: random width-256 weights. Masks from random
// weights mean nothing (photos come out doubtful, and are kept so that their outputs are written as
// a good photo's would be); the work and the memory are those of real use. The reference is a box on
// the first photo (as `--ref photo-001.jpg --ref-box …`), so every photo is encoded in its own step
// and the report's per-photo timings split each photo's time into encoder and everything else.

import { existsSync } from "node:fs";
import { copyFile, link, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { DecodeMode } from "../../src/dataset/prepare.js";
import { planPrepare, runPrepare } from "../../src/dataset/prepare.js";
import { encodeJpeg } from "../../src/image/image-io.js";
import { randomDecoderWeights } from "../../src/segment/models/random-weights.js";
import { EmbeddingCache } from "../../src/segment/sam/embedding-cache.js";
import { POSITIONAL_EMBEDDING_KEY, writeSafetensors } from "../../src/segment/sam/safetensors.js";
import { SamModel } from "../../src/segment/sam/sam-model.js";
import { TEST_MODEL_METADATA_KEY } from "../../src/segment/sam/test-weights.js";
import { type BenchCase, type BenchContext, type Measurement, round, stageMedians } from "../harness.js";
import { ensureVitEncoderModel, type VitPreset, vitFourierMatrix } from "../models/vit-encoder.js";
import { childMain, mib, runChild } from "../rss.js";
import { summarize } from "../stats.js";
import { PHOTO_12MP, syntheticPhoto } from "../synthetic.js";

/** Options of {@link prepareCase}. */
export interface PrepareCaseOptions {
  /** Generated photos, decoder and graph cache live here (bench/out/cache). */
  readonly cacheDir: string;
  /** Output folders of the runs go here (bench/out). */
  readonly outDir: string;
  /** Photos in the folder. @default 20 */
  readonly photos?: number | undefined;
  /** SAM ViT-B-size encoder instead of SlimSAM-77 size. */
  readonly big: boolean;
  /** Photos processed at once (prepare's `jobs`). @default prepare's default */
  readonly jobs?: number | undefined;
  /** The image encoder in a worker thread (SamModelOptions.encoderThread). @default false */
  readonly encoderThread?: boolean | undefined;
  /** Folder of the generated encoders. @default vit-encoder.ts's defaultVitCacheDir() */
  readonly modelDir?: string | undefined;
  /** prepare's `decode` (full: the reference's pixels; scaled: DCT-scaled JPEG decoding). @default "full" */
  readonly decode?: DecodeMode | undefined;
}

/** The rerun must be at least this many times faster than the first run. */
const RERUN_SPEEDUP = 20;
const DECODER_WIDTH = 256;
const SEED = 1;

/** Arguments of the child task. */
interface PrepareTaskArgs {
  readonly inputDir: string;
  readonly outDir: string;
  readonly encoderPath: string;
  readonly decoderPath: string;
  readonly threads: number;
  readonly modelCacheDir: string;
  readonly configsDir: string;
  readonly jobs: number | undefined;
  readonly encoderThread: boolean;
  readonly decode: DecodeMode;
  /** The run's own embedding cache (removed before the first run, kept for the rerun). */
  readonly embeddingCacheDir: string;
}

/** The reference of every run: a box around the middle of the first photo (12 MP, 4032 × 3024). */
const REFERENCE_BOX: readonly [number, number, number, number] = [1000, 800, 3000, 2200];

/** What the child task returns. */
interface PrepareTaskResult {
  readonly loadMs: number;
  readonly prepareMs: number;
  readonly exitCode: number;
  readonly counts: Readonly<Record<string, number>>;
  /** CPU time (user + system, all threads) of the child's `prepare` call, ms. */
  readonly prepareCpuMs: number;
  /** Milliseconds the encoder session was running during `prepare` (0 when no model was opened). */
  readonly encoderBusyMs: number;
  /** Photos whose report carries an encoder time (encoded in their own step). */
  readonly photosTimed: number;
  /**
   * Median over those photos of each timing of report.json (`loadMs`, `encodeMs`, …, `totalMs`),
   * plus `outsideEncoderMs` = totalMs − encodeMs: everything a photo costs besides the encoder.
   */
  readonly stageMedians: Readonly<Record<string, number>>;
}

/** Per-stage medians over the photos of a report.json that were encoded in their own step. */
async function reportStageMedians(
  outDir: string,
): Promise<{ photos: number; medians: Record<string, number> }> {
  const report = JSON.parse(await readFile(join(outDir, "report.json"), "utf8")) as {
    photos: { timingsMs?: Record<string, number> }[];
  };
  const timed = report.photos
    .map((p) => p.timingsMs ?? {})
    .filter((t) => (t.encodeMs ?? 0) > 0 && t.totalMs !== undefined)
    .map((t): Record<string, number> => ({ ...t, outsideEncoderMs: t.totalMs! - t.encodeMs! }));
  return { photos: timed.length, medians: stageMedians(timed, "") };
}

/** Child side: load the model and run `prepare`, as the CLI does. */
async function prepareTask(raw: unknown): Promise<PrepareTaskResult> {
  const args = raw as PrepareTaskArgs;
  // As the CLI does: the files are known up front, the sessions are opened only if prepare needs
  // them (an unchanged rerun does not); loadMs is 0 when they were not opened.
  const files = { encoderPath: args.encoderPath, decoderPath: args.decoderPath, label: "benchmark model" };
  let model: SamModel | undefined;
  let loadMs = 0;
  try {
    const t1 = performance.now();
    const cpu0 = process.cpuUsage();
    const plan = await planPrepare({
      inputDir: args.inputDir,
      outDir: args.outDir,
      modelFiles: files,
      decode: args.decode,
      embeddingCache: new EmbeddingCache({ dir: args.embeddingCacheDir }),
      className: "object",
      configsDir: args.configsDir,
      keepDoubtful: true,
      references: [{ photo: join(args.inputDir, "photo-001.jpg"), box: REFERENCE_BOX }],
      ...(args.jobs === undefined ? {} : { jobs: args.jobs }),
      onEvent: (event) => {
        if (event.type === "photo") {
          process.stderr.write(`·   photo ${event.done}/${event.total} ${event.result.stem}\n`);
        }
      },
    });
    if (plan.needsModel) {
      const t0 = performance.now();
      model = await SamModel.load({
        files,
        threads: args.threads,
        modelCacheDir: args.modelCacheDir,
        encoderThread: args.encoderThread,
      });
      loadMs = performance.now() - t0;
    }
    const result = await runPrepare({ plan, model });
    const prepareMs = performance.now() - t1 - loadMs;
    const cpu = process.cpuUsage(cpu0);
    const stages = await reportStageMedians(args.outDir);
    return {
      loadMs,
      prepareMs,
      encoderBusyMs: model?.encoder.busyMs ?? 0,
      exitCode: result.exitCode,
      counts: { ...result.counts },
      prepareCpuMs: (cpu.user + cpu.system) / 1000,
      photosTimed: stages.photos,
      stageMedians: stages.medians,
    };
  } finally {
    await model?.dispose();
  }
}

/**
 * `count` distinct 12 MP JPEGs (quality 92, syntheticPhoto with seeds 1…count) in a folder of
 * their own: generated once into a pool under `cacheDir`, hard-linked (else copied) into the folder.
 */
async function photoFolder(cacheDir: string, count: number, ctx: BenchContext): Promise<string> {
  const { width, height } = PHOTO_12MP;
  const pool = join(cacheDir, `photos-${width}x${height}`);
  const dir = join(cacheDir, `prepare-input-${count}`);
  await mkdir(pool, { recursive: true });
  await mkdir(dir, { recursive: true });
  for (let i = 1; i <= count; i++) {
    const name = `photo-${String(i).padStart(3, "0")}.jpg`;
    const source = join(pool, name);
    if (!existsSync(source)) {
      ctx.log(`prepare: generating ${source}`);
      const image = { data: syntheticPhoto(width, height, i), width, height, channels: 3 as const };
      await writeFile(source, await encodeJpeg(image, 92));
    }
    const target = join(dir, name);
    if (!existsSync(target)) {
      await link(source, target).catch(() => copyFile(source, target));
    }
  }
  const found = (await readdir(dir)).filter((f) => f.endsWith(".jpg")).length;
  if (found !== count) throw new Error(`Expected ${count} photos in ${dir} but found ${found}`);
  return dir;
}

/** Random width-256 decoder weights matching the benchmark encoder of `seed`, written once. */
/** The random width-256 benchmark decoder (written once into `cacheDir`). */
export async function benchmarkDecoder(cacheDir: string): Promise<string> {
  const path = join(cacheDir, `decoder-${DECODER_WIDTH}-seed${SEED}.RANDOM.safetensors`);
  if (existsSync(path)) return path;
  const weights = randomDecoderWeights({ embedDim: DECODER_WIDTH, seed: SEED });
  weights.set(POSITIONAL_EMBEDDING_KEY, {
    data: vitFourierMatrix(SEED, DECODER_WIDTH),
    dims: [2, DECODER_WIDTH / 2],
  });
  await mkdir(cacheDir, { recursive: true });
  await writeSafetensors(path, weights, {
    [TEST_MODEL_METADATA_KEY]: "random benchmark weights; segments nothing meaningful",
    seed: String(SEED),
  });
  return path;
}

/** The `prepare` case. */
export function prepareCase(options: PrepareCaseOptions): BenchCase {
  return {
    name: "prepare",
    summary: "end-to-end prepare on 20 generated 12 MP JPEGs (child process): first run, rerun, peak RSS",
    async run(ctx) {
      const count = options.photos ?? 20;
      const preset: VitPreset = options.big ? "sam-vit-base" : "slimsam-77";
      const inputDir = await photoFolder(options.cacheDir, count, ctx);
      const encoderPath =
        options.modelDir === undefined
          ? ensureVitEncoderModel({ preset, seed: SEED })
          : ensureVitEncoderModel({ preset, seed: SEED }, options.modelDir);
      const decoderPath = await benchmarkDecoder(options.cacheDir);
      const decode = options.decode ?? "full";
      const outDir = join(options.outDir, `prepare-${preset}-${count}-${decode}.persam`);
      const embeddingCacheDir = `${outDir}.embeddings`;
      await rm(outDir, { recursive: true, force: true });
      await rm(embeddingCacheDir, { recursive: true, force: true });
      const args: PrepareTaskArgs = {
        inputDir,
        outDir,
        encoderPath,
        decoderPath,
        threads: ctx.threads,
        modelCacheDir: join(options.cacheDir, "models"),
        // The package's trainer presets; the default lookup is relative to dist/, not dist-bench/.
        configsDir: resolve("configs"),
        jobs: options.jobs,
        encoderThread: options.encoderThread ?? false,
        decode,
        embeddingCacheDir,
      };
      const runs: { name: string; description: string }[] = [
        { name: "first", description: `prepare ${count} × 12 MP into an empty output folder` },
        { name: "rerun", description: "the same command again, nothing changed (everything skipped)" },
      ];
      const reports = [];
      for (const run of runs) {
        ctx.log(
          `prepare/${run.name}: ${count} photos, ${preset}-size encoder, ${ctx.threads} threads, jobs ${options.jobs ?? "default"}, decode ${decode}`,
        );
        reports.push(await runChild<PrepareTaskResult>(import.meta.url, "prepare", args));
      }
      const [first, rerun] = reports as [(typeof reports)[0], (typeof reports)[0]];
      const ratio = first.processMs / rerun.processMs;
      const results: Measurement[] = reports.map((r, i) => ({
        name: `prepare/${runs[i]!.name}`,
        description: `${runs[i]!.description}; child process wall time (node start, model load, prepare, exit)`,
        stats: summarize([r.processMs]),
        threads: ctx.threads,
        details: {
          encoder: preset,
          photos: count,
          jobs: options.jobs ?? "default",
          encoderThread: args.encoderThread ? "yes" : "no",
          decode,
          loadModelMs: round(r.value.loadMs),
          prepareMs: round(r.value.prepareMs),
          perPhotoMs: round(r.value.prepareMs / count),
          // Wall time per photo while the encoder session was not running: everything outside
          // the encoder as the user waits for it (the run's fixed costs included; with --jobs 2
          // what overlaps the encoder is not counted, but it slows the encoder down instead).
          ...(r.value.encoderBusyMs > 0
            ? {
                encoderBusyMs: round(r.value.encoderBusyMs),
                outsideEncoderWallMs: round((r.value.prepareMs - r.value.encoderBusyMs) / count),
              }
            : {}),
          prepareCpuMs: round(r.value.prepareCpuMs),
          // The rerun's report keeps the first run's stored timings: only the first run's count.
          ...(i === 0 && r.value.photosTimed > 0
            ? {
                photosTimed: r.value.photosTimed,
                // Per-photo medians of report.json's timings, e.g. `photo.outsideEncoderMs`.
                ...Object.fromEntries(
                  Object.entries(r.value.stageMedians).map(([k, v]) => [`photo.${k}`, v]),
                ),
              }
            : {}),
          peakRssMiB: mib(r.maxRssBytes),
          encoded: r.value.counts.encoded ?? 0,
          unchanged: r.value.counts.unchanged ?? 0,
          segmented: r.value.counts.segmented ?? 0,
          exitCode: r.value.exitCode,
          load1AtEnd: round(r.loadAtEnd),
          ...(i === 1 ? { speedup: round(ratio), speedupTarget: `≥ ${RERUN_SPEEDUP}` } : {}),
        },
      }));
      if (ratio < RERUN_SPEEDUP)
        ctx.log(`prepare: rerun only ${ratio.toFixed(1)}× faster (target ≥ ${RERUN_SPEEDUP}×)`);
      return results;
    },
  };
}

childMain(import.meta.url, { prepare: prepareTask });
