// Case `cli`: the whole run as a user waits for it. The built CLI (dist/cli/bin.js) runs as a child
// process, one process per subject (`persam-db segment Images/<subject> --ref 00.jpg --ref-mask
// 00.png`), on the PerSeg fixtures of ../shared/fixtures/perseg-mini (generated photos and masks
// when that folder is absent). Each process writes a timing trace (PERSAM_DB_TIMINGS), from which
// the case prints where the time goes: process start and imports, model open (decoder weights,
// encoder session, decoder graph), reference, per photo (its encode apart), outputs, and disposal
// plus exit. Beside it: bare `node -e 0`, `persam-db --version` and `--help`.
//
// The machine is shared, so every quantity is a median over rounds, rounds interleave what is
// compared, and each child's CPU time (user + system, from /proc/self/stat's cutime + cstime) is
// reported beside its wall time. Every photo is encoded in every round (the embedding cache is off,
// as a first run on new photos); the cache of what is derived from model files stays warm, except in
// one extra run per round that starts from an empty one (`cli/first-model-open`).

import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join, relative, resolve } from "node:path";
import { encodeJpeg, encodePng } from "../../src/image/image-io.js";
import { type BenchCase, type BenchContext, type Measurement, round } from "../harness.js";
import { ensureVitEncoderModel, type VitPreset } from "../models/vit-encoder.js";
import { summarize } from "../stats.js";
import { syntheticPhoto } from "../synthetic.js";
import { benchmarkDecoder } from "./prepare.js";

/** Options of {@link cliCase}. */
export interface CliCaseOptions {
  /** Generated model files, photos and the CLI's cache live here (bench/out/cache). */
  readonly cacheDir: string;
  /** Output folders of the runs go here (bench/out). */
  readonly outDir: string;
  /** A local encoder .onnx (with `decoder`); default: the generated SlimSAM-77-size encoder. */
  readonly encoder?: string | undefined;
  /** A local decoder .safetensors (with `encoder`). */
  readonly decoder?: string | undefined;
  /** A PerSeg-layout folder (Images/<subject>/NN.jpg, Annotations/<subject>/NN.png). */
  readonly data?: string | undefined;
  /** The generated ViT-B-size encoder instead of SlimSAM-77 size (without `encoder`). */
  readonly big: boolean;
  /**
   * A JSON file from bench/official/ (`{"seconds": …}`: the official code's time on the same
   * photos and weights, model loading excluded): the case then reports the ratio.
   */
  readonly official?: string | undefined;
  /**
   * Also run every subject with no reference given (the automatic choice), interleaved with the
   * given-mask runs, and report the ratio (target ≤ 1.15).
   */
  readonly auto?: boolean | undefined;
}

/** A run with the automatic reference may take at most this many times the given-reference run. */
const AUTO_RATIO = 1.15;
/** The whole run must be this many times faster than the official code. */
const OFFICIAL_SPEEDUP = 5;
/** `--version` and `--help` may take this much longer than bare node. */
const STARTUP_BUDGET_MS = 100;
const SUBJECT_SEEDS = [11, 12, 13];

interface Span {
  readonly name: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly detail?: Record<string, unknown>;
}

interface Trace {
  readonly exitCode: number;
  readonly endMs: number;
  readonly spans: readonly Span[];
}

/** One child process: wall time as this process saw it, CPU time of the child, its trace. */
interface ChildRun {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly code: number | null;
  readonly stderr: string;
}

