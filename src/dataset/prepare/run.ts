// The second half of `prepare`: a plan carried out stage after stage — reference, each photo, stale
// files, exports, report — with the state saved after every change so that an interrupted run
// resumes. Nothing here calls back into the caller; the caller opens the model when the plan says so.

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import pLimit from "p-limit";
import { UserError } from "../../errors.js";
import type { CopyOperation } from "../../export/kohya.js";
import { DEFAULT_MAX_PIXELS } from "../../image/image-io.js";
import { PhotoLoader } from "../../image/photo-loader.js";
import {
  defaultEmbeddingCache,
  type EmbeddingKey,
  type EmbeddingStore,
  embeddingKeyId,
} from "../../segment/sam/embedding-cache.js";
import { PhotoEncoder } from "../../segment/sam/photo-encoder.js";
import { ENCODER_SIDE } from "../../segment/sam/sam-constants.js";
import type { EncodedPhoto, SamModel } from "../../segment/sam/sam-model.js";
import { isTestModelFile } from "../../segment/sam/test-weights.js";
import { removeStaleTempFiles } from "../../util/atomic-write.js";
import { acquireRunLock, LOCK_FILE, type RunLock } from "../../util/run-lock.js";
import { publishSpan, timeSpan } from "../../util/timing-trace.js";
import type { MetadataRow } from "../metadata.js";
import { emptyState, type FileRecord, readState, STATE_DIR, StateStore } from "../prepare-state.js";
import type { PhotoReport } from "../report.js";
import { summaryTable } from "../report.js";
import { curateSet } from "./curation-stage.js";
import { writeExports, writeMetadata } from "./exports-stage.js";
import { finishSet } from "./finish-stage.js";
import {
  failedPhoto,
  handedOn,
  type PhotoStageContext,
  type PhotoStageOutput,
  photoStateFiles,
  processPhoto,
  removeFiles,
} from "./photo-stage.js";
import { type PreparePlan, planPhotos, segmentationKey } from "./plan.js";
import { type RunReference, referenceText, resolveRunReference } from "./reference-stage.js";
import { buildReport, writeReport } from "./report-stage.js";
import { runRecordOf, writeRunRecord } from "./run-record.js";
import type { PhotoResult, PrepareEvent, PrepareResult } from "./types.js";
import {
  chooseVideos,
  referenceCandidates,
  removeStaleVideoFiles,
  sampleVideos,
  videoReports,
  withFrames,
} from "./video-stage.js";

/**
 * Embeddings `prepare` keeps in memory (4 MiB each). The per-photo stage uses each photo's embedding
 * once, so a larger memory only holds garbage; what the reference stage encoded (every photo, for
 * the automatic choice) is read back from the run's embedding cache on disk instead, never encoded
 * again.
 */
const PREPARE_MEMORY_EMBEDDINGS = 2;

/**
 * Embeddings the run keeps in memory when the embedding cache did not keep them (turned off with
 * size 0, or a failed write), so that what the reference stage encoded is not encoded again by the
 * per-photo stage: 32 × 4 MiB at most; a larger run encodes the rest again.
 */
const RUN_FALLBACK_EMBEDDINGS = 32;

/**
 * The run's view of the embedding cache: it counts encoder runs and, for --force, never answers with
 * an embedding of an earlier run (those written by this run are answered: they are what the encoder
 * gives now, and the per-photo stage reads the reference stage's embeddings back from here, or from
 * memory when the cache did not keep them).
 */
class RunCache implements EmbeddingStore {
  private readonly written = new Set<string>();
  private readonly fallback = new Map<string, EncodedPhoto>();
  constructor(
    private readonly store: EmbeddingStore,
    private readonly bypass: boolean,
    private readonly onPut: (key: EmbeddingKey) => void,
  ) {}
  async get(key: EmbeddingKey): Promise<EncodedPhoto | undefined> {
    const id = embeddingKeyId(key);
    const kept = this.fallback.get(id);
    if (kept) return kept;
    return this.bypass && !this.written.has(id) ? undefined : this.store.get(key);
  }
  async put(key: EmbeddingKey, photo: EncodedPhoto): Promise<boolean> {
    this.onPut(key);
    const id = embeddingKeyId(key);
    this.written.add(id);
    if (await this.store.put(key, photo)) return true;
    if (this.fallback.size < RUN_FALLBACK_EMBEDDINGS) this.fallback.set(id, photo);
    return this.fallback.has(id);
  }
}

