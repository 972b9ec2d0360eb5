// Case `encoder-variants`: the fp16 and dynamically quantized int8 variants of SAM's ViT image
// encoder (random BENCHMARK weights, vit-encoder.ts), built from the float32 file the way the Hub's
// "fp16" and "_quantized" files are made (encoder-variants.ts). Per variant: file size, session
// create time, encode time (wall and CPU), peak RSS, and the output's difference from the float32
// model on the same input. Each variant runs in a child process of its own (bench/rss.ts), so its
// peak RSS is its own. SlimSAM-77 size; SAM ViT-B size too with --big.

import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ReadModel, readModel } from "../../src/segment/onnx/proto-reader.js";
import type { SessionOptions } from "../../src/segment/sam/ort.js";
import { type EncoderTiming, type EncoderTimingArgs, timeEncoder } from "../encoder-child.js";
import { type BenchCase, type BenchContext, type Measurement, round, runsOf, warmupOf } from "../harness.js";
import {
  ENCODER_VARIANTS,
  type EncoderVariantName,
  encoderVariant,
  outputDifference,
} from "../models/encoder-variants.js";
import { ensureVitEncoderModel, type VitPreset } from "../models/vit-encoder.js";
import { childMain, mib, runChild } from "../rss.js";
import { summarize } from "../stats.js";

/** Options of {@link encoderVariantsCase}. */
export interface EncoderVariantsCaseOptions {
  /** Also measure the SAM ViT-B-size encoder (~360 MB fp32 file; minutes per variant). */
  readonly big: boolean;
  /** Folder of the generated encoders and their variants. @default vit-encoder.ts's cache folder */
  readonly modelDir?: string | undefined;
  /** Folder for the embeddings the children write (compared with float32's). */
  readonly scratchDir: string;
}

/** Arguments of the child task. */
interface VariantTaskArgs extends EncoderTimingArgs {
  /** Where the child writes the last run's `image_embeddings` (float32, little-endian). */
  readonly embeddingPath: string;
}

/** What the child task returns. */
interface VariantTaskResult extends Omit<EncoderTiming, "loadNotes"> {
  /** What SamEncoder's load-time graph rewrites did (e.g. attention chunking), joined by "; ". */
  readonly loadNotes: string;
}

/**
 * Child side: open the variant with persam-db's own encoder class (so a float16 input is fed as
 * float16 and a float16 output widened, as in real use), encode the encoder case's fixed random
 * input warmup + runs times, keep the last embedding.
 */
async function variantTask(raw: unknown): Promise<VariantTaskResult> {
  const args = raw as VariantTaskArgs;
  let last: Float32Array | undefined;
  const timing = await timeEncoder(args, (output) => {
    last = output.embedding.data;
  });
  if (last) writeFileSync(args.embeddingPath, new Uint8Array(last.buffer, last.byteOffset, last.byteLength));
  return { ...timing, loadNotes: timing.loadNotes.join("; ") };
}

/**
 * Version of the conversions in encoder-variants.ts, part of the cached files' names: bump it when
 * a conversion changes, or a stale variant file would be measured.
 */
const VARIANTS_VERSION = 1;

/** The variant's file beside the float32 one, built (write to a temp name, rename) if absent. */
function ensureVariant(fp32Path: string, name: EncoderVariantName, source: () => ReadModel): string {
  const path = fp32Path.replace(/\.RANDOM\.onnx$/, `.${name}-v${VARIANTS_VERSION}.RANDOM.onnx`);
  if (!existsSync(path)) {
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, encoderVariant(source(), name));
    renameSync(tmp, path);
  }
  return path;
}

