// A plain TypeScript SAM prompt encoder + mask decoder with the PerSAM hooks, written straight from
// persam-spec §2–§3: the slow, readable yardstick the ONNX decoder graph is checked against.
// It must stay independent of any ONNX code, so that a parity test compares two implementations.

import type {
  DecoderInputs,
  DecoderOutputs,
  DecoderWeights,
  MaskDecoder,
} from "../../src/segment/sam/decoder-types.js";
import { densePositionalEncoding, pointEncoding } from "../../src/segment/sam/positional-encoding.js";
import {
  decoderWeightProblems,
  inferDecoderWidths,
  POSITIONAL_EMBEDDING_KEY,
  TIED_POSITIONAL_EMBEDDING_KEY,
} from "../../src/segment/sam/safetensors.js";
import {
  ENCODER_SIDE,
  GRID_SIDE,
  GRID_TOKENS,
  LOW_RES_SIDE,
  NUM_MASK_TOKENS,
} from "../../src/segment/sam/sam-constants.js";
import type { Tensor } from "../../src/util/tensor.js";

/** Attention heads of every SAM decoder attention (§0.1). */
const HEADS = 8;

/** Options of {@link ReferenceDecoder}. */
export interface ReferenceDecoderOptions {
  /**
   * eps of the transformer `nn.LayerNorm`s (norm1–4 and the final one).
   * @default 1e-5 (original SAM / PerSAM; HF's config uses 1e-6 for norm1–4, §9 item 11)
   */
  layerNormEps?: number;
  /**
   * eps of the `LayerNorm2d`s (mask-input downscaling and output upscaling).
   * @default 1e-6
   */
  layerNorm2dEps?: number;
}

// ---------------------------------------------------------------------------------------------
// Scalar maths

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const ONE_OVER_SQRT_PI = 1 / Math.sqrt(Math.PI);
/** Below this |x| the series for erf converges quickly; above it the continued fraction for erfc does. */
const ERF_SWITCH = 2.5;

/** erf by its everywhere-convergent series of positive terms (no cancellation), for |x| < ERF_SWITCH. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17 && term > -sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** erfc(x) for x ≥ ERF_SWITCH by its continued fraction (modified Lentz). */
function erfcContinuedFraction(x: number): number {
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (Math.exp(-x * x) * ONE_OVER_SQRT_PI) / f;
}

/** The error function to float64 accuracy (~1e-16 absolute). */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const ax = Math.abs(x);
  const r = ax < ERF_SWITCH ? erfSeries(ax) : 1 - erfcContinuedFraction(ax);
  return x < 0 ? -r : r;
}

/** The complementary error function `1 − erf(x)`, accurate in the far tail too. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return x;
  if (x >= ERF_SWITCH) return erfcContinuedFraction(x);
  if (x <= -ERF_SWITCH) return 2 - erfcContinuedFraction(-x);
  return 1 - erf(x);
}

/** Exact GELU `0.5·x·(1 + erf(x/√2))` (§0.1: erf form everywhere, never the tanh approximation). */
export function gelu(x: number): number {
  const z = x * Math.SQRT1_2;
  // 1 + erf(z) = erfc(−z): avoids cancellation for very negative x.
  return 0.5 * x * (z >= 0 ? 1 + erf(z) : erfc(-z));
}

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += a[ao + k]! * b[bo + k]!;
    s1 += a[ao + k + 1]! * b[bo + k + 1]!;
    s2 += a[ao + k + 2]! * b[bo + k + 2]!;
    s3 += a[ao + k + 3]! * b[bo + k + 3]!;
  }
  for (; k < n; k++) s0 += a[ao + k]! * b[bo + k]!;
  return s0 + s1 + (s2 + s3);
}

// ---------------------------------------------------------------------------------------------
// Layers over row-major [rows, width] Float32Arrays (float64 accumulation, float32 storage)

