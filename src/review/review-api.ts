// What the review page can ask for and do, as plain methods (the HTTP layer in review-server.ts only
// checks, routes and encodes): the set and its photos, each photo and its current mask at display
// size, SAM's masks for a prompt on the photo's cached embedding, and the decisions (accept a mask,
// include, exclude, forget, take as the reference), and the rebuild.

import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { z } from "zod";
import { resizeMask } from "../dataset/crop.js";
import { OVERRIDE_FLAG } from "../dataset/prepare/review-stage.js";
import type { PrepareEvent, PrepareResult } from "../dataset/prepare.js";
import { MASKS_DIR, THUMBS_DIR } from "../dataset/prepare-state.js";
import {
  loadReviewMask,
  type PhotoReview,
  photoSegmentationKey,
  type ReviewMaskRecord,
  type ReviewPrompt,
  storeReviewMask,
} from "../dataset/review-decisions.js";
import { UserError } from "../errors.js";
import { encodeJpeg, loadMaskRed, loadRgb, type RgbImage, resizeRgb } from "../image/image-io.js";
import { decodeMaskPng } from "../image/mask-png.js";
import { PhotoLoader } from "../image/photo-loader.js";
import type { EmbeddingStore } from "../segment/sam/embedding-cache.js";
import { PhotoEncoder } from "../segment/sam/photo-encoder.js";
import type { SamPrompt } from "../segment/sam/prompt.js";
import type { EncodedPhoto, SamModel } from "../segment/sam/sam-model.js";
import { acceptedMask, displaySize, type PixelSize, previewMasks } from "./mask-preview.js";
import { encodeOverlayPng } from "./overlay-png.js";
import { rebuildSet } from "./rebuild-set.js";
import type { ReviewPhoto, ReviewSet } from "./review-set.js";

/** A request the API refuses: an HTTP status and one line for the page. */
export class ReviewApiError extends Error {
  override readonly name = "ReviewApiError";
  constructor(
    readonly status: 400 | 404 | 409 | 413,
    message: string,
  ) {
    super(message);
  }
}

/** Most clicks one prompt may hold. */
const MAX_CLICKS = 64;

const clickSchema = z.strictObject({
  x: z.number(),
  y: z.number(),
  label: z.union([z.literal(0), z.literal(1)]),
});
const promptSchema = z.strictObject({
  clicks: z.array(clickSchema).max(MAX_CLICKS).default([]),
  box: z.tuple([z.number(), z.number(), z.number(), z.number()]).optional(),
  /** The multimask output chosen (1..3). */
  token: z.number().int().min(1).max(3).optional(),
});
/** A prompt as the page sends it: clicks and/or a box in the photo's pixels, and the output chosen. */
export type PagePrompt = z.infer<typeof promptSchema>;

/** Parse a prompt from a request body and check it lies on the photo. */
export function parsePrompt(body: unknown, photo: PixelSize): PagePrompt {
  const parsed = promptSchema.safeParse(body ?? {});
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ReviewApiError(
      400,
      `bad prompt: ${first ? `${first.path.join(".")}: ${first.message}` : "invalid"}`,
    );
  }
  const p = parsed.data;
  const inside = (x: number, y: number): boolean => x >= 0 && y >= 0 && x <= photo.width && y <= photo.height;
  for (const c of p.clicks) {
    if (!inside(c.x, c.y)) throw new ReviewApiError(400, `the click ${c.x},${c.y} lies outside the photo`);
  }
  if (p.box) {
    const [x0, y0, x1, y1] = p.box;
    if (!inside(x0, y0) || !inside(x1, y1) || x1 <= x0 || y1 <= y0) {
      throw new ReviewApiError(
        400,
        "the box must lie on the photo, its second corner right of and below the first",
      );
    }
  }
  return p;
}

function samPrompt(p: PagePrompt): SamPrompt {
  return {
    clicks: p.clicks.map((c) => ({ point: [c.x, c.y] as const, label: c.label })),
    ...(p.box ? { box: p.box } : {}),
  };
}

