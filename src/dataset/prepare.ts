// `prepare`: a folder of photos → a resumable DreamBooth training set. Scan → reference → per photo
// (encode with cached embeddings, PerSAM / PerSAM-F, confidence, aligned outputs) → metadata.jsonl,
// trainer exports, dataset card and report (design §1, §5, §6).

import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import pLimit from "p-limit";
import { isUserError, UserError } from "../errors.js";
import { datasetCard } from "../export/dataset-card.js";
import { diffusersConfig, writeDiffusersFiles } from "../export/diffusers.js";
import { type CopyOperation, kohyaConfig, writeKohyaFiles } from "../export/kohya.js";
import { onetrainerPlan } from "../export/onetrainer.js";
import {
  type DiffusersPreset,
  type KohyaPreset,
  loadPrepareDefaults,
  loadPreset,
  type OneTrainerPreset,
  type PreparedDataset,
  type Preset,
} from "../export/presets.js";
import { encodeJpeg, loadMaskRed, loadRgb, type RgbImage, resizeRgb } from "../image/image-io.js";
import { decodeMaskPng, encodeMaskPng } from "../image/mask-png.js";
import { isTestModelFile } from "../segment/models/tiny-model.js";
import type { FusionTrainerOptions } from "../segment/persam/persam-f.js";
import type { ReferenceMode, ReferenceSpec, ResolvedReference } from "../segment/persam/reference-source.js";
import { resolveReference } from "../segment/persam/reference-source.js";
import { PhotoEncoder, segmentPhotos } from "../segment/persam/segment-photos.js";
import {
  EmbeddingCache,
  type EmbeddingKey,
  embeddingKeyId,
  encoderFingerprint,
} from "../segment/sam/embedding-cache.js";
import { maskBox } from "../segment/sam/postprocess.js";
import type { EncodedPhoto, SamModel } from "../segment/sam/sam-model.js";
import { removeStaleTempFiles, writeFileAtomic } from "../util/atomic-write.js";
import type { Box } from "../util/tensor.js";
import { type Background, DEFAULT_BACKGROUND, parseBackground } from "./background.js";
import { DEFAULT_TOKEN, caption as makeCaption, requireClassFromFolder } from "./captions.js";
import { type CropMode, type CropRect, outputSize, resizeMask, subjectCrop } from "./crop.js";
import { type MetadataRow, toJsonl } from "./metadata.js";
import { OUTPUT_FOLDERS, writePhotoOutputs } from "./outputs.js";
import {
  EMBEDDINGS_DIR,
  emptyState,
  fileRecordOf,
  filesIntact,
  MASKS_DIR,
  type OutputsRecord,
  type PhotoState,
  readState,
  recordOf,
  type SegmentationRecord,
  StateStore,
  settingsHash,
  THUMBS_DIR,
} from "./prepare-state.js";
import {
  type PhotoReport,
  type PrepareReport,
  type ReportPoint,
  type ReportReference,
  type ReportThumbnail,
  renderReportHtml,
  summaryTable,
} from "./report.js";
import { isInside, isRoutineSkip, type ScannedPhoto, type ScanResult, scanPhotos } from "./scan.js";
import { DEFAULT_BG_WEIGHT, DEFAULT_FEATHER } from "./weight-map.js";

/** Which trainer files to write. */
export type TrainerChoice = "diffusers" | "kohya" | "onetrainer" | "all";

/** Default preset of each trainer (configs/). */
export const DEFAULT_PRESETS = {
  diffusers: "diffusers-sd15-lora",
  kohya: "kohya-sd15-lora",
  onetrainer: "onetrainer-sd15-lora",
} as const;

/** What happens to a photo in this run. */
export type PhotoAction = "skip" | "outputs" | "segment" | "exclude" | "fail";

/** One line of the plan. */
export interface PlanEntry {
  readonly stem: string;
  /** Path relative to the input folder. */
  readonly file: string;
  readonly action: PhotoAction;
  /** Why, in a few words. */
  readonly reason: string;
}

/** Outcome of one photo. */
export interface PhotoResult {
  readonly stem: string;
  readonly file: string;
  /**
   * `ok`: in the training set; `doubtful`: in it with --keep-doubtful; `excluded`: doubtful and left
   * out; `failed`: could not be processed.
   */
  readonly status: "ok" | "doubtful" | "excluded" | "failed";
  readonly action: PhotoAction;
  readonly reason?: string;
  readonly confidence?: number;
  readonly flags: readonly string[];
  /** Output files relative to the output folder (photos in the training set). */
  readonly outputs?: Readonly<Record<string, string>>;
}

/** Progress and diagnostics, in the order they happen. */
export type PrepareEvent =
  | { readonly type: "scan"; readonly photos: number; readonly problems: readonly string[] }
  | { readonly type: "plan"; readonly entries: readonly PlanEntry[] }
  | { readonly type: "reference"; readonly reused: boolean; readonly description: string }
  /** The image encoder ran on a photo (an embedding-cache miss). */
  | { readonly type: "encode"; readonly photoSha256: string }
  /** A photo was decoded at full resolution (at most once per photo and step, see design §6). */
  | { readonly type: "decode"; readonly path: string }
  | { readonly type: "photo-start"; readonly stem: string; readonly action: PhotoAction }
  | { readonly type: "photo"; readonly result: PhotoResult; readonly done: number; readonly total: number }
  | { readonly type: "warning"; readonly message: string }
  | { readonly type: "exports"; readonly files: readonly string[] };

