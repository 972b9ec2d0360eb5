// BENCHMARK/TEST MODEL — SAM's ViT image encoder (ViTDet-style backbone + neck) with deterministic
// RANDOM weights, at the real sizes of SAM ViT-B and SlimSAM, so encoder timings are of real cost.
// It segments nothing: never use it for masks. Architecture facts from facebookresearch/segment-
// anything `image_encoder.py` and the SlimSAM configs; the graph is ours.

import { closeSync, existsSync, mkdirSync, openSync, renameSync, writeSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { GraphBuilder, type Value } from "../../src/segment/onnx/graph-builder.js";
import { DataType, encodeModel, float32Bytes, ProtoWriter } from "../../src/segment/onnx/proto.js";
import { densePositionalEncoding } from "../../src/segment/sam/positional-encoding.js";
import { ENCODER_SIDE, GRID_SIDE } from "../../src/segment/sam/sam-constants.js";
import { mulberry32 } from "../../src/util/seeded-random.js";

/** Shape of a SAM-style ViT image encoder. */
export interface VitConfig {
  /** Token width D (residual stream). */
  readonly embedDim: number;
  /** Transformer blocks. */
  readonly depth: number;
  /** Attention heads; must divide `embedDim`. */
  readonly heads: number;
  /** MLP hidden width. */
  readonly mlpDim: number;
  /** Window side of windowed-attention blocks (14 in SAM). */
  readonly windowSize: number;
  /** Blocks with global attention (the others use windows). */
  readonly globalAttnIndexes: readonly number[];
  /** Neck output channels (256 in every SAM). */
  readonly outChans: number;
}

export type VitPreset = "slimsam-77" | "slimsam-50" | "sam-vit-base";

/**
 * Presets. ViT-B from SAM's `build_sam_vit_b`; SlimSAM from the SlimSAM configs of HF's
 * `convert_sam_to_hf.py` (only hidden size and MLP width change; 12 heads kept, so head width is
 * 14 for SlimSAM-77 and 32 for SlimSAM-50).
 */
export const VIT_PRESETS: Readonly<Record<VitPreset, VitConfig>> = {
  "sam-vit-base": {
    embedDim: 768,
    depth: 12,
    heads: 12,
    mlpDim: 3072,
    windowSize: 14,
    globalAttnIndexes: [2, 5, 8, 11],
    outChans: 256,
  },
  "slimsam-50": {
    embedDim: 384,
    depth: 12,
    heads: 12,
    mlpDim: 1536,
    windowSize: 14,
    globalAttnIndexes: [2, 5, 8, 11],
    outChans: 256,
  },
  "slimsam-77": {
    embedDim: 168,
    depth: 12,
    heads: 12,
    mlpDim: 696,
    windowSize: 14,
    globalAttnIndexes: [2, 5, 8, 11],
    outChans: 256,
  },
};

/** Options of {@link buildVitEncoderGraph}. */
export interface VitEncoderOptions {
  readonly preset: VitPreset | VitConfig;
  /** Seed of the random weights; the same seed and config give byte-identical models. @default 1 */
  readonly seed?: number;
}

const PATCH = ENCODER_SIDE / GRID_SIDE;
const LN_EPS = 1e-6;
/** Prefix of every weight name: these are random benchmark weights, not a checkpoint. */
const WEIGHT_PREFIX = "RANDOM_BENCHMARK_WEIGHTS.image_encoder";
const PRODUCER = "persam-db vit-encoder (RANDOM BENCHMARK/TEST WEIGHTS, not a SAM checkpoint)";

/** The config of a preset or custom config, checked. */
export function resolveVitConfig(preset: VitPreset | VitConfig): VitConfig {
  const c = typeof preset === "string" ? VIT_PRESETS[preset] : preset;
  if (!c)
    throw new Error(`Expected a ViT preset (${Object.keys(VIT_PRESETS).join(", ")}) but received ${preset}`);
  for (const [k, v] of Object.entries({
    embedDim: c.embedDim,
    depth: c.depth,
    heads: c.heads,
    mlpDim: c.mlpDim,
    windowSize: c.windowSize,
    outChans: c.outChans,
  })) {
    if (!Number.isInteger(v) || v < (k === "windowSize" ? 0 : 1)) {
      throw new Error(`Expected a positive integer for ${k} but received ${v}`);
    }
  }
  if (c.embedDim % c.heads !== 0) {
    throw new Error(
      `Expected heads to divide embedDim but received embedDim ${c.embedDim}, heads ${c.heads}`,
    );
  }
  if (c.outChans % 2 !== 0) throw new Error(`Expected an even outChans but received ${c.outChans}`);
  for (const i of c.globalAttnIndexes) {
    if (!Number.isInteger(i) || i < 0 || i >= c.depth) {
      throw new Error(`Expected global attention indexes in [0, ${c.depth}) but received ${i}`);
    }
  }
  return c;
}

/** Parameters (weights) of an encoder of this config, the image-PE matrix excluded. */
export function vitParameterCount(preset: VitPreset | VitConfig): number {
  const c = resolveVitConfig(preset);
  const d = c.embedDim;
  const hd = d / c.heads;
  let n = d * 3 * PATCH * PATCH + d + GRID_SIDE * GRID_SIDE * d;
  for (let i = 0; i < c.depth; i++) {
    const s = c.globalAttnIndexes.includes(i) || c.windowSize === 0 ? GRID_SIDE : c.windowSize;
    n += 4 * d; // two LayerNorms
    n += d * 3 * d + 3 * d + d * d + d; // qkv, proj
    n += 2 * (2 * s - 1) * hd; // rel_pos_h, rel_pos_w
    n += d * c.mlpDim + c.mlpDim + c.mlpDim * d + d;
  }
  n += d * c.outChans + c.outChans * c.outChans * 9 + 4 * c.outChans;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Deterministic random weights

/** How a weight is drawn: uniform in `center ± bound`. */
interface WeightInit {
  readonly bound: number;
  readonly center?: number;
}

/** A weight declared in the graph whose values are generated only when serialised. */
interface DeferredWeight {
  /** Unique initializer name in the graph. */
  readonly name: string;
  readonly dims: readonly number[];
  readonly init: WeightInit;
  /** Per-weight seed (derived from the model seed and the declaration index). */
  readonly seed: number;
}

function generate(w: DeferredWeight): Float32Array {
  const n = w.dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const c = w.init.center ?? 0;
  const scale = (2 * w.init.bound) / 4294967296;
  const lo = c - w.init.bound;
  // mulberry32 inlined (same sequence as seeded-random.ts): this loop fills ~90M values for ViT-B.
  let a = w.seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + ((t ^ (t >>> 14)) >>> 0) * scale;
  }
  return out;
}

/** GraphBuilder plus weights that are generated lazily, one at a time, when the model is written. */
class VitGraph {
  readonly g: GraphBuilder;
  readonly weights: DeferredWeight[] = [];
  /** Logical name (without prefix) → deferred weight, for tests. */
  readonly byLogical = new Map<string, DeferredWeight>();

  constructor(
    name: string,
    private readonly seed: number,
    private readonly prefix: string,
  ) {
    this.g = new GraphBuilder(name);
  }

  weight(logical: string, dims: readonly number[], init: WeightInit): Value {
    const name = this.g.uniqueName(this.prefix ? `${this.prefix}.${logical}` : logical);
    const index = this.weights.length;
    const seed = (Math.imul(this.seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
    const w: DeferredWeight = { name, dims: [...dims], init, seed };
    this.weights.push(w);
    this.byLogical.set(logical, w);
    return { name };
  }

  /** Linear layer weight in MatMul layout `[in, out]` and bias `[out]`, uniform ±1/√in. */
  linear(logical: string, inDim: number, outDim: number): { w: Value; b: Value } {
    const bound = 1 / Math.sqrt(inDim);
    return {
      w: this.weight(`${logical}.weight`, [inDim, outDim], { bound }),
      b: this.weight(`${logical}.bias`, [outDim], { bound }),
    };
  }

  /** LayerNorm γ ≈ 1 and β ≈ 0 (small random perturbations so they are not no-ops). */
  norm(logical: string, dims: readonly number[]): { gamma: Value; beta: Value } {
    return {
      gamma: this.weight(`${logical}.weight`, dims, { bound: 0.1, center: 1 }),
      beta: this.weight(`${logical}.bias`, dims, { bound: 0.1 }),
    };
  }

  /** The model: small graph header, then one ModelProto.graph piece per weight (merged by parsers). */
  *chunks(withData = true): Generator<Uint8Array> {
    yield encodeModel({ graph: this.g.toGraph(), producerName: PRODUCER, opsetVersion: 17, irVersion: 8 });
    for (const w of this.weights) yield weightPiece(w.name, w.dims, withData ? generate(w) : undefined);
  }

  /** Materialised weights by logical name (tests only: generates every weight). */
  materialize(): Map<string, { data: Float32Array; dims: readonly number[] }> {
    const out = new Map<string, { data: Float32Array; dims: readonly number[] }>();
    for (const [k, w] of this.byLogical) out.set(k, { data: generate(w), dims: w.dims });
    return out;
  }
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * One initializer as a ModelProto fragment `graph { initializer { … } }`. Protobuf merges repeated
 * occurrences of the (non-repeated) `graph` field and concatenates its repeated `initializer`
 * field, so appending fragments to a serialised model adds initializers without re-encoding it —
 * which lets a 360 MB model be written with one weight in memory at a time.
 */
function weightPiece(name: string, dims: readonly number[], data: Float32Array | undefined): Uint8Array {
  const t = new ProtoWriter();
  for (const d of dims) t.int(1, d); // dims
  t.int(2, DataType.FLOAT); // data_type
  t.string(8, name); // name
  if (data === undefined) {
    const shapeOnly = new ProtoWriter();
    shapeOnly.message(5, t);
    const model = new ProtoWriter();
    model.message(7, shapeOnly);
    return model.finish();
  }
  t.bytes(
    9,
    LITTLE_ENDIAN_HOST ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : float32Bytes(data),
  );
  const graph = new ProtoWriter();
  graph.message(5, t); // GraphProto.initializer
  const model = new ProtoWriter();
  model.message(7, graph); // ModelProto.graph
  return model.finish();
}

// ---------------------------------------------------------------------------------------------
// Graph pieces

function gelu(g: GraphBuilder, x: Value): Value {
  // Exact GELU in the form the PyTorch exporter emits (ONNX Runtime fuses it into Gelu).
  const erf = g.op("Erf", [g.op("Div", [x, g.constant(Math.SQRT2)])]);
  return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, g.constant(1)])]), g.constant(0.5)]);
}