function hasPrompt(p: PagePrompt): boolean {
  return p.clicks.length > 0 || p.box !== undefined;
}

/** A photo as the page lists it. */
export interface PagePhoto {
  readonly stem: string;
  readonly file: string;
  readonly width: number;
  readonly height: number;
  /** The size the photo and its masks are sent at. */
  readonly display: PixelSize;
  /** In the training set now (its training files exist). */
  readonly inSet: boolean;
  readonly doubtful: boolean;
  readonly confidence: number;
  /** Mask area as a fraction of the photo. */
  readonly area: number;
  readonly flags: readonly string[];
  /** The report's reason (doubtful, excluded), when there is one. */
  readonly reason: string | undefined;
  readonly decision: "include" | "exclude" | undefined;
  /** A mask drawn in review: when, and whether the set uses it yet. */
  readonly override: { readonly at: string; readonly applied: boolean } | undefined;
  /** This photo is the reference chosen in review. */
  readonly reviewReference: boolean;
  /** A decision the set does not show yet (rebuild to apply it). */
  readonly pending: boolean;
}

/** The set as the page shows it. */
export interface PageSet {
  /** Names only: the page never shows a local path. */
  readonly name: string;
  readonly input: string;
  readonly model: string;
  readonly testModel: boolean;
  readonly reference: string | undefined;
  readonly reviewReference: string | undefined;
  readonly photos: readonly PagePhoto[];
  readonly notes: readonly string[];
  readonly rebuilding: boolean;
  readonly pending: boolean;
}

/** SAM's masks for a prompt, for the page. */
export interface PagePrediction {
  readonly masks: readonly {
    readonly token: number;
    readonly score: number;
    readonly area: number;
    /** The overlay PNG at display size, base64. */
    readonly png: string;
  }[];
  readonly best: number;
  /** Milliseconds spent: waiting for the embedding, decoding, in all. */
  readonly ms: { readonly embedding: number; readonly decoder: number; readonly total: number };
}

/** What the API tells its owner as a rebuild goes. */
export type RebuildEvent =
  | { readonly phase: "start" }
  | {
      readonly phase: "progress";
      readonly done: number;
      readonly total: number;
      readonly file: string;
      readonly status: string;
    }
  | { readonly phase: "note"; readonly message: string }
  | {
      readonly phase: "done";
      readonly kept: number;
      readonly excluded: number;
      readonly failed: number;
      readonly segmented: number;
      readonly exitCode: number;
    }
  | { readonly phase: "failed"; readonly message: string };

/** Parameters of {@link ReviewApi}. */
export interface ReviewApiParams {
  readonly set: ReviewSet;
  readonly model: SamModel;
  /** The on-disk embedding cache (`prepare` filled it). @default none: photos are encoded again */
  readonly embeddingCache?: EmbeddingStore | undefined;
  /**
   * Longer side of the photo and masks sent to the page, in pixels.
   * @default 1280
   */
  readonly displaySide?: number | undefined;
  /** Told of every step of a rebuild. */
  readonly onRebuild?: ((event: RebuildEvent) => void) | undefined;
}

/** Small least-recently-used map. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as string);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
  clear(): void {
    this.map.clear();
  }
}

/** The review's operations on one set with one model. */
export class ReviewApi {
  private readonly encoder: PhotoEncoder;
  private readonly displaySide: number;
  private readonly images = new Lru<Promise<Buffer>>(6);
  private readonly overlays = new Lru<Promise<Buffer>>(12);
  private readonly encoding = new Map<string, Promise<EncodedPhoto>>();
  private decoderQueue: Promise<unknown> = Promise.resolve();
  private rebuilding: Promise<PrepareResult | undefined> | undefined;
  private readonly rebuildAbort = new AbortController();
  /** The pixel limit the set was made with. */
  private readonly maxPixels: number | undefined;

