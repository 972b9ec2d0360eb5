// A loaded SAM: the stock image encoder plus our decoder graph built from the same checkpoint's
// weights, and the one place where a photo becomes an embedding.

import { UserError } from "../../errors.js";
import { photoSize, type RgbImage } from "../../image/image-io.js";
import type { Size, Tensor } from "../../util/tensor.js";
import { timeSpan } from "../../util/timing-trace.js";
import { checkCheckpointMatch } from "./checkpoint-check.js";
import { SamDecoder } from "./decoder-session.js";
import type { DecoderWeights } from "./decoder-types.js";
import type { EncoderOutput } from "./encoder-session.js";
import { createImageEncoder, type ImageEncoder } from "./encoder-thread.js";
import { ModelCache } from "./model-cache.js";
import { samPreprocess } from "./preprocess.js";
import { loadDecoderWeights } from "./safetensors.js";
import { isTestModelFile } from "./test-weights.js";

/** Model files on disk and how to describe them. */
export interface SamModelFiles {
  readonly encoderPath: string;
  readonly decoderPath: string;
  /** Registry id or "local files". */
  readonly label: string;
}

/** A photo as SAM sees it. */
export interface EncodedPhoto {
  /** `[1, C, 64, 64]`. */
  readonly embedding: Tensor;
  /** Photo size `[H, W]`. */
  readonly originalSize: Size;
  /** Resized size inside the 1024 frame `[h_in, w_in]`. */
  readonly inputSize: Size;
}

/** Options of {@link SamModel.load}. */
export interface SamModelOptions {
  readonly files: SamModelFiles;
  /**
   * Intra-op threads per session.
   * @default 0 (onnxruntime decides)
   */
  readonly threads?: number;
  /**
   * Folder of persam-db's prepared-model cache (model-cache.ts; the CLI's is
   * `<persam-db cache>/models`): the encoder after its attention rewrite and onnxruntime's
   * optimisation, and the decoder graph built from the weights, both as onnxruntime optimised
   * them, are kept there on the first open and opened from there afterwards.
   * @default no cache: both are prepared on every load
   */
  readonly modelCacheDir?: string | undefined;
  /** Told once per problem of the model cache (a damaged entry, a failed write); the model opens regardless. */
  readonly onWarning?: ((message: string) => void) | undefined;
  /**
   * Run the image encoder in a worker thread (encoder-thread.ts), so that this thread keeps working
   * while a photo is encoded (what lets `prepare --jobs 2` overlap one photo's other work with the
   * next photo's encode). The same session and the same numbers either way. Off by default: where
   * the encoder keeps every core busy it makes `prepare` no faster, and the second thread's glibc
   * malloc arena raises peak memory (bench/README.md, "Two cores: overlap does not pay"). From
   * TypeScript sources (the tests) the encoder always runs on this thread.
   * @default false
   */
  readonly encoderThread?: boolean | undefined;
}

/** Encoder + decoder of one checkpoint. */
export class SamModel {
  private checkedCheckpoint = false;

  private constructor(
    readonly files: SamModelFiles,
    readonly encoder: ImageEncoder,
    readonly decoder: SamDecoder,
    /** The decoder weights as loaded: G at least (the checkpoint check needs nothing else). */
    private readonly decoderWeights: DecoderWeights,
    /** True for the random-weight test model (tiny-model.ts): results are meaningless. */
    readonly isTestModel: boolean,
  ) {}

  /**
   * Load both halves and check they fit together (same width C).
   * @throws UserError for unreadable files or a mismatched pair.
   */
  static async load(options: SamModelOptions): Promise<SamModel> {
    const threads = options.threads ?? 0;
    // The encoder's cache (possibly in its worker thread) and the decoder's report the same
    // problem of the same folder alike: said once.
    const said = new Set<string>();
    const warn = (message: string): void => {
      if (said.has(message)) return;
      said.add(message);
      options.onWarning?.(message);
    };
    const cacheDir = options.modelCacheDir;
    const cache = cacheDir === undefined ? undefined : new ModelCache({ dir: cacheDir, onWarning: warn });
    const decoderPath = options.files.decoderPath;
    // With a cache, only G is read here (for the checkpoint check; the header is checked whole):
    // the decoder's graph comes from the cache, or is built from weights read when it must be.
    const weights = await timeSpan("model.decoder-weights", () =>
      loadDecoderWeights(decoderPath, { tensors: cache?.enabled ? "positional" : "all" }),
    );
    const decoderKey = cache?.enabled
      ? await timeSpan("model.decoder.source-hash", () => cache.fileSha256(decoderPath))
      : undefined;
    const encoder = await timeSpan(
      "model.encoder",
      () =>
        createImageEncoder(
          {
            path: options.files.encoderPath,
            threads,
            ...(cacheDir === undefined ? {} : { modelCache: { dir: cacheDir } }),
          },
          options.encoderThread ?? false,
        ),
      (e) => ({ fromCache: e.fromCache }),
    );
    for (const message of encoder.cacheWarnings) warn(message);
    const decoder = await timeSpan("model.decoder", () =>
      SamDecoder.create({
        threads,
        ...(decoderKey === undefined
          ? { weights }
          : {
              loadWeights: () => loadDecoderWeights(decoderPath),
              modelCache: cache,
              cacheKey: `file-sha256 ${decoderKey}`,
            }),
      }),
    ).catch(async (error: unknown) => {
      await encoder.dispose();
      throw error;
    });
    const model = new SamModel(
      options.files,
      encoder,
      decoder,
      weights,
      await isTestModelFile(options.files.decoderPath),
    );
    if (encoder.embedDim !== 0 && encoder.embedDim !== decoder.embedDim) {
      await model.dispose();
      throw new UserError(
        `the encoder ${options.files.encoderPath} gives ${encoder.embedDim}-channel embeddings but the decoder weights ${options.files.decoderPath} expect ${decoder.embedDim}`,
        { hint: "use the encoder and decoder of the same checkpoint (see 'persam-db models list')" },
      );
    }
    return model;
  }

  /** Preprocess and encode one decoded photo (RGB8; a reduced decode keeps the photo's coordinates). */
  async encode(image: RgbImage): Promise<EncodedPhoto> {
    if (image.channels !== 3)
      throw new Error(`Expected an RGB image but received ${image.channels} channels`);
    const { width, height } = photoSize(image);
    const { pixelValues, inputSize, originalSize } = samPreprocess(image.data, image.width, image.height, [
      height,
      width,
    ]);
    const out = await timeSpan("encode", () => this.encoder.encode(pixelValues));
    this.checkCheckpoint(out);
    return { embedding: out.embedding, originalSize, inputSize };
  }

  /** Release both sessions. */
  async dispose(): Promise<void> {
    await timeSpan("model.dispose", async () => {
      await this.encoder.dispose();
      await this.decoder.dispose();
    });
  }

  private checkCheckpoint(out: EncoderOutput): void {
    if (this.checkedCheckpoint || !out.positional) return;
    checkCheckpointMatch({
      encoderPositional: out.positional,
      decoderWeights: this.decoderWeights,
      encoderPath: this.files.encoderPath,
      decoderPath: this.files.decoderPath,
      precision: this.encoder.positionalPrecision,
    });
    this.checkedCheckpoint = true;
  }
}