/** Parameters of {@link runPrepare}. */
export interface RunPrepareParams {
  readonly plan: PreparePlan;
  /** The loaded SAM, for the model files the plan was made for. Required when `plan.needsModel`. */
  readonly model?: SamModel | undefined;
  /**
   * The output folder's run lock, when the caller already holds it (`review` rebuilds the set under
   * its own lock); it is left held. Without it the run takes the lock and releases it at the end.
   */
  readonly lock?: RunLock | undefined;
}

/**
 * Carry out a plan (see `planPrepare`). Inputs are opened read-only; every file is written under a
 * temporary name and renamed; the state is saved after every change.
 * @throws UserError for an unusable reference; AbortError when the plan's signal aborts (every file
 *   written so far is complete; rerun to finish).
 */
export async function runPrepare(params: RunPrepareParams): Promise<PrepareResult> {
  const started = performance.now();
  const { plan, model } = params;
  if (plan.dryRun) throw new Error("runPrepare: a dry-run plan is reported, not run");
  if (plan.needsModel && model === undefined) throw new Error("runPrepare: the plan needs the model");
  const { outDir, previous } = plan;
  const warnings = [...plan.warnings];
  const store = new StateStore(
    outDir,
    plan.force ? { ...emptyState(), exportFiles: previous.exportFiles } : previous,
  );
  // The output folder first: a folder that cannot be written stops the run before any work. One run
  // at a time per output folder (the lock names the process that holds it).
  await mkdir(join(outDir, STATE_DIR), { recursive: true });
  if (params.lock && params.lock.path !== join(outDir, LOCK_FILE)) {
    throw new Error(`runPrepare: the lock given is ${params.lock.path}, not the one of ${outDir}`);
  }
  const lock = params.lock ?? (await acquireRunLock({ outDir, command: "prepare" }));
  try {
    // Another run may have finished between the plan and the lock: then the plan is out of date.
    const now = await readState(outDir);
    if (now.state.updatedAt !== previous.updatedAt) {
      throw new UserError(`${outDir} changed since this run was planned (another run wrote to it)`, {
        hint: "run the command again",
      });
    }
    return await runLocked({ ...params, store, warnings, started });
  } finally {
    if (lock !== params.lock) await lock.release();
  }
}

