// Reading and writing `safetensors` files (header, ranged tensor reads, F32 writer) and loading the
// SAM prompt-encoder + mask-decoder weights out of a full checkpoint (persam-spec §10).

import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { basename } from "node:path";
import { UserError } from "../../errors.js";
import { float16BitsToNumber } from "../../util/float16.js";
import { numel, type Tensor } from "../../util/tensor.js";
import type { DecoderWeights } from "./decoder-types.js";

/** Headers larger than this are refused (a decoder-only or SAM checkpoint header is a few kB). */
export const MAX_HEADER_BYTES = 25_000_000;

/** Bytes per element of every dtype the format defines (we only decode the float ones). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** One entry of a safetensors header. */
export interface SafetensorsEntry {
  /** Element type as the file names it (`F32`, `F16`, `BF16`, `F64`, …). */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Byte offset of the first byte, relative to the start of the data section (`dataStart`). */
  readonly begin: number;
  /** Byte offset one past the last byte, relative to the start of the data section. */
  readonly end: number;
}

/** A parsed safetensors header. */
export interface SafetensorsHeader {
  /** Length of the JSON header in bytes (the little-endian u64 at the start of the file). */
  readonly headerLength: number;
  /** Absolute file offset of the data section, `8 + headerLength`. */
  readonly dataStart: number;
  /** Tensors by name, in header order. */
  readonly tensors: ReadonlyMap<string, SafetensorsEntry>;
  /** The optional `__metadata__` string map. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Options of {@link parseSafetensorsHeader}. */
export interface ParseHeaderOptions {
  /** Name used in error messages (a path or URL). @default "safetensors data" */
  source?: string;
  /** Total size of the file; when given, every tensor must lie inside it. */
  fileSize?: number;
}

function invalid(source: string, what: string): UserError {
  return new UserError(`Invalid safetensors file ${source}: ${what}`, {
    hint: "the file is damaged or is not a safetensors file; download it again",
  });
}

/**
 * Length of the JSON header from the first 8 bytes of a safetensors file (u64, little-endian).
 * @throws {UserError} when fewer than 8 bytes are given or the length exceeds {@link MAX_HEADER_BYTES}.
 */
export function safetensorsHeaderLength(prefix: Uint8Array, source = "safetensors data"): number {
  if (prefix.length < 8) throw invalid(source, `expected at least 8 bytes but received ${prefix.length}`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw invalid(source, `header length ${n} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (n < 2n) throw invalid(source, `header length ${n} bytes is too small`);
  return Number(n);
}

/**
 * Parse a safetensors header from the first `8 + headerLength` bytes of a file (more is fine).
 * Usable on a ranged HTTP download as well as on a local file.
 * @throws {UserError} on a malformed header: bad JSON, unknown dtype, offsets that disagree with
 * the shape, overlapping tensors, or tensors past the end of the file.
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  options: ParseHeaderOptions = {},
): SafetensorsHeader {
  const source = options.source ?? "safetensors data";
  const headerLength = safetensorsHeaderLength(bytes, source);
  const dataStart = 8 + headerLength;
  if (bytes.length < dataStart) {
    throw invalid(source, `header needs ${dataStart} bytes but only ${bytes.length} are available`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (cause) {
    throw new UserError(`Invalid safetensors file ${source}: the header is not valid UTF-8 JSON`, {
      hint: "the file is damaged or is not a safetensors file; download it again",
      cause,
    });
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw invalid(source, "the header is not a JSON object");
  }
  const dataLength = options.fileSize === undefined ? undefined : options.fileSize - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> | undefined;
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(value, source);
      continue;
    }
    tensors.set(name, parseEntry(name, value, source, dataLength));
  }
  // Overlapping byte ranges mean a corrupt header (the official reader refuses them too).
  const sorted = [...tensors].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1]!;
    const [name, cur] = sorted[i]!;
    if (cur.begin < prev.end) throw invalid(source, `tensors ${prevName} and ${name} overlap`);
  }
  return metadata === undefined
    ? { headerLength, dataStart, tensors }
    : { headerLength, dataStart, tensors, metadata };
}

function parseMetadata(value: unknown, source: string): Record<string, string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(source, "__metadata__ is not an object");
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") throw invalid(source, `__metadata__.${k} is not a string`);
    out[k] = v;
  }
  return out;
}

function isNonNegativeInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function parseEntry(name: string, value: unknown, source: string, dataLength?: number): SafetensorsEntry {
  if (value === null || typeof value !== "object") throw invalid(source, `entry ${name} is not an object`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string" || DTYPE_BYTES[dtype] === undefined) {
    throw invalid(source, `tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw invalid(source, `tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    throw invalid(source, `tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = numel(shape) * DTYPE_BYTES[dtype];
  if (end < begin || end - begin !== expected) {
    throw invalid(
      source,
      `tensor ${name} (${dtype} [${shape.join(",")}]) needs ${expected} bytes but data_offsets [${begin},${end}] span ${end - begin}`,
    );
  }
  if (dataLength !== undefined && end > dataLength) {
    throw invalid(
      source,
      `tensor ${name} ends at data byte ${end} but the data section has ${dataLength} bytes`,
    );
  }
  return { dtype, shape: [...shape], begin, end };
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new UserError(`Cannot open safetensors file ${path}${code ? ` (${code})` : ""}`, {
      hint: "check the path, or download the weights again",
      cause,
    });
  }
}

async function readExactly(
  fh: FileHandle,
  length: number,
  position: number,
  source: string,
): Promise<Uint8Array> {
  // A fresh buffer so the bytes start at offset 0 of their ArrayBuffer (aligned for typed views).
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(out, done, length - done, position + done);
    if (bytesRead === 0) throw invalid(source, `unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return out;
}

async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  const prefix = await readExactly(fh, Math.min(8, size), 0, path);
  const headerLength = safetensorsHeaderLength(prefix, path);
  if (8 + headerLength > size) {
    throw invalid(path, `header length ${headerLength} bytes runs past the end of the ${size}-byte file`);
  }
  const bytes = await readExactly(fh, 8 + headerLength, 0, path);
  return parseSafetensorsHeader(bytes, { source: path, fileSize: size });
}

/**
 * Read and validate the header of a local safetensors file (reads only the header bytes).
 * @throws {UserError} when the file cannot be opened or its header is malformed.
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openForRead(path);
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

/** Options of {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /** Which tensors to read, by name. @default every tensor */
  filter?: (name: string) => boolean;
}

/**
 * Read the selected tensors of a local safetensors file as float32. Only the byte ranges of the
 * selected tensors are read (with positioned reads on one file handle), so selecting the decoder
 * out of a multi-GB checkpoint costs a few MB of I/O.
 * F32, F16, BF16 and F64 are converted to float32 (little-endian, as the format prescribes).
 * @throws {UserError} on a malformed file or a selected tensor of a non-float dtype.
 */
export async function readSafetensors(
  path: string,
  options: ReadSafetensorsOptions = {},
): Promise<Map<string, Tensor>> {
  const fh = await openForRead(path);
  try {
    const header = await readHeaderFrom(fh, path);
    const out = new Map<string, Tensor>();
    for (const [name, entry] of header.tensors) {
      if (options.filter && !options.filter(name)) continue;
      const bytes = await readExactly(fh, entry.end - entry.begin, header.dataStart + entry.begin, path);
      out.set(name, { data: decodeFloats(bytes, entry.dtype, name, path), dims: [...entry.shape] });
    }
    return out;
  } finally {
    await fh.close();
  }
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decode little-endian float bytes (F32/F16/BF16/F64) to float32. */
function decodeFloats(bytes: Uint8Array, dtype: string, name: string, source: string): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32": {
      if (littleEndianHost) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      const out = new Float32Array(bytes.byteLength / 4);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    }
    case "F16": {
      const out = new Float32Array(bytes.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = float16BitsToNumber(view.getUint16(2 * i, true));
      return out;
    }
    case "BF16": {
      // bfloat16 is the top half of a float32: shift the bits back into place.
      const out = new Float32Array(bytes.byteLength / 2);
      const bits = new Uint32Array(out.buffer);
      // Both views use the host byte order, so this is endianness-safe.
      for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case "F64": {
      const out = new Float32Array(bytes.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    }
    default:
      throw new UserError(
        `Cannot read tensor ${name} of ${source}: dtype ${dtype} is not a float type (F32, F16, BF16, F64)`,
      );
  }
}

/** Byte-wise comparison of UTF-8 names, as the official serializer orders them. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * Write float32 tensors to a safetensors file, laid out as the official serializer does: tensors
 * sorted by dtype then name (all F32 here, so by name), offsets contiguous from 0, the JSON header
 * padded with spaces to a multiple of 8 bytes. Written to a temporary file beside `path` and
 * renamed into place, so readers never see a half-written file.
 * @throws {Error} when a tensor's data length disagrees with its dims.
 */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const names = [...tensors.keys()].sort(compareNames);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const name of names) {
    if (name === "__metadata__") throw new Error(`Expected a tensor name but received ${name}`);
    const t = tensors.get(name)!;
    const n = numel(t.dims);
    if (t.data.length !== n) {
      throw new Error(
        `Expected ${n} elements for tensor ${name} of shape [${t.dims.join(",")}] but received ${t.data.length}`,
      );
    }
    header[name] = { dtype: "F32", shape: [...t.dims], data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(head, 8);

  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await fh.write(head, 0, head.length, 0);
    let position = head.length;
    for (const name of names) {
      const bytes = float32LittleEndianBytes(tensors.get(name)!.data);
      await fh.write(bytes, 0, bytes.length, position);
      position += bytes.length;
    }
    await fh.close();
    await rename(tmp, path);
  } catch (error) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
}

function float32LittleEndianBytes(data: Float32Array): Uint8Array {
  if (littleEndianHost) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i]!, true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// SAM decoder weights inside a checkpoint (persam-spec §10)

/** HF name of the random-Fourier matrix G (§2.1) that {@link loadDecoderWeights} normalises to. */
export const POSITIONAL_EMBEDDING_KEY = "shared_image_embedding.positional_embedding";
/** The tied copy of G under the prompt encoder; a file may hold either or both (§10.1). */
export const TIED_POSITIONAL_EMBEDDING_KEY = "prompt_encoder.shared_embedding.positional_embedding";

/** True for the tensors the prompt encoder + mask decoder need (and nothing of the image encoder). */
export function isDecoderTensor(name: string): boolean {
  return (
    name.startsWith("mask_decoder.") ||
    name.startsWith("prompt_encoder.") ||
    name.startsWith("shared_image_embedding.")
  );
}

/** The widths that determine every decoder tensor shape. */
export interface DecoderWidths {
  /** Token / embedding width C (256 for every released SAM). */
  readonly embedDim: number;
  /** Hidden width of the transformer MLP (2048 for SAM). */
  readonly mlpDim: number;
  /** Internal width of the cross-attentions, C/2 (attention downsample rate 2). */
  readonly crossDim: number;
}

/**
 * Every tensor of the prompt encoder and mask decoder in HF naming with its PyTorch shape (§10),
 * for the given widths. G is listed once, under {@link POSITIONAL_EMBEDDING_KEY}. Fixed by SAM's
 * design (§0.1): mask-input channels 4 then 16, 4 mask tokens, upscaling to C/4 then C/8 channels,
 * hypernetwork output C/8, 3-layer heads with hidden width C.
 */
export function decoderWeightShapes(widths: DecoderWidths): Map<string, number[]> {
  const { embedDim: c, mlpDim: m, crossDim: x } = widths;
  const c4 = c / 4;
  const c8 = c / 8;
  const s = new Map<string, number[]>();
  const linear = (prefix: string, out: number, inp: number) => {
    s.set(`${prefix}.weight`, [out, inp]);
    s.set(`${prefix}.bias`, [out]);
  };
  const norm = (prefix: string, width: number) => {
    s.set(`${prefix}.weight`, [width]);
    s.set(`${prefix}.bias`, [width]);
  };
  const attention = (prefix: string, internal: number) => {
    for (const p of ["q_proj", "k_proj", "v_proj"]) linear(`${prefix}.${p}`, internal, c);
    linear(`${prefix}.out_proj`, c, internal);
  };
  const head = (prefix: string, out: number) => {
    linear(`${prefix}.proj_in`, c, c);
    linear(`${prefix}.layers.0`, c, c);
    linear(`${prefix}.proj_out`, out, c);
  };

  s.set(POSITIONAL_EMBEDDING_KEY, [2, c / 2]);
  const pe = "prompt_encoder";
  for (let i = 0; i < 4; i++) s.set(`${pe}.point_embed.${i}.weight`, [1, c]);
  s.set(`${pe}.not_a_point_embed.weight`, [1, c]);
  s.set(`${pe}.no_mask_embed.weight`, [1, c]);
  s.set(`${pe}.mask_embed.conv1.weight`, [4, 1, 2, 2]);
  s.set(`${pe}.mask_embed.conv1.bias`, [4]);
  norm(`${pe}.mask_embed.layer_norm1`, 4);
  s.set(`${pe}.mask_embed.conv2.weight`, [16, 4, 2, 2]);
  s.set(`${pe}.mask_embed.conv2.bias`, [16]);
  norm(`${pe}.mask_embed.layer_norm2`, 16);
  s.set(`${pe}.mask_embed.conv3.weight`, [c, 16, 1, 1]);
  s.set(`${pe}.mask_embed.conv3.bias`, [c]);

  const md = "mask_decoder";
  s.set(`${md}.iou_token.weight`, [1, c]);
  s.set(`${md}.mask_tokens.weight`, [4, c]);
  for (let l = 0; l < 2; l++) {
    const layer = `${md}.transformer.layers.${l}`;
    attention(`${layer}.self_attn`, c);
    norm(`${layer}.layer_norm1`, c);
    attention(`${layer}.cross_attn_token_to_image`, x);
    norm(`${layer}.layer_norm2`, c);
    linear(`${layer}.mlp.lin1`, m, c);
    linear(`${layer}.mlp.lin2`, c, m);
    norm(`${layer}.layer_norm3`, c);
    norm(`${layer}.layer_norm4`, c);
    attention(`${layer}.cross_attn_image_to_token`, x);
  }
  attention(`${md}.transformer.final_attn_token_to_image`, x);
  norm(`${md}.transformer.layer_norm_final_attn`, c);
  s.set(`${md}.upscale_conv1.weight`, [c, c4, 2, 2]);
  s.set(`${md}.upscale_conv1.bias`, [c4]);
  norm(`${md}.upscale_layer_norm`, c4);
  s.set(`${md}.upscale_conv2.weight`, [c4, c8, 2, 2]);
  s.set(`${md}.upscale_conv2.bias`, [c8]);
  for (let i = 0; i < 4; i++) head(`${md}.output_hypernetworks_mlps.${i}`, c8);
  head(`${md}.iou_prediction_head`, 4);
  return s;
}

/**
 * The widths of a decoder from the shapes found: C from `mask_decoder.iou_token.weight` `[1,C]`,
 * the MLP width from `layers.0.mlp.lin1.weight`, the cross-attention width from
 * `layers.0.cross_attn_token_to_image.q_proj.weight` (SAM defaults 2048 and C/2 when absent).
 * Returns undefined when the iou token is missing or malformed.
 */
export function inferDecoderWidths(
  shapeOf: (name: string) => readonly number[] | undefined,
): DecoderWidths | undefined {
  const iou = shapeOf("mask_decoder.iou_token.weight");
  if (iou?.length !== 2 || iou[0] !== 1 || !(iou[1]! > 0)) return undefined;
  const embedDim = iou[1]!;
  const lin1 = shapeOf("mask_decoder.transformer.layers.0.mlp.lin1.weight");
  const q = shapeOf("mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight");
  return {
    embedDim,
    mlpDim: lin1?.[0] ?? 2048,
    crossDim: q?.[0] ?? embedDim / 2,
  };
}

/**
 * Problems of a set of decoder tensors against §10: every missing required name and every shape
 * that disagrees with the widths found. Empty when the set is complete.
 */
export function decoderWeightProblems(shapeOf: (name: string) => readonly number[] | undefined): {
  missing: string[];
  badShapes: string[];
} {
  const widths = inferDecoderWidths(shapeOf);
  // Names do not depend on the widths, so a file without the iou token still gets a full list.
  const expected = decoderWeightShapes(widths ?? { embedDim: 256, mlpDim: 2048, crossDim: 128 });
  const missing: string[] = [];
  const badShapes: string[] = [];
  for (const [name, dims] of expected) {
    const found = shapeOf(name);
    if (found === undefined) {
      missing.push(name);
      continue;
    }
    if (widths && (found.length !== dims.length || found.some((d, i) => d !== dims[i]))) {
      badShapes.push(`${name} is [${found.join(",")}], expected [${dims.join(",")}]`);
    }
  }
  if (widths && (widths.embedDim % 8 !== 0 || widths.crossDim % 8 !== 0)) {
    badShapes.push(`widths C=${widths.embedDim}, cross=${widths.crossDim} are not multiples of 8 heads`);
  }
  return { missing, badShapes };
}

/** One byte range of a file. */
export interface ByteRange {
  /** Absolute file offset of the first byte. */
  readonly begin: number;
  /** Absolute file offset one past the last byte. */
  readonly end: number;
}

/** What {@link decoderByteRange} returns. */
export interface DecoderByteRange extends ByteRange {
  /** Non-decoder tensors lying inside `[begin, end)`, by absolute offsets, in file order. */
  readonly gaps: ReadonlyArray<ByteRange & { readonly name: string }>;
}

/**
 * The smallest byte range of the file that holds every decoder tensor (absolute offsets), plus
 * the non-decoder tensors inside it — enough to fetch the decoder from a remote checkpoint with
 * one ranged request (or several, skipping the gaps).
 * @throws {UserError} when the header has no decoder tensor.
 */
export function decoderByteRange(header: SafetensorsHeader, source = "the checkpoint"): DecoderByteRange {
  let begin = Number.POSITIVE_INFINITY;
  let end = Number.NEGATIVE_INFINITY;
  for (const [name, e] of header.tensors) {
    if (!isDecoderTensor(name)) continue;
    begin = Math.min(begin, e.begin);
    end = Math.max(end, e.end);
  }
  if (!Number.isFinite(begin)) {
    throw new UserError(`No SAM decoder tensors (mask_decoder.*, prompt_encoder.*) in ${source}`, {
      hint: "use a Hugging Face transformers SAM checkpoint",
    });
  }
  const gaps: Array<ByteRange & { name: string }> = [];
  for (const [name, e] of header.tensors) {
    if (isDecoderTensor(name) || e.end <= begin || e.begin >= end || e.end === e.begin) continue;
    gaps.push({ name, begin: header.dataStart + e.begin, end: header.dataStart + e.end });
  }
  gaps.sort((a, b) => a.begin - b.begin);
  return { begin: header.dataStart + begin, end: header.dataStart + end, gaps };
}

/** Options of {@link loadDecoderWeights}. */
export interface LoadDecoderWeightsOptions {
  /**
   * `"all"`: every decoder tensor; `"positional"`: G alone (the header is checked as fully), for a
   * caller that needs the weights only to check the checkpoint (the graph is already built).
   * @default "all"
   */
  readonly tensors?: "all" | "positional";
}

/**
 * Load the prompt-encoder + mask-decoder weights of a SAM checkpoint (HF naming), reading only the
 * decoder's tensors. G is returned under {@link POSITIONAL_EMBEDDING_KEY} whichever of the two
 * tied names the file uses; tensors not in §10 are not read.
 * @throws {UserError} listing every missing required tensor (and every wrong shape) with the file name.
 */
export async function loadDecoderWeights(
  path: string,
  options: LoadDecoderWeightsOptions = {},
): Promise<DecoderWeights> {
  const header = await readSafetensorsHeader(path);
  const hasG = header.tensors.has(POSITIONAL_EMBEDDING_KEY);
  const gSource = hasG ? POSITIONAL_EMBEDDING_KEY : TIED_POSITIONAL_EMBEDDING_KEY;
  const shapeOf = (name: string) =>
    header.tensors.get(name === POSITIONAL_EMBEDDING_KEY ? gSource : name)?.shape;
  const { missing, badShapes } = decoderWeightProblems(shapeOf);
  const file = basename(path);
  if (missing.length > 0) {
    const named = missing.map((n) =>
      n === POSITIONAL_EMBEDDING_KEY ? `${n} (or ${TIED_POSITIONAL_EMBEDDING_KEY})` : n,
    );
    throw new UserError(
      `${file} lacks ${missing.length} SAM decoder tensor${missing.length === 1 ? "" : "s"}: ${named.join(", ")}`,
      { hint: "use a complete Hugging Face transformers SAM checkpoint (model.safetensors)" },
    );
  }
  if (badShapes.length > 0) {
    throw new UserError(`${file} has SAM decoder tensors of the wrong shape: ${badShapes.join("; ")}`, {
      hint: "use a Hugging Face transformers SAM checkpoint (model.safetensors)",
    });
  }
  const required = new Set(decoderWeightShapes(inferDecoderWidths(shapeOf)!).keys());
  const all = options.tensors !== "positional";
  const read = await readSafetensors(path, {
    filter: (name) => (all && required.has(name) && name !== POSITIONAL_EMBEDDING_KEY) || name === gSource,
  });
  const g = read.get(gSource)!;
  read.delete(gSource);
  read.set(POSITIONAL_EMBEDDING_KEY, g);
  return read;
}
