// TEST FIXTURES — tiny random-weight SAM image encoders shaped like the real Hub exports, each with
// the decoder weights of the same (random) checkpoint, generated at test time:
//   - "fp16-constant": the positional output as a float16 initializer, Cast to float32 (a folded
//     export converted to float16 initializers),
//   - "computed": the positional output computed in the graph as transformers' SamModel does it
//     (`get_image_wide_positional_embeddings`, repeated over the batch by optimum's SAMModelPatcher):
//     ConstantOfShape → CumSum → MatMul(G) → Sin/Cos → Concat → Tile,
//   - "int8": "computed" dynamically quantized to 8 bits the way onnxruntime's quantize_dynamic does
//     for the Transformers.js `_quantized` files (uint8 weights since the graph has Conv:
//     DynamicQuantizeLinear → MatMulInteger / ConvInteger; G's MatMul included),
//   - "fp16": "computed" with every weight and activation in float16 and float32 input and outputs
//     (Casts at the edges: onnxconverter-common's keep_io_types; CumSum kept in float32 between
//     Casts, as its default op block list does).
// All have optimum's names and a symbolic batch axis (`pixel_values` [batch_size, 3, 1024, 1024] →
// `image_embeddings`, `image_positional_embeddings` [batch_size, C, 64, 64]) and one global
// attention over the 64×64 tokens large enough for the attention rewrite (2 heads: two [4096, 4096]
// score planes, 128 MiB in float32). The graphs are ours (graph-builder.ts, and the bench's variant
// writers for int8 and fp16); they segment nothing.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dynamicQuantVariant, FP16_OP_BLOCK_LIST, fp16Variant } from "../../bench/models/encoder-variants.js";
import { randomDecoderWeights } from "../../src/segment/models/random-weights.js";
import { GraphBuilder, type Value } from "../../src/segment/onnx/graph-builder.js";
import { DataType, float32Bytes } from "../../src/segment/onnx/proto.js";
import { readModel } from "../../src/segment/onnx/proto-reader.js";
import type { ValuePrecision } from "../../src/segment/onnx/value-precision.js";
import { densePositionalEncoding } from "../../src/segment/sam/positional-encoding.js";
import { POSITIONAL_EMBEDDING_KEY, writeSafetensors } from "../../src/segment/sam/safetensors.js";
import { ENCODER_SIDE, GRID_SIDE } from "../../src/segment/sam/sam-constants.js";
import { TEST_MODEL_METADATA_KEY } from "../../src/segment/sam/test-weights.js";
import { mulberry32 } from "../../src/util/seeded-random.js";
import type { Tensor } from "../../src/util/tensor.js";

/** The four export shapes, by name. */
export const EXPORT_KINDS = ["fp16-constant", "computed", "int8", "fp16"] as const;
export type ExportKind = (typeof EXPORT_KINDS)[number];

/** The precision each kind computes its positional output in (what value-precision.ts must find). */
export const EXPORT_PRECISION: Readonly<Record<ExportKind, ValuePrecision>> = {
  "fp16-constant": "float16",
  computed: "float32",
  int8: "int8",
  fp16: "float16",
};

/** Token width of the encoders' trunk and its attention heads (head width 4). */
const WIDTH = 8;
const HEADS = 2;
const PATCH = ENCODER_SIDE / GRID_SIDE;

/** Parameters of {@link exportEncoder}. */
export interface ExportEncoderParams {
  readonly kind: ExportKind;
  /** The checkpoint's Gaussian matrix G `[2, C/2]` (the decoder's), which fixes C. */
  readonly positionalMatrix: Tensor;
  /** Seed of the trunk's random weights. @default 1 */
  readonly seed?: number;
}

function uniform(n: number, bound: number, next: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * next() - 1) * bound;
  return out;
}

/** `[batch, ...rest]` as an int64 shape tensor, the batch read from `like` (as torch exports it). */
function batchShape(g: GraphBuilder, like: Value, rest: readonly number[]): Value {
  const batch = g.op("Slice", [g.op("Shape", [like]), g.constantInt64([0]), g.constantInt64([1])]);
  return g.op("Concat", [batch, g.constantInt64(rest)], { axis: 0 });
}

