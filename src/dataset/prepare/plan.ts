// Stage 3 of `prepare`: what this run will do with each photo, decided from the state of the last run
// and the settings hashes of each stage (segmentation, outputs, exports), before any model is opened.

import { resolve } from "node:path";
import { UserError } from "../../errors.js";
import { DEFAULT_MAX_PIXELS } from "../../image/image-io.js";
import {
  fileRecordOf,
  filesIntact,
  type PrepareState,
  readState,
  type SegmentationRecord,
  settingsHash,
} from "../prepare-state.js";
import {
  type ApplicableReview,
  applicableReview,
  type PhotoDecision,
  photoSegmentationKey,
  type ReviewMaskRecord,
} from "../review-decisions.js";
import type { ScannedPhoto, SkippedFile } from "../scan.js";
import { OVERRIDE_FLAG } from "./review-stage.js";
import { type InputScan, scanInput } from "./scan-stage.js";
import {
  classSource,
  modelKeyOf,
  resolveFolders,
  resolveJobs,
  resolveSettings,
  type Settings,
} from "./settings.js";
import type { PhotoAction, PlanEntry, PrepareEvent, PrepareParams, PrepareResult } from "./types.js";
import {
  type PlannedVideo,
  probeVideos,
  reuseChoices,
  type VideoPlan,
  type VideoSettings,
  withFrames,
} from "./video-stage.js";

/** The settings hashes that decide what a rerun redoes. */
export interface StageKeys {
  /** What the reference is resolved from (user references, masks beside photos, the photo set). */
  readonly referenceInput: string;
  readonly outputs: string;
  readonly exports: string;
  /** The model's identity, when known. */
  readonly model: string | undefined;
}

/** A planned run: everything decided before the model is opened. Run it with `runPrepare`. */
export interface PreparePlan {
  /** The caller's parameters, with the reference chosen in review when the caller gave none. */
  readonly params: PrepareParams;
  /** The references the caller gave (`params.references` may hold the review's instead). */
  readonly userReferences: PrepareParams["references"];
  /** What `persam-db review` decided that applies to these photos (OUT/.persam/review/). */
  readonly review: ApplicableReview;
  readonly inputDir: string;
  readonly outDir: string;
  readonly dryRun: boolean;
  readonly force: boolean;
  readonly jobs: number;
  readonly settings: Settings;
  /** The photos (with the frames of videos whose last choice stands) and the files left aside. */
  readonly input: InputScan;
  /** The readable videos (frames reused or to choose) and ffmpeg. */
  readonly videos: VideoPlan;
  /** The state the last run left (empty when there was none or it was unreadable). */
  readonly previous: PrepareState;
  readonly keys: StageKeys;
  /** The last run's reference, when its input is unchanged (and not `force`). */
  readonly referenceIdentity: string | undefined;
  readonly entries: readonly PlanEntry[];
  /**
   * True when the run needs the encoder or decoder: a new or changed reference, or a photo to
   * segment without a mask override. Outputs and unchanged photos need neither.
   */
  readonly needsModel: boolean;
  /** Lines already reported through `onEvent` as warnings. */
  readonly warnings: readonly string[];
}

/**
 * Plan a run: check the settings and folders, scan the photos, read the last run's state and decide
 * each photo's action. Writes nothing.
 * @throws UserError for a missing folder, no photos, bad settings.
 */