/** A linear layer `y = x·Wᵀ + b` in PyTorch layout (W is `[out, in]`). */
export interface LinearWeights {
  readonly w: Float32Array;
  readonly b: Float32Array;
  readonly out: number;
  readonly in: number;
}
type Linear = LinearWeights;

interface Norm {
  readonly w: Float32Array;
  readonly b: Float32Array;
}

/** The four projections of one SAM attention layer; `internal` is d_i (q/k/v output width). */
export interface AttentionWeights {
  readonly q: LinearWeights;
  readonly k: LinearWeights;
  readonly v: LinearWeights;
  readonly o: LinearWeights;
  readonly internal: number;
}
type Attention = AttentionWeights;

/**
 * y = x·Wᵀ + b. Blocked two rows × two outputs so each loaded value feeds two products — the
 * image-side projections (4096 × 256 × 128) dominate a pass, and this halves their memory traffic.
 */
function linear(x: Float32Array, rows: number, l: Linear): Float32Array {
  const n = l.in;
  const no = l.out;
  const w = l.w;
  const y = new Float32Array(rows * no);
  let r = 0;
  for (; r + 1 < rows; r += 2) {
    const x0 = r * n;
    const x1 = x0 + n;
    let o = 0;
    for (; o + 1 < no; o += 2) {
      const w0 = o * n;
      const w1 = w0 + n;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      for (let k = 0; k < n; k++) {
        const a0 = x[x0 + k]!;
        const a1 = x[x1 + k]!;
        const b0 = w[w0 + k]!;
        const b1 = w[w1 + k]!;
        s00 += a0 * b0;
        s01 += a0 * b1;
        s10 += a1 * b0;
        s11 += a1 * b1;
      }
      y[r * no + o] = s00 + l.b[o]!;
      y[r * no + o + 1] = s01 + l.b[o + 1]!;
      y[(r + 1) * no + o] = s10 + l.b[o]!;
      y[(r + 1) * no + o + 1] = s11 + l.b[o + 1]!;
    }
    for (; o < no; o++) {
      y[r * no + o] = dot(x, x0, w, o * n, n) + l.b[o]!;
      y[(r + 1) * no + o] = dot(x, x1, w, o * n, n) + l.b[o]!;
    }
  }
  for (; r < rows; r++) {
    for (let o = 0; o < no; o++) y[r * no + o] = dot(x, r * n, w, o * n, n) + l.b[o]!;
  }
  return y;
}

function relu(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) if (!(x[i]! > 0)) x[i] = 0;
  return x;
}

function add(a: Float32Array, b: Float32Array): Float32Array {
  const y = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i]! + b[i]!;
  return y;
}

/** a + v broadcast over rows (v has the row width). */
function addRow(a: Float32Array, v: Float32Array): Float32Array {
  const y = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i]! + v[i % v.length]!;
  return y;
}

/**
 * LayerNorm over the last axis, in place: biased variance, `γ·(x−μ)/√(σ²+eps) + β`. Serves both
 * `nn.LayerNorm` on tokens and `LayerNorm2d` on channel-last pixels (same formula, §2.3).
 */
function layerNormRows(x: Float32Array, rows: number, width: number, n: Norm, eps: number): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    let mean = 0;
    for (let i = 0; i < width; i++) mean += x[o + i]!;
    mean /= width;
    let variance = 0;
    for (let i = 0; i < width; i++) {
      const d = x[o + i]! - mean;
      variance += d * d;
    }
    const inv = 1 / Math.sqrt(variance / width + eps);
    for (let i = 0; i < width; i++) x[o + i] = (x[o + i]! - mean) * inv * n.w[i]! + n.b[i]!;
  }
  return x;
}

function geluInPlace(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = gelu(x[i]!);
  return x;
}

/**
 * SAM attention (§3.2), the decoder's building block, exported for unit tests: project, split into
 * 8 contiguous heads, `softmax(QKᵀ/√d_h)`, and — the PerSAM hook — when `sim` is given, add it to
 * the *probabilities* and softmax again (PS `Attention.forward`; not a pre-softmax mask, §9 item 14).
 * Inputs are row-major `[nq, C]` / `[nk, C]`; `sim` has one value per key.
 * @returns `[nq, C]` after the output projection.
 */