/** Parameters of {@link prepare}. */
export interface PrepareParams {
  /** The folder of photos (never modified). */
  readonly inputDir: string;
  /**
   * The output folder.
   * @default the sibling `<inputDir>.persam`
   */
  readonly outDir?: string | undefined;
  /** The loaded SAM; this or `lazyModel` is required unless `dryRun`. */
  readonly model?: SamModel | undefined;
  /**
   * The SAM model's files and how to load it, for a caller that would rather not load it when
   * nothing needs segmenting: an unchanged rerun, or one that only redoes outputs, then never opens
   * the two onnxruntime sessions (~1.5 s for SlimSAM-77, several for ViT-B). Ignored when `model`
   * is given. The caller disposes what `load` returned.
   */
  readonly lazyModel?:
    | { readonly files: SamModel["files"]; readonly load: () => Promise<SamModel> }
    | undefined;
  /** Identity of the model for a dry run without a loaded model (see {@link modelKeyOf}). */
  readonly modelKey?: string | undefined;
  /**
   * The user's references; empty → the `<stem>.mask.png` beside photos, else an automatic choice.
   * @default []
   */
  readonly references?: readonly ReferenceSpec[] | undefined;
  /** @default "persam" */
  readonly mode?: ReferenceMode | undefined;
  /** PerSAM-F optimiser settings (defaults: the reference implementation's). */
  readonly fusionTrainer?: FusionTrainerOptions | undefined;
  /** Shorter side of the training images. @default the preset's, else 512 */
  readonly resolution?: number | undefined;
  /** @default "subject" */
  readonly crop?: CropMode | undefined;
  /** Crop aspect, width / height. @default 1 */
  readonly aspect?: number | undefined;
  /** Context around the subject, fraction of its box. @default 0.1 */
  readonly margin?: number | undefined;
  /** @default "white" */
  readonly background?: Background | string | undefined;
  /** Loss-weight floor of the background. @default 0.1 */
  readonly bgWeight?: number | undefined;
  /** Soft edge in output pixels. @default 8 */
  readonly feather?: number | undefined;
  /** @default "sks" */
  readonly token?: string | undefined;
  /** The subject's class noun. @default from the folder name (captions.ts, classFromFolder) */
  readonly className?: string | undefined;
  /** @default "a photo of {token} {class}" */
  readonly captionTemplate?: string | undefined;
  /** Keep doubtful photos in the training set. @default false */
  readonly keepDoubtful?: boolean | undefined;
  /** @default "all" */
  readonly trainer?: TrainerChoice | undefined;
  /** A preset name from configs/ (its trainer's default preset is replaced). */
  readonly preset?: string | undefined;
  /** Folder of presets. @default the package's configs/ */
  readonly configsDir?: string | undefined;
  /** Redo everything (state and embedding cache ignored). @default false */
  readonly force?: boolean | undefined;
  /** Plan only; write nothing. @default false */
  readonly dryRun?: boolean | undefined;
  /** Photos processed at once. @default 1 */
  readonly jobs?: number | undefined;
  /** Scan subfolders. @default false */
  readonly recursive?: boolean | undefined;
  /** Pixel limit per photo. @default DEFAULT_MAX_PIXELS */
  readonly maxPixels?: number | undefined;
  /** Tool name for the report. @default "persam-db" */
  readonly tool?: string | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: PrepareEvent) => void) | undefined;
}

/** What {@link prepare} did (or, with `dryRun`, would do). */
export interface PrepareResult {
  readonly inputDir: string;
  readonly outDir: string;
  readonly dryRun: boolean;
  readonly plan: readonly PlanEntry[];
  /** Per photo, in scan order (failed ones included). */
  readonly photos: readonly PhotoResult[];
  /** One line per skipped input file, duplicate or other problem. */
  readonly warnings: readonly string[];
  readonly counts: {
    readonly found: number;
    readonly kept: number;
    readonly doubtfulKept: number;
    readonly excluded: number;
    readonly failed: number;
    readonly skippedFiles: number;
    readonly duplicates: number;
    readonly segmented: number;
    readonly outputsWritten: number;
    readonly unchanged: number;
    readonly encoded: number;
  };
  /** 0 when everything went in, 2 (ExitCode.partial) when anything was skipped or excluded. */
  readonly exitCode: 0 | 2;
  /** The report data (absent in a dry run). */
  readonly report?: PrepareReport;
  /** The terminal summary table (absent in a dry run). */
  readonly summary?: string;
  /** Files written at the top of the output folder (exports, metadata, report). */
  readonly files: readonly string[];
}