export async function planPrepare(callerParams: PrepareParams): Promise<PreparePlan> {
  let params = callerParams;
  const emit = (event: PrepareEvent): void => params.onEvent?.(event);
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
    emit({ type: "warning", message });
  };
  const dryRun = params.dryRun ?? false;
  const force = params.force ?? false;

  const folders = await resolveFolders(params);
  if (folders.notice) warn(folders.notice);
  const { inputDir, outDir } = folders;
  const settings = await resolveSettings(params, classSource(folders));
  if (!dryRun && params.modelFiles === undefined) {
    throw new Error("prepare needs the model's files unless dryRun is set");
  }
  const jobs = resolveJobs(params.jobs);

  const scanned = await scanInput({
    inputDir,
    outDir,
    displayDir: params.inputDir,
    recursive: params.recursive ?? false,
    maxPixels: params.maxPixels,
    only: folders.only,
  });
  const videoSettings: VideoSettings = {
    fps: settings.fps,
    frames: settings.frames,
    maxPixels: params.maxPixels ?? DEFAULT_MAX_PIXELS,
  };
  const probed = await probeVideos({
    videos: scanned.scan.videos,
    settings: videoSettings,
    tools: params.videoTools,
    signal: params.signal,
  });
  let input = withVideoProblems(scanned, probed.failed);
  if (input.good.length === 0 && probed.videos.length === 0) {
    throw new UserError(`No usable photo or video in ${params.inputDir}`, { hint: input.problems[0] ?? "" });
  }
  for (const p of input.problems) warn(p);
  emit({ type: "scan", photos: input.scan.photos.length, problems: input.problems });

  const read = await readState(outDir);
  if (read.problem) warn(read.problem);
  const previous = read.state;

  // The review's decisions; its reference stands in when the caller gave none.
  const review = await applicableReview({ outDir, photos: input.good });
  for (const note of review.notes) warn(note);
  if ((params.references ?? []).length === 0 && review.reference) {
    params = { ...params, references: [review.reference] };
  }
  const modelKey = params.modelFiles ? await modelKeyOf(params.modelFiles) : params.modelKey;
  const keys: StageKeys = {
    referenceInput: await referenceInputKey(params, settings, input, probed.videos),
    outputs: outputsKey(settings),
    exports: settingsHash({
      trainer: settings.trainer,
      presets: settings.presets,
      token: settings.identifier,
      className: settings.className,
    }),
    model: modelKey,
  };
  const referenceIdentity =
    !force && previous.reference?.inputKey === keys.referenceInput ? previous.reference.identity : undefined;
  // --force plans against an empty state: every photo is segmented again.
  const planState: PrepareState = force ? { ...previous, photos: {}, reference: undefined } : previous;
  const segKey = segmentationKey(keys, settings, params, previous, referenceIdentity);
  const videos = await reuseChoices({
    videos: probed.videos,
    state: planState,
    outDir,
    settings: videoSettings,
    segmentationKey: segKey,
  });
  input = withFrames(
    input,
    outDir,
    videos.flatMap((v) => v.reused ?? []),
  );
  const entries = await planPhotos({
    input,
    state: planState,
    outDir,
    segmentationKey: segKey,
    outputsKey: keys.outputs,
    keepDoubtful: settings.keepDoubtful,
    review,
    curate: settings.curate,
  });
  return {
    params,
    userReferences: callerParams.references,
    review,
    inputDir,
    outDir,
    dryRun,
    force,
    jobs,
    settings,
    input,
    videos: { tools: probed.tools, videos, failed: probed.failed },
    previous,
    keys,
    referenceIdentity,
    entries,
    needsModel:
      referenceIdentity === undefined ||
      entries.some((e) => e.action === "segment" && !review.overrides.has(e.stem)) ||
      videos.some((v) => v.reused === undefined),
    warnings,
  };
}

/**
 * The segmentation settings hash for a reference identity: model, mode, reference and PerSAM-F's
 * trainer. Without a model identity (a dry run), the last run's key stands in.
 */
export function segmentationKey(
  keys: StageKeys,
  settings: Settings,
  params: PrepareParams,
  previous: PrepareState,
  referenceIdentity: string | undefined,
): string | undefined {
  if (referenceIdentity === undefined) return undefined;
  if (keys.model === undefined) return previous.settings.segmentation || undefined;
  return settingsHash({
    model: keys.model,
    mode: settings.mode,
    reference: referenceIdentity,
    // `full` adds nothing to the key, so a state written before the option existed stays valid.
    decode: settings.decode === "full" ? undefined : settings.decode,
    fusion: settings.mode === "persam-f" ? (params.fusionTrainer ?? {}) : undefined,
  });
}

/** Parameters of {@link planPhotos}. */
export interface PlanPhotosParams {
  readonly input: InputScan;
  readonly state: PrepareState;
  readonly outDir: string;
  /** Undefined while the reference is unknown: every photo is then segmented. */
  readonly segmentationKey: string | undefined;
  readonly outputsKey: string;
  readonly keepDoubtful: boolean;
  /** The review's overrides and decisions. @default none */
  readonly review?: ApplicableReview | undefined;
  /** Photos that curation left out stay out (their outputs are not written again). */
  readonly curate?: boolean | undefined;
}