function layerNorm(v: VitGraph, x: Value, dim: number, logical: string): Value {
  const { gamma, beta } = v.norm(logical, [dim]);
  return v.g.op("LayerNormalization", [x, gamma, beta], { axis: -1, epsilon: { float: LN_EPS } });
}

/** LayerNorm2d over channels of NCHW, decomposed as the PyTorch export of SAM's LayerNorm2d. */
function layerNorm2d(v: VitGraph, x: Value, channels: number, logical: string): Value {
  const g = v.g;
  const { gamma, beta } = v.norm(logical, [channels, 1, 1]);
  const mean = g.op("ReduceMean", [x], { axes: [1], keepdims: 1 });
  const d = g.op("Sub", [x, mean]);
  const variance = g.op("ReduceMean", [g.op("Pow", [d, g.constant(2)])], { axes: [1], keepdims: 1 });
  const y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [variance, g.constant(LN_EPS)])])]);
  return g.op("Add", [g.op("Mul", [y, gamma]), beta]);
}

/** Index table of SAM's `get_rel_pos` for equal query/key sizes: `q − k + (size − 1)`. */
function relativeIndex(size: number): number[] {
  const idx: number[] = [];
  for (let q = 0; q < size; q++) for (let k = 0; k < size; k++) idx.push(q - k + size - 1);
  return idx;
}