  constructor(private readonly params: ReviewApiParams) {
    this.displaySide = params.displaySide ?? 1280;
    this.maxPixels = params.set.record.params.maxPixels;
    const limit = this.maxPixels === undefined ? {} : { maxPixels: this.maxPixels };
    this.encoder = new PhotoEncoder({
      model: params.model,
      cache: params.embeddingCache,
      memoryEntries: 8,
      loader: new PhotoLoader(limit),
    });
  }

  private get set(): ReviewSet {
    return this.params.set;
  }

  /** The photo of a stem from a request. @throws ReviewApiError 404 for any other string */
  photo(stem: string): ReviewPhoto {
    const photo = this.set.photo(stem);
    if (!photo) throw new ReviewApiError(404, "no such photo in this set");
    return photo;
  }

  /** The set and its photos as the page shows them. */
  summary(): PageSet {
    const set = this.set;
    const runKey = set.state.settings.segmentation;
    const decisions = set.decisions;
    const photos = set.photos.map((p): PagePhoto => {
      const seg = p.state.segmentation!;
      const review: PhotoReview | undefined =
        decisions.photos[p.stem]?.photoSha256 === p.sha256 ? decisions.photos[p.stem] : undefined;
      const inSet = p.state.outputs !== undefined;
      const applied =
        review?.override !== undefined && seg.key === photoSegmentationKey(runKey, review.override);
      const usesOverride = seg.flags.includes(OVERRIDE_FLAG);
      const pending =
        (review?.override !== undefined && !applied) ||
        (review?.override === undefined && usesOverride) ||
        (review?.decision === "exclude" && inSet) ||
        (review?.decision === "include" && !inSet);
      return {
        stem: p.stem,
        file: p.file,
        width: p.width,
        height: p.height,
        display: displaySize(p, this.displaySide),
        inSet,
        doubtful: seg.doubtful,
        confidence: seg.confidence,
        area: seg.area / (seg.width * seg.height),
        flags: [...seg.flags, ...(p.state.outputs?.cropFlags ?? [])],
        reason: p.report?.reason,
        decision: review?.decision,
        override: review?.override ? { at: review.override.at, applied } : undefined,
        reviewReference: decisions.reference?.stem === p.stem && decisions.reference.photoSha256 === p.sha256,
        pending,
      };
    });
    const report = set.report;
    return {
      name: basename(set.outDir),
      input: basename(set.inputDir),
      model: set.record.model.label,
      testModel: this.params.model.isTestModel,
      reference: typeof report?.settings.reference === "string" ? report.settings.reference : undefined,
      reviewReference: decisions.reference?.file,
      photos,
      notes: [...set.notes],
      rebuilding: this.rebuilding !== undefined,
      pending: this.referencePending() || photos.some((p) => p.pending),
    };
  }

  /** The photo at display size as a JPEG (cached); starts computing its embedding meanwhile. */
  photoImage(stem: string): Promise<Buffer> {
    const photo = this.photo(stem);
    let image = this.images.get(stem);
    if (!image) {
      image = (async () => {
        await this.set.verifyPhoto(photo);
        const full = await loadRgb(
          photo.path,
          this.maxPixels === undefined ? {} : { maxPixels: this.maxPixels },
        );
        // The embedding is computed from these pixels when the cache lacks it (one decode).
        this.embedding(photo, full).catch(() => undefined);
        const size = displaySize(full, this.displaySide);
        const small =
          size.width === full.width && size.height === full.height
            ? full
            : await resizeRgb(full, size.width, size.height);
        return encodeJpeg(small, 85);
      })();
      // A failure is not kept: the next request tries again.
      image.catch(() => this.images.delete(stem));
      this.images.set(stem, image);
    }
    return image;
  }

