// SAM's prompt encoder + mask decoder with the PerSAM hooks, written as one ONNX graph from
// decoder weights in HF naming (persam-spec §2, §3, §6); the graph's I/O is DECODER_IO.

import type { Tensor } from "../../util/tensor.js";
import { GraphBuilder, type Value } from "../onnx/graph-builder.js";
import { DECODER_IO, type DecoderWeights } from "./decoder-types.js";
import { densePositionalEncoding } from "./positional-encoding.js";
import { ENCODER_SIDE, GRID_SIDE, GRID_TOKENS, LOW_RES_SIDE, NUM_MASK_TOKENS } from "./sam-constants.js";

/** Bumped whenever the graph this module builds changes, so cached `.onnx` files are rebuilt. */
export const DECODER_GRAPH_VERSION = 1;

/** Options of {@link buildDecoderGraph}. */
export interface DecoderGraphOptions {
  /**
   * Epsilon of the transformer's LayerNorms (norm1–4 and the final-attention norm). PS uses
   * PyTorch's 1e-5 for all five; HF's config uses 1e-6 for norm1–4 (persam-spec §9 item 11).
   * @default 1e-5
   */
  readonly transformerLayerNormEps?: number;
}

/** Gaussian matrix key; the tied copy is accepted too (persam-spec §10.1). */
const G_KEYS = [
  "shared_image_embedding.positional_embedding",
  "prompt_encoder.shared_embedding.positional_embedding",
];
const HEADS = 8;
/** LayerNorm2d epsilon in the mask-input path and the upscaling (persam-spec §0.1). */
const LN2D_EPS = 1e-6;

/** The weights, with shape checks that name the tensor. */
class Weights {
  constructor(private readonly map: DecoderWeights) {}

  get(key: string, dims?: readonly (number | undefined)[]): Tensor {
    const t = key === G_KEYS[0] ? (this.map.get(key) ?? this.map.get(G_KEYS[1]!)) : this.map.get(key);
    if (!t) throw new Error(`Expected decoder weight ${key} but it is missing`);
    if (dims && (dims.length !== t.dims.length || dims.some((d, i) => d !== undefined && d !== t.dims[i]))) {
      const want = dims.map((d) => d ?? "?").join(",");
      throw new Error(`Expected [${want}] for decoder weight ${key} but received [${t.dims.join(",")}]`);
    }
    return t;
  }
}

/** Wᵀ of a row-major `[rows, cols]` matrix, optionally scaled. */
function transpose(data: Float32Array, rows: number, cols: number, scale = 1): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]! * scale;
  return out;
}

function scaled(data: Float32Array, scale: number): Float32Array {
  return data.map((v) => v * scale);
}

/** Per-head transposes: `[H·dh, C]` → `[H, C, dh]` (head h's rows, transposed), scaled. */
function headsTransposed(data: Float32Array, dh: number, c: number, scale = 1): Float32Array {
  const out = new Float32Array(HEADS * c * dh);
  for (let h = 0; h < HEADS; h++)
    for (let j = 0; j < dh; j++)
      for (let k = 0; k < c; k++) out[(h * c + k) * dh + j] = data[(h * dh + j) * c + k]! * scale;
  return out;
}

/** Graph-building context: the builder, the weights and the widths read from them. */
class DecoderGraph {
  readonly g = new GraphBuilder("persam_decoder");
  readonly w: Weights;
  readonly c: number;

  constructor(weights: DecoderWeights) {
    this.w = new Weights(weights);
    const iou = this.w.get("mask_decoder.iou_token.weight", [1, undefined]);
    this.c = iou.dims[1]!;
  }

  reshape(x: Value, dims: readonly number[]): Value {
    return this.g.op("Reshape", [x, this.g.constantInt64(dims)]);
  }

  transpose(x: Value, perm: readonly number[]): Value {
    return this.g.op("Transpose", [x], { perm });
  }

  add(a: Value, b: Value): Value {
    return this.g.op("Add", [a, b]);
  }

  mul(a: Value, b: Value): Value {
    return this.g.op("Mul", [a, b]);
  }