/**
 * Multi-head self-attention with SAM's decomposed relative positional embeddings on tokens
 * `[B, S·S, D]` of an S×S grid (a window, or the whole map). Returns `[B, S·S, D]`.
 */
function attention(
  v: VitGraph,
  x: Value,
  batch: number,
  side: number,
  dim: number,
  heads: number,
  logical: string,
): Value {
  const g = v.g;
  const hd = dim / heads;
  const n = side * side;
  const qkvW = v.linear(`${logical}.qkv`, dim, 3 * dim);
  const qkv = g.op("Add", [g.op("MatMul", [x, qkvW.w]), qkvW.b]);
  const split = g.op("Transpose", [g.op("Reshape", [qkv, g.constantInt64([batch, n, 3, heads, hd])])], {
    perm: [2, 0, 3, 1, 4],
  }); // [3, B, H, N, hd]
  const [q, k, val] = [0, 1, 2].map((i) => g.op("Gather", [split, g.constantInt64(i)], { axis: 0 })) as [
    Value,
    Value,
    Value,
  ];
  const scaled = g.op("Mul", [q, g.constant(1 / Math.sqrt(hd))]);
  let attn = g.op("MatMul", [scaled, g.op("Transpose", [k], { perm: [0, 1, 3, 2] })]); // [B, H, N, N]

  // Decomposed relative position: rel_h[b,h,qh,qw,kh] = q[b,h,qh,qw,:]·Rh[qh,kh,:], same for w.
  const relPosH = v.weight(`${logical}.rel_pos_h`, [2 * side - 1, hd], { bound: 0.1 });
  const relPosW = v.weight(`${logical}.rel_pos_w`, [2 * side - 1, hd], { bound: 0.1 });
  const idx = g.initInt64("rel_index", relativeIndex(side), [side, side]);
  const rh = g.op("Transpose", [g.op("Gather", [relPosH, idx], { axis: 0 })], { perm: [0, 2, 1] }); // [S, hd, S]
  const rw = g.op("Transpose", [g.op("Gather", [relPosW, idx], { axis: 0 })], { perm: [0, 2, 1] });
  const rq = g.op("Reshape", [q, g.constantInt64([batch, heads, side, side, hd])]);
  const relH = g.op("MatMul", [rq, rh]); // [B, H, qh, qw, kh]
  const rqT = g.op("Transpose", [rq], { perm: [0, 1, 3, 2, 4] }); // [B, H, qw, qh, hd]
  const relW = g.op("Transpose", [g.op("MatMul", [rqT, rw])], { perm: [0, 1, 3, 2, 4] }); // [B, H, qh, qw, kw]
  let attn6 = g.op("Reshape", [attn, g.constantInt64([batch, heads, side, side, side, side])]);
  attn6 = g.op("Add", [attn6, g.op("Reshape", [relH, g.constantInt64([batch, heads, side, side, side, 1])])]);
  attn6 = g.op("Add", [attn6, g.op("Reshape", [relW, g.constantInt64([batch, heads, side, side, 1, side])])]);
  attn = g.op("Softmax", [g.op("Reshape", [attn6, g.constantInt64([batch, heads, n, n])])], { axis: -1 });

  const o = g.op("MatMul", [attn, val]); // [B, H, N, hd]
  const merged = g.op("Reshape", [
    g.op("Transpose", [o], { perm: [0, 2, 1, 3] }),
    g.constantInt64([batch, n, dim]),
  ]);
  const proj = v.linear(`${logical}.proj`, dim, dim);
  return g.op("Add", [g.op("MatMul", [merged, proj.w]), proj.b]);
}

