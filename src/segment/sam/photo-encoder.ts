// Photos → SAM image embeddings, at most one encoder run per photo content: an in-memory LRU of
// recent embeddings in front of the optional on-disk cache, keyed by the file's sha256 and the
// encoder's fingerprint. Pixels come from the caller or from the run's PhotoLoader.

import { UserError } from "../../errors.js";
import type { RgbImage } from "../../image/image-io.js";
import { PhotoLoader } from "../../image/photo-loader.js";
import { hashFile } from "../../util/hash-file.js";
import { type EmbeddingStore, encoderFingerprint } from "./embedding-cache.js";
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
    const hash = photo.sha256 ?? (await photoSha256(path));
    // A reduced decode gives another embedding: its factor is part of the key.
    const factor = photo.image ? (photo.image.scaledFrom?.factor ?? 1) : await this.loader.factorFor(path);
    const memoryKey = factor === 1 ? hash : `${hash}/${factor}`;
    const hit = this.memory.get(memoryKey);
    if (hit) {
      this.memory.delete(memoryKey);
      this.memory.set(memoryKey, hit);
      return { ...hit, path, cached: true, loadMs: 0, encodeMs: 0 };
    }
    const { cache, model } = this.params;
    this.fingerprint ??= await encoderFingerprint(model.files.encoderPath, model.files.label);
    const key = {
      photoSha256: hash,
      encoder: this.fingerprint,
      ...(factor > 1 ? { decodeFactor: factor } : {}),
    };
    const stored = cache ? await cache.get(key) : undefined;
    let result: EncodedPhotoFile;
    let decoded: RgbImage | undefined;
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
    if (this.limit > 0) {
      this.memory.set(memoryKey, result);
      while (this.memory.size > this.limit) this.memory.delete(this.memory.keys().next().value as string);
    }
    return decoded === undefined ? result : { ...result, decoded };
  }
}

async function photoSha256(path: string): Promise<string> {
  try {
    return (await hashFile(path)).sha256;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UserError(`Cannot read the photo ${path} (${code})`, { hint: "check the path", cause: error });
  }
}
