// Finding the photos and videos of an input folder: recognised by content, hidden files and our own
// outputs left alone, `<stem>.mask.png` reference masks collected, duplicates found by hash, stable
// output stems.

import { lstat, open, readdir, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { isUserError, UserError } from "../errors.js";
import { DEFAULT_MAX_PIXELS, probeImage } from "../image/image-io.js";
import { hashFile } from "../util/hash-file.js";
import { terminalSafe } from "../util/terminal-text.js";
import { videoContainerOf } from "../video/probe-video.js";

/** A photo found by {@link scanPhotos}. */
export interface ScannedPhoto {
  /** Absolute path (a link inside the folder keeps its own path). */
  readonly path: string;
  /** Path relative to the scanned folder, `/`-separated. */
  readonly relPath: string;
  /** Output file stem, unique in the scan (case-insensitively) and safe as a file name. */
  readonly stem: string;
  /** Size in bytes. */
  readonly size: number;
  /** SHA-256 of the file's bytes, hex. */
  readonly sha256: string;
  /** Format detected from the content (jpeg, png, webp, …). */
  readonly format: string;
  /** Size after EXIF orientation. */
  readonly width: number;
  readonly height: number;
  /** The `<name>.mask.png` beside it, when there is one. */
  readonly maskPath?: string;
  /** Set for a frame chosen from a video: `path` is then the frame's PNG in the output folder. */
  readonly frameOf?: {
    /** The video's relPath. */
    readonly video: string;
    /** Seconds from the start. */
    readonly time: number;
    /** The sample's index. */
    readonly index: number;
  };
}

/** A video found by {@link scanPhotos} (recognised by its first bytes; ffprobe reads it later). */
export interface ScannedVideo {
  readonly path: string;
  readonly relPath: string;
  /** Unique in the scan with the photos' stems; its frames' stems start with it. */
  readonly stem: string;
  readonly size: number;
  readonly sha256: string;
  /** Container seen in the first bytes (mp4, mov, matroska, avi). */
  readonly container: string;
}

/**
 * Why a file was left out. `hidden`, `folder`, `output-folder` and `sidecar` are routine; the rest
 * are worth a warning.
 */
export type SkipKind =
  | "hidden"
  | "folder"
  | "output-folder"
  | "sidecar"
  | "link"
  | "empty"
  | "not-a-photo"
  | "mask"
  | "special"
  | "unreadable";

/**
 * True for skips that are routine (hidden files, subfolders without --recursive, our own output
 * folder, the notes and metadata that sit beside photos): never worth a warning or exit code 2.
 */
export function isRoutineSkip(skip: { readonly kind: SkipKind }): boolean {
  return (
    skip.kind === "hidden" ||
    skip.kind === "folder" ||
    skip.kind === "output-folder" ||
    skip.kind === "sidecar"
  );
}

/**
 * Files that live beside photos without being photos: notes, metadata sidecars (XMP, Apple's AAE
 * edits, JSON from photo exports) and the thumbnail caches of file browsers. Recognised by name, and
 * only once their content is not an image either (a PNG named `.txt` is still a photo).
 */
const SIDECAR_EXTENSIONS = new Set(["txt", "json", "jsonl", "xmp", "aae", "ini", "md", "csv", "log"]);
const SIDECAR_NAMES = new Set(["thumbs.db", "desktop.ini", "ehthumbs.db", ".ds_store"]);

/** True for a file name that {@link scanPhotos} skips quietly when its content is not an image. */
export function isSidecarName(name: string): boolean {
  const lower = name.toLowerCase();
  const extension = /\.([^.]+)$/.exec(lower)?.[1];
  return SIDECAR_NAMES.has(lower) || (extension !== undefined && SIDECAR_EXTENSIONS.has(extension));
}

/**
 * Check the input of `prepare`: a folder of photos and videos, or one video file (recognised by its
 * content). `shown` is how the user wrote the path, for the message.
 * @returns true when the input is a video file, false for a folder.
 * @throws UserError naming the path when it is missing, or a file that is not a video.
 */
export async function checkPrepareInput(path: string, shown: string = path): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new UserError(`The photo folder ${shown} does not exist`, { hint: "check the path" });
  if (info.isDirectory()) return false;
  if (info.isFile() && videoContainerOf(await readHead(path)) !== undefined) return true;
  throw new UserError(`${shown} is neither a folder nor a video`, {
    hint: "give the folder that holds the photos, or a video of the subject (mp4, mov, m4v, webm, mkv)",
  });
}

