// Photo embeddings cached on disk by content: the encoder is the slow step, so a rerun (or a
// changed crop setting) never encodes a photo twice. One raw float32 file + a JSON sidecar each.

import { createHash } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { numel, type Size } from "../../util/tensor.js";
import type { EncodedPhoto } from "./sam-model.js";

/** What identifies an embedding: the photo's bytes and the encoder that made it. */
export interface EmbeddingKey {
  /** sha256 (hex) of the photo file. */
  readonly photoSha256: string;
  /** A fingerprint of the encoder (see {@link encoderFingerprint}). */
  readonly encoder: string;
}

interface Sidecar {
  version: 1;
  dims: number[];
  originalSize: [number, number];
  inputSize: [number, number];
  encoder: string;
}

/** A folder of cached embeddings. */
export class EmbeddingCache {
  constructor(readonly dir: string) {}

  /** The cached embedding, or undefined when absent or unreadable (then it is recomputed). */
  async get(key: EmbeddingKey): Promise<EncodedPhoto | undefined> {
    const base = this.base(key);
    try {
      const sidecar = JSON.parse(await readFile(`${base}.json`, "utf8")) as Sidecar;
      if (sidecar.version !== 1 || sidecar.encoder !== key.encoder) return undefined;
      const bytes = await readFile(`${base}.f32`);
      if (bytes.byteLength !== numel(sidecar.dims) * 4) return undefined;
      const data = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(data.buffer).set(bytes);
      return {
        embedding: { data, dims: sidecar.dims },
        originalSize: sidecar.originalSize as Size,
        inputSize: sidecar.inputSize as Size,
      };
    } catch {
      return undefined;
    }
  }

  /** Store an embedding (data first, sidecar last, each written atomically). */
  async put(key: EmbeddingKey, photo: EncodedPhoto): Promise<void> {
    const base = this.base(key);
    await mkdir(this.dir, { recursive: true });
    const { data } = photo.embedding;
    await writeFileAtomic(`${base}.f32`, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    const sidecar: Sidecar = {
      version: 1,
      dims: [...photo.embedding.dims],
      originalSize: [photo.originalSize[0], photo.originalSize[1]],
      inputSize: [photo.inputSize[0], photo.inputSize[1]],
      encoder: key.encoder,
    };
    await writeFileAtomic(`${base}.json`, JSON.stringify(sidecar));
  }

  private base(key: EmbeddingKey): string {
    return join(this.dir, embeddingKeyId(key));
  }
}

/**
 * A cheap fingerprint of an encoder file: path, size and modification time (hashing a 2.5 GB
 * encoder on every run would cost more than it saves), plus the variant label.
 */
export async function encoderFingerprint(path: string, label: string): Promise<string> {
  const s = await stat(path);
  return `${label}|${path}|${s.size}|${Math.round(s.mtimeMs)}`;
}

/** The file name (without extension) of a key's embedding: a hash of encoder and photo. */
export function embeddingKeyId(key: EmbeddingKey): string {
  return createHash("sha256").update(`${key.encoder}\n${key.photoSha256}`).digest("hex").slice(0, 32);
}
