// SAM's decoder on a photo's cached embedding, for the review page: the three multimask outputs of a
// prompt thresholded at display size (the overlay the page shows at once), and the chosen one at the
// photo's full size when it is accepted. The same logits give both (persam-spec §4.1), so what is
// accepted is what was shown, at full resolution.

import { selectOutputs } from "../segment/sam/decoder-session.js";
import type { DecoderOutputs, MaskDecoder } from "../segment/sam/decoder-types.js";
import { promptPoints, type SamPrompt } from "../segment/sam/prompt.js";
import { LowResField, type RegionMask } from "../segment/sam/region-upsample.js";
import { LOW_RES_SIDE } from "../segment/sam/sam-constants.js";
import type { EncodedPhoto } from "../segment/sam/sam-model.js";

/** A width and height in pixels. */
export interface PixelSize {
  readonly width: number;
  readonly height: number;
}

/**
 * The size the page shows a photo at: its own size, shrunk to fit `maxSide` on its longer side.
 * @default maxSide 1280
 */
export function displaySize(photo: PixelSize, maxSide = 1280): PixelSize {
  const scale = Math.min(1, maxSide / Math.max(photo.width, photo.height));
  return {
    width: Math.max(1, Math.round(photo.width * scale)),
    height: Math.max(1, Math.round(photo.height * scale)),
  };
}

/** One of SAM's outputs for a prompt. */
export interface PreviewMask {
  /** The decoder's mask token (1..3: the multimask outputs). */
  readonly token: number;
  /** The decoder's IoU prediction. */
  readonly score: number;
  /** The mask at display size, 0/1. */
  readonly mask: Uint8Array;
  /** Subject pixels of `mask` as a fraction of the display size. */
  readonly area: number;
}

/** Parameters of {@link previewMasks} and {@link acceptedMask}. */
export interface MaskPreviewParams {
  readonly decoder: MaskDecoder;
  readonly image: EncodedPhoto;
  /** Clicks and/or a box in the photo's own pixels. */
  readonly prompt: SamPrompt;
}

function decode(params: MaskPreviewParams): Promise<DecoderOutputs> {
  const { image } = params;
  const points = promptPoints(params.prompt, image.originalSize, image.inputSize);
  return params.decoder.run({
    imageEmbeddings: image.embedding,
    pointCoords: points.pointCoords,
    pointLabels: points.pointLabels,
  });
}

function plane(lowRes: Float32Array, token: number): Float32Array {
  const size = LOW_RES_SIDE * LOW_RES_SIDE;
  return lowRes.subarray(token * size, (token + 1) * size);
}

/**
 * SAM's three multimask outputs for a prompt, each thresholded at `display` size (the photo's size
 * scaled, so the same logits as at full size: §4.1 with the display as the original size).
 */
export async function previewMasks(
  params: MaskPreviewParams & { readonly display: PixelSize },
): Promise<{ readonly masks: readonly PreviewMask[]; readonly best: number }> {
  const out = await decode(params);
  const lowRes = out.lowResMasks.data;
  const selected = selectOutputs(out, true);
  const { width, height } = params.display;
  let best = 0;
  const masks = selected.indices.map((token, i) => {
    const region = new LowResField(plane(lowRes, token), params.image.inputSize, [height, width]).threshold();
    if (selected.scores[i]! > selected.scores[best]!) best = i;
    return { token, score: selected.scores[i]!, mask: region.mask, area: region.area / (width * height) };
  });
  return { masks, best };
}

/**
 * The mask of one decoder token for a prompt at the photo's full size (what an accepted correction
 * stores); without a token, of the multimask output SAM scores best (as {@link previewMasks} picks).
 * @throws RangeError for a token outside 0..3
 */
export async function acceptedMask(
  params: MaskPreviewParams & { readonly token?: number | undefined },
): Promise<{ readonly region: RegionMask; readonly token: number }> {
  const given = params.token;
  if (given !== undefined && (!Number.isInteger(given) || given < 0 || given > 3)) {
    throw new RangeError(`Expected a mask token from 0 to 3 but received ${given}`);
  }
  const out = await decode(params);
  let token = given;
  if (token === undefined) {
    const selected = selectOutputs(out, true);
    let best = 0;
    for (let i = 1; i < selected.indices.length; i++) {
      if (selected.scores[i]! > selected.scores[best]!) best = i;
    }
    token = selected.indices[best]!;
  }
  const region = new LowResField(
    plane(out.lowResMasks.data, token).slice(),
    params.image.inputSize,
    params.image.originalSize,
  ).threshold();
  return { region, token };
}
