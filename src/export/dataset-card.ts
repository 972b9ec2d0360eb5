// The Hub dataset card (README.md): YAML front matter (imagefolder config, tags, licence) and a body saying what the set is, how it was made and how to train from it.

import { DATASET_LAYOUT, type DiffusersScript, type PreparedDataset, wellFormed } from "./presets.js";

/** A value the YAML emitter writes. */
export type YamlValue =
  | string
  | number
  | boolean
  | null
  | readonly YamlValue[]
  | { readonly [key: string]: YamlValue };

/** YAML 1.1 and 1.2 words that a plain scalar would turn into a boolean or null. */
const YAML_WORDS = /^(?:y|n|yes|no|on|off|true|false|null|~)$/i;

/**
 * A double-quoted YAML scalar: `"` and `\` escaped, and every character YAML cannot carry literally
 * or would read as a line break (C0/C1 controls, DEL, U+2028/2029, BOM, U+FFFE/FFFF) written as an
 * escape. Lone surrogates become U+FFFD. Everything else, any Unicode, stays literal.
 */
export function yamlQuoted(value: string): string {
  const short: Record<string, string> = { "\n": "\\n", "\t": "\\t", "\r": "\\r" };
  const escaped = wellFormed(value).replace(
    /["\\\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g,
    (c) =>
      c === '"' || c === "\\"
        ? `\\${c}`
        : (short[c] ?? `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`),
  );
  return `"${escaped}"`;
}

/**
 * A YAML scalar for a string: plain when it is unmistakably a string (a letter, then letters,
 * digits, `_ - . /`, and not a boolean or null word), otherwise {@link yamlQuoted}.
 */
export function yamlString(value: string): string {
  return /^[A-Za-z][A-Za-z0-9_./-]*$/.test(value) && !YAML_WORDS.test(value) ? value : yamlQuoted(value);
}

function yamlKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) && !YAML_WORDS.test(key) ? key : yamlQuoted(key);
}

function yamlScalar(value: string | number | boolean | null): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isFinite(value))
      throw new TypeError(`Expected a finite number for YAML but received ${value}`);
    // "5e-7" is a string to YAML 1.1 readers (PyYAML wants a dot in the mantissa); "5.0e-7" is a float to both.
    return String(value).replace(/^(-?\d+)e/, "$1.0e");
  }
  return yamlString(value);
}

function isCollection(
  value: YamlValue,
): value is readonly YamlValue[] | { readonly [key: string]: YamlValue } {
  return typeof value === "object" && value !== null;
}

function isEmpty(value: YamlValue): boolean {
  return Array.isArray(value) ? value.length === 0 : isCollection(value) && Object.keys(value).length === 0;
}

function inline(value: YamlValue): string {
  if (Array.isArray(value)) return "[]";
  if (isCollection(value)) return "{}";
  return yamlScalar(value as string | number | boolean | null);
}

function emit(value: YamlValue, indent: number): string[] {
  const pad = " ".repeat(indent);
  if (Array.isArray(value)) {
    return value.flatMap((item: YamlValue) => {
      if (!isCollection(item) || isEmpty(item)) return [`${pad}- ${inline(item)}`];
      const [first = "", ...rest] = emit(item, indent + 2);
      return [`${pad}- ${first.slice(indent + 2)}`, ...rest];
    });
  }
  if (isCollection(value)) {
    return Object.entries(value).flatMap(([key, item]) =>
      !isCollection(item) || isEmpty(item)
        ? [`${pad}${yamlKey(key)}: ${inline(item)}`]
        : [`${pad}${yamlKey(key)}:`, ...emit(item, indent + 2)],
    );
  }
  return [`${pad}${inline(value)}`];
}

/** A YAML document (block style, two-space indent) for a mapping, ending in a newline. */
export function toYaml(value: { readonly [key: string]: YamlValue }): string {
  return `${emit(value, 0).join("\n")}\n`;
}

/** Parameters of {@link datasetCard}. */
export interface DatasetCardParams {
  readonly dataset: PreparedDataset;
  /**
   * The Hub repo id, used in the download and load commands.
   * @default "<user>/<dataset>" placeholder
   */
  readonly repoId?: string;
  /**
   * Licence id for the Hub (`apache-2.0`, `cc-by-4.0`, …). The photos are the user's, so there is no
   * safe default; `other` says "see the card".
   * @default "other"
   */
  readonly license?: string;
  /**
   * Title on the Hub.
   * @default `${token} ${className} (PerSAM DreamBooth set)`
   */
  readonly prettyName?: string;
  /** Extra tags after the standard ones. @default [] */
  readonly tags?: readonly string[];
  /**
   * The diffusers script `train.sh` launches; the card names its requirements file.
   * @default "train_dreambooth.py"
   */
  readonly diffusersScript?: DiffusersScript;
}