/** Each photo's action, in scan order, checking the files the last run recorded. */
export async function planPhotos(params: PlanPhotosParams): Promise<PlanEntry[]> {
  const entries: PlanEntry[] = [];
  for (const photo of params.input.scan.photos) {
    const failed = params.input.failed.get(photo.stem);
    if (failed !== undefined) {
      entries.push({ stem: photo.stem, file: photo.relPath, action: "fail", reason: failed });
      continue;
    }
    entries.push({ stem: photo.stem, file: photo.relPath, ...(await planPhoto(photo, params)) });
  }
  return entries;
}

async function planPhoto(
  photo: ScannedPhoto,
  p: PlanPhotosParams,
): Promise<{ action: PhotoAction; reason: string }> {
  const ps = p.state.photos[photo.stem];
  if (!ps?.segmentation) return { action: "segment", reason: "new photo" };
  if (ps.sha256 !== photo.sha256) return { action: "segment", reason: "photo changed" };
  if (p.segmentationKey === undefined) return { action: "segment", reason: "reference input changed" };
  const override = p.review?.overrides.get(photo.stem);
  if (ps.segmentation.key !== photoSegmentationKey(p.segmentationKey, override)) {
    return {
      action: "segment",
      reason: segmentationChange(ps.segmentation, p.state.settings.segmentation, p.segmentationKey, override),
    };
  }
  if (!(await filesIntact(p.outDir, { [ps.segmentation.maskFile]: ps.segmentation.mask }))) {
    return { action: "segment", reason: "stored mask missing" };
  }
  const decision = p.review?.decisions.get(photo.stem);
  if (!isKept(ps.segmentation, p.keepDoubtful, decision)) {
    return {
      action: "exclude",
      reason: decision === "exclude" ? "excluded in review" : doubtfulReason(ps.segmentation),
    };
  }
  if (p.curate && ps.curatedOut !== undefined) return { action: "exclude", reason: ps.curatedOut };
  if (!ps.outputs) return { action: "outputs", reason: "no outputs yet" };
  if (ps.outputs.key !== p.outputsKey) return { action: "outputs", reason: "output settings changed" };
  if (!(await filesIntact(p.outDir, ps.outputs.files))) {
    return { action: "outputs", reason: "output files missing or edited" };
  }
  return { action: "skip", reason: "finished, nothing changed" };
}

/**
 * A photo is in the training set unless it was excluded in review, or its mask is doubtful and
 * doubtful masks are left out (a photo included in review stays in).
 */
export function isKept(seg: SegmentationRecord, keepDoubtful: boolean, decision?: PhotoDecision): boolean {
  if (decision === "exclude") return false;
  return !seg.doubtful || keepDoubtful || decision === "include";
}

/** Why a photo's segmentation key changed: the run's settings, or its override from review. */
function segmentationChange(
  seg: SegmentationRecord,
  lastRunKey: string,
  runKey: string,
  override: ReviewMaskRecord | undefined,
): string {
  if (lastRunKey !== runKey) return "segmentation settings changed";
  const had = seg.flags.includes(OVERRIDE_FLAG);
  if (override) return had ? "mask override changed in review" : "mask override added in review";
  return had ? "mask override removed in review" : "segmentation settings changed";
}

/** Why a mask is doubtful, in one phrase. */
export function doubtfulReason(seg: SegmentationRecord): string {
  const reasons = seg.flags.filter((f) => f !== "reference");
  return `doubtful mask (confidence ${seg.confidence.toFixed(2)}${reasons.length > 0 ? `: ${reasons.join(", ")}` : ""})`;
}

function outputsKey(settings: Settings): string {
  return settingsHash({
    resolution: settings.resolution,
    crop: settings.crop,
    aspect: settings.aspect,
    margin: settings.margin,
    background: settings.background,
    bgWeight: settings.bgWeight,
    feather: settings.feather,
    caption: settings.caption,
    decode: settings.decode === "full" ? undefined : settings.decode,
  });
}

