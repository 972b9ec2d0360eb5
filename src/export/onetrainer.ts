// OneTrainer export: the onetrainer/ concept folder plan (image, -masklabel weight map, caption), its
// concept and training JSON with paths relative to the set, and the script that fills in the
// absolute paths OneTrainer needs on the training machine.

import { join } from "node:path";
import { UserError } from "../errors.js";
import type { CopyOperation } from "./kohya.js";
import {
  assertSafeStems,
  DATASET_LAYOUT,
  fileSafeName,
  ONETRAINER_MODEL_TYPES,
  type OneTrainerPreset,
  type PreparedDataset,
  relativeInside,
  writeTextFileAtomic,
} from "./presets.js";
import { shellQuote } from "./shell-quote.js";

/** The OneTrainer commit whose config names and file conventions this module follows. */
export const ONETRAINER_SOURCE = {
  repo: "Nerogar/OneTrainer",
  path: "modules/util/config/TrainConfig.py, modules/util/config/ConceptConfig.py, modules/dataLoader/mixin/DataLoaderText2ImageMixin.py",
  commit: "23df3832e8f213d64c337e39f9365ba46e99fed0",
} as const;

/** `__version` of TrainConfig and ConceptConfig at {@link ONETRAINER_SOURCE}; older numbers trigger migrations. */
const TRAIN_CONFIG_VERSION = 11;
const CONCEPT_CONFIG_VERSION = 2;

/** Suffixes OneTrainer excludes from a concept's images (its mask and conditioning labels). */
const RESERVED_SUFFIXES = ["-masklabel", "-condlabel"] as const;

/** Parameters of {@link onetrainerPlan}. */
export interface OneTrainerPlanParams {
  readonly dataset: PreparedDataset;
  readonly preset: OneTrainerPreset;
  /**
   * The prepare output folder. Unused for paths: the files hold paths relative to the set, never
   * this machine's (see {@link onetrainerTrainScript}).
   */
  readonly outputDir?: string;
  /**
   * Where the trained model goes (OneTrainer `output_model_destination`), relative to the set.
   * @default `model-onetrainer/<token>_<class>.safetensors`
   */
  readonly outputModel?: string;
}

/** What to put in `onetrainer/`: copies for the caller, and the JSON files to write. */
export interface OneTrainerPlan {
  /**
   * Per stem: `images/<stem>.png` → `onetrainer/<stem>.png`, `weights/<stem>.png` →
   * `onetrainer/<stem>-masklabel.png`, `captions/<stem>.txt` → `onetrainer/<stem>.txt`; paths
   * relative to the output folder. The caller copies them (temporary name, then rename).
   */
  readonly copies: readonly CopyOperation[];
  /** Content for `onetrainer/concepts.json` (a list of one ConceptConfig). */
  readonly concepts: readonly Record<string, unknown>[];
  /** Content for `onetrainer/train-config.json`: a partial TrainConfig; OneTrainer fills the rest with its defaults. */
  readonly trainConfig: Record<string, unknown>;
  /** Content for `train_onetrainer.sh` (see {@link onetrainerTrainScript}). */
  readonly script: string;
}

/** The script beside the set's other launch scripts. */
export const ONETRAINER_SCRIPT = "train_onetrainer.sh";

/**
 * Plans the OneTrainer concept folder. The mask label is the loss-weight map, not the binary mask:
 * OneTrainer reads `<stem>-masklabel.png` as one channel scaled to [0, 1], clamps it up to
 * `unmasked_weight` and multiplies the loss by it (modules/util/loss/masked_loss.py), so white is
 * learned fully and grey partly, which is exactly what the weight map encodes (feathered edge,
 * background floor). The image is the plain RGB `images/<stem>.png`, not the RGBA one, so no
 * loader has to decide what to do with alpha. Captions use OneTrainer's `prompt_source: "sample"`
 * (`<stem>.txt` beside the image).
 * @throws {UserError} for stems OneTrainer would skip or that are unsafe as file names
 */
export function onetrainerPlan(params: OneTrainerPlanParams): OneTrainerPlan {
  const { dataset, preset } = params;
  const o = preset.onetrainer;
  assertSafeStems({ stems: dataset.stems });
  const reserved = dataset.stems.filter((stem) => RESERVED_SUFFIXES.some((suffix) => stem.endsWith(suffix)));
  if (reserved.length > 0) {
    throw new UserError(
      `OneTrainer skips images whose names end in -masklabel or -condlabel: ${reserved.map((s) => JSON.stringify(s)).join(", ")}`,
      { hint: "rename those photos" },
    );
  }
  const dir = DATASET_LAYOUT.onetrainer;
  const copies: CopyOperation[] = dataset.stems.flatMap((stem) => [
    { from: `${DATASET_LAYOUT.images}/${stem}.png`, to: `${dir}/${stem}.png` },
    { from: `${DATASET_LAYOUT.weights}/${stem}.png`, to: `${dir}/${stem}-masklabel.png` },
    { from: `${DATASET_LAYOUT.captions}/${stem}.txt`, to: `${dir}/${stem}.txt` },
  ]);

  const name = fileSafeName({ dataset, fallback: "persam" });
  const outputModel = relativeInside({
    path: params.outputModel ?? `model-onetrainer/${name}.safetensors`,
    what: "outputModel",
  });
  const concept: Record<string, unknown> = {
    __version: CONCEPT_CONFIG_VERSION,
    name: `${dataset.token} ${dataset.className}`,
    path: dir,
    enabled: true,
    type: "STANDARD",
    include_subdirectories: false,
    image_variations: 1,
    text_variations: 1,
    balancing: 1.0,
    balancing_strategy: "REPEATS",
    loss_weight: 1.0,
    seed: preset.seed,
    text: { prompt_source: "sample", prompt_path: "" },
  };
  const trainConfig: Record<string, unknown> = {
    __version: TRAIN_CONFIG_VERSION,
    model_type: ONETRAINER_MODEL_TYPES[preset.baseModel],
    training_method: o.trainingMethod,
    base_model_name: preset.pretrainedModel,
    output_model_destination: outputModel,
    output_model_format: "SAFETENSORS",
    concept_file_name: `${dir}/concepts.json`,
    resolution: String(dataset.resolution),
    learning_rate: preset.learningRate,
    epochs: o.epochs,
    batch_size: preset.trainBatchSize,
    gradient_accumulation_steps: preset.gradientAccumulationSteps,
    train_dtype: o.trainDtype,
    masked_training: true,
    unmasked_probability: o.unmaskedProbability,
    unmasked_weight: o.unmaskedWeight,
    normalize_masked_area_loss: o.normalizeMaskedAreaLoss,
    masked_prior_preservation_weight: o.maskedPriorPreservationWeight,
  };
  if (o.trainingMethod === "LORA") {
    trainConfig.lora_rank = o.loraRank;
    trainConfig.lora_alpha = o.loraAlpha;
  }
  return { copies, concepts: [concept], trainConfig, script: onetrainerTrainScript() };
}

