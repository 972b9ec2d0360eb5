// TEST MODEL — a deterministic random-weight stand-in for SAM's image encoder, with the I/O of the
// Transformers.js vision_encoder.onnx. It segments nothing meaningful; tests and benchmarks only.

import { mulberry32 } from "../../util/seeded-random.js";
import type { Tensor } from "../../util/tensor.js";
import { GraphBuilder } from "../onnx/graph-builder.js";
import { densePositionalEncoding } from "../sam/positional-encoding.js";
import { ENCODER_SIDE, GRID_SIDE } from "../sam/sam-constants.js";

/** Parameters of {@link buildTinyEncoderGraph}. */
export interface TinyEncoderParams {
  /** Embedding width C (even). */
  readonly embedDim: number;
  /** The decoder's Gaussian matrix G `[2, C/2]`, so the positional output matches the decoder. */
  readonly positionalMatrix: Tensor;
  /** Seed of the random weights; the same seed gives byte-identical models. */
  readonly seed: number;
}

function randomUniform(n: number, bound: number, next: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * next() - 1) * bound;
  return out;
}

/**
 * TEST WEIGHTS — build a tiny image encoder: input `pixel_values` float `[1,3,1024,1024]`, outputs
 * `image_embeddings` `[1,C,64,64]` and `image_positional_embeddings` `[1,C,64,64]` (the names and
 * shapes of the Transformers.js `vision_encoder.onnx`, hub.md §1.2).
 *
 * Embeddings: a 16×16/stride-16 patch conv 3→C, exact GELU, a 1×1 conv C→C, then a per-pixel
 * normalisation over channels (like SAM's neck ends in LayerNorm2d), so different images give
 * different, spatially varying, unit-scale embeddings. Weights are uniform ±1/√fan_in from `seed`.
 * The positional output is the constant dense PE of `positionalMatrix` (persam-spec §2.4),
 * exactly what the decoder computes from the same matrix.
 * @returns the serialised model.
 * @throws Error when C is not a positive even integer or G is not `[2, C/2]`.
 */
export function buildTinyEncoderGraph(params: TinyEncoderParams): Uint8Array {
  const c = params.embedDim;
  if (!Number.isInteger(c) || c < 2 || c % 2 !== 0) {
    throw new Error(`Expected a positive even integer for embedDim but received ${c}`);
  }
  const gDims = params.positionalMatrix.dims;
  if (gDims.length !== 2 || gDims[0] !== 2 || gDims[1] !== c / 2) {
    throw new Error(`Expected [2,${c / 2}] for positionalMatrix but received [${gDims.join(",")}]`);
  }
  const next = mulberry32(params.seed);
  const g = new GraphBuilder("tiny_test_encoder");
  const pixels = g.input("pixel_values", "float", [1, 3, ENCODER_SIDE, ENCODER_SIDE]);

  const patch = ENCODER_SIDE / GRID_SIDE;
  const fan1 = 3 * patch * patch;
  const w1 = g.initFloat("test_patch_embed.weight", randomUniform(c * fan1, 1 / Math.sqrt(fan1), next), [
    c,
    3,
    patch,
    patch,
  ]);
  const b1 = g.initFloat("test_patch_embed.bias", randomUniform(c, 1 / Math.sqrt(fan1), next), [c]);
  let x = g.op("Conv", [pixels, w1, b1], { kernel_shape: [patch, patch], strides: [patch, patch] });
  const erf = g.op("Erf", [g.op("Mul", [x, g.constant(Math.SQRT1_2)])]);
  x = g.op("Mul", [g.op("Mul", [x, g.constant(0.5)]), g.op("Add", [erf, g.constant(1)])]);
  const w2 = g.initFloat("test_mix.weight", randomUniform(c * c, 1 / Math.sqrt(c), next), [c, c, 1, 1]);
  const b2 = g.initFloat("test_mix.bias", randomUniform(c, 1 / Math.sqrt(c), next), [c]);
  x = g.op("Conv", [x, w2, b2], { kernel_shape: [1, 1] });
  // Per-pixel normalisation over channels (LayerNorm2d without affine, eps 1e-6).
  const mean = g.op("ReduceMean", [x], { axes: [1], keepdims: 1 });
  const d = g.op("Sub", [x, mean]);
  const variance = g.op("ReduceMean", [g.op("Mul", [d, d])], { axes: [1], keepdims: 1 });
  const embeddings = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [variance, g.constant(1e-6)])])]);
  g.output(embeddings, "image_embeddings", "float", [1, c, GRID_SIDE, GRID_SIDE]);

  const pe = densePositionalEncoding(params.positionalMatrix);
  const peValue = g.init("image_positional_embeddings_const", pe);
  g.output(g.op("Identity", [peValue]), "image_positional_embeddings", "float", [1, c, GRID_SIDE, GRID_SIDE]);
  return g.toModel();
}