  /** The report thumbnail `prepare` kept for the photo (JPEG), or undefined. */
  async photoThumbnail(stem: string): Promise<Buffer | undefined> {
    const photo = this.photo(stem);
    // Only the name prepare gives thumbnails; the state is not trusted to name another file.
    if (photo.state.thumbs?.photo !== `${THUMBS_DIR}/${stem}.jpg`) return undefined;
    return readFile(join(this.set.outDir, THUMBS_DIR, `${stem}.jpg`)).catch(() => undefined);
  }

  /**
   * The mask the next rebuild will use, at display size, as an overlay PNG: the one drawn in review,
   * else the set's.
   */
  currentMask(stem: string): Promise<Buffer> {
    const photo = this.photo(stem);
    const review = this.reviewOf(photo);
    const key = `${stem}|${review?.override?.sha256 ?? photo.state.segmentation!.mask.sha256}`;
    let overlay = this.overlays.get(key);
    if (!overlay) {
      overlay = (async () => {
        const mask = await this.fullMask(photo);
        const size = displaySize(photo, this.displaySide);
        const small = resizeMask({
          mask,
          width: photo.width,
          height: photo.height,
          outWidth: size.width,
          outHeight: size.height,
        });
        return encodeOverlayPng(small, size.width, size.height);
      })();
      overlay.catch(() => this.overlays.delete(key));
      this.overlays.set(key, overlay);
    }
    return overlay;
  }

  /** SAM's three multimask outputs for a prompt, at display size. */
  async predict(stem: string, body: unknown): Promise<PagePrediction> {
    const photo = this.photo(stem);
    const prompt = parsePrompt(body, photo);
    if (!hasPrompt(prompt)) throw new ReviewApiError(400, "give at least one click or a box");
    const t0 = performance.now();
    const image = await this.embedding(photo);
    const t1 = performance.now();
    const display = displaySize(photo, this.displaySide);
    const { masks, best } = await this.decoder(() =>
      previewMasks({ decoder: this.params.model.decoder, image, prompt: samPrompt(prompt), display }),
    );
    const t2 = performance.now();
    return {
      masks: masks.map((m) => ({
        token: m.token,
        score: m.score,
        area: m.area,
        png: encodeOverlayPng(m.mask, display.width, display.height).toString("base64"),
      })),
      best,
      ms: { embedding: t1 - t0, decoder: t2 - t1, total: performance.now() - t0 },
    };
  }

  /**
   * Accept the photo: with a prompt, the chosen mask (full size) becomes its override; without one,
   * the mask shown now stays (a doubtful photo is then included as it is).
   */
  async accept(stem: string, body: unknown): Promise<PageSet> {
    const photo = this.photo(stem);
    this.refuseWhileRebuilding();
    const prompt = parsePrompt(body, photo);
    if (hasPrompt(prompt)) {
      const drawn = await this.promptMask(photo, prompt);
      await this.decide(photo, async (r) => {
        r.override = await this.storeMask(photo, safeName(stem, "override"), drawn);
        delete r.decision;
      });
    } else {
      await this.decide(photo, (r) => {
        if (r.override) delete r.decision;
        else r.decision = "include";
      });
    }
    return this.summary();
  }

  /** Leave the photo out of the training set. */
  async exclude(stem: string): Promise<PageSet> {
    const photo = this.photo(stem);
    this.refuseWhileRebuilding();
    await this.decide(photo, (r) => {
      r.decision = "exclude";
    });
    return this.summary();
  }

  /** Forget what was decided about the photo: back to PerSAM's mask and the set's rules. */
  async forget(stem: string): Promise<PageSet> {
    const photo = this.photo(stem);
    this.refuseWhileRebuilding();
    await this.set.updateDecisions((d) => {
      delete d.photos[photo.stem];
    });
    return this.summary();
  }

