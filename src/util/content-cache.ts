// A cache of derived files on disk, shared by every process of the user: entries keyed by what they
// were derived from, each a folder of files with a manifest of their sizes and sha256, written
// under a temporary name and renamed whole, checked on every read, and bounded in size (least
// recently used first out). A damaged or stale entry is never used: it is removed and reported once.
// A cache that cannot be written (full disk, no permission) never stops the work that fills it.

import { createHash, randomBytes } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { hashFile } from "./hash-file.js";

/** The manifest of one entry (`entry.json`). */
const manifestSchema = z.object({
  format: z.literal(1),
  /** The cache's own version: entries written by another version are stale. */
  version: z.string(),
  key: z.string(),
  files: z.record(
    z.string(),
    z.object({
      size: z.number().int().nonnegative(),
      sha256: z.string(),
      /** The file's identity when it was written and hashed: unchanged, it needs no new hash. */
      written: z.object({ mtimeMs: z.number(), ctimeMs: z.number(), ino: z.number() }).optional(),
    }),
  ),
  meta: z.unknown(),
});

const MANIFEST = "entry.json";

type FileRecord = z.infer<typeof manifestSchema>["files"][string];

/** A file's identity as the manifest records it (renaming its folder later leaves it unchanged). */
async function writtenStat(path: string): Promise<NonNullable<FileRecord["written"]>> {
  const s = await stat(path);
  return { mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino };
}

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
  /**
   * The cache's total size as this object last counted it, plus the entries it has written since;
   * undefined until the first count. Counting reads every entry's folder, so it is done only when
   * this total passes the limit. Entries removed by others only make it high (a count comes
   * early); entries written by other processes are seen at the next count.
   */
  private total: number | undefined;

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
   * @param verify `true` (the default): hash every file; `"changed"`: hash a file only when its
   *   size, modification time, change time or inode differ from when it was written (any write to
   *   it changes its change time, which no one can set back), for files too large to hash on every
   *   read; `false`: sizes only, for entries whose reader checks the content itself.
   */
  async get<M>(key: string, verify: boolean | "changed" = true): Promise<CacheEntry<M> | undefined> {
    const found = await this.manifestOf(key);
    if (!found) return undefined;
    const { folder, manifest } = found;
    const files: Record<string, string> = {};
    for (const [name, expected] of Object.entries(manifest.files)) {
      const path = join(folder, name);
      const info = await stat(path).catch(() => undefined);
      const size = info?.size ?? -1;
      if (size !== expected.size)
        return this.discard(folder, `${name} is ${size < 0 ? "missing" : "truncated"}`);
      const w = expected.written;
      const unchanged =
        w !== undefined && info?.mtimeMs === w.mtimeMs && info.ctimeMs === w.ctimeMs && info.ino === w.ino;
      const hash = verify === true || (verify === "changed" && !unchanged);
      if (hash && (await hashFile(path)).sha256 !== expected.sha256) {
        return this.discard(folder, `${name} does not match its recorded sha256`);
      }
      files[name] = path;
    }
    await this.touch(folder);
    return { files, meta: manifest.meta as M };
  }

  /**
   * The entry of `key` with its files' bytes, each read once and checked (size and sha256) on the
   * bytes read, for entries small enough to hold in memory; undefined when it is absent. A damaged
   * or stale entry is removed (with one warning), as by {@link get}.
   */
  async read<M>(key: string): Promise<{ bytes: Record<string, Uint8Array>; meta: M } | undefined> {
    const found = await this.manifestOf(key);
    if (!found) return undefined;
    const { folder, manifest } = found;
    const bytes: Record<string, Uint8Array> = {};
    for (const [name, expected] of Object.entries(manifest.files)) {
      const data = await readFile(join(folder, name)).catch(() => undefined);
      if (data === undefined || data.byteLength !== expected.size) {
        return this.discard(folder, `${name} is ${data === undefined ? "missing" : "truncated"}`);
      }
      if (createHash("sha256").update(data).digest("hex") !== expected.sha256) {
        return this.discard(folder, `${name} does not match its recorded sha256`);
      }
      bytes[name] = data;
    }
    await this.touch(folder);
    return { bytes, meta: manifest.meta as M };
  }

  /** The checked manifest of `key`'s entry and its folder; undefined when absent, damaged or stale. */
  private async manifestOf(
    key: string,
  ): Promise<{ folder: string; manifest: z.infer<typeof manifestSchema> } | undefined> {
    if (!this.enabled) return undefined;
    const folder = join(this.options.dir, ContentCache.entryName(key));
    let manifest: z.infer<typeof manifestSchema>;
    try {
      manifest = manifestSchema.parse(JSON.parse(await readFile(join(folder, MANIFEST), "utf8")));
    } catch (error) {
      // No entry, or no cache folder at all (a file where it should be: its writes warn).
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      return this.discard(folder, "its manifest is unreadable");
    }
    if (manifest.key !== key) return this.discard(folder, "it belongs to another key");
    if (manifest.version !== this.options.version) {
      return this.discard(folder, `it was written by version ${manifest.version}`);
    }
    return { folder, manifest };
  }

  /** Most recently used: the folder's modification time orders the eviction. */
  private async touch(folder: string): Promise<void> {
    const now = new Date();
    await utimes(folder, now, now).catch(() => undefined);
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
    const temp = this.tempName(name);
    let written: number;
    try {
      await mkdir(temp, { recursive: true });
      const records: Record<string, FileRecord> = {};
      for (const [file, bytes] of Object.entries(files)) {
        await writeFile(join(temp, file), bytes);
        records[file] = {
          size: bytes.byteLength,
          sha256: createHash("sha256").update(bytes).digest("hex"),
          written: await writtenStat(join(temp, file)),
        };
      }
      written = await this.commit(temp, folder, {
        format: 1,
        version: this.options.version,
        key,
        files: records,
        meta,
      });
    } catch (error) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      this.writeFailure(error);
      return false;
    }
    await this.evict(name, written);
    return true;
  }

  /**
   * Store an entry from files already on disk (too large to hold in memory): each is moved (or,
   * across file systems, copied) into the entry, hashed as it is read, and the entry renamed into
   * place as {@link put} does. The source files are gone afterwards, whatever the outcome.
   * @returns true when the entry is in the cache afterwards
   */
  async putFiles(key: string, files: Readonly<Record<string, string>>, meta: unknown): Promise<boolean> {
    if (!this.enabled) {
      await Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
      return false;
    }
    const name = ContentCache.entryName(key);
    const folder = join(this.options.dir, name);
    const temp = this.tempName(name);
    let written: number;
    try {
      await mkdir(temp, { recursive: true });
      const records: Record<string, FileRecord> = {};
      for (const [file, source] of Object.entries(files)) {
        const target = join(temp, file);
        await rename(source, target).catch(async (error: NodeJS.ErrnoException) => {
          if (error.code !== "EXDEV") throw error;
          await copyFile(source, target);
        });
        const written = await writtenStat(target);
        const { sha256, size } = await hashFile(target);
        records[file] = { size, sha256, written };
      }
      written = await this.commit(temp, folder, {
        format: 1,
        version: this.options.version,
        key,
        files: records,
        meta,
      });
    } catch (error) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      this.writeFailure(error);
      return false;
    } finally {
      await Promise.all(Object.values(files).map((f) => rm(f, { force: true }).catch(() => undefined)));
    }
    await this.evict(name, written);
    return true;
  }

  /**
   * A folder for files on their way into the cache (see {@link putFiles}), on the cache's file
   * system; the caller removes it. A dot name: never listed, counted or used as an entry.
   * @throws the file-system error when it cannot be made (the cache cannot be written)
   */
  async makeTempFolder(): Promise<string> {
    const temp = this.tempName("incoming");
    await mkdir(temp, { recursive: true });
    return temp;
  }

  /** Remove the entry of `key` as damaged (one warning saying why); it is rebuilt by its next put. */
  async reject(key: string, why: string): Promise<void> {
    await this.discard(join(this.options.dir, ContentCache.entryName(key)), why);
  }

  /**
   * Report that something could not be written to the cache: the first time only, through
   * `onWarning`; the work goes on without the cache.
   * @param reason what went wrong, when the error carries no system error code
   */
  writeFailure(error: unknown, reason?: string): void {
    if (this.writeFailed) return;
    this.writeFailed = true;
    const code = (error as NodeJS.ErrnoException | undefined)?.code ?? reason ?? "error";
    this.options.onWarning?.(`cannot write to the cache ${this.options.dir} (${code}); going on without it`);
  }

  /**
   * Write an entry's manifest into its temporary folder, then rename the folder into place.
   * @returns the entry's bytes, manifest included, as {@link list} counts them
   */
  private async commit(
    temp: string,
    folder: string,
    manifest: z.infer<typeof manifestSchema>,
  ): Promise<number> {
    const text = JSON.stringify(manifest);
    await writeFile(join(temp, MANIFEST), text);
    await rename(temp, folder).catch(async (error: NodeJS.ErrnoException) => {
      // Another process won the race for this key: its entry is as good as ours.
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
      await rm(temp, { recursive: true, force: true });
    });
    const files = Object.values(manifest.files).reduce((sum, f) => sum + f.size, 0);
    return files + Buffer.byteLength(text);
  }

  private tempName(name: string): string {
    return join(this.options.dir, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
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
    this.total = 0;
  }

  /**
   * After writing `keep` (`added` bytes): remove least recently used entries until the total fits;
   * `keep` is never removed.
   */
  private async evict(keep: string, added: number): Promise<void> {
    if (!Number.isFinite(this.maxBytes)) return;
    if (this.total !== undefined) {
      this.total += added;
      if (this.total <= this.maxBytes) return;
    }
    const entries = await this.list();
    let total = entries.reduce((s, e) => s + e.bytes, 0);
    for (let i = entries.length - 1; i >= 0 && total > this.maxBytes; i--) {
      const e = entries[i]!;
      if (e.name === keep) continue;
      await rm(join(this.options.dir, e.name), { recursive: true, force: true }).catch(() => undefined);
      total -= e.bytes;
    }
    this.total = total;
  }

  private async discard(folder: string, why: string): Promise<undefined> {
    this.options.onWarning?.(`the cache entry ${folder} is not used: ${why}; it is rebuilt`);
    await rm(folder, { recursive: true, force: true }).catch(() => undefined);
    return undefined;
  }
}
