// The per-photo files of `prepare`: training image, mask, loss weights, RGBA and caption, all cut from
// one crop and resized to one size so they stay pixel-aligned, each written atomically (design §5).

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { encodePng, encodePngWithAlpha, photoSize, type RgbImage } from "../image/image-io.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import {
  type Background,
  DEFAULT_BACKGROUND,
  edgeAlpha,
  noiseSeed,
  suppressBackground,
} from "./background.js";
import { type CropRect, cropAndResize, outputSize } from "./crop.js";
import { type MetadataRow, metadataRow } from "./metadata.js";
import { type FileRecord, recordOf } from "./prepare-state.js";
import type { ReportOutputs } from "./report.js";
import { DEFAULT_BG_WEIGHT, DEFAULT_FEATHER, featherAlpha, lossWeightMap } from "./weight-map.js";

/**
 * Sub-folders of the output folder. `images/` holds images only: diffusers' DreamBooth scripts load
 * every file of the instance folder as an image, so captions live in `captions/` and metadata.jsonl.
 */
export const OUTPUT_FOLDERS = {
  images: "images",
  masks: "masks",
  weights: "weights",
  rgba: "rgba",
  captions: "captions",
} as const;

/** Parameters of {@link writePhotoOutputs}. */
export interface WritePhotoOutputsParams {
  /** The output folder (`my-cat.persam/`); sub-folders are created as needed. */
  readonly outDir: string;
  /** Output file stem from the scan: one path segment, no separators, not hidden. */
  readonly stem: string;
  /** The upright RGB photo: in full, or decoded reduced (`photo.scaledFrom`). */
  readonly photo: RgbImage;
  /** PerSAM's full-resolution binary mask (non-zero = subject), at the photo's own size. */
  readonly mask: Uint8Array;
  /**
   * The training crop, in photo pixels (see subjectCrop); on the decode's grid for a reduced photo
   * (see snapToDecodedGrid).
   */
  readonly crop: CropRect;
  /** The crop whose aspect sets the output size, when `crop` was snapped. @default crop */
  readonly sizeFrom?: CropRect;
  /** Training resolution: the shorter output side (see outputSize). */
  readonly resolution: number;
  /** @default DEFAULT_BACKGROUND ("white") */
  readonly background?: Background;
  /** Background floor of the loss-weight map. @default 0.1 */
  readonly bgWeight?: number;
  /** Soft edge of the loss-weight map in output pixels (images/ keeps a clean edge). @default 8 */
  readonly feather?: number;
  /** The caption (see caption()). */
  readonly caption: string;
  /** PerSAM's confidence in [0, 1], copied into the metadata row. */
  readonly confidence: number;
  /** Diagnostics flags copied into the metadata row. @default [] */
  readonly flags?: readonly string[];
  /** Seed of the `noise` background. @default a hash of `stem` (each photo differs, reruns agree) */
  readonly seed?: number;
}

/** What {@link writePhotoOutputs} wrote. */
export interface PhotoOutputs {
  /** The metadata.jsonl row (paths relative to `outDir`). */
  readonly row: MetadataRow;
  /** The files, relative to `outDir` with `/` separators. */
  readonly files: ReportOutputs;
  /** sha256 and size of each file written, by its path in `files` (hashed from memory, not re-read). */
  readonly records: Readonly<Record<string, FileRecord>>;
  /** Size shared by every image of this photo. */
  readonly width: number;
  readonly height: number;
  /** Fraction of the output image covered by the mask. */
  readonly maskArea: number;
}

function checkStem(stem: string): void {
  if (stem === "" || stem.startsWith(".") || /[/\\\0]/.test(stem)) {
    throw new RangeError(
      `Expected a file stem without separators or leading dot for stem but received ${JSON.stringify(stem)}`,
    );
  }
}

/**
 * Crop and resize one photo and its mask, then write, each through writeFileAtomic:
 * - `images/<stem>.png`: background suppressed (RGB; RGBA for `transparent`), composited through
 *   the mask with an anti-aliased edge at most one pixel wide each side (background.ts, edgeAlpha),
 *   never through the feather;
 * - `masks/<stem>.png`: binary mask, grey 0/255;
 * - `weights/<stem>.png`: 8-bit loss weights (255 subject, floor `bgWeight`, feathered edge);
 * - `rgba/<stem>.png`: the original photo pixels with alpha = the weight map; where alpha is 0 the RGB
 *   is the suppressed background, so a tool that drops or premultiplies alpha sees no stray pixels;
 * - `captions/<stem>.txt`: the caption, exactly (no newline).
 * All four PNGs have the same size; the mask goes through the photo's resize (cropAndResize) and the
 * weights and the compositing edge are computed from that resized mask, so they line up with the image.
 * @throws RangeError for a bad stem, mask size or crop; file-system errors from the writes.
 */
