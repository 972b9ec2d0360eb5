// The options every model-using command shares (--model | --encoder + --decoder, --variant,
// --threads) and how they become a loaded SamModel.

import { resolve } from "node:path";
import type { Argv } from "yargs";
import { embeddingCacheBytes, hubConfig, persamCacheDir } from "../config.js";
import { UserError } from "../errors.js";
import { DEFAULT_MODEL_ID } from "../segment/models/model-registry.js";
import { resolveModelFiles } from "../segment/models/model-store.js";
import { EmbeddingCache, embeddingCacheDir } from "../segment/sam/embedding-cache.js";
import { modelCacheDir } from "../segment/sam/model-cache.js";
import { SamModel } from "../segment/sam/sam-model.js";
import { isTestModelFile } from "../segment/sam/test-weights.js";
import { parseByteSize } from "../util/numbers.js";
import type { CliIo, Reporter } from "./io.js";
import { byteProgress } from "./progress.js";

/** Parsed model options. */
export interface ModelOptions {
  model?: string | undefined;
  encoder?: string | undefined;
  decoder?: string | undefined;
  variant: string;
  threads: number;
  embeddingCache?: string | undefined;
}

/** Declare the model options on a command. */
export function withModelOptions<T>(yargs: Argv<T>): Argv<T & ModelOptions> {
  return yargs
    .option("model", {
      type: "string",
      describe: `Model id from the registry ('persam-db models list'); default ${DEFAULT_MODEL_ID}`,
    })
    .option("encoder", { type: "string", describe: "Local SAM image-encoder .onnx (use with --decoder)" })
    .option("decoder", {
      type: "string",
      describe: "Local .safetensors with the same checkpoint's prompt-encoder/mask-decoder weights",
    })
    .option("variant", {
      type: "string",
      choices: ["fp32", "fp16", "quantized"],
      default: "fp32",
      describe: "Encoder variant of a registry model",
    })
    .option("threads", {
      type: "number",
      default: 0,
      describe: "onnxruntime threads per session (0 = one per core)",
    })
    .option("embedding-cache", {
      type: "string",
      describe:
        "Size limit of the photo-embedding cache shared by all commands, e.g. 2G or 500M; 0 turns it off (default 2G, or PERSAM_DB_EMBEDDING_CACHE)",
    }) as unknown as Argv<T & ModelOptions>;
}

/**
 * The user's photo-embedding cache, sized by --embedding-cache, else PERSAM_DB_EMBEDDING_CACHE,
 * else the default; its warnings go to the reporter.
 * @throws UserError for a size that cannot be read
 */
export function cliEmbeddingCache(options: ModelOptions, io: CliIo, reporter: Reporter): EmbeddingCache {
  let maxBytes = embeddingCacheBytes(io.env);
  if (options.embeddingCache !== undefined) {
    maxBytes = parseByteSize(options.embeddingCache);
    if (maxBytes === undefined) {
      throw new UserError(`--embedding-cache ${options.embeddingCache} is not a size`, {
        hint: "give bytes with an optional unit, e.g. 2G or 500M (0 turns the cache off)",
      });
    }
  }
  return new EmbeddingCache({
    dir: embeddingCacheDir(persamCacheDir(io.env)),
    ...(maxBytes === undefined ? {} : { maxBytes }),
    onWarning: (message) => reporter.warn(message),
  });
}

/** Resolve the model files (downloading into the HF cache if needed) and load them. */
export async function loadCliModel(options: ModelOptions, io: CliIo, reporter: Reporter): Promise<SamModel> {
  return openCliModel(await resolveCliModelFiles(options, io, reporter), options, io, reporter);
}

/** The model files of --model / --encoder + --decoder, downloaded into the HF cache if needed. */
export async function resolveCliModelFiles(
  options: ModelOptions,
  io: CliIo,
  reporter: Reporter,
): Promise<SamModel["files"]> {
  if ((options.encoder === undefined) !== (options.decoder === undefined)) {
    throw new UserError("--encoder and --decoder must be given together", {
      hint: "pass both local files, or neither and use --model",
    });
  }
  if (options.model !== undefined && options.encoder !== undefined) {
    throw new UserError("--model cannot be combined with --encoder/--decoder", {
      hint: "choose one of the two",
    });
  }
  const hub = hubConfig(io.env);
  const progress = byteProgress(reporter);
  const files = await resolveModelFiles({
    ...(options.encoder !== undefined && options.decoder !== undefined
      ? // Relative paths are the user's, so they are resolved against the command's folder.
        { encoderPath: resolve(io.cwd, options.encoder), decoderPath: resolve(io.cwd, options.decoder) }
      : { modelId: options.model ?? DEFAULT_MODEL_ID }),
    variant: options.variant as "fp32" | "fp16" | "quantized",
    offline: hub.offline,
    cacheDir: hub.cacheDir,
    endpoint: hub.endpoint,
    http: hub.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: hub.idleTimeoutMs },
    ...(hub.token !== undefined ? { token: hub.token } : {}),
    onProgress: (p) => progress.update(p),
  });
  progress.clear();
  if (await isTestModelFile(files.decoderPath)) {
    reporter.warn(
      `${files.decoderPath} holds RANDOM TEST WEIGHTS (persam-db's tiny test model): masks are meaningless; use --model for real work`,
    );
  }
  return {
    encoderPath: files.encoderPath,
    decoderPath: files.decoderPath,
    label: files.modelId ?? "local files",
  };
}

/**
 * Open the two sessions of resolved model files (resolveCliModelFiles has warned about test
 * weights). Warns when the encoder's large attentions could not be computed in pieces
 * (encoder-session.ts): the run then needs far more memory than bench/README.md shows.
 */
export async function openCliModel(
  files: SamModel["files"],
  options: ModelOptions,
  io: CliIo,
  reporter: Reporter,
): Promise<SamModel> {
  const model = await SamModel.load({
    files,
    threads: options.threads,
    modelCacheDir: modelCacheDir(persamCacheDir(io.env)),
    onWarning: (message) => reporter.warn(message),
  });
  const warning = attentionWarning(model.encoder);
  if (warning) reporter.warn(warning);
  return model;
}

/** The warning for an encoder whose large attentions are not all chunked, or undefined. */
export function attentionWarning(encoder: {
  readonly path: string;
  readonly attentionsKeptWhole: number;
  readonly loadNotes: readonly string[];
}): string | undefined {
  const kept = encoder.attentionsKeptWhole;
  if (kept === 0) return undefined;
  const what = kept < 0 ? "its attention could not be examined" : `${kept} large attention(s) run whole`;
  const why = encoder.loadNotes.find((n) => !n.startsWith("rewrote")) ?? "no reason given";
  return `${encoder.path}: ${what} (${why}); expect up to ~768 MiB more memory per attention while a photo is encoded (SAM's global attention)`;
}