export function samAttention(
  qIn: Float32Array,
  nq: number,
  kIn: Float32Array,
  vIn: Float32Array,
  nk: number,
  a: Attention,
  sim?: Float32Array,
): Float32Array {
  const di = a.internal;
  const dh = di / HEADS;
  const sqrtDh = Math.sqrt(dh);
  const q = linear(qIn, nq, a.q);
  const k = linear(kIn, nk, a.k);
  const v = linear(vIn, nk, a.v);
  const out = new Float32Array(nq * di);
  const p = new Float64Array(nk);
  const acc = new Float64Array(dh);
  for (let h = 0; h < HEADS; h++) {
    const ho = h * dh;
    for (let i = 0; i < nq; i++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < nk; j++) {
        const s = dot(q, i * di + ho, k, j * di + ho, dh) / sqrtDh;
        p[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < nk; j++) {
        const e = Math.exp(p[j]! - max);
        p[j] = e;
        sum += e;
      }
      if (sim) {
        max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < nk; j++) {
          const s = p[j]! / sum + sim[j]!;
          p[j] = s;
          if (s > max) max = s;
        }
        sum = 0;
        for (let j = 0; j < nk; j++) {
          const e = Math.exp(p[j]! - max);
          p[j] = e;
          sum += e;
        }
      }
      acc.fill(0);
      for (let j = 0; j < nk; j++) {
        const w = p[j]!;
        const vo = j * di + ho;
        for (let d = 0; d < dh; d++) acc[d]! += w * v[vo + d]!;
      }
      for (let d = 0; d < dh; d++) out[i * di + ho + d] = acc[d]! / sum;
    }
  }
  return linear(out, nq, a.o);
}

// ---------------------------------------------------------------------------------------------
// Weights

interface Block {
  readonly selfAttn: Attention;
  readonly norm1: Norm;
  readonly tokenToImage: Attention;
  readonly norm2: Norm;
  readonly lin1: Linear;
  readonly lin2: Linear;
  readonly norm3: Norm;
  readonly norm4: Norm;
  readonly imageToToken: Attention;
}

type Head = readonly [Linear, Linear, Linear];

/**
 * SAM's prompt encoder + mask decoder in plain TypeScript, with PerSAM's `attn_sim` and
 * `target_embedding` hooks (persam-spec §2, §3). Slow but direct; for tests and parity checks.
 * Weights in HF naming (§10), any width C (heads fixed at 8).
 */
export class ReferenceDecoder implements MaskDecoder {
  /** Width C of the image embedding this decoder expects. */
  readonly embedDim: number;
  private readonly eps: number;
  private readonly eps2d: number;
  private readonly g: Tensor;
  /** Dense image PE transposed to `[4096, C]` (token-major), computed once (§2.4). */
  private readonly imagePe: Float32Array;
  private readonly pointEmbed: readonly Float32Array[];
  private readonly notAPoint: Float32Array;
  private readonly noMask: Float32Array;
  private readonly maskConv1: Linear; // [4, 1·2·2]
  private readonly maskNorm1: Norm;
  private readonly maskConv2: Linear; // [16, 4·2·2]
  private readonly maskNorm2: Norm;
  private readonly maskConv3: Linear; // [C, 16]
  private readonly outputTokens: Float32Array; // [5, C]: iou token then the 4 mask tokens
  private readonly blocks: readonly Block[];
  private readonly finalAttn: Attention;
  private readonly finalNorm: Norm;
  /** ConvTranspose weights re-laid as `[(o,a,b), in]` rows so each output is one dot product. */
  private readonly up1: Linear;
  private readonly upNorm: Norm;
  private readonly up2: Linear;
  private readonly hypernetworks: readonly Head[];
  private readonly iouHead: Head;

