// Model download into the Hugging Face cache from the loopback Hub: pinned and branch revisions,
// the decoder cut out of a checkpoint with one range request, offline reuse, tampered and
// interrupted files, a Python-written cache, failures as single lines, the checkpoint check.

import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hubConfig, persamCacheDir, redact } from "../src/config.js";
import { UserError } from "../src/errors.js";
import { externalDataLocations } from "../src/segment/models/external-data.js";
import {
  DEFAULT_MODEL_ID,
  loadModelRegistry,
  type ModelRegistry,
  parseModelRegistry,
} from "../src/segment/models/model-registry.js";
import {
  type DownloadProgress,
  extractedDecoderPaths,
  modelCacheStatus,
  type ResolveModelFilesParams,
  resolveModelFiles,
} from "../src/segment/models/model-store.js";
import { checkCheckpointMatch } from "../src/segment/sam/checkpoint-check.js";
import { createSession, ortFloat32 } from "../src/segment/sam/ort.js";
import { pointEncoding } from "../src/segment/sam/positional-encoding.js";
import { POSITIONAL_EMBEDDING_KEY, readSafetensors } from "../src/segment/sam/safetensors.js";
import type { Tensor } from "../src/util/tensor.js";
import { externalDataModel } from "./support/external-data-model.js";
import { closedPortUrl, type HubServer, startHubServer } from "./support/hub-server.js";

const TOKEN = "hf_modelstoretest0001";
const ENC_SHA = "1234567890abcdef1234567890abcdef12345678";
const VISION_BYTES = 2_000_000;

interface RawTensor {
  name: string;
  values: Float32Array;
  shape: number[];
}

/** A safetensors file with tensors laid out in the given order (to place the vision tensor anywhere). */
function safetensorsBytes(tensors: RawTensor[]): { bytes: Buffer; dataStart: number } {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.values.byteLength] };
    offset += t.values.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.concat(
    tensors.map((t) => Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength)),
  );
  return { bytes: Buffer.concat([prefix, json, data]), dataStart: 8 + json.length };
}

function randomValues(n: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.random() * 2 - 1;
  return v;
}

const decoderTensors: RawTensor[] = [
  { name: "mask_decoder.iou_token.weight", values: randomValues(8), shape: [1, 8] },
  { name: "prompt_encoder.point_embed.0.weight", values: randomValues(8), shape: [1, 8] },
  { name: POSITIONAL_EMBEDDING_KEY, values: randomValues(8), shape: [2, 4] },
];
const vision: RawTensor = {
  name: "vision_encoder.big",
  values: randomValues(VISION_BYTES / 4),
  shape: [VISION_BYTES / 4],
};
/** Vision tensor first, decoder tensors after it: one contiguous decoder span. */
const checkpoint = safetensorsBytes([vision, ...decoderTensors]);
/** A foreign tensor between decoder tensors: two runs. */
const gapCheckpoint = safetensorsBytes([
  decoderTensors[0]!,
  { name: "vision_encoder.small", values: randomValues(5000), shape: [5000] },
  decoderTensors[1]!,
  decoderTensors[2]!,
]);
const encoderBytes = randomBytes(300_000);
const fp16Bytes = randomBytes(150_000);
const graphBytes = randomBytes(20_000);
const externalBytes = randomBytes(200_000);
const EXT_SHA = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
const OTHER_SHA = "0123401234012340123401234012340123401234";
const weightsA = Float32Array.from([1, 2, 3, 4]);
const weightsB = Float32Array.from([10, 20, 30, 40]);
const extFixture = externalDataModel({ a: weightsA, b: weightsB });

function registryJson(extra: Record<string, unknown>[] = []) {
  return {
    default: "tiny",
    models: [
      {
        id: "tiny",
        description: "tiny test model",
        licence: "Apache-2.0",
        quality: "none",
        encoder: {
          repo: "tiny/encoder",
          revision: ENC_SHA,
          variants: {
            fp32: { path: "onnx/vision_encoder.onnx", size: encoderBytes.length },
            fp16: {
              path: "onnx/vision_encoder_fp16.onnx",
              sha256: createHash("sha256").update(fp16Bytes).digest("hex"),
            },
            quantized: { path: "onnx/graph.onnx", externalData: [{ path: "onnx/graph.onnx_data" }] },
          },
        },
        decoder: { repo: "tiny/decoder", revision: "main", pinned: false, path: "model.safetensors" },
      },
      {
        id: "tiny-gap",
        description: "decoder tensors with a foreign tensor between them",
        licence: "Apache-2.0",
        quality: "none",
        encoder: {
          repo: "tiny/encoder",
          revision: ENC_SHA,
          variants: { fp32: { path: "onnx/vision_encoder.onnx" } },
        },
        decoder: { repo: "tiny/decoder-gap", revision: "main", pinned: false, path: "model.safetensors" },
      },
      ...extra,
    ],
  };
}