/** {@link runPrepare} with the folder locked. */
async function runLocked(
  params: RunPrepareParams & { store: StateStore; warnings: string[]; started: number },
): Promise<PrepareResult> {
  const { plan, model, store, warnings, started } = params;
  const { outDir, settings, previous, keys } = plan;
  let input = plan.input;
  const { signal } = plan.params;
  const emit = (event: PrepareEvent): void => plan.params.onEvent?.(event);
  const warn = (message: string): void => {
    warnings.push(message);
    emit({ type: "warning", message });
  };
  const state = store.state;
  // From here until the run finishes, the folder is not a finished set (set-check.ts).
  await store.update((s) => {
    delete s.manifest;
  });
  await removeStaleTempFiles(outDir);
  await writeRunRecord(outDir, runRecordOf(plan, plan.userReferences));

  // ---- reference ---------------------------------------------------------------------------
  let encoded = 0;
  const loader = new PhotoLoader({
    ...(plan.params.maxPixels === undefined ? {} : { maxPixels: plan.params.maxPixels }),
    scaled:
      settings.decode === "scaled" ? { longSide: ENCODER_SIDE, shortSide: settings.resolution } : undefined,
    onDecode: (path) => emit({ type: "decode", path }),
  });
  const encoder =
    model === undefined
      ? undefined
      : new PhotoEncoder({
          model,
          cache: new RunCache(
            plan.params.embeddingCache ?? defaultEmbeddingCache(warn),
            plan.force,
            (key) => {
              encoded++;
              emit({ type: "encode", photoSha256: key.photoSha256 });
            },
          ),
          memoryEntries: PREPARE_MEMORY_EMBEDDINGS,
          loader,
        });
  let entries = plan.entries;
  let referenceIdentity = plan.referenceIdentity;
  let reference: RunReference | undefined;
  let referenceReport = state.reference?.report as RunReference["report"] | undefined;
  if (plan.needsModel) {
    // Videos first: their sampled frames take part in the automatic reference, then are chosen with it.
    const videoSettings = {
      fps: settings.fps,
      frames: settings.frames,
      maxPixels: plan.params.maxPixels ?? DEFAULT_MAX_PIXELS,
    };
    const samples = await sampleVideos({ plan: plan.videos, outDir, fps: settings.fps, signal, warn });
    reference = await timeSpan("reference", () =>
      resolveRunReference({
        plan,
        encoder: encoder!,
        signal,
        candidates: referenceCandidates(plan.videos, samples),
      }),
    );
    referenceReport = reference.report;
    emit({ type: "reference", reused: false, description: referenceText(referenceReport) });
    const identity = reference.identity;
    if (plan.videos.videos.length > 0) {
      const frames = await chooseVideos({
        plan: plan.videos,
        samples,
        encoder: encoder!,
        loader,
        reference: reference.reference,
        settings: videoSettings,
        segmentationKey: segmentationKey(keys, settings, plan.params, state, identity)!,
        outDir,
        store,
        taken: new Set(input.scan.photos.filter((p) => !p.frameOf).map((p) => p.stem)),
        signal,
        warn,
        onVideo: (file, candidates, chosen) => emit({ type: "video", file, candidates, chosen }),
      });
      input = withFrames(input, outDir, frames);
    }
    if (identity !== referenceIdentity || plan.videos.videos.length > 0) {
      referenceIdentity = identity;
      entries = await planPhotos({
        input,
        state,
        outDir,
        segmentationKey: segmentationKey(keys, settings, plan.params, state, identity),
        outputsKey: keys.outputs,
        keepDoubtful: settings.keepDoubtful,
        review: plan.review,
        curate: settings.curate,
      });
    }
    await store.update((s) => {
      s.reference = { inputKey: keys.referenceInput, identity, report: { ...referenceReport } };
    });
  } else if (referenceReport) {
    emit({ type: "reference", reused: true, description: referenceText(referenceReport) });
  }
  const segKey = segmentationKey(keys, settings, plan.params, state, referenceIdentity);
  emit({ type: "plan", entries });
  await store.update((s) => {
    s.settings = { segmentation: segKey ?? "", outputs: keys.outputs, exports: keys.exports };
  });

  // ---- per photo ---------------------------------------------------------------------------
  const results = new Map<string, PhotoResult>();
  const reports = new Map<string, PhotoReport>();
  let done = 0;
  const total = entries.length;
  const counters = { segmented: 0, outputs: 0, unchanged: 0 };
  const byStem = new Map(input.scan.photos.map((p) => [p.stem, p]));
  const finish = (output: Omit<PhotoStageOutput, "warnings">): void => {
    const { result, report, work } = output;
    results.set(result.stem, result);
    reports.set(result.stem, report);
    if (work.segmented) counters.segmented++;
    if (work.outputs) counters.outputs++;
    if (work.unchanged) counters.unchanged++;
    done++;
    emit({ type: "photo", result, done, total });
  };
  for (const e of entries) {
    if (e.action === "fail") finish(failedPhoto(byStem.get(e.stem)!, e.reason));
  }
  const work = entries.filter((e) => e.action !== "fail");
  // The photo handed on by the reference stage goes first (its pixels are not kept waiting).
  let handed = reference?.lastDecoded;
  const first = work.findIndex((e) => e.action !== "skip" && byStem.get(e.stem)!.path === handed?.path);
  if (first >= 0) work.unshift(...work.splice(first, 1));
  else handed = undefined;

  const ctx: PhotoStageContext = {
    outDir,
    settings,
    store,
    loader,
    encoder,
    reference,
    segmentationKey: segKey,
    outputsKey: keys.outputs,
    review: plan.review,
    signal,
  };
  // One photo at a time: the next photo that needs pixels is decoded while this one is finished.
  const needsPixels = (e: (typeof work)[number]): boolean => e.action === "segment" || e.action === "outputs";
  const one = async (entry: (typeof work)[number], index: number): Promise<void> => {
    signal?.throwIfAborted();
    const photo = byStem.get(entry.stem)!;
    const following = plan.jobs === 1 ? work[index + 1] : undefined;
    const decodeNext =
      following !== undefined && needsPixels(following) ? byStem.get(following.stem)!.path : undefined;
    emit({ type: "photo-start", stem: entry.stem, action: entry.action });
    const decoded = handedOn(handed, photo);
    if (decoded) handed = undefined;
    const output = await timeSpan(
      "photo",
      () => processPhoto(ctx, { entry, photo, decoded, decodeNext }),
      () => ({ stem: entry.stem, action: entry.action }),
    );
    for (const w of output.warnings) warn(w);
    finish(output);
  };
  const limit = pLimit(plan.jobs);
  const settled = await Promise.allSettled(work.map((entry, index) => limit(() => one(entry, index))));
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

  // ---- curation: flags across the set; --curate takes the flagged photos out ---------------
  const curation = await curateSet({ outDir, store, settings, photos: input.scan.photos, results, reports });
  for (const w of curation.warnings) warn(w);

  // ---- stale photos: gone from the folder, or now a duplicate / bad ------------------------
  const current = new Set(input.good.map((p) => p.stem));
  await removeStaleVideoFiles({
    outDir,
    store,
    videos: plan.videos.videos,
    keepFrames: new Set(input.good.filter((p) => p.frameOf).map((p) => p.stem)),
  });
  for (const stem of Object.keys(state.photos)) {
    if (current.has(stem) && !input.failed.has(stem)) continue;
    await removeFiles(outDir, photoStateFiles(stem));
    await store.update((s) => {
      delete s.photos[stem];
    });
  }

  // ---- metadata, exports, card -------------------------------------------------------------
  const outputsStartMs = performance.now();
  const ordered = input.scan.photos
    .map((p) => results.get(p.stem))
    .filter((r): r is PhotoResult => r !== undefined);
  const keptStems = ordered.filter((r) => r.status === "ok" || r.status === "doubtful").map((r) => r.stem);
  const rows = keptStems.map((stem) => state.photos[stem]!.outputs!.row as unknown as MetadataRow);
  const files: string[] = [await writeMetadata(outDir, rows)];

  const modelFiles = plan.params.modelFiles!;
  const refText = referenceReport ? referenceText(referenceReport) : undefined;
  const exportFiles: string[] = [];
  let copies: readonly CopyOperation[] = [];
  if (keptStems.length > 0) {
    const written = await writeExports(
      outDir,
      {
        token: settings.identifier,
        className: settings.className,
        instancePrompt: settings.caption,
        resolution: settings.resolution,
        model: modelFiles.label,
        mode: settings.mode,
        reference: refText ?? "unknown",
        stems: keptStems,
        settings: {
          crop: settings.crop,
          aspect: settings.aspect,
          background: settings.background,
          bgWeight: settings.bgWeight,
          feather: settings.feather,
        },
      },
      settings,
    );
    exportFiles.push(...written.files);
    copies = written.copies;
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
    previous.exportFiles.filter((f) => !exportFiles.includes(f)),
  );
  await store.update((s) => {
    s.exportFiles = exportFiles;
  });

  // ---- report ------------------------------------------------------------------------------
  const report = buildReport({
    tool: plan.params.tool ?? "persam-db",
    input: plan.inputDir,
    output: outDir,
    settings,
    modelLabel: modelFiles.label,
    testModel: model?.isTestModel ?? (await isTestModelFile(modelFiles.decoderPath)),
    reference: referenceReport,
    referenceText: refText ?? null,
    scan: input,
    photos: input.scan.photos
      .map((p) => reports.get(p.stem))
      .filter((r): r is PhotoReport => r !== undefined),
    videos: videoReports(state, plan.videos.videos),
    varied: { count: curation.varied, curated: settings.curate },
    totalMs: performance.now() - started,
  });
  files.push(...(await writeReport(outDir, report, state)));
  const known: Record<string, FileRecord> = {};
  for (const stem of keptStems) Object.assign(known, state.photos[stem]!.outputs!.files);
  // A trainer's copy of a per-photo file has its source's record: no need to hash it again.
  for (const c of copies) if (known[c.from]) known[c.to] = known[c.from]!;
  await finishSet({ outDir, store, files: [...files, ...Object.keys(known)], known });
  publishSpan({ name: "outputs", startMs: outputsStartMs, endMs: performance.now() });

  const count = (s: PhotoResult["status"]): number => ordered.filter((r) => r.status === s).length;
  const excluded = count("excluded");
  const failed = count("failed");
  return {
    inputDir: plan.inputDir,
    outDir,
    dryRun: false,
    plan: entries,
    photos: ordered,
    warnings,
    counts: {
      found: input.scan.photos.length,
      kept: keptStems.length,
      doubtfulKept: count("doubtful"),
      excluded,
      failed,
      skippedFiles: input.notableSkips.length,
      duplicates: input.scan.duplicates.length,
      segmented: counters.segmented,
      outputsWritten: counters.outputs,
      unchanged: counters.unchanged,
      encoded,
      videos: plan.videos.videos.length,
    },
    exitCode: input.problems.length > 0 || excluded > 0 || failed > 0 || keptStems.length === 0 ? 2 : 0,
    report,
    summary: summaryTable(report),
    files,
  };
}
