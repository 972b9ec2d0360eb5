// The options every model-using command shares (--model | --encoder + --decoder, --variant,
// --threads) and how they become a loaded SamModel.

import { join } from "node:path";
import type { Argv } from "yargs";
import { hubConfig, persamCacheDir } from "../config.js";
import { UserError } from "../errors.js";
import { DEFAULT_MODEL_ID } from "../segment/model-registry.js";
import { resolveModelFiles } from "../segment/model-store.js";
import { SamModel } from "../segment/sam-model.js";
import type { CliIo, Reporter } from "./io.js";
import { formatBytes } from "./progress.js";

/** Parsed model options. */
export interface ModelOptions {
  model?: string | undefined;
  encoder?: string | undefined;
  decoder?: string | undefined;
  variant: string;
  threads: number;
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
    }) as unknown as Argv<T & ModelOptions>;
}

/** Resolve the model files (downloading into the HF cache if needed) and load them. */
export async function loadCliModel(options: ModelOptions, io: CliIo, reporter: Reporter): Promise<SamModel> {
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
  let lastDraw = 0;
  const files = await resolveModelFiles({
    ...(options.encoder !== undefined && options.decoder !== undefined
      ? { encoderPath: options.encoder, decoderPath: options.decoder }
      : { modelId: options.model ?? DEFAULT_MODEL_ID }),
    variant: options.variant as "fp32" | "fp16" | "quantized",
    offline: hub.offline,
    cacheDir: hub.cacheDir,
    endpoint: hub.endpoint,
    ...(hub.token !== undefined ? { token: hub.token } : {}),
    onProgress: (p: { file: string; loaded: number; total?: number | undefined }) => {
      const now = Date.now();
      if (!reporter.canDrawProgress || now - lastDraw < 200) return;
      lastDraw = now;
      const total = p.total ? `/${formatBytes(p.total)}` : "";
      reporter.stderr.write(`\r\x1b[2Kdownloading ${p.file} ${formatBytes(p.loaded)}${total}`);
    },
  });
  if (reporter.canDrawProgress) reporter.stderr.write("\r\x1b[2K");
  const model = await SamModel.load({
    files: {
      encoderPath: files.encoderPath,
      decoderPath: files.decoderPath,
      label: files.modelId ?? "local files",
    },
    threads: options.threads,
    graphCacheDir: join(persamCacheDir(io.env), "graphs"),
  });
  if (model.isTestModel) {
    reporter.warn(
      `${files.decoderPath} holds RANDOM TEST WEIGHTS (persam-db's tiny test model): masks are meaningless; use --model for real work`,
    );
  }
  return model;
}
