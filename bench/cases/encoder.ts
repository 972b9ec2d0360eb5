// Case `encoder`: SAM's ViT image encoder at real size (random BENCHMARK weights, vit-encoder.ts):
// session create time, encode time, FLOPs from the graph, achieved GFLOP/s against the CPU's
// theoretical peak, and peak RSS. Every configuration runs in a child process of its own
// (bench/rss.ts), so its peak RSS is its own. SlimSAM-77 by default; SAM ViT-B with --big.
// Without options it measures persam-db's defaults and the same without attention chunking (the
// graph as exported); --sweep also measures onnxruntime session options (optimisation level, memory
// arena, memory pattern, threads, execution mode, spinning) one change at a time against
// onnxruntime's defaults, and 4 attention chunks instead of 12. --model-file measures an encoder
// file made elsewhere (e.g. by torch.onnx.export, bench/models/torch-vit-encoder.py) instead.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import type { SamEncoderOptions } from "../../src/segment/sam/encoder-session.js";
import { DEFAULT_ATTENTION_CHUNKS } from "../../src/segment/sam/encoder-session.js";
import { type EncoderTiming, type EncoderTimingArgs, timeEncoder } from "../encoder-child.js";
import { countFlops, cpuPeakFlops } from "../flops.js";
import { type BenchCase, type BenchContext, type Measurement, round, runsOf, warmupOf } from "../harness.js";
import {
  buildVitEncoderShapeOnly,
  ensureVitEncoderModel,
  type VitPreset,
  vitParameterCount,
} from "../models/vit-encoder.js";
import { childMain, mib, runChild } from "../rss.js";
import { summarize } from "../stats.js";

/** Options of {@link encoderCase}. */
export interface EncoderCaseOptions {
  /** Also measure the SAM ViT-B-size encoder (~360 MB file, ~1 min per encode on 2 loaded cores). */
  readonly big: boolean;
  /** Measure the session-option variants too (SlimSAM-77; with `big`, ViT-B's ort-defaults too). */
  readonly sweep: boolean;
  /** Folder of the generated encoders. @default vit-encoder.ts's defaultVitCacheDir() */
  readonly modelDir?: string | undefined;
  /**
   * An encoder .onnx file to measure instead of the generated ones (named `file:<name>` in the
   * results); with `sweep`, every session-option variant. @default none
   */
  readonly modelFile?: string | undefined;
}

/** Session options plus the encoder's load-time attention chunking. */
type SessionOptions = Omit<SamEncoderOptions, "path">;

/** One session configuration of the sweep. */
interface Variant {
  readonly name: string;
  readonly description: string;
  readonly options: (threads: number) => SessionOptions;
}

/**
 * persam-db's defaults (src/segment/sam/ort.ts, encoder-session.ts): level all, arena on, memory
 * pattern off, attention in DEFAULT_ATTENTION_CHUNKS pieces.
 */
const DEFAULTS = (threads: number): SessionOptions => ({ threads, graphOptimization: "all" });
/**
 * onnxruntime's own defaults (memory pattern on) on the unchanged graph: the base every session
 * option variant below changes one thing of.
 */
const ORT = (threads: number): SessionOptions => ({
  ...DEFAULTS(threads),
  memPattern: true,
  attentionChunks: 1,
});

const VARIANTS: readonly Variant[] = [
  {
    name: "default",
    description: `persam-db's defaults: level all, arena on, pattern off, attention in ${DEFAULT_ATTENTION_CHUNKS} chunks`,
    options: DEFAULTS,
  },
  {
    name: "unchunked",
    description: "persam-db's defaults without attention chunking (attentionChunks 1: the graph as exported)",
    options: (t) => ({ ...DEFAULTS(t), attentionChunks: 1 }),
  },
  {
    name: "chunks-4",
    description: "persam-db's defaults with attentionChunks 4 (3 heads per piece)",
    options: (t) => ({ ...DEFAULTS(t), attentionChunks: 4 }),
  },
  {
    name: "ort-defaults",
    description: "onnxruntime's defaults: level all, arena on, pattern on",
    options: ORT,
  },
  {
    name: "extended",
    description: "ort-defaults + graphOptimizationLevel extended",
    options: (t) => ({ ...ORT(t), graphOptimization: "extended" }),
  },
  {
    name: "no-arena",
    description: "ort-defaults + enableCpuMemArena false",
    options: (t) => ({ ...ORT(t), cpuMemArena: false }),
  },
  {
    name: "lean",
    description: "enableCpuMemArena false + enableMemPattern false",
    options: (t) => ({ ...DEFAULTS(t), cpuMemArena: false }),
  },
  {
    name: "threads-1",
    description: "ort-defaults + intraOpNumThreads 1",
    options: () => ORT(1),
  },
  {
    name: "parallel",
    description: "ort-defaults + executionMode parallel, interOpNumThreads 2",
    options: (t) => ({ ...ORT(t), executionMode: "parallel", interOpThreads: 2 }),
  },
  {
    name: "no-spin",
    description: "ort-defaults + session.intra_op.allow_spinning 0",
    options: (t) => ({ ...ORT(t), allowSpinning: false }),
  },
];