/**
 * What the reference is resolved from: the user's references (by content where they are files), the
 * masks beside photos, or, for the automatic choice, the whole photo set.
 */
async function referenceInputKey(
  params: PrepareParams,
  settings: Settings,
  input: InputScan,
  videos: readonly PlannedVideo[],
): Promise<string> {
  const userRefs = params.references ?? [];
  // A reference photo is usually one of the scanned photos: take the hash the scan computed.
  const scanned = new Map(input.scan.photos.map((p) => [p.path, p.sha256]));
  const sha256File = async (path: string): Promise<string | undefined> =>
    scanned.get(resolve(path)) ?? (await fileRecordOf(path))?.sha256;
  const { good } = input;
  return settingsHash({
    mode: settings.mode,
    user: await Promise.all(
      userRefs.map(async (r) => ({
        photo: (await sha256File(r.photo)) ?? r.photo,
        mask: r.maskPath === undefined ? undefined : ((await sha256File(r.maskPath)) ?? r.maskPath),
        clicks: r.clicks?.map((c) => [c.point[0], c.point[1], c.label]),
        box: r.box,
      })),
    ),
    beside:
      userRefs.length > 0
        ? []
        : await Promise.all(
            good
              .filter((p) => p.maskPath !== undefined)
              .map(async (p) => ({ photo: p.sha256, mask: await sha256File(p.maskPath!) })),
          ),
    // The automatic choice depends on the whole photo set.
    auto:
      userRefs.length === 0 && !good.some((p) => p.maskPath !== undefined)
        ? [...good.map((p) => p.sha256), ...videos.map((v) => `${v.video.sha256}:${v.samplingKey}`)].sort()
        : undefined,
  });
}

/** The scan with each unreadable video as a skipped file and a problem line. */
function withVideoProblems(input: InputScan, failed: ReadonlyMap<string, string>): InputScan {
  if (failed.size === 0) return input;
  const skips: SkippedFile[] = input.scan.videos
    .filter((v) => failed.has(v.stem))
    .map((v) => ({ path: v.path, relPath: v.relPath, kind: "unreadable", reason: failed.get(v.stem)! }));
  return {
    ...input,
    scan: { ...input.scan, skipped: [...input.scan.skipped, ...skips] },
    notableSkips: [...input.notableSkips, ...skips],
    problems: [...input.problems, ...skips.map((s) => `skipped ${s.reason}`)],
  };
}

/** Counts of a plan by action (`kept`: photos whose outputs stay or are rewritten). */
export function countPlan(entries: readonly PlanEntry[]): Record<PhotoAction | "kept", number> {
  const c = { skip: 0, outputs: 0, segment: 0, exclude: 0, fail: 0, kept: 0 };
  for (const e of entries) {
    c[e.action]++;
    if (e.action === "skip" || e.action === "outputs") c.kept++;
  }
  return c;
}

/** What a dry run reports: the plan, nothing written. */
export function dryRunResult(plan: PreparePlan): PrepareResult {
  const { entries, input } = plan;
  plan.params.onEvent?.({ type: "plan", entries });
  const counts = countPlan(entries);
  return {
    inputDir: plan.inputDir,
    outDir: plan.outDir,
    dryRun: true,
    plan: entries,
    photos: entries.map((e) => ({
      stem: e.stem,
      file: e.file,
      status: e.action === "fail" ? "failed" : e.action === "exclude" ? "excluded" : "ok",
      action: e.action,
      reason: e.reason,
      flags: [],
    })),
    warnings: plan.warnings,
    counts: {
      found: input.scan.photos.length,
      kept: counts.kept,
      doubtfulKept: 0,
      excluded: counts.exclude,
      failed: counts.fail,
      skippedFiles: input.notableSkips.length,
      duplicates: input.scan.duplicates.length,
      segmented: counts.segment,
      outputsWritten: counts.outputs,
      unchanged: counts.skip,
      encoded: 0,
      videos: plan.videos.videos.length,
    },
    exitCode: input.problems.length > 0 || counts.exclude > 0 ? 2 : 0,
    files: [],
  };
}
