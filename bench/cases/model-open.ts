// Case `model-open`: `SamModel.load` as a command does it, with persam-db's prepared-model cache
// (src/segment/sam/model-cache.ts), each open in a fresh child process (bench/rss.ts): "first"
// starts from an empty cache (the attention rewrite and onnxruntime's optimisation run, and their
// result is stored), "second" opens what the first stored. The two alternate, so that the machine's
// load falls on both alike; medians of wall and CPU time, and the split of each open (decoder
// weights, encoder source hash, encoder session, decoder graph) from the timing trace.
// Model: the generated SlimSAM-77-size encoder (ViT-B size with --big), or --encoder/--decoder.

import { rm } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { SamModel } from "../../src/segment/sam/sam-model.js";
import { onTimingSpan, type TimingSpan } from "../../src/util/timing-trace.js";
import { type BenchCase, type Measurement, round } from "../harness.js";
import { ensureVitEncoderModel, type VitPreset } from "../models/vit-encoder.js";
import { childMain, mib, runChild } from "../rss.js";
import { summarize } from "../stats.js";
import { benchmarkDecoder } from "./prepare.js";

/** Options of {@link modelOpenCase}. */
export interface ModelOpenCaseOptions {
  /** Generated decoder and the cache folders live here (bench/out/cache). */
  readonly cacheDir: string;
  readonly encoder?: string | undefined;
  readonly decoder?: string | undefined;
  readonly big: boolean;
}

interface OpenArgs {
  readonly encoderPath: string;
  readonly decoderPath: string;
  readonly modelCacheDir: string;
  readonly threads: number;
}

interface OpenResult {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly spans: Record<string, number>;
  readonly fromCache: boolean;
  readonly warnings: readonly string[];
}

/** Child side: one SamModel.load, timed, with its spans summed by name. */
async function openTask(raw: unknown): Promise<OpenResult> {
  const args = raw as OpenArgs;
  const spans: TimingSpan[] = [];
  const stop = onTimingSpan((s) => spans.push(s));
  const warnings: string[] = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const model = await SamModel.load({
    files: { encoderPath: args.encoderPath, decoderPath: args.decoderPath, label: "bench" },
    threads: args.threads,
    modelCacheDir: args.modelCacheDir,
    onWarning: (m) => warnings.push(m),
  });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  stop();
  const fromCache = model.encoder.fromCache;
  await model.dispose();
  const sums: Record<string, number> = {};
  for (const s of spans) sums[s.name] = (sums[s.name] ?? 0) + (s.endMs - s.startMs);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, spans: sums, fromCache, warnings };
}

/** The `model-open` case. */
export function modelOpenCase(options: ModelOpenCaseOptions): BenchCase {
  return {
    name: "model-open",
    summary:
      "SamModel.load from an empty prepared-model cache and from a filled one (child processes, alternating)",
    async run(ctx) {
      if ((options.encoder === undefined) !== (options.decoder === undefined)) {
        throw new Error("Expected --encoder and --decoder together but received one of them");
      }
      const preset: VitPreset = options.big ? "sam-vit-base" : "slimsam-77";
      const encoderPath = options.encoder ?? ensureVitEncoderModel({ preset, seed: 1 });
      const decoderPath = options.decoder ?? (await benchmarkDecoder(options.cacheDir));
      const label = options.encoder ? relative(".", resolve(options.encoder)) : `${preset}-size (generated)`;
      const modelCacheDir = join(options.cacheDir, "model-open-cache");
      const runs = ctx.runs ?? 5;
      const rows: { first: OpenResult[]; second: OpenResult[]; firstRss: number[]; secondRss: number[] } = {
        first: [],
        second: [],
        firstRss: [],
        secondRss: [],
      };
      const args: OpenArgs = { encoderPath, decoderPath, modelCacheDir, threads: ctx.threads };
      ctx.log(`model-open: ${label}, ${runs} × (first, second), ${ctx.threads} threads`);
      for (let r = 0; r < runs; r++) {
        await rm(modelCacheDir, { recursive: true, force: true });
        const first = await runChild<OpenResult>(import.meta.url, "open", args);
        const second = await runChild<OpenResult>(import.meta.url, "open", args);
        if (first.value.fromCache || !second.value.fromCache || second.value.warnings.length > 0) {
          throw new Error(
            `Expected a prepared then a cached open but received ${first.value.fromCache}, ${second.value.fromCache} (${second.value.warnings.join("; ")})`,
          );
        }
        rows.first.push(first.value);
        rows.second.push(second.value);
        rows.firstRss.push(first.maxRssBytes);
        rows.secondRss.push(second.maxRssBytes);
        ctx.log(
          `model-open: round ${r + 1}: ${first.value.wallMs.toFixed(0)} / ${second.value.wallMs.toFixed(0)} ms`,
        );
      }
      const measurement = (name: "first" | "second", description: string): Measurement => {
        const list = rows[name];
        const names = [...new Set(list.flatMap((o) => Object.keys(o.spans)))].sort();
        const split = Object.fromEntries(
          names.map((n) => [`${n}Ms`, round(summarize(list.map((o) => o.spans[n] ?? 0)).median)]),
        );
        return {
          name: `model-open/${name}`,
          description,
          stats: summarize(list.map((o) => o.wallMs)),
          cpu: summarize(list.map((o) => o.cpuMs)),
          threads: ctx.threads,
          details: {
            model: label,
            ...split,
            peakRssMiB: mib(summarize(name === "first" ? rows.firstRss : rows.secondRss).median),
          },
        };
      };
      return [
        measurement("first", "SamModel.load from an empty model cache (prepare, optimise, store)"),
        measurement("second", "SamModel.load from the model cache the first open filled"),
      ];
    },
  };
}

childMain(import.meta.url, { open: openTask });
