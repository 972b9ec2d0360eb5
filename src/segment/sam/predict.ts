// Plain SAM prediction on an encoded photo (no PerSAM hooks): prompt → decoder → masks at the
// photo's size, as SAM's predictor returns them (persam-spec §3.6, §4).

import { argmax, type Box, type Tensor } from "../../util/tensor.js";
import { selectOutputs } from "./decoder-session.js";
import type { MaskDecoder } from "./decoder-types.js";
import { promptPoints, type SamPrompt } from "./prompt.js";
import { LowResField } from "./region-upsample.js";
import { LOW_RES_SIDE } from "./sam-constants.js";
import type { EncodedPhoto } from "./sam-model.js";

/** One predicted mask. */
export interface PredictedMask {
  /** Binary mask `H × W`, 1 = subject. */
  readonly mask: Uint8Array;
  /** Number of subject pixels of `mask` (as `maskArea`). */
  readonly area: number;
  /** Inclusive extents `[x_min, y_min, x_max, y_max]` of `mask` (as `maskBox`), undefined when empty. */
  readonly box: Box | undefined;
  /** The decoder's IoU prediction for it. */
  readonly score: number;
  /** Raw low-res logits `[256 × 256]` (the padded 1024 frame at ¼ scale), for feeding back. */
  readonly lowRes: Float32Array;
  /** Index of the decoder's mask token (0 single-mask, 1..3 multimask). */
  readonly token: number;
}

/** Options of {@link predictMasks}. */
export interface PredictParams {
  readonly decoder: MaskDecoder;
  readonly image: EncodedPhoto;
  readonly prompt: SamPrompt;
  /**
   * Return SAM's three multimask outputs (tokens 1..3) instead of the single-mask output (token 0).
   * @default true
   */
  readonly multimask?: boolean;
  /** Raw low-res logits of a previous prediction, `[1,1,256,256]`. */
  readonly maskInput?: Tensor | undefined;
}

/** Predicted masks, best (highest IoU prediction, first on ties) first in `best`. */
export interface Prediction {
  readonly masks: readonly PredictedMask[];
  readonly best: number;
}

/** Run SAM on one photo with a prompt and up-sample the selected masks to the photo's size. */
export async function predictMasks(params: PredictParams): Promise<Prediction> {
  const { image, decoder } = params;
  const points = promptPoints(params.prompt, image.originalSize, image.inputSize);
  const out = await decoder.run({
    imageEmbeddings: image.embedding,
    pointCoords: points.pointCoords,
    pointLabels: points.pointLabels,
    maskInput: params.maskInput,
  });
  const selected = selectOutputs(out, params.multimask ?? true);
  const plane = LOW_RES_SIDE * LOW_RES_SIDE;
  const masks = selected.indices.map((token, i) => {
    const lowRes = out.lowResMasks.data.slice(token * plane, (token + 1) * plane);
    // thresholdMask(lowResToOriginal(·)) with maskArea and maskBox, bit for bit, without the 12 MP
    // float plane or a rescan of the mask (region-upsample.ts).
    const { mask, area, box } = new LowResField(lowRes, image.inputSize, image.originalSize).threshold();
    return { mask, area, box, score: selected.scores[i]!, lowRes, token };
  });
  return { masks, best: argmax(selected.scores) };
}