  /**
   * @param weights prompt-encoder + mask-decoder tensors in HF naming (§10); G may be under either
   * tied name.
   * @throws {Error} listing every missing tensor and wrong shape.
   */
  constructor(weights: DecoderWeights, options: ReferenceDecoderOptions = {}) {
    const gName = weights.has(POSITIONAL_EMBEDDING_KEY)
      ? POSITIONAL_EMBEDDING_KEY
      : TIED_POSITIONAL_EMBEDDING_KEY;
    const shapeOf = (name: string) => weights.get(name === POSITIONAL_EMBEDDING_KEY ? gName : name)?.dims;
    const { missing, badShapes } = decoderWeightProblems(shapeOf);
    if (missing.length > 0 || badShapes.length > 0) {
      throw new Error(
        `Expected complete SAM decoder weights but received ${[
          ...missing.map((n) => `missing ${n}`),
          ...badShapes,
        ].join("; ")}`,
      );
    }
    this.embedDim = inferDecoderWidths(shapeOf)!.embedDim;
    this.eps = options.layerNormEps ?? 1e-5;
    this.eps2d = options.layerNorm2dEps ?? 1e-6;

    const t = (name: string): Tensor => weights.get(name)!;
    const data = (name: string): Float32Array => t(name).data;
    const lin = (prefix: string): Linear => {
      const w = t(`${prefix}.weight`);
      const inFeatures = w.dims.slice(1).reduce((x, y) => x * y, 1);
      return { w: w.data, b: data(`${prefix}.bias`), out: w.dims[0]!, in: inFeatures };
    };
    const norm = (prefix: string): Norm => ({ w: data(`${prefix}.weight`), b: data(`${prefix}.bias`) });
    const attn = (prefix: string): Attention => {
      const q = lin(`${prefix}.q_proj`);
      return {
        q,
        k: lin(`${prefix}.k_proj`),
        v: lin(`${prefix}.v_proj`),
        o: lin(`${prefix}.out_proj`),
        internal: q.out,
      };
    };
    const head = (prefix: string): Head => [
      lin(`${prefix}.proj_in`),
      lin(`${prefix}.layers.0`),
      lin(`${prefix}.proj_out`),
    ];
    const convTranspose = (prefix: string): Linear => {
      // [in, out, 2, 2] (§0 conventions, §9 item 13) → rows m = o·4 + a·2 + b over `in`.
      const w = t(`${prefix}.weight`);
      const [nin, nout] = w.dims as [number, number];
      const rows = nout * 4;
      const wt = new Float32Array(rows * nin);
      for (let c = 0; c < nin; c++) for (let m = 0; m < rows; m++) wt[m * nin + c] = w.data[c * rows + m]!;
      const bias = data(`${prefix}.bias`);
      return { w: wt, b: Float32Array.from({ length: rows }, (_, m) => bias[m >> 2]!), out: rows, in: nin };
    };

    this.g = t(gName);
    const pe = densePositionalEncoding(this.g);
    this.imagePe = channelsLast(pe.data, this.embedDim, GRID_TOKENS);
    const p = "prompt_encoder";
    this.pointEmbed = [0, 1, 2, 3].map((i) => data(`${p}.point_embed.${i}.weight`));
    this.notAPoint = data(`${p}.not_a_point_embed.weight`);
    this.noMask = data(`${p}.no_mask_embed.weight`);
    this.maskConv1 = lin(`${p}.mask_embed.conv1`);
    this.maskNorm1 = norm(`${p}.mask_embed.layer_norm1`);
    this.maskConv2 = lin(`${p}.mask_embed.conv2`);
    this.maskNorm2 = norm(`${p}.mask_embed.layer_norm2`);
    this.maskConv3 = lin(`${p}.mask_embed.conv3`);

    const m = "mask_decoder";
    this.outputTokens = new Float32Array([
      ...data(`${m}.iou_token.weight`),
      ...data(`${m}.mask_tokens.weight`),
    ]);
    this.blocks = [0, 1].map((l) => {
      const b = `${m}.transformer.layers.${l}`;
      return {
        selfAttn: attn(`${b}.self_attn`),
        norm1: norm(`${b}.layer_norm1`),
        tokenToImage: attn(`${b}.cross_attn_token_to_image`),
        norm2: norm(`${b}.layer_norm2`),
        lin1: lin(`${b}.mlp.lin1`),
        lin2: lin(`${b}.mlp.lin2`),
        norm3: norm(`${b}.layer_norm3`),
        norm4: norm(`${b}.layer_norm4`),
        imageToToken: attn(`${b}.cross_attn_image_to_token`),
      };
    });
    this.finalAttn = attn(`${m}.transformer.final_attn_token_to_image`);
    this.finalNorm = norm(`${m}.transformer.layer_norm_final_attn`);
    this.up1 = convTranspose(`${m}.upscale_conv1`);
    this.upNorm = norm(`${m}.upscale_layer_norm`);
    this.up2 = convTranspose(`${m}.upscale_conv2`);
    this.hypernetworks = [0, 1, 2, 3].map((i) => head(`${m}.output_hypernetworks_mlps.${i}`));
    this.iouHead = head(`${m}.iou_prediction_head`);
  }