/** Stem suffixes of the per-photo files a run may have written, relative to the output folder. */
function photoFiles(stem: string): string[] {
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

/** A model's identity for the state: registry label, encoder fingerprint and decoder file. */
export async function modelKeyOf(files: SamModel["files"]): Promise<string> {
  const decoder = await stat(files.decoderPath);
  return `${await encoderFingerprint(files.encoderPath, files.label)}|${files.decoderPath}|${decoder.size}|${Math.round(decoder.mtimeMs)}`;
}

/** The default output folder: the sibling `<dir>.persam`. */
export function defaultOutDir(inputDir: string): string {
  return `${resolve(inputDir)}.persam`;
}

/**
 * An embedding cache that reports encoder runs and, for --force, never answers from disk with an
 * embedding of an earlier run (those written by this run are answered: they are what the encoder
 * gives now, and the per-photo step reads the reference step's embeddings back from here).
 */
class RunCache extends EmbeddingCache {
  private readonly written = new Set<string>();
  constructor(
    dir: string,
    private readonly bypass: boolean,
    private readonly onPut: (key: EmbeddingKey) => void,
  ) {
    super(dir);
  }
  override async get(key: EmbeddingKey): Promise<EncodedPhoto | undefined> {
    return this.bypass && !this.written.has(embeddingKeyId(key)) ? undefined : super.get(key);
  }
  override async put(key: EmbeddingKey, photo: EncodedPhoto): Promise<void> {
    this.onPut(key);
    await mkdir(this.dir, { recursive: true });
    await super.put(key, photo);
    this.written.add(embeddingKeyId(key));
  }
}

/**
 * Embeddings `prepare` keeps in memory (4 MiB each). The per-photo step uses each photo's embedding
 * once, so a larger memory only holds garbage: keeping one per photo (the former `min(64, photos)`)
 * grew a run by 4 MiB a photo (50 photos, ViT-B-size encoder: peak RSS 2131 → 1898 MiB). What the reference step encoded
 * (every photo, for the automatic choice) is read back from the run's embedding cache on disk
 * instead (~4 MiB read per photo, a few ms), never encoded again.
 */
const PREPARE_MEMORY_EMBEDDINGS = 2;

interface Settings {
  readonly mode: ReferenceMode;
  readonly resolution: number;
  readonly crop: CropMode;
  readonly aspect: number;
  readonly margin: number;
  readonly background: Background;
  readonly bgWeight: number;
  readonly feather: number;
  readonly token: string;
  readonly className: string;
  readonly caption: string;
  readonly keepDoubtful: boolean;
  readonly trainer: TrainerChoice;
  readonly presets: {
    readonly diffusers?: DiffusersPreset;
    readonly kohya?: KohyaPreset;
    readonly onetrainer?: OneTrainerPreset;
  };
}

async function resolveSettings(params: PrepareParams, inputDir: string): Promise<Settings> {
  const trainer = params.trainer ?? "all";
  if (!["diffusers", "kohya", "onetrainer", "all"].includes(trainer)) {
    throw new UserError(
      `Expected diffusers, kohya, onetrainer or all for trainer but received ${JSON.stringify(trainer)}`,
    );
  }
  const configs = params.configsDir === undefined ? {} : { configsDir: params.configsDir };
  const chosen: Preset | undefined =
    params.preset === undefined ? undefined : await loadPreset({ name: params.preset, ...configs });
  if (chosen && trainer !== "all" && chosen.trainer !== trainer) {
    throw new UserError(`The preset ${params.preset} is for ${chosen.trainer}, not ${trainer}`, {
      hint: `pass --trainer ${chosen.trainer} or --trainer all, or another preset`,
    });
  }
  const wanted = (["diffusers", "kohya", "onetrainer"] as const).filter(
    (t) => trainer === "all" || trainer === t,
  );
  const presets: { diffusers?: DiffusersPreset; kohya?: KohyaPreset; onetrainer?: OneTrainerPreset } = {};
  for (const t of wanted) {
    const p = chosen?.trainer === t ? chosen : await loadPreset({ name: DEFAULT_PRESETS[t], ...configs });
    if (p.trainer === "diffusers") presets.diffusers = p;
    else if (p.trainer === "kohya") presets.kohya = p;
    else presets.onetrainer = p;
  }
  const defaults = await loadPrepareDefaults(configs);
  const resolution = params.resolution ?? chosen?.resolution ?? defaults.resolution[defaults.baseModel];
  if (!Number.isInteger(resolution) || resolution < 64 || resolution > 4096) {
    throw new UserError(`Expected an integer from 64 to 4096 for resolution but received ${resolution}`, {
      hint: "512 for SD 1.5, 1024 for SDXL and Flux",
    });
  }
  const aspect = params.aspect ?? 1;
  if (!Number.isFinite(aspect) || aspect <= 0 || aspect > 10 || aspect < 0.1) {
    throw new UserError(`Expected an aspect ratio between 1:10 and 10:1 but received ${aspect}`);
  }
  const bgWeight = params.bgWeight ?? DEFAULT_BG_WEIGHT;
  if (!(bgWeight >= 0 && bgWeight <= 1)) {
    throw new UserError(`Expected a number from 0 to 1 for the background weight but received ${bgWeight}`);
  }
  const feather = params.feather ?? DEFAULT_FEATHER;
  if (!(feather >= 0 && feather <= 256)) {
    throw new UserError(`Expected a number of pixels from 0 to 256 for feather but received ${feather}`);
  }
  const crop = params.crop ?? "subject";
  if (!["subject", "center", "none"].includes(crop)) {
    throw new UserError(`Expected subject, center or none for crop but received ${JSON.stringify(crop)}`);
  }
  const mode = params.mode ?? "persam";
  if (mode !== "persam" && mode !== "persam-f") {
    throw new UserError(`Expected persam or persam-f for mode but received ${JSON.stringify(mode)}`);
  }
  const margin = params.margin ?? 0.1;
  const token = params.token ?? defaults.token ?? DEFAULT_TOKEN;
  const className = params.className ?? requireClassFromFolder(inputDir);
  const template = params.captionTemplate ?? defaults.instancePrompt;
  return {
    mode,
    resolution,
    crop,
    aspect,
    margin,
    background: parseBackground(params.background ?? DEFAULT_BACKGROUND),
    bgWeight,
    feather,
    token,
    className,
    caption: makeCaption({ token, className, template }),
    keepDoubtful: params.keepDoubtful ?? false,
    trainer,
    presets,
  };
}

/**
 * Turn a folder of photos into a training set (design §5). Inputs are opened read-only; every file
 * is written under a temporary name and renamed; OUT/.persam/state.json makes a rerun redo only
 * what changed (photo content, segmentation settings, output settings, missing or edited files).
 * A photo that cannot be read, decoded or masked is reported with one line and left out; doubtful
 * masks are left out unless `keepDoubtful`; `exitCode` is 2 when anything was left out.
 * @throws UserError for a missing folder, no photos, bad settings, an unusable reference.
 * @throws AbortError when `signal` aborts (every file written so far is complete; rerun to finish).
 */
export async function prepare(params: PrepareParams): Promise<PrepareResult> {
  const started = performance.now();
  const emit = (event: PrepareEvent): void => params.onEvent?.(event);
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
    emit({ type: "warning", message });
  };
  const dryRun = params.dryRun ?? false;
  const force = params.force ?? false;
  const signal = params.signal;

  // ---- folders and settings ----------------------------------------------------------------
  const inputDir = resolve(params.inputDir);
  const inputInfo = await stat(inputDir).catch(() => undefined);
  if (!inputInfo) {
    throw new UserError(`The photo folder ${params.inputDir} does not exist`, { hint: "check the path" });
  }
  if (!inputInfo.isDirectory()) {
    throw new UserError(`${params.inputDir} is not a folder`, {
      hint: "give the folder that holds the photos",
    });
  }
  const outDir = params.outDir === undefined ? defaultOutDir(inputDir) : resolve(params.outDir);
  if (outDir === inputDir || isInside(inputDir, outDir)) {
    throw new UserError(`The output folder ${outDir} would contain the photo folder ${inputDir}`, {
      hint: "choose an output folder outside the photos (the default is the sibling <DIR>.persam)",
    });
  }
  if (isInside(outDir, inputDir)) {
    warn(`the output folder ${outDir} lies inside the photo folder; the scan skips it`);
  }
  const settings = await resolveSettings(params, inputDir);
  if (!dryRun && params.model === undefined && params.lazyModel === undefined)
    throw new Error("prepare needs a model (or lazyModel) unless dryRun is set");
  const jobs = params.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
    throw new UserError(`Expected an integer from 1 to 64 for jobs but received ${jobs}`);
  }

  // ---- scan --------------------------------------------------------------------------------
  const scan: ScanResult = await scanPhotos({
    dir: inputDir,
    recursive: params.recursive ?? false,
    outputDir: outDir,
    ...(params.maxPixels === undefined ? {} : { maxPixels: params.maxPixels }),
  });
  // Hidden files, subfolders and our own output folder are skipped routinely: not worth a warning.
  const notableSkips = scan.skipped.filter((s) => !isRoutineSkip(s));
  const problems = notableSkips.map((s) => `skipped ${s.reason}`);
  for (const d of scan.duplicates) {
    problems.push(
      `skipped ${d.relPath}: same bytes as ${d.duplicateOf} (a duplicate would count twice in training)`,
    );
  }
  // A `<stem>.mask.png` beside a photo that does not fit it (wrong size, empty, unreadable) makes
  // that photo bad, not the run (design §6). Masks are small: reading one whole is cheap.
  const failedPhotos = new Map<string, string>();
  for (const photo of scan.photos) {
    if (photo.maskPath === undefined) continue;
    try {
      const m = await loadMaskRed(photo.maskPath);
      if (m.width !== photo.width || m.height !== photo.height) {
        failedPhotos.set(
          photo.stem,
          `${photo.relPath}: its mask ${basename(photo.maskPath)} is ${m.width}×${m.height} but the photo is ${photo.width}×${photo.height} — redraw or resize the mask`,
        );
      }
    } catch (error) {
      if (!isUserError(error)) throw error;
      failedPhotos.set(photo.stem, `${photo.relPath}: its mask is unusable (${error.toLine()})`);
    }
  }
  for (const line of failedPhotos.values()) problems.push(`skipped ${line}`);
  for (const p of problems) warn(p);
  emit({ type: "scan", photos: scan.photos.length, problems });
  const good = scan.photos.filter((p) => !failedPhotos.has(p.stem));
  if (good.length === 0) {
    const why = problems[0] ?? scan.skipped.find((s) => s.kind === "folder")?.reason;
    throw new UserError(
      scan.photos.length === 0
        ? `No photos found in ${params.inputDir}`
        : `No usable photo in ${params.inputDir}`,
      {
        hint: why
          ? `${why}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}`
          : "put JPEG, PNG, WebP, TIFF or AVIF photos of one subject in the folder",
      },
    );
  }

  // ---- state and keys ----------------------------------------------------------------------
  const previous = await readState(outDir);
  if (previous.problem) warn(previous.problem);
  const oldState = previous.state;
  const store = new StateStore(
    outDir,
    force ? { ...emptyState(), exportFiles: oldState.exportFiles } : oldState,
  );
  const state = store.state;

  const modelFiles = params.model?.files ?? params.lazyModel?.files;
  const modelKey = modelFiles ? await modelKeyOf(modelFiles) : params.modelKey;
  const userRefs = params.references ?? [];
  // A reference photo is usually one of the scanned photos: take the hash the scan computed.
  const scannedSha256 = new Map(scan.photos.map((p) => [p.path, p.sha256]));
  const sha256File = async (path: string): Promise<string | undefined> =>
    scannedSha256.get(resolve(path)) ?? (await fileRecordOf(path))?.sha256;
  const refInput = {
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
        ? good.map((p) => p.sha256).sort()
        : undefined,
  };
  const refInputKey = settingsHash(refInput);
  let refIdentity =
    !force && state.reference?.inputKey === refInputKey ? state.reference.identity : undefined;
  const outKey = settingsHash({
    resolution: settings.resolution,
    crop: settings.crop,
    aspect: settings.aspect,
    margin: settings.margin,
    background: settings.background,
    bgWeight: settings.bgWeight,
    feather: settings.feather,
    caption: settings.caption,
  });
  const exportKey = settingsHash({
    trainer: settings.trainer,
    presets: settings.presets,
    token: settings.token,
    className: settings.className,
  });
  const segKeyOf = (identity: string | undefined): string | undefined =>
    identity === undefined
      ? undefined
      : modelKey === undefined
        ? state.settings.segmentation || undefined
        : settingsHash({
            model: modelKey,
            mode: settings.mode,
            reference: identity,
            fusion: settings.mode === "persam-f" ? (params.fusionTrainer ?? {}) : undefined,
          });
  let segKey = segKeyOf(refIdentity);

  const plan = async (): Promise<PlanEntry[]> => {
    const entries: PlanEntry[] = [];
    for (const photo of scan.photos) {
      const failed = failedPhotos.get(photo.stem);
      if (failed !== undefined) {
        entries.push({ stem: photo.stem, file: photo.relPath, action: "fail", reason: failed });
        continue;
      }
      entries.push({ stem: photo.stem, file: photo.relPath, ...(await planPhoto(photo)) });
    }
    return entries;
  };
  const planPhoto = async (photo: ScannedPhoto): Promise<{ action: PhotoAction; reason: string }> => {
    const ps = state.photos[photo.stem];
    if (!ps?.segmentation) return { action: "segment", reason: "new photo" };
    if (ps.sha256 !== photo.sha256) return { action: "segment", reason: "photo changed" };
    if (segKey === undefined) return { action: "segment", reason: "reference input changed" };
    if (ps.segmentation.key !== segKey) return { action: "segment", reason: "segmentation settings changed" };
    if (!(await filesIntact(outDir, { [ps.segmentation.maskFile]: ps.segmentation.mask }))) {
      return { action: "segment", reason: "stored mask missing" };
    }
    if (!kept(ps.segmentation)) return { action: "exclude", reason: doubtfulReason(ps.segmentation) };
    if (!ps.outputs) return { action: "outputs", reason: "no outputs yet" };
    if (ps.outputs.key !== outKey) return { action: "outputs", reason: "output settings changed" };
    if (!(await filesIntact(outDir, ps.outputs.files)))
      return { action: "outputs", reason: "output files missing or edited" };
    return { action: "skip", reason: "finished, nothing changed" };
  };
  const kept = (seg: SegmentationRecord): boolean => !seg.doubtful || settings.keepDoubtful;

  let entries = await plan();
  const needsReference = (list: readonly PlanEntry[]): boolean => list.some((e) => e.action === "segment");

  if (dryRun) {
    emit({ type: "plan", entries });
    const counts = countPlan(entries);
    return {
      inputDir,
      outDir,
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
      warnings,
      counts: {
        found: scan.photos.length,
        kept: counts.kept,
        doubtfulKept: 0,
        excluded: counts.exclude,
        failed: counts.fail,
        skippedFiles: notableSkips.length,
        duplicates: scan.duplicates.length,
        segmented: counts.segment,
        outputsWritten: counts.outputs,
        unchanged: counts.skip,
        encoded: 0,
      },
      exitCode: problems.length > 0 || counts.exclude > 0 ? 2 : 0,
      files: [],
    };
  }
  // The model is opened only when something needs the encoder or decoder: a new or changed
  // reference, or a photo to segment. Outputs and unchanged photos need neither.
  const needsModel = refIdentity === undefined || needsReference(entries);
  const model: SamModel | undefined =
    params.model ?? (needsModel ? await params.lazyModel!.load() : undefined);
  await removeStaleTempFiles(outDir);

  // ---- reference ---------------------------------------------------------------------------
  let encoded = 0;
  const cache = new RunCache(join(outDir, EMBEDDINGS_DIR), force, (key) => {
    encoded++;
    emit({ type: "encode", photoSha256: key.photoSha256 });
  });
  // Every full-resolution decode goes through here. The photo the reference step decoded last is
  // handed on to the per-photo step, which takes it first: a single reference photo (the usual case)
  // is then decoded once in all. The others the reference step decoded are decoded again for their
  // outputs, as the reference must exist before any photo can be segmented and keeping them all
  // decoded would hold many photos in memory (design §6: at most one per worker).
  let handoff: { path: string; image: RgbImage } | undefined;
  let handingOff = false;
  const decodePhoto = async (path: string): Promise<RgbImage> => {
    if (handingOff) handoff = undefined; // at most one decoded photo alive, even here
    const image = await loadRgb(path, params.maxPixels === undefined ? {} : { maxPixels: params.maxPixels });
    emit({ type: "decode", path });
    if (handingOff) handoff = { path: resolve(path), image };
    return image;
  };
  const encoder = new PhotoEncoder({
    // Not reached without a model: only a reference to resolve or a photo to segment encodes.
    get model(): SamModel {
      if (model === undefined) throw new Error("prepare: the model was not loaded but is needed");
      return model;
    },
    cache,
    memoryEntries: PREPARE_MEMORY_EMBEDDINGS,
    load: decodePhoto,
  });
  let reference: ResolvedReference | undefined;
  let referenceReport = state.reference?.report as ReportReference | undefined;
  if (needsModel) {
    signal?.throwIfAborted();
    handingOff = true;
    reference = await resolveReference({
      model: model!,
      encoder,
      references: userRefs,
      photos: good.map((p) => ({
        path: p.path,
        sha256: p.sha256,
        ...(p.maskPath ? { maskPath: p.maskPath } : {}),
      })),
      mode: settings.mode,
      ...(params.fusionTrainer ? { trainer: params.fusionTrainer } : {}),
      signal,
    }).finally(() => {
      handingOff = false;
    });
    const identity = settingsHash({
      mode: reference.mode,
      refs: reference.references.map((r) => ({ photo: r.sha256, mask: recordOf(r.mask).sha256 })),
    });
    referenceReport = reportReference(reference, good, inputDir);
    emit({ type: "reference", reused: false, description: referenceText(referenceReport) });
    if (identity !== refIdentity) {
      refIdentity = identity;
      segKey = segKeyOf(identity);
      entries = await plan();
    }
    await store.update((s) => {
      s.reference = { inputKey: refInputKey, identity, report: { ...referenceReport } };
    });
  } else if (referenceReport) {
    emit({ type: "reference", reused: true, description: referenceText(referenceReport) });
  }
  emit({ type: "plan", entries });
  await store.update((s) => {
    s.settings = { segmentation: segKey ?? "", outputs: outKey, exports: exportKey };
  });

  // Photos whose mask the user gave keep that mask (it is better than any prediction of it).
  const givenMasks = new Map<string, Uint8Array>();
  for (const r of reference?.references ?? []) {
    if (r.source !== "auto") givenMasks.set(r.sha256, r.mask);
  }

  // ---- per photo ---------------------------------------------------------------------------
  const results = new Map<string, PhotoResult>();
  const reports = new Map<string, PhotoReport>();
  let done = 0;
  const total = entries.length;
  const work = entries.filter((e) => e.action !== "fail");
  const counters = { segmented: 0, outputs: 0, unchanged: 0 };
  const byStem = new Map(scan.photos.map((p) => [p.stem, p]));
  // The photo handed on by the reference step goes first (its pixels are not kept waiting).
  const handed = work.findIndex((e) => e.action !== "skip" && byStem.get(e.stem)!.path === handoff?.path);
  if (handed >= 0) work.unshift(...work.splice(handed, 1));
  else handoff = undefined;

  const finish = (result: PhotoResult, report: PhotoReport): void => {
    results.set(result.stem, result);
    reports.set(result.stem, report);
    done++;
    emit({ type: "photo", result, done, total });
  };
  /** A photo that could not be processed: a failed result, and a skipped row in the report. */
  const finishFailed = (photo: ScannedPhoto, reason: string): void => {
    const { stem, relPath: file, width, height } = photo;
    finish(
      { stem, file, status: "failed", action: "fail", reason, flags: [] },
      { stem, file, status: "skipped", reason, flags: [], points: [], timingsMs: {}, width, height },
    );
  };
  for (const e of entries) {
    if (e.action === "fail") {
      finishFailed(byStem.get(e.stem)!, e.reason);
    }
  }

  const processPhoto = async (entry: PlanEntry): Promise<void> => {
    signal?.throwIfAborted();
    const photo = byStem.get(entry.stem)!;
    emit({ type: "photo-start", stem: entry.stem, action: entry.action });
    const t0 = performance.now();
    let action = entry.action;
    let mask: Uint8Array | undefined;
    // The one decoded photo of this worker: decoded at most once here, for encoding and outputs.
    let image: RgbImage | undefined;
    if (handoff?.path === photo.path) {
      image = handoff.image;
      handoff = undefined;
    }
    const old = state.photos[photo.stem];
    const ps: PhotoState =
      old && old.sha256 === photo.sha256 ? { ...old } : { relPath: photo.relPath, sha256: photo.sha256 };
    ps.relPath = photo.relPath;

    if (action === "segment") {
      const given = givenMasks.get(photo.sha256);
      let seg: SegmentationRecord;
      const maskFile = `${MASKS_DIR}/${photo.stem}.png`;
      if (given) {
        mask = given;
        let area = 0;
        for (let i = 0; i < given.length; i++) if (given[i]) area++;
        seg = {
          key: segKey!,
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
        // Decoded here rather than by the encoder: the outputs or thumbnails below need the pixels
        // too (even when the embedding is cached), and a photo is decoded only once (design §6).
        const t = performance.now();
        let failure: string | undefined;
        try {
          image ??= await decodePhoto(photo.path);
        } catch (error) {
          if (!isUserError(error)) throw error;
          failure = error.toLine();
        }
        const decodeMs = performance.now() - t;
        const out =
          image === undefined
            ? undefined
            : await segmentPhotos({
                model: encoder.model,
                encoder,
                reference: reference!,
                mode: settings.mode,
                photos: [{ path: photo.path, sha256: photo.sha256, image }],
                signal,
              });
        const outcome = out?.photos[0];
        if (outcome === undefined || outcome.status === "failed") {
          image = undefined;
          const reason = `${photo.relPath}: ${outcome?.reason ?? failure}`;
          warn(`skipped ${reason}`);
          delete state.photos[photo.stem];
          await removeFiles(outDir, [...photoFiles(photo.stem), maskFile]);
          await store.update((s) => {
            delete s.photos[photo.stem];
          });
          finishFailed(photo, reason);
          return;
        }
        mask = outcome.mask!;
        seg = {
          key: segKey!,
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
      // The full-resolution mask as a 1-bit PNG (mask-png.ts): ~15–25 ms for 12 MP instead of
      // ~50–65 ms for sharp's 8-bit PNG, and read back without sharp by loadStoredMask.
      const tm = performance.now();
      const png = encodeMaskPng(mask, seg.width, seg.height);
      await writeInside(outDir, maskFile, png);
      seg.mask = recordOf(png);
      seg.timingsMs = { ...seg.timingsMs, maskWriteMs: roundMs(performance.now() - tm) };
      ps.segmentation = seg;
      delete ps.outputs;
      delete ps.thumbs;
      counters.segmented++;
      await store.update((s) => {
        s.photos[photo.stem] = ps;
      });
      action = kept(seg) ? "segment" : "exclude";
    }
    const seg = ps.segmentation!;
    const isKept = kept(seg);

    // Thumbnails for the report (kept across runs; redone with the photo or its mask).
    const needThumbs = !ps.thumbs || !(await exists(join(outDir, ps.thumbs.photo)));
    if (isKept && (action === "segment" || action === "outputs")) {
      // Decoding and mask reading are timed apart from writeMs (they happen here only when the
      // photo was not segmented in this run).
      const loadTimings: Record<string, number> = {};
      if (image === undefined) {
        const t = performance.now();
        image = await decodePhoto(photo.path);
        loadTimings.decodeMs = roundMs(performance.now() - t);
      }
      if (mask === undefined) {
        const t = performance.now();
        mask = await loadStoredMask(join(outDir, seg.maskFile), seg);
        loadTimings.maskLoadMs = roundMs(performance.now() - t);
      }
      const t1 = performance.now();
      const box = maskBox(mask, image.width, image.height);
      const crop = subjectCrop({
        width: image.width,
        height: image.height,
        box,
        aspect: settings.aspect,
        margin: settings.margin,
        mode: settings.crop,
      });
      const written = await writePhotoOutputs({
        outDir,
        stem: photo.stem,
        photo: image,
        mask,
        crop,
        resolution: settings.resolution,
        background: settings.background,
        bgWeight: settings.bgWeight,
        feather: settings.feather,
        caption: settings.caption,
        confidence: seg.confidence,
        flags: seg.doubtful ? ["doubtful", ...seg.flags] : seg.flags,
      });
      const size = outputSize(crop, settings.resolution);
      const cropFlags = [
        ...(crop.cutsSubject ? ["cuts-subject"] : []),
        ...(crop.marginReduced ? ["margin-reduced"] : []),
        ...(size.width > crop.width ? ["upscaled"] : []),
        ...(box === undefined ? ["empty-mask"] : []),
      ];
      ps.outputs = {
        key: outKey,
        files: { ...written.records },
        row: { ...written.row },
        crop: { left: crop.left, top: crop.top, width: crop.width, height: crop.height },
        cropFlags,
        ...(box ? { box: [box[0], box[1], box[2], box[3]] as [number, number, number, number] } : {}),
        width: written.width,
        height: written.height,
        timingsMs: { ...loadTimings, writeMs: Math.round(performance.now() - t1) },
      };
      counters.outputs++;
    } else if (!isKept) {
      // Left out of the training set: no file of it may remain where a trainer would read it.
      if (ps.outputs || action === "segment") await removeFiles(outDir, photoFiles(photo.stem));
      delete ps.outputs;
    } else {
      counters.unchanged++;
    }
    // Timings of this run only (not kept in the state): thumbnails and the state update.
    const runTimings: Record<string, number> = {};
    if (needThumbs && (image !== undefined || action !== "skip")) {
      const t = performance.now();
      image ??= await decodePhoto(photo.path);
      mask ??= await loadStoredMask(join(outDir, seg.maskFile), seg);
      ps.thumbs = await writeThumbnails(outDir, photo.stem, image, mask);
      runTimings.thumbsMs = roundMs(performance.now() - t);
    }
    image = undefined;
    mask = undefined;
    const ts = performance.now();
    await store.update((s) => {
      s.photos[photo.stem] = ps;
    });
    runTimings.stateMs = roundMs(performance.now() - ts);

    const status: PhotoResult["status"] = !seg.doubtful ? "ok" : isKept ? "doubtful" : "excluded";
    const flags = [...seg.flags, ...(ps.outputs?.cropFlags ?? [])];
    const reason =
      status === "excluded"
        ? `${doubtfulReason(seg)}; left out of the training set (--keep-doubtful keeps it)`
        : status === "doubtful"
          ? `${doubtfulReason(seg)}; kept (--keep-doubtful)`
          : undefined;
    const outputs = ps.outputs ? Object.keys(ps.outputs.files) : undefined;
    finish(
      {
        stem: photo.stem,
        file: photo.relPath,
        status,
        action: action === "segment" && !isKept ? "exclude" : action,
        ...(reason ? { reason } : {}),
        confidence: seg.confidence,
        flags,
        ...(outputs ? { outputs: Object.fromEntries(outputs.map((f) => [f.split("/")[0]!, f])) } : {}),
      },
      photoReport(
        photo,
        ps,
        status === "excluded" ? "doubtful" : status,
        reason,
        performance.now() - t0,
        runTimings,
      ),
    );
  };

  const limit = pLimit(jobs);
  const settled = await Promise.allSettled(work.map((entry) => limit(() => processPhoto(entry))));
  await store.flush();
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failure) {
    const abort = settled.find(
      (s): s is PromiseRejectedResult =>
        s.status === "rejected" && (s.reason as Error)?.name === "AbortError",
    );
    throw (abort ?? failure).reason;
  }
  signal?.throwIfAborted();

  // ---- stale photos: gone from the folder, or now a duplicate / bad ------------------------
  const current = new Set(good.map((p) => p.stem));
  for (const stem of Object.keys(state.photos)) {
    if (current.has(stem) && !failedPhotos.has(stem)) continue;
    await removeFiles(outDir, [
      ...photoFiles(stem),
      `${MASKS_DIR}/${stem}.png`,
      `${THUMBS_DIR}/${stem}.jpg`,
      `${THUMBS_DIR}/${stem}.mask.png`,
    ]);
    await store.update((s) => {
      delete s.photos[stem];
    });
  }

  // ---- metadata, exports, card, report -----------------------------------------------------
  const ordered = scan.photos
    .map((p) => results.get(p.stem))
    .filter((r): r is PhotoResult => r !== undefined);
  const keptStems = ordered.filter((r) => r.status === "ok" || r.status === "doubtful").map((r) => r.stem);
  const rows = keptStems.map((stem) => state.photos[stem]!.outputs!.row as unknown as MetadataRow);
  const files: string[] = [];
  await writeInside(outDir, "metadata.jsonl", toJsonl(rows));
  files.push("metadata.jsonl");

  const exportFiles: string[] = [];
  if (keptStems.length > 0) {
    const dataset: PreparedDataset = {
      token: settings.token,
      className: settings.className,
      instancePrompt: settings.caption,
      resolution: settings.resolution,
      model: modelFiles!.label,
      mode: settings.mode,
      reference: referenceReport ? referenceText(referenceReport) : "unknown",
      stems: keptStems,
      settings: {
        crop: settings.crop,
        aspect: settings.aspect,
        background: settings.background,
        bgWeight: settings.bgWeight,
        feather: settings.feather,
      },
    };
    exportFiles.push(...(await writeExports(outDir, dataset, settings)));
  } else {
    warn(
      `no photo is in the training set (${ordered.filter((r) => r.status === "excluded").length} doubtful, ${ordered.filter((r) => r.status === "failed").length} failed): no trainer files written; see report.html, or rerun with --keep-doubtful`,
    );
  }
  emit({ type: "exports", files: exportFiles });
  files.push(...exportFiles);
  // Export files of the previous run that this run did not write (another --trainer, no photos).
  await removeFiles(
    outDir,
    oldState.exportFiles.filter((f) => !exportFiles.includes(f)),
  );
  await store.update((s) => {
    s.exportFiles = exportFiles;
  });

  const photoReports = scan.photos
    .map((p) => reports.get(p.stem))
    .filter((r): r is PhotoReport => r !== undefined);
  const report: PrepareReport = {
    version: 1,
    createdAt: new Date().toISOString(),
    tool: params.tool ?? "persam-db",
    input: basename(inputDir),
    output: basename(outDir),
    settings: {
      class: settings.className,
      model: modelFiles!.label,
      testModel: model?.isTestModel ?? (await isTestModelFile(modelFiles!.decoderPath)),
      mode: settings.mode,
      reference: referenceReport ? referenceText(referenceReport) : null,
      resolution: settings.resolution,
      crop: settings.crop,
      aspect: settings.aspect,
      background: settings.background,
      bgWeight: settings.bgWeight,
      feather: settings.feather,
      caption: settings.caption,
      trainer: settings.trainer,
      keepDoubtful: settings.keepDoubtful,
    },
    reference: referenceReport ?? {
      stem: good[0]!.stem,
      file: good[0]!.relPath,
      method: "auto",
      width: good[0]!.width,
      height: good[0]!.height,
    },
    photos: photoReports,
    skippedFiles: [
      ...scan.skipped
        .filter((s) => s.kind !== "hidden" && s.kind !== "output-folder")
        .map((s) => ({ path: s.relPath, reason: s.reason })),
      ...scan.duplicates.map((d) => ({ path: d.relPath, reason: `duplicate of ${d.duplicateOf}` })),
    ],
    timingsMs: { totalMs: Math.round(performance.now() - started) },
  };
  const thumbnails = new Map<string, ReportThumbnail>();
  for (const p of photoReports) {
    const t = state.photos[p.stem]?.thumbs;
    if (!t) continue;
    const photoBytes = await readFile(join(outDir, t.photo)).catch(() => undefined);
    if (!photoBytes) continue;
    const maskBytes = await readFile(join(outDir, t.mask)).catch(() => undefined);
    thumbnails.set(p.stem, {
      photo: { bytes: photoBytes, mime: "image/jpeg" },
      ...(maskBytes ? { mask: { bytes: maskBytes, mime: "image/png" as const } } : {}),
    });
  }
  await writeInside(outDir, "report.json", `${JSON.stringify(report, null, 2)}\n`);
  await writeInside(outDir, "report.html", renderReportHtml({ report, thumbnails }));
  files.push("report.json", "report.html");
  await store.flush();

  const count = (s: PhotoResult["status"]): number => ordered.filter((r) => r.status === s).length;
  const excluded = count("excluded");
  const failed = count("failed");
  return {
    inputDir,
    outDir,
    dryRun: false,
    plan: entries,
    photos: ordered,
    warnings,
    counts: {
      found: scan.photos.length,
      kept: keptStems.length,
      doubtfulKept: count("doubtful"),
      excluded,
      failed,
      skippedFiles: notableSkips.length,
      duplicates: scan.duplicates.length,
      segmented: counters.segmented,
      outputsWritten: counters.outputs,
      unchanged: counters.unchanged,
      encoded,
    },
    exitCode: problems.length > 0 || excluded > 0 || failed > 0 || keptStems.length === 0 ? 2 : 0,
    report,
    summary: summaryTable(report),
    files,
  };
}

function countPlan(entries: readonly PlanEntry[]): Record<PhotoAction | "kept", number> {
  const c = { skip: 0, outputs: 0, segment: 0, exclude: 0, fail: 0, kept: 0 };
  for (const e of entries) {
    c[e.action]++;
    if (e.action === "skip" || e.action === "outputs") c.kept++;
  }
  return c;
}

function doubtfulReason(seg: SegmentationRecord): string {
  const reasons = seg.flags.filter((f) => f !== "reference");
  return `doubtful mask (confidence ${seg.confidence.toFixed(2)}${reasons.length > 0 ? `: ${reasons.join(", ")}` : ""})`;
}

function clamp01(v: number): number {
  return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
}

function roundTimings(t: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, roundMs(v)]));
}

