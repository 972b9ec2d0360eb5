// The prepared-model cache (segment/sam/model-cache.ts): what is derived from model files on every
// open (the encoder after its attention rewrite and onnxruntime's optimisation, the decoder graph)
// is kept in persam-db's cache and opened from there next time, with the same numbers to the bit;
// a damaged, stale or unloadable entry is rebuilt with one warning and never used; a full disk
// leaves the model opening without the cache, with one warning; two processes filling the same
// cache at once both succeed. Real onnxruntime sessions on the tiny random model.

import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomDecoderWeights, randomEmbedding } from "../src/segment/models/random-weights.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { SamDecoder } from "../src/segment/sam/decoder-session.js";
import { SamEncoder } from "../src/segment/sam/encoder-session.js";
import { ModelCache } from "../src/segment/sam/model-cache.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { ContentCache } from "../src/util/content-cache.js";
import { type BuiltCli, builtCli } from "./support/built-cli.js";
import { H, rectMask, W, writePng, writeSquarePhotos } from "./support/square-photos.js";

const run = promisify(execFile);

let root: string;
let model: { encoderPath: string; decoderPath: string };
let other: { encoderPath: string; decoderPath: string };
let counter = 0;
const freshDir = async (): Promise<string> => {
  const dir = join(root, `cache-${counter++}`);
  await mkdir(dir, { recursive: true });
  return dir;
};

/** A fixed encoder input. */
const pixels = {
  data: Float32Array.from({ length: 3 * 1024 * 1024 }, (_, i) => Math.sin(i * 0.001)),
  dims: [1, 3, 1024, 1024],
};

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** Open the tiny encoder through the cache at `dir`, encode the fixed input, close it. */
async function encodeWith(
  dir: string | undefined,
  path = model.encoderPath,
  version?: string,
): Promise<{ data: Float32Array; fromCache: boolean; warnings: readonly string[] }> {
  const encoder = await SamEncoder.create({
    path,
    threads: 1,
    ...(dir === undefined ? {} : { modelCache: { dir, ...(version ? { version } : {}) } }),
  });
  try {
    const out = await encoder.encode(pixels);
    return { data: out.embedding.data, fromCache: encoder.fromCache, warnings: encoder.cacheWarnings };
  } finally {
    await encoder.dispose();
  }
}

/** The entry folders of a cache (not the small source-fingerprint ones), with their files. */
async function modelEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir)) {
    if (name.startsWith(".")) continue;
    if ((await readdir(join(dir, name))).includes("model.onnx")) out.push(join(dir, name));
  }
  return out;
}

