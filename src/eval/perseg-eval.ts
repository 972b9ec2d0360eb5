// PerSeg evaluation as Personalize-SAM's `eval_mioU.py` computes it: per object, one reference
// (image + annotation NN) and every other annotated photo as a test; IoU = ΣI/ΣU and accuracy =
// ΣI/Σtarget summed over the object's test photos; mIoU / mAcc = plain means over objects.

import { mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { UserError } from "../errors.js";
import { encodePng, loadRgb } from "../image/image-io.js";
import type { PerSamOptions } from "../segment/persam/persam.js";
import type { FusionTrainerOptions } from "../segment/persam/persam-f.js";
import {
  describeReference,
  type ReferenceMode,
  resolveReference,
} from "../segment/persam/reference-source.js";
import { segmentPhoto } from "../segment/persam/segment-photos.js";
import { defaultEmbeddingCache, type EmbeddingStore } from "../segment/sam/embedding-cache.js";
import { PhotoEncoder } from "../segment/sam/photo-encoder.js";
import { maskToGrey } from "../segment/sam/postprocess.js";
import type { SamModel } from "../segment/sam/sam-model.js";
import { writeFileAtomic } from "../util/atomic-write.js";

/**
 * Objects that the reference's `eval_mioU.py` leaves out of PerSeg's mIoU (hard-coded there), so
 * that our numbers compare with the published ones by default.
 */
export const REFERENCE_SKIPPED_OBJECTS: readonly string[] = [
  "physics_mug",
  "clock",
  "pink_sunglasses",
  "cat2",
  "red_teapot",
  "mug_skulls",
  "flower",
  "vase",
];

/** The reference adds this to every denominator (so an empty union gives 0, not NaN). */
export const EVAL_EPSILON = 1e-10;

/** Pixel counts of one prediction against its ground truth. */
export interface MaskCounts {
  readonly intersection: number;
  readonly union: number;
  /** Ground-truth foreground pixels. */
  readonly target: number;
}

/**
 * Intersection, union and target pixel counts of two binary masks (non-zero = foreground), the
 * reference's `intersectionAndUnion`.
 * @throws {UserError} when the lengths differ (the reference asserts equal shapes).
 */
export function maskCounts(prediction: Uint8Array, groundTruth: Uint8Array): MaskCounts {
  if (prediction.length !== groundTruth.length) {
    throw new UserError(
      `Expected a prediction of ${groundTruth.length} pixels (the ground truth's) but received ${prediction.length}`,
    );
  }
  let intersection = 0;
  let union = 0;
  let target = 0;
  for (let j = 0; j < prediction.length; j++) {
    const p = prediction[j] !== 0;
    const g = groundTruth[j] !== 0;
    if (p && g) intersection++;
    if (p || g) union++;
    if (g) target++;
  }
  return { intersection, union, target };
}

/** IoU and accuracy of summed counts: ΣI / (ΣU + 1e-10) and ΣI / (Σtarget + 1e-10), as the reference. */
export function pooledScores(counts: readonly MaskCounts[]): { iou: number; accuracy: number } {
  let i = 0;
  let u = 0;
  let t = 0;
  for (const c of counts) {
    i += c.intersection;
    u += c.union;
    t += c.target;
  }
  return { iou: i / (u + EVAL_EPSILON), accuracy: i / (t + EVAL_EPSILON) };
}

/**
 * Foreground as the reference reads both ground truth and predictions: `cv2.imread` (3-channel
 * colour, palette expanded, alpha dropped), then `cvtColor(BGR2GRAY) > 0`. OpenCV's 8-bit grey is
 * fixed point, `(4899·R + 9617·G + 1868·B + 2¹³) >> 14`, so a pixel is foreground iff
 * `4899·R + 9617·G + 1868·B ≥ 8192`: PerSeg's red 128 (grey 38) and any 0/255 mask are foreground,
 * but e.g. pure blue 1–4 is not.
 */
export function openCvForeground(rgb: Uint8Array, pixels: number): Uint8Array {
  if (rgb.length !== pixels * 3)
    throw new RangeError(`Expected ${pixels * 3} RGB bytes but received ${rgb.length}`);
  const out = new Uint8Array(pixels);
  for (let p = 0, i = 0; p < pixels; p++, i += 3) {
    out[p] = 4899 * rgb[i]! + 9617 * rgb[i + 1]! + 1868 * rgb[i + 2]! >= 8192 ? 1 : 0;
  }
  return out;
}

/** A binary mask read the way the reference's evaluation reads masks ({@link openCvForeground}). */
export async function readEvalMask(
  path: string,
): Promise<{ mask: Uint8Array; width: number; height: number }> {
  const image = await loadRgb(path);
  return {
    mask: openCvForeground(image.data, image.width * image.height),
    width: image.width,
    height: image.height,
  };
}

/** One object of a PerSeg folder. */
export interface PersegObject {
  readonly name: string;
  readonly referenceImage: string;
  readonly referenceMask: string;
  /** Every annotated photo but the reference, in name order. */
  readonly tests: readonly { readonly name: string; readonly image: string; readonly annotation: string }[];
}

/** Parameters of {@link listPersegObjects}. */
export interface ListPersegObjectsParams {
  /** Folder with `Images/<object>/NN.jpg` and `Annotations/<object>/NN.png`. */
  readonly dir: string;
  /** @default "00" */
  readonly refIdx?: string;
  /** Only these objects (in this order); unknown names are an error. */
  readonly objects?: readonly string[] | undefined;
  /**
   * Leave out {@link REFERENCE_SKIPPED_OBJECTS} as the reference does (ignored for objects named
   * in `objects`).
   * @default true
   */
  readonly skipLikeReference?: boolean;
}

const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".webp"];

