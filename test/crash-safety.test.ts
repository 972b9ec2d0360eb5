// Crash safety (issue "Hardening", item 2): `persam-db prepare` and `persam-db push` run as real
// child processes (the compiled CLI, test/support/built-cli.ts) and are killed with SIGKILL at
// seeded random points; the invariant "no half-written file is visible" is checked on what the
// killed run left, then a rerun must finish with the same exit code and the same outputs as an
// uninterrupted run (prepare), or leave the Hub with the local tree in exactly one commit (push).
//
// Every prepare run uses the same photo folder and so the same output path (the reference output is
// moved aside afterwards): files holding absolute paths (onetrainer/*.json, …) then compare byte for
// byte too. Only report.json (compared without createdAt and timings), report.html (timings) and the
// .persam/ resume state (checked for completeness, not compared) are left out of the comparison.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type TinyModelFiles, writeTinyModel } from "../src/segment/models/tiny-model.js";
import { mulberry32 } from "../src/util/seeded-random.js";
import { type BuiltCli, builtCli } from "./support/built-cli.js";
import { type HubServer, type RecordedRequest, startHubServer } from "./support/hub-server.js";
import { hashTree, scene, writeJpeg, writeSceneMask } from "./support/photos.js";
import { finishSetLikePrepare } from "./support/set-manifest.js";

/** Seeds of the prepare kills (one kill point each, stratified over the run). */
const PREPARE_SEEDS = [1, 2, 3, 4];
/** Seeds of the push kills (one request index each). */
const PUSH_SEEDS = [1, 2];
/** Temporary names of unfinished writes (src/util/atomic-write.ts, src/export/presets.ts; push skips the same). */
const TEMP_NAME = /\.tmp($|[.\-_~])|\.incomplete$|\.partial$|~$/i;
const TOKEN = "hf_crashsafetytoken000000001";

let cli: BuiltCli;
let root: string;
let model: TinyModelFiles;
let photos: string;
let outDir: string;
let refDir: string;
let refExit: number;
/** Reference run: when the output folder appeared and when the process ended (ms after spawn). */
let refFirstOutputMs: number;
let refTotalMs: number;

interface ChildRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

function startCli(
  args: readonly string[],
  env: Record<string, string>,
): { child: ChildProcess; done: Promise<ChildRun> } {
  const started = performance.now();
  const child = spawn(process.execPath, [cli.binPath, ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: root, HF_HOME: join(root, "hf"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  const done = new Promise<ChildRun>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started }),
    );
  });
  return { child, done };
}

function prepareArgs(): string[] {
  return [
    "prepare",
    photos,
    "--encoder",
    model.encoderPath,
    "--decoder",
    model.decoderPath,
    "--threads",
    "1",
    "--resolution",
    "64",
    "--keep-doubtful",
  ];
}

/** Each series gets its own persam-db cache (decoder graph), shared by its killed run and its rerun. */
function prepareEnv(series: string): Record<string, string> {
  return { HF_HUB_OFFLINE: "1", PERSAM_DB_CACHE: join(root, `cache-${series}`) };
}

/** Files compared byte for byte with the reference: everything but temp names, .persam/ and the report. */
function compared(path: string): boolean {
  const name = path.slice(path.lastIndexOf("/") + 1);
  return (
    !path.startsWith(".persam/") && !TEMP_NAME.test(name) && path !== "report.json" && path !== "report.html"
  );
}

/** Files under `dir` with a temporary name, sorted. */
async function tempFiles(dir: string): Promise<string[]> {
  return [...(await hashTree(dir)).keys()]
    .filter((p) => TEMP_NAME.test(p.slice(p.lastIndexOf("/") + 1)))
    .sort();
}

async function comparedHashes(dir: string): Promise<Map<string, string>> {
  return new Map([...(await hashTree(dir))].filter(([p]) => compared(p)));
}

/** report.json without what differs between runs (creation time, timings). */
async function normalisedReport(dir: string): Promise<unknown> {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.entries(v)
          .filter(([k]) => k !== "createdAt" && k !== "timingsMs" && !/Ms$/.test(k))
          .map(([k, x]) => [k, strip(x)]),
      );
    }
    return v;
  };
  return strip(JSON.parse(await readFile(join(dir, "report.json"), "utf8")));
}

/**
 * The invariant "no half-written file is visible": every file that does not carry a temporary name
 * is complete — images decode fully, JSON / JSONL parse, embeddings have the size their sidecar
 * states, report.html is closed, every file named in metadata.jsonl exists — and every file that
 * the final comparison covers is byte-identical to the reference's (outputs are written once, whole).
 * @returns one line per violation (empty when the folder is sound)
 */
