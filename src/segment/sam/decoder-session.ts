// The decoder graph of decoder-graph.ts as an onnxruntime session: build (or reuse the prepared graph
// of the model cache), check its interface, run one pass with the PerSAM extras defaulted to plain SAM.

import type { Tensor } from "../../util/tensor.js";
import { buildDecoderGraph, DECODER_GRAPH_VERSION } from "./decoder-graph.js";
import {
  DECODER_IO,
  type DecoderInputs,
  type DecoderOutputs,
  type DecoderWeights,
  type MaskDecoder,
} from "./decoder-types.js";
import type { ModelCache } from "./model-cache.js";
import {
  createSession,
  fromOrt,
  ioTypes,
  type OrtSession,
  type OrtTensor,
  ortFloat32,
  toOrtFloat32,
} from "./ort.js";
import { GRID_SIDE, GRID_TOKENS, LOW_RES_SIDE, NUM_MASK_TOKENS } from "./sam-constants.js";

/** Options of {@link SamDecoder.create}. */
export interface SamDecoderOptions {
  /** Prompt-encoder + mask-decoder weights in HF naming (persam-spec §10); or `loadWeights`. */
  readonly weights?: DecoderWeights | undefined;
  /**
   * Reads the weights when the graph must be built: with a model cache that holds the graph
   * already, they are never read.
   */
  readonly loadWeights?: (() => Promise<DecoderWeights>) | undefined;
  /**
   * Intra-op threads of the session.
   * @default 0 (onnxruntime's choice)
   */
  readonly threads?: number;
  /**
   * Keep the built graph, optimised by onnxruntime, in this cache under `cacheKey` and open it from
   * there next time (model-cache.ts). Used only together with `cacheKey`; without both, the graph
   * is built and optimised on every create.
   */
  readonly modelCache?: ModelCache | undefined;
  /** What identifies the weights (the caller's: a hash of them or of their file), keying the cached graph. */
  readonly cacheKey?: string | undefined;
  /**
   * Epsilon of the transformer LayerNorms.
   * @default 1e-5 (PS; see buildDecoderGraph)
   */
  readonly transformerLayerNormEps?: number;
}

/**
 * Names of DECODER_IO that a session lacks, as one message, or undefined when all are there
 * (everything missing is listed at once, not just the first).
 */
export function missingDecoderNames(
  inputNames: readonly string[],
  outputNames: readonly string[],
): string | undefined {
  const missingIn = Object.values(DECODER_IO.inputs).filter((n) => !inputNames.includes(n));
  const missingOut = Object.values(DECODER_IO.outputs).filter((n) => !outputNames.includes(n));
  if (missingIn.length === 0 && missingOut.length === 0) return undefined;
  const parts: string[] = [];
  if (missingIn.length > 0) parts.push(`inputs ${missingIn.join(", ")}`);
  if (missingOut.length > 0) parts.push(`outputs ${missingOut.join(", ")}`);
  return `missing ${parts.join(" and ")}`;
}

/** Width C from the weights (the IoU token is `[1, C]`). */
function embedDimOf(weights: DecoderWeights): number {
  const dims = weights.get("mask_decoder.iou_token.weight")?.dims;
  const c = dims?.[1];
  if (dims?.length !== 2 || c === undefined) {
    throw new Error(
      `Expected [1,C] for decoder weight mask_decoder.iou_token.weight but received ${dims ? `[${dims.join(",")}]` : "none"}`,
    );
  }
  return c;
}

/**
 * SAM's prompt encoder + mask decoder with the PerSAM hooks, as an onnxruntime session over our
 * own graph. Create with {@link SamDecoder.create}; call {@link dispose} when done.
 */
export class SamDecoder implements MaskDecoder {
  private readonly zeroMask: OrtTensor;
  private readonly zeroSim: OrtTensor;
  private readonly zeroTarget: OrtTensor;
  private readonly flagOn: OrtTensor;
  private readonly flagOff: OrtTensor;

  private constructor(
    private readonly session: OrtSession,
    readonly embedDim: number,
  ) {
    this.zeroMask = ortFloat32(new Float32Array(LOW_RES_SIDE * LOW_RES_SIDE), [
      1,
      1,
      LOW_RES_SIDE,
      LOW_RES_SIDE,
    ]);
    this.zeroSim = ortFloat32(new Float32Array(GRID_TOKENS), [1, 1, 1, GRID_TOKENS]);
    this.zeroTarget = ortFloat32(new Float32Array(embedDim), [1, 1, embedDim]);
    this.flagOn = ortFloat32(new Float32Array([1]), [1]);
    this.flagOff = ortFloat32(new Float32Array([0]), [1]);
  }

