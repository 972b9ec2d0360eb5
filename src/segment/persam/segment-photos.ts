// PerSAM / PerSAM-F over a list of photos: each photo decoded and encoded once (embeddings reused by
// content hash), segmented with the resolved reference, scored with photoConfidence. One bad photo
// is recorded as failed with its one-line reason; the others go on (design §6).

import { isUserError, UserError } from "../../errors.js";
import { loadRgb, type RgbImage } from "../../image/image-io.js";
import { hashFile } from "../../util/hash-file.js";
import type { Box, Point } from "../../util/tensor.js";
import { type EmbeddingCache, encoderFingerprint } from "../sam/embedding-cache.js";
import type { EncodedPhoto, SamModel } from "../sam/sam-model.js";
import { type PhotoConfidence, photoConfidence } from "./confidence.js";
import type { LocationPrior } from "./location-prior.js";
import { type PerSamOptions, type PerSamResult, runPerSam } from "./persam.js";
import { runPerSamF } from "./persam-f.js";
import type { ReferenceMode, ResolvedReference } from "./reference-source.js";
import type { SimilarityStats } from "./similarity.js";

/** Parameters of {@link PhotoEncoder}. */
export interface PhotoEncoderParams {
  readonly model: SamModel;
  /** On-disk embedding cache; without it every new PhotoEncoder encodes again. */
  readonly cache?: EmbeddingCache | undefined;
  /**
   * Embeddings kept in memory (most recently used), so that the reference step and the
   * segmentation step share them. One ViT embedding is 4 MB.
   * @default 64
   */
  readonly memoryEntries?: number;
  /**
   * Decodes a photo (upright RGB) when its embedding must be computed; a caller that also needs
   * the pixels (prepare) passes its own, with its pixel limit.
   * @default loadRgb with the default pixel limit
   */
  readonly load?: ((path: string) => Promise<RgbImage>) | undefined;
}

/** One photo decoded and encoded, with what it cost. */
export interface EncodedPhotoFile {
  readonly path: string;
  readonly sha256: string;
  readonly encoded: EncodedPhoto;
  /** Photo size after EXIF orientation. */
  readonly width: number;
  readonly height: number;
  /** True when the embedding came from memory or the disk cache. */
  readonly cached: boolean;
  readonly loadMs: number;
  readonly encodeMs: number;
}

/**
 * Decodes and encodes photos for one model, at most once per content: an in-memory LRU of recent
 * embeddings in front of the optional on-disk {@link EmbeddingCache} (keyed by the file's sha256 and
 * the encoder's fingerprint).
 */
export class PhotoEncoder {
  private readonly memory = new Map<string, EncodedPhotoFile>();
  private fingerprint: string | undefined;
  private readonly limit: number;

  constructor(private readonly params: PhotoEncoderParams) {
    this.limit = Math.max(0, params.memoryEntries ?? 64);
  }

  get model(): SamModel {
    return this.params.model;
  }

  /**
   * The photo's embedding, from memory, the disk cache or the encoder.
   * @param sha256 the file's hash when the caller already has it (scanPhotos does).
   * @param image the photo already decoded by the caller (upright RGB, as `loadRgb` gives it): used
   *   instead of decoding the file again when the embedding must be computed.
   * @throws UserError when the photo cannot be read or decoded.
   */
  async encode(path: string, sha256?: string, image?: RgbImage): Promise<EncodedPhotoFile> {
    const t0 = performance.now();
    const hash = sha256 ?? (await photoSha256(path));
    const hit = this.memory.get(hash);
    if (hit) {
      this.memory.delete(hash);
      this.memory.set(hash, hit);
      return { ...hit, path, cached: true, loadMs: 0, encodeMs: 0 };
    }
    const { cache, model } = this.params;
    this.fingerprint ??= await encoderFingerprint(model.files.encoderPath, model.files.label);
    const key = { photoSha256: hash, encoder: this.fingerprint };
    const stored = cache ? await cache.get(key) : undefined;
    let result: EncodedPhotoFile;
    if (stored) {
      const [height, width] = stored.originalSize;
      result = {
        path,
        sha256: hash,
        encoded: stored,
        width,
        height,
        cached: true,
        loadMs: performance.now() - t0,
        encodeMs: 0,
      };
    } else {
      const pixels = image ?? (await (this.params.load ?? loadRgb)(path));
      const t1 = performance.now();
      const encoded = await model.encode(pixels);
      const t2 = performance.now();
      if (cache) await cache.put(key, encoded);
      result = {
        path,
        sha256: hash,
        encoded,
        width: pixels.width,
        height: pixels.height,
        cached: false,
        loadMs: t1 - t0,
        encodeMs: t2 - t1,
      };
    }
    if (this.limit > 0) {
      this.memory.set(hash, result);
      while (this.memory.size > this.limit) this.memory.delete(this.memory.keys().next().value as string);
    }
    return result;
  }
}

