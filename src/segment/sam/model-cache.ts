// What persam-db derives from model files each time it opens them, kept in its cache so that the
// next open skips the work: the image encoder after the attention rewrite and onnxruntime's graph
// optimisation, and the decoder graph built from the weights after onnxruntime's optimisation. The
// cached file is what onnxruntime itself wrote (`optimizedModelFilePath`), opened again with graph
// optimisation off: the same graph, the same kernels, the same numbers.
//
// Entries (util/content-cache.ts) are keyed by the source's content (a model file's sha256, found
// again through a cheap fingerprint of the file; the decoder weights' hash), the derivation's
// settings, onnxruntime's version and the CPU (an optimised graph holds layout choices for the CPU
// it was made on), and stamped with persam-db's version. Each is checked (sizes and sha256) before
// use; a damaged, stale or unloadable entry is removed with one warning and rebuilt. A cache that
// cannot be written (no permission, a full disk) never stops the model from opening.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { realpath, rm, stat } from "node:fs/promises";
import { arch, cpus } from "node:os";
import { join } from "node:path";
import { firstLine } from "../../errors.js";
import { ContentCache } from "../../util/content-cache.js";
import { hashFile } from "../../util/hash-file.js";
import { packageVersion } from "../../util/package-version.js";
import { createSession, type OrtSession, onnxruntimeVersion, type SessionOptions } from "./ort.js";

/** Default size limit of the prepared-model cache: 4 GiB (a ViT-B encoder is 0.36 GB). */
export const DEFAULT_MODEL_CACHE_BYTES = 4 * 1024 ** 3;

/** Raise when what an entry holds changes meaning; older entries are then stale. */
const FORMAT = "prepared-model-1";
const MODEL_FILE = "model.onnx";
/** Size limit of the fingerprint → sha256 memo (a few thousand entries). */
const SOURCES_BYTES = 2 * 1024 ** 2;

/** Options of {@link ModelCache}. */
export interface ModelCacheOptions {
  /** The cache folder, e.g. `<persam-db cache>/models` ({@link modelCacheDir}). */
  readonly dir: string;
  /** Size limit in bytes, least recently used first out; 0 turns the cache off. @default DEFAULT_MODEL_CACHE_BYTES */
  readonly maxBytes?: number | undefined;
  /**
   * What stamps the entries: an entry of another version is stale and rebuilt.
   * @default persam-db's version (util/package-version.ts)
   */
  readonly version?: string | undefined;
  /** Told once per problem: a damaged or stale entry, a write that failed. */
  readonly onWarning?: ((message: string) => void) | undefined;
}

/** The folder of the prepared-model cache inside persam-db's cache folder. */
export function modelCacheDir(persamCacheDir: string): string {
  return join(persamCacheDir, "models");
}

/** What a derivation gives besides its session: kept with the entry and given back on a hit. */
export interface Derived<M> {
  readonly session: OrtSession;
  readonly meta: M;
  /** False when the session's graph must not be cached (e.g. weights in external files). @default true */
  readonly cacheable?: boolean;
}

/** A session opened through the cache. */
export interface CachedSession<M> extends Derived<M> {
  /** True when it came from a cached entry. */
  readonly hit: boolean;
}

/** Opens a model's session, from a cached prepared graph when there is one. */
export type SessionFactory = (model: string | Uint8Array) => Promise<OrtSession>;

/** persam-db's cache of prepared model graphs; see the module comment. */
export class ModelCache {
  private readonly cache: ContentCache;
  /** Model files' sha256 by fingerprint: a memo of this cache, never warned about. */
  private readonly sources: ContentCache;

  constructor(options: ModelCacheOptions) {
    const maxBytes = options.maxBytes ?? DEFAULT_MODEL_CACHE_BYTES;
    this.cache = new ContentCache({
      dir: options.dir,
      version: `${options.version ?? packageVersion()}|${FORMAT}`,
      maxBytes,
      onWarning: options.onWarning,
    });
    // A dot folder: not an entry of the main cache (never listed, counted or evicted by it).
    this.sources = new ContentCache({
      dir: join(options.dir, ".sources"),
      version: "sha256-1",
      maxBytes: maxBytes === 0 ? 0 : SOURCES_BYTES,
    });
  }

  get dir(): string {
    return this.cache.dir;
  }

  /** False when the size limit is 0. */
  get enabled(): boolean {
    return this.cache.enabled;
  }

