// The user's reference choice → PerSAM's target: a mask file, the `<stem>.mask.png` beside a photo,
// clicks / a box drawn into a mask by plain SAM, several of these averaged, or an automatic choice.
// Every mask goes through the same PerSeg red-128 path, so the 64×64 rule of persam-spec §7.1
// applies identically whatever its source (§9.18). Shared by `segment`, `eval` and `prepare`.

import { access } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { isUserError, UserError } from "../../errors.js";
import { loadMaskRed, type MaskKind, type MaskRed, PERSEG_FOREGROUND } from "../../image/image-io.js";
import type { DecodedPhoto } from "../../image/photo-loader.js";
import type { Box, Point } from "../../util/tensor.js";
import type { EmbeddingCache } from "../sam/embedding-cache.js";
import { type EncodedPhotoFile, PhotoEncoder, type PhotoInput } from "../sam/photo-encoder.js";
import { predictMasks } from "../sam/predict.js";
import { referenceMaskGrid } from "../sam/preprocess.js";
import type { Click } from "../sam/prompt.js";
import type { SamModel } from "../sam/sam-model.js";
import {
  type AutoReferenceCandidate,
  type ChooseAutoReferenceParams,
  chooseAutoReference,
} from "./auto-reference.js";
import { adaptPerSamF, type FusionTrainerOptions, type PerSamFAdaptation } from "./persam-f.js";
import { computeReferenceTarget, type ReferenceTarget } from "./target-embedding.js";

/** PerSAM (training-free, §7) or PerSAM-F (two trained fusion weights, §8). */
export type ReferenceMode = "persam" | "persam-f";

/** Suffix of a reference mask stored beside its photo: `cat.jpg` → `cat.mask.png`. */
export const MASK_FILE_SUFFIX = ".mask.png";

/**
 * One reference as the user gave it. With neither a mask nor clicks/box, the mask beside the photo
 * (`<stem>.mask.png`) is used.
 */
export interface ReferenceSpec {
  /** The reference photo. */
  readonly photo: string;
  /** A mask file of the same size as the photo (any format loadMaskRed reads). */
  readonly maskPath?: string | undefined;
  /** Clicks on the subject (label 1) or off it (label 0), in photo pixels. */
  readonly clicks?: readonly Click[] | undefined;
  /** A box around the subject, in photo pixels. */
  readonly box?: Box | undefined;
}

/** Where a reference mask came from. */
export type ReferenceSourceKind = "mask-file" | "mask-beside-photo" | "prompt" | "auto";

/** One reference photo as used. */
export interface ResolvedReferencePhoto {
  readonly photo: string;
  readonly sha256: string;
  readonly source: ReferenceSourceKind;
  /** The mask file (mask-file, mask-beside-photo). */
  readonly maskPath?: string;
  /** How the mask file encoded its foreground (mask-file, mask-beside-photo). */
  readonly maskKind?: MaskKind;
  readonly clicks?: readonly Click[];
  readonly box?: Box;
  /** SAM's IoU prediction for the mask it drew (prompt, auto). */
  readonly promptScore?: number;
  readonly width: number;
  readonly height: number;
  /** The reference mask at the photo's size, 1 = subject. */
  readonly mask: Uint8Array;
  /** Foreground pixels of `mask`. */
  readonly maskArea: number;
  /** The mask on SAM's 64×64 feature grid (§7.1 step 1), 4096 values 0/1. */
  readonly grid: Uint8Array;
  /** Foreground cells of `grid`. */
  readonly gridCells: number;
  /** The photo's encoding (shared with segmentation). */
  readonly encoded: EncodedPhotoFile;
}

/** What the automatic choice considered. */
export interface AutoReferenceReport {
  /** Index into the photos passed to {@link resolveReference}. */
  readonly photoIndex: number;
  readonly score: number;
  readonly candidate: AutoReferenceCandidate;
  readonly candidates: readonly AutoReferenceCandidate[];
  /** Photos left out of the choice because they could not be read, with the reason. */
  readonly unreadable: readonly { readonly photo: string; readonly reason: string }[];
}

/** PerSAM-F's adaptation of each reference and the λ used. */
export interface PerSamFReport {
  /** `[λ₀, λ₁, λ₂]` used for every photo: the single reference's, or the mean over references. */
  readonly lambdas: readonly [number, number, number];
  /** One per reference, in order (each with its λ and loss history). */
  readonly adaptations: readonly PerSamFAdaptation[];
}