/** Child side: open the session, encode a fixed random input warmup + runs times. */
function encodeTask(raw: unknown): Promise<EncoderTiming> {
  return timeEncoder(raw as EncoderTimingArgs);
}

/**
 * FLOPs of an encoder graph at [1,3,1024,1024] (static count); a preset's without generating its
 * weights. Nodes the counter does not know are left out of a file's count, and named in `byOp`.
 */
function graphFlops(model: VitPreset | { file: string }): { total: number; mac: number; byOp: string } {
  const file = typeof model === "object";
  const report = countFlops(file ? readFileSync(model.file) : buildVitEncoderShapeOnly({ preset: model }));
  if (report.unknown.length > 0 && !file) {
    throw new Error(`FLOP count left out ${report.unknown.length} nodes`);
  }
  const byOp = Object.entries(report.byOp)
    .slice(0, 6)
    .map(([op, f]) => `${op} ${(f.flops / 1e9).toFixed(1)}`)
    .join(", ");
  const left = report.unknown.length > 0 ? `; ${report.unknown.length} nodes not counted` : "";
  return { total: report.total, mac: report.mac, byOp: byOp + left };
}

async function measure(
  ctx: BenchContext,
  preset: string,
  modelPath: string,
  variant: Variant,
  flops: { total: number; mac: number; byOp: string },
): Promise<Measurement[]> {
  const options = variant.options(ctx.threads);
  const threads = options.threads ?? ctx.threads;
  ctx.log(`encoder/${preset} [${variant.name}]: ${variant.description}`);
  const report = await runChild<EncoderTiming>(import.meta.url, "encode", {
    modelPath,
    options,
    warmup: warmupOf(ctx, 1),
    runs: runsOf(ctx, 3),
  } satisfies EncoderTimingArgs);
  const r = report.value;
  const wall = summarize(r.wallMs);
  const cpu = summarize(r.cpuMs);
  const peak = cpuPeakFlops(threads);
  const achieved = flops.total / (wall.median / 1000);
  const suffix = variant.name === "default" ? "" : `[${variant.name}]`;
  const details = {
    variant: variant.name,
    options: variant.description,
    gflop: round(flops.total / 1e9),
    macGflop: round(flops.mac / 1e9),
    topOpsGflop: flops.byOp,
    gflopPerS: round(achieved / 1e9),
    peakGflopPerS: round(peak.peakFlops / 1e9),
    fractionOfPeak: Math.round((achieved / peak.peakFlops) * 1000) / 1000,
    peakRssMiB: mib(report.maxRssBytes),
    rssAfterCreateMiB: mib(r.rssAfterCreateBytes),
    baseRssMiB: mib(report.baseRssBytes),
    createMs: round(r.createMs),
    loadNotes: r.loadNotes.join("; "),
    load1AtEnd: round(report.loadAtEnd),
  };
  return [
    {
      name: `encoder/${preset}/create${suffix}`,
      description: `open the onnxruntime session of the ${preset}-size encoder file (${variant.description})`,
      stats: summarize([r.createMs]),
      threads,
      details: { peakRssMiB: details.peakRssMiB, rssAfterCreateMiB: details.rssAfterCreateMiB },
    },
    {
      name: `encoder/${preset}/encode${suffix}`,
      description: `SamEncoder.encode of a [1,3,1024,1024] input (${variant.description})`,
      stats: wall,
      cpu,
      threads,
      details,
    },
  ];
}

/** The `encoder` case. */
export function encoderCase(options: EncoderCaseOptions): BenchCase {
  return {
    name: "encoder",
    summary: "SAM ViT image encoder, SlimSAM-77 size (ViT-B with --big): create, encode, GFLOP/s, peak RSS",
    async run(ctx) {
      const results: Measurement[] = [];
      if (options.modelFile !== undefined) {
        const label = `file:${basename(options.modelFile)}`;
        const flops = graphFlops({ file: options.modelFile });
        const variants = options.sweep
          ? VARIANTS
          : VARIANTS.filter((v) => v.name === "default" || v.name === "unchunked");
        for (const v of variants) results.push(...(await measure(ctx, label, options.modelFile, v, flops)));
        return results;
      }
      const presets: VitPreset[] = options.big ? ["slimsam-77", "sam-vit-base"] : ["slimsam-77"];
      for (const preset of presets) {
        ctx.log(`encoder/${preset}: ${(vitParameterCount(preset) / 1e6).toFixed(1)} M random parameters`);
        const modelPath =
          options.modelDir === undefined
            ? ensureVitEncoderModel({ preset })
            : ensureVitEncoderModel({ preset }, options.modelDir);
        const flops = graphFlops(preset);
        const variants = !options.sweep
          ? VARIANTS.filter((v) => v.name === "default" || v.name === "unchunked")
          : preset === "slimsam-77"
            ? VARIANTS
            : VARIANTS.filter(
                (v) => v.name === "default" || v.name === "unchunked" || v.name === "ort-defaults",
              );
        for (const v of variants) results.push(...(await measure(ctx, preset, modelPath, v, flops)));
      }
      return results;
    },
  };
}

childMain(import.meta.url, { encode: encodeTask });