/** Parameters of one ViT block. */
interface BlockShape {
  /** Side of the token grid (64 in SAM). */
  readonly grid: number;
  readonly dim: number;
  readonly heads: number;
  readonly mlpDim: number;
  /** Window side, or 0 for global attention. */
  readonly window: number;
}

/** One SAM ViT block on `[1, G, G, D]`: windowed or global attention with residual, then MLP. */
function vitBlock(v: VitGraph, x: Value, s: BlockShape, logical: string): Value {
  const g = v.g;
  const { grid, dim, window } = s;
  let h = layerNorm(v, x, dim, `${logical}.norm1`);
  let a: Value;
  if (window > 0) {
    const pad = (window - (grid % window)) % window;
    const padded = grid + pad;
    const nw = padded / window;
    if (pad > 0) h = g.op("Pad", [h, g.constantInt64([0, 0, 0, 0, 0, pad, pad, 0])]);
    h = g.op("Reshape", [h, g.constantInt64([1, nw, window, nw, window, dim])]);
    h = g.op("Transpose", [h], { perm: [0, 1, 3, 2, 4, 5] });
    h = g.op("Reshape", [h, g.constantInt64([nw * nw, window * window, dim])]);
    a = attention(v, h, nw * nw, window, dim, s.heads, `${logical}.attn`);
    a = g.op("Reshape", [a, g.constantInt64([1, nw, nw, window, window, dim])]);
    a = g.op("Transpose", [a], { perm: [0, 1, 3, 2, 4, 5] });
    a = g.op("Reshape", [a, g.constantInt64([1, padded, padded, dim])]);
    if (pad > 0) {
      a = g.op("Slice", [a, g.constantInt64([0, 0]), g.constantInt64([grid, grid]), g.constantInt64([1, 2])]);
    }
  } else {
    h = g.op("Reshape", [h, g.constantInt64([1, grid * grid, dim])]);
    a = attention(v, h, 1, grid, dim, s.heads, `${logical}.attn`);
    a = g.op("Reshape", [a, g.constantInt64([1, grid, grid, dim])]);
  }
  const y = g.op("Add", [x, a]);
  const l1 = v.linear(`${logical}.mlp.lin1`, dim, s.mlpDim);
  const l2 = v.linear(`${logical}.mlp.lin2`, s.mlpDim, dim);
  let m = layerNorm(v, y, dim, `${logical}.norm2`);
  m = gelu(g, g.op("Add", [g.op("MatMul", [m, l1.w]), l1.b]));
  m = g.op("Add", [g.op("MatMul", [m, l2.w]), l2.b]);
  return g.op("Add", [y, m]);
}