  /** `x·Wᵀ + b` for a PyTorch Linear `prefix` (MatMul with a pre-transposed initializer). */
  linear(x: Value, prefix: string, inDim: number, outDim?: number): Value {
    const w = this.w.get(`${prefix}.weight`, [outDim, inDim]);
    const out = w.dims[0]!;
    const b = this.w.get(`${prefix}.bias`, [out]);
    const wt = this.g.initFloat(`${prefix}.weight_t`, transpose(w.data, out, inDim), [inDim, out]);
    return this.add(this.g.op("MatMul", [x, wt]), this.g.init(`${prefix}.bias`, b));
  }

  /** 3-layer MLP of the IoU head / hypernetworks: ReLU between layers (persam-spec §3.6). */
  mlp3(x: Value, prefix: string, outDim: number): Value {
    const c = this.c;
    let h = this.g.op("Relu", [this.linear(x, `${prefix}.proj_in`, c, c)]);
    h = this.g.op("Relu", [this.linear(h, `${prefix}.layers.0`, c, c)]);
    return this.linear(h, `${prefix}.proj_out`, c, outDim);
  }

  layerNorm(x: Value, prefix: string, eps: number, width = this.c): Value {
    const gamma = this.g.init(`${prefix}.weight`, this.w.get(`${prefix}.weight`, [width]));
    const beta = this.g.init(`${prefix}.bias`, this.w.get(`${prefix}.bias`, [width]));
    return this.g.op("LayerNormalization", [x, gamma, beta], { axis: -1, epsilon: { float: eps } });
  }

  /** LayerNorm2d on NCHW: over channels per pixel, biased variance (persam-spec §2.3 step 2). */
  layerNorm2d(x: Value, prefix: string, channels: number): Value {
    const g = this.g;
    const mean = g.op("ReduceMean", [x], { axes: [1], keepdims: 1 });
    const d = g.op("Sub", [x, mean]);
    const variance = g.op("ReduceMean", [this.mul(d, d)], { axes: [1], keepdims: 1 });
    const norm = g.op("Div", [d, g.op("Sqrt", [this.add(variance, g.constant(LN2D_EPS))])]);
    const gamma = g.initFloat(`${prefix}.weight`, this.w.get(`${prefix}.weight`, [channels]).data, [
      channels,
      1,
      1,
    ]);
    const beta = g.initFloat(`${prefix}.bias`, this.w.get(`${prefix}.bias`, [channels]).data, [
      channels,
      1,
      1,
    ]);
    return this.add(this.mul(norm, gamma), beta);
  }

  /**
   * Exact GELU, `0.5·x·(1 + erf(x/√2))` (Gelu itself is opset 20; persam-spec §0.1). Written as
   * `(x·0.5)·(erf(x/√2) + 1)` with a Div, the form onnxruntime's GeluFusion recognises and replaces
   * with its vectorised exact-erf Gelu kernel.
   */
  gelu(x: Value): Value {
    const g = this.g;
    const erf = g.op("Erf", [g.op("Div", [x, g.constant(Math.SQRT2)])]);
    return this.mul(this.mul(x, g.constant(0.5)), this.add(erf, g.constant(1)));
  }

  /** Internal width d_i of an attention module (from its q_proj), checked against 8 heads. */
  attnWidth(prefix: string): number {
    const di = this.w.get(`${prefix}.q_proj.weight`, [undefined, this.c]).dims[0]!;
    if (di % HEADS !== 0)
      throw new Error(`Expected a multiple of ${HEADS} for the width of ${prefix} but received ${di}`);
    return di;
  }

  /** `[n, d_i]` → `[8, n, dh]`. */
  splitHeads(x: Value, dh: number): Value {
    return this.transpose(this.reshape(x, [-1, HEADS, dh]), [1, 0, 2]);
  }

  /** Plain attention among the prompt tokens (persam-spec §3.2), few rows: no factorisation. */
  tokenAttention(prefix: string, q: Value, k: Value, v: Value): Value {
    const g = this.g;
    const di = this.attnWidth(prefix);
    const dh = di / HEADS;
    const qh = this.splitHeads(this.linear(q, `${prefix}.q_proj`, this.c, di), dh);
    const kh = this.transpose(
      this.reshape(this.linear(k, `${prefix}.k_proj`, this.c, di), [-1, HEADS, dh]),
      [1, 2, 0],
    );
    const vh = this.splitHeads(this.linear(v, `${prefix}.v_proj`, this.c, di), dh);
    const logits = this.mul(g.op("MatMul", [qh, kh]), g.constant(1 / Math.sqrt(dh)));
    const o = g.op("MatMul", [g.op("Softmax", [logits], { axis: -1 }), vh]);
    const merged = this.reshape(this.transpose(o, [1, 0, 2]), [-1, di]);
    return this.linear(merged, `${prefix}.out_proj`, di, this.c);
  }