let plain: Float32Array;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-model-cache-"));
  model = await writeTinyModel({ dir: join(root, "model") });
  other = await writeTinyModel({ dir: join(root, "other"), seed: 7 });
  plain = (await encodeWith(undefined)).data;
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("the prepared encoder", () => {
  it("is prepared on the first open, opened from the cache on the second, with the same numbers to the bit", async () => {
    const dir = await freshDir();
    const first = await encodeWith(dir);
    expect(first.fromCache).toBe(false);
    expect(first.warnings).toEqual([]);
    expect(await modelEntries(dir)).toHaveLength(1);
    const second = await encodeWith(dir);
    expect(second.fromCache).toBe(true);
    expect(second.warnings).toEqual([]);
    expect(same(first.data, plain)).toBe(true);
    expect(same(second.data, plain)).toBe(true);
  });

  it("follows the file's content: a changed file at the same path is prepared again", async () => {
    const dir = await freshDir();
    const path = join(root, "changing.onnx");
    await copyFile(model.encoderPath, path);
    await encodeWith(dir, path);
    await copyFile(other.encoderPath, path);
    const changed = await encodeWith(dir, path);
    expect(changed.fromCache).toBe(false);
    expect(same(changed.data, (await encodeWith(undefined, other.encoderPath)).data)).toBe(true);
    expect(same(changed.data, plain)).toBe(false);
  });

  it("never uses a truncated entry: it is rebuilt with one warning", async () => {
    const dir = await freshDir();
    await encodeWith(dir);
    const [entry] = await modelEntries(dir);
    await truncate(join(entry!, "model.onnx"), 1000);
    const rebuilt = await encodeWith(dir);
    expect(rebuilt.fromCache).toBe(false);
    expect(rebuilt.warnings).toEqual([expect.stringMatching(/model\.onnx is truncated; it is rebuilt$/)]);
    expect(same(rebuilt.data, plain)).toBe(true);
    const again = await encodeWith(dir);
    expect([again.fromCache, again.warnings]).toEqual([true, []]);
  });

  it("never uses an entry whose file does not match its recorded sha256: rebuilt with one warning", async () => {
    const dir = await freshDir();
    await encodeWith(dir);
    const [entry] = await modelEntries(dir);
    const file = join(entry!, "model.onnx");
    const bytes = await readFile(file);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0x40; // a weight's bits: still a valid model
    await writeFile(file, bytes);
    const rebuilt = await encodeWith(dir);
    expect(rebuilt.fromCache).toBe(false);
    expect(rebuilt.warnings).toEqual([
      expect.stringMatching(/does not match its recorded sha256; it is rebuilt$/),
    ]);
    expect(same(rebuilt.data, plain)).toBe(true);
  });

  it("never uses an entry of an older persam-db version: rebuilt with one warning", async () => {
    const dir = await freshDir();
    await encodeWith(dir, model.encoderPath, "0.0.1");
    const rebuilt = await encodeWith(dir);
    expect(rebuilt.fromCache).toBe(false);
    expect(rebuilt.warnings).toEqual([
      expect.stringMatching(/it was written by version 0\.0\.1\|prepared-model-1; it is rebuilt$/),
    ]);
    expect((await encodeWith(dir)).fromCache).toBe(true);
  });

  it("never uses an entry that checks out but onnxruntime cannot open: rebuilt with one warning", async () => {
    const dir = await freshDir();
    await encodeWith(dir);
    const [entry] = await modelEntries(dir);
    // A file that matches its (rewritten) manifest but is no model: as if written by a broken build.
    const garbage = new Uint8Array(4096).fill(7);
    await writeFile(join(entry!, "model.onnx"), garbage);
    const manifest = JSON.parse(await readFile(join(entry!, "entry.json"), "utf8")) as {
      files: Record<string, { size: number; sha256: string }>;
    };
    const { createHash } = await import("node:crypto");
    manifest.files["model.onnx"] = {
      size: garbage.length,
      sha256: createHash("sha256").update(garbage).digest("hex"),
    };
    await writeFile(join(entry!, "entry.json"), JSON.stringify(manifest));
    const rebuilt = await encodeWith(dir);
    expect(rebuilt.fromCache).toBe(false);
    expect(rebuilt.warnings).toEqual([
      expect.stringMatching(/onnxruntime cannot open it .*; it is rebuilt$/),
    ]);
    expect(same(rebuilt.data, plain)).toBe(true);
  });
});