/** A photo to segment. */
export interface PhotoInput {
  readonly path: string;
  /** sha256 of the file, when known (saves a read). */
  readonly sha256?: string | undefined;
  /** The photo already decoded (upright RGB), when the caller has it (saves decoding it again). */
  readonly image?: RgbImage | undefined;
}

/** Parameters of {@link segmentPhotos}. */
export interface SegmentPhotosParams {
  /** The model; ignored when `encoder` is given (its model is used). */
  readonly model: SamModel;
  readonly photos: readonly (string | PhotoInput)[];
  /** From `resolveReference`, built for the same mode. */
  readonly reference: ResolvedReference;
  /** @default reference.mode */
  readonly mode?: ReferenceMode;
  /** Embedding cache on disk (used when `encoder` is not given). */
  readonly cache?: EmbeddingCache | undefined;
  /** Share encodings with `resolveReference` (recommended: the reference photos are encoded once). */
  readonly encoder?: PhotoEncoder | undefined;
  /** PerSAM options (ablations, aligned attn_sim); PerSAM-F uses only `refinements`. */
  readonly options?: PerSamOptions | undefined;
  /** Called after each photo, in order, with the full result (mask included). */
  readonly onPhoto?:
    | ((outcome: PhotoOutcome, index: number, total: number) => void | Promise<void>)
    | undefined;
  /**
   * Keep each photo's full-resolution mask in the returned results. Turn off for large batches
   * whose masks are written in `onPhoto`.
   * @default true
   */
  readonly keepMasks?: boolean;
  readonly signal?: AbortSignal | undefined;
}

/** One decoder pass as reported (no logits). */
export interface SegmentStepSummary {
  readonly name: "first" | "refine1" | "refine2";
  /** All 4 IoU predictions of the pass. */
  readonly iouScores: readonly number[];
  /** Token kept (−1: PerSAM-F's λ-fused first pass). */
  readonly chosen: number;
  readonly box?: Box;
}

/** A segmented photo. */
export interface SegmentedPhoto {
  readonly status: "ok";
  readonly path: string;
  readonly index: number;
  readonly width: number;
  readonly height: number;
  /** Final binary mask `height × width`, 1 = subject; absent in results when `keepMasks` is false. */
  readonly mask?: Uint8Array;
  /** Foreground pixel count. */
  readonly area: number;
  readonly areaFraction: number;
  /** The decoder's IoU prediction for the final mask. */
  readonly iouScore: number;
  readonly steps: readonly SegmentStepSummary[];
  /** Positive / negative prior points (PerSAM-F uses only the positive one). */
  readonly prior: { readonly positive: Point; readonly negative?: Point };
  readonly similarity: SimilarityStats;
  readonly confidence: PhotoConfidence;
  /** PerSAM flags and confidence reasons, deduplicated. */
  readonly flags: readonly string[];
  readonly doubtful: boolean;
  /** Milliseconds per stage: loadMs, encodeMs, similarityMs, attnSimMs, decoderMs, upsampleMs, totalMs. */
  readonly timings: Readonly<Record<string, number>>;
  /** The embedding was reused (memory or disk cache). */
  readonly cachedEmbedding: boolean;
  /** The 64×64 similarity map (only in `onPhoto`, never kept in results). */
  readonly sim64?: Float32Array;
}

/** A photo that could not be segmented. */
export interface FailedPhoto {
  readonly status: "failed";
  readonly path: string;
  readonly index: number;
  /** One line: what went wrong and what to do. */
  readonly reason: string;
}

export type PhotoOutcome = SegmentedPhoto | FailedPhoto;

/** Result of {@link segmentPhotos}, photos in input order. */
export interface SegmentPhotosResult {
  readonly mode: ReferenceMode;
  readonly photos: readonly PhotoOutcome[];
  readonly counts: { readonly ok: number; readonly failed: number; readonly doubtful: number };
}

