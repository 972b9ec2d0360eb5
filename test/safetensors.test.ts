import { mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { randomDecoderWeights } from "../src/segment/models/random-weights.js";
import {
  decoderByteRange,
  decoderWeightShapes,
  isDecoderTensor,
  loadDecoderWeights,
  MAX_HEADER_BYTES,
  POSITIONAL_EMBEDDING_KEY,
  parseSafetensorsHeader,
  readSafetensors,
  readSafetensorsHeader,
  TIED_POSITIONAL_EMBEDDING_KEY,
  writeSafetensors,
} from "../src/segment/sam/safetensors.js";
import type { Tensor } from "../src/util/tensor.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "persam-safetensors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface RawEntry {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file written by hand (not by our writer), tensors in the given order. */
async function writeRaw(name: string, entries: Record<string, RawEntry>): Promise<string> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [k, e] of Object.entries(entries)) {
    header[k] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  return writeHeaderAndData(
    name,
    JSON.stringify(header),
    Object.values(entries).map((e) => e.bytes),
  );
}

async function writeHeaderAndData(name: string, json: string, chunks: Uint8Array[]): Promise<string> {
  const head = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  const path = join(dir, name);
  await writeFile(path, Buffer.concat([len, head, ...chunks]));
  return path;
}

function u16(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 2);
  for (const [i, v] of values.entries()) b.writeUInt16LE(v, 2 * i);
  return b;
}

function f32(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 4);
  for (const [i, v] of values.entries()) b.writeFloatLE(v, 4 * i);
  return b;
}

const t = (values: number[], dims: number[]): Tensor => ({ data: new Float32Array(values), dims });