  /** Entries and bytes in the cache. */
  async usage(): Promise<{ entries: number; bytes: number }> {
    const list = await this.cache.list();
    return { entries: list.length, bytes: list.reduce((s, e) => s + e.bytes, 0) };
  }

  /** Remove every entry. */
  async clear(): Promise<void> {
    await this.cache.clear();
  }

  /**
   * sha256 of a model file. Found again without reading the file while its path, size,
   * modification time and inode are unchanged (hashing a 0.36 GB encoder on every open would cost
   * more than the cache saves); computed and remembered otherwise.
   * @throws the file-system error when the file cannot be read
   */
  async fileSha256(path: string): Promise<string> {
    const real = await realpath(path);
    const s = await stat(real);
    const key = `source\n${real}\n${s.size}\n${s.mtimeMs}\n${s.ino}`;
    const known = await this.sources.get<{ sha256?: unknown }>(key);
    if (typeof known?.meta.sha256 === "string") return known.meta.sha256;
    const { sha256 } = await hashFile(real);
    await this.sources.put(key, {}, { sha256 });
    return sha256;
  }

  /**
   * The session of `key`: from the cached prepared graph when it is there, checks out and loads
   * (opened with graph optimisation off), else by `derive(create)`, where `create` opens a session
   * as createSession does and also has onnxruntime write its optimised graph into the cache. The
   * cached graph is the one of the session `derive` returns; its `meta` is stored with it.
   * @throws what `derive` throws
   */
  async open<M>(params: {
    readonly key: string;
    readonly options: SessionOptions;
    readonly derive: (create: SessionFactory) => Promise<Derived<M>>;
  }): Promise<CachedSession<M>> {
    const key = `${params.key}\n${runtimeSignature()}`;
    // Hashed again only when changed since written: a ViT-B-size graph is 0.36 GB.
    const hit = this.enabled ? await this.cache.get<M>(key, "changed") : undefined;
    if (hit) {
      try {
        const session = await createSession(hit.files[MODEL_FILE]!, {
          ...params.options,
          graphOptimization: "disabled",
        });
        return { session, meta: hit.meta, hit: true };
      } catch (error) {
        await this.cache.reject(key, `onnxruntime cannot open it (${firstLine(error)})`);
      }
    }
    let temp: string | undefined;
    if (this.enabled) {
      temp = await this.cache.makeTempFolder().catch((error: unknown) => {
        this.cache.writeFailure(error);
        return undefined;
      });
    }
    const target = temp === undefined ? undefined : join(temp, MODEL_FILE);
    let saved = false;
    let saving = target !== undefined;
    const create: SessionFactory = async (model) => {
      saved = false;
      if (!saving || target === undefined) return createSession(model, params.options);
      await rm(target, { force: true });
      try {
        const session = await createSession(model, params.options, { saveOptimizedTo: target });
        saved = true;
        return session;
      } catch (error) {
        // The model itself, or writing its optimised graph (a full disk)? Without writing, the
        // model's own error comes back; a session means only the writing failed.
        await rm(target, { force: true });
        const session = await createSession(model, params.options);
        saving = false;
        this.cache.writeFailure(
          error,
          `onnxruntime could not write the optimised graph: ${firstLine(error)}`,
        );
        return session;
      }
    };
    try {
      const derived = await params.derive(create);
      if (saved && derived.cacheable !== false) {
        await this.cache.putFiles(key, { [MODEL_FILE]: target! }, derived.meta);
      }
      return { ...derived, hit: false };
    } finally {
      if (temp !== undefined) await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

let signature: string | undefined;

/**
 * What an optimised graph depends on besides the model: onnxruntime's version, the architecture
 * and the CPU's model and feature flags (layouts chosen for AVX-512 do not run on an AVX2 CPU).
 */
export function runtimeSignature(): string {
  if (signature === undefined) {
    let flags = "";
    try {
      flags = /^(?:flags|Features)\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
    } catch {
      // Not Linux: the CPU model alone.
    }
    const cpu = `${cpus()[0]?.model ?? "unknown"}|${flags.split(/\s+/).sort().join(" ")}`;
    signature = `onnxruntime ${onnxruntimeVersion()} ${arch()} cpu ${createHash("sha256").update(cpu).digest("hex").slice(0, 16)}`;
  }
  return signature;
}