  /** One decoder pass (see {@link DecoderInputs}); resolves with all four masks and IoU scores. */
  async run(inputs: DecoderInputs): Promise<DecoderOutputs> {
    return this.runSync(inputs);
  }

  /**
   * The same pass, synchronously.
   * @throws {Error} when an input has the wrong shape.
   */
  runSync(inputs: DecoderInputs): DecoderOutputs {
    const c = this.embedDim;
    const n = this.checkInputs(inputs);
    const sparse = this.sparseTokens(inputs.pointCoords, inputs.pointLabels, n);
    const dense = inputs.maskInput ? this.maskEmbedding(inputs.maskInput.data) : this.noMaskEmbedding();
    // src = E + D, flattened to 4096 image tokens r·64+c (§3.1).
    const src = channelsLast(inputs.imageEmbeddings.data, c, GRID_TOKENS);
    for (let i = 0; i < src.length; i++) src[i] = src[i]! + dense[i]!;
    const tokens = new Float32Array(this.outputTokens.length + sparse.length);
    tokens.set(this.outputTokens, 0);
    tokens.set(sparse, this.outputTokens.length);
    const { hs, keys } = this.transformer(
      tokens,
      1 + NUM_MASK_TOKENS + n,
      src,
      inputs.attnSim,
      inputs.targetEmbedding,
    );
    return this.predict(hs, keys);
  }

  private checkInputs(inputs: DecoderInputs): number {
    const c = this.embedDim;
    const dims = inputs.imageEmbeddings.dims;
    if (
      dims.join(",") !== `1,${c},${GRID_SIDE},${GRID_SIDE}` ||
      inputs.imageEmbeddings.data.length !== c * GRID_TOKENS
    ) {
      throw new Error(`Expected [1,${c},64,64] for imageEmbeddings but received [${dims.join(",")}]`);
    }
    const n = inputs.pointLabels.length;
    if (inputs.pointCoords.length !== 2 * n) {
      throw new Error(
        `Expected ${2 * n} values (N×2) for pointCoords but received ${inputs.pointCoords.length}`,
      );
    }
    const mask = inputs.maskInput;
    if (mask && (mask.dims.join(",") !== "1,1,256,256" || mask.data.length !== LOW_RES_SIDE * LOW_RES_SIDE)) {
      throw new Error(`Expected [1,1,256,256] for maskInput but received [${mask.dims.join(",")}]`);
    }
    if (inputs.attnSim && inputs.attnSim.length !== GRID_TOKENS) {
      throw new Error(`Expected ${GRID_TOKENS} values for attnSim but received ${inputs.attnSim.length}`);
    }
    if (inputs.targetEmbedding && inputs.targetEmbedding.length !== c) {
      throw new Error(
        `Expected ${c} values for targetEmbedding but received ${inputs.targetEmbedding.length}`,
      );
    }
    return n;
  }

