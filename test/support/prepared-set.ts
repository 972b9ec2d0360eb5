// A real training set for the publishing tests: generated photos of one subject, `persam-db prepare`
// run in-process on the tiny random model (test/support/cli.ts), with the finished set's manifest.

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeTinyModel } from "../../src/segment/models/tiny-model.js";
import { runCli } from "./cli.js";
import { scene, writeJpeg, writeSceneMask } from "./photos.js";
import { setManifest } from "./set-manifest.js";

/** Where {@link prepareSet} put things. */
export interface PreparedSet {
  /** The photo folder (an input: never written to). */
  readonly photosDir: string;
  /** The set `prepare` wrote. */
  readonly outDir: string;
  /** The manifest's files, sorted. */
  readonly files: readonly string[];
}

/**
 * Three photos of a disc in `<root>/<name>/`, prepared into `<root>/<name>.persam/` with the tiny
 * model, every photo kept.
 * @throws when prepare fails (its stderr in the message)
 */
export async function prepareSet(params: {
  root: string;
  name: string;
  extraArgs?: readonly string[];
}): Promise<PreparedSet> {
  const model = await writeTinyModel({ dir: join(params.root, "model") });
  const photosDir = join(params.root, params.name);
  await mkdir(photosDir, { recursive: true });
  for (let i = 0; i < 3; i++) {
    await writeJpeg(join(photosDir, `shot-${i + 1}.jpg`), scene({ at: [0.4 + 0.1 * i, 0.5], seed: i }));
  }
  await writeSceneMask(join(photosDir, "shot-1.mask.png"), { at: [0.4, 0.5] });
  const outDir = join(params.root, `${params.name}.persam`);
  const run = await runCli(
    [
      "prepare",
      photosDir,
      "--encoder",
      model.encoderPath,
      "--decoder",
      model.decoderPath,
      "--threads",
      "1",
      "--keep-doubtful",
      "--resolution",
      "64",
      "-o",
      outDir,
      ...(params.extraArgs ?? []),
    ],
    { env: { ...process.env, HF_HUB_OFFLINE: "1" }, cwd: params.root },
  );
  if (run.code !== 0) throw new Error(`prepare failed (${run.code}): ${run.stderr}`);
  const manifest = await setManifest(outDir);
  return { photosDir, outDir, files: Object.keys(manifest.files).sort() };
}