  /**
   * Take this photo as PerSAM's reference, with the mask of the prompt (when given) or the mask
   * shown now. The next rebuild segments the other photos from it.
   */
  async useAsReference(stem: string, body: unknown): Promise<PageSet> {
    const photo = this.photo(stem);
    this.refuseWhileRebuilding();
    const prompt = parsePrompt(body, photo);
    await this.set.verifyPhoto(photo);
    const drawn = hasPrompt(prompt)
      ? await this.promptMask(photo, prompt)
      : { mask: await this.fullMask(photo), prompt: undefined };
    await this.set.updateDecisions(async (d) => {
      const mask = await this.storeMask(photo, "reference", drawn);
      d.reference = { stem: photo.stem, photoSha256: photo.sha256, file: photo.file, mask };
    });
    return this.summary();
  }

  /** Go back to the set's own reference. */
  async forgetReference(): Promise<PageSet> {
    this.refuseWhileRebuilding();
    await this.set.updateDecisions((d) => {
      delete d.reference;
    });
    return this.summary();
  }

  /**
   * Start rebuilding the set (prepare on its photo folder, with its settings and the decisions).
   * @throws ReviewApiError 409 while a rebuild runs
   */
  startRebuild(): void {
    this.refuseWhileRebuilding();
    const emit = (event: RebuildEvent): void => this.params.onRebuild?.(event);
    emit({ phase: "start" });
    const onEvent = (event: PrepareEvent): void => {
      if (event.type === "photo") {
        emit({
          phase: "progress",
          done: event.done,
          total: event.total,
          file: event.result.file,
          status: event.result.status,
        });
      } else if (event.type === "warning") emit({ phase: "note", message: event.message });
    };
    this.rebuilding = rebuildSet({
      set: this.set,
      model: this.params.model,
      embeddingCache: this.params.embeddingCache,
      signal: this.rebuildAbort.signal,
      onEvent,
    })
      .then((result) => {
        this.overlays.clear();
        this.images.clear();
        emit({
          phase: "done",
          kept: result.counts.kept,
          excluded: result.counts.excluded,
          failed: result.counts.failed,
          segmented: result.counts.segmented,
          exitCode: result.exitCode,
        });
        return result;
      })
      .catch((error: unknown) => {
        const message =
          error instanceof UserError
            ? error.toLine()
            : (error as Error)?.name === "AbortError"
              ? "stopped; every file written so far is complete, and the next rebuild finishes the job"
              : `unexpected error (a bug): ${error instanceof Error ? error.message : String(error)}`;
        emit({ phase: "failed", message });
        return undefined;
      })
      .finally(() => {
        this.rebuilding = undefined;
      });
  }

  /** The running rebuild, if any (settles, never rejects). */
  get rebuild(): Promise<PrepareResult | undefined> | undefined {
    return this.rebuilding;
  }

  /** Stop a running rebuild after its current step and wait for it. */
  async stop(): Promise<void> {
    this.rebuildAbort.abort();
    await this.rebuilding;
  }

  /** The reference chosen (or forgotten) in review is not the one the set was built from. */
  private referencePending(): boolean {
    const chosen = this.set.decisions.reference;
    const built = this.set.report?.reference;
    const builtFromReview =
      built?.method === "mask-file" && /^reference\.[0-9a-f]{12}\.png$/.test(built.maskFile ?? "");
    if (!chosen) return builtFromReview;
    return !(builtFromReview && built?.stem === chosen.stem && built.maskFile === basename(chosen.mask.file));
  }

  private refuseWhileRebuilding(): void {
    if (this.rebuilding) throw new ReviewApiError(409, "the set is being rebuilt; wait until it is done");
  }

  private reviewOf(photo: ReviewPhoto): PhotoReview | undefined {
    const r = this.set.decisions.photos[photo.stem];
    return r?.photoSha256 === photo.sha256 ? r : undefined;
  }

  /** Change the decisions about a photo (made on its bytes as prepare read them). */
  private async decide(
    photo: ReviewPhoto,
    change: (review: PhotoReview) => void | Promise<void>,
  ): Promise<void> {
    await this.set.verifyPhoto(photo);
    await this.set.updateDecisions(async (d) => {
      const old = d.photos[photo.stem];
      const review: PhotoReview =
        old?.photoSha256 === photo.sha256 ? old : { photoSha256: photo.sha256, file: photo.file };
      review.file = photo.file;
      await change(review);
      if (review.override === undefined && review.decision === undefined) delete d.photos[photo.stem];
      else d.photos[photo.stem] = review;
    });
  }