/** The card's `data_files`: the metadata and every image folder a metadata row points into. */
export const DATA_FILES = [
  DATASET_LAYOUT.metadata,
  `${DATASET_LAYOUT.images}/*.png`,
  `${DATASET_LAYOUT.masks}/*.png`,
  `${DATASET_LAYOUT.weights}/*.png`,
  `${DATASET_LAYOUT.rgba}/*.png`,
] as const;

/** The oldest `datasets` that loads `*_file_name` columns as images (the mask, weight and rgba columns). */
export const DATASETS_MIN_VERSION = "3.4";

const REQUIREMENTS: Readonly<Record<DiffusersScript, string>> = {
  "train_dreambooth.py": "requirements.txt",
  "train_dreambooth_lora.py": "requirements.txt",
  "train_dreambooth_lora_sdxl.py": "requirements_sdxl.txt",
  "train_dreambooth_lora_flux.py": "requirements_flux.txt",
};

/** Line breaks flattened so a user string cannot start a new Markdown block. */
function oneLine(value: string): string {
  return wellFormed(value).replace(/\r\n|[\r\n\u0085\u2028\u2029]/g, " ⏎ ");
}

/** A Markdown code span that shows `value` literally, whatever backticks or HTML it holds. */
export function mdCode(value: string): string {
  const text = oneLine(value);
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = "`".repeat(longest + 1);
  const padded = /^[` ]|[` ]$/.test(text) ? ` ${text} ` : text;
  return `${fence}${padded}${fence}`;
}

