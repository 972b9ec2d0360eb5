// A cache of derived files on disk, shared by every process of the user: entries keyed by what they
// were derived from, each a folder of files with a manifest of their sizes and sha256, written
// under a temporary name and renamed whole, checked on every read, and bounded in size (least
// recently used first out). A damaged or stale entry is never used: it is removed and reported once.
// A cache that cannot be written (full disk, no permission) never stops the work that fills it.

import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { hashFile } from "./hash-file.js";

/** The manifest of one entry (`entry.json`). */
const manifestSchema = z.object({
  format: z.literal(1),
  /** The cache's own version: entries written by another version are stale. */
  version: z.string(),
  key: z.string(),
  files: z.record(z.string(), z.object({ size: z.number().int().nonnegative(), sha256: z.string() })),
  meta: z.unknown(),
});

const MANIFEST = "entry.json";

/** Options of {@link ContentCache}. */
export interface ContentCacheOptions {
  /** The cache folder (created on first write). */
  readonly dir: string;
  /**
   * What makes entries comparable: the producing code's version. An entry of another version is
   * stale and rebuilt.
   */
  readonly version: string;
  /**
   * Largest total size in bytes; least recently used entries are removed past it. 0 disables the
   * cache (nothing is read or written).
   * @default Infinity
   */
  readonly maxBytes?: number;
  /** Told once per problem: a damaged or stale entry, a write that failed. */
  readonly onWarning?: ((message: string) => void) | undefined;
}

/** A cache entry as read. */
export interface CacheEntry<M> {
  /** Absolute paths of the entry's files, by name. */
  readonly files: Readonly<Record<string, string>>;
  readonly meta: M;
}

/** A folder of cache entries; see the module comment. */
export class ContentCache {
  private readonly maxBytes: number;
  private writeFailed = false;

  constructor(private readonly options: ContentCacheOptions) {
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  }

  /** False when the size limit is 0. */
  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  get dir(): string {
    return this.options.dir;
  }

  /** The folder name of a key (keys may be any text). */
  static entryName(key: string): string {
    return createHash("sha256").update(key).digest("hex").slice(0, 40);
  }

  /**
   * The entry of `key`, checked file by file (size and sha256), or undefined when it is absent.
   * A damaged or stale entry is removed (with one warning) and reported as absent.
   * @param verify hash every file (the default); false checks sizes only, for entries whose reader
   *   checks the content itself.
   */
  async get<M>(key: string, verify = true): Promise<CacheEntry<M> | undefined> {
    if (!this.enabled) return undefined;
    const folder = join(this.options.dir, ContentCache.entryName(key));
    let manifest: z.infer<typeof manifestSchema>;
    try {
      manifest = manifestSchema.parse(JSON.parse(await readFile(join(folder, MANIFEST), "utf8")));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      return this.discard(folder, "its manifest is unreadable");
    }
    if (manifest.key !== key) return this.discard(folder, "it belongs to another key");
    if (manifest.version !== this.options.version) {
      return this.discard(folder, `it was written by version ${manifest.version}`);
    }
    const files: Record<string, string> = {};
    for (const [name, expected] of Object.entries(manifest.files)) {
      const path = join(folder, name);
      const size = await stat(path).then(
        (s) => s.size,
        () => -1,
      );
      if (size !== expected.size)
        return this.discard(folder, `${name} is ${size < 0 ? "missing" : "truncated"}`);
      if (verify && (await hashFile(path)).sha256 !== expected.sha256) {
        return this.discard(folder, `${name} does not match its recorded sha256`);
      }
      files[name] = path;
    }
    // Most recently used: the folder's modification time orders the eviction.
    const now = new Date();
    await utimes(folder, now, now).catch(() => undefined);
    return { files, meta: manifest.meta as M };
  }

  /**
   * Store an entry: written into a temporary folder, then renamed into place. When another process
   * stored the same key meanwhile, its entry is kept. A failed write is reported once (through
   * `onWarning`) and otherwise ignored.
   * @returns true when the entry is in the cache afterwards
   */
  async put(key: string, files: Readonly<Record<string, Uint8Array>>, meta: unknown): Promise<boolean> {
    if (!this.enabled) return false;
    const name = ContentCache.entryName(key);
    const folder = join(this.options.dir, name);
    const temp = join(this.options.dir, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      await mkdir(temp, { recursive: true });
      const records: Record<string, { size: number; sha256: string }> = {};
      for (const [file, bytes] of Object.entries(files)) {
        await writeFile(join(temp, file), bytes);
        records[file] = { size: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex") };
      }
      const manifest = { format: 1, version: this.options.version, key, files: records, meta };
      await writeFile(join(temp, MANIFEST), JSON.stringify(manifest));
      await rename(temp, folder).catch(async (error: NodeJS.ErrnoException) => {
        // Another process won the race for this key: its entry is as good as ours.
        if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
        await rm(temp, { recursive: true, force: true });
      });
    } catch (error) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      if (!this.writeFailed) {
        this.writeFailed = true;
        const code = (error as NodeJS.ErrnoException).code ?? "error";
        this.options.onWarning?.(
          `cannot write to the cache ${this.options.dir} (${code}); going on without it`,
        );
      }
      return false;
    }
    await this.evict(name);
    return true;
  }

  /** Entries and their total size, most recently used first. */
  async list(): Promise<{ name: string; bytes: number; usedMs: number }[]> {
    const names = await readdir(this.options.dir).catch(() => [] as string[]);
    const out: { name: string; bytes: number; usedMs: number }[] = [];
    for (const name of names) {
      if (name.startsWith(".")) continue;
      const folder = join(this.options.dir, name);
      const info = await stat(folder).catch(() => undefined);
      if (!info?.isDirectory()) continue;
      let bytes = 0;
      for (const f of await readdir(folder).catch(() => [] as string[])) {
        bytes += await stat(join(folder, f)).then(
          (s) => s.size,
          () => 0,
        );
      }
      out.push({ name, bytes, usedMs: info.mtimeMs });
    }
    return out.sort((a, b) => b.usedMs - a.usedMs);
  }

  /** Remove every entry (and unfinished writes). */
  async clear(): Promise<void> {
    await rm(this.options.dir, { recursive: true, force: true });
  }

  /** Remove least recently used entries until the total fits; `keep` is never removed. */
  private async evict(keep: string): Promise<void> {
    if (!Number.isFinite(this.maxBytes)) return;
    const entries = await this.list();
    let total = entries.reduce((s, e) => s + e.bytes, 0);
    for (let i = entries.length - 1; i >= 0 && total > this.maxBytes; i--) {
      const e = entries[i]!;
      if (e.name === keep) continue;
      await rm(join(this.options.dir, e.name), { recursive: true, force: true }).catch(() => undefined);
      total -= e.bytes;
    }
  }

  private async discard(folder: string, why: string): Promise<undefined> {
    this.options.onWarning?.(`the cache entry ${folder} is not used: ${why}; it is rebuilt`);
    await rm(folder, { recursive: true, force: true }).catch(() => undefined);
    return undefined;
  }
}
