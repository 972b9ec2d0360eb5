// TEST MODEL — a tiny, deterministic, random-weight SAM (encoder .onnx + decoder .safetensors in
// the real naming) that the tests and benchmarks generate. It exercises every code path but
// segments nothing meaningful, so it is never a default: it is used only when its files are
// passed explicitly, and loading it prints a warning (see isTestModelFile).

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSafetensors } from "../sam/safetensors.js";
import { TEST_MODEL_METADATA_KEY } from "../sam/test-weights.js";
import { randomDecoderWeights } from "./random-weights.js";
import { buildTinyEncoderGraph } from "./tiny-encoder.js";

/** Parameters of {@link writeTinyModel}. */
export interface TinyModelParams {
  /** Folder to write `encoder.onnx` and `decoder.safetensors` into (created if missing). */
  readonly dir: string;
  /**
   * Embedding width C.
   * @default 32
   */
  readonly embedDim?: number;
  /**
   * Seed of the random weights.
   * @default 1
   */
  readonly seed?: number;
}

/** Paths of a written tiny model. */
export interface TinyModelFiles {
  readonly encoderPath: string;
  readonly decoderPath: string;
  readonly embedDim: number;
}

/** Write a tiny random SAM. The same seed and width give byte-identical files. */
export async function writeTinyModel(params: TinyModelParams): Promise<TinyModelFiles> {
  const embedDim = params.embedDim ?? 32;
  const seed = params.seed ?? 1;
  await mkdir(params.dir, { recursive: true });
  const weights = randomDecoderWeights({ embedDim, seed });
  const positionalMatrix = weights.get("shared_image_embedding.positional_embedding");
  if (!positionalMatrix) throw new Error("random weights lack the positional matrix");
  const encoderPath = join(params.dir, "encoder.onnx");
  const decoderPath = join(params.dir, "decoder.safetensors");
  await writeFile(encoderPath, buildTinyEncoderGraph({ embedDim, positionalMatrix, seed: seed + 1000 }));
  await writeSafetensors(decoderPath, weights, {
    [TEST_MODEL_METADATA_KEY]: "random weights for tests; segments nothing meaningful",
    seed: String(seed),
  });
  return { encoderPath, decoderPath, embedDim };
}