  /**
   * The prompt encoder's sparse embeddings (§2.2) — exposed for unit tests and for debugging a
   * graph's intermediate values.
   * @returns `[1, N, C]`
   */
  sparseEmbeddings(pointCoords: Float32Array, pointLabels: Float32Array): Tensor {
    const n = pointLabels.length;
    if (pointCoords.length !== 2 * n) {
      throw new Error(`Expected ${2 * n} values (N×2) for pointCoords but received ${pointCoords.length}`);
    }
    return { data: this.sparseTokens(pointCoords, pointLabels, n), dims: [1, n, this.embedDim] };
  }

  /**
   * The prompt encoder's dense embedding (§2.3): the mask path when `maskInput` is given, else
   * `no_mask_embed` everywhere. Exposed for unit tests and debugging.
   * @returns `[1, C, 64, 64]`
   */
  denseEmbeddings(maskInput?: Tensor): Tensor {
    if (maskInput && maskInput.data.length !== LOW_RES_SIDE * LOW_RES_SIDE) {
      throw new Error(`Expected [1,1,256,256] for maskInput but received [${maskInput.dims.join(",")}]`);
    }
    const tokenMajor = maskInput ? this.maskEmbedding(maskInput.data) : this.noMaskEmbedding();
    return {
      data: channelsLast(tokenMajor, GRID_TOKENS, this.embedDim),
      dims: [1, this.embedDim, GRID_SIDE, GRID_SIDE],
    };
  }

  /** Sparse prompt tokens `[N, C]` (§2.2) with SA's ONNX labelling rule. */
  private sparseTokens(coords: Float32Array, labels: Float32Array, n: number): Float32Array {
    const c = this.embedDim;
    const out = new Float32Array(n * c);
    for (let i = 0; i < n; i++) {
      const label = labels[i]!;
      if (label === -1) {
        // Padding point: its PE is replaced, not added to (§2.2, §9 item 6).
        out.set(this.notAPoint, i * c);
        continue;
      }
      // The +0.5 pixel-centre shift happens here, after the 1024-frame scaling, and both axes
      // divide by 1024 (§2.2, §9 item 4).
      const u = (coords[2 * i]! + 0.5) / ENCODER_SIDE;
      const v = (coords[2 * i + 1]! + 0.5) / ENCODER_SIDE;
      const e = pointEncoding(this.g, u, v);
      const extra = Number.isInteger(label) && label >= 0 && label <= 3 ? this.pointEmbed[label] : undefined;
      for (let k = 0; k < c; k++) out[i * c + k] = e[k]! + (extra ? extra[k]! : 0);
    }
    return out;
  }

  /** Dense prompt without a mask: `no_mask_embed` at every cell, token-major `[4096, C]` (§2.3). */
  private noMaskEmbedding(): Float32Array {
    const c = this.embedDim;
    const out = new Float32Array(GRID_TOKENS * c);
    for (let p = 0; p < GRID_TOKENS; p++) out.set(this.noMask, p * c);
    return out;
  }

