// `segment` as a library: PerSAM / PerSAM-F on every photo of a folder, one mask PNG (0/255) and one
// diagnostics JSON per photo, no training set. Two halves like `prepare`: the scan (no model needed)
// and the run with a loaded model.

import { mkdir, rm } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { ExitCode, UserError } from "../errors.js";
import { encodePng } from "../image/image-io.js";
import type { FusionTrainerOptions } from "../segment/persam/persam-f.js";
import {
  describeReference,
  type ReferenceMode,
  type ReferenceSpec,
  resolveReference,
} from "../segment/persam/reference-source.js";
import { type PhotoOutcome, segmentPhoto } from "../segment/persam/segment-photos.js";
import { defaultEmbeddingCache, type EmbeddingStore } from "../segment/sam/embedding-cache.js";
import { PhotoEncoder } from "../segment/sam/photo-encoder.js";
import { maskToGrey } from "../segment/sam/postprocess.js";
import type { SamModel } from "../segment/sam/sam-model.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { BackgroundWrites } from "../util/background-writes.js";
import { roundTimings } from "../util/numbers.js";
import { publishSpan, timeSpan } from "../util/timing-trace.js";
import { STATE_DIR } from "./prepare-state.js";
import { isRoutineSkip, type ScannedPhoto, type ScanResult, type SkippedFile, scanPhotos } from "./scan.js";

/** A scanned folder ready to segment. */
export interface SegmentFolderScan {
  readonly dir: string;
  readonly output: string;
  readonly scan: ScanResult;
  /** Skipped files worth a line. */
  readonly notable: readonly SkippedFile[];
  /** One line per skipped file or duplicate. */
  readonly warnings: readonly string[];
}

/**
 * Scan the photo folder of a `segment` run.
 * @throws UserError when the output folder is the photo folder or there are no photos.
 */
export async function scanSegmentFolder(params: {
  readonly dir: string;
  readonly output: string;
  readonly recursive: boolean;
}): Promise<SegmentFolderScan> {
  const dir = resolve(params.dir);
  const output = resolve(params.output);
  if (output === dir) {
    throw new UserError(`The output folder ${output} is the photo folder`, {
      hint: "masks are written as <stem>.png and would overwrite PNG photos; choose another -o folder",
    });
  }
  const scan = await scanPhotos({ dir, recursive: params.recursive, outputDir: output });
  if (scan.photos.length === 0) {
    throw new UserError(`No photos found in ${dir}`, {
      hint: params.recursive
        ? "add JPEG, PNG or WebP photos"
        : "add photos, or use --recursive for subfolders",
    });
  }
  const notable = scan.skipped.filter((s) => !isRoutineSkip(s));
  const warnings = [
    ...notable.map((s) => s.reason),
    ...scan.duplicates.map((d) => `${d.relPath}: same bytes as ${d.duplicateOf}, skipped`),
  ];
  return { dir, output, scan, notable, warnings };
}

/**
 * Progress of {@link segmentFolder}. A photo's files are written in the background after its
 * "photo" event; all of them exist when segmentFolder resolves.
 */
export type SegmentFolderEvent =
  | { readonly type: "reference"; readonly line: string }
  | { readonly type: "photo"; readonly photo: ScannedPhoto; readonly outcome: PhotoOutcome };

/** Parameters of {@link segmentFolder}. */
export interface SegmentFolderParams {
  readonly folder: SegmentFolderScan;
  readonly model: SamModel;
  /** Empty: the `<stem>.mask.png` beside photos, else an automatic choice. */
  readonly references: readonly ReferenceSpec[];
  /** @default "persam" */
  readonly mode?: ReferenceMode | undefined;
  readonly trainer?: FusionTrainerOptions | undefined;
  /** Where embeddings are cached. @default the user's cache (`defaultEmbeddingCache`) */
  readonly embeddingCache?: EmbeddingStore | undefined;
  /** How photos are named in messages. @default their path relative to the folder */
  readonly cwd?: string | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: SegmentFolderEvent) => void) | undefined;
}

/** What {@link segmentFolder} wrote: the JSON document (also in OUT/.persam/segment.json). */
export interface SegmentFolderResult {
  readonly document: Record<string, unknown>;
  readonly outcomes: readonly PhotoOutcome[];
  readonly counts: { readonly ok: number; readonly failed: number; readonly doubtful: number };
  readonly exitCode: (typeof ExitCode)[keyof typeof ExitCode];
}

/**
 * Resolve the reference, then segment every photo in turn, writing `<stem>.png` and `<stem>.json`
 * as each one finishes. OUT/.persam holds the embeddings, the reference masks and the summary.
 * @throws UserError for an unusable reference; AbortError when `signal` aborts.
 */