export async function writePhotoOutputs(params: WritePhotoOutputsParams): Promise<PhotoOutputs> {
  const { outDir, stem, photo, crop, resolution } = params;
  checkStem(stem);
  const full = photoSize(photo);
  if (params.mask.length !== full.width * full.height) {
    throw new RangeError(
      `Expected ${full.width * full.height} mask values (${full.width}×${full.height}) for mask but received ${params.mask.length}`,
    );
  }
  const feather = params.feather ?? DEFAULT_FEATHER;
  const { width, height } = outputSize(params.sizeFrom ?? crop, resolution);
  const { image, mask, coverage } = await cropAndResize({
    image: photo,
    mask: params.mask,
    crop,
    width,
    height,
  });

  // One feathered alpha (one distance transform) for the weight map and the band a blurred
  // background leaves out; images/ is composited through the clean edge, not through it.
  const alpha = featherAlpha({ mask, width, height, feather });
  const weights = lossWeightMap({
    mask,
    width,
    height,
    bgWeight: params.bgWeight ?? DEFAULT_BG_WEIGHT,
    feather,
    alpha,
  });
  const suppressed = suppressBackground({
    image,
    mask,
    background: params.background ?? DEFAULT_BACKGROUND,
    edge: edgeAlpha({ mask, coverage, width, height }),
    feather,
    seed: params.seed ?? noiseSeed(stem),
    alpha,
  });

  const n = width * height;
  const maskBytes = new Uint8Array(n);
  let area = 0;
  for (let i = 0; i < n; i++) {
    if (mask[i]) {
      maskBytes[i] = 255;
      area++;
    }
  }
  // The RGBA file: the photo's pixels with alpha = weights, the suppressed background where the
  // weight is 0. With a background weight above 0 (the default) no weight is 0, so sharp joins the
  // photo and the weights itself, without an interleaved copy made here.
  let rgbaEncoding: Promise<Buffer>;
  if (image.channels === 3 && !weights.includes(0)) {
    rgbaEncoding = encodePngWithAlpha(image, weights);
  } else {
    const rgba = new Uint8Array(n * 4);
    const ic = image.channels;
    const sc = suppressed.channels;
    for (let i = 0; i < n; i++) {
      const w = weights[i]!;
      const src = w > 0 ? image.data : suppressed.data;
      const at = w > 0 ? i * ic : i * sc;
      rgba[4 * i] = src[at]!;
      rgba[4 * i + 1] = src[at + 1]!;
      rgba[4 * i + 2] = src[at + 2]!;
      rgba[4 * i + 3] = w;
    }
    rgbaEncoding = encodePng({ data: rgba, width, height, channels: 4 });
  }

  const files: ReportOutputs = {
    image: `${OUTPUT_FOLDERS.images}/${stem}.png`,
    mask: `${OUTPUT_FOLDERS.masks}/${stem}.png`,
    weight: `${OUTPUT_FOLDERS.weights}/${stem}.png`,
    rgba: `${OUTPUT_FOLDERS.rgba}/${stem}.png`,
    caption: `${OUTPUT_FOLDERS.captions}/${stem}.txt`,
  };
  const row = metadataRow({
    file_name: files.image,
    mask_file_name: files.mask,
    weight_file_name: files.weight,
    rgba_file_name: files.rgba,
    text: params.caption,
    confidence: params.confidence,
    ...(params.flags === undefined ? {} : { flags: params.flags }),
  });
  const [imagePng, maskPng, weightPng, rgbaPng] = await Promise.all([
    encodePng(suppressed),
    encodePng({ data: maskBytes, width, height, channels: 1 }),
    encodePng({ data: weights, width, height, channels: 1 }),
    rgbaEncoding,
  ]);
  const contents: [string, Uint8Array | string][] = [
    [files.image, imagePng],
    [files.mask, maskPng],
    [files.weight, weightPng],
    [files.rgba, rgbaPng],
    [files.caption, params.caption],
  ];
  await Promise.all(Object.values(OUTPUT_FOLDERS).map((f) => mkdir(join(outDir, f), { recursive: true })));
  await Promise.all(contents.map(([rel, data]) => writeFileAtomic(join(outDir, rel), data)));
  const records = Object.fromEntries(contents.map(([rel, data]) => [rel, recordOf(data)]));

  return { row, files, records, width, height, maskArea: area / n };
}
