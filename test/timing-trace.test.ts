// The timing trace: spans published on the diagnostics channel (util/timing-trace.ts), and the CLI's
// PERSAM_DB_TIMINGS file that names where a command's time went (read by bench/cases/cli.ts).

import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { onTimingSpan, type TimingSpan, timeSpan, timingTraced } from "../src/util/timing-trace.js";
import { runCli } from "./support/cli.js";
import { H, rectMask, W, writePng, writeSquarePhotos } from "./support/square-photos.js";

let work: string;
let segmentArgs: string[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "persam-timing-trace-"));
  const model = await writeTinyModel({ dir: join(work, "model") });
  await mkdir(join(work, "photos"));
  await writeSquarePhotos(join(work, "photos"));
  await writePng(join(work, "a-mask.png"), rectMask(W, H, 20, 10, 60, 50));
  segmentArgs = [
    "segment",
    "photos",
    "--ref",
    "photos/a.png",
    "--ref-mask",
    "a-mask.png",
    "-o",
    "out",
    "--encoder",
    model.encoderPath,
    "--decoder",
    model.decoderPath,
    "--quiet",
  ];
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface TraceFile {
  format: number;
  argv: string[];
  exitCode: number;
  endMs: number;
  spans: TimingSpan[];
}

describe("timeSpan", () => {
  it("publishes nothing while nobody listens, and a span (failed ones marked) while someone does", async () => {
    expect(timingTraced()).toBe(false);
    expect(await timeSpan("alone", async () => 7)).toBe(7);
    const seen: TimingSpan[] = [];
    const stop = onTimingSpan((s) => seen.push(s));
    try {
      expect(timingTraced()).toBe(true);
      await timeSpan(
        "work",
        async () => 3,
        (n) => ({ n }),
      );
      await expect(
        timeSpan("broken", async () => {
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
    } finally {
      stop();
    }
    expect(timingTraced()).toBe(false);
    expect(seen.map((s) => [s.name, s.detail])).toEqual([
      ["work", { n: 3 }],
      ["broken", { failed: true }],
    ]);
    for (const s of seen) expect(s.endMs).toBeGreaterThanOrEqual(s.startMs);
  });
});

describe("PERSAM_DB_TIMINGS", () => {
  it("makes `segment` write where its time went: start, command load, model open, reference, each photo, outputs", async () => {
    const tracePath = join(work, "trace.json");
    const r = await runCli(segmentArgs, {
      env: { PERSAM_DB_CACHE: join(work, "cache"), PERSAM_DB_TIMINGS: tracePath },
      cwd: work,
    });
    expect(r.code).toBeLessThanOrEqual(2);
    const trace = JSON.parse(await readFile(tracePath, "utf8")) as TraceFile;
    expect(trace).toMatchObject({ format: 1, argv: segmentArgs, exitCode: r.code });
    const names = trace.spans.map((s) => s.name);
    for (const name of [
      "cli.start",
      "cli.command-load",
      "model.decoder-weights",
      "model.encoder",
      "model.decoder",
      "reference",
      "outputs",
      "model.dispose",
    ]) {
      expect(
        names.filter((n) => n === name),
        name,
      ).toHaveLength(1);
    }
    expect(names.filter((n) => n === "photo.segment")).toHaveLength(3);
    expect(names.filter((n) => n === "photo.write")).toHaveLength(3);
    // One encoder run per photo (the reference photo's embedding is reused for its segmentation).
    expect(names.filter((n) => n === "encode")).toHaveLength(3);
    const first = (name: string) => trace.spans.find((s) => s.name === name)!;
    expect(first("cli.start").startMs).toBe(0);
    expect(first("model.decoder").endMs).toBeLessThanOrEqual(first("reference").startMs);
    expect(first("reference").endMs).toBeLessThanOrEqual(first("photo.segment").startMs);
    for (const s of trace.spans) expect(s.endMs).toBeGreaterThanOrEqual(s.startMs);
    expect(trace.endMs).toBeGreaterThanOrEqual(Math.max(...trace.spans.map((s) => s.endMs)));
    // Nobody listens once the command is over.
    expect(timingTraced()).toBe(false);
  });

  it("is not written, and nothing is gathered, without the variable", async () => {
    const before = await readdir(work);
    const r = await runCli(["--version"], { env: {}, cwd: work });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(timingTraced()).toBe(false);
    expect(await readdir(work)).toEqual(before);
  });

  it("costs one warning, never the run, when the file cannot be written", async () => {
    await writeFile(join(work, "a-file"), "not a folder");
    const r = await runCli(["--version"], {
      env: { PERSAM_DB_TIMINGS: join(work, "a-file", "trace.json") },
      cwd: work,
    });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.stderr.split("\n").filter((l) => l !== "")).toEqual([
      expect.stringMatching(/^persam-db: warning: cannot write the timing trace .*a-file\/trace\.json: /),
    ]);
  });
});