  /**
   * Tokens attend to the 4096 image tokens (persam-spec §3.2), factorised so that nothing of
   * size 4096 × d_i is projected: per head, `q_h·(k·W_k,hᵀ + b_k,h)ᵀ = (q_h·W_k,h)·kᵀ + const`,
   * and the per-row constant cancels in the softmax; `A·(v·W_v,hᵀ + b_v,h) = (A·v)·W_v,hᵀ + b_v,h`
   * because attention rows sum to 1 (also after the attn_sim blend below). With few prompt
   * tokens this is about half the multiply-adds of projecting the image side.
   * `sim`, when given, is the PerSAM hook `A' = h·softmax(A + s) + (1−h)·A` (persam-spec §6, §9
   * item 14): the reference adds s to the already-softmaxed A and re-softmaxes.
   */
  tokenToImage(
    prefix: string,
    q: Value,
    keys: Value,
    values: Value,
    sim?: { s: Value; h: Value; oneMinusH: Value },
  ): Value {
    const g = this.g;
    const c = this.c;
    const di = this.attnWidth(prefix);
    const dh = di / HEADS;
    const qh = this.splitHeads(this.linear(q, `${prefix}.q_proj`, c, di), dh); // [8, n, dh]
    const wk = this.w.get(`${prefix}.k_proj.weight`, [di, c]);
    this.w.get(`${prefix}.k_proj.bias`, [di]); // present in every checkpoint; cancels in the softmax
    // W_k is [8·dh, C] row-major, i.e. already [8, dh, C]; fold in the 1/√dh scale.
    const wkHeads = g.initFloat(`${prefix}.k_proj.weight_heads`, scaled(wk.data, 1 / Math.sqrt(dh)), [
      HEADS,
      dh,
      c,
    ]);
    const qk = this.reshape(g.op("MatMul", [qh, wkHeads]), [-1, c]); // [8n, C]
    const logits = g.op("Gemm", [qk, keys], { transB: 1 }); // [8n, 4096]
    let attn = g.op("Softmax", [logits], { axis: -1 });
    if (sim) {
      const again = g.op("Softmax", [this.add(attn, sim.s)], { axis: -1 });
      attn = this.add(this.mul(again, sim.h), this.mul(attn, sim.oneMinusH));
    }
    const av = this.reshape(g.op("MatMul", [attn, values]), [HEADS, -1, c]); // [8, n, C]
    const wv = this.w.get(`${prefix}.v_proj.weight`, [di, c]);
    const wvHeads = g.initFloat(`${prefix}.v_proj.weight_heads_t`, headsTransposed(wv.data, dh, c), [
      HEADS,
      c,
      dh,
    ]);
    const bv = g.initFloat(`${prefix}.v_proj.bias`, this.w.get(`${prefix}.v_proj.bias`, [di]).data, [
      HEADS,
      1,
      dh,
    ]);
    const o = this.add(g.op("MatMul", [av, wvHeads]), bv); // [8, n, dh]
    const merged = this.reshape(this.transpose(o, [1, 0, 2]), [-1, di]);
    return this.linear(merged, `${prefix}.out_proj`, di, c);
  }

