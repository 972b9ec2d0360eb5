// Stage 6 of `prepare`: what the trainers read besides the per-photo files — metadata.jsonl, the
// trainer files of the selected presets (diffusers, kohya, OneTrainer) and the dataset card.

import { readFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { datasetCard } from "../../export/dataset-card.js";
import { diffusersConfig, writeDiffusersFiles } from "../../export/diffusers.js";
import { type CopyOperation, kohyaConfig, writeKohyaFiles } from "../../export/kohya.js";
import { onetrainerPlan, writeOneTrainerFiles } from "../../export/onetrainer.js";
import type { PreparedDataset } from "../../export/presets.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { type MetadataRow, metadataRow, toJsonl } from "../metadata.js";
import type { Settings } from "./settings.js";

/**
 * The imagefolder metadata of the photos in the training set, in order. Rows recorded by an older
 * run are rebuilt through `metadataRow`, so every row has today's columns in today's order.
 */
export async function writeMetadata(outDir: string, rows: readonly MetadataRow[]): Promise<string> {
  await writeFileAtomic(join(outDir, "metadata.jsonl"), toJsonl(rows.map((r) => metadataRow(r))), {
    mkdir: true,
  });
  return "metadata.jsonl";
}

/**
 * Trainer files for the selected trainers plus the dataset card.
 * @returns `files`: paths relative to `outDir`, in the order written; `copies`: the per-photo files
 *   copied into a trainer's layout (their content is their source's).
 */
export async function writeExports(
  outDir: string,
  dataset: PreparedDataset,
  settings: Settings,
): Promise<{ files: string[]; copies: CopyOperation[] }> {
  const files: string[] = [];
  const copies: CopyOperation[] = [];
  const { diffusers, kohya, onetrainer } = settings.presets;
  const rel = (path: string): string => relative(outDir, path).split(sep).join("/");
  if (diffusers) {
    const config = diffusersConfig({ dataset, preset: diffusers });
    const w = await writeDiffusersFiles({ outputDir: outDir, config, description: diffusers.description });
    files.push(rel(w.json), rel(w.script));
  }
  if (kohya) {
    const config = kohyaConfig({ dataset, preset: kohya });
    const w = await writeKohyaFiles({ outputDir: outDir, config, description: kohya.description });
    files.push(rel(w.toml), rel(w.script));
    files.push(...(await copyInside(outDir, config.copies)));
    copies.push(...config.copies);
  }
  if (onetrainer) {
    const plan = onetrainerPlan({ dataset, preset: onetrainer });
    files.push(...(await copyInside(outDir, plan.copies)));
    copies.push(...plan.copies);
    files.push(...(await writeOneTrainerFiles({ outputDir: outDir, plan })));
  }
  const card = datasetCard({
    dataset,
    ...(diffusers ? { diffusersScript: diffusers.diffusers.script } : {}),
  });
  await writeFileAtomic(join(outDir, "README.md"), card, { mkdir: true });
  files.push("README.md");
  return { files, copies };
}

async function copyInside(outDir: string, copies: readonly CopyOperation[]): Promise<string[]> {
  const written: string[] = [];
  for (const c of copies) {
    await writeFileAtomic(join(outDir, c.to), await readFile(join(outDir, c.from)), { mkdir: true });
    written.push(c.to);
  }
  return written;
}