/** A file or folder left out, with one line that names it and says why. */
export interface SkippedFile {
  readonly path: string;
  readonly relPath: string;
  readonly kind: SkipKind;
  readonly reason: string;
}

/** A photo with the same bytes as an earlier one; left out so it does not count twice in training. */
export interface DuplicatePhoto {
  readonly path: string;
  readonly relPath: string;
  /** relPath of the photo that was kept. */
  readonly duplicateOf: string;
}

/** Result of {@link scanPhotos}; every list is in natural order of relPath. */
export interface ScanResult {
  readonly photos: readonly ScannedPhoto[];
  /** Videos (mp4, mov, m4v, webm, mkv, … by content), duplicates by bytes left out. */
  readonly videos: readonly ScannedVideo[];
  readonly skipped: readonly SkippedFile[];
  readonly duplicates: readonly DuplicatePhoto[];
  /** Reference masks by the output stem of their photo. */
  readonly maskFiles: ReadonlyMap<string, string>;
}

/** Parameters of {@link scanPhotos}. */
export interface ScanPhotosParams {
  /** The input folder. */
  readonly dir: string;
  /**
   * Descend into subfolders (links to folders are never followed).
   * @default false
   */
  readonly recursive?: boolean;
  /** Our output folder, skipped when it lies inside `dir` (any folder holding `.persam/` is skipped too). */
  readonly outputDir?: string;
  /**
   * Pixel limit checked from each header before decoding.
   * @default DEFAULT_MAX_PIXELS
   */
  readonly maxPixels?: number;
  /** Scan only this file of `dir` (a video given as the input). */
  readonly only?: string | undefined;
}

const MASK_SUFFIX = ".mask.png";

/**
 * List the photos of a folder. Photos are recognised by content (a PNG named `.jpg` is a photo, a text
 * file named `.jpg` is not). Left out, each with a reason: hidden files and folders, subfolders unless
 * `recursive`, our own output folder, links that lead outside the folder, links to folders, empty
 * files, non-images and images probeImage refuses (HEIC, too large, …), and `*.mask.*` files (PNG masks
 * are collected for the photo of the same name; other formats are refused as lossy). Byte-identical
 * photos after the first are reported as duplicates. An empty result is not an error here: the
 * caller decides what "no photos" means.
 * @throws UserError when `dir` is missing, not a folder or unreadable.
 */
