// Curation of the set, after every photo went through its stage: each photo's measures (taken by the
// per-photo stage from the pixels and mask it had, photo-measure.ts, kept in the state) compared across the set into
// flags with their values (blurry, duplicate, near-duplicate, subject small or at the edge, low
// resolution); with --curate the flagged photos leave the training set. Counts the varied images.

import { type CurationFlag, curationFlags, REDUNDANT_FLAGS } from "../curation.js";
import type { StateStore } from "../prepare-state.js";
import type { PhotoReport } from "../report.js";
import type { ScannedPhoto } from "../scan.js";
import { photoFiles, removeFiles } from "./photo-stage.js";
import type { Settings } from "./settings.js";
import type { PhotoResult } from "./types.js";

/** Parameters of {@link curateSet}. */
export interface CurateSetParams {
  readonly outDir: string;
  readonly store: StateStore;
  readonly settings: Settings;
  /** Photos in scan order. */
  readonly photos: readonly ScannedPhoto[];
  /** Results and report rows of this run, by stem (updated in place). */
  readonly results: Map<string, PhotoResult>;
  readonly reports: Map<string, PhotoReport>;
}

/** What curation found. */
export interface CurationOutcome {
  /** Images in the training set that are neither blurry nor a duplicate. */
  readonly varied: number;
  /** Lines worth a warning. */
  readonly warnings: readonly string[];
}

/**
 * Flag the set's photos and, with `settings.curate`, take the flagged ones out of the training set
 * (their training files removed; the next run leaves them out without writing them again).
 */
export async function curateSet(params: CurateSetParams): Promise<CurationOutcome> {
  const { outDir, store, settings, results, reports } = params;
  const state = store.state;
  const warnings: string[] = [];
  const members = params.photos.filter((p) => {
    const r = results.get(p.stem);
    const ps = state.photos[p.stem];
    if (!r || !ps?.curation) return false;
    return (
      r.status === "ok" || r.status === "doubtful" || (r.status !== "failed" && ps.curatedOut !== undefined)
    );
  });
  const flags = curationFlags(
    members.map((p) => ({ stem: p.stem, file: p.relPath, measure: state.photos[p.stem]!.curation! })),
    settings.resolution,
  );
  let varied = 0;
  for (const p of members) {
    const notes: readonly CurationFlag[] = flags.get(p.stem) ?? [];
    const result = results.get(p.stem)!;
    const report = reports.get(p.stem);
    const ps = state.photos[p.stem]!;
    const names = notes.map((n) => n.flag);
    let next: PhotoResult = {
      ...result,
      flags: [...result.flags, ...names.filter((n) => !result.flags.includes(n))],
    };
    let row: PhotoReport | undefined = report && {
      ...report,
      flags: [...report.flags, ...names.filter((n) => !report.flags.includes(n))],
      ...(notes.length > 0 ? { curation: notes.map((n) => ({ ...n })) } : {}),
    };
    if (settings.curate && notes.length > 0) {
      const why = `left out by --curate: ${notes.map((n) => n.detail).join("; ")}`;
      if (ps.outputs) await removeFiles(outDir, photoFiles(p.stem));
      await store.update((s) => {
        const entry = s.photos[p.stem]!;
        delete entry.outputs;
        entry.curatedOut = why;
      });
      const { outputs: _o, ...rest } = next;
      next = { ...rest, status: "excluded", action: "exclude", reason: why };
      if (row) {
        const { outputs: _ro, crop: _c, ...r } = row;
        row = { ...r, status: "doubtful", reason: why };
      }
    } else if (ps.curatedOut !== undefined) {
      await store.update((s) => {
        delete s.photos[p.stem]!.curatedOut;
      });
      if (!ps.outputs) {
        // Left out by an earlier --curate and no longer flagged: its files come with the next run.
        const why = settings.curate
          ? "passes curation now: run prepare again to add it to the training set"
          : "left out by an earlier --curate: run prepare again to add it to the training set";
        warnings.push(`${p.relPath}: ${why}`);
        next = { ...next, status: "excluded", action: "exclude", reason: why };
        if (row) row = { ...row, status: "doubtful", reason: why };
      }
    }
    results.set(p.stem, next);
    if (row) reports.set(p.stem, row);
    if ((next.status === "ok" || next.status === "doubtful") && !names.some((n) => REDUNDANT_FLAGS.has(n))) {
      varied++;
    }
  }
  // Photos in the set without measures (an older state) count as varied: nothing says otherwise.
  for (const p of params.photos) {
    const r = results.get(p.stem);
    if (!members.includes(p) && r && (r.status === "ok" || r.status === "doubtful") && r.outputs) varied++;
  }
  return { varied, warnings };
}
