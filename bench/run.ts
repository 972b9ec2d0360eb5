// Entry point of the benchmarks: `node dist-bench/bench/run.js [case…] [--runs N] [--warmup N]
// [--threads N] [--out DIR] [--check] [--list]`. Prints the machine and a results table, writes
// both as JSON to bench/out/. Speed targets are reported here, never asserted in tests.

import { mkdir, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { cliCase } from "./cases/cli.js";
import { decodeCase } from "./cases/decode.js";
import { decoderCase } from "./cases/decoder.js";
import { encoderCase } from "./cases/encoder.js";
import { encoderVariantsCase } from "./cases/encoder-variants.js";
import { modelOpenCase } from "./cases/model-open.js";
import { persamCase } from "./cases/persam.js";
import { persamFCase } from "./cases/persam-f.js";
import { postprocessCase } from "./cases/postprocess.js";
import { prepareCase } from "./cases/prepare.js";
import { preprocessCase } from "./cases/preprocess.js";
import { videoCase } from "./cases/video.js";
import type { BenchCase, BenchContext, Measurement } from "./harness.js";
import { formatMachineInfo, machineInfo } from "./machine.js";

const USAGE = `Usage: npm run bench -- [case…] [options]

Cases (all but prepare, encoder-variants, model-open, cli, decode and video when none is named):
decoder, preprocess, postprocess, persam-f, persam, encoder, prepare, encoder-variants, model-open,
cli, decode, video

Options:
  --runs N      timed runs per measurement (default: each case's own, e.g. 20 for decoder)
  --warmup N    untimed runs before timing (default: each case's own)
  --threads N   onnxruntime intra-op threads (default 2)
  --out DIR     folder for the JSON record (default bench/out)
  --check       exit with code 1 when a median misses its target
  --big         encoder, prepare, encoder-variants, video: also / instead use the SAM ViT-B-size encoder (slow)
  --sweep       encoder: also measure onnxruntime session-option variants
  --photos N    prepare: number of generated 12 MP photos (default 20)
  --jobs N      prepare: photos processed at once, as prepare's --jobs (default: prepare's default)
  --encoder-thread  prepare: run the image encoder in a worker thread (SamModelOptions.encoderThread)
  --decode MODE prepare: full (the reference's pixels, default) or scaled (DCT-scaled JPEG decoding)
  --encoder FILE, --decoder FILE  cli, model-open: a local model (default: the generated SlimSAM-77-size
                encoder); encoder: that encoder file instead of the generated ones (beside them with --big)
  --profile     encoder: also profile each configuration by operator (onnxruntime's profiler)
  --auto        cli: also run every subject with the automatic reference, and the ratio
  --rounds N    encoder: child processes per configuration, alternating (default 1)
  --variants A,B  encoder: the session configurations to measure, by name (default, unchunked, …)
  --data DIR    cli: a PerSeg-layout folder (default ../shared/fixtures/perseg-mini, else generated)
  --official FILE  cli: the official code's time on the same run (bench/official/), for the ratio
  --list        list the cases and exit
  --help        this text`;

function positiveInt(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`Expected an integer ≥ ${min} for --${name} but received ${JSON.stringify(value)}`);
  }
  return n;
}

