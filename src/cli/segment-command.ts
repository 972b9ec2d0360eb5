// `persam-db segment DIR [reference options] -o OUT`: PerSAM / PerSAM-F on every photo of a folder,
// one mask PNG (0/255) and one diagnostics JSON per photo. The dataset-free core of `prepare`.

import { mkdir, rm } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { EMBEDDINGS_DIR, STATE_DIR } from "../dataset/prepare-state.js";
import { isRoutineSkip, type ScannedPhoto, scanPhotos } from "../dataset/scan.js";
import { ExitCode, UserError } from "../errors.js";
import { encodePng } from "../image/image-io.js";
import { describeReference, resolveReference } from "../segment/persam/reference-source.js";
import { PhotoEncoder, type PhotoOutcome, segmentPhotos } from "../segment/persam/segment-photos.js";
import { EmbeddingCache } from "../segment/sam/embedding-cache.js";
import { maskToGrey } from "../segment/sam/postprocess.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { defineCommand } from "./command.js";
import { loadCliModel, type ModelOptions, withModelOptions } from "./model-options.js";
import { Progress } from "./progress.js";
import {
  type ReferenceOptions,
  referenceSpecsFromOptions,
  trainerFromOptions,
  withReferenceOptions,
} from "./reference-options.js";

interface SegmentOptions extends ModelOptions, ReferenceOptions {
  dir: string;
  output: string;
  recursive: boolean;
}

