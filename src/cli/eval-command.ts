// `persam-db eval PERSEG_DIR`: mIoU / mAcc on a PerSeg-layout folder, computed as Personalize-SAM's
// eval_mioU.py does, from the model (PerSAM / PerSAM-F) or from existing mask files.

import { resolve } from "node:path";
import { ExitCode } from "../errors.js";
import { evaluatePerSeg, listPersegObjects, type PerSegEvaluation } from "../eval/perseg-eval.js";
import type { SamModel } from "../segment/sam/sam-model.js";
import { defineCommand } from "./command.js";
import { cliEmbeddingCache, loadCliModel, type ModelOptions, withModelOptions } from "./model-options.js";
import { asList } from "./parse.js";
import { Progress } from "./progress.js";
import { type ModeOptions, trainerFromOptions, withModeOptions } from "./reference-options.js";

interface EvalOptions extends ModelOptions, ModeOptions {
  dir: string;
  refIdx: string;
  objects?: string[] | string | undefined;
  allObjects: boolean;
  predictions?: string | undefined;
  saveMasks?: string | undefined;
}

export const evalCommand = defineCommand<EvalOptions>({
  command: "eval <dir>",
  describe: "Score PerSAM on a PerSeg-layout folder (mIoU, mAcc) the way the paper's evaluation does",
  builder: (yargs) =>
    withModelOptions(withModeOptions(yargs))
      .positional("dir", {
        type: "string",
        demandOption: true,
        describe: "Folder with Images/<object>/NN.jpg and Annotations/<object>/NN.png",
      })
      .option("ref-idx", {
        type: "string",
        default: "00",
        describe: "Photo NN used as each object's reference (left out of its score)",
      })
      .option("objects", {
        type: "string",
        array: true,
        describe: "Only these objects (comma-separated or repeated)",
      })
      .option("all-objects", {
        type: "boolean",
        default: false,
        describe: "Also score the 8 objects that the reference's eval_mioU.py leaves out (clock, vase, …)",
      })
      .option("predictions", {
        type: "string",
        describe: "Score existing masks DIR/<object>/NN.png instead of running the model",
      })
      .option("save-masks", {
        type: "string",
        describe: "Write the model's masks to DIR/<object>/NN.png (0/255), reusable with --predictions",
      })
      .example("$0 eval ./PerSeg", "PerSAM with the default model, reference 00")
      .example("$0 eval ./PerSeg --mode persam-f --objects cat,duck_toy --json", "PerSAM-F on two objects")
      .example(
        "$0 eval ./PerSeg --predictions ./outputs/persam",
        "score masks written by another tool",
      ) as never,
  handler: async (options, context) => {
    const reporter = context.reporter(options);
    const dir = resolve(context.io.cwd, options.dir);
    const objects = asList(options.objects)
      .flatMap((o) => o.split(","))
      .map((o) => o.trim())
      .filter(Boolean);
    const list = {
      dir,
      refIdx: options.refIdx,
      ...(objects.length > 0 ? { objects } : {}),
      skipLikeReference: !options.allObjects,
    };
    // Listed once up front: folder errors surface before a model loads, and progress knows the total.
    const listed = await listPersegObjects(list);
    if (listed.skipped.length > 0) {
      reporter.info(
        `left out like the reference's evaluation: ${listed.skipped.join(", ")} (--all-objects keeps them)`,
      );
    }
    const total = listed.objects.reduce((n, o) => n + o.tests.length, 0);
    const progress = new Progress(reporter, "eval", total);
    const onPhoto = (object: string, photo: { name: string }) => progress.tick(`${object}/${photo.name}`);

    let evaluation: PerSegEvaluation;
    let model: SamModel | undefined;
    try {
      if (options.predictions !== undefined) {
        evaluation = await evaluatePerSeg({
          ...list,
          predictions: { kind: "files", dir: resolve(context.io.cwd, options.predictions) },
          onPhoto,
          signal: context.io.signal,
        });
      } else {
        const trainer = trainerFromOptions(options);
        model = await loadCliModel(options, context.io, reporter);
        evaluation = await evaluatePerSeg({
          ...list,
          predictions: {
            kind: "model",
            model,
            mode: options.mode,
            trainer,
            ...(options.saveMasks !== undefined
              ? { saveDir: resolve(context.io.cwd, options.saveMasks) }
              : {}),
          },
          embeddingCache: cliEmbeddingCache(options, context.io, reporter),
          onPhoto,
          signal: context.io.signal,
        });
      }
    } finally {
      progress.finish();
      await model?.dispose();
    }

    const exitCode = evaluation.failedPhotos > 0 ? ExitCode.partial : ExitCode.ok;
    reporter.emitJson({
      command: "eval",
      dir,
      ...(model ? { model: model.files.label, testModel: model.isTestModel } : {}),
      ...evaluation,
      mIoU: 100 * evaluation.mIoU,
      mAcc: 100 * evaluation.mAcc,
      objects: evaluation.objects.map((o) => ({
        ...o,
        iou: 100 * o.iou,
        accuracy: 100 * o.accuracy,
        photos: o.photos.map((p) => ({ ...p, iou: 100 * p.iou })),
      })),
      units: "percent",
      exitCode,
    });
    const width = Math.max(6, ...evaluation.objects.map((o) => o.name.length));
    reporter.result(`${"object".padEnd(width)}     IoU     Acc  photos`);
    for (const o of evaluation.objects) {
      const failed = o.photos.filter((p) => p.failed !== undefined).length;
      reporter.result(
        `${o.name.padEnd(width)}  ${pct(o.iou)}  ${pct(o.accuracy)}  ${String(o.photos.length).padStart(6)}` +
          `${failed ? `  (${failed} failed, scored as empty)` : ""}`,
      );
    }
    reporter.result(
      `mIoU ${pct(evaluation.mIoU).trim()}  mAcc ${pct(evaluation.mAcc).trim()}  over ${evaluation.objects.length} objects ` +
        `(reference ${evaluation.refIdx}, ${evaluation.source === "files" ? "predictions from files" : `${evaluation.mode}, ${model?.files.label}`})`,
    );
    context.setExitCode(exitCode);
  },
});

function pct(x: number): string {
  return (100 * x).toFixed(2).padStart(6);
}