/**
 * The objects of a PerSeg-layout folder, sorted by name like the reference (`sorted(os.listdir)` of
 * Annotations). Test photos are the annotations whose stem is not `refIdx` — the reference skips
 * any ground-truth path *containing* `ref_idx` as a substring; we compare stems so that an object
 * or file name holding "00" is not dropped by accident.
 * (The reference's persam.py also segments the reference photo itself; its score never counts, so
 * we do not segment it.)
 * @throws UserError when the folder lacks Images/ or Annotations/, an object lacks its reference
 *   image or annotation, or `objects` names an unknown object.
 */
export async function listPersegObjects(
  params: ListPersegObjectsParams,
): Promise<{ objects: PersegObject[]; skipped: string[] }> {
  const refIdx = params.refIdx ?? "00";
  const images = join(params.dir, "Images");
  const annotations = join(params.dir, "Annotations");
  for (const d of [images, annotations]) {
    if (!(await isDirectory(d))) {
      throw new UserError(`${params.dir} is not a PerSeg folder: ${d} is missing`, {
        hint: "it needs Images/<object>/NN.jpg and Annotations/<object>/NN.png",
      });
    }
  }
  const all: string[] = [];
  for (const name of (await readdir(annotations)).sort()) {
    if (!name.startsWith(".") && (await isDirectory(join(annotations, name)))) all.push(name);
  }
  let names: string[];
  const skipped: string[] = [];
  if (params.objects && params.objects.length > 0) {
    const unknown = params.objects.filter((o) => !all.includes(o));
    if (unknown.length > 0) {
      throw new UserError(
        `Unknown PerSeg object${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} in ${params.dir}`,
        {
          hint: `choose from ${all.join(", ")}`,
        },
      );
    }
    names = [...params.objects];
  } else {
    const skip = params.skipLikeReference ?? true;
    names = all.filter((n) => {
      const out = skip && REFERENCE_SKIPPED_OBJECTS.includes(n);
      if (out) skipped.push(n);
      return !out;
    });
  }
  const objects: PersegObject[] = [];
  for (const name of names) {
    const annotationFiles = (await readdir(join(annotations, name)))
      .filter((f) => f.toLowerCase().endsWith(".png") && !f.startsWith("."))
      .sort();
    const refStem = referenceStem(
      annotationFiles.map((f) => f.slice(0, -4)),
      refIdx,
    );
    const referenceMask = join(annotations, name, `${refStem ?? refIdx}.png`);
    if (refStem === undefined) {
      throw new UserError(`Object ${name} has no reference annotation ${referenceMask}`, {
        hint: "choose another --ref-idx (the NN of an annotated photo)",
      });
    }
    const referenceImage = await findImage(join(images, name), refStem);
    if (referenceImage === undefined) {
      throw new UserError(`Object ${name} has no reference image ${join(images, name, `${refStem}.jpg`)}`, {
        hint: "every annotation needs its photo under Images/<object>/",
      });
    }
    const tests: { name: string; image: string; annotation: string }[] = [];
    for (const file of annotationFiles) {
      const stem = file.slice(0, -4);
      if (stem === refStem) continue;
      const image = await findImage(join(images, name), stem);
      tests.push({
        name: stem,
        image: image ?? join(images, name, `${stem}.jpg`),
        annotation: join(annotations, name, file),
      });
    }
    objects.push({ name, referenceImage, referenceMask, tests });
  }
  return { objects, skipped };
}