async function incompleteFiles(dir: string, ref: ReadonlyMap<string, string>): Promise<string[]> {
  const problems: string[] = [];
  const files = await hashTree(dir);
  for (const [path, hash] of files) {
    const name = path.slice(path.lastIndexOf("/") + 1);
    if (TEMP_NAME.test(name)) continue;
    const abs = join(dir, path);
    try {
      if (/\.(png|jpe?g)$/i.test(name)) {
        await sharp(abs, { failOn: "truncated" }).raw().toBuffer();
      } else if (name.endsWith(".jsonl")) {
        const text = await readFile(abs, "utf8");
        if (!text.endsWith("\n")) problems.push(`${path}: no final newline`);
        for (const line of text.split("\n").filter((l) => l !== "")) {
          const row = JSON.parse(line) as Record<string, unknown>;
          for (const key of ["file_name", "mask_file_name", "weight_file_name", "rgba_file_name"]) {
            const rel = row[key];
            if (typeof rel === "string" && !files.has(rel)) problems.push(`${path}: lists missing ${rel}`);
          }
        }
      } else if (name.endsWith(".json")) {
        const value = JSON.parse(await readFile(abs, "utf8")) as { dims?: number[] };
        const f32 = abs.replace(/\.json$/, ".f32");
        if (path.startsWith(".persam/embeddings/") && Array.isArray(value.dims) && existsSync(f32)) {
          const expected = value.dims.reduce((a, b) => a * b, 1) * 4;
          const size = (await stat(f32)).size;
          if (size !== expected) problems.push(`${path}: embedding is ${size} bytes, expected ${expected}`);
        }
      } else if (name.endsWith(".html")) {
        if (!(await readFile(abs, "utf8")).trimEnd().endsWith("</html>"))
          problems.push(`${path}: not closed`);
      }
    } catch (error) {
      problems.push(`${path}: ${String(error)}`);
    }
    if (compared(path) && ref.get(path) !== hash) {
      problems.push(`${path}: ${ref.has(path) ? "differs from" : "absent from"} the uninterrupted run`);
    }
  }
  return problems;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-crash-"));
  [cli, model] = await Promise.all([builtCli(), writeTinyModel({ dir: join(root, "model") })]);
  photos = join(root, "toy");
  await mkdir(photos);
  for (let i = 0; i < 4; i++) {
    await writeJpeg(
      join(photos, `photo-${i + 1}.jpg`),
      scene({ at: [0.35 + 0.1 * i, 0.5], seed: i, width: 160, height: 120 }),
    );
  }
  await writeSceneMask(join(photos, "photo-1.mask.png"), { at: [0.35, 0.5], width: 160, height: 120 });
  outDir = `${photos}.persam`;
  refDir = join(root, "reference.persam");

  // The uninterrupted reference run, timed: when its output folder appears and when it ends.
  const { done } = startCli(prepareArgs(), prepareEnv("ref"));
  let firstOutput: number | undefined;
  const started = performance.now();
  const poll = setInterval(() => {
    if (firstOutput === undefined && existsSync(outDir)) firstOutput = performance.now() - started;
  }, 5);
  const ref = await done;
  clearInterval(poll);
  expect(ref.signal, ref.stderr).toBeNull();
  refExit = ref.code ?? -1;
  expect([0, 2], ref.stderr).toContain(refExit);
  refTotalMs = ref.ms;
  refFirstOutputMs = firstOutput ?? ref.ms / 2;
  await rename(outDir, refDir);
  console.info(
    `crash-safety: CLI ${cli.reused ? "reused ./dist" : "built"} in ${Math.round(cli.buildMs)} ms; reference prepare ${Math.round(refTotalMs)} ms (output folder at ${Math.round(refFirstOutputMs)} ms), exit ${refExit}`,
  );
}, 180_000);

