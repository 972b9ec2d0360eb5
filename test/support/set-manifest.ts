// The finished set's manifest in OUT/.persam/state.json, as the tests read and (to stand for an
// edit that a later prepare run would record) rewrite it.

import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readState, type SetManifest, STATE_FILE } from "../../src/dataset/prepare-state.js";
import { listLocalFiles } from "../../src/hub/dataset-push.js";
import { hashFile } from "../../src/util/hash-file.js";

/**
 * The manifest that a finished `prepare` run left in `outDir`.
 * @throws when there is none (the run did not finish)
 */
export async function setManifest(outDir: string): Promise<SetManifest> {
  const { state, problem } = await readState(outDir);
  if (problem !== undefined) throw new Error(`not a prepare output: ${problem}`);
  if (state.manifest === undefined) throw new Error(`${outDir} holds no manifest: prepare did not finish`);
  return state.manifest;
}

/**
 * Record the folder's files as they are now, as a later `prepare` run that rewrote some of them
 * would: tests edit a file on purpose (the card), then call this in place of such a run.
 */
export async function rewriteManifestLikePrepare(outDir: string): Promise<SetManifest> {
  const previous = await setManifest(outDir);
  const { found } = await listLocalFiles({ outDir });
  const files: SetManifest["files"] = {};
  for (const f of found) {
    if (!(f.path in previous.files)) continue;
    const { sha256, size } = await hashFile(f.absPath);
    files[f.path] = { sha256, size };
  }
  const manifest: SetManifest = { version: 1, createdAt: new Date().toISOString(), files };
  const path = join(outDir, STATE_FILE);
  const json = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...json, manifest }, null, 1));
  return manifest;
}
