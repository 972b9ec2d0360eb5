// Stage 2 of `prepare`: the photo folder's photos, the files left aside (with a line each), and the
// photos made bad by a `<stem>.mask.png` beside them that does not fit (design §6: one bad photo
// never stops the others).

import { basename } from "node:path";
import { isUserError, UserError } from "../../errors.js";
import { loadMaskRed } from "../../image/image-io.js";
import { isRoutineSkip, type ScannedPhoto, type ScanResult, type SkippedFile, scanPhotos } from "../scan.js";

/** What the scan stage found. */
export interface InputScan {
  readonly scan: ScanResult;
  /** Skipped files worth a line (not hidden files, subfolders or our own output folder). */
  readonly notableSkips: readonly SkippedFile[];
  /** Photos that cannot take part, by stem, with the one-line reason. */
  readonly failed: ReadonlyMap<string, string>;
  /** The photos that can take part, in scan order. */
  readonly good: readonly ScannedPhoto[];
  /** One line per file left aside ("skipped …"), in the order found. */
  readonly problems: readonly string[];
}

/** Parameters of {@link scanInput}. */
export interface ScanInputParams {
  readonly inputDir: string;
  readonly outDir: string;
  /** The photo folder as the user wrote it, for messages. */
  readonly displayDir: string;
  readonly recursive: boolean;
  readonly maxPixels?: number | undefined;
  /** Scan only this file of the folder (one video as the input). */
  readonly only?: string | undefined;
}

/**
 * Scan the photo folder and check the masks beside its photos.
 * @throws UserError when no photo can take part (none found, or all bad), with the first reason.
 */
export async function scanInput(params: ScanInputParams): Promise<InputScan> {
  const scan = await scanPhotos({
    dir: params.inputDir,
    recursive: params.recursive,
    outputDir: params.outDir,
    ...(params.maxPixels === undefined ? {} : { maxPixels: params.maxPixels }),
    only: params.only,
  });
  // Hidden files, subfolders and our own output folder are skipped routinely: not worth a warning.
  const notableSkips = scan.skipped.filter((s) => !isRoutineSkip(s));
  const problems = notableSkips.map((s) => `skipped ${s.reason}`);
  for (const d of scan.duplicates) {
    problems.push(
      `skipped ${d.relPath}: same bytes as ${d.duplicateOf} (a duplicate would count twice in training)`,
    );
  }
  // A `<stem>.mask.png` beside a photo that does not fit it (wrong size, empty, unreadable) makes
  // that photo bad, not the run (design §6). Masks are small: reading one whole is cheap.
  const failed = new Map<string, string>();
  for (const photo of scan.photos) {
    if (photo.maskPath === undefined) continue;
    try {
      const m = await loadMaskRed(photo.maskPath);
      if (m.width !== photo.width || m.height !== photo.height) {
        failed.set(
          photo.stem,
          `${photo.relPath}: its mask ${basename(photo.maskPath)} is ${m.width}×${m.height} but the photo is ${photo.width}×${photo.height} — redraw or resize the mask`,
        );
      }
    } catch (error) {
      if (!isUserError(error)) throw error;
      failed.set(photo.stem, `${photo.relPath}: its mask is unusable (${error.toLine()})`);
    }
  }
  for (const line of failed.values()) problems.push(`skipped ${line}`);
  const good = scan.photos.filter((p) => !failed.has(p.stem));
  if (good.length === 0 && scan.videos.length === 0) {
    const why = problems[0] ?? scan.skipped.find((s) => s.kind === "folder")?.reason;
    throw new UserError(
      scan.photos.length === 0
        ? `No photos found in ${params.displayDir}`
        : `No usable photo in ${params.displayDir}`,
      {
        hint: why
          ? `${why}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}`
          : "put JPEG, PNG, WebP, TIFF or AVIF photos, or videos, of one subject in the folder",
      },
    );
  }
  return { scan, notableSkips, failed, good, problems };
}