function planEncoder(options: VitEncoderOptions): VitGraph {
  const c = resolveVitConfig(options.preset);
  const seed = options.seed ?? 1;
  const v = new VitGraph("sam_vit_encoder_RANDOM_BENCHMARK_WEIGHTS", seed, WEIGHT_PREFIX);
  const g = v.g;
  const d = c.embedDim;
  const pixels = g.input("pixel_values", "float", [1, 3, ENCODER_SIDE, ENCODER_SIDE]);
  const fan = 3 * PATCH * PATCH;
  const pw = v.weight("patch_embed.proj.weight", [d, 3, PATCH, PATCH], { bound: 1 / Math.sqrt(fan) });
  const pb = v.weight("patch_embed.proj.bias", [d], { bound: 1 / Math.sqrt(fan) });
  let x = g.op("Conv", [pixels, pw, pb], { kernel_shape: [PATCH, PATCH], strides: [PATCH, PATCH] });
  x = g.op("Transpose", [x], { perm: [0, 2, 3, 1] }); // [1, 64, 64, D]
  x = g.op("Add", [x, v.weight("pos_embed", [1, GRID_SIDE, GRID_SIDE, d], { bound: 0.1 })]);
  for (let i = 0; i < c.depth; i++) {
    const window = c.globalAttnIndexes.includes(i) ? 0 : c.windowSize;
    x = vitBlock(v, x, { grid: GRID_SIDE, dim: d, heads: c.heads, mlpDim: c.mlpDim, window }, `blocks.${i}`);
  }
  // Neck: 1×1 conv D→C, LayerNorm2d, 3×3 conv C→C (pad 1), LayerNorm2d; no conv biases.
  const oc = c.outChans;
  x = g.op("Transpose", [x], { perm: [0, 3, 1, 2] });
  const n0 = v.weight("neck.0.weight", [oc, d, 1, 1], { bound: 1 / Math.sqrt(d) });
  x = layerNorm2d(v, g.op("Conv", [x, n0], { kernel_shape: [1, 1] }), oc, "neck.1");
  const n2 = v.weight("neck.2.weight", [oc, oc, 3, 3], { bound: 1 / Math.sqrt(oc * 9) });
  x = g.op("Conv", [x, n2], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  x = layerNorm2d(v, x, oc, "neck.3");
  g.output(x, "image_embeddings", "float", [1, oc, GRID_SIDE, GRID_SIDE]);

  // Constant dense PE of a random Fourier matrix, as the Transformers.js export carries it.
  const pe = densePositionalEncoding({ data: vitFourierMatrix(seed, oc), dims: [2, oc / 2] });
  const peValue = g.init("RANDOM_BENCHMARK_image_positional_embeddings", pe);
  g.output(g.op("Identity", [peValue]), "image_positional_embeddings", "float", [
    1,
    oc,
    GRID_SIDE,
    GRID_SIDE,
  ]);
  return v;
}

/**
 * The random Fourier matrix `[2, channels / 2]` (row-major) behind the generated encoder's constant
 * positional output for `seed`: Box–Muller N(0, 1) draws, as SAM's matrix (scale 1). A decoder
 * paired with a generated encoder must carry the same matrix, or SamModel's checkpoint check
 * refuses the pair.
 */
export function vitFourierMatrix(seed: number, channels: number): Float32Array {
  const next = mulberry32(seed ^ 0x5eed);
  const gauss = new Float32Array(channels);
  for (let i = 0; i < channels; i++) {
    const u = Math.max(next(), 1e-12);
    gauss[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return gauss;
}

/**
 * BENCHMARK/TEST WEIGHTS — build SAM's image encoder (`pixel_values` `[1,3,1024,1024]` →
 * `image_embeddings` `[1,outChans,64,64]` and a constant `image_positional_embeddings`) with
 * deterministic random weights, serialised in memory. For ViT-B size (~360 MB) prefer
 * {@link writeVitEncoderModel}, which keeps one weight in memory at a time.
 * Architecture (SAM `ImageEncoderViT`): 16×16/16 patch conv, absolute position embedding, blocks
 * of pre-norm attention (windowed 14×14 with the 64×64 map padded to 70×70 and unpadded after, or
 * global) with decomposed relative positional embeddings, pre-norm MLP with exact GELU,
 * LayerNorm eps 1e-6, then the neck.
 * @throws Error on an invalid config.
 */
export function buildVitEncoderGraph(options: VitEncoderOptions): Uint8Array {
  return Buffer.concat([...planEncoder(options).chunks()]);
}

/**
 * The encoder graph with every weight's name and shape but no weight data: for static analysis
 * (FLOP counting) in milliseconds. Not loadable by ONNX Runtime.
 */
export function buildVitEncoderShapeOnly(options: VitEncoderOptions): Uint8Array {
  return Buffer.concat([...planEncoder(options).chunks(false)]);
}

/**
 * BENCHMARK/TEST WEIGHTS — write the encoder of {@link buildVitEncoderGraph} to `path`, generating
 * and writing one weight at a time (peak memory ≈ the largest weight). Writes `path.tmp-<pid>`
 * then renames, so a reader never sees a partial file.
 * @returns bytes written.
 */
export function writeVitEncoderModel(path: string, options: VitEncoderOptions): number {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  let bytes = 0;
  try {
    for (const chunk of planEncoder(options).chunks()) {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      bytes += chunk.length;
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return bytes;
}

/** Default cache folder of generated benchmark encoders (never committed). */
export function defaultVitCacheDir(): string {
  return join(os.tmpdir(), "persam-db-bench-models");
}

/**
 * Path of the benchmark encoder for these options in `dir`, written there first if absent.
 * The file name carries the config and seed, so different models never collide.
 */
export function ensureVitEncoderModel(options: VitEncoderOptions, dir = defaultVitCacheDir()): string {
  const c = resolveVitConfig(options.preset);
  const tag =
    typeof options.preset === "string"
      ? options.preset
      : `d${c.embedDim}-l${c.depth}-h${c.heads}-m${c.mlpDim}-w${c.windowSize}-g${c.globalAttnIndexes.join("_")}-o${c.outChans}`;
  const path = join(dir, `vit-encoder-${tag}-seed${options.seed ?? 1}.RANDOM.onnx`);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    writeVitEncoderModel(path, options);
  }
  return path;
}

/** What {@link buildVitBlockTestGraph} returns. */
export interface VitBlockTestModel {
  /** Model with input `x` and output `y`, both `[1, grid, grid, dim]`. */
  readonly bytes: Uint8Array;
  /**
   * The block's weights by logical name: `norm1.weight`, `norm1.bias`, `attn.qkv.weight` (`[D, 3D]`,
   * MatMul layout), `attn.qkv.bias`, `attn.rel_pos_h`, `attn.rel_pos_w` (`[2S−1, D/heads]`),
   * `attn.proj.weight`, `attn.proj.bias`, `norm2.*`, `mlp.lin1.*`, `mlp.lin2.*`.
   */
  readonly weights: ReadonlyMap<string, { readonly data: Float32Array; readonly dims: readonly number[] }>;
}

/**
 * TEST WEIGHTS — one ViT block alone, on a `grid`×`grid` map (e.g. 10 with window 4: padding to 12
 * and 3×3 windows), to check window partition/unpartition and attention against plain arithmetic.
 */
export function buildVitBlockTestGraph(
  shape: { grid: number; dim: number; heads: number; mlpDim: number; window: number },
  seed = 1,
): VitBlockTestModel {
  if (shape.dim % shape.heads !== 0)
    throw new Error(`Expected heads to divide dim but received ${shape.dim}`);
  const v = new VitGraph("vit_block_TEST_WEIGHTS", seed, "");
  const x = v.g.input("x", "float", [1, shape.grid, shape.grid, shape.dim]);
  const y = vitBlock(v, x, shape, "");
  v.g.output(y, "y", "float", [1, shape.grid, shape.grid, shape.dim]);
  const bytes = Buffer.concat([...v.chunks()]);
  const weights = new Map<string, { data: Float32Array; dims: readonly number[] }>();
  for (const [k, w] of v.materialize()) weights.set(k.replace(/^\./, ""), w);
  return { bytes, weights };
}