let server: HubServer;
let registry: ModelRegistry;
let work: string;
let cacheDir: string;
let persamDir: string;
let decoderSha: string;

beforeAll(async () => {
  server = await startHubServer();
  server.addRepo({
    name: "tiny/encoder",
    sha: ENC_SHA,
    files: {
      "config.json": '{"model_type":"sam"}',
      "onnx/vision_encoder.onnx": encoderBytes,
      "onnx/vision_encoder_fp16.onnx": fp16Bytes,
      "onnx/graph.onnx": graphBytes,
      "onnx/graph.onnx_data": externalBytes,
    },
  });
  decoderSha = server.addRepo({ name: "tiny/decoder", files: { "model.safetensors": checkpoint.bytes } });
  server.addRepo({ name: "tiny/decoder-gap", files: { "model.safetensors": gapCheckpoint.bytes } });
  server.addRepo({
    name: "tiny/external",
    sha: EXT_SHA,
    files: {
      "onnx/model.onnx": extFixture.model,
      ...Object.fromEntries(Object.entries(extFixture.files).map(([k, v]) => [`onnx/${k}`, v])),
    },
  });
  server.addRepo({
    name: "tiny/external-broken",
    sha: EXT_SHA,
    files: { "onnx/model.onnx": extFixture.model, "onnx/weights-a.bin": extFixture.files["weights-a.bin"]! },
  });
  const extEntry = (id: string, repo: string) => ({
    id,
    description: "an encoder graph with two external-data files",
    licence: "x",
    quality: "x",
    encoder: { repo, revision: EXT_SHA, variants: { fp32: { path: "onnx/model.onnx" } } },
    decoder: { repo: "tiny/decoder", revision: "main", pinned: false, path: "model.safetensors" },
  });
  registry = parseModelRegistry({
    json: registryJson([
      extEntry("tiny-ext", "tiny/external"),
      extEntry("tiny-ext-broken", "tiny/external-broken"),
      {
        id: "tiny-pinned",
        description: "the encoder pinned with its size and sha256",
        licence: "x",
        quality: "x",
        encoder: {
          repo: "tiny/encoder",
          revision: ENC_SHA,
          variants: {
            fp32: {
              path: "onnx/vision_encoder.onnx",
              size: encoderBytes.length,
              sha256: createHash("sha256").update(encoderBytes).digest("hex"),
            },
          },
        },
        decoder: { repo: "tiny/decoder", revision: "main", pinned: false, path: "model.safetensors" },
      },
      {
        id: "tiny-missing",
        description: "a file that is not in the repo",
        licence: "x",
        quality: "x",
        encoder: { repo: "tiny/encoder", revision: ENC_SHA, variants: { fp32: { path: "onnx/nope.onnx" } } },
        decoder: { repo: "tiny/decoder", revision: "main", pinned: false, path: "model.safetensors" },
      },
    ]),
  });
});
afterAll(async () => {
  await server.stop();
});
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "persam-store-"));
  cacheDir = join(work, "hf", "hub");
  persamDir = join(work, "persam");
  server.clearRequests();
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

function params(extra: Partial<ResolveModelFilesParams> = {}): ResolveModelFilesParams {
  return {
    modelId: "tiny",
    registry,
    cacheDir,
    persamCacheDir: persamDir,
    endpoint: server.url,
    token: TOKEN,
    offline: false,
    chunkBytes: 64 * 1024,
    quiet: true,
    ...extra,
  };
}

async function userError(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UserError);
  expect((e as UserError).toLine()).not.toContain("\n");
  expect((e as UserError).toLine()).not.toContain(TOKEN);
  return e as UserError;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const encBlob = () => join(cacheDir, "models--tiny--encoder", "blobs", sha256(encoderBytes));