/** Markdown text with every ASCII punctuation character backslash-escaped (CommonMark §2.4). */
export function mdText(value: string): string {
  return oneLine(value).replace(/[!-/:-@[-`{-~]/g, "\\$&");
}

/** The YAML front matter fields (without the `---` fences). */
export function datasetCardMetadata(params: DatasetCardParams): { [key: string]: YamlValue } {
  const { dataset } = params;
  const license = params.license ?? "other";
  if (!/^[a-z0-9][a-z0-9.+-]*$/.test(license)) {
    throw new TypeError(
      `Expected a Hub licence id such as "cc-by-4.0" but received ${JSON.stringify(license)}`,
    );
  }
  const n = dataset.stems.length;
  return {
    license,
    pretty_name: params.prettyName ?? `${dataset.token} ${dataset.className} (PerSAM DreamBooth set)`,
    task_categories: ["text-to-image"],
    tags: [
      ...new Set([
        "dreambooth",
        "persam",
        "segment-anything",
        "masked-loss",
        "persam-db",
        ...(params.tags ?? []),
      ]),
    ],
    size_categories: [n < 1000 ? "n<1K" : n < 10_000 ? "1K<n<10K" : "10K<n<100K"],
    // Explicit data_files: without them the Hub infers splits from names, and a photo called
    // test_1.jpg or a folder called valid/ would become its own split. `datasets` downloads only the
    // files these patterns match, and (>= 3.4) loads every `*_file_name` column of metadata.jsonl as
    // an image resolved from the metadata file's folder: so every folder such a column points into is
    // listed (masks/, weights/, rgba/), one by one, not `**/*.png`, which would also pull onetrainer/.
    configs: [{ config_name: "default", data_files: [{ split: "train", path: [...DATA_FILES] }] }],
  };
}

/**
 * The dataset card: YAML front matter (licence, task, tags, pretty name, an explicit imagefolder
 * config) and a Markdown body with what the set is, how it was made, and commands to train from
 * it with diffusers, kohya sd-scripts and OneTrainer. Every user-given string is quoted for YAML or
 * shown as a code span, so none can change the card's structure.
 * @throws {TypeError} for a malformed licence id or repo id
 */
export function datasetCard(params: DatasetCardParams): string {
  const { dataset } = params;
  const repoId = params.repoId ?? "<user>/<dataset>";
  if (
    params.repoId !== undefined &&
    !/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(repoId)
  ) {
    throw new TypeError(`Expected a Hub repo id "owner/name" but received ${JSON.stringify(repoId)}`);
  }
  const meta = datasetCardMetadata(params);
  const title = String(meta.pretty_name);
  const local = repoId.includes("<") ? "my-set" : (repoId.split("/")[1] ?? "my-set");
  const script = params.diffusersScript ?? "train_dreambooth.py";
  const n = dataset.stems.length;
  const settings = Object.entries(dataset.settings ?? {});

  const body = [
    `# ${mdText(title)}`,
    "",
    `DreamBooth training data for one subject, ${mdCode(`${dataset.token} ${dataset.className}`)}: ${n} photo${n === 1 ? "" : "s"}, ` +
      "each with the subject found and masked by PerSAM (personalised Segment Anything) from a single reference. " +
      "Made with persam-db.",
    "",
    "## Files",
    "",
    "- `images/<stem>.png`: training images, cropped and resized, background suppressed with a clean edge (diffusers trains on these)",
    "- `masks/<stem>.png`: binary subject masks",
    "- `weights/<stem>.png`: 8-bit loss weights (255 = full weight, feathered edge, low background floor)",
    "- `rgba/<stem>.png`: the image with alpha = loss weight, for kohya `alpha_mask`; captions as `rgba/<stem>.txt`",
    "- `captions/<stem>.txt`: one caption per image",
    "- `metadata.jsonl`: one row per image: `file_name`, `mask_file_name`, `weight_file_name`, `rgba_file_name`, `text`, `confidence` (a float in [0, 1]), `flags` (a list of diagnostics, often empty)",
    "- `dreambooth.json`, `train.sh`: diffusers arguments and launch script",
    "- `kohya.toml`, `train_kohya.sh`: kohya sd-scripts dataset config and launch script",
    "- `onetrainer/`: OneTrainer concept folder (`<stem>.png`, `<stem>-masklabel.png`, `<stem>.txt`), `concepts.json`, `train-config.json`; `train_onetrainer.sh` launches it",
    "- `report.html`, `report.json`: per-photo diagnostics (confidence, mask area, flags) with overlays",
    "- `README.md`: this card",
    "",
    "Paths in these files are relative to the set; nothing names the machine it was made on.",
    "",
    "## How it was made",
    "",
    `- Segmentation model: ${mdCode(dataset.model)}`,
    `- Mode: ${mdCode(dataset.mode)}`,
    `- Reference: ${mdCode(dataset.reference)}`,
    `- Resolution: ${dataset.resolution} × ${dataset.resolution} px`,
    `- Class: ${mdCode(dataset.className)} (the subject's class noun; also the prior-preservation class prompt)`,
    `- Instance prompt: ${mdCode(dataset.instancePrompt)}`,
    `- Images kept: ${n}`,
    ...settings.map(([key, value]) => `- ${mdCode(key)}: ${mdCode(String(value))}`),
    "",
    "## Load with 🤗 Datasets",
    "",
    "```python",
    "from datasets import load_dataset",
    "",
    `ds = load_dataset(${JSON.stringify(repoId)}, split="train")`,
    "# columns: image, mask, weight, rgba (images), text, confidence, flags",
    "```",
    "",
    `The mask, weight and rgba columns need \`datasets\` >= ${DATASETS_MIN_VERSION}, which loads every \`*_file_name\` column as an image; older versions give their paths as strings and load only \`image\`.`,
    "",
    "## Train from it",
    "",
    "Download the set first:",
    "",
    "```bash",
    `hf download ${repoId} --repo-type dataset --local-dir ${local}   # older huggingface_hub: huggingface-cli download`,
    "```",
    "",
    `### diffusers (${mdCode(script)})`,
    "",
    "diffusers has no masked loss: the suppressed background in `images/` is the only protection against learning it.",
    "",
    "```bash",
    "git clone https://github.com/huggingface/diffusers",
    `pip install -e ./diffusers -r diffusers/examples/dreambooth/${REQUIREMENTS[script]}`,
    "accelerate config default",
    `DIFFUSERS_DREAMBOOTH_DIR="$PWD/diffusers/examples/dreambooth" bash ${local}/train.sh`,
    "```",
    "",
    "### kohya sd-scripts (LoRA, masked loss)",
    "",
    "```bash",
    "git clone https://github.com/kohya-ss/sd-scripts",
    "(cd sd-scripts && pip install -r requirements.txt)",
    "accelerate config default",
    `SD_SCRIPTS_DIR="$PWD/sd-scripts" bash ${local}/train_kohya.sh`,
    "```",
    "",
    "### OneTrainer (masked training)",
    "",
    "OneTrainer reads relative paths from its own folder; `train_onetrainer.sh` writes copies of " +
      "`onetrainer/train-config.json` and `onetrainer/concepts.json` with the set's absolute paths on your machine and starts OneTrainer with them.",
    "",
    "```bash",
    "git clone https://github.com/Nerogar/OneTrainer",
    "(cd OneTrainer && ./install.sh)",
    `ONETRAINER_DIR="$PWD/OneTrainer" bash ${local}/train_onetrainer.sh`,
    "```",
    "",
  ];
  return `---\n${toYaml(meta)}---\n\n${body.join("\n")}`;
}