export async function scanPhotos(params: ScanPhotosParams): Promise<ScanResult> {
  const root = resolve(params.dir);
  const maxPixels = params.maxPixels ?? DEFAULT_MAX_PIXELS;
  let rootReal: string;
  try {
    rootReal = await realpath(root);
    if (!(await stat(rootReal)).isDirectory()) {
      throw new UserError(`${params.dir} is not a folder`, { hint: "give the folder that holds the photos" });
    }
  } catch (error) {
    if (isUserError(error)) throw error;
    throw new UserError(`Cannot read the photo folder ${params.dir}: ${errorCode(error)}`, {
      hint: "check the path",
      cause: error,
    });
  }
  const outputReal =
    params.outputDir === undefined ? undefined : await realpath(params.outputDir).catch(() => undefined);

  const skipped: SkippedFile[] = [];
  const found: Omit<ScannedPhoto, "stem" | "maskPath">[] = [];
  const foundVideos: Omit<ScannedVideo, "stem">[] = [];
  const masks = new Map<string, { path: string; relPath: string }>();
  // The reason is printed as one line: a line break or escape sequence in a file name must not split
  // it or reach the terminal.
  const skip = (path: string, relPath: string, kind: SkipKind, reason: string): void => {
    skipped.push({ path, relPath, kind, reason: terminalSafe(reason) });
  };

  const visit = async (absDir: string, relDir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(absDir);
    } catch (error) {
      if (relDir === "")
        throw new UserError(`Cannot read the photo folder ${params.dir}: ${errorCode(error)}`);
      skip(absDir, relDir, "unreadable", `${relDir}/: folder not readable (${errorCode(error)})`);
      return;
    }
    names.sort(naturalCompare);
    if (params.only !== undefined && relDir === "") names = names.filter((n) => n === params.only);
    for (const name of names) {
      const abs = join(absDir, name);
      const rel = relDir === "" ? name : `${relDir}/${name}`;
      if (name.startsWith(".")) {
        skip(abs, rel, "hidden", `${rel}: hidden, ignored`);
        continue;
      }
      let info = await lstat(abs).catch(() => undefined);
      if (!info) {
        skip(abs, rel, "unreadable", `${rel}: vanished or not readable during the scan`);
        continue;
      }
      if (info.isSymbolicLink()) {
        const target = await realpath(abs).catch(() => undefined);
        if (target === undefined) {
          skip(abs, rel, "link", `${rel}: broken link, ignored`);
          continue;
        }
        if (!isInside(target, rootReal)) {
          skip(abs, rel, "link", `${rel}: link to a file outside the photo folder, ignored`);
          continue;
        }
        info = await stat(abs);
        if (info.isDirectory()) {
          skip(abs, rel, "link", `${rel}: link to a folder, not followed`);
          continue;
        }
      }
      if (info.isDirectory()) {
        const real = await realpath(abs).catch(() => abs);
        if ((outputReal !== undefined && real === outputReal) || (await isDirectory(join(abs, ".persam")))) {
          skip(abs, rel, "output-folder", `${rel}/: a persam-db output folder, ignored`);
        } else if (params.recursive) {
          await visit(abs, rel);
        } else {
          skip(abs, rel, "folder", `${rel}/: subfolder not scanned (scan recursively to include it)`);
        }
        continue;
      }
      if (!info.isFile()) {
        skip(abs, rel, "special", `${rel}: not a regular file, ignored`);
        continue;
      }
      const lower = name.toLowerCase();
      if (lower.endsWith(MASK_SUFFIX) && name.length > MASK_SUFFIX.length) {
        masks.set(rel.slice(0, rel.length - MASK_SUFFIX.length), { path: abs, relPath: rel });
        continue;
      }
      if (/\.mask\.[^.]+$/.test(lower)) {
        skip(
          abs,
          rel,
          "mask",
          `${rel}: masks must be PNG (lossless); save it as ${stripExtension(name)}.png`,
        );
        continue;
      }
      if (info.size === 0) {
        if (isSidecarName(name)) skip(abs, rel, "sidecar", `${rel}: an empty note or metadata file, ignored`);
        else skip(abs, rel, "empty", `${rel}: empty file (0 bytes), ignored`);
        continue;
      }
      const container = videoContainerOf(await readHead(abs));
      if (container !== undefined) {
        const { sha256 } = await hashFile(abs);
        foundVideos.push({ path: abs, relPath: rel, size: info.size, sha256, container });
        continue;
      }
      try {
        const probe = await probeImage(abs, { maxPixels });
        const { sha256 } = await hashFile(abs);
        found.push({
          path: abs,
          relPath: rel,
          size: info.size,
          sha256,
          format: probe.format,
          width: probe.width,
          height: probe.height,
        });
      } catch (error) {
        if (!isUserError(error)) throw error;
        if (isSidecarName(name))
          skip(
            abs,
            rel,
            "sidecar",
            `${rel}: not a photo (notes, metadata or a file browser's cache), ignored`,
          );
        else skip(abs, rel, "not-a-photo", error.toLine());
      }
    }
  };
  await visit(root, "");

  found.sort((a, b) => naturalCompare(a.relPath, b.relPath));
  const byHash = new Map<string, string>();
  const duplicates: DuplicatePhoto[] = [];
  const taken = new Set<string>();
  const photos: ScannedPhoto[] = [];
  const maskFiles = new Map<string, string>();
  const usedMasks = new Set<string>();
  for (const photo of found) {
    const first = byHash.get(photo.sha256);
    if (first !== undefined) {
      duplicates.push({ path: photo.path, relPath: photo.relPath, duplicateOf: first });
      continue;
    }
    byHash.set(photo.sha256, photo.relPath);
    const stem = uniqueStem(photo.relPath, taken);
    const mask = masks.get(stripExtension(photo.relPath));
    if (mask) {
      usedMasks.add(mask.relPath);
      maskFiles.set(stem, mask.path);
      photos.push({ ...photo, stem, maskPath: mask.path });
    } else {
      photos.push({ ...photo, stem });
    }
  }
  const videos: ScannedVideo[] = [];
  foundVideos.sort((a, b) => naturalCompare(a.relPath, b.relPath));
  for (const video of foundVideos) {
    const first = byHash.get(video.sha256);
    if (first !== undefined) {
      duplicates.push({ path: video.path, relPath: video.relPath, duplicateOf: first });
      continue;
    }
    byHash.set(video.sha256, video.relPath);
    videos.push({ ...video, stem: uniqueStem(video.relPath, taken) });
  }
  for (const [relStem, mask] of masks) {
    if (!usedMasks.has(mask.relPath)) {
      skip(
        mask.path,
        mask.relPath,
        "mask",
        `${mask.relPath}: no photo named ${relStem}.* beside this mask, ignored`,
      );
    }
  }
  skipped.sort((a, b) => naturalCompare(a.relPath, b.relPath));
  return { photos, videos, skipped, duplicates, maskFiles };
}

