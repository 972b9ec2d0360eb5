// `persam-db prepare DIR|VIDEO…`: the main job — photos or videos of one subject in, a resumable
// DreamBooth training set out (images, masks, loss weights, captions, trainer configs, dataset card,
// report); several inputs make one set each with the model opened once, --json one line per set.

import { basename, dirname, resolve } from "node:path";
import { videoToolsConfig } from "../config.js";
import { classFromFolderNotice, requireClassFromFolder } from "../dataset/captions.js";
import {
  DEFAULT_DECODE,
  type DecodeMode,
  defaultOutDir,
  dryRunResult,
  modelKeyOf,
  type PrepareEvent,
  type PreparePlan,
  type PrepareResult,
  planPrepare,
  runPrepare,
  type TrainerChoice,
} from "../dataset/prepare.js";
import { checkPrepareInput } from "../dataset/scan.js";
import { isUserError, UserError } from "../errors.js";
import type { EmbeddingCache } from "../segment/sam/embedding-cache.js";
import type { SamModel } from "../segment/sam/sam-model.js";
import { looksLikeHubToken } from "../util/hub-token.js";
import { terminalSafe } from "../util/terminal-text.js";
import { findVideoTools } from "../video/video-tools.js";
import { type CommandContext, defineCommand, type GlobalOptions } from "./command.js";
import type { Reporter } from "./io.js";
import {
  cliEmbeddingCache,
  type ModelOptions,
  openCliModel,
  resolveCliModelFiles,
  withModelOptions,
} from "./model-options.js";
import { Progress } from "./progress.js";
import { printPushResult, runPush } from "./push-command.js";
import {
  type ReferenceOptions,
  referenceSpecsFromOptions,
  trainerFromOptions,
  withReferenceOptions,
} from "./reference-options.js";

interface PrepareOptions extends ModelOptions, ReferenceOptions {
  inputs: string[];
  push?: string | undefined;
  pushPrivate: boolean;
  output?: string | undefined;
  identifier: string;
  /** The Hub token for --push. */
  token?: string | undefined;
  class?: string | undefined;
  captionTemplate?: string | undefined;
  resolution?: number | undefined;
  crop: "subject" | "center" | "none";
  aspect: string;
  background: string;
  bgWeight: number;
  feather: number;
  trainer: TrainerChoice;
  preset?: string | undefined;
  keepDoubtful: boolean;
  decode: DecodeMode;
  force: boolean;
  dryRun: boolean;
  jobs: number;
  recursive: boolean;
  maxPixels?: number | undefined;
  fps: number;
  frames: number;
  curate: boolean;
}

/**
 * Parse an aspect ratio written `W:H` (`3:4`) or as a number (`0.75`).
 * @throws UserError naming the option and the value.
 */
export function parseAspect(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?::\s*(\d+(?:\.\d+)?))?\s*$/.exec(value);
  const ratio = m ? Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2])) : Number.NaN;
  if (!Number.isFinite(ratio) || ratio <= 0) {
    throw new UserError(`Expected W:H (for example 1:1 or 3:4) for --aspect but received '${value}'`);
  }
  return ratio;
}