/** CPU time (user + system) of the waited-for children of this process so far, ms (10 ms ticks). */
function childrenCpuMs(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

async function runProcess(args: readonly string[], env: NodeJS.ProcessEnv): Promise<ChildRun> {
  const cpu0 = childrenCpuMs();
  const t0 = performance.now();
  const child = spawn(process.execPath, [...args], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const code = await new Promise<number | null>((done, fail) => {
    child.on("error", fail);
    child.on("close", (c) => done(c));
  });
  return { wallMs: performance.now() - t0, cpuMs: childrenCpuMs() - cpu0, code, stderr };
}

/**
 * The CLI as `npm run build` makes it (tsc, then scripts/bundle-cli.mjs): dist/cli/bin.js, rebuilt
 * when a source is newer (the bench's own build, dist-bench/, has no package.json two folders up for
 * `--version`, and is not bundled).
 */
function builtCli(ctx: BenchContext): string {
  const bin = resolve("dist", "cli", "bin.js");
  const newest = (dir: string): number =>
    readdirSync(dir, { recursive: true, encoding: "utf8" }).reduce(
      (t, name) => Math.max(t, statSync(join(dir, name)).mtimeMs),
      0,
    );
  if (!existsSync(bin) || newest(resolve("src")) > newest(resolve("dist"))) {
    ctx.log("cli: building dist/ (tsc -p tsconfig.build.json, scripts/bundle-cli.mjs)");
    execFileSync(
      process.execPath,
      [resolve("node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
      {
        stdio: "inherit",
      },
    );
    execFileSync(process.execPath, [resolve("scripts/bundle-cli.mjs")], { stdio: "inherit" });
  }
  return bin;
}

/** The PerSeg folder: the option's, the shared fixtures, or three generated subjects. */
async function persegFolder(
  options: CliCaseOptions,
  ctx: BenchContext,
): Promise<{ dir: string; source: string }> {
  if (options.data !== undefined) return { dir: resolve(options.data), source: "--data" };
  const shared = resolve("..", "shared", "fixtures", "perseg-mini");
  if (existsSync(join(shared, "Images"))) return { dir: shared, source: "../shared/fixtures/perseg-mini" };
  const dir = join(options.cacheDir, "perseg-generated");
  const width = 1440;
  const height = 1080;
  for (const [s, seed] of SUBJECT_SEEDS.entries()) {
    const subject = `subject-${s + 1}`;
    await mkdir(join(dir, "Images", subject), { recursive: true });
    await mkdir(join(dir, "Annotations", subject), { recursive: true });
    for (let i = 0; i < 3; i++) {
      const stem = String(i).padStart(2, "0");
      const photo = join(dir, "Images", subject, `${stem}.jpg`);
      if (existsSync(photo)) continue;
      ctx.log(`cli: generating ${photo}`);
      const data = syntheticPhoto(width, height, seed * 10 + i);
      await writeFile(photo, await encodeJpeg({ data, width, height, channels: 3 }, 92));
      // syntheticPhoto's subject: the centred ellipse with radii width/5, height/4.
      const mask = new Uint8Array(width * height);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const dx = (x - width / 2) / (width / 5);
          const dy = (y - height / 2) / (height / 4);
          mask[y * width + x] = dx * dx + dy * dy < 1 ? 255 : 0;
        }
      }
      await writeFile(
        join(dir, "Annotations", subject, `${stem}.png`),
        await encodePng({ data: mask, width, height, channels: 1 }),
      );
    }
  }
  return { dir, source: "generated (../shared/fixtures/perseg-mini is absent)" };
}

/** Sum of the spans named `name` (or matching it) in a trace. */
function total(trace: Trace, name: string | RegExp): number {
  return trace.spans
    .filter((s) => (typeof name === "string" ? s.name === name : name.test(s.name)))
    .reduce((sum, s) => sum + (s.endMs - s.startMs), 0);
}

/** Where one subject's process spent its time, ms. */
function split(trace: Trace, wallMs: number): Record<string, number> {
  const start = total(trace, "cli.start");
  const commandLoad = total(trace, "cli.command-load");
  const modelOpen = total(trace, /^model\.(decoder-weights|encoder|decoder)$/);
  const reference = total(trace, "reference");
  const photos = total(trace, "photo.segment");
  const encodes = total(trace, "encode");
  const referenceEncodes = trace.spans
    .filter((s) => s.name === "encode")
    .filter((e) =>
      trace.spans.some((r) => r.name === "reference" && e.startMs >= r.startMs && e.endMs <= r.endMs),
    )
    .reduce((sum, s) => sum + (s.endMs - s.startMs), 0);
  const outputs = total(trace, /^(photo\.write|photo\.write\.wait|outputs)$/);
  const dispose = total(trace, "model.dispose");
  const photoCount = trace.spans.filter((s) => s.name === "photo.segment").length;
  const accounted = start + commandLoad + modelOpen + reference + photos + outputs + dispose;
  return {
    startAndImportsMs: start + commandLoad,
    nodeStartMs: start,
    commandLoadMs: commandLoad,
    modelOpenMs: modelOpen,
    decoderWeightsMs: total(trace, "model.decoder-weights"),
    encoderSessionMs: total(trace, "model.encoder"),
    decoderGraphMs: total(trace, "model.decoder"),
    referenceMs: reference,
    referenceEncodeMs: referenceEncodes,
    photosMs: photos,
    photoCount,
    perPhotoMs: photoCount > 0 ? photos / photoCount : 0,
    perPhotoEncodeMs: photoCount > 0 ? (encodes - referenceEncodes) / photoCount : 0,
    outputsMs: outputs,
    disposeMs: dispose,
    // Scan, reference-mask files, gaps between spans; then node's exit and the spawn itself.
    otherMs: trace.endMs - accounted,
    exitAndSpawnMs: wallMs - trace.endMs,
    wallMs,
  };
}

function medianOf(rows: readonly Record<string, number>[], key: string): number {
  return round(summarize(rows.map((r) => r[key] ?? 0)).median);
}

/** The `cli` case. */
export function cliCase(options: CliCaseOptions): BenchCase {
  return {
    name: "cli",
    summary:
      "whole run: the built CLI, one process per PerSeg subject (segment --ref-mask), split by a timing trace; --version/--help start-up",
    async run(ctx) {
      if ((options.encoder === undefined) !== (options.decoder === undefined)) {
        throw new Error("Expected --encoder and --decoder together but received one of them");
      }
      const bin = builtCli(ctx);
      const preset: VitPreset = options.big ? "sam-vit-base" : "slimsam-77";
      const encoder = options.encoder ?? ensureVitEncoderModel({ preset, seed: 1 });
      const decoder = options.decoder ?? (await benchmarkDecoder(options.cacheDir));
      const modelLabel = options.encoder
        ? relative(".", resolve(options.encoder))
        : `${preset}-size (generated)`;
      const data = await persegFolder(options, ctx);
      const subjects = (await readdir(join(data.dir, "Images"))).filter((s) => !s.startsWith(".")).sort();
      const runs = ctx.runs ?? 3;
      const scratch = join(options.outDir, "cli");
      const modelCache = join(scratch, "persam-cache");
      const env = (trace: string): NodeJS.ProcessEnv => ({
        ...process.env,
        PERSAM_DB_CACHE: modelCache,
        PERSAM_DB_EMBEDDING_CACHE: "0",
        PERSAM_DB_TIMINGS: trace,
        HF_HUB_OFFLINE: "1",
      });

      // ---- start-up: bare node, --version, --help, interleaved -----------------------------
      const startup: Record<string, ChildRun[]> = { node: [], version: [], help: [] };
      const startupArgs: Record<string, string[]> = {
        node: ["-e", "0"],
        version: [bin, "--version"],
        help: [bin, "--help"],
      };
      const startupRounds = Math.max(10, runs * 5);
      ctx.log(`cli: start-up, ${startupRounds} interleaved rounds of node -e 0, --version, --help`);
      for (let r = 0; r < startupRounds; r++) {
        const order = r % 2 === 0 ? ["node", "version", "help"] : ["help", "version", "node"];
        for (const k of order) startup[k]!.push(await runProcess(startupArgs[k]!, { ...process.env }));
      }
      const nodeWall = summarize(startup.node!.map((c) => c.wallMs)).median;

      // ---- whole runs ---------------------------------------------------------------------
      const subjectRun = async (
        subject: string,
        tag: string,
        auto = false,
      ): Promise<Record<string, number>> => {
        const out = join(scratch, "out", subject);
        const tracePath = join(scratch, `trace-${subject}-${tag}.json`);
        await rm(out, { recursive: true, force: true });
        await rm(tracePath, { force: true });
        const reference = auto
          ? []
          : [
              "--ref",
              join(data.dir, "Images", subject, "00.jpg"),
              "--ref-mask",
              join(data.dir, "Annotations", subject, "00.png"),
            ];
        const args = [
          bin,
          "segment",
          join(data.dir, "Images", subject),
          ...reference,
          "-o",
          out,
          "--encoder",
          encoder,
          "--decoder",
          decoder,
          "--threads",
          String(ctx.threads),
          "--quiet",
        ];
        const child = await runProcess(args, env(tracePath));
        // Exit 2 is expected with random weights (doubtful masks); anything else is a failure. With
        // random weights the automatic choice may find no usable candidate (exit 1, one line).
        if (child.code !== 0 && child.code !== 2) {
          throw new Error(`persam-db segment ${subject} exited ${child.code}: ${child.stderr.slice(-2000)}`);
        }
        const trace = JSON.parse(await readFile(tracePath, "utf8")) as Trace;
        return { ...split(trace, child.wallMs), cpuMs: child.cpuMs };
      };

      const warm: Record<string, number>[] = [];
      const cold: Record<string, number>[] = [];
      const autoRows: Record<string, number>[] = [];
      const wholeWall: number[] = [];
      const wholeCpu: number[] = [];
      const autoWall: number[] = [];
      ctx.log(
        `cli: ${runs} rounds × (1 run from an empty model cache + ${subjects.length} subjects), ${modelLabel}, ${ctx.threads} threads`,
      );
      for (let r = 0; r < runs; r++) {
        await rm(modelCache, { recursive: true, force: true });
        const first = subjects[r % subjects.length]!;
        cold.push(await subjectRun(first, `cold-${r}`));
        ctx.log(`cli: round ${r + 1} cold ${first}: ${cold.at(-1)!.wallMs!.toFixed(0)} ms`);
        let wall = 0;
        let cpu = 0;
        // Rotate the order, so that no subject always runs first after the cold run.
        for (let k = 0; k < subjects.length; k++) {
          const subject = subjects[(r + k) % subjects.length]!;
          const row = await subjectRun(subject, `warm-${r}`);
          warm.push(row);
          wall += row.wallMs!;
          cpu += row.cpuMs!;
          ctx.log(`cli: round ${r + 1} ${subject}: ${row.wallMs!.toFixed(0)} ms`);
        }
        wholeWall.push(wall);
        wholeCpu.push(cpu);
        if (options.auto) {
          let autoTotal = 0;
          for (let k = 0; k < subjects.length; k++) {
            const subject = subjects[(r + k) % subjects.length]!;
            const row = await subjectRun(subject, `auto-${r}`, true);
            autoRows.push(row);
            autoTotal += row.wallMs!;
            ctx.log(`cli: round ${r + 1} ${subject} (automatic reference): ${row.wallMs!.toFixed(0)} ms`);
          }
          autoWall.push(autoTotal);
        }
      }

      const official = options.official
        ? (JSON.parse(await readFile(options.official, "utf8")) as {
            seconds: number;
            perPhotoSeconds?: number;
          })
        : undefined;
      const whole = summarize(wholeWall);
      const photos = warm.reduce((s, r) => s + (r.photoCount ?? 0), 0) / runs;
      const splitKeys = [
        "startAndImportsMs",
        "nodeStartMs",
        "commandLoadMs",
        "modelOpenMs",
        "decoderWeightsMs",
        "encoderSessionMs",
        "decoderGraphMs",
        "referenceMs",
        "referenceEncodeMs",
        "perPhotoMs",
        "perPhotoEncodeMs",
        "outputsMs",
        "disposeMs",
        "otherMs",
        "exitAndSpawnMs",
        "wallMs",
        "cpuMs",
      ];
      const perProcess = Object.fromEntries(splitKeys.map((k) => [k, medianOf(warm, k)]));
      const results: Measurement[] = [];
      for (const k of ["node", "version", "help"]) {
        const rows = startup[k]!;
        const wall = summarize(rows.map((c) => c.wallMs));
        results.push({
          name: `cli/${k === "node" ? "node-e0" : k}`,
          description: k === "node" ? "bare `node -e 0`" : `persam-db --${k} (built CLI)`,
          stats: wall,
          cpu: summarize(rows.map((c) => c.cpuMs)),
          ...(k === "node" ? {} : { targetMs: round(nodeWall + STARTUP_BUDGET_MS) }),
          details:
            k === "node"
              ? {}
              : { overNodeMs: round(wall.median - nodeWall), overNodeTargetMs: `≤ ${STARTUP_BUDGET_MS}` },
        });
      }
      results.push({
        name: "cli/run",
        description: `${subjects.length} subjects × their photos, one \`persam-db segment --ref-mask\` process each (model cache warm, embeddings computed)`,
        stats: whole,
        cpu: summarize(wholeCpu),
        threads: ctx.threads,
        details: {
          model: modelLabel,
          data: data.source,
          subjects: subjects.length,
          photosPerRun: photos,
          perProcessMedians: JSON.stringify(perProcess),
          ...(official
            ? {
                officialS: official.seconds,
                speedup: round(official.seconds / (whole.median / 1000)),
                speedupTarget: `≥ ${OFFICIAL_SPEEDUP}`,
              }
            : {}),
          load1AtEnd: round(loadavg()[0]!),
        },
      });
      if (options.auto) {
        const auto = summarize(autoWall);
        results.push({
          name: "cli/run-auto",
          description: "the same run with no reference given: the automatic choice",
          stats: auto,
          threads: ctx.threads,
          details: {
            ratioToGiven: round(auto.median / whole.median),
            ratioTarget: `≤ ${AUTO_RATIO}`,
            referenceMs: medianOf(autoRows, "referenceMs"),
            givenReferenceMs: medianOf(warm, "referenceMs"),
          },
        });
      }
      const phase = (name: string, key: string, description: string, rows = warm): Measurement => ({
        name: `cli/${name}`,
        description,
        stats: summarize(rows.map((r) => r[key] ?? 0)),
        threads: ctx.threads,
      });
      results.push(
        phase(
          "start+imports",
          "startAndImportsMs",
          "process start to main(), plus the command's module import",
        ),
        phase("model-open", "modelOpenMs", "decoder weights + encoder session + decoder graph, cache warm"),
        phase("model-open/encoder", "encoderSessionMs", "the encoder session, cache warm"),
        phase("model-open/decoder", "decoderGraphMs", "the decoder graph session, cache warm"),
        phase("reference", "referenceMs", "the reference step (its photo's encode included)"),
        phase(
          "photo",
          "perPhotoMs",
          "per photo: decode, encode (or the reference's), PerSAM, per process mean",
        ),
        phase("photo/encode", "perPhotoEncodeMs", "per photo: encoder runs outside the reference step"),
        phase("outputs", "outputsMs", "mask PNGs, per-photo JSON, segment.json"),
        phase("dispose+exit", "exitAndSpawnMs", "after the trace: node's exit and the spawn (dispose apart)"),
        phase(
          "first-model-open",
          "modelOpenMs",
          "model open in a process starting from an empty cache",
          cold,
        ),
        phase("first-run", "wallMs", "one subject's process starting from an empty model cache", cold),
      );
      return results;
    },
  };
}