/**
 * The annotation stem that `refIdx` names: the stem itself, or for a number the stem of the same
 * value (PerSeg's names are zero-padded: `--ref-idx 1` is `01`).
 */
export function referenceStem(stems: readonly string[], refIdx: string): string | undefined {
  if (stems.includes(refIdx)) return refIdx;
  if (!/^\d+$/.test(refIdx)) return undefined;
  const value = Number(refIdx);
  return stems.find((s) => /^\d+$/.test(s) && Number(s) === value);
}

/** Where predictions come from. */
export type PredictionSource =
  /** Existing mask PNGs `dir/<object>/<NN>.png` (any encoding; foreground as {@link openCvForeground}). */
  | { readonly kind: "files"; readonly dir: string }
  /** Run PerSAM / PerSAM-F with the object's reference image and annotation. */
  | {
      readonly kind: "model";
      readonly model: SamModel;
      /** @default "persam" */
      readonly mode?: ReferenceMode;
      readonly trainer?: FusionTrainerOptions | undefined;
      readonly options?: PerSamOptions | undefined;
      /** Write each predicted mask (0/255 PNG) to `saveDir/<object>/<NN>.png`. */
      readonly saveDir?: string | undefined;
    };

/** Parameters of {@link evaluatePerSeg}. */
export interface EvaluatePerSegParams extends ListPersegObjectsParams {
  readonly predictions: PredictionSource;
  /** Where embeddings are cached. @default the user's cache (`defaultEmbeddingCache`) */
  readonly embeddingCache?: EmbeddingStore | undefined;
  /** Called after each test photo. */
  readonly onPhoto?: ((object: string, photo: PhotoEvaluation) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** One test photo's score. */
export interface PhotoEvaluation extends MaskCounts {
  readonly name: string;
  /** intersection / (union + 1e-10). */
  readonly iou: number;
  /** Why the model produced no mask (then the prediction counts as empty). */
  readonly failed?: string;
  /** photoConfidence of the prediction (model predictions only). */
  readonly confidence?: number;
}

/** One object's score. */
export interface ObjectEvaluation {
  readonly name: string;
  /** ΣI / ΣU over the object's test photos. */
  readonly iou: number;
  /** ΣI / Σtarget. */
  readonly accuracy: number;
  readonly photos: readonly PhotoEvaluation[];
  /** The reference as used (model predictions only; see describeReference). */
  readonly reference?: Record<string, unknown>;
}

/** The whole evaluation; scores are fractions in [0, 1]. */
export interface PerSegEvaluation {
  readonly mIoU: number;
  readonly mAcc: number;
  readonly objects: readonly ObjectEvaluation[];
  readonly refIdx: string;
  readonly source: "model" | "files";
  readonly mode?: ReferenceMode;
  /** Objects left out like the reference does. */
  readonly skippedObjects: readonly string[];
  /** Test photos the model could not segment (scored as empty masks). */
  readonly failedPhotos: number;
}

/**
 * Evaluate on a PerSeg folder. With model predictions each object's reference is its image and
 * annotation `refIdx` (read like any mask file: PerSeg red 128 as is), every other annotated photo
 * is segmented, and a photo that fails is scored as an empty mask. Ground truth and file
 * predictions are binarised by {@link openCvForeground}; model masks are used as they are (the
 * reference writes them as (0,0,128) and reads them back with the same rule, which keeps them).
 * @throws UserError for a malformed folder, a missing prediction file, or sizes that differ.
 */
export async function evaluatePerSeg(params: EvaluatePerSegParams): Promise<PerSegEvaluation> {
  const refIdx = params.refIdx ?? "00";
  const { objects, skipped } = await listPersegObjects({ ...params, refIdx });
  if (objects.length === 0) {
    throw new UserError(`No object to evaluate in ${params.dir}`, {
      hint: "check --objects and the folder layout",
    });
  }
  const source = params.predictions;
  const results: ObjectEvaluation[] = [];
  let failedPhotos = 0;
  const encoder =
    source.kind === "model"
      ? new PhotoEncoder({
          model: source.model,
          memoryEntries: 0,
          cache: params.embeddingCache ?? defaultEmbeddingCache(),
        })
      : undefined;

  for (const object of objects) {
    params.signal?.throwIfAborted();
    const photos: PhotoEvaluation[] = [];
    const score = async (
      name: string,
      annotation: string,
      predicted: Uint8Array | undefined,
      extra: Partial<PhotoEvaluation>,
      size?: readonly [number, number],
    ) => {
      const gt = await readEvalMask(annotation);
      if (size && (size[0] !== gt.width || size[1] !== gt.height)) {
        throw new UserError(
          `The prediction for ${object.name}/${name} is ${size[0]}×${size[1]} pixels but its annotation ${annotation} is ${gt.width}×${gt.height}`,
          { hint: "predictions must have the size of the photo they segment" },
        );
      }
      const counts = maskCounts(predicted ?? new Uint8Array(gt.mask.length), gt.mask);
      const photo: PhotoEvaluation = {
        name,
        ...counts,
        iou: counts.intersection / (counts.union + EVAL_EPSILON),
        ...extra,
      };
      photos.push(photo);
      params.onPhoto?.(object.name, photo);
    };

    let reference: Record<string, unknown> | undefined;
    if (source.kind === "files") {
      for (const test of object.tests) {
        const path = join(source.dir, object.name, `${test.name}.png`);
        if (!(await isFile(path))) {
          throw new UserError(`Missing prediction ${path} for ${object.name}/${test.name}`, {
            hint: "predictions must be laid out as DIR/<object>/<NN>.png, one per annotated photo but the reference",
          });
        }
        const p = await readEvalMask(path);
        await score(test.name, test.annotation, p.mask, {}, [p.width, p.height]);
      }
    } else {
      const mode = source.mode ?? "persam";
      const resolved = await resolveReference({
        model: source.model,
        encoder: encoder!,
        references: [{ photo: object.referenceImage, maskPath: object.referenceMask }],
        mode,
        trainer: source.trainer,
        signal: params.signal,
      });
      reference = describeReference(resolved);
      if (source.saveDir) await mkdir(join(source.saveDir, object.name), { recursive: true });
      for (const [index, test] of object.tests.entries()) {
        params.signal?.throwIfAborted();
        const outcome = await segmentPhoto({
          encoder: encoder!,
          photo: { path: test.image },
          reference: resolved,
          mode,
          options: source.options,
          index,
        });
        if (outcome.status === "failed") {
          failedPhotos++;
          await score(test.name, test.annotation, undefined, { failed: outcome.reason });
          continue;
        }
        const mask = outcome.mask!;
        if (source.saveDir) {
          await writeFileAtomic(
            join(source.saveDir, object.name, `${test.name}.png`),
            await encodePng({
              data: maskToGrey(mask),
              width: outcome.width,
              height: outcome.height,
              channels: 1,
            }),
          );
        }
        await score(test.name, test.annotation, mask, { confidence: outcome.confidence.confidence }, [
          outcome.width,
          outcome.height,
        ]);
      }
    }
    const { iou, accuracy } = pooledScores(photos);
    results.push({ name: object.name, iou, accuracy, photos, ...(reference ? { reference } : {}) });
  }
  const mIoU = results.reduce((s, o) => s + o.iou, 0) / results.length;
  const mAcc = results.reduce((s, o) => s + o.accuracy, 0) / results.length;
  return {
    mIoU,
    mAcc,
    objects: results,
    refIdx,
    source: source.kind,
    ...(source.kind === "model" ? { mode: source.mode ?? "persam" } : {}),
    skippedObjects: skipped,
    failedPhotos,
  };
}

async function findImage(dir: string, stem: string): Promise<string | undefined> {
  for (const ext of IMAGE_EXTENSIONS) {
    const path = join(dir, `${stem}${ext}`);
    if (await isFile(path)) return path;
  }
  return undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