  /** Dense prompt from a `[256, 256]` logit mask: conv/LN2d/GELU ×2, then 1×1 conv (§2.3). */
  private maskEmbedding(mask: Float32Array): Float32Array {
    const s1 = LOW_RES_SIDE / 2;
    const c1 = this.maskConv1.out;
    const x1 = new Float32Array(s1 * s1 * c1); // channel-last [128·128, 4]
    const patch1 = new Float32Array(4);
    for (let i = 0; i < s1; i++) {
      for (let j = 0; j < s1; j++) {
        // Conv2d weight [out, in, a, b]: with in = 1 the patch order is (a, b).
        patch1[0] = mask[2 * i * LOW_RES_SIDE + 2 * j]!;
        patch1[1] = mask[2 * i * LOW_RES_SIDE + 2 * j + 1]!;
        patch1[2] = mask[(2 * i + 1) * LOW_RES_SIDE + 2 * j]!;
        patch1[3] = mask[(2 * i + 1) * LOW_RES_SIDE + 2 * j + 1]!;
        const o = (i * s1 + j) * c1;
        for (let ch = 0; ch < c1; ch++)
          x1[o + ch] = dot(patch1, 0, this.maskConv1.w, ch * 4, 4) + this.maskConv1.b[ch]!;
      }
    }
    geluInPlace(layerNormRows(x1, s1 * s1, c1, this.maskNorm1, this.eps2d));

    const c2 = this.maskConv2.out;
    const x2 = new Float32Array(GRID_TOKENS * c2); // channel-last [4096, 16]
    const patch2 = new Float32Array(c1 * 4); // order (in, a, b) as the weight's
    for (let i = 0; i < GRID_SIDE; i++) {
      for (let j = 0; j < GRID_SIDE; j++) {
        for (let ch = 0; ch < c1; ch++) {
          for (let a = 0; a < 2; a++) {
            for (let b = 0; b < 2; b++) {
              patch2[ch * 4 + a * 2 + b] = x1[((2 * i + a) * s1 + 2 * j + b) * c1 + ch]!;
            }
          }
        }
        const o = (i * GRID_SIDE + j) * c2;
        for (let ch = 0; ch < c2; ch++) {
          x2[o + ch] = dot(patch2, 0, this.maskConv2.w, ch * c1 * 4, c1 * 4) + this.maskConv2.b[ch]!;
        }
      }
    }
    geluInPlace(layerNormRows(x2, GRID_TOKENS, c2, this.maskNorm2, this.eps2d));
    return linear(x2, GRID_TOKENS, this.maskConv3); // 1×1 conv = per-pixel linear → [4096, C]
  }

  /** Two-way transformer with the PerSAM hooks (§3.3–§3.5). */
  private transformer(
    tokens: Float32Array,
    nt: number,
    src: Float32Array,
    attnSim: Float32Array | undefined,
    target: Float32Array | undefined,
  ): { hs: Float32Array; keys: Float32Array } {
    const c = this.embedDim;
    const eps = this.eps;
    // PS adds t in place to the tensor that is also the query PE, so QP = T + t everywhere
    // (including the final attention) and block 0 starts from T + t (§3.5).
    const queryPe = target ? addRow(tokens, target) : tokens;
    const keyPe = this.imagePe;
    let q = queryPe;
    let k = src;
    for (let l = 0; l < this.blocks.length; l++) {
      const b = this.blocks[l]!;
      // Block 1's input gets t added again, on a fresh tensor this time (§3.5).
      if (l > 0 && target) q = addRow(q, target);
      if (l === 0) {
        // skip_first_layer_pe: no PE and no residual in the first self-attention (§9 item 9).
        q = samAttention(q, nt, q, q, nt, b.selfAttn);
      } else {
        const qq = add(q, queryPe);
        q = add(q, samAttention(qq, nt, qq, q, nt, b.selfAttn));
      }
      layerNormRows(q, nt, c, b.norm1, eps);

      const kk = add(k, keyPe);
      // Only this attention gets attn_sim, in both blocks (§3.2, §9 item 14).
      q = add(q, samAttention(add(q, queryPe), nt, kk, k, GRID_TOKENS, b.tokenToImage, attnSim));
      layerNormRows(q, nt, c, b.norm2, eps);

      q = add(q, linear(relu(linear(q, nt, b.lin1)), nt, b.lin2));
      layerNormRows(q, nt, c, b.norm3, eps);

      // Image tokens are the queries here; the value is the token state Q, not Q + QP (§9 item 10).
      k = add(k, samAttention(kk, GRID_TOKENS, add(q, queryPe), q, nt, b.imageToToken));
      layerNormRows(k, GRID_TOKENS, c, b.norm4, eps);
    }
    // PS's final query is Q + QP + t = Q + T + 2t (§3.5); HF would give Q + T + t.
    let fq = add(q, queryPe);
    if (target) fq = addRow(fq, target);
    q = add(q, samAttention(fq, nt, add(k, keyPe), k, GRID_TOKENS, this.finalAttn));
    layerNormRows(q, nt, c, this.finalNorm, eps);
    return { hs: q, keys: k };
  }