afterAll(async () => {
  await cli?.dispose();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("the completeness check", () => {
  it("flags a half-written image, JSON, JSONL and HTML file (so that its silence means something)", async () => {
    const dir = join(root, "half-written");
    await mkdir(join(dir, "images"), { recursive: true });
    const cut = async (rel: string): Promise<void> => {
      const bytes = await readFile(join(refDir, rel));
      await writeFile(join(dir, rel), bytes.subarray(0, Math.floor(bytes.length / 2)));
    };
    for (const rel of ["images/photo-1.png", "metadata.jsonl", "report.json", "report.html"]) await cut(rel);
    const problems = await incompleteFiles(dir, await comparedHashes(refDir));
    for (const rel of ["images/photo-1.png", "metadata.jsonl", "report.json", "report.html"]) {
      expect(
        problems.some((p) => p.startsWith(`${rel}: `) && !p.includes("uninterrupted")),
        rel,
      ).toBe(true);
    }
    await rm(dir, { recursive: true, force: true });
  });
});

describe("prepare killed with SIGKILL at random points", () => {
  it.each(PREPARE_SEEDS)(
    "seed %i: only complete files are visible, and a rerun gives the reference outputs",
    async (seed) => {
      const ref = await comparedHashes(refDir);
      // Stratified: seed k draws its kill time in the k-th slice of the reference run's writing
      // phase, counted from the moment this run's output folder appears (so that the time spent
      // starting Node and loading the model, which varies with the load, does not shift it).
      let fraction = (seed - 1 + mulberry32(seed)()) / PREPARE_SEEDS.length;
      const series = `seed-${seed}`;
      let killed: { delayMs: number; run: ChildRun } | undefined;
      // Under a varying load the run may still end before the kill: then retry earlier (3 tries).
      for (let attempt = 0; attempt < 3 && killed === undefined; attempt++) {
        await rm(outDir, { recursive: true, force: true });
        await rm(join(root, `cache-${series}`), { recursive: true, force: true });
        const { child, done } = startCli(prepareArgs(), prepareEnv(series));
        const delayMs = fraction * (refTotalMs - refFirstOutputMs);
        let timer: NodeJS.Timeout | undefined;
        const poll = setInterval(() => {
          if (!existsSync(outDir)) return;
          clearInterval(poll);
          timer = setTimeout(() => child.kill("SIGKILL"), delayMs);
        }, 5);
        const run = await done;
        clearInterval(poll);
        clearTimeout(timer);
        if (run.signal === "SIGKILL") killed = { delayMs, run };
        else fraction *= 0.5;
      }
      expect(killed, "the run was never killed before it ended").toBeDefined();
      const when = `${Math.round(killed?.delayMs ?? 0)} ms after the output folder appeared`;

      const leftover = await hashTree(outDir);
      const problems = await incompleteFiles(outDir, ref);
      expect(problems, `after a kill ${when}`).toEqual([]);

      const rerun = await startCli(prepareArgs(), prepareEnv(series)).done;
      expect(rerun.signal).toBeNull();
      expect(rerun.code, rerun.stderr).toBe(refExit);
      expect(await incompleteFiles(outDir, ref)).toEqual([]);
      expect(await comparedHashes(outDir)).toEqual(ref);
      expect(await normalisedReport(outDir)).toEqual(await normalisedReport(refDir));
      const temps = await tempFiles(outDir);
      console.info(
        `crash-safety: prepare seed ${seed}: killed ${when} with ${leftover.size} files written; rerun ${Math.round(rerun.ms)} ms, exit ${rerun.code}; temp files left: ${temps.length ? temps.join(", ") : 0}`,
      );
      // The rerun finished the job: nothing of the killed run's unfinished writes remains.
      expect(temps).toEqual([]);
    },
  );

  it("a rerun removes the temporary files that a killed writer left (diffusers reads every file in images/)", async () => {
    // A finished output folder (the reference, back at its own path) plus the temporary files that
    // writeFileAtomic (every writer goes through it) leaves when its process dies mid-write, named
    // after a process that is gone: `.NAME.PID.HEX.tmp`.
    await rm(outDir, { recursive: true, force: true });
    await cp(refDir, outDir, { recursive: true });
    const dead = spawn(process.execPath, ["-e", "0"]);
    await new Promise((resolve) => dead.once("close", resolve));
    const planted: Record<string, string> = {
      [`images/.photo-1.png.${dead.pid}.0123456789ab.tmp`]: "images/photo-1.png",
      [`.persam/masks/.photo-2.png.${dead.pid}.0123456789ab.tmp`]: ".persam/masks/photo-2.png",
      [`.metadata.jsonl.${dead.pid}.0123456789ab.tmp`]: "metadata.jsonl",
      [`.train.sh.${dead.pid}.0123456789ab.tmp`]: "train.sh",
    };
    for (const [temp, from] of Object.entries(planted)) {
      const bytes = await readFile(join(refDir, from));
      await writeFile(join(outDir, temp), bytes.subarray(0, Math.floor(bytes.length / 2)));
    }
    expect(await tempFiles(outDir)).toEqual(Object.keys(planted).sort());

    const rerun = await startCli(prepareArgs(), prepareEnv("ref")).done;
    expect(rerun.code, rerun.stderr).toBe(refExit);
    expect(await comparedHashes(outDir)).toEqual(await comparedHashes(refDir));
    expect(await tempFiles(outDir)).toEqual([]);
  });
});

describe("push killed with SIGKILL mid-upload", () => {
  // A fresh loopback Hub per test: its LFS store is shared by all its repos, and a second push of
  // the same files would upload nothing.
  let server: HubServer;
  let localTree: Map<string, string>;
  let refRequests = 0;

  beforeAll(async () => {
    // MANIFEST MIMIC: remove once prepare writes the manifest (test/support/set-manifest.ts).
    await finishSetLikePrepare(refDir);
    localTree = sorted(
      new Map(
        [...(await hashTree(refDir))].filter(
          ([p]) => !p.startsWith(".persam/") && !TEMP_NAME.test(p.slice(p.lastIndexOf("/") + 1)),
        ),
      ),
    );
  });

  beforeEach(async () => {
    server = await startHubServer();
  });

  afterEach(async () => {
    await server?.stop();
  });

  function sorted(m: ReadonlyMap<string, string>): Map<string, string> {
    return new Map([...m].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  }

  /** Run a push of the reference output; `onRequest(n)` runs as the n-th request's headers arrive. */
  async function push(repo: string, onRequest?: (n: number, child: ChildProcess) => void): Promise<ChildRun> {
    const requests = server.requests as RecordedRequest[];
    const first = requests.length;
    const { child, done } = startCli(["push", refDir, "--repo", repo, "-m", "crash test"], {
      HF_ENDPOINT: server.url,
      HF_TOKEN: TOKEN,
    });
    const original = requests.push;
    requests.push = (...items: RecordedRequest[]): number => {
      const n = original.apply(requests, items);
      onRequest?.(n - first, child);
      return n;
    };
    try {
      return await done;
    } finally {
      requests.push = original;
    }
  }

  /** The Hub's main tree (path → sha256), `.gitattributes` aside. */
  async function hubTree(name: string): Promise<Map<string, string>> {
    const res = await fetch(`${server.url}/api/datasets/${name}/tree/main?recursive=true`);
    expect(res.status).toBe(200);
    const out = new Map<string, string>();
    for (const e of (await res.json()) as Array<{ type: string; path: string }>) {
      if (e.type !== "file" || e.path === ".gitattributes") continue;
      out.set(e.path, server.file({ type: "dataset", name, path: e.path })!.sha256);
    }
    return sorted(out);
  }

  /** Commits on main, newest first. */
  function history(name: string): string[] {
    const out: string[] = [];
    let sha = server.head({ type: "dataset", name });
    while (sha !== undefined) {
      out.push(sha);
      sha = server.commitInfo({ type: "dataset", name, sha })?.parent;
    }
    return out;
  }

  it("an uninterrupted push publishes the local tree in one commit", async () => {
    const name = "test-user/crash";
    const run = await push(name, (n) => {
      refRequests = n;
    });
    expect(run.code, run.stderr).toBe(0);
    expect(await hubTree(name)).toEqual(localTree);
    expect(history(name)).toHaveLength(2); // the repo's creation, then the push
    console.info(`crash-safety: reference push ${Math.round(run.ms)} ms, ${refRequests} requests`);
  });

  it.each(PUSH_SEEDS)(
    "seed %i: a killed push commits nothing partial; a rerun publishes all in one commit",
    async (seed) => {
      expect(refRequests, "the reference push ran").toBeGreaterThan(2);
      const name = "test-user/crash";
      // Odd seeds push onto an existing repo whose files the push must replace.
      if (seed % 2 === 1) {
        server.addRepo({
          type: "dataset",
          name,
          files: { "README.md": "old card\n", "images/photo-1.png": "stale bytes" },
        });
      }
      // Stratified over the reference push's requests, the repo creation included.
      const killAt =
        1 + Math.floor(((seed - 1 + mulberry32(100 + seed)()) / PUSH_SEEDS.length) * refRequests);
      let killedOn = "";
      const killed = await push(name, (n, child) => {
        if (n !== killAt) return;
        child.kill("SIGKILL");
        const r = server.requests[server.requests.length - 1]!;
        killedOn = `${r.method} ${r.path}`;
      });
      expect(killed.signal, `killed at request ${killAt}: ${killed.stderr}`).toBe("SIGKILL");
      // Let the server finish (or fail) the request that was in flight.
      await new Promise((r) => setTimeout(r, 200));
      const chain = history(name);
      // The repo (created or given) and at most the push's one commit, which then holds the whole tree.
      expect(chain.length).toBeLessThanOrEqual(2);
      if (chain.length === 2) expect(await hubTree(name)).toEqual(localTree);

      const rerun = await push(name);
      expect(rerun.code, rerun.stderr).toBe(0);
      expect(await hubTree(name)).toEqual(localTree);
      expect(history(name), "exactly one commit after the repo's creation").toHaveLength(2);
      console.info(
        `crash-safety: push seed ${seed}: killed on request ${killAt}/${refRequests} (${killedOn}), ${chain.length - 1} commit(s) then; rerun ${Math.round(rerun.ms)} ms`,
      );
    },
  );
});
