// `persam-db segment DIR [reference options] -o OUT`: PerSAM / PerSAM-F on every photo of a folder,
// one mask PNG (0/255) and one diagnostics JSON per photo. The dataset-free core of `prepare`.

import { resolve } from "node:path";
import { scanSegmentFolder, segmentFolder } from "../dataset/segment-folder.js";
import { defineCommand } from "./command.js";
import { cliEmbeddingCache, loadCliModel, type ModelOptions, withModelOptions } from "./model-options.js";
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
    const trainer = trainerFromOptions(options);
    const folder = await scanSegmentFolder({
      dir: resolve(context.io.cwd, options.dir),
      output: resolve(context.io.cwd, options.output),
      recursive: options.recursive,
    });
    for (const line of folder.warnings) reporter.warn(line);
    const specs = await referenceSpecsFromOptions(options, { cwd: context.io.cwd, photosDir: folder.dir });

    const model = await loadCliModel(options, context.io, reporter);
    try {
      const progress = new Progress(reporter, "segment", folder.scan.photos.length);
      const result = await segmentFolder({
        folder,
        model,
        references: specs,
        mode: options.mode,
        trainer,
        embeddingCache: cliEmbeddingCache(options, context.io, reporter),
        cwd: context.io.cwd,
        signal: context.io.signal,
        onEvent: (event) => {
          if (event.type === "reference") {
            reporter.info(event.line);
            return;
          }
          if (event.outcome.status === "failed")
            reporter.warn(`${event.photo.relPath}: ${event.outcome.reason}`);
          progress.tick(event.photo.relPath);
        },
      });
      progress.finish();
      reporter.emitJson(result.document);

      const { scan, output } = folder;
      const { ok, failed, doubtful } = result.counts;
      const skipped = folder.notable.length + scan.duplicates.length;
      const width = Math.max(5, ...scan.photos.map((p) => p.stem.length));
      for (const outcome of result.outcomes) {
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
          `${skipped ? `, ${skipped} files skipped` : ""}`,
      );
      context.setExitCode(result.exitCode);
    } finally {
      await model.dispose();
    }
  },
});