  /** The full-size mask of a prompt (the chosen output, else SAM's best), and the prompt to record. */
  private async promptMask(
    photo: ReviewPhoto,
    prompt: PagePrompt,
  ): Promise<{ mask: Uint8Array; prompt: ReviewPrompt }> {
    const image = await this.embedding(photo);
    const { region, token } = await this.decoder(() =>
      acceptedMask({
        decoder: this.params.model.decoder,
        image,
        prompt: samPrompt(prompt),
        token: prompt.token,
      }),
    );
    return {
      mask: region.mask,
      prompt: { clicks: prompt.clicks, ...(prompt.box ? { box: prompt.box } : {}), token },
    };
  }

  /**
   * Write a mask file for the decisions. Called inside a change of the decisions only: saving other
   * decisions removes the mask files they do not name, so a file must be named in the same change.
   */
  private storeMask(
    photo: ReviewPhoto,
    name: string,
    drawn: { mask: Uint8Array; prompt: ReviewPrompt | undefined },
  ): Promise<ReviewMaskRecord> {
    return storeReviewMask({
      outDir: this.set.outDir,
      name,
      mask: drawn.mask,
      width: photo.width,
      height: photo.height,
      prompt: drawn.prompt,
    });
  }

  /** The full-size mask the next rebuild will use: the review's override, else the set's. */
  private async fullMask(photo: ReviewPhoto): Promise<Uint8Array> {
    const review = this.reviewOf(photo);
    if (review?.override) return loadReviewMask(this.set.outDir, review.override);
    const seg = photo.state.segmentation!;
    // Only the name prepare gives stored masks; the state is not trusted to name another file.
    if (seg.maskFile !== `${MASKS_DIR}/${photo.stem}.png`) {
      throw new ReviewApiError(
        409,
        "the set's mask of this photo is not where prepare keeps it; rebuild the set",
      );
    }
    if (seg.area === 0) return new Uint8Array(seg.width * seg.height);
    const path = join(this.set.outDir, MASKS_DIR, `${photo.stem}.png`);
    const bytes = await readFile(path).catch(() => undefined);
    if (!bytes) throw new ReviewApiError(409, "the set's mask of this photo is missing; rebuild the set");
    const own = decodeMaskPng(bytes);
    if (own && own.width === seg.width && own.height === seg.height) return own.mask;
    const red = await loadMaskRed(path);
    if (red.width !== seg.width || red.height !== seg.height) {
      throw new ReviewApiError(409, "the set's mask of this photo has the wrong size; rebuild the set");
    }
    return Uint8Array.from(red.red, (v) => (v ? 1 : 0));
  }

  /** The photo's embedding: from memory, the cache, or the encoder (one at a time per photo). */
  private embedding(photo: ReviewPhoto, image?: RgbImage): Promise<EncodedPhoto> {
    let pending = this.encoding.get(photo.stem);
    if (!pending) {
      pending = (async () => {
        await this.set.verifyPhoto(photo);
        const out = await this.encoder.encode({ path: photo.path, sha256: photo.sha256, image });
        return out.encoded;
      })().finally(() => this.encoding.delete(photo.stem));
      this.encoding.set(photo.stem, pending);
    }
    return pending;
  }

  /** Decoder passes one after another (the page's clicks arrive faster than they run). */
  private decoder<T>(run: () => Promise<T>): Promise<T> {
    const next = this.decoderQueue.then(run);
    this.decoderQueue = next.catch(() => undefined);
    return next;
  }
}

/** The stem as a file-name part when it is plain ASCII, else `fallback`. */
function safeName(stem: string, fallback: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(stem) ? stem : fallback;
}