function decodeMode(value: string | undefined): "full" | "scaled" | undefined {
  if (value === undefined || value === "full" || value === "scaled") return value;
  throw new Error(`Expected full or scaled for --decode but received ${JSON.stringify(value)}`);
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** The results as a fixed-width table (also the layout of bench/README.md's tables). */
export function formatTable(results: readonly Measurement[]): string {
  const header = ["measurement", "median ms", "p10", "p90", "min", "cpu ms", "runs", "thr", "target", ""];
  const rows = results.map((r) => {
    const status = r.targetMs === undefined ? "" : r.stats.median <= r.targetMs ? "ok" : "MISS";
    return [
      r.name,
      ms(r.stats.median),
      ms(r.stats.p10),
      ms(r.stats.p90),
      ms(r.stats.min),
      r.cpu === undefined ? "" : ms(r.cpu.median),
      String(r.stats.runs),
      r.threads === undefined ? "" : String(r.threads),
      r.targetMs === undefined ? "" : `≤ ${r.targetMs}`,
      status,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => pad(c, widths[i]!, i > 0 && i < 8))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      runs: { type: "string" },
      warmup: { type: "string" },
      threads: { type: "string" },
      out: { type: "string" },
      check: { type: "boolean", default: false },
      big: { type: "boolean", default: false },
      sweep: { type: "boolean", default: false },
      photos: { type: "string" },
      jobs: { type: "string" },
      "encoder-thread": { type: "boolean", default: false },
      decode: { type: "string" },
      encoder: { type: "string" },
      decoder: { type: "string" },
      data: { type: "string" },
      official: { type: "string" },
      profile: { type: "boolean", default: false },
      auto: { type: "boolean", default: false },
      rounds: { type: "string" },
      variants: { type: "string" },
      list: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const outDir = resolve(values.out ?? join("bench", "out"));
  const cases: readonly BenchCase[] = [
    decoderCase,
    preprocessCase(join(outDir, "cache")),
    postprocessCase,
    persamFCase,
    persamCase,
    encoderCase({
      big: values.big,
      sweep: values.sweep,
      profile: values.profile,
      encoders: values.encoder === undefined ? undefined : [values.encoder],
      only: values.encoder !== undefined && !values.big,
      rounds: positiveInt("rounds", values.rounds, 1),
      variants: values.variants?.split(","),
      scratchDir: join(outDir, "cache", "profiles"),
    }),
    prepareCase({
      cacheDir: join(outDir, "cache"),
      outDir,
      photos: positiveInt("photos", values.photos, 1),
      jobs: positiveInt("jobs", values.jobs, 1),
      encoderThread: values["encoder-thread"],
      decode: decodeMode(values.decode),
      big: values.big,
    }),
    encoderVariantsCase({ big: values.big, scratchDir: join(outDir, "cache", "encoder-variants") }),
    decodeCase({ cacheDir: join(outDir, "cache"), outDir }),
    videoCase({ cacheDir: join(outDir, "cache"), outDir, big: values.big }),
    modelOpenCase({
      cacheDir: join(outDir, "cache"),
      encoder: values.encoder,
      decoder: values.decoder,
      big: values.big,
    }),
    cliCase({
      cacheDir: join(outDir, "cache"),
      outDir,
      encoder: values.encoder,
      decoder: values.decoder,
      data: values.data,
      official: values.official,
      auto: values.auto,
      big: values.big,
    }),
  ];
  if (values.list) {
    for (const c of cases) console.log(`${c.name.padEnd(12)} ${c.summary}`);
    return 0;
  }
  const unknown = positionals.filter((p) => !cases.some((c) => c.name === p));
  if (unknown.length > 0) {
    throw new Error(
      `Expected case names among ${cases.map((c) => c.name).join(", ")} but received ${unknown.join(", ")}`,
    );
  }
  // `prepare`, `encoder-variants`, `model-open`, `cli`, `decode` and `video` (minutes each) run only
  // when named.
  const onlyWhenNamed = ["prepare", "encoder-variants", "model-open", "cli", "decode", "video"];
  const selected =
    positionals.length === 0
      ? cases.filter((c) => !onlyWhenNamed.includes(c.name))
      : cases.filter((c) => positionals.includes(c.name));
  const ctx: BenchContext = {
    runs: positiveInt("runs", values.runs, 1),
    warmup: positiveInt("warmup", values.warmup, 0),
    threads: positiveInt("threads", values.threads, 1) ?? 2,
    log: (message) => process.stderr.write(`· ${message}\n`),
  };

  const machine = machineInfo();
  console.log(formatMachineInfo(machine));
  console.log(`command   ${["bench", ...argv].join(" ")}`);
  const results: Measurement[] = [];
  const failures: { case: string; error: string }[] = [];
  for (const c of selected) {
    try {
      results.push(...(await c.run(ctx)));
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      failures.push({ case: c.name, error: message });
      process.stderr.write(`✗ case ${c.name} failed: ${message}\n`);
    }
  }
  const loadAtEnd = loadavg();
  console.log("");
  console.log(formatTable(results));
  for (const r of results) {
    if (r.details) console.log(`  ${r.name}: ${JSON.stringify(r.details)}`);
  }
  console.log(`load at end: ${loadAtEnd.map((l) => l.toFixed(2)).join(" ")}`);

  await mkdir(outDir, { recursive: true });
  const stamp = machine.date.replace(/[:.]/g, "-");
  const record = {
    machine,
    loadAverageAtEnd: loadAtEnd,
    argv,
    options: { runs: ctx.runs, warmup: ctx.warmup, threads: ctx.threads },
    results,
    failures,
  };
  const json = `${JSON.stringify(record, null, 2)}\n`;
  const file = join(outDir, `bench-${stamp}.json`);
  await writeFile(file, json);
  await writeFile(join(outDir, "latest.json"), json);
  console.log(`wrote ${file}`);

  const missed = results.filter((r) => r.targetMs !== undefined && r.stats.median > r.targetMs);
  if (failures.length > 0) return 1;
  if (values.check && missed.length > 0) {
    console.error(`targets missed: ${missed.map((r) => r.name).join(", ")}`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 2;
  },
);