export const segmentCommand = defineCommand<SegmentOptions>({
  command: "segment <dir>",
  describe: "Mask the subject in every photo of a folder with PerSAM (one reference, no training)",
  builder: (yargs) =>
    withModelOptions(withReferenceOptions(yargs))
      .positional("dir", { type: "string", demandOption: true, describe: "Folder of photos of one subject" })
      .option("output", {
        alias: "o",
        type: "string",
        demandOption: true,
        describe: "Folder for <stem>.png masks (0/255) and <stem>.json diagnostics",
      })
      .option("recursive", { type: "boolean", default: false, describe: "Include photos in subfolders" })
      .example(
        "$0 segment ./my-cat --ref my-cat/01.jpg --ref-mask cat-01-mask.png -o masks",
        "a reference mask",
      )
      .example("$0 segment ./my-cat --ref 01.jpg --ref-point 420,310 -o masks", "one click on the subject")
      .example(
        "$0 segment ./my-cat -o masks",
        "uses 01.mask.png beside 01.jpg if present, else chooses automatically",
      )
      .example(
        "$0 segment ./my-cat --ref a.jpg --ref b.jpg --ref-point 1:40,50 --ref-box 2:10,10,200,300 -o masks",
        "two references, averaged",
      )
      .example(
        "$0 segment ./my-cat --ref 01.jpg --ref-mask m.png --mode persam-f -o masks --json",
        "PerSAM-F, JSON summary",
      ) as never,
  handler: async (options, context) => {
    const reporter = context.reporter(options);
    const dir = resolve(context.io.cwd, options.dir);
    const output = resolve(context.io.cwd, options.output);
    if (output === dir) {
      throw new UserError(`The output folder ${output} is the photo folder`, {
        hint: "masks are written as <stem>.png and would overwrite PNG photos; choose another -o folder",
      });
    }
    const trainer = trainerFromOptions(options);
    const scan = await scanPhotos({ dir, recursive: options.recursive, outputDir: output });
    if (scan.photos.length === 0) {
      throw new UserError(`No photos found in ${dir}`, {
        hint: options.recursive
          ? "add JPEG, PNG or WebP photos"
          : "add photos, or use --recursive for subfolders",
      });
    }
    const notable = scan.skipped.filter((s) => !isRoutineSkip(s));
    for (const s of notable) reporter.warn(s.reason);
    for (const d of scan.duplicates) reporter.warn(`${d.relPath}: same bytes as ${d.duplicateOf}, skipped`);
    const specs = await referenceSpecsFromOptions(options, { cwd: context.io.cwd, photosDir: dir });

    const model = await loadCliModel(options, context.io, reporter);
    try {
      // OUT/.persam holds the run's state (embeddings, reference masks, summary); scans skip it.
      const state = join(output, STATE_DIR);
      const embeddings = join(output, EMBEDDINGS_DIR);
      // EmbeddingCache writes into an existing folder.
      await mkdir(embeddings, { recursive: true });
      const encoder = new PhotoEncoder({ model, cache: new EmbeddingCache(embeddings) });
      const byPath = new Map(scan.photos.map((p) => [p.path, p]));
      const name = (path: string): string => byPath.get(path)?.relPath ?? relative(context.io.cwd, path);

      reporter.info(
        specs.length > 0
          ? `reference: ${specs.map((s) => name(s.photo)).join(", ")}`
          : "reference: looking for <stem>.mask.png beside the photos, else choosing one automatically",
      );
      const reference = await resolveReference({
        model,
        encoder,
        references: specs,
        photos: scan.photos.map((p) => ({ path: p.path, sha256: p.sha256, maskPath: p.maskPath })),
        mode: options.mode,
        trainer,
        signal: context.io.signal,
      });
      const referenceFiles: string[] = [];
      for (const [i, r] of reference.references.entries()) {
        const file = join(state, `reference-${i + 1}.png`);
        await writeFileAtomic(file, await maskPng(r.mask, r.width, r.height));
        referenceFiles.push(file);
        reporter.info(
          `reference ${i + 1}: ${name(r.photo)} (${r.source}${r.maskPath ? ` ${r.maskPath}` : ""}), ` +
            `${((100 * r.maskArea) / (r.width * r.height)).toFixed(1)}% of the photo, ${r.gridCells} feature cells`,
        );
      }
      if (reference.persamF) {
        reporter.info(
          `PerSAM-F fusion weights λ = [${reference.persamF.lambdas.map((l) => l.toFixed(4)).join(", ")}]`,
        );
      }

      const progress = new Progress(reporter, "segment", scan.photos.length);
      const summaries: Record<string, unknown>[] = [];
      const result = await segmentPhotos({
        model,
        encoder,
        photos: scan.photos.map((p) => ({ path: p.path, sha256: p.sha256 })),
        reference,
        keepMasks: false,
        signal: context.io.signal,
        onPhoto: async (outcome, index) => {
          const photo = scan.photos[index]!;
          const summary = photoSummary(outcome, photo, reference.mode, model.files.label);
          if (outcome.status === "ok") {
            await writeFileAtomic(
              join(output, `${photo.stem}.png`),
              await maskPng(outcome.mask!, outcome.width, outcome.height),
            );
          } else {
            await rm(join(output, `${photo.stem}.png`), { force: true });
            reporter.warn(`${photo.relPath}: ${outcome.reason}`);
          }
          await writeFileAtomic(join(output, `${photo.stem}.json`), `${JSON.stringify(summary, null, 2)}\n`);
          summaries.push(summary);
          progress.tick(photo.relPath);
        },
      });
      progress.finish();

      const { ok, failed, doubtful } = result.counts;
      const partial = failed > 0 || doubtful > 0 || notable.length > 0 || scan.duplicates.length > 0;
      const exitCode = partial ? ExitCode.partial : ExitCode.ok;
      const document = {
        command: "segment",
        dir,
        output,
        model: model.files.label,
        testModel: model.isTestModel,
        mode: reference.mode,
        reference: { ...describeReference(reference), maskFiles: referenceFiles },
        photos: summaries,
        skipped: notable.map((s) => ({ path: s.relPath, kind: s.kind, reason: s.reason })),
        duplicates: scan.duplicates.map((d) => ({ path: d.relPath, duplicateOf: d.duplicateOf })),
        counts: {
          photos: scan.photos.length,
          ok,
          failed,
          doubtful,
          skipped: notable.length + scan.duplicates.length,
        },
        exitCode,
      };
      await writeFileAtomic(join(state, "segment.json"), `${JSON.stringify(document, null, 2)}\n`);
      reporter.emitJson(document);

      const width = Math.max(5, ...scan.photos.map((p) => p.stem.length));
      for (const outcome of result.photos) {
        const stem = scan.photos[outcome.index]!.stem.padEnd(width);
        reporter.result(
          outcome.status === "ok"
            ? `${stem}  confidence ${outcome.confidence.confidence.toFixed(2)}  IoU ${outcome.iouScore.toFixed(3)}  ` +
                `area ${(100 * outcome.areaFraction).toFixed(1).padStart(5)}%${outcome.flags.length ? `  ${outcome.flags.join(", ")}` : ""}`
            : `${stem}  FAILED  ${outcome.reason}`,
        );
      }
      reporter.result(
        `${ok} of ${scan.photos.length} photos segmented into ${output}` +
          `${failed ? `, ${failed} failed` : ""}${doubtful ? `, ${doubtful} doubtful (check them)` : ""}` +
          `${notable.length + scan.duplicates.length ? `, ${notable.length + scan.duplicates.length} files skipped` : ""}`,
      );
      context.setExitCode(exitCode);
    } finally {
      await model.dispose();
    }
  },
});

/** The per-photo JSON written beside the mask. */
function photoSummary(
  outcome: PhotoOutcome,
  photo: ScannedPhoto,
  mode: string,
  model: string,
): Record<string, unknown> {
  const base = {
    photo: photo.relPath,
    path: photo.path,
    stem: photo.stem,
    sha256: photo.sha256,
    mode,
    model,
  };
  if (outcome.status === "failed") return { ...base, status: "failed", reason: outcome.reason };
  return {
    ...base,
    status: "ok",
    mask: `${photo.stem}.png`,
    size: { width: outcome.width, height: outcome.height },
    prior: {
      positive: [...outcome.prior.positive],
      ...(outcome.prior.negative ? { negative: [...outcome.prior.negative] } : {}),
    },
    steps: outcome.steps.map((s) => ({ ...s, ...(s.box ? { box: [...s.box] } : {}) })),
    iouScore: outcome.iouScore,
    area: outcome.area,
    areaFraction: outcome.areaFraction,
    similarity: outcome.similarity,
    confidence: outcome.confidence,
    doubtful: outcome.doubtful,
    flags: outcome.flags,
    cachedEmbedding: outcome.cachedEmbedding,
    timings: roundTimings(outcome.timings),
  };
}

function roundTimings(timings: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

async function maskPng(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  return encodePng({ data: maskToGrey(mask), width, height, channels: 1 });
}