/** Milliseconds to one decimal, as the report shows them. */
function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Write a file inside the output folder (folders created), atomically. */
async function writeInside(outDir: string, rel: string, data: Uint8Array | string): Promise<void> {
  const path = join(outDir, rel);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, data);
}

async function removeFiles(outDir: string, rels: readonly string[]): Promise<void> {
  for (const rel of rels) await rm(join(outDir, rel), { force: true });
}

/**
 * The full-resolution mask stored in .persam/masks (0/1). A 1-bit PNG of encodeMaskPng is decoded
 * directly (~15–60 ms for 12 MP); other files (a state folder of an older persam-db: 8-bit PNGs) go
 * through loadMaskRed (~120–300 ms).
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
  const scale = Math.min(1, THUMB_SIDE / Math.max(image.width, image.height));
  const w = Math.max(1, Math.round(image.width * scale));
  const h = Math.max(1, Math.round(image.height * scale));
  // sharp shrinks the photo on its thread while the mask is resized here.
  const small = scale < 1 ? resizeRgb(image, w, h) : Promise.resolve(image);
  const smallMask =
    scale < 1
      ? resizeMask({ mask, width: image.width, height: image.height, outWidth: w, outHeight: h })
      : mask;
  const photo = `${THUMBS_DIR}/${stem}.jpg`;
  const maskFile = `${THUMBS_DIR}/${stem}.mask.png`;
  // The mask thumbnail as a 1-bit PNG (white = subject), as the state masks: no sharp round trip.
  await writeInside(outDir, maskFile, encodeMaskPng(smallMask, w, h));
  await writeInside(outDir, photo, await encodeJpeg(await small, 80));
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

function reportReference(
  reference: ResolvedReference,
  photos: readonly ScannedPhoto[],
  inputDir: string,
): ReportReference {
  const first = reference.references[0]!;
  const scanned = photos.find((p) => p.sha256 === first.sha256);
  const rel = (path: string): string =>
    isInside(path, inputDir) ? relative(inputDir, path).split(sep).join("/") : basename(path);
  const base = {
    stem: scanned?.stem ?? basename(first.photo).replace(/\.[^.]*$/, ""),
    file: scanned?.relPath ?? rel(first.photo),
    width: first.width,
    height: first.height,
  };
  switch (first.source) {
    case "auto":
      return { ...base, method: "auto", score: reference.auto?.score ?? 0 };
    case "mask-file":
    case "mask-beside-photo":
      return { ...base, method: "mask-file", ...(first.maskPath ? { maskFile: rel(first.maskPath) } : {}) };
    case "prompt":
      return first.clicks && first.clicks.length > 0
        ? {
            ...base,
            method: "point",
            points: first.clicks.map((c) => ({ x: c.point[0], y: c.point[1], label: c.label })),
            ...(first.box ? { box: first.box } : {}),
          }
        : { ...base, method: "box", ...(first.box ? { box: first.box } : {}) };
  }
}

/** One line describing the reference (dataset card, report settings, CLI). */
export function referenceText(ref: ReportReference): string {
  switch (ref.method) {
    case "auto":
      return `automatic: ${ref.file} (score ${(ref.score ?? 0).toFixed(2)})`;
    case "mask-file":
      return `mask ${ref.maskFile ?? "(beside the photo)"} on ${ref.file}`;
    case "point":
    case "click":
      return `points ${(ref.points ?? []).map((p) => `${p.x},${p.y}`).join(" ")} on ${ref.file}`;
    case "box":
      return `box ${(ref.box ?? []).join(",")} on ${ref.file}`;
  }
}