  /**
   * The 4096 image tokens attend to the prompt tokens (persam-spec §3.3 step 4): image tokens are
   * the queries, `tokKeys` (Q + QP) the keys, `tokValues` (Q) the values. Factorised per head:
   * logits = `imgQ·(W_q,hᵀ·k_hᵀ) + b_q,h·k_hᵀ`, output = `A·(v_h·W_o,hᵀ)` summed over heads, so
   * the image side meets only `[C, 8n]` and `[8n, C]` matrices.
   */
  imageToToken(prefix: string, imgQ: Value, tokKeys: Value, tokValues: Value): Value {
    const g = this.g;
    const c = this.c;
    const di = this.attnWidth(prefix);
    const dh = di / HEADS;
    const scale = 1 / Math.sqrt(dh);
    const k = this.linear(tokKeys, `${prefix}.k_proj`, c, di);
    const kT = this.transpose(this.reshape(k, [-1, HEADS, dh]), [1, 2, 0]); // [8, dh, n]
    const wq = this.w.get(`${prefix}.q_proj.weight`, [di, c]);
    const bq = this.w.get(`${prefix}.q_proj.bias`, [di]);
    const wqHeads = g.initFloat(`${prefix}.q_proj.weight_heads_t`, headsTransposed(wq.data, dh, c, scale), [
      HEADS,
      c,
      dh,
    ]);
    const bqHeads = g.initFloat(`${prefix}.q_proj.bias_heads`, scaled(bq.data, scale), [HEADS, 1, dh]);
    const mq = this.reshape(this.transpose(g.op("MatMul", [wqHeads, kT]), [1, 0, 2]), [c, -1]); // [C, 8n]
    const bias = this.reshape(g.op("MatMul", [bqHeads, kT]), [1, -1]); // [1, 8n]
    const logits = this.add(g.op("MatMul", [imgQ, mq]), bias); // [4096, 8n]
    const attn = this.reshape(
      g.op("Softmax", [this.reshape(logits, [GRID_TOKENS, HEADS, -1])], { axis: -1 }),
      [GRID_TOKENS, -1],
    );
    const v = this.splitHeads(this.linear(tokValues, `${prefix}.v_proj`, c, di), dh); // [8, n, dh]
    const wo = this.w.get(`${prefix}.out_proj.weight`, [c, di]);
    // Woᵀ is [d_i, C] = [8, dh, C].
    const woHeads = g.initFloat(`${prefix}.out_proj.weight_t`, transpose(wo.data, c, di), [HEADS, dh, c]);
    const mv = this.reshape(g.op("MatMul", [v, woHeads]), [-1, c]); // [8n, C]
    const bo = g.init(`${prefix}.out_proj.bias`, this.w.get(`${prefix}.out_proj.bias`, [c]));
    return this.add(g.op("MatMul", [attn, mv]), bo);
  }
}

/**
 * Build the prompt-encoder + mask-decoder ONNX graph (opset 17) from decoder weights in HF naming
 * (persam-spec §10). Widths come from the tensors' shapes (C from `iou_token`, MLP width from
 * `lin1`, cross-attention width from `q_proj`, upscaling widths from the transposed convs), so the
 * same code builds SAM's C = 256 decoder and tiny test decoders.
 *
 * Inputs/outputs are exactly `DECODER_IO`; the number of points N is the only dynamic axis. Plain
 * SAM is `has_mask_input = 0`, `has_attn_sim = 0`, `target_embedding = 0`.
 * @returns the serialised model.
 * @throws Error naming the first missing or mis-shaped weight.
 */
