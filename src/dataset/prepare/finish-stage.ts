// Stage 8 of `prepare`: the set made whole. Files of the output folders that no photo of this set
// owns (left by an interrupted or older run, or by a photo now left out) are removed, and the
// manifest — every file meant for publication with its size and sha256 — goes into the state
// last, so that `push` publishes a finished set and nothing else (set-check.ts).

import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { DATASET_LAYOUT } from "../../export/presets.js";
import { hashFile } from "../../util/hash-file.js";
import type { FileRecord, SetManifest, StateStore } from "../prepare-state.js";

/** Folders of the set that hold one file (or a few) per photo; a file of them no photo owns is stale. */
const PER_PHOTO_FOLDERS = [
  DATASET_LAYOUT.images,
  DATASET_LAYOUT.masks,
  DATASET_LAYOUT.weights,
  DATASET_LAYOUT.rgba,
  DATASET_LAYOUT.captions,
  DATASET_LAYOUT.onetrainer,
];

/** Parameters of {@link finishSet}. */
export interface FinishSetParams {
  readonly outDir: string;
  readonly store: StateStore;
  /** Every file this run published, relative to `outDir` (`/` separators). */
  readonly files: readonly string[];
  /** Records already known (the per-photo files hashed when written); the others are hashed here. */
  readonly known: Readonly<Record<string, FileRecord>>;
}

/**
 * Remove stale files from the per-photo folders, then record the manifest in the state.
 * @returns the manifest
 */
export async function finishSet(params: FinishSetParams): Promise<SetManifest> {
  const { outDir, store } = params;
  const published = new Set(params.files);
  for (const folder of PER_PHOTO_FOLDERS) {
    const entries = await readdir(join(outDir, folder), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const rel = `${folder}/${e.name}`;
      // Hidden names are temporary files of writes in progress (removeStaleTempFiles owns those).
      if (e.isFile() && !e.name.startsWith(".") && !published.has(rel)) {
        await rm(join(outDir, rel), { force: true });
      }
    }
  }
  const files: Record<string, FileRecord> = {};
  for (const rel of [...published].sort()) {
    const known = params.known[rel];
    if (known) files[rel] = known;
    else {
      const { sha256, size } = await hashFile(join(outDir, rel));
      files[rel] = { sha256, size };
    }
  }
  const manifest: SetManifest = { version: 1, createdAt: new Date().toISOString(), files };
  await store.update((s) => {
    s.manifest = manifest;
  });
  await store.flush();
  return manifest;
}