/**
 * Segment every photo with the reference: encode (reusing embeddings by content hash), run PerSAM
 * (§7.2) or PerSAM-F (§8.3) with the reference's target (and λ), then `photoConfidence`. A photo
 * whose file cannot be read or decoded (a UserError) is recorded as failed and the others continue.
 * @throws {Error} for bugs (kept with their stack), {AbortError} when `signal` aborts.
 */
export async function segmentPhotos(params: SegmentPhotosParams): Promise<SegmentPhotosResult> {
  const mode = params.mode ?? params.reference.mode;
  if (mode === "persam-f" && params.reference.persamF === undefined) {
    throw new Error(
      "Expected a reference resolved for persam-f (with fusion weights) but received a persam one",
    );
  }
  if (mode !== params.reference.target.variant) {
    throw new Error(`Expected a ${mode} reference target but received ${params.reference.target.variant}`);
  }
  const encoder = params.encoder ?? new PhotoEncoder({ model: params.model, cache: params.cache });
  const decoder = encoder.model.decoder;
  const keepMasks = params.keepMasks ?? true;
  const total = params.photos.length;
  const photos: PhotoOutcome[] = [];
  let ok = 0;
  let failed = 0;
  let doubtful = 0;

  for (let index = 0; index < total; index++) {
    params.signal?.throwIfAborted();
    const input = params.photos[index]!;
    const path = typeof input === "string" ? input : input.path;
    const sha256 = typeof input === "string" ? undefined : input.sha256;
    const image = typeof input === "string" ? undefined : input.image;
    let outcome: PhotoOutcome;
    try {
      const started = performance.now();
      const file = await encoder.encode(path, sha256, image);
      const result: PerSamResult =
        mode === "persam-f"
          ? await runPerSamF({
              decoder,
              target: params.reference.target,
              lambdas: params.reference.persamF!.lambdas,
              image: file.encoded,
              ...(params.options?.refinements !== undefined
                ? { options: { refinements: params.options.refinements } }
                : {}),
            })
          : await runPerSam({
              decoder,
              target: params.reference.target,
              image: file.encoded,
              ...(params.options ? { options: params.options } : {}),
            });
      const confidence = photoConfidence({
        peakSimilarity: result.similarity.peak64Image,
        iouScore: result.iouScore,
        mask: result.mask,
        width: result.width,
        height: result.height,
      });
      const flags = [...new Set<string>([...result.flags, ...confidence.reasons])];
      outcome = {
        status: "ok",
        path,
        index,
        width: result.width,
        height: result.height,
        mask: result.mask,
        area: result.area,
        areaFraction: confidence.areaFraction,
        iouScore: result.iouScore,
        steps: result.steps.map((s) => ({
          name: s.name,
          iouScores: [...s.iouScores],
          chosen: s.chosen,
          ...(s.box ? { box: s.box } : {}),
        })),
        prior: priorPoints(result.prior, mode),
        similarity: result.similarity,
        confidence,
        flags,
        doubtful: confidence.doubtful,
        timings: {
          loadMs: file.loadMs,
          encodeMs: file.encodeMs,
          ...Object.fromEntries(Object.entries(result.timings).map(([stage, ms]) => [`${stage}Ms`, ms])),
          totalMs: performance.now() - started,
        },
        cachedEmbedding: file.cached,
        sim64: result.sim64,
      };
      ok++;
      if (confidence.doubtful) doubtful++;
    } catch (error) {
      if (!isUserError(error)) throw error;
      outcome = { status: "failed", path, index, reason: error.toLine() };
      failed++;
    }
    await params.onPhoto?.(outcome, index, total);
    photos.push(outcome.status === "ok" ? stripForResult(outcome, keepMasks) : outcome);
  }
  return { mode, photos, counts: { ok, failed, doubtful } };
}

async function photoSha256(path: string): Promise<string> {
  try {
    return (await hashFile(path)).sha256;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UserError(`Cannot read the photo ${path} (${code})`, { hint: "check the path", cause: error });
  }
}

function priorPoints(prior: LocationPrior, mode: ReferenceMode): SegmentedPhoto["prior"] {
  // PerSAM-F clicks only the positive point (§8.3 step 1).
  return mode === "persam-f"
    ? { positive: prior.positive }
    : { positive: prior.positive, negative: prior.negative };
}

function stripForResult(outcome: SegmentedPhoto, keepMask: boolean): SegmentedPhoto {
  const { sim64: _sim64, mask, ...rest } = outcome;
  return keepMask && mask ? { ...rest, mask } : rest;
}