/** A reference ready for `segmentPhoto`. */
export interface ResolvedReference {
  readonly mode: ReferenceMode;
  readonly references: readonly ResolvedReferencePhoto[];
  /** Target for PerSAM / PerSAM-F (variant = mode). */
  readonly target: ReferenceTarget;
  /** Present when the reference was chosen automatically. */
  readonly auto?: AutoReferenceReport;
  /** Present in mode persam-f. */
  readonly persamF?: PerSamFReport;
  /**
   * The last photo this step had to decode (to encode it), handed on so that the caller's next step
   * need not decode it again; absent when every embedding was cached or given pixels.
   */
  readonly lastDecoded?: DecodedPhoto;
  /** Milliseconds: encoding, mask drawing / auto choice, PerSAM-F training, total. */
  readonly timings: {
    readonly encodeMs: number;
    readonly maskMs: number;
    readonly adaptMs: number;
    readonly totalMs: number;
  };
}

/** A photo of the subject, optionally with the mask found beside it by a folder scan. */
export interface ReferencePhotoCandidate extends PhotoInput {
  /** `<stem>.mask.png` beside the photo; looked up on disk when not given. */
  readonly maskPath?: string | undefined;
}

/** Parameters of {@link resolveReference}. */
export interface ResolveReferenceParams {
  /** The model; ignored when `encoder` is given (its model is used). */
  readonly model: SamModel;
  /** The user's references; empty → masks beside the photos, else the automatic choice. */
  readonly references: readonly ReferenceSpec[];
  /** The subject's photos: searched for `<stem>.mask.png` and used by the automatic choice. */
  readonly photos?: readonly (string | ReferencePhotoCandidate)[];
  /** @default "persam" */
  readonly mode?: ReferenceMode;
  /** Share encodings with `segmentPhoto`. */
  readonly encoder?: PhotoEncoder | undefined;
  /** Embedding cache on disk (used when `encoder` is not given). */
  readonly cache?: EmbeddingCache | undefined;
  /** PerSAM-F optimiser settings (defaults: the reference's, §8.2). */
  readonly trainer?: FusionTrainerOptions | undefined;
  /** Settings of the automatic choice. */
  readonly auto?: Omit<ChooseAutoReferenceParams, "decoder" | "images"> | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Turn the user's reference choice into a PerSAM target (and, in mode persam-f, the trained fusion
 * weights):
 * - mask file: read with `loadMaskRed` (PerSeg red 128 as is, every other format binarised to 128);
 * - clicks / box: plain SAM (multimask, best IoU prediction) draws the mask, which is rendered as
 *   red 128 and then treated exactly like a mask file;
 * - nothing: `<stem>.mask.png` beside the photo;
 * - several references: target vectors averaged with equal weight (our extension; one reference is
 *   exactly the paper's computation); PerSAM-F trains λ on each reference and averages them;
 * - no reference at all: every photo with a `<stem>.mask.png` beside it, or else `chooseAutoReference`.
 * @throws UserError naming the file for an unreadable photo or mask, a mask whose size differs from
 *   its photo's, an empty mask or one that covers no 64×64 cell, a click outside the photo, a
 *   reference with both a mask and clicks, a missing `<stem>.mask.png`, no photos for the automatic
 *   choice, or no usable automatic candidate.
 */
export async function resolveReference(params: ResolveReferenceParams): Promise<ResolvedReference> {
  const started = performance.now();
  const mode = params.mode ?? "persam";
  const encoder = params.encoder ?? new PhotoEncoder({ model: params.model, cache: params.cache });
  const decoder = encoder.model.decoder;
  const clock = { encodeMs: 0, maskMs: 0, adaptMs: 0 };
  // At most one decoded photo is kept (the last), whatever the number of photos encoded here.
  let lastDecoded: DecodedPhoto | undefined;
  const encode = async (path: string, sha256?: string): Promise<EncodedPhotoFile> => {
    const t = performance.now();
    lastDecoded = undefined;
    const { decoded, ...file } = await encoder.encode({ path, sha256 });
    if (decoded !== undefined) lastDecoded = { path, image: decoded };
    clock.encodeMs += performance.now() - t;
    return file;
  };

  const specs: ReferenceSpec[] = [...params.references];
  const photos = (params.photos ?? []).map((p) => (typeof p === "string" ? { path: p } : p));
  if (specs.length === 0) {
    for (const p of photos) {
      const maskPath = p.maskPath ?? (await existingMaskBeside(p.path));
      if (maskPath !== undefined) specs.push({ photo: p.path, maskPath });
    }
  }

  const references: ResolvedReferencePhoto[] = [];
  let auto: AutoReferenceReport | undefined;
  if (specs.length > 0) {
    for (const spec of specs) {
      params.signal?.throwIfAborted();
      const sha = photos.find((p) => p.path === spec.photo)?.sha256;
      // A mask file is read while the photo is encoded (its decode runs on sharp's threads).
      const early = spec.maskPath !== undefined ? readMaskEarly(spec.maskPath) : undefined;
      references.push(
        await resolveOne(spec, await encode(spec.photo, sha), params.references.length > 0, clock, early),
      );
    }
  } else {
    if (photos.length === 0) {
      throw new UserError("No reference given and no photos to choose one from", {
        hint: "give --ref PHOTO with --ref-mask, --ref-point or --ref-box",
      });
    }
    const usable: { index: number; file: EncodedPhotoFile }[] = [];
    const unreadable: { photo: string; reason: string }[] = [];
    for (let index = 0; index < photos.length; index++) {
      params.signal?.throwIfAborted();
      const p = photos[index]!;
      try {
        usable.push({ index, file: await encode(p.path, p.sha256) });
      } catch (error) {
        if (!isUserError(error)) throw error;
        unreadable.push({ photo: p.path, reason: error.toLine() });
      }
    }
    if (usable.length === 0) {
      throw new UserError("None of the photos could be read, so no reference can be chosen", {
        hint: unreadable[0]?.reason ?? "check the photos",
      });
    }
    const t = performance.now();
    const choice = await chooseAutoReference({
      ...params.auto,
      decoder,
      images: usable.map((u) => u.file.encoded),
    });
    clock.maskMs += performance.now() - t;
    const chosen = usable[choice.photoIndex]!;
    const photoIndex = chosen.index;
    // Candidates keep indices into `usable`; report them as indices into the caller's photos.
    const remap = (c: AutoReferenceCandidate): AutoReferenceCandidate => ({
      ...c,
      photoIndex: usable[c.photoIndex]!.index,
    });
    auto = {
      photoIndex,
      score: choice.score,
      candidate: remap(choice.candidate),
      candidates: choice.candidates.map(remap),
      unreadable,
    };
    references.push({
      photo: chosen.file.path,
      source: "auto",
      promptScore: choice.candidate.iouScore,
      ...maskFields(chosen.file, choice.mask, countNonZero(choice.mask), choice.grid),
    });
  }

  let target: ReferenceTarget;
  let persamF: PerSamFReport | undefined;
  if (mode === "persam-f") {
    const t = performance.now();
    const adaptations: PerSamFAdaptation[] = [];
    for (const ref of references) {
      params.signal?.throwIfAborted();
      adaptations.push(
        await adaptPerSamF({
          decoder,
          referenceImage: ref.encoded.encoded,
          referenceMaskRed: toRed(ref.mask),
          referenceGrid: ref.grid,
          ...(params.trainer ? { trainer: params.trainer } : {}),
        }),
      );
    }
    clock.adaptMs += performance.now() - t;
    const lambdas =
      adaptations.length === 1 ? adaptations[0]!.lambdas : meanLambdas(adaptations.map((a) => a.lambdas));
    // One reference: exactly the adaptation's own target (§8.1); several: averaged (extension).
    target =
      adaptations.length === 1
        ? adaptations[0]!.target
        : computeReferenceTarget({
            references: references.map((r) => ({ embedding: r.encoded.encoded.embedding, grid: r.grid })),
            variant: "persam-f",
          });
    persamF = { lambdas, adaptations };
  } else {
    target = computeReferenceTarget({
      references: references.map((r) => ({ embedding: r.encoded.encoded.embedding, grid: r.grid })),
      variant: "persam",
    });
  }
  return {
    mode,
    references,
    target,
    ...(auto ? { auto } : {}),
    ...(persamF ? { persamF } : {}),
    ...(lastDecoded ? { lastDecoded } : {}),
    timings: { ...clock, totalMs: performance.now() - started },
  };

  async function resolveOne(
    spec: ReferenceSpec,
    file: EncodedPhotoFile,
    explicit: boolean,
    timers: { maskMs: number },
    early?: Promise<MaskRed>,
  ): Promise<ResolvedReferencePhoto> {
    const hasPrompt = (spec.clicks?.length ?? 0) > 0 || spec.box !== undefined;
    if (spec.maskPath !== undefined && hasPrompt) {
      throw new UserError(`Reference ${spec.photo} has both a mask file and clicks/box`, {
        hint: "give either a mask (--ref-mask) or clicks/box (--ref-point, --ref-box) for one reference",
      });
    }
    const t = performance.now();
    try {
      if (hasPrompt) return await fromPrompt(spec, file);
      const maskPath = spec.maskPath ?? (await existingMaskBeside(spec.photo));
      if (maskPath === undefined) {
        throw new UserError(`No mask for the reference photo ${spec.photo}`, {
          hint: `give --ref-mask, --ref-point or --ref-box, or save its mask as ${maskPathBeside(spec.photo)}`,
        });
      }
      const source: ReferenceSourceKind =
        spec.maskPath !== undefined && explicit ? "mask-file" : "mask-beside-photo";
      return await fromMaskFile(
        spec.photo,
        maskPath,
        source,
        file,
        maskPath === spec.maskPath ? early : undefined,
      );
    } finally {
      timers.maskMs += performance.now() - t;
    }
  }

  async function fromPrompt(spec: ReferenceSpec, file: EncodedPhotoFile): Promise<ResolvedReferencePhoto> {
    const { width, height } = file;
    const outside = (p: Point) => !(p[0] >= 0 && p[1] >= 0 && p[0] < width && p[1] < height);
    const bad =
      spec.clicks?.find((c) => outside(c.point))?.point ??
      (spec.box && (outside([spec.box[0], spec.box[1]]) || outside([spec.box[2], spec.box[3]]))
        ? spec.box
        : undefined);
    if (bad !== undefined) {
      throw new UserError(
        `The reference prompt ${bad.join(",")} lies outside ${spec.photo} (${width}×${height} pixels)`,
        {
          hint: "coordinates are x = column, y = row in the photo's upright pixels",
        },
      );
    }
    const prediction = await predictMasks({
      decoder,
      image: file.encoded,
      prompt: { clicks: spec.clicks, box: spec.box },
      multimask: true,
    });
    const best = prediction.masks[prediction.best]!;
    const mask = best.mask;
    const maskArea = best.area;
    const what = `the mask SAM drew from the prompt on ${spec.photo}`;
    if (maskArea === 0) {
      throw new UserError(`${capitalise(what)} is empty`, {
        hint: "click on the subject's middle, add clicks, or give a box or a mask file",
      });
    }
    // The same red-128 rendering as a PerSeg mask file, so the 64×64 rule is identical (§9.18).
    const grid = gridOrThrow(toRed(mask), width, height, what);
    return {
      photo: spec.photo,
      source: "prompt",
      ...(spec.clicks && spec.clicks.length > 0 ? { clicks: spec.clicks } : {}),
      ...(spec.box ? { box: spec.box } : {}),
      promptScore: best.score,
      ...maskFields(file, mask, maskArea, grid),
    };
  }
}

/**
 * Start reading a mask file that is needed later; its failure is reported where it is awaited
 * (and is not an unhandled rejection if it never is, the reference failing first for another reason).
 */
function readMaskEarly(path: string): Promise<MaskRed> {
  const read = loadMaskRed(path);
  read.catch(() => undefined);
  return read;
}

/**
 * Read a reference mask file for a photo of `width × height` and map it to the 64×64 grid.
 * @throws UserError naming both files when the sizes differ; naming the mask when it is empty or
 *   covers no grid cell.
 */
async function fromMaskFile(
  photo: string,
  maskPath: string,
  source: ReferenceSourceKind,
  file: EncodedPhotoFile,
  early?: Promise<MaskRed>,
): Promise<ResolvedReferencePhoto> {
  const { width, height } = file;
  const m = await (early ?? loadMaskRed(maskPath));
  if (m.width !== width || m.height !== height) {
    throw new UserError(
      `The mask ${maskPath} is ${m.width}×${m.height} pixels but its photo ${photo} is ${width}×${height}`,
      { hint: "the mask must have the photo's size (after EXIF rotation); redraw or resize it" },
    );
  }
  const grid = gridOrThrow(m.red, width, height, `the mask ${maskPath}`);
  const mask = new Uint8Array(m.red.length);
  let maskArea = 0;
  for (let j = 0; j < mask.length; j++) {
    if (m.red[j] !== 0) {
      mask[j] = 1;
      maskArea++;
    }
  }
  return { photo, source, maskPath, maskKind: m.kind, ...maskFields(file, mask, maskArea, grid) };
}

/** The fields of a resolved reference that follow from its encoded photo, mask and grid. */
function maskFields(
  file: EncodedPhotoFile,
  mask: Uint8Array,
  maskArea: number,
  grid: Uint8Array,
): Pick<
  ResolvedReferencePhoto,
  "sha256" | "width" | "height" | "mask" | "maskArea" | "grid" | "gridCells" | "encoded"
> {
  return {
    sha256: file.sha256,
    width: file.width,
    height: file.height,
    mask,
    maskArea,
    grid,
    gridCells: countNonZero(grid),
    encoded: file,
  };
}

function gridOrThrow(red: Uint8Array, width: number, height: number, what: string): Uint8Array {
  const grid = referenceMaskGrid(red, width, height);
  if (!grid.some((v) => v !== 0)) {
    throw new UserError(`${capitalise(what)} covers no cell of SAM's 64×64 feature grid`, {
      hint:
        `it is too small: the subject must fill whole 16×16-pixel cells of the photo scaled to 1024 pixels ` +
        `(${Math.ceil((16 * Math.max(width, height)) / 1024)} photo pixels here); use a photo where the subject is larger`,
    });
  }
  return grid;
}

/** `<dir>/<name without extension>.mask.png` for a photo path. */
export function maskPathBeside(photo: string): string {
  const name = basename(photo).replace(/\.[^.]*$/, "");
  return join(dirname(photo), `${name}${MASK_FILE_SUFFIX}`);
}

async function existingMaskBeside(photo: string): Promise<string | undefined> {
  const path = maskPathBeside(photo);
  try {
    await access(path);
    return path;
  } catch {
    return undefined;
  }
}

/** A 0/1 mask rendered as PerSeg's red channel (foreground 128). */
function toRed(mask: Uint8Array): Uint8Array {
  const red = new Uint8Array(mask.length);
  for (let j = 0; j < mask.length; j++) red[j] = mask[j] ? PERSEG_FOREGROUND : 0;
  return red;
}

function meanLambdas(all: readonly (readonly [number, number, number])[]): [number, number, number] {
  const sum = [0, 0, 0];
  for (const l of all) for (let i = 0; i < 3; i++) sum[i]! += l[i]!;
  return [sum[0]! / all.length, sum[1]! / all.length, sum[2]! / all.length];
}

function countNonZero(values: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) n++;
  return n;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A JSON-ready description of a resolved reference (no pixel data) for reports and `--json`. */
export function describeReference(reference: ResolvedReference): Record<string, unknown> {
  return {
    mode: reference.mode,
    references: reference.references.map((r) => ({
      photo: r.photo,
      source: r.source,
      ...(r.maskPath !== undefined ? { maskPath: r.maskPath, maskKind: r.maskKind } : {}),
      ...(r.clicks ? { clicks: r.clicks.map((c) => ({ point: [...c.point], label: c.label })) } : {}),
      ...(r.box ? { box: [...r.box] } : {}),
      ...(r.promptScore !== undefined ? { promptScore: r.promptScore } : {}),
      width: r.width,
      height: r.height,
      maskArea: r.maskArea,
      areaFraction: r.maskArea / (r.width * r.height),
      gridCells: r.gridCells,
    })),
    ...(reference.auto
      ? {
          auto: {
            photoIndex: reference.auto.photoIndex,
            score: reference.auto.score,
            candidate: reference.auto.candidate,
            candidates: reference.auto.candidates,
            unreadable: reference.auto.unreadable,
          },
        }
      : {}),
    ...(reference.persamF
      ? {
          persamF: {
            lambdas: [...reference.persamF.lambdas],
            adaptations: reference.persamF.adaptations.map((a) => ({
              lambdas: [...a.lambdas],
              weights: [...a.training.weights],
              finalLoss: a.training.finalLoss,
              lossHistory: a.training.lossHistory,
              solver: a.training.solver,
              referencePoint: [...a.referencePoint],
              trainMs: a.training.timings.trainMs,
            })),
          },
        }
      : {}),
    timings: reference.timings,
  };
}