describe("download", () => {
  it("fetches the encoder into the HF cache layout and only the decoder byte range of the checkpoint", async () => {
    const progress: DownloadProgress[] = [];
    const files = await resolveModelFiles(params({ onProgress: (p) => progress.push(p) }));

    const snap = join(cacheDir, "models--tiny--encoder", "snapshots", ENC_SHA, "onnx", "vision_encoder.onnx");
    expect(files.encoderPath).toBe(snap);
    expect(lstatSync(snap).isSymbolicLink()).toBe(true);
    expect(readlinkSync(snap)).toBe(join("..", "..", "..", "blobs", sha256(encoderBytes)));
    expect((await readFile(snap)).equals(encoderBytes)).toBe(true);
    expect(files.revision).toEqual({ encoder: ENC_SHA, decoder: decoderSha });
    expect(files.pinned).toBe(false);
    // The branch head of the unpinned decoder repo is recorded.
    expect(
      (await readFile(join(persamDir, "decoders", "tiny--decoder", "refs", "main"), "utf8")).trim(),
    ).toBe(decoderSha);

    // Decoder: a valid safetensors holding exactly the decoder tensors, nothing of the vision tensor.
    expect(files.decoderPath).toBe(
      extractedDecoderPaths({ persamCacheDir: persamDir, repo: "tiny/decoder", sha: decoderSha }).file,
    );
    const weights = await readSafetensors(files.decoderPath);
    expect([...weights.keys()].sort()).toEqual(decoderTensors.map((t) => t.name).sort());
    for (const t of decoderTensors) expect(weights.get(t.name)!.data).toEqual(t.values);
    const sidecar = JSON.parse(await readFile(files.decoderPath.replace(/safetensors$/, "json"), "utf8"));
    expect(sidecar).toMatchObject({
      sourceRepo: "tiny/decoder",
      revision: decoderSha,
      etag: sha256(checkpoint.bytes),
    });

    // Requests for the checkpoint: probe + 8-byte prefix + header + ONE data range, none touching the vision bytes.
    const ckpt = server.requestsTo(/model\.safetensors/).filter((r) => r.method === "GET");
    const visionEnd = checkpoint.dataStart + VISION_BYTES;
    const dataRanges = ckpt
      .map((r) => /bytes=(\d+)-(\d+)/.exec(r.range ?? "")!)
      .map((m) => [Number(m[1]), Number(m[2]) + 1] as const)
      .filter(([b]) => b >= checkpoint.dataStart);
    expect(dataRanges).toEqual([[visionEnd, checkpoint.bytes.length]]);
    expect(ckpt.every((r) => r.range !== undefined)).toBe(true);
    expect(ckpt.reduce((n, r) => n + r.bodyBytes, 0)).toBeLessThan(1000);

    // Encoder: whole-file download in 64 KiB range chunks, with progress up to the total.
    const last = progress.filter((p) => p.file === "tiny/encoder/onnx/vision_encoder.onnx").at(-1)!;
    expect(last).toMatchObject({ loaded: encoderBytes.length, total: encoderBytes.length, done: true });
    expect(files.downloadedBytes).toBe(
      encoderBytes.length + decoderTensors.reduce((n, t) => n + t.values.byteLength, 0),
    );

    const status = await modelCacheStatus({
      modelId: "tiny",
      registry,
      cacheDir,
      persamCacheDir: persamDir,
      full: true,
    });
    expect(status.cached).toBe(true);
  });

  it("reuses the cache offline (HF_HUB_OFFLINE, server unreachable) with the same paths and no requests", async () => {
    const first = await resolveModelFiles(params());
    server.clearRequests();
    const env = hubConfig({
      HF_HUB_OFFLINE: "1",
      HF_HUB_CACHE: cacheDir,
      HF_ENDPOINT: await closedPortUrl(),
    });
    const offline = await resolveModelFiles(
      params({ offline: env.offline, endpoint: env.endpoint, cacheDir: env.cacheDir, token: TOKEN }),
    );
    expect([offline.encoderPath, offline.decoderPath]).toEqual([first.encoderPath, first.decoderPath]);
    expect(offline.downloadedBytes).toBe(0);
    // Not flagged offline but the Hub is down: the recorded branch head is used.
    const unreachable = await resolveModelFiles(params({ endpoint: await closedPortUrl() }));
    expect(unreachable.decoderPath).toBe(first.decoderPath);
    expect(server.requests).toHaveLength(0);
  });

  it("downloads an encoder with its external-data file into the same snapshot folder", async () => {
    const files = await resolveModelFiles(params({ variant: "quantized" }));
    const data = join(files.encoderPath, "..", "graph.onnx_data");
    expect((await readFile(data)).equals(externalBytes)).toBe(true);
  });

  it("verifies the registry sha256 of a variant", async () => {
    const files = await resolveModelFiles(params({ variant: "fp16" }));
    expect((await readFile(files.encoderPath)).equals(fp16Bytes)).toBe(true);
  });

  it("fetches decoder tensors around a foreign tensor with one request per contiguous run", async () => {
    const files = await resolveModelFiles(params({ modelId: "tiny-gap" }));
    const data = server
      .requestsTo(/decoder-gap\/resolve/)
      .map((r) => /bytes=(\d+)-/.exec(r.range ?? "")!)
      .filter((m) => Number(m[1]) >= gapCheckpoint.dataStart);
    expect(data).toHaveLength(2);
    const weights = await readSafetensors(files.decoderPath);
    for (const t of decoderTensors) expect(weights.get(t.name)!.data).toEqual(t.values);
  });
});