/**
 * `train_onetrainer.sh`: run from anywhere, it writes copies of `onetrainer/concepts.json` and
 * `onetrainer/train-config.json` whose set-relative paths (the concept `path`, `concept_file_name`,
 * `output_model_destination`) are made absolute from the script's own folder, into a temporary
 * folder, and starts OneTrainer's `run-cmd.sh train --config-path` with them (OneTrainer's launcher
 * works from its own folder, where relative paths would point). Arguments are passed on, e.g.
 * `--config-value epochs=50`. Needs `ONETRAINER_DIR` (a OneTrainer checkout set up with its
 * install.sh) and python3 for the JSON.
 */
export function onetrainerTrainScript(): string {
  const dir = DATASET_LAYOUT.onetrainer;
  return [
    "#!/usr/bin/env bash",
    "# Generated by persam-db: OneTrainer training with masked loss (<stem>-masklabel.png in onetrainer/).",
    "# OneTrainer reads relative paths from its own folder, so this script writes copies of",
    `# ${dir}/concepts.json and ${dir}/train-config.json with this folder's absolute paths into a`,
    "# temporary folder and starts OneTrainer with them. Needs a OneTrainer checkout",
    "# (https://github.com/Nerogar/OneTrainer) set up with its install.sh, and python3.",
    `# Options checked against ${ONETRAINER_SOURCE.repo}@${ONETRAINER_SOURCE.commit}.`,
    "# Arguments given to this script are passed on, e.g. ./train_onetrainer.sh --config-value epochs=50",
    "set -euo pipefail",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, meant literally
    'cd -- "$(dirname -- "${BASH_SOURCE[0]}")"',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, meant literally
    'if [[ -z "${ONETRAINER_DIR:-}" ]]; then',
    `  echo ${shellQuote("ONETRAINER_DIR is not set: point it at a Nerogar/OneTrainer checkout")} >&2`,
    "  exit 2",
    "fi",
    'work="$(mktemp -d)"',
    `trap 'rm -rf -- "$work"' EXIT`,
    `python3 - "$PWD" "$work" <<'PY'`,
    "import json, os, sys",
    "root, work = sys.argv[1], sys.argv[2]",
    `with open(os.path.join(root, ${JSON.stringify(dir)}, "concepts.json")) as f:`,
    "    concepts = json.load(f)",
    "for concept in concepts:",
    '    concept["path"] = os.path.join(root, concept["path"])',
    'with open(os.path.join(work, "concepts.json"), "w") as f:',
    "    json.dump(concepts, f, indent=2)",
    `with open(os.path.join(root, ${JSON.stringify(dir)}, "train-config.json")) as f:`,
    "    config = json.load(f)",
    'config["concept_file_name"] = os.path.join(work, "concepts.json")',
    'config["output_model_destination"] = os.path.join(root, config["output_model_destination"])',
    'with open(os.path.join(work, "train-config.json"), "w") as f:',
    "    json.dump(config, f, indent=2)",
    "PY",
    '"$ONETRAINER_DIR/run-cmd.sh" train --config-path "$work/train-config.json" "$@"',
    "",
  ].join("\n");
}

/**
 * Write `onetrainer/concepts.json`, `onetrainer/train-config.json` and an executable
 * `train_onetrainer.sh` into the output folder (temporary file and rename). The image copies in
 * `plan.copies` are left to the caller.
 * @returns the three paths written, relative to `outputDir` with `/` separators
 */
export async function writeOneTrainerFiles(params: {
  outputDir: string;
  plan: OneTrainerPlan;
}): Promise<string[]> {
  const dir = DATASET_LAYOUT.onetrainer;
  const { plan } = params;
  await writeTextFileAtomic({
    path: join(params.outputDir, dir, "concepts.json"),
    content: `${JSON.stringify(plan.concepts, null, 2)}\n`,
  });
  await writeTextFileAtomic({
    path: join(params.outputDir, dir, "train-config.json"),
    content: `${JSON.stringify(plan.trainConfig, null, 2)}\n`,
  });
  await writeTextFileAtomic({
    path: join(params.outputDir, ONETRAINER_SCRIPT),
    content: plan.script,
    mode: 0o755,
  });
  return [`${dir}/concepts.json`, `${dir}/train-config.json`, ONETRAINER_SCRIPT];
}
