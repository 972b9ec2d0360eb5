// Case `encoder`: SAM's ViT image encoder at real size (random BENCHMARK weights, vit-encoder.ts):
// session create time, encode time, FLOPs from the graph, achieved GFLOP/s against the CPU's
// theoretical peak, and peak RSS. Every configuration runs in a child process of its own
// (bench/rss.ts), so its peak RSS is its own. SlimSAM-77 by default; SAM ViT-B with --big.
// Without options it measures persam-db's defaults and the same without attention chunking (the
// graph as exported); --sweep also measures onnxruntime session options (optimisation level, memory
// arena, memory pattern, threads, execution mode, spinning) one change at a time against
// onnxruntime's defaults, and 4 attention chunks instead of 12. --encoder FILE measures an encoder
// file made elsewhere (e.g. by torch.onnx.export, bench/models/torch-vit-encoder.py) instead.

import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
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
import { type MatMulPeak, measureMatMulPeak, PEAK_SIDE } from "../peak.js";
import type { OperatorProfile } from "../profile.js";
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
  /** Also profile each variant by operator (one more child process each, onnxruntime's profiler). */
  readonly profile?: boolean | undefined;
  /** Local encoder files to measure besides (or, with `only`, instead of) the generated ones. */
  readonly encoders?: readonly string[] | undefined;
  /** Measure only `encoders`. */
  readonly only?: boolean | undefined;
  /** Folder for profiler traces. @default the system's temporary folder */
  readonly scratchDir?: string | undefined;
  /** Child processes per configuration, in alternating order. @default 1 */
  readonly rounds?: number | undefined;
  /** The configurations to measure, by name (see VARIANTS). @default default and unchunked (all with `sweep`) */
  readonly variants?: readonly string[] | undefined;
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
  allowSpinning: true,
  attentionChunks: 1,
});