/** The trunk: patch conv, one global attention block, projection to C, LayerNorm: `[B, C, 64, 64]`. */
function trunk(g: GraphBuilder, pixels: Value, channels: number, next: () => number): Value {
  const tokens = GRID_SIDE * GRID_SIDE;
  const hd = WIDTH / HEADS;
  const fan = 3 * PATCH * PATCH;
  const w = (name: string, dims: number[], fanIn: number) =>
    g.initFloat(
      name,
      uniform(
        dims.reduce((a, b) => a * b, 1),
        1 / Math.sqrt(fanIn),
        next,
      ),
      dims,
    );
  const conv = g.op(
    "Conv",
    [pixels, w("patch_embed.weight", [WIDTH, 3, PATCH, PATCH], fan), w("patch_embed.bias", [WIDTH], fan)],
    {
      kernel_shape: [PATCH, PATCH],
      strides: [PATCH, PATCH],
    },
  );
  const x = g.op("Transpose", [g.op("Reshape", [conv, batchShape(g, conv, [WIDTH, tokens])])], {
    perm: [0, 2, 1],
  });
  const norm = (v: Value, dim: number, name: string) =>
    g.op(
      "LayerNormalization",
      [
        v,
        g.initFloat(`${name}.weight`, new Float32Array(dim).fill(1), [dim]),
        g.initFloat(`${name}.bias`, new Float32Array(dim), [dim]),
      ],
      { axis: -1, epsilon: { float: 1e-6 } },
    );
  const h = norm(x, WIDTH, "norm1");
  const qkv = g.op("Add", [
    g.op("MatMul", [h, w("attn.qkv.weight", [WIDTH, 3 * WIDTH], WIDTH)]),
    w("attn.qkv.bias", [3 * WIDTH], WIDTH),
  ]);
  const split = g.op("Transpose", [g.op("Reshape", [qkv, batchShape(g, qkv, [tokens, 3, HEADS, hd])])], {
    perm: [2, 0, 3, 1, 4],
  }); // [3, B, heads, N, hd]
  const [q, k, v] = [0, 1, 2].map((i) => g.op("Gather", [split, g.constantInt64(i)], { axis: 0 })) as [
    Value,
    Value,
    Value,
  ];
  const scores = g.op("MatMul", [
    g.op("Mul", [q, g.constant(1 / Math.sqrt(hd))]),
    g.op("Transpose", [k], { perm: [0, 1, 3, 2] }),
  ]);
  const attended = g.op("MatMul", [g.op("Softmax", [scores], { axis: -1 }), v]); // [B, heads, N, hd]
  const merged = g.op("Reshape", [
    g.op("Transpose", [attended], { perm: [0, 2, 1, 3] }),
    batchShape(g, attended, [tokens, WIDTH]),
  ]);
  const proj = g.op("Add", [
    g.op("MatMul", [merged, w("attn.proj.weight", [WIDTH, WIDTH], WIDTH)]),
    w("attn.proj.bias", [WIDTH], WIDTH),
  ]);
  const y = g.op("Add", [x, proj]);
  const neck = g.op("Add", [
    g.op("MatMul", [y, w("neck.weight", [WIDTH, channels], WIDTH)]),
    w("neck.bias", [channels], WIDTH),
  ]);
  const out = g.op("Transpose", [norm(neck, channels, "neck_norm")], { perm: [0, 2, 1] }); // [B, C, N]
  return g.op("Reshape", [out, batchShape(g, out, [channels, GRID_SIDE, GRID_SIDE])]);
}

/**
 * The dense positional encoding computed in the graph, as transformers' SamModel computes it:
 * a grid of ones, cumulative sums minus ½ over 64 (y along rows, x along columns), stacked (x, y),
 * mapped to [−1, 1], times G, times 2π, sin then cos, channels first, `[1, C, 64, 64]`.
 */
function computedPositional(g: GraphBuilder, gMatrix: Tensor): Value {
  const side = GRID_SIDE;
  const ones = g.op("ConstantOfShape", [g.constantInt64([side, side])], {
    value: { tensor: { name: "value", dataType: DataType.FLOAT, dims: [1], rawData: float32Bytes([1]) } },
  });
  const along = (axis: number) =>
    g.op("Div", [
      g.op("Sub", [g.op("CumSum", [ones, g.constantInt64(axis)]), g.constant(0.5)]),
      g.constant(side),
    ]);
  const y = along(0);
  const x = along(1);
  const unsqueeze = (v: Value) => g.op("Unsqueeze", [v, g.constantInt64([-1])]);
  const coords = g.op("Concat", [unsqueeze(x), unsqueeze(y)], { axis: -1 }); // [64, 64, 2]
  const centred = g.op("Sub", [g.op("Mul", [coords, g.constant(2)]), g.constant(1)]);
  const gValue = g.init(POSITIONAL_EMBEDDING_KEY, gMatrix);
  const theta = g.op("Mul", [g.op("MatMul", [centred, gValue]), g.constant(2 * Math.PI)]);
  const pe = g.op("Concat", [g.op("Sin", [theta]), g.op("Cos", [theta])], { axis: -1 }); // [64, 64, C]
  return g.op("Unsqueeze", [g.op("Transpose", [pe], { perm: [2, 0, 1] }), g.constantInt64([0])]);
}

