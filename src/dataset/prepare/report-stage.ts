// Stage 7 of `prepare`: the run's report — report.json (the data) and report.html (self-contained,
// with the thumbnails the per-photo stage kept) — and the terminal summary.

import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { writeFileAtomic } from "../../util/atomic-write.js";
import type { PrepareState } from "../prepare-state.js";
import {
  type PhotoReport,
  type PrepareReport,
  type ReportReference,
  type ReportThumbnail,
  renderReportHtml,
  type VideoReport,
} from "../report.js";
import type { InputScan } from "./scan-stage.js";
import type { Settings } from "./settings.js";

/** Parameters of {@link buildReport}. */
export interface BuildReportParams {
  /** Tool name. */
  readonly tool: string;
  /** The photo and output folders (only their names are reported: nothing local is published). */
  readonly input: string;
  readonly output: string;
  readonly settings: Settings;
  readonly modelLabel: string;
  readonly testModel: boolean;
  readonly reference: ReportReference | undefined;
  readonly referenceText: string | null;
  readonly scan: InputScan;
  /** Per photo, in scan order. */
  readonly photos: readonly PhotoReport[];
  /** The videos of the input. */
  readonly videos?: readonly VideoReport[] | undefined;
  /** Varied images in the training set (curation). */
  readonly varied?: { readonly count: number; readonly curated: boolean } | undefined;
  readonly totalMs: number;
}

/** The report data of a run. */
export function buildReport(p: BuildReportParams): PrepareReport {
  const { settings, scan } = p;
  const first = scan.good[0] ?? { stem: "", relPath: "", width: 1, height: 1 };
  return {
    version: 1,
    createdAt: new Date().toISOString(),
    tool: p.tool,
    input: basename(p.input),
    output: basename(p.output),
    settings: {
      class: settings.className,
      model: p.modelLabel,
      testModel: p.testModel,
      mode: settings.mode,
      reference: p.referenceText,
      resolution: settings.resolution,
      crop: settings.crop,
      aspect: settings.aspect,
      background: settings.background,
      bgWeight: settings.bgWeight,
      feather: settings.feather,
      caption: settings.caption,
      trainer: settings.trainer,
      keepDoubtful: settings.keepDoubtful,
      curate: settings.curate,
      ...(p.videos && p.videos.length > 0 ? { fps: settings.fps, frames: settings.frames } : {}),
    },
    reference: p.reference ?? {
      stem: first.stem,
      file: first.relPath,
      method: "auto",
      width: first.width,
      height: first.height,
    },
    photos: p.photos,
    skippedFiles: [
      ...scan.scan.skipped
        .filter((s) => s.kind !== "hidden" && s.kind !== "output-folder")
        .map((s) => ({ path: s.relPath, reason: s.reason })),
      ...scan.scan.duplicates.map((d) => ({ path: d.relPath, reason: `duplicate of ${d.duplicateOf}` })),
    ],
    ...(p.videos && p.videos.length > 0 ? { videos: p.videos } : {}),
    ...(p.varied ? { varied: p.varied } : {}),
    timingsMs: { totalMs: Math.round(p.totalMs) },
  };
}

/**
 * Write report.json and report.html (thumbnails from the state, embedded).
 * @returns the files written, relative to `outDir`.
 */
export async function writeReport(
  outDir: string,
  report: PrepareReport,
  state: PrepareState,
): Promise<string[]> {
  const thumbnails = new Map<string, ReportThumbnail>();
  for (const p of report.photos) {
    const t = state.photos[p.stem]?.thumbs;
    if (!t) continue;
    const photoBytes = await readFile(join(outDir, t.photo)).catch(() => undefined);
    if (!photoBytes) continue;
    const maskBytes = await readFile(join(outDir, t.mask)).catch(() => undefined);
    thumbnails.set(p.stem, {
      photo: { bytes: photoBytes, mime: "image/jpeg" },
      ...(maskBytes ? { mask: { bytes: maskBytes, mime: "image/png" as const } } : {}),
    });
  }
  await writeFileAtomic(join(outDir, "report.json"), `${JSON.stringify(report, null, 2)}\n`, { mkdir: true });
  await writeFileAtomic(join(outDir, "report.html"), renderReportHtml({ report, thumbnails }), {
    mkdir: true,
  });
  return ["report.json", "report.html"];
}