function readFloats(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function measurePreset(
  ctx: BenchContext,
  preset: VitPreset,
  options: EncoderVariantsCaseOptions,
): Promise<Measurement[]> {
  const fp32Path =
    options.modelDir === undefined
      ? ensureVitEncoderModel({ preset })
      : ensureVitEncoderModel({ preset }, options.modelDir);
  let model: ReadModel | undefined;
  const source = () => {
    model ??= readModel(readFileSync(fp32Path));
    return model;
  };
  // The float32 baseline runs first and again last ("fp32-end"): on a shared machine the load drifts
  // over the minutes this case takes, and the two baselines show by how much.
  const names = ["fp32", ...Object.keys(ENCODER_VARIANTS), "fp32-end"] as (
    | "fp32"
    | "fp32-end"
    | EncoderVariantName
  )[];
  const paths = new Map<string, string>();
  for (const name of names) {
    const t0 = performance.now();
    paths.set(
      name,
      name === "fp32" || name === "fp32-end" ? fp32Path : ensureVariant(fp32Path, name, source),
    );
    const ms = performance.now() - t0;
    if (ms > 50) ctx.log(`encoder-variants/${preset}: built ${name} in ${(ms / 1000).toFixed(1)} s`);
  }
  model = undefined; // let the float32 model's bytes go before the children run
  mkdirSync(options.scratchDir, { recursive: true });

  const results: Measurement[] = [];
  let reference: Float32Array | undefined;
  let fp32Median: number | undefined;
  for (const name of names) {
    const modelPath = paths.get(name)!;
    const description =
      name === "fp32"
        ? "float32 file (the baseline)"
        : name === "fp32-end"
          ? "float32 file again, measured last (load drift)"
          : ENCODER_VARIANTS[name];
    ctx.log(`encoder-variants/${preset}/${name}: ${description}`);
    const embeddingPath = join(options.scratchDir, `embedding-${preset}-${name}.f32`);
    const sessionOptions: SessionOptions = { threads: ctx.threads, graphOptimization: "all" };
    let report: Awaited<ReturnType<typeof runChild<VariantTaskResult>>>;
    try {
      report = await runChild<VariantTaskResult>(import.meta.url, "encode", {
        modelPath,
        options: sessionOptions,
        warmup: warmupOf(ctx, 1),
        runs: runsOf(ctx, 3),
        embeddingPath,
      } satisfies VariantTaskArgs);
    } catch (error) {
      // One variant that onnxruntime cannot load must not hide the others' figures.
      ctx.log(`encoder-variants/${preset}/${name} failed: ${error instanceof Error ? error.message : error}`);
      continue;
    }
    const r = report.value;
    const embedding = readFloats(embeddingPath);
    if (name === "fp32") reference = embedding;
    const diff = reference ? outputDifference(reference, embedding) : undefined;
    const wall = summarize(r.wallMs);
    if (name === "fp32") fp32Median = wall.median;
    const details: Record<string, number | string> = {
      variant: name,
      fileMiB: mib(statSync(modelPath).size),
      inputType: r.inputType,
      loadNotes: r.loadNotes || "none",
      createMs: round(r.createMs),
      peakRssMiB: mib(report.maxRssBytes),
      rssAfterCreateMiB: mib(r.rssAfterCreateBytes),
      baseRssMiB: mib(report.baseRssBytes),
      load1AtEnd: round(report.loadAtEnd),
    };
    if (fp32Median !== undefined) details.speedupVsFp32 = round(fp32Median / wall.median);
    if (diff) {
      details.maxAbsDiff = Number(diff.maxAbs.toPrecision(3));
      details.meanAbsDiff = Number(diff.meanAbs.toPrecision(3));
      details.cosine = Number(diff.cosine.toFixed(7));
      details.referenceRms = Number(diff.referenceRms.toPrecision(3));
    }
    results.push(
      {
        name: `encoder-variants/${preset}/${name}/create`,
        description: `open the onnxruntime session of the ${preset}-size ${name} encoder (${description})`,
        stats: summarize([r.createMs]),
        threads: ctx.threads,
        details: { fileMiB: details.fileMiB!, peakRssMiB: details.peakRssMiB! },
      },
      {
        name: `encoder-variants/${preset}/${name}/encode`,
        description: `SamEncoder.encode of a [1,3,1024,1024] input, ${name} (${description})`,
        stats: wall,
        cpu: summarize(r.cpuMs),
        threads: ctx.threads,
        details,
      },
    );
  }
  return results;
}

/** The `encoder-variants` case. */
export function encoderVariantsCase(options: EncoderVariantsCaseOptions): BenchCase {
  return {
    name: "encoder-variants",
    summary:
      "fp16 and int8-quantized SAM encoder variants vs fp32 (SlimSAM-77 size, ViT-B with --big): size, speed, RSS, output drift",
    async run(ctx) {
      const presets: VitPreset[] = options.big ? ["slimsam-77", "sam-vit-base"] : ["slimsam-77"];
      const results: Measurement[] = [];
      for (const preset of presets) results.push(...(await measurePreset(ctx, preset, options)));
      return results;
    },
  };
}

childMain(import.meta.url, { encode: variantTask });