export function buildDecoderGraph(weights: DecoderWeights, options: DecoderGraphOptions = {}): Uint8Array {
  const d = new DecoderGraph(weights);
  const { g, w, c } = d;
  const io = DECODER_IO.inputs;
  const gMatrix = w.get(G_KEYS[0]!, [2, c / 2]);

  const image = g.input(io.imageEmbeddings, "float", [1, c, GRID_SIDE, GRID_SIDE]);
  const coords = g.input(io.pointCoords, "float", [1, "N", 2]);
  const labels = g.input(io.pointLabels, "float", [1, "N"]);
  const maskInput = g.input(io.maskInput, "float", [1, 1, LOW_RES_SIDE, LOW_RES_SIDE]);
  const hasMask = g.input(io.hasMaskInput, "float", [1]);
  const attnSim = g.input(io.attnSim, "float", [1, 1, 1, GRID_TOKENS]);
  const hasAttnSim = g.input(io.hasAttnSim, "float", [1]);
  const targetEmbedding = g.input(io.targetEmbedding, "float", [1, 1, c]);

  // ---- Sparse prompt embeddings (§2.1, §2.2) ----
  // u = (x + 0.5)/1024 on both axes (§9 item 4), then 2u − 1, then ·G, then ·2π (§9 item 5).
  const xy = d.reshape(coords, [-1, 2]);
  const unit = g.op("Div", [d.add(xy, g.constant(0.5)), g.constant(ENCODER_SIDE)]);
  const centred = g.op("Sub", [d.mul(unit, g.constant(2)), g.constant(1)]);
  const proj = d.mul(
    g.op("MatMul", [centred, g.init("positional_matrix", gMatrix)]),
    g.constant(2 * Math.PI),
  );
  const pe = g.op("Concat", [g.op("Sin", [proj]), g.op("Cos", [proj])], { axis: 1 }); // [N, C]
  // SA's ONNX rule (§2.2): emb = label == −1 ? not_a_point : PE + Σ_i [label == i]·point_embed[i],
  // as a one-hot [N, 5] times a [5, C] table (exact: one term is 1·row, the others 0·row).
  const lab = d.reshape(labels, [-1, 1]);
  const oneHot = g.op("Cast", [g.op("Equal", [lab, g.constant([0, 1, 2, 3, -1], [1, 5])])], { to: 1 });
  const table = new Float32Array(5 * c);
  for (let i = 0; i < 4; i++) table.set(w.get(`prompt_encoder.point_embed.${i}.weight`, [1, c]).data, i * c);
  table.set(w.get("prompt_encoder.not_a_point_embed.weight", [1, c]).data, 4 * c);
  const isPad = g.op("Cast", [g.op("Equal", [lab, g.constant(-1)])], { to: 1 });
  const keepPe = d.mul(pe, g.op("Sub", [g.constant(1), isPad]));
  const sparse = d.add(keepPe, g.op("MatMul", [oneHot, g.initFloat("point_embedding_table", table, [5, c])]));

  // ---- Tokens T (§3.1): IoU token, 4 mask tokens, then the prompts ----
  const outTokens = new Float32Array(5 * c);
  outTokens.set(w.get("mask_decoder.iou_token.weight", [1, c]).data, 0);
  outTokens.set(w.get("mask_decoder.mask_tokens.weight", [NUM_MASK_TOKENS, c]).data, c);
  const tokens = g.op("Concat", [g.initFloat("output_tokens", outTokens, [5, c]), sparse], { axis: 0 });

  // ---- Dense prompt (§2.3), blended by has_mask_input as in SA's ONNX export ----
  const pre = "prompt_encoder.mask_embed";
  let m = g.op(
    "Conv",
    [
      maskInput,
      g.init(`${pre}.conv1.weight`, w.get(`${pre}.conv1.weight`, [4, 1, 2, 2])),
      g.init(`${pre}.conv1.bias`, w.get(`${pre}.conv1.bias`, [4])),
    ],
    { kernel_shape: [2, 2], strides: [2, 2] },
  );
  m = d.gelu(d.layerNorm2d(m, `${pre}.layer_norm1`, 4));
  m = g.op(
    "Conv",
    [
      m,
      g.init(`${pre}.conv2.weight`, w.get(`${pre}.conv2.weight`, [16, 4, 2, 2])),
      g.init(`${pre}.conv2.bias`, w.get(`${pre}.conv2.bias`, [16])),
    ],
    { kernel_shape: [2, 2], strides: [2, 2] },
  );
  m = d.gelu(d.layerNorm2d(m, `${pre}.layer_norm2`, 16)); // [1, 16, 64, 64]
  // The 1×1 conv 16→C, the has_mask_input blend and E + D (§3.1) in one Gemm, channels last:
  // [X2 | 1]·[f·W3ᵀ ; f·b3 + (1 − f)·no_mask_embed] + Eᵀ. With f = 0 the first 16 rows are zero and
  // the result is exactly E + no_mask_embed; with f = 1 it is E + conv3(X2). Folding f into the
  // small weight matrix avoids three full-size elementwise passes.
  const x2 = d.transpose(d.reshape(m, [16, GRID_TOKENS]), [1, 0]); // [4096, 16]
  const x2One = g.op("Concat", [x2, g.constant(new Array<number>(GRID_TOKENS).fill(1), [GRID_TOKENS, 1])], {
    axis: 1,
  });
  const w3 = w.get(`${pre}.conv3.weight`, [c, 16, 1, 1]);
  const w3t = g.initFloat(`${pre}.conv3.weight_t`, transpose(w3.data, c, 16), [16, c]);
  const b3 = g.init(`${pre}.conv3.bias`, w.get(`${pre}.conv3.bias`, [c]));
  const noMask = g.init("no_mask_embed", {
    data: w.get("prompt_encoder.no_mask_embed.weight", [1, c]).data,
    dims: [c],
  });
  const notHasMask = g.op("Sub", [g.constant(1), hasMask]);
  const denseBias = d.add(d.mul(b3, hasMask), d.mul(noMask, notHasMask)); // [C]
  const denseW = g.op("Concat", [d.mul(w3t, hasMask), d.reshape(denseBias, [1, c])], { axis: 0 }); // [17, C]
  const imageTokens = d.transpose(d.reshape(image, [c, GRID_TOKENS]), [1, 0]); // Eᵀ [4096, C]
  let keys = g.op("Gemm", [x2One, denseW, imageTokens]); // K0 = E + D, token r·64 + c

  const densePe = densePositionalEncoding(gMatrix); // [1, C, 64, 64], precomputed in float64
  const keyPe = g.initFloat("image_pe", transpose(densePe.data, c, GRID_TOKENS), [GRID_TOKENS, c]);

  // ---- PerSAM extras ----
  const t = d.reshape(targetEmbedding, [1, c]);
  const sim = {
    s: d.reshape(attnSim, [1, GRID_TOKENS]),
    h: hasAttnSim,
    oneMinusH: g.op("Sub", [g.constant(1), hasAttnSim]),
  };

  // PS target-semantic prompting with its in-place aliasing (§3.5): QP = T + t for both blocks and
  // the final attention; block 0 input T + t; block 1 input Q0 + t; final q = Q1 + T + 2t.
  const queryPe = d.add(tokens, t);
  let q = queryPe;
  const eps = options.transformerLayerNormEps ?? 1e-5;
  for (let l = 0; l < 2; l++) {
    const pre = `mask_decoder.transformer.layers.${l}`;
    if (l === 1) q = d.add(q, t);
    // 1. Self-attention; block 0 skips the PE and the residual (§3.3 step 1, §9 item 9).
    if (l === 0) q = d.tokenAttention(`${pre}.self_attn`, q, q, q);
    else {
      const qq = d.add(q, queryPe);
      q = d.add(q, d.tokenAttention(`${pre}.self_attn`, qq, qq, q));
    }
    q = d.layerNorm(q, `${pre}.layer_norm1`, eps);
    // 2. Token → image, the only attention with the attn_sim hook (§9 item 14).
    const keysWithPe = d.add(keys, keyPe);
    q = d.add(
      q,
      d.tokenToImage(`${pre}.cross_attn_token_to_image`, d.add(q, queryPe), keysWithPe, keys, sim),
    );
    q = d.layerNorm(q, `${pre}.layer_norm2`, eps);
    // 3. MLP with ReLU.
    const lin1 = w.get(`${pre}.mlp.lin1.weight`, [undefined, c]).dims[0]!;
    const hidden = g.op("Relu", [d.linear(q, `${pre}.mlp.lin1`, c, lin1)]);
    q = d.layerNorm(d.add(q, d.linear(hidden, `${pre}.mlp.lin2`, lin1, c)), `${pre}.layer_norm3`, eps);
    // 4. Image → token: image tokens query, value is Q without PE (§9 item 10).
    keys = d.add(keys, d.imageToToken(`${pre}.cross_attn_image_to_token`, keysWithPe, d.add(q, queryPe), q));
    keys = d.layerNorm(keys, `${pre}.layer_norm4`, eps);
  }
  // Final attention (§3.4), no attn_sim; q = Q1 + QP + t (§3.5).
  const finalQ = d.add(d.add(q, queryPe), t);
  const finalPre = "mask_decoder.transformer.final_attn_token_to_image";
  q = d.add(q, d.tokenToImage(finalPre, finalQ, d.add(keys, keyPe), keys));
  const hs = d.layerNorm(q, "mask_decoder.transformer.layer_norm_final_attn", eps);

  // ---- Upscaling (§3.6 steps 1–3) as two per-pixel MatMuls, channels last ----
  // A k=2/s=2 transposed conv is non-overlapping: each input pixel maps to its own 2×2 block, so
  // it is `x·W'` with W'[c, (a·2+b)·out + o] = W[c, o, a, b] ([in, out, 2, 2] layout, §9 item 13),
  // followed by a depth-to-space that we defer to one Transpose of the final masks.
  const up1 = w.get("mask_decoder.upscale_conv1.weight", [c, undefined, 2, 2]);
  const c4 = up1.dims[1]!;
  const up2 = w.get("mask_decoder.upscale_conv2.weight", [c4, undefined, 2, 2]);
  const c8 = up2.dims[1]!;
  const convT = (x: Value, name: string, weight: Tensor, inC: number, outC: number): Value => {
    const wp = new Float32Array(inC * 4 * outC);
    for (let ci = 0; ci < inC; ci++)
      for (let o = 0; o < outC; o++)
        for (let ab = 0; ab < 4; ab++)
          wp[ci * 4 * outC + ab * outC + o] = weight.data[(ci * outC + o) * 4 + ab]!;
    const bias = w.get(`${name}.bias`, [outC]).data;
    const bt = new Float32Array(4 * outC);
    for (let ab = 0; ab < 4; ab++) bt.set(bias, ab * outC);
    const y = g.op("MatMul", [x, g.initFloat(`${name}.weight_pixels`, wp, [inC, 4 * outC])]);
    return d.add(y, g.initFloat(`${name}.bias_pixels`, bt, [4 * outC]));
  };
  // Rows after conv1: (i, j, a, b); after conv2: (i, j, a, b, a', b').
  let u = d.reshape(convT(keys, "mask_decoder.upscale_conv1", up1, c, c4), [-1, c4]);
  u = d.gelu(d.layerNorm(u, "mask_decoder.upscale_layer_norm", 1e-6, c4)); // LayerNorm2d = LN over channels
  u = d.reshape(d.gelu(convT(u, "mask_decoder.upscale_conv2", up2, c4, c8)), [-1, c8]); // [65536, c8]

  // ---- Hypernetworks, batched over the 4 mask tokens (§3.6 step 4) ----
  const stack = (suffix: string, outDim: number, inDim: number, transposeIt: boolean): Value => {
    const data = new Float32Array(NUM_MASK_TOKENS * outDim * inDim);
    for (let i = 0; i < NUM_MASK_TOKENS; i++) {
      const key = `mask_decoder.output_hypernetworks_mlps.${i}.${suffix}`;
      const t = w.get(key, transposeIt ? [outDim, inDim] : [outDim]);
      data.set(transposeIt ? transpose(t.data, outDim, inDim) : t.data, i * outDim * inDim);
    }
    const dims = transposeIt ? [NUM_MASK_TOKENS, inDim, outDim] : [NUM_MASK_TOKENS, 1, outDim];
    return g.initFloat(`mask_decoder.output_hypernetworks_mlps.${suffix}_stacked`, data, dims);
  };
  const maskTokens = d.reshape(
    g.op("Slice", [hs, g.constantInt64([1]), g.constantInt64([1 + NUM_MASK_TOKENS]), g.constantInt64([0])]),
    [NUM_MASK_TOKENS, 1, c],
  );
  let hyper = maskTokens;
  for (const [layer, outDim, relu] of [
    ["proj_in", c, true],
    ["layers.0", c, true],
    ["proj_out", c8, false],
  ] as const) {
    hyper = d.add(
      g.op("MatMul", [hyper, stack(`${layer}.weight`, outDim, c, true)]),
      stack(`${layer}.bias`, outDim, 1, false),
    );
    if (relu) hyper = g.op("Relu", [hyper]);
  }
  const hyperT = d.transpose(d.reshape(hyper, [NUM_MASK_TOKENS, c8]), [1, 0]); // [c8, 4]

  // ---- Masks = H·U (§3.6 step 5), then the deferred depth-to-space ----
  const masksByPixel = g.op("MatMul", [u, hyperT]); // [65536, 4], rows (i, j, a, b, a', b')
  const blocks = d.reshape(masksByPixel, [GRID_SIDE, GRID_SIDE, 2, 2, 2, 2, NUM_MASK_TOKENS]);
  // Output pixel (4i + 2a + a', 4j + 2b + b').
  const masks = d.reshape(d.transpose(blocks, [6, 0, 2, 4, 1, 3, 5]), [
    1,
    NUM_MASK_TOKENS,
    LOW_RES_SIDE,
    LOW_RES_SIDE,
  ]);

  // ---- IoU head on token 0 (§3.6 step 6), raw ----
  const iouToken = g.op("Slice", [hs, g.constantInt64([0]), g.constantInt64([1]), g.constantInt64([0])]);
  const iou = d.mlp3(iouToken, "mask_decoder.iou_prediction_head", NUM_MASK_TOKENS); // [1, 4]

  g.output(masks, DECODER_IO.outputs.lowResMasks, "float", [1, NUM_MASK_TOKENS, LOW_RES_SIDE, LOW_RES_SIDE]);
  g.output(iou, DECODER_IO.outputs.iouPredictions, "float", [1, NUM_MASK_TOKENS]);
  return g.toModel();
}
