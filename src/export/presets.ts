// Training presets (configs/*.json, zod-checked) and the prepared-dataset contract that every trainer exporter reads.

import { readdir, readFile } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { UserError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";

/** Folder and file names inside a `prepare` output folder (design §5). */
export const DATASET_LAYOUT = {
  /** Background-suppressed RGB training images; diffusers reads this folder, so it holds images only. */
  images: "images",
  /** Binary subject masks. */
  masks: "masks",
  /** 8-bit loss-weight maps (255 = full weight). */
  weights: "weights",
  /** RGBA images, alpha = loss weight (kohya `alpha_mask`); kohya captions `<stem>.txt` live here too. */
  rgba: "rgba",
  /** One caption per image. */
  captions: "captions",
  /** imagefolder metadata rows. */
  metadata: "metadata.jsonl",
  /** OneTrainer concept folder. */
  onetrainer: "onetrainer",
} as const;

/** What `prepare` produced and what the exporters need to know about it. */
export interface PreparedDataset {
  /** The rare instance token, e.g. `sks`. */
  readonly token: string;
  /** The class noun, e.g. `cat`. */
  readonly className: string;
  /** The prompt used for every instance image, e.g. `a photo of sks cat`. */
  readonly instancePrompt: string;
  /** Side of the square training images in pixels. */
  readonly resolution: number;
  /** The SAM checkpoint used (registry id or file name). */
  readonly model: string;
  /** Segmentation mode, e.g. `persam` or `persam-f`. */
  readonly mode: string;
  /** How the reference was given, e.g. `mask ref.png on IMG_0001.jpg`. */
  readonly reference: string;
  /** Stems of the kept photos: `images/<stem>.png`, `masks/<stem>.png`, `captions/<stem>.txt`, … */
  readonly stems: readonly string[];
  /** Other settings worth recording in the dataset card (feather, background weight, …). */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
}

/** `value` with lone UTF-16 surrogates (which UTF-8 cannot carry) replaced by U+FFFD. */
export function wellFormed(value: string): string {
  return value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/** A file-name-safe name from `<token>_<class>`: runs of other characters become one `_`, at most 64 characters. */
export function fileSafeName(params: { dataset: PreparedDataset; fallback: string }): string {
  const { token, className } = params.dataset;
  const name = `${token}_${className}`
    .replace(/[^A-Za-z0-9_-]+/g, "_")
    .replace(/_+/g, "_")
    .replace(/^[_-]+|_+$/g, "")
    .slice(0, 64);
  return name === "" ? params.fallback : name;
}

/**
 * Throws unless every stem is a plain file-name stem (no separators, no `.`/`..`, no control
 * characters) and the list has no duplicates, so exporters can join stems into paths safely.
 * @throws {UserError} naming every bad stem
 */
export function assertSafeStems(params: { stems: readonly string[] }): void {
  const bad: string[] = [];
  const seen = new Set<string>();
  for (const stem of params.stems) {
    if (
      stem === "" ||
      stem === "." ||
      stem === ".." ||
      /[/\\\u0000-\u001f\u007f]/.test(stem) ||
      stem.startsWith(".") ||
      seen.has(stem)
    ) {
      bad.push(JSON.stringify(stem));
    }
    seen.add(stem);
  }
  if (params.stems.length === 0) throw new UserError("No photos were kept, so there is nothing to export");
  if (bad.length > 0) {
    throw new UserError(`Unusable photo stems for export: ${bad.join(", ")}`, {
      hint: "rename the photos to plain, unique file names",
    });
  }
}

/**
 * Checks a user-given path that must stay inside the output folder and returns it normalised with
 * forward slashes.
 * @throws {UserError} for absolute paths, paths leaving the folder, or empty paths
 */
export function relativeInside(params: { path: string; what: string }): string {
  const { path, what } = params;
  const normalised = normalize(path).split(sep).join("/").replace(/\/+$/, "");
  if (
    path.trim() === "" ||
    isAbsolute(path) ||
    /^[A-Za-z]:/.test(path) ||
    normalised === ".." ||
    normalised.startsWith("../") ||
    normalised === "." ||
    path.includes("\u0000")
  ) {
    throw new UserError(
      `Expected a relative path inside the output folder for ${what} but received ${JSON.stringify(path)}`,
    );
  }
  return normalised;
}

/** Writes a text file through a temporary name and a rename (writeFileAtomic), creating its folder. */
export async function writeTextFileAtomic(params: {
  path: string;
  content: string;
  mode?: number;
}): Promise<void> {
  await writeFileAtomic(params.path, params.content, { mode: params.mode ?? 0o644, mkdir: true });
}

// ---------------------------------------------------------------------------------------------
// Preset schemas

const positiveInt = z.number().int().positive();
const resolution = positiveInt.refine((v) => v % 8 === 0, "must be a multiple of 8");
const hubId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be a Hub model id `owner/name`");

/** Base models the presets know. */
export const BASE_MODELS = ["sd15", "sdxl", "flux"] as const;
export type BaseModel = (typeof BASE_MODELS)[number];

/** The four diffusers DreamBooth scripts persam-db writes launch files for. */
export const DIFFUSERS_SCRIPTS = [
  "train_dreambooth.py",
  "train_dreambooth_lora.py",
  "train_dreambooth_lora_sdxl.py",
  "train_dreambooth_lora_flux.py",
] as const;
export type DiffusersScript = (typeof DIFFUSERS_SCRIPTS)[number];

/** Which base model each diffusers script trains. */
export const DIFFUSERS_SCRIPT_BASE: Readonly<Record<DiffusersScript, BaseModel>> = {
  "train_dreambooth.py": "sd15",
  "train_dreambooth_lora.py": "sd15",
  "train_dreambooth_lora_sdxl.py": "sdxl",
  "train_dreambooth_lora_flux.py": "flux",
};

const common = {
  description: z.string().min(1),
  baseModel: z.enum(BASE_MODELS),
  pretrainedModel: hubId,
  resolution,
  learningRate: z.number().positive().finite(),
  trainBatchSize: positiveInt,
  gradientAccumulationSteps: positiveInt,
  seed: z.number().int().nonnegative(),
};

const priorPreservation = z.strictObject({
  enabled: z.boolean(),
  numClassImages: positiveInt,
  priorLossWeight: z.number().nonnegative().finite(),
});

const diffusersPreset = z
  .strictObject({
    trainer: z.literal("diffusers"),
    ...common,
    maxTrainSteps: positiveInt,
    mixedPrecision: z.enum(["no", "fp16", "bf16"]),
    priorPreservation,
    diffusers: z.strictObject({
      script: z.enum(DIFFUSERS_SCRIPTS),
      lrScheduler: z.enum([
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
      ]),
      lrWarmupSteps: z.number().int().nonnegative(),
      gradientCheckpointing: z.boolean(),
      /** LoRA rank (`--rank`), LoRA scripts only. */
      rank: positiveInt.optional(),
      /** `--pretrained_vae_model_name_or_path`, SDXL only. */
      pretrainedVae: hubId.optional(),
      /** `--optimizer` (`AdamW` or `prodigy`), SDXL and Flux LoRA scripts only. */
      optimizer: z.enum(["AdamW", "prodigy"]).optional(),
      /** `--guidance_scale`, Flux only. */
      guidanceScale: z.number().nonnegative().finite().optional(),
    }),
  })
  .superRefine((preset, ctx) => {
    const { script, rank, pretrainedVae, optimizer, guidanceScale } = preset.diffusers;
    const base = DIFFUSERS_SCRIPT_BASE[script];
    if (base !== preset.baseModel) {
      ctx.addIssue({
        code: "custom",
        path: ["baseModel"],
        message: `${script} trains ${base}, not ${preset.baseModel}`,
      });
    }
    const only = (field: string, value: unknown, allowed: readonly DiffusersScript[]): void => {
      if (value !== undefined && !allowed.includes(script)) {
        ctx.addIssue({
          code: "custom",
          path: ["diffusers", field],
          message: `${script} has no such option (only ${allowed.join(", ")})`,
        });
      }
    };
    only("rank", rank, [
      "train_dreambooth_lora.py",
      "train_dreambooth_lora_sdxl.py",
      "train_dreambooth_lora_flux.py",
    ]);
    only("pretrainedVae", pretrainedVae, ["train_dreambooth_lora_sdxl.py"]);
    only("optimizer", optimizer, ["train_dreambooth_lora_sdxl.py", "train_dreambooth_lora_flux.py"]);
    only("guidanceScale", guidanceScale, ["train_dreambooth_lora_flux.py"]);
  });

const kohyaPreset = z.strictObject({
  trainer: z.literal("kohya"),
  ...common,
  baseModel: z.literal("sd15"),
  maxTrainSteps: positiveInt,
  mixedPrecision: z.enum(["no", "fp16", "bf16"]),
  priorPreservation,
  kohya: z.strictObject({
    /** Repeats of each instance image per epoch (`num_repeats`). */
    numRepeats: positiveInt,
    networkModule: z.literal("networks.lora"),
    networkDim: positiveInt,
    networkAlpha: z.number().positive().finite(),
    optimizerType: z.enum(["AdamW", "AdamW8bit", "Lion", "Prodigy", "Adafactor"]),
    lrScheduler: z.enum(["constant", "constant_with_warmup", "cosine", "linear"]),
    networkTrainUnetOnly: z.boolean(),
  }),
});

/** OneTrainer's ModelType names for the base models we know (modules/util/enum/ModelType.py). */
export const ONETRAINER_MODEL_TYPES: Readonly<Record<BaseModel, string>> = {
  sd15: "STABLE_DIFFUSION_15",
  sdxl: "STABLE_DIFFUSION_XL_10_BASE",
  flux: "FLUX_DEV_1",
};

const onetrainerPreset = z.strictObject({
  trainer: z.literal("onetrainer"),
  ...common,
  onetrainer: z.strictObject({
    trainingMethod: z.enum(["LORA", "FINE_TUNE"]),
    epochs: positiveInt,
    trainDtype: z.enum(["FLOAT_16", "BFLOAT_16", "FLOAT_32"]),
    loraRank: positiveInt,
    loraAlpha: z.number().positive().finite(),
    /** Probability of training a step on the whole image (mask ignored). */
    unmaskedProbability: z.number().min(0).max(1),
    /** Mask values are clamped up to this before they weight the loss. */
    unmaskedWeight: z.number().min(0).max(1),
    normalizeMaskedAreaLoss: z.boolean(),
    maskedPriorPreservationWeight: z.number().min(0).max(1),
  }),
});

/** Schema of one training preset file in configs/. */
export const presetSchema = z.discriminatedUnion("trainer", [diffusersPreset, kohyaPreset, onetrainerPreset]);

export type Preset = z.infer<typeof presetSchema>;
export type DiffusersPreset = Extract<Preset, { trainer: "diffusers" }>;
export type KohyaPreset = Extract<Preset, { trainer: "kohya" }>;
export type OneTrainerPreset = Extract<Preset, { trainer: "onetrainer" }>;

/** Schema of configs/prepare-defaults.json. */
export const prepareDefaultsSchema = z.strictObject({
  /** Training resolution per base model. */
  resolution: z.strictObject({ sd15: resolution, sdxl: resolution, flux: resolution }),
  baseModel: z.enum(BASE_MODELS),
  token: z.string().regex(/^\S+$/, "must be one word"),
  /** `{token}` and `{class}` are replaced. */
  instancePrompt: z.string().includes("{token}"),
  /** `{class}` is replaced. */
  classPrompt: z.string().includes("{class}"),
});
export type PrepareDefaults = z.infer<typeof prepareDefaultsSchema>;

/** The configs/ folder shipped with the package (two levels above both src/export and dist/export). */
export const DEFAULT_CONFIGS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "configs");

const PREPARE_DEFAULTS = "prepare-defaults";
const PRESET_NAME = /^[a-z0-9][a-z0-9-]*$/;

/** Every problem of a zod error as `path: message`, joined into one line. */
function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "(root)"}: ${issue.message}`)
    .join("; ");
}

async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UserError(`Cannot read ${what} ${file}`, {
      cause: error,
      hint: "check that the file exists and may be read",
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UserError(`${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Validates a parsed preset.
 * @param params.source file name used in messages
 * @throws {UserError} listing every problem with its path
 */
export function parsePreset(params: { json: unknown; source: string }): Preset {
  const result = presetSchema.safeParse(params.json);
  if (!result.success) {
    throw new UserError(`Invalid preset ${params.source}: ${formatIssues(result.error)}`);
  }
  return result.data;
}

/**
 * Loads and validates `configs/<name>.json`.
 * @param params.configsDir @default {@link DEFAULT_CONFIGS_DIR}
 * @throws {UserError} for an unknown name (the message lists the presets), unreadable JSON, or a
 * file that fails the schema
 */
export async function loadPreset(params: { name: string; configsDir?: string }): Promise<Preset> {
  const { name } = params;
  const known = await listPresets(
    params.configsDir === undefined ? {} : { configsDir: params.configsDir },
  ).catch(() => [] as string[]);
  if (!PRESET_NAME.test(name) || name === PREPARE_DEFAULTS || !known.includes(name)) {
    throw new UserError(`Unknown preset ${JSON.stringify(name)}`, {
      hint:
        known.length > 0
          ? `use one of: ${known.join(", ")}`
          : `no presets found in ${params.configsDir ?? DEFAULT_CONFIGS_DIR}; reinstall persam-db`,
    });
  }
  const file = join(params.configsDir ?? DEFAULT_CONFIGS_DIR, `${name}.json`);
  return parsePreset({ json: await readJson(file, "preset"), source: file });
}

/**
 * Names of the training presets in the configs folder (file names without `.json`), sorted.
 * @param params.configsDir @default {@link DEFAULT_CONFIGS_DIR}
 */
export async function listPresets(params: { configsDir?: string } = {}): Promise<string[]> {
  const entries = await readdir(params.configsDir ?? DEFAULT_CONFIGS_DIR);
  return entries
    .filter((entry) => entry.endsWith(".json"))
    .map((entry) => entry.slice(0, -".json".length))
    .filter((name) => PRESET_NAME.test(name) && name !== PREPARE_DEFAULTS)
    .sort();
}

/**
 * Loads and validates `configs/prepare-defaults.json`.
 * @param params.configsDir @default {@link DEFAULT_CONFIGS_DIR}
 * @throws {UserError} listing every problem with its path
 */
export async function loadPrepareDefaults(params: { configsDir?: string } = {}): Promise<PrepareDefaults> {
  const file = join(params.configsDir ?? DEFAULT_CONFIGS_DIR, `${PREPARE_DEFAULTS}.json`);
  const result = prepareDefaultsSchema.safeParse(await readJson(file, "prepare defaults"));
  if (!result.success) throw new UserError(`Invalid prepare defaults ${file}: ${formatIssues(result.error)}`);
  return result.data;
}
