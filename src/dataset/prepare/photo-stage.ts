// Stage 5 of `prepare`, one photo at a time: segment it (or take the mask the user gave), store its
// full-resolution mask, cut its training files, keep its report thumbnails, and record all of it in
// the state. The photo is decoded at most once here (design §6), or not at all when nothing changed.

import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { isUserError } from "../../errors.js";
import { encodeJpeg, loadMaskRed, photoSize, type RgbImage, resizeRgb } from "../../image/image-io.js";
import { decodeMaskPng, encodeMaskPng } from "../../image/mask-png.js";
import type { DecodedPhoto, PhotoLoader } from "../../image/photo-loader.js";
import { segmentPhoto } from "../../segment/persam/segment-photos.js";
import type { PhotoEncoder } from "../../segment/sam/photo-encoder.js";
import { maskArea, maskBox } from "../../segment/sam/postprocess.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { clamp01, roundMs, roundTimings } from "../../util/numbers.js";
import type { Box } from "../../util/tensor.js";
import { type CropRect, outputSize, resizeMask, snapToDecodedGrid, subjectCrop } from "../crop.js";
import { OUTPUT_FOLDERS, writePhotoOutputs } from "../outputs.js";
import {
  MASKS_DIR,
  type OutputsRecord,
  type PhotoState,
  recordOf,
  type SegmentationRecord,
  type StateStore,
  THUMBS_DIR,
} from "../prepare-state.js";
import type { PhotoReport, ReportPoint } from "../report.js";
import type { ApplicableReview } from "../review-decisions.js";
import type { ScannedPhoto } from "../scan.js";
import { measurePhoto } from "./photo-measure.js";
import { doubtfulReason, isKept } from "./plan.js";
import type { RunReference } from "./reference-stage.js";
import { overrideSegmentation, photoDecision, photoKey, withOutdatedFlag } from "./review-stage.js";
import type { Settings } from "./settings.js";
import type { PhotoAction, PhotoResult, PlanEntry } from "./types.js";