export async function segmentFolder(params: SegmentFolderParams): Promise<SegmentFolderResult> {
  const { folder, model } = params;
  const { scan, output } = folder;
  const emit = (event: SegmentFolderEvent): void => params.onEvent?.(event);
  const state = join(output, STATE_DIR);
  await mkdir(state, { recursive: true });
  const encoder = new PhotoEncoder({ model, cache: params.embeddingCache ?? defaultEmbeddingCache() });
  const byPath = new Map(scan.photos.map((p) => [p.path, p]));
  const name = (path: string): string =>
    byPath.get(path)?.relPath ?? relative(params.cwd ?? folder.dir, path);

  emit({
    type: "reference",
    line:
      params.references.length > 0
        ? `reference: ${params.references.map((s) => name(s.photo)).join(", ")}`
        : "reference: looking for <stem>.mask.png beside the photos, else choosing one automatically",
  });
  const reference = await timeSpan("reference", () =>
    resolveReference({
      model,
      encoder,
      references: params.references,
      photos: scan.photos.map((p) => ({ path: p.path, sha256: p.sha256, maskPath: p.maskPath })),
      mode: params.mode ?? "persam",
      trainer: params.trainer,
      signal: params.signal,
    }),
  );
  // Mask PNGs and JSON files are written while the next photo is segmented.
  const writes = new BackgroundWrites();
  const referenceFiles: string[] = [];
  const summaries: Record<string, unknown>[] = [];
  const outcomes: PhotoOutcome[] = [];
  const counts = { ok: 0, failed: 0, doubtful: 0 };
  try {
    for (const [i, r] of reference.references.entries()) {
      const file = join(state, `reference-${i + 1}.png`);
      await writes.add(async () => writeFileAtomic(file, await maskPng(r.mask, r.width, r.height)));
      referenceFiles.push(file);
      emit({
        type: "reference",
        line:
          `reference ${i + 1}: ${name(r.photo)} (${r.source}${r.maskPath ? ` ${r.maskPath}` : ""}), ` +
          `${((100 * r.maskArea) / (r.width * r.height)).toFixed(1)}% of the photo, ${r.gridCells} feature cells`,
      });
    }
    if (reference.persamF) {
      emit({
        type: "reference",
        line: `PerSAM-F fusion weights λ = [${reference.persamF.lambdas.map((l) => l.toFixed(4)).join(", ")}]`,
      });
    }
    for (const [index, photo] of scan.photos.entries()) {
      params.signal?.throwIfAborted();
      const photoStartMs = performance.now();
      const next = scan.photos[index + 1];
      const outcome = await segmentPhoto({
        encoder,
        photo: { path: photo.path, sha256: photo.sha256 },
        reference,
        index,
        onEncoded: () => {
          if (next) void encoder.prefetch({ path: next.path, sha256: next.sha256 });
        },
      });
      const segmentedMs = performance.now();
      const summary = photoSummary(outcome, photo, reference.mode, model.files.label);
      if (outcome.status === "ok") {
        counts.ok++;
        if (outcome.doubtful) counts.doubtful++;
      } else counts.failed++;
      await writes.add(async () => {
        const png = join(output, `${photo.stem}.png`);
        if (outcome.status === "ok")
          await writeFileAtomic(png, await maskPng(outcome.mask!, outcome.width, outcome.height));
        else await rm(png, { force: true });
        await writeFileAtomic(join(output, `${photo.stem}.json`), `${JSON.stringify(summary, null, 2)}\n`);
      });
      summaries.push(summary);
      const detail = { index, cached: outcome.status === "ok" && outcome.cachedEmbedding };
      publishSpan({ name: "photo.segment", startMs: photoStartMs, endMs: segmentedMs, detail });
      publishSpan({ name: "photo.write", startMs: segmentedMs, endMs: performance.now(), detail });
      emit({ type: "photo", photo, outcome });
      outcomes.push(withoutPixels(outcome));
    }
    await timeSpan("photo.write.wait", () => writes.flush());
  } finally {
    await writes.settle();
  }

  const skipped = folder.notable.length + scan.duplicates.length;
  const partial = counts.failed > 0 || counts.doubtful > 0 || skipped > 0;
  const exitCode = partial ? ExitCode.partial : ExitCode.ok;
  const document = {
    command: "segment",
    dir: folder.dir,
    output,
    model: model.files.label,
    testModel: model.isTestModel,
    mode: reference.mode,
    reference: { ...describeReference(reference), maskFiles: referenceFiles },
    photos: summaries,
    skipped: folder.notable.map((s) => ({ path: s.relPath, kind: s.kind, reason: s.reason })),
    duplicates: scan.duplicates.map((d) => ({ path: d.relPath, duplicateOf: d.duplicateOf })),
    counts: { photos: scan.photos.length, ...counts, skipped },
    exitCode,
  };
  await timeSpan("outputs", () =>
    writeFileAtomic(join(state, "segment.json"), `${JSON.stringify(document, null, 2)}\n`),
  );
  return { document, outcomes, counts, exitCode };
}

/** The per-photo JSON written beside the mask. */
function photoSummary(
  outcome: PhotoOutcome,
  photo: ScannedPhoto,
  mode: string,
  model: string,
): Record<string, unknown> {
  const base = {
    photo: photo.relPath,
    path: photo.path,
    stem: photo.stem,
    sha256: photo.sha256,
    mode,
    model,
  };
  if (outcome.status === "failed") return { ...base, status: "failed", reason: outcome.reason };
  return {
    ...base,
    status: "ok",
    mask: `${photo.stem}.png`,
    size: { width: outcome.width, height: outcome.height },
    prior: {
      positive: [...outcome.prior.positive],
      ...(outcome.prior.negative ? { negative: [...outcome.prior.negative] } : {}),
    },
    steps: outcome.steps.map((s) => ({ ...s, ...(s.box ? { box: [...s.box] } : {}) })),
    iouScore: outcome.iouScore,
    area: outcome.area,
    areaFraction: outcome.areaFraction,
    similarity: outcome.similarity,
    confidence: outcome.confidence,
    doubtful: outcome.doubtful,
    flags: outcome.flags,
    cachedEmbedding: outcome.cachedEmbedding,
    timings: roundTimings(outcome.timings),
  };
}

/** An outcome without its full-resolution planes (a run keeps one per photo). */
function withoutPixels(outcome: PhotoOutcome): PhotoOutcome {
  if (outcome.status !== "ok") return outcome;
  const { mask: _mask, sim64: _sim64, ...rest } = outcome;
  return rest;
}

async function maskPng(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  return encodePng({ data: maskToGrey(mask), width, height, channels: 1 });
}