describe("writeSafetensors / readSafetensors", () => {
  it("round-trips tensors and metadata, laid out like the official serializer", async () => {
    const path = join(dir, "roundtrip.safetensors");
    const tensors = new Map<string, Tensor>([
      ["b.weight", t([1, 2, 3, 4, 5, 6], [2, 3])],
      ["a", t([-1.5], [1])],
      ["B", t([0.25, 7], [2])],
      ["empty", t([], [0, 4])],
    ]);
    await writeSafetensors(path, tensors, { format: "pt" });
    const header = await readSafetensorsHeader(path);
    expect(header.headerLength % 8).toBe(0);
    expect(header.dataStart).toBe(8 + header.headerLength);
    expect(header.metadata).toEqual({ format: "pt" });
    // Sorted by name byte-wise ("B" < "a" < "b.weight" < "empty"), offsets contiguous from 0.
    expect([...header.tensors.keys()]).toEqual(["B", "a", "b.weight", "empty"]);
    expect([...header.tensors.values()].map((e) => [e.begin, e.end])).toEqual([
      [0, 8],
      [8, 12],
      [12, 36],
      [36, 36],
    ]);
    expect(header.tensors.get("b.weight")).toEqual({ dtype: "F32", shape: [2, 3], begin: 12, end: 36 });
    const bytes = await readFile(path);
    expect(bytes.length).toBe(header.dataStart + 36);
    const json = bytes.subarray(8, header.dataStart).toString("utf8");
    expect(json.startsWith('{"__metadata__":{"format":"pt"},"B":')).toBe(true);
    expect(/^ *$/.test(json.slice(json.lastIndexOf("}") + 1))).toBe(true);

    const back = await readSafetensors(path);
    expect([...back.keys()]).toEqual(["B", "a", "b.weight", "empty"]);
    for (const [name, tensor] of tensors) {
      expect(back.get(name)!.dims).toEqual(tensor.dims);
      expect([...back.get(name)!.data]).toEqual([...tensor.data]);
    }
    // No temporary file is left behind.
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("reads only the selected tensors", async () => {
    const path = join(dir, "filter.safetensors");
    await writeSafetensors(
      path,
      new Map([
        ["x", t([1], [1])],
        ["y", t([2, 3], [2])],
      ]),
    );
    const only = await readSafetensors(path, { filter: (n) => n === "y" });
    expect([...only.keys()]).toEqual(["y"]);
    expect([...only.get("y")!.data]).toEqual([2, 3]);
  });

  it("refuses a tensor whose data disagrees with its dims", async () => {
    await expect(
      writeSafetensors(join(dir, "bad.safetensors"), new Map([["x", t([1, 2, 3], [2, 2])]])),
    ).rejects.toThrow("Expected 4 elements for tensor x of shape [2,2] but received 3");
  });

  it("decodes F16, BF16 and F64 to float32", async () => {
    const f64 = Buffer.alloc(16);
    f64.writeDoubleLE(0.1, 0);
    f64.writeDoubleLE(-1e300, 8);
    const path = await writeRaw("dtypes.safetensors", {
      half: {
        dtype: "F16",
        shape: [8],
        bytes: u16([0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x0400, 0xfc00, 0x7e00]),
      },
      brain: { dtype: "BF16", shape: [2, 3], bytes: u16([0x3f80, 0xc040, 0x4049, 0x8000, 0x7f80, 0x3dcd]) },
      double: { dtype: "F64", shape: [2], bytes: f64 },
      single: { dtype: "F32", shape: [1], bytes: f32([3.5]) },
    });
    const m = await readSafetensors(path);
    expect([...m.get("half")!.data]).toEqual([
      1,
      -2,
      0.333251953125,
      65504,
      2 ** -24,
      2 ** -14,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
    ]);
    expect([...m.get("brain")!.data]).toEqual([1, -3, 3.140625, -0, Number.POSITIVE_INFINITY, 0.10009765625]);
    expect(m.get("brain")!.dims).toEqual([2, 3]);
    expect([...m.get("double")!.data]).toEqual([Math.fround(0.1), Number.NEGATIVE_INFINITY]);
    expect([...m.get("single")!.data]).toEqual([3.5]);
  });

  it("refuses to decode an integer tensor but reads the others", async () => {
    const path = await writeRaw("ints.safetensors", {
      ids: { dtype: "I64", shape: [1], bytes: new Uint8Array(8) },
      w: { dtype: "F32", shape: [1], bytes: f32([2]) },
    });
    await expect(readSafetensors(path)).rejects.toThrow("dtype I64 is not a float type");
    const m = await readSafetensors(path, { filter: (n) => n === "w" });
    expect([...m.get("w")!.data]).toEqual([2]);
  });

  it("reads a decoder out of a huge checkpoint without touching the encoder bytes", async () => {
    // An 8 GiB encoder tensor as a sparse hole: reading it (or the whole file) would need 8 GiB.
    const big = 2 ** 31;
    const decoderBytes = f32([1, 2, 3, 4]);
    const header = JSON.stringify({
      "vision_encoder.big": { dtype: "F32", shape: [big], data_offsets: [0, 4 * big] },
      "mask_decoder.iou_token.weight": { dtype: "F32", shape: [1, 4], data_offsets: [4 * big, 4 * big + 16] },
    });
    const path = join(dir, "huge.safetensors");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const fh = await open(path, "w");
    await fh.write(Buffer.concat([len, Buffer.from(header)]), 0, 8 + header.length, 0);
    await fh.write(decoderBytes, 0, 16, 8 + header.length + 4 * big);
    await fh.close();

    const before = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    const m = await readSafetensors(path, { filter: isDecoderTensor });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 2 ** 20);
    expect([...m.keys()]).toEqual(["mask_decoder.iou_token.weight"]);
    expect([...m.get("mask_decoder.iou_token.weight")!.data]).toEqual([1, 2, 3, 4]);

    const h = await readSafetensorsHeader(path);
    expect(decoderByteRange(h)).toEqual({
      begin: h.dataStart + 4 * big,
      end: h.dataStart + 4 * big + 16,
      gaps: [],
    });
  });
});

describe("header validation", () => {
  async function expectInvalid(path: string, fragment: string) {
    const err = await readSafetensorsHeader(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toContain(`Invalid safetensors file ${path}: `);
    expect((err as UserError).message).toContain(fragment);
  }

  it("rejects a header longer than the limit before reading it", async () => {
    const path = join(dir, "hugeheader.safetensors");
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 1));
    await writeFile(path, b);
    await expectInvalid(
      path,
      `header length ${MAX_HEADER_BYTES + 1} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  });

  it("rejects a file shorter than its header", async () => {
    const path = join(dir, "short.safetensors");
    const b = Buffer.alloc(12);
    b.writeBigUInt64LE(100n);
    await writeFile(path, b);
    await expectInvalid(path, "header length 100 bytes runs past the end of the 12-byte file");
    await writeFile(path, Buffer.alloc(3));
    await expectInvalid(path, "expected at least 8 bytes but received 3");
  });

  it("rejects bad JSON, unknown dtypes and bad shapes", async () => {
    await expectInvalid(
      await writeHeaderAndData("json.safetensors", "{not json", []),
      "not valid UTF-8 JSON",
    );
    await expectInvalid(
      await writeHeaderAndData("array.safetensors", "[1,2]", []),
      "the header is not a JSON object",
    );
    await expectInvalid(
      await writeRaw("dtype.safetensors", { x: { dtype: "F33", shape: [1], bytes: new Uint8Array(4) } }),
      'tensor x has unknown dtype "F33"',
    );
    await expectInvalid(
      await writeHeaderAndData(
        "shape.safetensors",
        '{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}',
        [new Uint8Array(4)],
      ),
      "tensor x has an invalid shape [-1]",
    );
  });

  it("rejects offsets that disagree with the shape, run past the file, or overlap", async () => {
    await expectInvalid(
      await writeHeaderAndData("size.safetensors", '{"x":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}}', [
        new Uint8Array(4),
      ]),
      "tensor x (F16 [3]) needs 6 bytes but data_offsets [0,4] span 4",
    );
    await expectInvalid(
      await writeHeaderAndData("past.safetensors", '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', [
        new Uint8Array(4),
      ]),
      "tensor x ends at data byte 8 but the data section has 4 bytes",
    );
    await expectInvalid(
      await writeHeaderAndData(
        "overlap.safetensors",
        '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        [new Uint8Array(8)],
      ),
      "tensors x and y overlap",
    );
  });

  it("rejects a non-string metadata value", () => {
    const json = Buffer.from('{"__metadata__":{"n":1}}');
    const bytes = Buffer.concat([Buffer.alloc(8), json]);
    bytes.writeBigUInt64LE(BigInt(json.length));
    expect(() => parseSafetensorsHeader(bytes, { source: "mem" })).toThrow(
      "Invalid safetensors file mem: __metadata__.n is not a string",
    );
  });

  it("names a missing file as a user error", async () => {
    const missing = join(dir, "nope.safetensors");
    await expect(readSafetensorsHeader(missing)).rejects.toThrow(
      `Cannot open safetensors file ${missing} (ENOENT)`,
    );
  });
});

describe("decoder tensors", () => {
  it("recognises decoder tensor names", () => {
    expect(isDecoderTensor("mask_decoder.iou_token.weight")).toBe(true);
    expect(isDecoderTensor("prompt_encoder.point_embed.0.weight")).toBe(true);
    expect(isDecoderTensor(POSITIONAL_EMBEDDING_KEY)).toBe(true);
    expect(isDecoderTensor("vision_encoder.neck.conv1.weight")).toBe(false);
    expect(isDecoderTensor("xmask_decoder.iou_token.weight")).toBe(false);
  });

  it("finds the decoder byte range and the encoder tensors inside it", () => {
    const entry = (begin: number, end: number) => ({ dtype: "U8", shape: [end - begin], begin, end });
    const header = {
      headerLength: 120,
      dataStart: 128,
      tensors: new Map([
        ["vision_encoder.a", entry(0, 100)],
        ["mask_decoder.x", entry(100, 150)],
        ["vision_encoder.b", entry(150, 170)],
        ["prompt_encoder.y", entry(170, 180)],
        ["vision_encoder.c", entry(180, 400)],
      ]),
    };
    expect(decoderByteRange(header)).toEqual({
      begin: 228,
      end: 308,
      gaps: [{ name: "vision_encoder.b", begin: 278, end: 298 }],
    });
    header.tensors.delete("vision_encoder.b");
    header.tensors.set("shared_image_embedding.positional_embedding", entry(150, 170));
    expect(decoderByteRange(header)).toEqual({ begin: 228, end: 308, gaps: [] });
    expect(() =>
      decoderByteRange({ headerLength: 0, dataStart: 8, tensors: new Map() }, "x.safetensors"),
    ).toThrow("No SAM decoder tensors (mask_decoder.*, prompt_encoder.*) in x.safetensors");
  });

  it("lists every decoder tensor of spec §10 (137 + G)", () => {
    const shapes = decoderWeightShapes({ embedDim: 256, mlpDim: 2048, crossDim: 128 });
    const names = [...shapes.keys()];
    expect(names.filter((n) => n.startsWith("mask_decoder.")).length).toBe(120);
    expect(names.filter((n) => n.startsWith("prompt_encoder.")).length).toBe(16);
    expect(shapes.get(POSITIONAL_EMBEDDING_KEY)).toEqual([2, 128]);
    expect(shapes.get("mask_decoder.upscale_conv1.weight")).toEqual([256, 64, 2, 2]);
    expect(shapes.get("mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight")).toEqual(
      [256, 128],
    );
    expect(shapes.get("mask_decoder.output_hypernetworks_mlps.3.proj_out.weight")).toEqual([32, 256]);
  });

  it("loads decoder weights from a checkpoint, skipping the encoder, with either name of G", async () => {
    const weights = randomDecoderWeights({ embedDim: 32, seed: 5 });
    const file = new Map(weights);
    file.set("vision_encoder.patch_embed.weight", t([9, 9], [2]));
    const path = join(dir, "decoder.safetensors");
    await writeSafetensors(path, file);
    const loaded = await loadDecoderWeights(path);
    expect(new Set(loaded.keys())).toEqual(new Set(weights.keys()));
    for (const [name, tensor] of weights) expect(loaded.get(name)).toEqual(tensor);

    const tied = new Map(weights);
    tied.delete(POSITIONAL_EMBEDDING_KEY);
    tied.set(TIED_POSITIONAL_EMBEDDING_KEY, weights.get(POSITIONAL_EMBEDDING_KEY)!);
    const tiedPath = join(dir, "tied.safetensors");
    await writeSafetensors(tiedPath, tied);
    const fromTied = await loadDecoderWeights(tiedPath);
    expect(fromTied.has(TIED_POSITIONAL_EMBEDDING_KEY)).toBe(false);
    expect(fromTied.get(POSITIONAL_EMBEDDING_KEY)).toEqual(weights.get(POSITIONAL_EMBEDDING_KEY));
  });

  it("names every missing tensor and the file", async () => {
    const weights = randomDecoderWeights({ embedDim: 32, seed: 5 });
    weights.delete("mask_decoder.mask_tokens.weight");
    weights.delete("prompt_encoder.mask_embed.conv2.bias");
    weights.delete(POSITIONAL_EMBEDDING_KEY);
    const path = join(dir, "partial.safetensors");
    await writeSafetensors(path, weights);
    const err = await loadDecoderWeights(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe(
      "partial.safetensors lacks 3 SAM decoder tensors: " +
        `${POSITIONAL_EMBEDDING_KEY} (or ${TIED_POSITIONAL_EMBEDDING_KEY}), prompt_encoder.mask_embed.conv2.bias, ` +
        "mask_decoder.mask_tokens.weight",
    );
  });

  it("names tensors whose shape disagrees with the width found", async () => {
    const weights = randomDecoderWeights({ embedDim: 32, seed: 5 });
    weights.set("mask_decoder.upscale_conv2.bias", t([1, 2, 3], [3]));
    const path = join(dir, "shapes.safetensors");
    await writeSafetensors(path, weights);
    await expect(loadDecoderWeights(path)).rejects.toThrow(
      "shapes.safetensors has SAM decoder tensors of the wrong shape: mask_decoder.upscale_conv2.bias is [3], expected [4]",
    );
  });
});