const VARIANTS: readonly Variant[] = [
  {
    name: "default",
    description: `persam-db's defaults: level all, arena on, pattern off, no spinning, attention in ${DEFAULT_ATTENTION_CHUNKS} chunks`,
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
  {
    name: "default-spin",
    description: "persam-db's defaults + session.intra_op.allow_spinning 1 (onnxruntime's default)",
    options: (t) => ({ ...DEFAULTS(t), allowSpinning: true }),
  },
  {
    name: "default-threads-1",
    description: "persam-db's defaults on 1 thread",
    options: () => DEFAULTS(1),
  },
];

/** Child side: open the session, encode a fixed random input warmup + runs times. */
function encodeTask(raw: unknown): Promise<EncoderTiming> {
  return timeEncoder(raw as EncoderTimingArgs);
}

/** Child side: the measured MatMul peak on `threads` threads. */
function peakTask(raw: unknown): Promise<MatMulPeak> {
  return measureMatMulPeak((raw as { threads: number }).threads);
}

/** The top operators of a profile, as one line for the details. */
function profileLine(p: OperatorProfile): string {
  return p.byOp
    .slice(0, 12)
    .map((o) => `${o.op} ${o.ms.toFixed(1)} ms ${(100 * o.share).toFixed(1)}% (${o.nodes})`)
    .join(", ");
}

/**
 * FLOPs of a graph at [1,3,1024,1024] (static count): a preset's (no weights generated) or a file's.
 * Nodes the counter does not know are left out of a file's count (and named in `byOp`).
 */
function graphFlops(model: VitPreset | { file: string }): { total: number; mac: number; byOp: string } {
  const file = typeof model !== "string";
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

/** One encoder to measure. */
interface EncoderModel {
  /** In measurement names: the preset, or the file's name. */
  readonly label: string;
  readonly path: string;
  readonly flops: { total: number; mac: number; byOp: string };
}

/**
 * The measured peak, in a child process of its own right before each encoder configuration (so
 * that both see the machine alike); the case reports each configuration against the median of all.
 */
async function measuredPeak(ctx: BenchContext, threads: number, peaks: number[]): Promise<void> {
  const report = await runChild<MatMulPeak>(import.meta.url, "peak", { threads });
  peaks.push(report.value.gflopPerS);
  ctx.log(
    `encoder: measured peak (${PEAK_SIDE}² fp32 MatMul, ${threads} threads): ${report.value.gflopPerS.toFixed(1)} GFLOP/s`,
  );
}

/** One child process of a configuration: peak first, then the encoder (bench/rss.ts). */
async function collect(
  ctx: BenchContext,
  model: EncoderModel,
  variant: Variant,
  peaks: number[],
): Promise<{ timing: EncoderTiming; maxRssBytes: number; baseRssBytes: number; loadAtEnd: number }> {
  const options = variant.options(ctx.threads);
  const threads = options.threads ?? ctx.threads;
  ctx.log(`encoder/${model.label} [${variant.name}]: ${variant.description}`);
  await measuredPeak(ctx, threads, peaks);
  const report = await runChild<EncoderTiming>(import.meta.url, "encode", {
    modelPath: model.path,
    options,
    warmup: warmupOf(ctx, 1),
    runs: runsOf(ctx, 3),
  } satisfies EncoderTimingArgs);
  return {
    timing: report.value,
    maxRssBytes: report.maxRssBytes,
    baseRssBytes: report.baseRssBytes,
    loadAtEnd: report.loadAtEnd,
  };
}

/** The measurements of one configuration from its child processes (one per round). */
async function summariseVariant(
  ctx: BenchContext,
  model: EncoderModel,
  variant: Variant,
  children: readonly Awaited<ReturnType<typeof collect>>[],
  peaks: readonly number[],
  profile: { readonly dir: string } | undefined,
): Promise<Measurement[]> {
  const options = variant.options(ctx.threads);
  const threads = options.threads ?? ctx.threads;
  const { flops } = model;
  // Profiled apart: the profiler's own cost must not reach the timed runs.
  const profiled = profile
    ? (
        await runChild<EncoderTiming>(import.meta.url, "encode", {
          modelPath: model.path,
          options,
          warmup: 1,
          runs: 2,
          profilePrefix: join(profile.dir, `profile-${process.pid}-${model.label}-${variant.name}`),
        } satisfies EncoderTimingArgs)
      ).value.profile
    : undefined;
  const first = children[0]!;
  const r = first.timing;
  const wall = summarize(children.flatMap((c) => c.timing.wallMs));
  const cpu = summarize(children.flatMap((c) => c.timing.cpuMs));
  const peak = cpuPeakFlops(threads);
  const measured = summarize(peaks).median * 1e9;
  const achieved = flops.total / (wall.median / 1000);
  const suffix = variant.name === "default" ? "" : `[${variant.name}]`;
  const maxRss = Math.max(...children.map((c) => c.maxRssBytes));
  const details = {
    variant: variant.name,
    options: variant.description,
    rounds: children.length,
    gflop: round(flops.total / 1e9),
    macGflop: round(flops.mac / 1e9),
    topOpsGflop: flops.byOp,
    gflopPerS: round(achieved / 1e9),
    measuredPeakGflopPerS: round(measured / 1e9),
    fractionOfMeasuredPeak: Math.round((achieved / measured) * 1000) / 1000,
    theoreticalPeakGflopPerS: round(peak.peakFlops / 1e9),
    fractionOfTheoreticalPeak: Math.round((achieved / peak.peakFlops) * 1000) / 1000,
    peakRssMiB: mib(maxRss),
    rssAfterCreateMiB: mib(r.rssAfterCreateBytes),
    baseRssMiB: mib(first.baseRssBytes),
    createMs: round(summarize(children.map((c) => c.timing.createMs)).median),
    loadNotes: r.loadNotes.join("; "),
    load1AtEnd: round(children.at(-1)!.loadAtEnd),
    ...(profiled ? { profileKernelMs: round(profiled.kernelMs), profileTopOps: profileLine(profiled) } : {}),
  };
  return [
    {
      name: `encoder/${model.label}/create${suffix}`,
      description: `open the onnxruntime session of the ${model.label} encoder file (${variant.description})`,
      stats: summarize(children.map((c) => c.timing.createMs)),
      threads,
      details: { peakRssMiB: details.peakRssMiB, rssAfterCreateMiB: details.rssAfterCreateMiB },
    },
    {
      name: `encoder/${model.label}/encode${suffix}`,
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
    summary:
      "SAM image encoder, SlimSAM-77 size (ViT-B with --big, or --encoder FILE): create, encode, GFLOP/s against the measured MatMul peak, peak RSS",
    async run(ctx) {
      const models: EncoderModel[] = [];
      if (!options.only) {
        const presets: VitPreset[] = options.big ? ["slimsam-77", "sam-vit-base"] : ["slimsam-77"];
        for (const preset of presets) {
          ctx.log(`encoder/${preset}: ${(vitParameterCount(preset) / 1e6).toFixed(1)} M random parameters`);
          const path =
            options.modelDir === undefined
              ? ensureVitEncoderModel({ preset })
              : ensureVitEncoderModel({ preset }, options.modelDir);
          models.push({ label: preset, path, flops: graphFlops(preset) });
        }
      }
      for (const file of options.encoders ?? []) {
        models.push({
          label: basename(file).replace(/\.onnx$/, ""),
          path: file,
          flops: graphFlops({ file }),
        });
      }
      const profile = options.profile ? { dir: options.scratchDir ?? tmpdir() } : undefined;
      if (profile) await mkdir(profile.dir, { recursive: true });
      const peaks: number[] = [];
      const results: Measurement[] = [];
      for (const model of models) {
        const named = options.variants;
        if (named?.some((n) => !VARIANTS.some((v) => v.name === n))) {
          throw new Error(
            `Expected variants among ${VARIANTS.map((v) => v.name).join(", ")} but received ${named.join(", ")}`,
          );
        }
        const variants = named
          ? VARIANTS.filter((v) => named.includes(v.name))
          : !options.sweep
            ? VARIANTS.filter((v) => v.name === "default" || v.name === "unchunked")
            : model.label === "slimsam-77"
              ? VARIANTS
              : VARIANTS.filter(
                  (v) => v.name === "default" || v.name === "unchunked" || v.name === "ort-defaults",
                );
        // Rounds alternate the configurations (reversed every other round), so that a load that
        // comes and goes falls on all of them alike.
        const children = new Map<string, Awaited<ReturnType<typeof collect>>[]>();
        for (let round = 0; round < (options.rounds ?? 1); round++) {
          const order = round % 2 === 0 ? variants : [...variants].reverse();
          for (const v of order) {
            const list = children.get(v.name) ?? [];
            list.push(await collect(ctx, model, v, peaks));
            children.set(v.name, list);
          }
        }
        for (const v of variants) {
          results.push(...(await summariseVariant(ctx, model, v, children.get(v.name)!, peaks, profile)));
        }
      }
      await measuredPeak(ctx, ctx.threads, peaks);
      return results;
    },
  };
}

childMain(import.meta.url, { encode: encodeTask, peak: peakTask });
