// The contract between PerSAM code and any implementation of SAM's prompt encoder + mask decoder:
// the ONNX graph we build (decoder-graph.ts, run by decoder-session.ts) and the plain TypeScript
// reference (reference-decoder.ts). Both take exactly these inputs and give exactly these outputs.

import type { Tensor } from "../../util/tensor.js";

/**
 * Inputs of one decoder pass (persam-spec §2, §3, §6). Coordinates are in the 1024 frame *before*
 * the +0.5 shift (the decoder adds it). The caller appends the padding point (label −1) itself when
 * there is no box (§2.2); box corners are points with labels 2 and 3.
 */
export interface DecoderInputs {
  /** `[1, C, 64, 64]` image embedding from the encoder. */
  readonly imageEmbeddings: Tensor;
  /** `N × 2` flattened `(x, y)` pairs, 1024 frame. */
  readonly pointCoords: Float32Array;
  /** `N` labels: −1 padding, 0 negative, 1 positive, 2 box top-left, 3 box bottom-right. */
  readonly pointLabels: Float32Array;
  /** Optional `[1, 1, 256, 256]` raw low-res logits from a previous pass (§4.3). */
  readonly maskInput?: Tensor | undefined;
  /** Optional PerSAM target-guided attention, 4096 values in (0, 1) (§3.2, §7.2.5). */
  readonly attnSim?: Float32Array | undefined;
  /** Optional PerSAM target-semantic prompt, C values (§3.5); absent = zero = plain SAM. */
  readonly targetEmbedding?: Float32Array | undefined;
}

/** Outputs of one decoder pass: all four mask tokens, unselected (§3.6). */
export interface DecoderOutputs {
  /** `[1, 4, 256, 256]` low-res mask logits (token 0 = single-mask output, 1..3 = multimask). */
  readonly lowResMasks: Tensor;
  /** 4 raw IoU predictions, same order. */
  readonly iouScores: Float32Array;
}

/** Anything that runs a decoder pass (the ONNX session, or the reference in tests). */
export interface MaskDecoder {
  /** Width C of the embedding the decoder expects. */
  readonly embedDim: number;
  run(inputs: DecoderInputs): Promise<DecoderOutputs>;
}

/**
 * Decoder weights in Hugging Face transformers naming (persam-spec §10): keys such as
 * `mask_decoder.iou_token.weight`, `prompt_encoder.point_embed.0.weight`, and the Gaussian matrix
 * under `shared_image_embedding.positional_embedding` (or the tied
 * `prompt_encoder.shared_embedding.positional_embedding`). PyTorch shapes (Linear is `[out, in]`).
 */
export type DecoderWeights = ReadonlyMap<string, Tensor>;

/** Names of the ONNX decoder graph's inputs and outputs (our own graph; §6 plus PerSAM extras). */
export const DECODER_IO = {
  inputs: {
    imageEmbeddings: "image_embeddings", // [1,C,64,64]
    pointCoords: "point_coords", // [1,N,2]
    pointLabels: "point_labels", // [1,N]
    maskInput: "mask_input", // [1,1,256,256]
    hasMaskInput: "has_mask_input", // [1]
    attnSim: "attn_sim", // [1,1,1,4096]
    hasAttnSim: "has_attn_sim", // [1]
    targetEmbedding: "target_embedding", // [1,1,C]
  },
  outputs: {
    lowResMasks: "low_res_masks", // [1,4,256,256]
    iouPredictions: "iou_predictions", // [1,4]
  },
} as const;
