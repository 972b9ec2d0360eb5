// Photos → SAM image embeddings, at most one encoder run per photo content: an in-memory LRU of
// recent embeddings in front of the optional on-disk cache, keyed by the file's sha256 and the
// encoder's fingerprint. Pixels come from the caller or from the run's PhotoLoader.

import { UserError } from "../../errors.js";
import type { RgbImage } from "../../image/image-io.js";
import { PhotoLoader } from "../../image/photo-loader.js";
import { hashFile } from "../../util/hash-file.js";
import { type EmbeddingKey, type EmbeddingStore, encoderFingerprint } from "./embedding-cache.js";
import type { EncodedPhoto, SamModel } from "./sam-model.js";

/** Parameters of {@link PhotoEncoder}. */
export interface PhotoEncoderParams {
  readonly model: SamModel;
  /** On-disk embedding cache; without it every new PhotoEncoder encodes again. */
  readonly cache?: EmbeddingStore | undefined;
  /**
   * Embeddings kept in memory (most recently used), so that the reference step and the
   * segmentation step share them. One ViT embedding is 4 MiB.
   * @default 64
   */
  readonly memoryEntries?: number;
  /**
   * Decodes a photo when its embedding must be computed and the caller gave no pixels.
   * @default a PhotoLoader with the default pixel limit
   */
  readonly loader?: PhotoLoader | undefined;
}

/** A photo to encode. */
export interface PhotoInput {
  readonly path: string;
  /** sha256 of the file, when known (saves a read). */
  readonly sha256?: string | undefined;
  /** The photo already decoded (upright RGB, as `loadRgb` gives it), when the caller has it. */
  readonly image?: RgbImage | undefined;
}

/** One photo decoded and encoded, with what it cost. */
export interface EncodedPhotoFile {
  readonly path: string;
  readonly sha256: string;
  readonly encoded: EncodedPhoto;
  /** Photo size after EXIF orientation (the photo's own, also when it was decoded reduced). */
  readonly width: number;
  readonly height: number;
  /** True when the embedding came from memory or the disk cache. */
  readonly cached: boolean;
  readonly loadMs: number;
  readonly encodeMs: number;
}

/**
 * What {@link PhotoEncoder.encode} returns: the encoded photo, plus the pixels when this call had to
 * decode them (for the caller's next use of the same photo). Keep `decoded` no longer than needed:
 * a 12 MP photo is 36 MB.
 */
export interface EncodeOutcome extends EncodedPhotoFile {
  readonly decoded?: RgbImage;
}

/** Decodes and encodes photos for one model, at most once per content. */
export class PhotoEncoder {
  private readonly memory = new Map<string, EncodedPhotoFile>();
  private fingerprint: string | undefined;
  private readonly limit: number;
  private readonly loader: PhotoLoader;
  private prefetching: { readonly path: string; readonly done: Promise<void> } | undefined;

  constructor(private readonly params: PhotoEncoderParams) {
    this.limit = Math.max(0, params.memoryEntries ?? 64);
    this.loader = params.loader ?? new PhotoLoader();
  }

  get model(): SamModel {
    return this.params.model;
  }

  /**
   * The photo's embedding, from memory, the disk cache or the encoder.
   * @throws UserError when the photo cannot be read or decoded.
   */
  async encode(photo: PhotoInput): Promise<EncodeOutcome> {
    const { path } = photo;
    const t0 = performance.now();
    // A prefetch of this photo still looking in the cache decides first, so nothing is done twice.
    if (this.prefetching?.path === path) await this.prefetching.done;
    const hash = photo.sha256 ?? (await photoSha256(path));
    const factor = photo.image ? (photo.image.scaledFrom?.factor ?? 1) : await this.loader.factorFor(path);
    const memoryKey = memoryKeyOf(hash, factor);
    const hit = this.memory.get(memoryKey);
    if (hit) {
      this.memory.delete(memoryKey);
      this.memory.set(memoryKey, hit);
      return { ...hit, path, cached: true, loadMs: 0, encodeMs: 0 };
    }
    const key = await this.keyFor(hash, factor);
    const { cache, model } = this.params;
    const stored = cache ? await cache.get(key) : undefined;
    let result: EncodedPhotoFile;
    let decoded: RgbImage | undefined;
    if (stored) {
      result = storedFile(path, hash, stored, performance.now() - t0);
    } else {
      if (photo.image === undefined) decoded = await this.loader.load(path);
      const pixels = photo.image ?? decoded!;
      const t1 = performance.now();
      const encoded = await model.encode(pixels);
      const t2 = performance.now();
      if (cache) await cache.put(key, encoded);
      const [height, width] = encoded.originalSize;
      result = {
        path,
        sha256: hash,
        encoded,
        width,
        height,
        cached: false,
        loadMs: t1 - t0,
        encodeMs: t2 - t1,
      };
    }
    this.remember(memoryKey, result);
    return decoded === undefined ? result : { ...result, decoded };
  }

  /**
   * Prepare the `encode` of the photo that comes next, so that its slow part overlaps the caller's
   * work on the current one: an embedding in the disk cache is read into memory now; otherwise the
   * photo's decode is started (PhotoLoader.prefetch). With pixels given, or without a known sha256,
   * there is nothing to do ahead. Never throws: the photo's own `encode` reports what goes wrong.
   */
  prefetch(photo: PhotoInput): Promise<void> {
    const done = this.prepareAhead(photo);
    this.prefetching = { path: photo.path, done };
    return done;
  }

  private async prepareAhead(photo: PhotoInput): Promise<void> {
    const hash = photo.sha256;
    // Without memory to keep it in, a cached embedding read now would be read again by `encode`.
    if (photo.image !== undefined || hash === undefined || this.limit === 0) return;
    try {
      const factor = await this.loader.factorFor(photo.path);
      const memoryKey = memoryKeyOf(hash, factor);
      if (this.memory.has(memoryKey)) return;
      const { cache } = this.params;
      const stored = cache ? await cache.get(await this.keyFor(hash, factor)) : undefined;
      if (stored) this.remember(memoryKey, storedFile(photo.path, hash, stored, 0));
      else this.loader.prefetch(photo.path);
    } catch {
      // Left to the photo's own `encode`.
    }
  }

  private async keyFor(hash: string, factor: number): Promise<EmbeddingKey> {
    const { model } = this.params;
    this.fingerprint ??= await encoderFingerprint(model.files.encoderPath, model.files.label);
    return { photoSha256: hash, encoder: this.fingerprint, ...(factor > 1 ? { decodeFactor: factor } : {}) };
  }

  private remember(memoryKey: string, file: EncodedPhotoFile): void {
    if (this.limit === 0) return;
    this.memory.set(memoryKey, file);
    while (this.memory.size > this.limit) this.memory.delete(this.memory.keys().next().value as string);
  }
}

/** The in-memory key of a photo's embedding: a reduced decode gives another embedding. */
function memoryKeyOf(hash: string, factor: number): string {
  return factor === 1 ? hash : `${hash}/${factor}`;
}

function storedFile(path: string, sha256: string, stored: EncodedPhoto, loadMs: number): EncodedPhotoFile {
  const [height, width] = stored.originalSize;
  return { path, sha256, encoded: stored, width, height, cached: true, loadMs, encodeMs: 0 };
}

async function photoSha256(path: string): Promise<string> {
  try {
    return (await hashFile(path)).sha256;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UserError(`Cannot read the photo ${path} (${code})`, { hint: "check the path", cause: error });
  }
}