  /**
   * Build the decoder graph from `weights` (or reuse the prepared graph cached for `cacheKey`) and
   * open it. A cached graph that is damaged or that onnxruntime cannot load is rebuilt.
   * @throws Error when a weight is missing or mis-shaped, or the session lacks a DECODER_IO name.
   */
  static async create(options: SamDecoderOptions): Promise<SamDecoder> {
    const sessionOptions = options.threads === undefined ? {} : { threads: options.threads };
    const eps = options.transformerLayerNormEps;
    const weights = async (): Promise<DecoderWeights> => {
      if (options.weights) return options.weights;
      if (options.loadWeights) return options.loadWeights();
      throw new Error("Expected weights or loadWeights for SamDecoder.create but received neither");
    };
    const build = async () =>
      buildDecoderGraph(await weights(), eps === undefined ? {} : { transformerLayerNormEps: eps });
    const { modelCache, cacheKey } = options;
    const session =
      modelCache?.enabled && cacheKey !== undefined
        ? (
            await modelCache.open({
              key: `decoder\n${cacheKey}\ngraph=${DECODER_GRAPH_VERSION}\neps=${eps ?? 1e-5}`,
              options: sessionOptions,
              derive: async (create) => ({ session: await create(await build()), meta: {} }),
            })
          ).session
        : await createSession(await build(), sessionOptions);
    const missing = missingDecoderNames(session.inputNames, session.outputNames);
    if (missing !== undefined) {
      await session.release();
      throw new Error(`The decoder graph does not match DECODER_IO: ${missing}`);
    }
    const embedDim = options.weights ? embedDimOf(options.weights) : sessionEmbedDim(session);
    return new SamDecoder(session, embedDim);
  }

  /**
   * One decoder pass. Absent PerSAM extras mean plain SAM: zero mask with has_mask_input 0,
   * zero attn_sim with has_attn_sim 0, zero target embedding.
   * @throws Error when an input has the wrong size (checked before any native work).
   */
  async run(inputs: DecoderInputs): Promise<DecoderOutputs> {
    const c = this.embedDim;
    checkDims("imageEmbeddings", inputs.imageEmbeddings, [1, c, GRID_SIDE, GRID_SIDE]);
    const n = inputs.pointLabels.length;
    if (inputs.pointCoords.length !== 2 * n) {
      throw new Error(
        `Expected ${2 * n} values (2 per label) for pointCoords but received ${inputs.pointCoords.length}`,
      );
    }
    if (inputs.maskInput) checkDims("maskInput", inputs.maskInput, [1, 1, LOW_RES_SIDE, LOW_RES_SIDE]);
    if (inputs.attnSim && inputs.attnSim.length !== GRID_TOKENS) {
      throw new Error(`Expected ${GRID_TOKENS} values for attnSim but received ${inputs.attnSim.length}`);
    }
    if (inputs.targetEmbedding && inputs.targetEmbedding.length !== c) {
      throw new Error(
        `Expected ${c} values for targetEmbedding but received ${inputs.targetEmbedding.length}`,
      );
    }
    const io = DECODER_IO.inputs;
    const feeds: Record<string, OrtTensor> = {
      [io.imageEmbeddings]: toOrtFloat32(inputs.imageEmbeddings),
      [io.pointCoords]: ortFloat32(inputs.pointCoords, [1, n, 2]),
      [io.pointLabels]: ortFloat32(inputs.pointLabels, [1, n]),
      [io.maskInput]: inputs.maskInput ? toOrtFloat32(inputs.maskInput) : this.zeroMask,
      [io.hasMaskInput]: inputs.maskInput ? this.flagOn : this.flagOff,
      [io.attnSim]: inputs.attnSim ? ortFloat32(inputs.attnSim, [1, 1, 1, GRID_TOKENS]) : this.zeroSim,
      [io.hasAttnSim]: inputs.attnSim ? this.flagOn : this.flagOff,
      [io.targetEmbedding]: inputs.targetEmbedding
        ? ortFloat32(inputs.targetEmbedding, [1, 1, c])
        : this.zeroTarget,
    };
    const out = await this.session.run(feeds);
    const masks = fromOrt(out[DECODER_IO.outputs.lowResMasks]!);
    const iou = fromOrt(out[DECODER_IO.outputs.iouPredictions]!);
    return { lowResMasks: masks, iouScores: iou.data };
  }

  /** Release the session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Width C from a built graph: its `target_embedding` input is `[1, 1, C]`. */
function sessionEmbedDim(session: OrtSession): number {
  const c = ioTypes(session, "inputs").get(DECODER_IO.inputs.targetEmbedding)?.dims[2];
  if (typeof c !== "number") throw new Error(`Expected [1,1,C] for the decoder graph's target_embedding`);
  return c;
}

function checkDims(name: string, t: Tensor, dims: readonly number[]): void {
  if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
    throw new Error(`Expected [${dims.join(",")}] for ${name} but received [${t.dims.join(",")}]`);
  }
}

/** The outputs a SAM predictor returns for a multimask flag (persam-spec §3.6 step 7). */
export interface SelectedOutputs {
  /** Mask-token indices: 1, 2, 3 for multimask, else 0. */
  readonly indices: readonly number[];
  /** The IoU predictions of those tokens, same order. */
  readonly scores: Float32Array;
}

/**
 * Pick SAM's outputs: multimask → tokens 1..3, single → token 0 (persam-spec §3.6, §9 item 8).
 * @throws Error when the outputs do not hold all four tokens.
 */
export function selectOutputs(out: DecoderOutputs, multimask: boolean): SelectedOutputs {
  if (out.iouScores.length !== NUM_MASK_TOKENS) {
    throw new Error(`Expected ${NUM_MASK_TOKENS} IoU predictions but received ${out.iouScores.length}`);
  }
  const indices = multimask ? [1, 2, 3] : [0];
  return { indices, scores: Float32Array.from(indices, (i) => out.iouScores[i]!) };
}
