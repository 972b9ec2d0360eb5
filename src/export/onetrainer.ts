// OneTrainer export: the onetrainer/ concept folder plan (image, -masklabel weight map, caption) and its concept and training JSON.

import { resolve } from "node:path";
import { UserError } from "../errors.js";
import type { CopyOperation } from "./kohya.js";
import {
  assertSafeStems,
  DATASET_LAYOUT,
  fileSafeName,
  ONETRAINER_MODEL_TYPES,
  type OneTrainerPreset,
  type PreparedDataset,
} from "./presets.js";

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
   * The prepare output folder as OneTrainer will see it. OneTrainer resolves relative paths from its
   * own working directory, so the concept path is made absolute from this (relative values are
   * resolved against the current directory).
   */
  readonly outputDir: string;
  /**
   * Where the trained model goes (OneTrainer `output_model_destination`).
   * @default `<outputDir>/model-onetrainer/<token>_<class>.safetensors`
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
}

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

  const root = resolve(params.outputDir);
  const conceptDir = resolve(root, dir);
  const name = fileSafeName({ dataset, fallback: "persam" });
  const concept: Record<string, unknown> = {
    __version: CONCEPT_CONFIG_VERSION,
    name: `${dataset.token} ${dataset.className}`,
    path: conceptDir,
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
    output_model_destination: params.outputModel ?? resolve(root, "model-onetrainer", `${name}.safetensors`),
    output_model_format: "SAFETENSORS",
    concept_file_name: resolve(conceptDir, "concepts.json"),
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
  return { copies, concepts: [concept], trainConfig };
}