describe("a file that is not a model", () => {
  it("is refused as without the cache, and leaves nothing in it", async () => {
    const dir = await freshDir();
    const notModel = join(root, "not-a-model.onnx");
    await writeFile(notModel, "this is not an onnx file");
    const error = await SamEncoder.create({ path: notModel, modelCache: { dir } }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/^cannot load the image encoder .*not-a-model\.onnx: /);
    expect(await modelEntries(dir)).toEqual([]);
    expect((await readdir(dir)).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });
});

describe("the prepared decoder graph", () => {
  const C = 32;
  const weights = randomDecoderWeights({ embedDim: C, seed: 21 });
  const imageEmbeddings = randomEmbedding(C, 5);
  const prompt = { pointCoords: new Float32Array([100, 200, 0, 0]), pointLabels: new Float32Array([1, -1]) };

  it("is built once, then opened from the cache, with the same outputs to the bit", async () => {
    const dir = await freshDir();
    const warnings: string[] = [];
    const cache = new ModelCache({ dir, onWarning: (m) => warnings.push(m) });
    const outputs = [];
    for (let i = 0; i < 2; i++) {
      const decoder = await SamDecoder.create({ weights, threads: 1, modelCache: cache, cacheKey: "w21" });
      outputs.push(await decoder.run({ imageEmbeddings, ...prompt }));
      await decoder.dispose();
      expect(await modelEntries(dir)).toHaveLength(1);
    }
    const uncached = await SamDecoder.create({ weights, threads: 1 });
    const reference = await uncached.run({ imageEmbeddings, ...prompt });
    await uncached.dispose();
    for (const out of outputs) {
      expect(same(out.lowResMasks.data, reference.lowResMasks.data)).toBe(true);
      expect(same(out.iouScores, reference.iouScores)).toBe(true);
    }
    expect(warnings).toEqual([]);
  });
});

describe("SamModel.load with a model cache", () => {
  const image = {
    data: Uint8Array.from({ length: 64 * 48 * 3 }, (_, i) => (i * 37) & 255),
    width: 64,
    height: 48,
    channels: 3 as const,
  };

  it("opens the same model from the cache: same embedding, same decoder outputs, same width", async () => {
    const dir = await freshDir();
    const files = { ...model, label: "tiny" };
    const results = [];
    for (const modelCacheDir of [undefined, dir, dir]) {
      const loaded = await SamModel.load({ files, threads: 1, ...(modelCacheDir ? { modelCacheDir } : {}) });
      try {
        const encoded = await loaded.encode(image);
        const out = await loaded.decoder.run({
          imageEmbeddings: encoded.embedding,
          pointCoords: new Float32Array([10, 20, 0, 0]),
          pointLabels: new Float32Array([1, -1]),
        });
        results.push({
          encoded,
          out,
          embedDim: loaded.decoder.embedDim,
          fromCache: loaded.encoder.fromCache,
        });
      } finally {
        await loaded.dispose();
      }
    }
    expect(results.map((r) => r.fromCache)).toEqual([false, false, true]);
    for (const r of results.slice(1)) {
      expect(r.embedDim).toBe(results[0]!.embedDim);
      expect(same(r.encoded.embedding.data, results[0]!.encoded.embedding.data)).toBe(true);
      expect(same(r.out.lowResMasks.data, results[0]!.out.lowResMasks.data)).toBe(true);
      expect(same(r.out.iouScores, results[0]!.out.iouScores)).toBe(true);
    }
  });

  it("still refuses an encoder and a decoder of different checkpoints when both come from the cache", async () => {
    const dir = await freshDir();
    const files = { encoderPath: model.encoderPath, decoderPath: other.decoderPath, label: "mixed" };
    for (let i = 0; i < 2; i++) {
      const loaded = await SamModel.load({ files, threads: 1, modelCacheDir: dir });
      try {
        await expect(loaded.encode(image)).rejects.toThrow(/come from different SAM checkpoints/);
      } finally {
        await loaded.dispose();
      }
    }
  });

  it("goes on without the cache, with one warning, when the disk is full (a 64 KiB tmpfs)", async (ctx) => {
    const mount = await freshDir();
    const mounted = await run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mount]).then(
      () => true,
      () => false,
    );
    if (!mounted) {
      console.warn("[skip] model-cache: cannot mount a tmpfs here (needs root)");
      ctx.skip();
      return;
    }
    try {
      const warnings: string[] = [];
      const loaded = await SamModel.load({
        files: { ...model, label: "tiny" },
        threads: 1,
        modelCacheDir: join(mount, "models"),
        onWarning: (m) => warnings.push(m),
      });
      try {
        const out = await loaded.encoder.encode(pixels);
        expect(same(out.embedding.data, plain)).toBe(true);
      } finally {
        await loaded.dispose();
      }
      expect(warnings).toEqual([
        expect.stringMatching(/^cannot write to the cache .*; going on without it$/),
      ]);
      // Nothing half-written stays behind to be taken for an entry.
      expect(await modelEntries(join(mount, "models"))).toEqual([]);
    } finally {
      await run("umount", [mount]);
    }
  });

  it("reports one warning for one problem met by both the encoder and the decoder", async () => {
    const dir = await freshDir();
    const blocked = join(dir, "a-file");
    await writeFile(blocked, "not a folder");
    const warnings: string[] = [];
    const loaded = await SamModel.load({
      files: { ...model, label: "tiny" },
      threads: 1,
      modelCacheDir: blocked,
      onWarning: (m) => warnings.push(m),
    });
    await loaded.dispose();
    expect(warnings).toEqual([
      expect.stringMatching(/^cannot write to the cache .*\(ENOTDIR\); going on without it$/),
    ]);
  });
});