/** What every photo of a run shares. */
export interface PhotoStageContext {
  readonly outDir: string;
  readonly settings: Settings;
  readonly store: StateStore;
  readonly loader: PhotoLoader;
  /** Present when the run has a model (something to segment). */
  readonly encoder?: PhotoEncoder | undefined;
  /** Present when the run resolved the reference. */
  readonly reference?: RunReference | undefined;
  readonly segmentationKey: string | undefined;
  readonly outputsKey: string;
  /** The review's mask overrides and decisions. */
  readonly review?: ApplicableReview | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** One photo to process. */
export interface PhotoStageInput {
  readonly entry: PlanEntry;
  readonly photo: ScannedPhoto;
  /** Its pixels, when the previous stage decoded them. */
  readonly decoded?: RgbImage | undefined;
  /**
   * The photo processed after this one, when it will need pixels: its decode starts
   * (PhotoLoader.prefetch) once this photo no longer needs the encoder, so that it runs while this
   * photo is segmented and written.
   */
  readonly decodeNext?: string | undefined;
}

/** What processing a photo gave. */
export interface PhotoStageOutput {
  readonly result: PhotoResult;
  readonly report: PhotoReport;
  /** Lines to report as warnings (a photo that could not be segmented). */
  readonly warnings: readonly string[];
  /** What was done: segmented in this run, training files written, or in the set unchanged. */
  readonly work: { readonly segmented: boolean; readonly outputs: boolean; readonly unchanged: boolean };
}

/** The files a photo may have in the training set, relative to the output folder. */
export function photoFiles(stem: string): string[] {
  return [
    `${OUTPUT_FOLDERS.images}/${stem}.png`,
    `${OUTPUT_FOLDERS.masks}/${stem}.png`,
    `${OUTPUT_FOLDERS.weights}/${stem}.png`,
    `${OUTPUT_FOLDERS.rgba}/${stem}.png`,
    `${OUTPUT_FOLDERS.rgba}/${stem}.txt`,
    `${OUTPUT_FOLDERS.captions}/${stem}.txt`,
    `onetrainer/${stem}.png`,
    `onetrainer/${stem}-masklabel.png`,
    `onetrainer/${stem}.txt`,
  ];
}

/** Every file of a photo, its stored mask and thumbnails included, relative to the output folder. */
export function photoStateFiles(stem: string): string[] {
  return [
    ...photoFiles(stem),
    `${MASKS_DIR}/${stem}.png`,
    `${THUMBS_DIR}/${stem}.jpg`,
    `${THUMBS_DIR}/${stem}.mask.png`,
  ];
}

/** The result and report row of a photo that cannot take part. */
export function failedPhoto(photo: ScannedPhoto, reason: string): Omit<PhotoStageOutput, "warnings"> {
  const { stem, relPath: file, width, height } = photo;
  return {
    result: { stem, file, status: "failed", action: "fail", reason, flags: [] },
    report: { stem, file, status: "skipped", reason, flags: [], points: [], timingsMs: {}, width, height },
    work: { segmented: false, outputs: false, unchanged: false },
  };
}

/**
 * Process one photo as planned: segment (action `segment`), write its training files (`segment` or
 * `outputs`, when kept), remove them (left out), and keep the thumbnails for the report.
 * @throws {Error} for bugs, {AbortError} when the signal aborts; a photo that cannot be decoded or
 *   segmented comes back as failed.
 */
export async function processPhoto(
  ctx: PhotoStageContext,
  input: PhotoStageInput,
): Promise<PhotoStageOutput> {
  ctx.signal?.throwIfAborted();
  const { photo, entry } = input;
  const { outDir, settings, store } = ctx;
  const state = store.state;
  const t0 = performance.now();
  let action: PhotoAction = entry.action;
  let mask: Uint8Array | undefined;
  // The one decoded photo of this worker: decoded at most once here, for encoding and outputs.
  let image: RgbImage | undefined = input.decoded;
  const decision = photoDecision(ctx.review, photo.stem);
  const old = state.photos[photo.stem];
  const ps: PhotoState =
    old && old.sha256 === photo.sha256 ? { ...old } : { relPath: photo.relPath, sha256: photo.sha256 };
  ps.relPath = photo.relPath;

  const decodeNext = (): void => {
    if (input.decodeNext !== undefined) ctx.loader.prefetch(input.decodeNext);
  };
  if (action === "segment") {
    const segmented = await segmentStep(ctx, photo, image, decodeNext);
    // Not while this photo's pixels are still to come (a given or reviewed mask: nothing encoded
    // it): the next photo's decode would replace this one's, started by the photo before.
    if (segmented.status === "failed" || segmented.image !== undefined) decodeNext();
    if (segmented.status === "failed") {
      const reason = `${photo.relPath}: ${segmented.reason}`;
      delete state.photos[photo.stem];
      await removeFiles(outDir, [...photoFiles(photo.stem), `${MASKS_DIR}/${photo.stem}.png`]);
      await store.update((s) => {
        delete s.photos[photo.stem];
      });
      return { ...failedPhoto(photo, reason), warnings: [`skipped ${reason}`] };
    }
    ({ mask, image } = segmented);
    ps.segmentation = segmented.record;
    delete ps.outputs;
    delete ps.thumbs;
    await store.update((s) => {
      s.photos[photo.stem] = ps;
    });
    action = isKept(segmented.record, settings.keepDoubtful, decision) ? "segment" : "exclude";
  }
  const seg = ps.segmentation!;
  const kept = isKept(seg, settings.keepDoubtful, decision);

  // Thumbnails for the report (kept across runs; redone with the photo or its mask).
  const needThumbs = !ps.thumbs || !(await exists(join(outDir, ps.thumbs.photo)));
  const work = { segmented: entry.action === "segment", outputs: false, unchanged: false };
  if (kept && (action === "segment" || action === "outputs")) {
    // Decoding and mask reading are timed apart from writeMs (they happen here only when the
    // photo was not segmented in this run).
    const loadTimings: Record<string, number> = {};
    if (image === undefined) {
      const t = performance.now();
      image = await ctx.loader.load(photo.path);
      loadTimings.decodeMs = roundMs(performance.now() - t);
    }
    if (mask === undefined) {
      const t = performance.now();
      mask = await loadStoredMask(join(outDir, seg.maskFile), seg);
      loadTimings.maskLoadMs = roundMs(performance.now() - t);
    }
    decodeNext();
    ps.outputs = await outputsStep(ctx, photo.stem, photo.path, image, mask, seg, loadTimings);
    work.outputs = true;
  } else if (!kept) {
    // Left out of the training set: no file of it may remain where a trainer would read it.
    if (ps.outputs || action === "segment") await removeFiles(outDir, photoFiles(photo.stem));
    delete ps.outputs;
  } else {
    work.unchanged = true;
  }
  // Timings of this run only (not kept in the state): thumbnails and the state update.
  const runTimings: Record<string, number> = {};
  if (needThumbs && (image !== undefined || action !== "skip")) {
    const t = performance.now();
    image ??= await ctx.loader.load(photo.path);
    mask ??= await loadStoredMask(join(outDir, seg.maskFile), seg);
    ps.thumbs = await writeThumbnails(outDir, photo.stem, image, mask);
    runTimings.thumbsMs = roundMs(performance.now() - t);
  }
  // Curation measures from the pixels and mask at hand (photo-measure.ts), kept with the segmentation.
  if (image && mask && (entry.action === "segment" || !ps.curation)) {
    ps.curation = await measurePhoto(ctx.encoder, photo, image, mask);
  }
  image = undefined;
  mask = undefined;
  decodeNext(); // when this photo needed no pixels after all (left out, thumbnails kept)
  const ts = performance.now();
  await store.update((s) => {
    s.photos[photo.stem] = ps;
  });
  runTimings.stateMs = roundMs(performance.now() - ts);

  const status: PhotoResult["status"] = !kept ? "excluded" : seg.doubtful ? "doubtful" : "ok";
  const flags = [...seg.flags, ...(ps.outputs?.cropFlags ?? [])];
  const reason =
    decision === "exclude"
      ? "excluded in review; left out of the training set"
      : status === "excluded"
        ? `${doubtfulReason(seg)}; left out of the training set (--keep-doubtful keeps it)`
        : status === "doubtful"
          ? `${doubtfulReason(seg)}; kept (${decision === "include" ? "included in review" : "--keep-doubtful"})`
          : undefined;
  const outputs = ps.outputs ? Object.keys(ps.outputs.files) : undefined;
  return {
    result: {
      stem: photo.stem,
      file: photo.relPath,
      status,
      action: action === "segment" && !kept ? "exclude" : action,
      ...(reason ? { reason } : {}),
      confidence: seg.confidence,
      flags,
      ...(outputs ? { outputs: Object.fromEntries(outputs.map((f) => [f.split("/")[0]!, f])) } : {}),
    },
    report: photoReport(
      photo,
      ps,
      status === "excluded" ? (seg.doubtful ? "doubtful" : "ok") : status,
      reason,
      performance.now() - t0,
      runTimings,
    ),
    warnings: [],
    work,
  };
}

type SegmentStepResult =
  | {
      readonly status: "ok";
      readonly record: SegmentationRecord;
      readonly mask: Uint8Array;
      readonly image?: RgbImage;
    }
  | { readonly status: "failed"; readonly reason: string };

/**
 * Segment one photo (or take the mask the user gave for it) and store the full-resolution mask as a
 * 1-bit PNG in .persam/masks (read back without sharp by loadStoredMask).
 */
async function segmentStep(
  ctx: PhotoStageContext,
  photo: ScannedPhoto,
  decoded: RgbImage | undefined,
  onEncoded: () => void,
): Promise<SegmentStepResult> {
  const segmentationKey = photoKey(ctx.review, photo.stem, ctx.segmentationKey!);
  const maskFile = `${MASKS_DIR}/${photo.stem}.png`;
  const given = ctx.reference?.givenMasks.get(photo.sha256);
  let image = decoded;
  let mask: Uint8Array;
  let record: SegmentationRecord;
  const overridden = await overrideSegmentation({
    review: ctx.review,
    outDir: ctx.outDir,
    photo,
    key: segmentationKey,
    maskFile,
  });
  if (overridden) {
    ({ mask, record } = overridden);
  } else if (given) {
    mask = given;
    const area = maskArea(given);
    record = {
      key: segmentationKey,
      maskFile,
      mask: { sha256: "", size: 0 },
      width: photo.width,
      height: photo.height,
      area,
      confidence: 1,
      doubtful: false,
      flags: ["reference"],
      iouScore: 1,
      reference: true,
      timingsMs: {},
    };
  } else {
    // Decoded here rather than by the encoder: the outputs or thumbnails need the pixels too (even
    // when the embedding is cached), and a photo is decoded only once (design §6).
    const t = performance.now();
    try {
      image ??= await ctx.loader.load(photo.path);
    } catch (error) {
      if (!isUserError(error)) throw error;
      return { status: "failed", reason: error.toLine() };
    }
    const decodeMs = performance.now() - t;
    if (ctx.encoder === undefined || ctx.reference === undefined) {
      throw new Error("prepare: a photo to segment but no model or reference");
    }
    ctx.signal?.throwIfAborted();
    const outcome = await segmentPhoto({
      encoder: ctx.encoder,
      photo: { path: photo.path, sha256: photo.sha256, image },
      reference: ctx.reference.reference,
      mode: ctx.settings.mode,
      onEncoded,
    });
    if (outcome.status === "failed") return { status: "failed", reason: outcome.reason };
    mask = outcome.mask!;
    record = {
      key: segmentationKey,
      maskFile,
      mask: { sha256: "", size: 0 },
      width: outcome.width,
      height: outcome.height,
      area: outcome.area,
      confidence: clamp01(outcome.confidence.confidence),
      doubtful: outcome.doubtful,
      flags: [...outcome.flags],
      iouScore: outcome.iouScore,
      positive: [outcome.prior.positive[0], outcome.prior.positive[1]],
      ...(outcome.prior.negative
        ? { negative: [outcome.prior.negative[0], outcome.prior.negative[1]] as [number, number] }
        : {}),
      timingsMs: roundTimings({ ...outcome.timings, loadMs: decodeMs + (outcome.timings.loadMs ?? 0) }),
    };
  }
  record = withOutdatedFlag(record, ctx.review, photo.stem);
  const tm = performance.now();
  const png = encodeMaskPng(mask, record.width, record.height);
  await writeFileAtomic(join(ctx.outDir, maskFile), png, { mkdir: true });
  record.mask = recordOf(png);
  record.timingsMs = { ...record.timingsMs, maskWriteMs: roundMs(performance.now() - tm) };
  return { status: "ok", record, mask, ...(image ? { image } : {}) };
}

/** Cut and write the photo's training files from one subject crop (outputs.ts). */
async function outputsStep(
  ctx: PhotoStageContext,
  stem: string,
  photoPath: string,
  image: RgbImage,
  mask: Uint8Array,
  seg: SegmentationRecord,
  loadTimings: Readonly<Record<string, number>>,
): Promise<OutputsRecord> {
  const { settings } = ctx;
  const t1 = performance.now();
  const full = photoSize(image);
  const box = maskBox(mask, full.width, full.height);
  const crop = subjectCrop({
    width: full.width,
    height: full.height,
    box,
    aspect: settings.aspect,
    margin: settings.margin,
    mode: settings.crop,
  });
  const size = outputSize(crop, settings.resolution);
  // A reduced decode serves only when it has at least the output's pixels in the crop; otherwise
  // the photo is decoded in full for its outputs (a small subject in a large photo).
  const f = image.scaledFrom?.factor ?? 1;
  const pixels =
    f > 1 && (crop.width / f < size.width || crop.height / f < size.height)
      ? await ctx.loader.loadFull(photoPath)
      : image;
  const written = await writePhotoOutputs({
    outDir: ctx.outDir,
    stem,
    photo: pixels,
    mask,
    crop: snapToDecodedGrid(crop, pixels),
    sizeFrom: crop,
    resolution: settings.resolution,
    background: settings.background,
    bgWeight: settings.bgWeight,
    feather: settings.feather,
    caption: settings.caption,
    confidence: seg.confidence,
    flags: seg.doubtful ? ["doubtful", ...seg.flags] : seg.flags,
  });
  const cropFlags = [
    ...(crop.cutsSubject ? ["cuts-subject"] : []),
    ...(crop.marginReduced ? ["margin-reduced"] : []),
    ...(size.width > crop.width ? ["upscaled"] : []),
    ...(box === undefined ? ["empty-mask"] : []),
  ];
  return {
    key: ctx.outputsKey,
    files: { ...written.records },
    row: { ...written.row },
    crop: { left: crop.left, top: crop.top, width: crop.width, height: crop.height },
    cropFlags,
    ...(box ? { box: [box[0], box[1], box[2], box[3]] as [number, number, number, number] } : {}),
    width: written.width,
    height: written.height,
    timingsMs: { ...loadTimings, writeMs: Math.round(performance.now() - t1) },
  };
}

/** Remove files (relative to the output folder); missing ones are fine. */
export async function removeFiles(outDir: string, rels: readonly string[]): Promise<void> {
  for (const rel of rels) await rm(join(outDir, rel), { force: true });
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/**
 * The full-resolution mask stored in .persam/masks (0/1). A 1-bit PNG of encodeMaskPng is decoded
 * directly; other files (8-bit PNGs of an older state folder) go through loadMaskRed.
 */
async function loadStoredMask(path: string, seg: SegmentationRecord): Promise<Uint8Array> {
  if (seg.area === 0) return new Uint8Array(seg.width * seg.height);
  const own = decodeMaskPng(await readFile(path));
  if (own) {
    if (own.width !== seg.width || own.height !== seg.height) {
      throw new Error(
        `Expected a ${seg.width}×${seg.height} mask in ${path} but found ${own.width}×${own.height}`,
      );
    }
    return own.mask;
  }
  const mask = new Uint8Array(seg.width * seg.height);
  const m = await loadMaskRed(path);
  if (m.width !== seg.width || m.height !== seg.height) {
    throw new Error(`Expected a ${seg.width}×${seg.height} mask in ${path} but found ${m.width}×${m.height}`);
  }
  for (let i = 0; i < mask.length; i++) mask[i] = m.red[i] ? 1 : 0;
  return mask;
}

const THUMB_SIDE = 320;

async function writeThumbnails(
  outDir: string,
  stem: string,
  image: RgbImage,
  mask: Uint8Array,
): Promise<{ photo: string; mask: string }> {
  const full = photoSize(image);
  const scale = Math.min(1, THUMB_SIDE / Math.max(full.width, full.height));
  const w = Math.max(1, Math.round(full.width * scale));
  const h = Math.max(1, Math.round(full.height * scale));
  // sharp shrinks the photo on its thread while the mask is resized here.
  const small = w !== image.width || h !== image.height ? resizeRgb(image, w, h) : Promise.resolve(image);
  const smallMask =
    w !== full.width || h !== full.height
      ? resizeMask({ mask, width: full.width, height: full.height, outWidth: w, outHeight: h })
      : mask;
  const photo = `${THUMBS_DIR}/${stem}.jpg`;
  const maskFile = `${THUMBS_DIR}/${stem}.mask.png`;
  // The mask thumbnail as a 1-bit PNG (white = subject), as the state masks: no sharp round trip.
  await writeFileAtomic(join(outDir, maskFile), encodeMaskPng(smallMask, w, h), { mkdir: true });
  await writeFileAtomic(join(outDir, photo), await encodeJpeg(await small, 80), { mkdir: true });
  return { photo, mask: maskFile };
}

function photoReport(
  photo: ScannedPhoto,
  ps: PhotoState,
  status: PhotoReport["status"],
  reason: string | undefined,
  ms: number,
  runTimings: Readonly<Record<string, number>> = {},
): PhotoReport {
  const seg = ps.segmentation!;
  const points: ReportPoint[] = [];
  if (seg.positive) points.push({ x: seg.positive[0], y: seg.positive[1], label: 1 });
  if (seg.negative) points.push({ x: seg.negative[0], y: seg.negative[1], label: 0 });
  const o: OutputsRecord | undefined = ps.outputs;
  return {
    stem: photo.stem,
    file: photo.relPath,
    status,
    ...(reason ? { reason } : {}),
    width: seg.width,
    height: seg.height,
    confidence: seg.confidence,
    area: seg.area / (seg.width * seg.height),
    flags: [...seg.flags, ...(o?.cropFlags ?? [])],
    points,
    ...(o?.box ? { box: o.box as Box } : {}),
    ...(o ? { crop: o.crop as CropRect } : {}),
    ...(o
      ? {
          outputs: {
            image: `${OUTPUT_FOLDERS.images}/${photo.stem}.png`,
            mask: `${OUTPUT_FOLDERS.masks}/${photo.stem}.png`,
            weight: `${OUTPUT_FOLDERS.weights}/${photo.stem}.png`,
            rgba: `${OUTPUT_FOLDERS.rgba}/${photo.stem}.png`,
            caption: `${OUTPUT_FOLDERS.captions}/${photo.stem}.txt`,
          },
        }
      : {}),
    timingsMs: { ...seg.timingsMs, ...(o?.timingsMs ?? {}), ...runTimings, totalMs: Math.round(ms) },
  };
}

/** A photo handed on by an earlier stage, when it is this photo. */
export function handedOn(decoded: DecodedPhoto | undefined, photo: ScannedPhoto): RgbImage | undefined {
  return decoded?.path === photo.path ? decoded.image : undefined;
}