/** The first bytes of a file (fewer for a short or unreadable one). */
async function readHead(path: string): Promise<Uint8Array> {
  const handle = await open(path, "r").catch(() => undefined);
  if (!handle) return new Uint8Array(0);
  try {
    const head = new Uint8Array(64);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } catch {
    return new Uint8Array(0);
  } finally {
    await handle.close();
  }
}

function stripExtension(path: string): string {
  return path.replace(/\.[^./]*$/, "");
}

const RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)$/i;

/**
 * A file-name-safe stem for a photo: folders joined with `_`, extension dropped, anything but
 * letters, digits, `.`, `_` and `-` replaced by `-`, at most 80 characters. Collisions (compared
 * case-insensitively, for macOS and Windows) get the source extension, then a counter:
 * `a.jpg`, `a.png` → `a`, `a-png`.
 */
function uniqueStem(relPath: string, taken: Set<string>): string {
  const extension = /\.([^./]*)$/.exec(relPath)?.[1] ?? "";
  let base = stripExtension(relPath)
    .normalize("NFC")
    .split("/")
    .join("_")
    .replace(/[^\p{L}\p{N}._-]+/gu, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "");
  base = [...base].slice(0, 80).join("");
  if (base === "") base = "photo";
  if (RESERVED.test(base)) base = `${base}_`;
  const candidates = [base];
  const ext = extension.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");
  if (ext) candidates.push(`${base}-${ext}`);
  for (const c of candidates) {
    if (!taken.has(c.toLowerCase())) {
      taken.add(c.toLowerCase());
      return c;
    }
  }
  for (let n = 2; ; n++) {
    const c = `${base}-${n}`;
    if (!taken.has(c.toLowerCase())) {
      taken.add(c.toLowerCase());
      return c;
    }
  }
}

/**
 * Natural order: digit runs compare by value (`img2` < `img10`), other runs case-insensitively; ties
 * are broken by plain code-unit order, so the order never depends on the locale.
 */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  const n = Math.min(ra.length, rb.length);
  for (let i = 0; i < n; i++) {
    const x = ra[i]!;
    const y = rb[i]!;
    const dx = x.charCodeAt(0) >= 48 && x.charCodeAt(0) <= 57;
    const dy = y.charCodeAt(0) >= 48 && y.charCodeAt(0) <= 57;
    if (dx && dy) {
      const vx = x.replace(/^0+(?=\d)/, "");
      const vy = y.replace(/^0+(?=\d)/, "");
      if (vx.length !== vy.length) return vx.length - vy.length;
      if (vx !== vy) return vx < vy ? -1 : 1;
    } else {
      const lx = x.toLowerCase();
      const ly = y.toLowerCase();
      if (lx !== ly) return lx < ly ? -1 : 1;
    }
  }
  if (ra.length !== rb.length) return ra.length - rb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** True when `path` is `dir` or lies below it (both absolute; resolve links first where they matter). */
export function isInside(path: string, dir: string): boolean {
  const r = relative(dir, path);
  return r !== ".." && !r.startsWith(`..${sep}`) && !isAbsolute(r);
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return "not found";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ENOTDIR") return "not a folder";
  return error instanceof Error ? error.message.split("\n")[0]! : String(error);
}