  /** Upscaling, hypernetworks, masks and IoU (§3.6); all four outputs, unselected. */
  private predict(hs: Float32Array, keys: Float32Array): DecoderOutputs {
    const c = this.embedDim;
    // ConvTranspose k=2 s=2 is non-overlapping: each input pixel writes its own 2×2 block.
    const s1 = GRID_SIDE * 2;
    const c1 = this.up1.out / 4;
    const x1 = convTranspose2x2(keys, GRID_SIDE, this.up1); // channel-last [128·128, C/4]
    geluInPlace(layerNormRows(x1, s1 * s1, c1, this.upNorm, this.eps2d));
    const c2 = this.up2.out / 4;
    const up = geluInPlace(convTranspose2x2(x1, s1, this.up2)); // [256·256, C/8], no norm

    const hyper = new Float32Array(NUM_MASK_TOKENS * c2);
    for (let i = 0; i < NUM_MASK_TOKENS; i++) {
      hyper.set(runHead(this.hypernetworks[i]!, hs.subarray((1 + i) * c, (2 + i) * c)), i * c2);
    }
    const pixels = LOW_RES_SIDE * LOW_RES_SIDE;
    const masks = new Float32Array(NUM_MASK_TOKENS * pixels);
    for (let p = 0; p < pixels; p++) {
      for (let i = 0; i < NUM_MASK_TOKENS; i++) masks[i * pixels + p] = dot(hyper, i * c2, up, p * c2, c2);
    }
    const iou = runHead(this.iouHead, hs.subarray(0, c));
    return {
      lowResMasks: { data: masks, dims: [1, NUM_MASK_TOKENS, LOW_RES_SIDE, LOW_RES_SIDE] },
      iouScores: iou,
    };
  }
}

/** Transpose `[c, p]` → `[p, c]` (channel-first ↔ channel-last). */
function channelsLast(x: Float32Array, c: number, p: number): Float32Array {
  const out = new Float32Array(c * p);
  for (let ch = 0; ch < c; ch++) for (let i = 0; i < p; i++) out[i * c + ch] = x[ch * p + i]!;
  return out;
}

/**
 * `out[o, 2i+a, 2j+b] = bias[o] + Σ_c x[c,i,j]·W[c,o,a,b]` (§3.6 step 2) on channel-last data;
 * `l` holds W re-laid as rows `o·4 + a·2 + b` with the bias repeated per row. Non-overlapping, so
 * it is a per-pixel linear map followed by depth-to-space.
 */
function convTranspose2x2(x: Float32Array, side: number, l: Linear): Float32Array {
  const cout = l.out / 4;
  const outSide = side * 2;
  const z = linear(x, side * side, l); // [side², (o, a, b)]
  const y = new Float32Array(outSide * outSide * cout);
  for (let i = 0; i < side; i++) {
    for (let j = 0; j < side; j++) {
      const zo = (i * side + j) * l.out;
      for (let o = 0; o < cout; o++) {
        for (let a = 0; a < 2; a++) {
          for (let b = 0; b < 2; b++)
            y[((2 * i + a) * outSide + 2 * j + b) * cout + o] = z[zo + o * 4 + a * 2 + b]!;
        }
      }
    }
  }
  return y;
}

/** 3-layer MLP head: Linear, ReLU, Linear, ReLU, Linear (no sigmoid; §3.6 steps 4, 6). */
function runHead(h: Head, x: Float32Array): Float32Array {
  const [a, b, c] = h;
  return linear(relu(linear(relu(linear(x, 1, a)), 1, b)), 1, c);
}