async function copyInside(outDir: string, copies: readonly CopyOperation[]): Promise<string[]> {
  const written: string[] = [];
  for (const c of copies) {
    await writeInside(outDir, c.to, await readFile(join(outDir, c.from)));
    written.push(c.to);
  }
  return written;
}

/** Trainer files for the selected trainers plus the dataset card; returns paths relative to outDir. */
async function writeExports(outDir: string, dataset: PreparedDataset, settings: Settings): Promise<string[]> {
  const files: string[] = [];
  const { diffusers, kohya, onetrainer } = settings.presets;
  const rel = (path: string): string => relative(outDir, path).split(sep).join("/");
  if (diffusers) {
    const config = diffusersConfig({ dataset, preset: diffusers });
    const w = await writeDiffusersFiles({ outputDir: outDir, config, description: diffusers.description });
    files.push(rel(w.json), rel(w.script));
  }
  if (kohya) {
    const config = kohyaConfig({ dataset, preset: kohya });
    const w = await writeKohyaFiles({ outputDir: outDir, config, description: kohya.description });
    files.push(rel(w.toml), rel(w.script));
    files.push(...(await copyInside(outDir, config.copies)));
  }
  if (onetrainer) {
    const plan = onetrainerPlan({ dataset, preset: onetrainer, outputDir: outDir });
    files.push(...(await copyInside(outDir, plan.copies)));
    await writeInside(outDir, "onetrainer/concepts.json", `${JSON.stringify(plan.concepts, null, 2)}\n`);
    await writeInside(
      outDir,
      "onetrainer/train-config.json",
      `${JSON.stringify(plan.trainConfig, null, 2)}\n`,
    );
    files.push("onetrainer/concepts.json", "onetrainer/train-config.json");
  }
  await writeInside(
    outDir,
    "README.md",
    datasetCard({ dataset, ...(diffusers ? { diffusersScript: diffusers.diffusers.script } : {}) }),
  );
  files.push("README.md");
  return files;
}