/**
 * TEST WEIGHTS — one encoder of the given kind (see the module header), serialised.
 * @throws Error when G is not `[2, C/2]`.
 */
export function exportEncoder(params: ExportEncoderParams): Uint8Array {
  const gm = params.positionalMatrix;
  const half = gm.dims[1];
  if (gm.dims.length !== 2 || gm.dims[0] !== 2 || half === undefined) {
    throw new Error(`Expected a [2, C/2] matrix for positionalMatrix but received [${gm.dims.join(",")}]`);
  }
  const channels = 2 * half;
  const g = new GraphBuilder(`sam_export_${params.kind}_TEST_WEIGHTS`);
  const pixels = g.input("pixel_values", "float", ["batch_size", 3, ENCODER_SIDE, ENCODER_SIDE]);
  const outDims = ["batch_size", channels, GRID_SIDE, GRID_SIDE];
  g.output(trunk(g, pixels, channels, mulberry32(params.seed ?? 1)), "image_embeddings", "float", outDims);
  const single =
    params.kind === "fp16-constant"
      ? g.op(
          "Cast",
          [
            g.initFloat16("image_positional_embeddings_fp16", densePositionalEncoding(gm).data, [
              1,
              channels,
              GRID_SIDE,
              GRID_SIDE,
            ]),
          ],
          { to: 1 },
        )
      : computedPositional(g, gm);
  const repeats = batchShape(g, pixels, [1, 1, 1]);
  g.output(g.op("Tile", [single, repeats]), "image_positional_embeddings", "float", outDims);
  const bytes = g.toModel({ opsetVersion: 17 });
  if (params.kind === "int8")
    return dynamicQuantVariant(readModel(bytes), { weightType: "uint8", conv: true });
  if (params.kind === "fp16") {
    return fp16Variant(readModel(bytes), { keepIoTypes: true, opBlockList: FP16_OP_BLOCK_LIST });
  }
  return bytes;
}

/** Files of {@link writeExportModel}. */
export interface ExportModelFiles {
  /** Encoder path by kind. */
  readonly encoders: Readonly<Record<ExportKind, string>>;
  /** The matching decoder weights (the tiny model's, `randomDecoderWeights`). */
  readonly decoderPath: string;
  /** The checkpoint's G. */
  readonly positionalMatrix: Tensor;
}

/**
 * TEST WEIGHTS — write the four encoders of one random checkpoint and its decoder weights
 * (`randomDecoderWeights({ embedDim, seed })`, marked as test weights) into `dir`.
 */
export async function writeExportModel(params: {
  readonly dir: string;
  /** Width C. @default 32 */
  readonly embedDim?: number;
  /** Seed of the checkpoint. @default 1 */
  readonly seed?: number;
}): Promise<ExportModelFiles> {
  const embedDim = params.embedDim ?? 32;
  const seed = params.seed ?? 1;
  await mkdir(params.dir, { recursive: true });
  const weights = randomDecoderWeights({ embedDim, seed });
  const positionalMatrix = weights.get(POSITIONAL_EMBEDDING_KEY)!;
  const decoderPath = join(params.dir, `decoder-c${embedDim}-seed${seed}.safetensors`);
  await writeSafetensors(decoderPath, weights, {
    [TEST_MODEL_METADATA_KEY]: "random weights for tests; segments nothing meaningful",
    seed: String(seed),
  });
  const encoders = {} as Record<ExportKind, string>;
  for (const kind of EXPORT_KINDS) {
    const path = join(params.dir, `encoder-${kind}-c${embedDim}-seed${seed}.onnx`);
    await writeFile(path, exportEncoder({ kind, positionalMatrix, seed: seed + 1000 }));
    encoders[kind] = path;
  }
  return { encoders, decoderPath, positionalMatrix };
}