export const prepareCommand = defineCommand<PrepareOptions>({
  command: "prepare <inputs..>",
  describe:
    "Turn a folder of photos (or a video) of one subject into a DreamBooth training set (PerSAM masks); several inputs make one set each",
  builder: (yargs) =>
    withModelOptions(withReferenceOptions(yargs))
      .positional("inputs", {
        type: "string",
        array: true,
        demandOption: true,
        describe:
          "Folder of photos and videos of one subject, or one video (mp4, mov, m4v, webm, mkv); several: one set each, the model opened once",
      })
      .option("output", {
        alias: "o",
        type: "string",
        describe: "Output folder (default: <DIR>.persam beside the photo folder)",
      })
      .option("identifier", {
        type: "string",
        default: "sks",
        describe: "Rare word the model learns for the subject (DreamBooth identifier)",
      })
      .option("token", {
        type: "string",
        describe:
          "With --push: the Hub token (default: HF_TOKEN, else the 'huggingface-cli login' token file)",
      })
      .option("class", {
        type: "string",
        describe:
          "Class noun of the subject (cat, backpack, …); default: the last word of the folder name that names something (generic names such as 'Photos 2024' are refused)",
      })
      .option("caption-template", {
        type: "string",
        describe: "Caption with {token} (the identifier) and {class} (default: 'a photo of {token} {class}')",
      })
      .option("resolution", {
        type: "number",
        describe: "Shorter side of the training images (default: the preset's, 512 for SD 1.5)",
      })
      .option("crop", {
        type: "string",
        choices: ["subject", "center", "none"],
        default: "subject",
        describe: "Crop around the subject, the photo centre, or not at all",
      })
      .option("aspect", { type: "string", default: "1:1", describe: "Crop aspect ratio W:H" })
      .option("background", {
        type: "string",
        default: "white",
        describe: "Background of images/: white, gray, color:#rrggbb, blur, noise, transparent, keep",
      })
      .option("bg-weight", { type: "number", default: 0.1, describe: "Loss weight of the background (0–1)" })
      .option("feather", {
        type: "number",
        default: 8,
        describe:
          "Soft edge of the loss weights (weights/, rgba/) in output pixels; images/ keeps a clean edge",
      })
      .option("trainer", {
        type: "string",
        choices: ["diffusers", "kohya", "onetrainer", "all"],
        default: "all",
        describe: "Which trainer files to write",
      })
      .option("preset", {
        type: "string",
        describe: "Training preset from configs/ (e.g. diffusers-sdxl-lora)",
      })
      .option("keep-doubtful", {
        type: "boolean",
        default: false,
        describe: "Keep photos whose mask looks doubtful in the training set",
      })
      .option("decode", {
        type: "string",
        choices: ["full", "scaled"],
        default: DEFAULT_DECODE,
        describe:
          "full: the encoder sees the reference's pixels; scaled: JPEGs decoded at the smallest DCT scale that keeps 1024 px and the training resolution (faster, a documented deviation)",
      })
      .option("force", {
        type: "boolean",
        default: false,
        describe: "Redo everything (ignore the saved state)",
      })
      .option("dry-run", {
        type: "boolean",
        default: false,
        describe: "Show what would be done; write nothing",
      })
      .option("push", {
        type: "string",
        describe:
          "Afterwards publish the set as the Hub dataset ns/name, as 'persam-db push' does (token: --token, HF_TOKEN or the token file)",
      })
      .option("push-private", {
        type: "boolean",
        default: false,
        describe: "With --push: create the dataset repo as private",
      })
      .option("jobs", {
        type: "number",
        default: 1,
        describe: "Photos processed at once (SAM uses --threads cores)",
      })
      .option("recursive", { type: "boolean", default: false, describe: "Include photos in subfolders" })
      .option("fps", {
        type: "number",
        default: 2,
        describe: "Video frames sampled per second (candidates for the chosen frames)",
      })
      .option("frames", {
        type: "number",
        default: 12,
        describe: "Frames chosen per video: sharp, showing the subject, varied",
      })
      .option("curate", {
        type: "boolean",
        default: false,
        describe:
          "Leave out photos flagged blurry, duplicate, near-duplicate, subject small or cut off, or below the training resolution (without it they are only flagged)",
      })
      .option("max-pixels", {
        type: "number",
        describe: "Refuse photos above this many pixels (default 100 MP)",
      })
      .example("$0 prepare ./my-cat --class cat", "automatic reference; writes ./my-cat.persam/")
      .example("$0 prepare ./my-cat --ref 01.jpg --ref-point 420,310", "one click on the subject in 01.jpg")
      .example("$0 prepare ./my-cat --ref 01.jpg --ref-mask 01-mask.png -o ./cat-set", "a reference mask")
      .example(
        "$0 prepare ./my-cat --preset diffusers-sdxl-lora --background gray",
        "SDXL at 1024 px, grey background",
      )
      .example(
        "$0 prepare ./my-cat --encoder sam-encoder.onnx --decoder sam.safetensors",
        "offline / no Hub access: local model files (see 'persam-db models list' for the files)",
      )
      .example("$0 prepare ./cat.mp4", "a phone video: 12 sharp, varied frames chosen; writes ./cat.persam/")
      .example("$0 prepare ./my-cat --curate", "leave out blurry shots and near-duplicates")
      .example(
        "$0 prepare ./cat ./dog ./mug.mp4 --json",
        "three sets, the model opened once; one JSON line each",
      )
      .example("$0 prepare ./my-cat --dry-run", "what a rerun would redo")
      .example(
        "HF_TOKEN=hf_… $0 prepare ./my-cat --push me/my-cat",
        "then publish it as a Hub dataset",
      ) as never,
  handler: async (options, context) => {
    const reporter = context.reporter(options);
    const { io } = context;
    // Values written into every caption, script and card of a set that may be published.
    for (const [flag, value] of [
      ["--identifier", options.identifier],
      ["--class", options.class],
      ["--caption-template", options.captionTemplate],
    ] as const) {
      if (value !== undefined && looksLikeHubToken(value)) {
        throw new UserError(
          `the ${flag} value looks like a Hugging Face token (hf_…): it would be written into the set`,
          {
            hint: "the Hub token goes in --token or HF_TOKEN; the rare word the model learns is --identifier",
          },
        );
      }
    }
    const inputs = options.inputs;
    const several = inputs.length > 1;
    if (several && options.output !== undefined) {
      throw new UserError("--output names one folder, but several inputs were given", {
        hint: "leave --output out: each set goes beside its input (<DIR>.persam, <VIDEO>.persam)",
      });
    }
    if (several && options.push !== undefined) {
      throw new UserError("--push names one dataset, but several inputs were given", {
        hint: "prepare them together, then publish each with 'persam-db push <SET> --repo …'",
      });
    }
    const fusionTrainer = options.mode === "persam-f" ? trainerFromOptions(options) : undefined;
    const aspect = parseAspect(options.aspect);
    // Each input checked first (quick): a wrong one should not wait for a model. With several inputs,
    // a bad one is one line and the others go on.
    const checked: {
      input: string;
      inputPath: string;
      isVideo: boolean;
      className: string;
      outDir: string;
    }[] = [];
    const failures: { input: string; error: UserError }[] = [];
    for (const input of inputs) {
      const inputPath = resolve(io.cwd, input);
      try {
        const isVideo = await checkPrepareInput(inputPath, input);
        const classPath = isVideo ? inputPath.replace(/\.[^./\\]*$/, "") : inputPath;
        const className = options.class ?? requireClassFromFolder(classPath);
        if (options.class === undefined) {
          reporter.info(
            terminalSafe(
              isVideo
                ? `class: ${JSON.stringify(className)}, taken from the video's name ${JSON.stringify(basename(inputPath))} (pass --class to change it)`
                : classFromFolderNotice(className, classPath),
            ),
          );
        }
        const outDir =
          options.output === undefined ? defaultOutDir(inputPath, isVideo) : resolve(io.cwd, options.output);
        checked.push({ input, inputPath, isVideo, className, outDir });
      } catch (error) {
        if (!several || !isUserError(error)) throw error;
        failures.push({ input, error });
      }
    }

    let model: SamModel | undefined;
    let modelFiles: SamModel["files"] | undefined;
    let modelKey: string | undefined;
    if (options.dryRun) {
      // A dry run loads and downloads nothing; local files are still identified by size and date.
      if (options.encoder !== undefined && options.decoder !== undefined) {
        modelKey = await modelKeyOf({
          encoderPath: resolve(io.cwd, options.encoder),
          decoderPath: resolve(io.cwd, options.decoder),
          label: "local files",
        }).catch(() => undefined);
      }
    } else if (checked.length > 0) {
      // Files now (a missing model is reported before any work); sessions only if a plan needs
      // them: an unchanged rerun never opens the encoder.
      modelFiles = await resolveCliModelFiles(options, io, reporter);
    }
    // Videos need ffmpeg: looked up once, from the command's environment.
    const videoTools = await findVideoTools({ config: videoToolsConfig(io.env) });

    let progress: Progress | undefined;
    const onEvent = (event: PrepareEvent): void => {
      switch (event.type) {
        case "warning":
          reporter.warn(terminalSafe(event.message));
          break;
        case "reference":
          reporter.info(`reference: ${terminalSafe(event.description)}${event.reused ? " (unchanged)" : ""}`);
          break;
        case "video":
          reporter.info(
            terminalSafe(`${event.file}: ${event.chosen} of ${event.candidates} sampled frames chosen`),
          );
          break;
        case "plan":
          if (!options.dryRun) progress = new Progress(reporter, "photos", event.entries.length);
          break;
        case "photo":
          progress?.tick(terminalSafe(`${event.result.file} ${event.result.status}`));
          break;
        default:
          break;
      }
    };

    const failed = (input: string, error: UserError): void => {
      reporter.warn(terminalSafe(`${input}: ${error.toLine()}`));
      reporter.emitJsonLine({
        input: resolve(io.cwd, input),
        error: { message: error.message, ...(error.hint ? { hint: error.hint } : {}) },
      });
      context.setExitCode(error.exitCode);
    };
    for (const f of failures) failed(f.input, f.error);

    try {
      // Plan every input, then open the model once if any plan needs it, then run each.
      const plans: { input: string; plan: PreparePlan }[] = [];
      // One cache for every input, so that a cache that cannot be written is said once.
      let embeddingCache: EmbeddingCache | undefined;
      for (const c of checked) {
        try {
          const references = await referenceSpecsFromOptions(options, {
            cwd: io.cwd,
            photosDir: c.isVideo ? dirname(c.inputPath) : c.inputPath,
          });
          embeddingCache ??= cliEmbeddingCache(options, io, reporter);
          const plan = await planPrepare({
            embeddingCache,
            inputDir: c.inputPath,
            outDir: c.outDir,
            modelFiles,
            modelKey,
            references,
            mode: options.mode,
            fusionTrainer,
            resolution: options.resolution,
            crop: options.crop,
            aspect,
            background: options.background,
            bgWeight: options.bgWeight,
            feather: options.feather,
            identifier: options.identifier,
            className: c.className,
            captionTemplate: options.captionTemplate,
            keepDoubtful: options.keepDoubtful,
            decode: options.decode,
            trainer: options.trainer,
            preset: options.preset,
            force: options.force,
            dryRun: options.dryRun,
            jobs: options.jobs,
            recursive: options.recursive,
            maxPixels: options.maxPixels,
            fps: options.fps,
            frames: options.frames,
            curate: options.curate,
            videoTools: videoTools ?? null,
            tool: "persam-db",
            signal: io.signal,
            onEvent,
          });
          plans.push({ input: c.input, plan });
        } catch (error) {
          if (!several || !isUserError(error)) throw error;
          failed(c.input, error);
        }
      }
      if (plans.some((p) => p.plan.needsModel && !p.plan.dryRun)) {
        model = await openCliModel(modelFiles!, options, io, reporter);
      }
      for (const { input, plan } of plans) {
        let result: PrepareResult;
        try {
          result = plan.dryRun ? dryRunResult(plan) : await runPrepare({ plan, model });
        } catch (error) {
          if (!several || !isUserError(error)) throw error;
          progress?.finish();
          failed(input, error);
          continue;
        }
        progress?.finish();
        context.setExitCode(result.exitCode);
        if (several) reporter.result(`== ${terminalSafe(input)}`);
        await reportResult(result, options, context, reporter);
      }
    } finally {
      progress?.finish();
      await model?.dispose();
    }
  },
});

