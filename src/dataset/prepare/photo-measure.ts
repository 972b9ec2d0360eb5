// A photo's curation measures, taken by the per-photo stage from the pixels and mask it already has
// (no extra decode): the subject's sharpness and box, the picture's hash, the subject's feature.

import { photoSize, type RgbImage } from "../../image/image-io.js";
import type { PhotoEncoder } from "../../segment/sam/photo-encoder.js";
import { maskBox } from "../../segment/sam/postprocess.js";
import type { Box } from "../../util/tensor.js";
import { differenceHash, sharpness, subjectFeature } from "../curation.js";
import type { PhotoState } from "../prepare-state.js";
import type { ScannedPhoto } from "../scan.js";

/** The measures as the state keeps them. */
export type PhotoMeasureRecord = NonNullable<PhotoState["curation"]>;

/**
 * The curation measures of a photo from its decoded pixels and mask: the subject's sharpness and box,
 * the picture's hash and, when the encoder is at hand (the embedding is still in its memory), the
 * subject's feature.
 */
export async function measurePhoto(
  encoder: PhotoEncoder | undefined,
  photo: ScannedPhoto,
  image: RgbImage,
  mask: Uint8Array,
): Promise<PhotoMeasureRecord> {
  // The mask and the box are in the photo's pixels; a reduced decode's pixels are 1/factor of them.
  const { width, height } = photoSize(image);
  const box = maskBox(mask, width, height);
  let feature: number[] | undefined;
  if (encoder && box) {
    const { encoded } = await encoder.encode({ path: photo.path, sha256: photo.sha256, image });
    const f = subjectFeature(encoded.embedding, encoded.inputSize, mask, width, height);
    if (f) feature = Array.from(f, (v) => Math.round(v * 1e4) / 1e4);
  }
  const factor = image.scaledFrom?.factor ?? 1;
  const pixelBox: Box | undefined =
    box && factor > 1
      ? [
          Math.floor(box[0] / factor),
          Math.floor(box[1] / factor),
          Math.min(image.width - 1, Math.floor(box[2] / factor)),
          Math.min(image.height - 1, Math.floor(box[3] / factor)),
        ]
      : box;
  return {
    sharpness: sharpness(image, pixelBox),
    hash: differenceHash(image),
    width,
    height,
    ...(box ? { box: [box[0], box[1], box[2], box[3]] as [number, number, number, number] } : {}),
    ...(feature ? { feature } : {}),
  };
}
