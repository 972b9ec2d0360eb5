// MANIFEST MIMIC — a stand-in for the last step of `prepare` until src/dataset/prepare.ts writes it:
// the finished set's manifest in OUT/.persam/state.json (`manifest: { version: 1, createdAt, files:
// { path: { sha256, size } } }`, every publishable file, never .persam/), as the contract in
// src/dataset/set-check.ts and src/dataset/prepare-state.ts describes. Tests call it right after a
// real prepare; once prepare writes the manifest itself, `finishSetLikePrepare` finds it there and
// only checks it, and every call can be deleted.

import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readState, type SetManifest, STATE_FILE } from "../../src/dataset/prepare-state.js";
import { listLocalFiles } from "../../src/hub/dataset-push.js";
import { hashFile } from "../../src/util/hash-file.js";

/**
 * Make `outDir` (the output of a successful, real `prepare`) carry its manifest: written from the
 * files it holds when prepare did not write one, left as it is when prepare did.
 * @returns the manifest
 */
export async function finishSetLikePrepare(outDir: string): Promise<SetManifest> {
  const { state, problem } = await readState(outDir);
  if (problem !== undefined) throw new Error(`not a prepare output: ${problem}`);
  if (state.manifest !== undefined) return state.manifest;
  const { found } = await listLocalFiles({ outDir });
  const files: SetManifest["files"] = {};
  for (const f of found) {
    const { sha256, size } = await hashFile(f.absPath);
    files[f.path] = { sha256, size };
  }
  const manifest: SetManifest = { version: 1, createdAt: new Date().toISOString(), files };
  const path = join(outDir, STATE_FILE);
  const json = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...json, manifest }, null, 1));
  return manifest;
}

/**
 * What a later prepare run that changed some files leaves: the manifest written again from the
 * files the folder holds now (tests change a file on purpose, then call this in place of a rerun).
 */
export async function rewriteManifestLikePrepare(outDir: string): Promise<SetManifest> {
  const path = join(outDir, STATE_FILE);
  const json = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  delete json.manifest;
  await writeFile(path, JSON.stringify(json, null, 1));
  return finishSetLikePrepare(outDir);
}