/** Print one set's result (and push it with --push): the summary, or with --json one JSON line. */
async function reportResult(
  result: PrepareResult,
  options: PrepareOptions & GlobalOptions,
  context: CommandContext,
  reporter: Reporter,
): Promise<void> {
  // Publish only a finished set with something in it; a dry run pushes nothing either.
  const pushed =
    options.push !== undefined && !result.dryRun && result.counts.kept > 0
      ? await runPush(
          {
            out: result.outDir,
            repo: options.push,
            private: options.pushPrivate,
            token: options.token,
            json: options.json,
          },
          context,
          reporter,
        )
      : undefined;
  if (options.push !== undefined && pushed === undefined && !result.dryRun) {
    reporter.warn(`nothing pushed to ${options.push}: no photo is in the training set`);
  }
  reporter.emitJsonLine({
    ...(pushed ? { push: pushed } : {}),
    input: result.inputDir,
    output: result.outDir,
    dryRun: result.dryRun,
    exitCode: result.exitCode,
    counts: result.counts,
    warnings: result.warnings,
    plan: result.plan,
    photos: result.photos,
    files: result.files,
    ...(result.report?.videos ? { videos: result.report.videos } : {}),
    ...(result.report?.varied ? { varied: result.report.varied } : {}),
  });
  if (result.dryRun) {
    reporter.result(`dry run: nothing written; output folder ${result.outDir}`);
    for (const e of result.plan) {
      reporter.result(`${e.action.padEnd(8)} ${terminalSafe(e.file)}  (${terminalSafe(e.reason)})`);
    }
    const c = result.counts;
    reporter.result(
      `${c.found} photo${c.found === 1 ? "" : "s"}: ${c.segmented} to segment, ${c.outputsWritten} to rewrite, ${c.unchanged} unchanged, ${c.excluded} excluded, ${c.failed} bad` +
        (c.videos > 0 ? `; ${c.videos} video${c.videos === 1 ? "" : "s"}` : ""),
    );
    return;
  }
  if (result.summary) reporter.result(result.summary.trimEnd());
  const c = result.counts;
  reporter.result(
    `${c.kept} photo${c.kept === 1 ? "" : "s"} in the training set → ${result.outDir} (segmented ${c.segmented}, rewritten ${c.outputsWritten}, unchanged ${c.unchanged}; encoder ran ${c.encoded}×)`,
  );
  if (c.kept > 0)
    reporter.info(`next: open ${result.outDir}/report.html, then run one of the train*.sh scripts there`);
  if (pushed) printPushResult(reporter, pushed, result.outDir);
}