describe("two processes filling the same model cache at once", () => {
  let cli: BuiltCli;
  beforeAll(async () => {
    cli = await builtCli();
  }, 120_000);
  afterAll(async () => {
    await cli?.dispose();
  });

  it("both succeed and leave entries that a third run opens, without a warning", async () => {
    const work = await freshDir();
    await mkdir(join(work, "photos"));
    await writeSquarePhotos(join(work, "photos"));
    await writePng(join(work, "mask.png"), rectMask(W, H, 20, 10, 60, 50));
    const cacheRoot = join(work, "persam-cache");
    const segment = (tag: string) =>
      run(
        process.execPath,
        [
          cli.binPath,
          "segment",
          join(work, "photos"),
          "--ref",
          join(work, "photos", "a.png"),
          "--ref-mask",
          join(work, "mask.png"),
          "-o",
          join(work, `out-${tag}`),
          "--encoder",
          model.encoderPath,
          "--decoder",
          model.decoderPath,
          "--quiet",
        ],
        {
          env: {
            ...process.env,
            PERSAM_DB_CACHE: cacheRoot,
            PERSAM_DB_TIMINGS: join(work, `trace-${tag}.json`),
            HF_HUB_OFFLINE: "1",
          },
        },
      ).then(
        ({ stderr }) => ({ code: 0, stderr }),
        (e: { code?: number; stderr?: string }) => ({ code: e.code ?? 1, stderr: e.stderr ?? "" }),
      );
    const both = await Promise.all([segment("a"), segment("b")]);
    for (const r of both) {
      expect(r.code, r.stderr).toBeLessThanOrEqual(2); // 2: doubtful masks of random weights
      expect(r.stderr).not.toMatch(/cache entry|cannot write/);
    }
    expect(await modelEntries(join(cacheRoot, "models"))).toHaveLength(2); // encoder, decoder
    const third = await segment("c");
    expect(third.stderr).not.toMatch(/cache entry|cannot write/);
    const trace = JSON.parse(await readFile(join(work, "trace-c.json"), "utf8")) as {
      spans: { name: string; detail?: { fromCache?: boolean } }[];
    };
    expect(trace.spans.find((s) => s.name === "model.encoder")?.detail?.fromCache).toBe(true);
    // No unfinished writes left behind.
    expect((await readdir(join(cacheRoot, "models"))).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  }, 120_000);
});

describe("ContentCache.putFiles", () => {
  it("moves files into an entry that reads back checked, and removes the sources on failure too", async () => {
    const dir = await freshDir();
    const source = join(root, "big.bin");
    await writeFile(source, new Uint8Array(100_000).fill(3));
    const cache = new ContentCache({ dir, version: "v" });
    expect(await cache.putFiles("k", { "big.bin": source }, { n: 1 })).toBe(true);
    const got = await cache.get<{ n: number }>("k");
    expect(got?.meta).toEqual({ n: 1 });
    expect((await readFile(got!.files["big.bin"]!)).length).toBe(100_000);
    await expect(readFile(source)).rejects.toThrow();

    const blocked = join(dir, "file");
    await writeFile(blocked, "x");
    await writeFile(source, new Uint8Array(10));
    const warnings: string[] = [];
    const broken = new ContentCache({ dir: blocked, version: "v", onWarning: (m) => warnings.push(m) });
    expect(await broken.putFiles("k", { "big.bin": source }, null)).toBe(false);
    expect(warnings).toEqual([expect.stringMatching(/\(ENOTDIR\); going on without it$/)]);
    await expect(readFile(source)).rejects.toThrow();
  });
});
