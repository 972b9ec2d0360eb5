// Photo embeddings cached on disk by content, in the user's cache and shared by every command: the
// encoder is the slow step, so the same photo is never encoded twice by `segment`, `prepare`, `eval`
// or a rerun. Bounded in size, least recently used first out (util/content-cache.ts).

import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { embeddingCacheBytes, persamCacheDir } from "../../config.js";
import { ContentCache } from "../../util/content-cache.js";
import { numel, type Size } from "../../util/tensor.js";
import type { EncodedPhoto } from "./sam-model.js";

/**
 * The format of cached embeddings. Raise it when the photo → embedding path changes (decoding,
 * resize, normalisation): older entries are then stale and recomputed.
 */
const EMBEDDING_FORMAT = "embedding-1";

/** Default size limit of the embedding cache: 2 GiB, about 500 SAM embeddings. */
export const DEFAULT_EMBEDDING_CACHE_BYTES = 2 * 1024 ** 3;

/** What identifies an embedding: the photo's bytes and the encoder that made it. */
export interface EmbeddingKey {
  /** sha256 (hex) of the photo file. */
  readonly photoSha256: string;
  /** A fingerprint of the encoder (see {@link encoderFingerprint}). */
  readonly encoder: string;
  /** The DCT scale the photo was decoded at, when reduced (see `PhotoLoader`). @default 1 */
  readonly decodeFactor?: number;
}

/** Where embeddings are looked up and kept (the disk cache, or a wrapper of it). */
export interface EmbeddingStore {
  get(key: EmbeddingKey): Promise<EncodedPhoto | undefined>;
  /** Keep an embedding; resolves to true when a later `get` answers it (false: off, or a failed write). */
  put(key: EmbeddingKey, photo: EncodedPhoto): Promise<boolean>;
}

const side = z.number().int().positive();
/** What an entry's manifest records beside its bytes; checked, as the file may be damaged. */
const metaSchema = z.object({
  dims: z.array(side).min(1),
  originalSize: z.tuple([side, side]),
  inputSize: z.tuple([side, side]),
});
type Meta = z.infer<typeof metaSchema>;

/** Options of {@link EmbeddingCache}. */
export interface EmbeddingCacheOptions {
  /** The cache folder, e.g. `<persam-db cache>/embeddings`. */
  readonly dir: string;
  /** Size limit in bytes; 0 turns the cache off. @default DEFAULT_EMBEDDING_CACHE_BYTES */
  readonly maxBytes?: number;
  /** Told once per damaged entry or failed write (the work goes on without the cache). */
  readonly onWarning?: ((message: string) => void) | undefined;
}

/** A folder of cached embeddings (one raw float32 file per entry, checked on every read). */
export class EmbeddingCache implements EmbeddingStore {
  private readonly cache: ContentCache;

  constructor(options: EmbeddingCacheOptions) {
    this.cache = new ContentCache({
      dir: options.dir,
      version: EMBEDDING_FORMAT,
      maxBytes: options.maxBytes ?? DEFAULT_EMBEDDING_CACHE_BYTES,
      onWarning: options.onWarning,
    });
  }

  get dir(): string {
    return this.cache.dir;
  }

  /** The cached embedding, or undefined when absent (a damaged entry is removed and recomputed). */
  async get(key: EmbeddingKey): Promise<EncodedPhoto | undefined> {
    // Read once: the bytes are checked against the manifest's sha256 as they are.
    const keyText = embeddingKeyText(key);
    const entry = await this.cache.read<unknown>(keyText);
    if (!entry) return undefined;
    const meta = metaSchema.safeParse(entry.meta);
    const bytes = entry.bytes["embedding.f32"];
    if (!meta.success || !bytes || bytes.byteLength !== numel(meta.data.dims) * 4) {
      // A manifest that does not describe its file: never used, and rebuilt by the next put.
      await this.cache.reject(keyText, "its manifest does not describe an embedding of its size");
      return undefined;
    }
    const { dims, originalSize, inputSize } = meta.data;
    const data = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(data.buffer).set(bytes);
    return { embedding: { data, dims }, originalSize: originalSize as Size, inputSize: inputSize as Size };
  }

  /**
   * Store an embedding; a failed write is reported once and otherwise ignored.
   * @returns true when it is in the cache afterwards
   */
  async put(key: EmbeddingKey, photo: EncodedPhoto): Promise<boolean> {
    const { data } = photo.embedding;
    const meta: Meta = {
      dims: [...photo.embedding.dims],
      originalSize: [photo.originalSize[0], photo.originalSize[1]],
      inputSize: [photo.inputSize[0], photo.inputSize[1]],
    };
    return this.cache.put(
      embeddingKeyText(key),
      { "embedding.f32": new Uint8Array(data.buffer, data.byteOffset, data.byteLength) },
      meta,
    );
  }

  /** Entries and bytes in the cache. */
  async usage(): Promise<{ entries: number; bytes: number }> {
    const list = await this.cache.list();
    return { entries: list.length, bytes: list.reduce((s, e) => s + e.bytes, 0) };
  }

  /** Remove every cached embedding. */
  async clear(): Promise<void> {
    await this.cache.clear();
  }
}

/** The embedding cache folder inside persam-db's cache folder. */
export function embeddingCacheDir(persamCacheDir: string): string {
  return join(persamCacheDir, "embeddings");
}

/**
 * The user's embedding cache as this process's environment sets it (`PERSAM_DB_CACHE`,
 * `PERSAM_DB_EMBEDDING_CACHE`; see config.ts).
 */
export function defaultEmbeddingCache(onWarning?: (message: string) => void): EmbeddingCache {
  const maxBytes = embeddingCacheBytes();
  return new EmbeddingCache({
    dir: embeddingCacheDir(persamCacheDir()),
    ...(maxBytes === undefined ? {} : { maxBytes }),
    onWarning,
  });
}

/**
 * A cheap fingerprint of an encoder file: path, size and modification time (hashing a 2.5 GB
 * encoder on every run would cost more than it saves), plus the variant label.
 */
export async function encoderFingerprint(path: string, label: string): Promise<string> {
  const s = await stat(path);
  return `${label}|${path}|${s.size}|${Math.round(s.mtimeMs)}`;
}

function embeddingKeyText(key: EmbeddingKey): string {
  const scale =
    key.decodeFactor !== undefined && key.decodeFactor !== 1 ? `\ndecode 1/${key.decodeFactor}` : "";
  return `${key.encoder}\n${key.photoSha256}${scale}`;
}

/** A short identity of a key, for sets of keys seen in one run. */
export function embeddingKeyId(key: EmbeddingKey): string {
  return createHash("sha256").update(embeddingKeyText(key)).digest("hex").slice(0, 32);
}