describe("damaged and interrupted files", () => {
  it("detects a tampered blob and fetches it again; offline it is a clear error", async () => {
    const first = await resolveModelFiles(params());
    const tampered = Buffer.from(encoderBytes);
    tampered[1000] = (tampered[1000]! + 1) % 256;
    await writeFile(encBlob(), tampered);

    const offline = await userError(resolveModelFiles(params({ offline: true })));
    expect(offline.toLine()).toMatch(/damaged \(sha256 .*HF_HUB_OFFLINE/);

    server.clearRequests();
    const again = await resolveModelFiles(params());
    expect(again.encoderPath).toBe(first.encoderPath);
    expect((await readFile(again.encoderPath)).equals(encoderBytes)).toBe(true);
    expect(server.requestsTo(/vision_encoder\.onnx/).length).toBeGreaterThan(1);
  });

  it("detects a tampered extracted decoder and extracts it again", async () => {
    const first = await resolveModelFiles(params());
    const bytes = await readFile(first.decoderPath);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    await writeFile(first.decoderPath, bytes);
    await resolveModelFiles(params());
    const weights = await readSafetensors(first.decoderPath);
    for (const t of decoderTensors) expect(weights.get(t.name)!.data).toEqual(t.values);
  });

  it("a truncated body leaves only an .incomplete file, which the next run resumes", async () => {
    server.failNext({ route: /vision_encoder\.onnx \[bytes=131072-/, truncate: 1000 });
    const e = await userError(resolveModelFiles(params({ http: { tries: 1 } })));
    expect(e.toLine()).toMatch(/vision_encoder\.onnx.*(lost|expected)/);
    expect(existsSync(encBlob())).toBe(false);
    expect(existsSync(`${encBlob()}.incomplete`)).toBe(true);
    expect(
      (await modelCacheStatus({ modelId: "tiny", registry, cacheDir, persamCacheDir: persamDir })).cached,
    ).toBe(false);

    server.clearRequests();
    const files = await resolveModelFiles(params());
    expect((await readFile(files.encoderPath)).equals(encoderBytes)).toBe(true);
    const ranges = server.requestsTo(/vision_encoder\.onnx/).map((r) => r.range);
    expect(ranges).toContain("bytes=131072-196607");
    expect(ranges).not.toContain("bytes=0-65535");
  });

  it("a corrupt partial file is never trusted: the hash check fails, it is deleted, the next run succeeds", async () => {
    await mkdir(join(cacheDir, "models--tiny--encoder", "blobs"), { recursive: true });
    await writeFile(`${encBlob()}.incomplete`, randomBytes(100_000));
    const e = await userError(resolveModelFiles(params()));
    expect(e.toLine()).toMatch(/do not match the Hub's hash/);
    expect(existsSync(`${encBlob()}.incomplete`)).toBe(false);
    expect(existsSync(encBlob())).toBe(false);
    const files = await resolveModelFiles(params());
    expect((await readFile(files.encoderPath)).equals(encoderBytes)).toBe(true);
  });

  it("a 500 mid-download and a dropped connection are single lines and leave no blob", async () => {
    server.failNext({ route: /vision_encoder\.onnx \[bytes=65536-/, status: 500 });
    const e500 = await userError(resolveModelFiles(params({ http: { tries: 1 } })));
    expect(e500.toLine()).toMatch(/server error \(500\)/);
    expect(existsSync(encBlob())).toBe(false);
    server.failNext({ route: /vision_encoder\.onnx \[bytes=196608-/, drop: true });
    const dropped = await userError(resolveModelFiles(params({ http: { tries: 1 } })));
    expect(dropped.toLine()).toMatch(/connection to the Hub was lost/);
    expect(existsSync(encBlob())).toBe(false);
  });

  it("a 503 and a dropped connection mid-download are retried and the download completes", async () => {
    server.failNext({ route: /vision_encoder\.onnx \[bytes=65536-/, status: 503 });
    server.failNext({ route: /vision_encoder\.onnx \[bytes=196608-/, drop: true });
    const files = await resolveModelFiles(params({ http: { tries: 3, baseDelayMs: 1 } }));
    expect((await readFile(files.encoderPath)).equals(encoderBytes)).toBe(true);
    const tries = server.requestsTo(/vision_encoder\.onnx/).filter((r) => r.range === "bytes=196608-262143");
    expect(tries.map((r) => r.dropped)).toEqual([true, false]);
    expect(server.requestsTo(/vision_encoder\.onnx/).filter((r) => r.status === 503)).toHaveLength(1);
  });
});

describe("failures", () => {
  it("nothing cached and no server: the offline message names the model and what to do", async () => {
    const e = await userError(resolveModelFiles(params({ endpoint: await closedPortUrl() })));
    expect(e.toLine()).toMatch(
      /^model 'tiny' is not in the Hugging Face cache \(.*\) and the Hub is unreachable — run 'persam-db models pull tiny' on a connected machine \(or copy its cache folder here\), or pass --encoder FILE\.onnx --decoder FILE\.safetensors$/,
    );
    const off = await userError(resolveModelFiles(params({ offline: true })));
    expect(off.toLine()).toMatch(/offline mode is on \(HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE\)/);
  });

  it("401 says how to set HF_TOKEN; 404 names the file", async () => {
    server.requireAuth({ name: "tiny/encoder" });
    try {
      const e = await userError(resolveModelFiles(params({ token: undefined as unknown as string })));
      expect(e.toLine()).toMatch(/401.*HF_TOKEN/);
    } finally {
      server.requireAuth({ name: "tiny/encoder", on: false });
    }
    const missing = await userError(resolveModelFiles(params({ modelId: "tiny-missing" })));
    expect(missing.toLine()).toMatch(/tiny\/encoder has no file onnx\/nope\.onnx/);
    const unknown = await userError(resolveModelFiles(params({ modelId: "nope" })));
    expect(unknown.toLine()).toMatch(/Unknown model 'nope'.*tiny, tiny-gap/);
  });

  it("local files must both exist", async () => {
    const e = await userError(
      resolveModelFiles({ encoderPath: join(work, "a.onnx"), decoderPath: join(work, "b.safetensors") }),
    );
    expect(e.toLine()).toMatch(/--encoder file .*a\.onnx does not exist/);
  });
});

/** Write a file into the HF cache the way Python's huggingface_hub does, with refs/main → `sha`. */
async function writePythonCache(
  repo: string,
  sha: string,
  path: string,
  content: Uint8Array,
): Promise<string> {
  const folder = join(cacheDir, `models--${repo.replace("/", "--")}`);
  const blob = join(folder, "blobs", sha256(content));
  await mkdir(join(folder, "blobs"), { recursive: true });
  await writeFile(blob, content);
  const snap = join(folder, "snapshots", sha, path);
  await mkdir(join(snap, ".."), { recursive: true });
  await symlink(
    join(
      ...path
        .split("/")
        .slice(1)
        .map(() => ".."),
      "..",
      "..",
      "blobs",
      sha256(content),
    ),
    snap,
  );
  await mkdir(join(folder, "refs"), { recursive: true });
  await writeFile(join(folder, "refs", "main"), sha);
  return snap;
}

describe("a cache written by Python huggingface_hub", () => {
  it("is read as-is: snapshot symlinks, refs/main, and a full checkpoint instead of an extract", async () => {
    const enc = await writePythonCache("tiny/encoder", ENC_SHA, "onnx/vision_encoder.onnx", encoderBytes);
    const dec = await writePythonCache("tiny/decoder", decoderSha, "model.safetensors", checkpoint.bytes);
    const files = await resolveModelFiles(params({ offline: true, endpoint: await closedPortUrl() }));
    expect(files.encoderPath).toBe(enc);
    expect(files.decoderPath).toBe(dec);
    expect(server.requests).toHaveLength(0);
  });

  it("offline, follows refs/main to another commit's snapshot and takes the pinned file there when its sha256 matches", async () => {
    const enc = await writePythonCache("tiny/encoder", OTHER_SHA, "onnx/vision_encoder.onnx", encoderBytes);
    await writePythonCache("tiny/decoder", decoderSha, "model.safetensors", checkpoint.bytes);
    const files = await resolveModelFiles(
      params({ modelId: "tiny-pinned", offline: true, endpoint: await closedPortUrl() }),
    );
    expect(files.encoderPath).toBe(enc);
    expect(files.revision?.encoder).toBe(OTHER_SHA);
    expect(
      (await modelCacheStatus({ modelId: "tiny-pinned", registry, cacheDir, persamCacheDir: persamDir }))
        .cached,
    ).toBe(true);
    // The registry's hash decides: without one (model "tiny"), another commit's file is not taken.
    const e = await userError(resolveModelFiles(params({ offline: true, endpoint: await closedPortUrl() })));
    expect(e.toLine()).toMatch(/^model 'tiny' is not in the Hugging Face cache/);
    expect(server.requests).toHaveLength(0);
  });

  it("never takes other bytes under refs/main for a pinned file", async () => {
    await writePythonCache(
      "tiny/encoder",
      OTHER_SHA,
      "onnx/vision_encoder.onnx",
      randomBytes(encoderBytes.length),
    );
    const e = await userError(resolveModelFiles(params({ modelId: "tiny-pinned", offline: true })));
    expect(e.toLine()).toMatch(
      /^model 'tiny-pinned' is not in the Hugging Face cache .* and offline mode is on/,
    );
  });
});

describe("external data", () => {
  it("the graph walk names every external-data location", async () => {
    const path = join(work, "model.onnx");
    await writeFile(path, extFixture.model);
    expect(await externalDataLocations(path)).toEqual(["weights-a.bin", "weights-b.bin"]);
  });

  it("downloads every file the graph names, though the registry lists none, and onnxruntime runs the model", async () => {
    const files = await resolveModelFiles(params({ modelId: "tiny-ext" }));
    const folder = join(files.encoderPath, "..");
    expect(files.externalDataPaths).toEqual([join(folder, "weights-a.bin"), join(folder, "weights-b.bin")]);
    const session = await createSession(files.encoderPath, { threads: 1 });
    try {
      const out = await session.run({ x: ortFloat32(new Float32Array(4), [4]) });
      expect(Array.from(out.y!.data as Float32Array)).toEqual([11, 22, 33, 44]);
    } finally {
      await session.release();
    }
    const status = await modelCacheStatus({
      modelId: "tiny-ext",
      registry,
      cacheDir,
      persamCacheDir: persamDir,
    });
    expect(status.files.filter((f) => f.role === "external-data").map((f) => [f.path, f.state])).toEqual([
      ["onnx/weights-a.bin", "ok"],
      ["onnx/weights-b.bin", "ok"],
    ]);

    // Offline with one data file gone from the cache: one line naming it.
    await rm(join(folder, "weights-b.bin"));
    const e = await userError(resolveModelFiles(params({ modelId: "tiny-ext", offline: true })));
    expect(e.toLine()).toMatch(
      /^model 'tiny-ext': the external-data file onnx\/weights-b\.bin of onnx\/model\.onnx is not in the Hugging Face cache .* and offline mode is on/,
    );
  });

  it("a data file the repo does not have is one line", async () => {
    const e = await userError(resolveModelFiles(params({ modelId: "tiny-ext-broken" })));
    expect(e.toLine()).toMatch(
      /^model 'tiny-ext-broken' needs the external-data file onnx\/weights-b\.bin of onnx\/model\.onnx, which tiny\/external-broken does not have at commit abcdefa — the export is incomplete/,
    );
  });

  it("a local --encoder whose data file is not beside it is one line", async () => {
    await writeFile(join(work, "model.onnx"), extFixture.model);
    await writeFile(join(work, "weights-a.bin"), extFixture.files["weights-a.bin"]!);
    await writeFile(join(work, "dec.safetensors"), checkpoint.bytes);
    const e = await userError(
      resolveModelFiles({
        encoderPath: join(work, "model.onnx"),
        decoderPath: join(work, "dec.safetensors"),
      }),
    );
    expect(e.toLine()).toMatch(
      /keeps weights in the external-data file 'weights-b\.bin', which is not beside it/,
    );
    await writeFile(join(work, "weights-b.bin"), extFixture.files["weights-b.bin"]!);
    const ok = await resolveModelFiles({
      encoderPath: join(work, "model.onnx"),
      decoderPath: join(work, "dec.safetensors"),
    });
    expect(ok.externalDataPaths).toHaveLength(2);
  });
});

describe("registry", () => {
  it("the bundled registry is valid and its default is DEFAULT_MODEL_ID", () => {
    const bundled = loadModelRegistry();
    expect(bundled.defaultId).toBe(DEFAULT_MODEL_ID);
    expect(bundled.models.map((m) => m.id)).toEqual([
      "slimsam-77",
      "slimsam-50",
      "sam-vit-base",
      "sam-vit-large",
      "sam-vit-huge",
    ]);
    const huge = bundled.models.find((m) => m.id === "sam-vit-huge")!;
    expect(huge.encoder.variants.fp32.externalData.map((f) => f.path)).toEqual([
      "onnx/vision_encoder.onnx_data",
    ]);
    for (const m of bundled.models) expect(m.encoder.pinned || m.encoder.revision === "main").toBe(true);
  });

  it("reports every problem with its path", () => {
    const json = registryJson();
    type Part = Record<string, unknown>;
    const bad = structuredClone(json) as unknown as {
      models: Array<Part & { encoder: Part; decoder: Part }>;
    };
    bad.models[0]!.encoder.revision = "dev";
    delete bad.models[0]!.encoder.pinned;
    bad.models[1]!.decoder.path = "model.bin";
    bad.models[1]!.description = "two\nlines";
    let message = "";
    try {
      parseModelRegistry({ json: bad, source: "test.json" });
    } catch (e) {
      message = (e as UserError).message;
    }
    expect(message).toMatch(/^test\.json has 3 problems: /);
    expect(message).toContain("models[0].encoder.pinned: revision 'dev' is not a 40-hex commit");
    expect(message).toContain("models[1].decoder.path: expected a .safetensors file");
    expect(message).toContain("models[1].description: expected one line");
  });
});

describe("checkCheckpointMatch", () => {
  const g: Tensor = { data: randomValues(8), dims: [2, 4] };
  const side = 4;
  function encoderPe(gm: Tensor): Tensor {
    const out = new Float32Array(8 * side * side);
    for (let r = 0; r < side; r++)
      for (let c = 0; c < side; c++) {
        const pe = pointEncoding(gm, (c + 0.5) / side, (r + 0.5) / side);
        for (let k = 0; k < 8; k++) out[k * side * side + r * side + c] = pe[k]!;
      }
    return { data: out, dims: [1, 8, side, side] };
  }

  it("accepts an encoder whose positional output matches the decoder's G", () => {
    const weights = new Map([[POSITIONAL_EMBEDDING_KEY, g]]);
    expect(
      checkCheckpointMatch({ encoderPositional: encoderPe(g), decoderWeights: weights }).maxAbsDiff,
    ).toBeLessThan(1e-6);
  });

  it("rejects a mismatched pair naming both files", () => {
    const other: Tensor = { data: randomValues(8), dims: [2, 4] };
    expect(() =>
      checkCheckpointMatch({
        encoderPositional: encoderPe(other),
        decoderWeights: new Map([[POSITIONAL_EMBEDDING_KEY, g]]),
        encoderPath: "enc.onnx",
        decoderPath: "dec.safetensors",
      }),
    ).toThrow(/enc\.onnx and dec\.safetensors come from different SAM checkpoints/);
  });
});

describe("hubConfig", () => {
  it("follows huggingface_hub's precedence for the cache, token and endpoint, and redacts tokens", async () => {
    const home = join(work, "home");
    expect(hubConfig({ HOME: home }).cacheDir).toBe(join(home, ".cache", "huggingface", "hub"));
    expect(hubConfig({ HOME: home, XDG_CACHE_HOME: "/x" }).cacheDir).toBe(join("/x", "huggingface", "hub"));
    expect(hubConfig({ HOME: home, HF_HOME: "/h", XDG_CACHE_HOME: "/x" }).cacheDir).toBe(join("/h", "hub"));
    expect(hubConfig({ HF_HOME: "/h", HUGGINGFACE_HUB_CACHE: "/old" }).cacheDir).toBe("/old");
    expect(hubConfig({ HF_HUB_CACHE: "/new", HUGGINGFACE_HUB_CACHE: "/old" }).cacheDir).toBe("/new");
    expect(hubConfig({ HOME: home }).endpoint).toBe("https://huggingface.co");
    expect(hubConfig({ HOME: home, HF_ENDPOINT: "https://mirror.example//" }).endpoint).toBe(
      "https://mirror.example",
    );
    expect(hubConfig({ HOME: home, HF_HUB_OFFLINE: "true" }).offline).toBe(true);
    expect(hubConfig({ HOME: home, HF_HUB_OFFLINE: "0" }).offline).toBe(false);
    // As huggingface_hub's constants.py: HF_HUB_OFFLINE, or TRANSFORMERS_OFFLINE when it is unset.
    expect(hubConfig({ HOME: home, TRANSFORMERS_OFFLINE: "1" })).toMatchObject({
      offline: true,
      offlineSource: "TRANSFORMERS_OFFLINE",
    });
    expect(hubConfig({ HOME: home, HF_HUB_OFFLINE: "0", TRANSFORMERS_OFFLINE: "1" }).offline).toBe(false);
    // ~ and $VAR expanded as os.path.expandvars(os.path.expanduser(...)).
    expect(hubConfig({ HOME: home, HF_HOME: "~/hf" }).cacheDir).toBe(join(home, "hf", "hub"));
    expect(hubConfig({ HOME: home, BASE: "/data", HF_HOME: "$BASE/hf" }).cacheDir).toBe("/data/hf/hub");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell-style variable, meant literally
    expect(hubConfig({ HOME: home, BASE: "/data", HF_HUB_CACHE: "${BASE}/c" }).cacheDir).toBe("/data/c");
    expect(hubConfig({ HOME: home, HUGGINGFACE_HUB_CACHE: "~/old" }).cacheDir).toBe(join(home, "old"));
    expect(hubConfig({ HOME: home, XDG_CACHE_HOME: "~/xdg" }).cacheDir).toBe(
      join(home, "xdg", "huggingface", "hub"),
    );
    expect(hubConfig({ HOME: home, HF_HUB_CACHE: "$NOT_SET_ANYWHERE/x" }).cacheDir).toBe(
      "$NOT_SET_ANYWHERE/x",
    );
    expect(hubConfig({ HOME: home, HF_HUB_CACHE: "~no-such-user-here/x" }).cacheDir).toBe(
      "~no-such-user-here/x",
    );
    expect(hubConfig({ HOME: home, HF_HUB_DOWNLOAD_TIMEOUT: "5" }).idleTimeoutMs).toBe(5000);

    await mkdir(join(work, "hfh"), { recursive: true });
    await writeFile(join(work, "hfh", "token"), "hf_fromfile000000000\n");
    expect(hubConfig({ HF_HOME: join(work, "hfh") })).toMatchObject({
      token: "hf_fromfile000000000",
      tokenSource: "token-file",
    });
    expect(hubConfig({ HF_HOME: join(work, "hfh"), HUGGING_FACE_HUB_TOKEN: "hf_legacy" }).tokenSource).toBe(
      "HUGGING_FACE_HUB_TOKEN",
    );
    expect(
      hubConfig({ HF_HOME: join(work, "hfh"), HF_TOKEN: "hf_env", HUGGING_FACE_HUB_TOKEN: "hf_legacy" })
        .token,
    ).toBe("hf_env");
    await writeFile(join(work, "elsewhere"), "hf_elsewhere000000000");
    expect(hubConfig({ HF_HOME: join(work, "hfh"), HF_TOKEN_PATH: join(work, "elsewhere") }).token).toBe(
      "hf_elsewhere000000000",
    );
    expect(hubConfig({ HOME: work, HF_TOKEN_PATH: "~/elsewhere" }).token).toBe("hf_elsewhere000000000");
    expect(hubConfig({ HOME: home }).token).toBeUndefined();

    expect(persamCacheDir({ HOME: home })).toBe(join(home, ".cache", "persam-db"));
    expect(persamCacheDir({ HOME: home, PERSAM_DB_CACHE: "/p" })).toBe("/p");
    expect(redact("Bearer hf_secret123 and hf_otherToken99", "hf_secret123")).toBe(
      "Bearer hf_*** and hf_***",
    );
  });
});
