// SAM's image encoder as an onnxruntime session: a stock export (e.g. Transformers.js
// vision_encoder.onnx) taking pixel_values [1,3,1024,1024] and giving image_embeddings [1,C,64,64]
// (and, in those exports, image_positional_embeddings). Names and element types are read from the
// session, never assumed, and every mismatch is reported by name.

import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { firstLine, UserError } from "../../errors.js";
import type { Tensor } from "../../util/tensor.js";
import { timeSpan } from "../../util/timing-trace.js";
import { type ChunkFileReply, chunkAttentionFileInWorker } from "../onnx/attention-chunking-file.js";
import type { ValuePrecision } from "../onnx/value-precision.js";
import { ModelCache, type ModelCacheOptions, type SessionFactory } from "./model-cache.js";
import {
  createSession,
  fromOrt,
  ioTypes,
  type OrtSession,
  ortFloat16,
  ortFloat32,
  type SessionOptions,
} from "./ort.js";
import { ENCODER_SIDE, GRID_SIDE } from "./sam-constants.js";

/** What one encoder run gives. */
export interface EncoderOutput {
  /** `[1, C, 64, 64]` image embedding. */
  readonly embedding: Tensor;
  /** `[1, C, 64, 64]` dense positional encoding, when the export provides it (checkpoint check). */
  readonly positional?: Tensor | undefined;
}

/** Options of {@link SamEncoder.create}. */
export interface SamEncoderOptions extends SessionOptions {
  /** Path of the encoder `.onnx` file (external data files are found beside it). */
  readonly path: string;
  /**
   * Compute each large attention (SAM's global-attention blocks: a `[12, 4096, 4096]` fp32 score
   * tensor, 768 MiB) in this many pieces along its batch × heads axis, by a load-time rewrite of the
   * graph (onnx/attention-chunking.ts). The output is the same to the bit (each piece runs the same
   * fused kernels on the same numbers); only one piece's scores exist at a time, which cuts the
   * encoder's peak memory to a fraction and saves the page faults of the first encode
   * (bench/README.md, case `encoder`). A graph without the pattern, or one onnxruntime
   * refuses after the rewrite, is loaded unchanged (see {@link SamEncoder.loadNotes}). 1 = off.
   * @default 12 (one SAM head per piece)
   */
  readonly attentionChunks?: number | undefined;
  /**
   * Keep the prepared encoder (after the attention rewrite and onnxruntime's optimisation) in this
   * cache and open it from there next time (model-cache.ts). Plain data, so that the options can
   * cross to the encoder's worker thread. Only an encoder that the rewrite examined is cached
   * (attention chunking on, the default; weights inside the file).
   * @default no cache: the encoder is prepared on every open
   */
  readonly modelCache?: Omit<ModelCacheOptions, "onWarning"> | undefined;
  /**
   * Whether idle intra-op threads spin between operators (see SessionOptions.allowSpinning). Off
   * for the encoder: its operators run for milliseconds each, so waking a sleeping thread costs
   * nothing measurable, while a spinning thread on a busy machine takes CPU from the other one
   * and stalls every operator it is descheduled in (bench/README.md, case `encoder`). The numbers
   * are the same either way.
   * @default false
   */
  allowSpinning?: boolean;
}

/** Default of {@link SamEncoderOptions.attentionChunks}. */
export const DEFAULT_ATTENTION_CHUNKS = 12;

const EMBEDDING_NAMES = ["image_embeddings", "embeddings", "image_embedding"];
const POSITIONAL_NAMES = ["image_positional_embeddings"];

/** A loaded SAM image encoder. Create with {@link SamEncoder.create}; call {@link dispose} when done. */
export class SamEncoder {
  private constructor(
    private readonly session: OrtSession,
    /** Name of the pixel input. */
    readonly inputName: string,
    /** Element type the pixel input expects. */
    readonly inputType: "float32" | "float16",
    private readonly embeddingName: string,
    private readonly positionalName: string | undefined,
    /** Embedding width C (256 for every real SAM). */
    readonly embedDim: number,
    /** Path the encoder was loaded from. */
    readonly path: string,
    /** What the load-time attention rewrite did, or why it left the graph alone. */
    readonly loadNotes: readonly string[],
    /**
     * Large attentions (a score tensor of 64 MiB or more) computed whole, because the rewrite did
     * not recognise them, failed, or was refused: each costs its full score tensor in memory (768
     * MiB for SAM's [12, 4096, 4096]). -1 when the graph could not be examined; 0 when every large
     * attention is chunked, when there is none, or when chunking was turned off.
     */
    readonly attentionsKeptWhole: number,
    /**
     * What the positional output is computed in (onnx/value-precision.ts: float16 or int8 in the
     * fp16 and `_quantized` exports), for the checkpoint check's tolerance; undefined when there is
     * no positional output or the graph could not be examined.
     */
    readonly positionalPrecision: ValuePrecision | undefined,
    /** Problems of the model cache met while opening (each said once); the encoder works regardless. */
    readonly cacheWarnings: readonly string[],
    /** True when the prepared encoder came from the model cache. */
    readonly fromCache: boolean,
  ) {}

  /**
   * Load an encoder and check its interface.
   * @throws UserError when the file is missing or not a SAM image encoder (names the mismatch).
   */
  static async create(given: SamEncoderOptions): Promise<SamEncoder> {
    const options: SamEncoderOptions = { ...given, allowSpinning: given.allowSpinning ?? false };
    let session: OrtSession;
    let loadNotes: readonly string[] = [];
    let keptWhole = 0;
    let precisions: Readonly<Record<string, ValuePrecision>> = {};
    let fromCache = false;
    const cacheWarnings: string[] = [];
    try {
      const cache =
        options.modelCache === undefined
          ? undefined
          : new ModelCache({ ...options.modelCache, onWarning: (m) => cacheWarnings.push(m) });
      if (cache?.enabled) {
        const opened = await openThroughCache(options, cache);
        ({ session, fromCache } = opened);
        ({ notes: loadNotes, keptWhole, precisions } = opened.meta);
      } else {
        ({
          session,
          notes: loadNotes,
          keptWhole,
          precisions,
        } = await openEncoder(options, (m) => createSession(m, options)));
      }
    } catch (error) {
      throw new UserError(`cannot load the image encoder ${options.path}: ${firstLine(error)}`, {
        hint: "pass a SAM image-encoder .onnx file (e.g. Transformers.js onnx/vision_encoder.onnx) or use --model",
        cause: error,
      });
    }
    const inputs = ioTypes(session, "inputs");
    const outputs = ioTypes(session, "outputs");
    const problems: string[] = [];
    if (inputs.size !== 1)
      problems.push(`expected 1 input but found ${inputs.size} (${[...inputs.keys()].join(", ")})`);
    const [inputName, input] = [...inputs.entries()][0] ?? ["", { type: "missing", dims: [] }];
    if (input.type !== "float32" && input.type !== "float16") {
      problems.push(`input '${inputName}' has element type ${input.type}, expected float32 or float16`);
    }
    checkDims(problems, `input '${inputName}'`, input.dims, [1, 3, ENCODER_SIDE, ENCODER_SIDE]);
    const embeddingName =
      EMBEDDING_NAMES.find((n) => outputs.has(n)) ??
      (outputs.size === 1 ? [...outputs.keys()][0] : undefined);
    let embedDim = 0;
    if (embeddingName === undefined) {
      problems.push(
        `no image-embedding output: expected one of ${EMBEDDING_NAMES.join(", ")} but found ${[...outputs.keys()].join(", ")}`,
      );
    } else {
      const dims = outputs.get(embeddingName)!.dims;
      const c = dims[1];
      embedDim = typeof c === "number" ? c : 0;
      checkDims(problems, `output '${embeddingName}'`, dims, [1, embedDim || "C", GRID_SIDE, GRID_SIDE]);
    }
    if (problems.length > 0) {
      await session.release();
      throw new UserError(`${options.path} is not a SAM image encoder: ${problems.join("; ")}`, {
        hint: "use a stock SAM/SlimSAM vision_encoder.onnx ([1,3,1024,1024] → [1,256,64,64])",
      });
    }
    const positionalName = POSITIONAL_NAMES.find((n) => outputs.has(n));
    return new SamEncoder(
      session,
      inputName,
      input.type as "float32" | "float16",
      embeddingName!,
      positionalName,
      embedDim,
      options.path,
      loadNotes,
      keptWhole,
      positionalName === undefined ? undefined : precisions[positionalName],
      cacheWarnings,
      fromCache,
    );
  }

  /** Run the encoder on preprocessed pixels `[1,3,1024,1024]` (see preprocess.ts). */
  async encode(pixelValues: Tensor): Promise<EncoderOutput> {
    const feeds = {
      [this.inputName]:
        this.inputType === "float16"
          ? ortFloat16(pixelValues.data, pixelValues.dims)
          : ortFloat32(pixelValues.data, pixelValues.dims),
    };
    const fetches = this.positionalName ? [this.embeddingName, this.positionalName] : [this.embeddingName];
    const result = await this.session.run(feeds, fetches);
    const embedding = fromOrt(result[this.embeddingName]!);
    if (embedding.dims[1] !== this.embedDim && this.embedDim !== 0) {
      throw new Error(`encoder returned [${embedding.dims.join(",")}], expected C=${this.embedDim}`);
    }
    const positional = this.positionalName ? fromOrt(result[this.positionalName]!) : undefined;
    return { embedding: { data: new Float32Array(embedding.data), dims: embedding.dims }, positional };
  }

  /** True when the encoder also returns the dense positional encoding (for the checkpoint check). */
  get hasPositional(): boolean {
    return this.positionalName !== undefined;
  }

  /**
   * End onnxruntime's profiling (a session opened with `profileFilePrefix`): its trace file is
   * written then, beside the prefix.
   */
  endProfiling(): void {
    this.session.endProfiling();
  }

  /** Release the native session. */
  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** The encoder's session and what its preparation did. */
interface OpenedEncoder {
  readonly session: OrtSession;
  readonly notes: readonly string[];
  readonly keptWhole: number;
  /** The precision of each positional output the graph computes (see valuePrecision). */
  readonly precisions: Readonly<Record<string, ValuePrecision>>;
  /** True when the rewrite read the whole graph and found its weights inside the file. */
  readonly examined: boolean;
}

/**
 * The encoder through the model cache: keyed by the file's sha256, the chunking and the
 * optimisation level; prepared by {@link openEncoder} on a miss.
 */
async function openThroughCache(
  options: SamEncoderOptions,
  cache: ModelCache,
): Promise<{
  session: OrtSession;
  meta: {
    notes: readonly string[];
    keptWhole: number;
    precisions: Readonly<Record<string, ValuePrecision>>;
  };
  fromCache: boolean;
}> {
  await access(options.path); // a missing file is reported as such
  const sha256 = await timeSpan("model.encoder.source-hash", () => cache.fileSha256(options.path));
  const chunks = options.attentionChunks ?? DEFAULT_ATTENTION_CHUNKS;
  const opened = await cache.open({
    key: `encoder\n${sha256}\nchunks=${chunks}\nlevel=${options.graphOptimization ?? "all"}`,
    options,
    derive: async (create) => {
      const o = await openEncoder(options, create);
      return {
        session: o.session,
        meta: { notes: o.notes, keptWhole: o.keptWhole, precisions: o.precisions },
        cacheable: o.examined,
      };
    },
  });
  // An entry of an older build may lack the precisions: treat them as unknown (the widest bound).
  return {
    session: opened.session,
    meta: { ...opened.meta, precisions: opened.meta.precisions ?? {} },
    fromCache: opened.hit,
  };
}

/**
 * Open the encoder with its large attentions chunked ({@link SamEncoderOptions.attentionChunks}),
 * or, when that is off or not possible, the file as it is; `create` opens a session. Either way the
 * precision of the positional output as the graph computes it is read (for the checkpoint check).
 * The rewritten model goes to a temporary file that onnxruntime reads as it reads any model; the
 * rewrite (and, with chunking off, the reading of the graph alone) runs in a worker thread
 * (onnx/attention-chunking-file.ts) so that no JS copy of the weights outlives it. A model with
 * external data is left to onnxruntime.
 */
async function openEncoder(options: SamEncoderOptions, create: SessionFactory): Promise<OpenedEncoder> {
  const chunks = options.attentionChunks ?? DEFAULT_ATTENTION_CHUNKS;
  const off = chunks <= 1;
  const unchanged = async (
    notes: string[],
    keptWhole: number,
    examined = false,
    precisions: Readonly<Record<string, ValuePrecision>> = {},
  ): Promise<OpenedEncoder> => ({
    session: await create(options.path),
    notes: off ? ["attention chunking off"] : notes,
    keptWhole: off ? 0 : keptWhole,
    precisions,
    examined,
  });
  await access(options.path); // a missing file is reported as such, not as a failed rewrite
  let dir: string;
  try {
    dir = await mkdtemp(join(tmpdir(), "persam-db-encoder-"));
  } catch (error) {
    return unchanged([`no temporary folder (${firstLine(error)}); loaded unchanged`], -1);
  }
  const output = join(dir, basename(options.path));
  // Every return awaits: the temporary folder is removed only once the session is open (or failed).
  try {
    let reply: ChunkFileReply;
    try {
      reply = await timeSpan("model.encoder.rewrite", () =>
        chunkAttentionFileInWorker({
          input: options.path,
          output,
          chunks: off ? 1 : chunks,
          precisionOf: POSITIONAL_NAMES,
        }),
      );
    } catch (error) {
      // A bug in the rewrite must not cost the user the encoder: load the file as it is.
      return await unchanged([`attention chunking failed (${firstLine(error)}); loaded unchanged`], -1);
    }
    const examined = !off && reply.large >= 0 && reply.externalData.length === 0;
    if (reply.rewritten === 0)
      return await unchanged([...reply.notes], reply.large, examined, reply.precisions);
    try {
      return {
        session: await timeSpan("model.encoder.session", () => create(output)),
        notes: [...reply.notes],
        keptWhole: reply.large - reply.rewritten,
        precisions: reply.precisions,
        examined,
      };
    } catch (error) {
      return await unchanged(
        [`onnxruntime refused the chunked graph (${firstLine(error)}); loaded unchanged`, ...reply.notes],
        reply.large,
        examined,
        reply.precisions,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function checkDims(
  problems: string[],
  what: string,
  actual: readonly (number | string)[],
  expected: readonly (number | string)[],
): void {
  const ok =
    actual.length === expected.length &&
    expected.every((e, i) => {
      const a = actual[i];
      // Symbolic (dynamic) axes are accepted; fixed ones must match.
      return typeof a !== "number" || typeof e !== "number" || a === e;
    });
  if (!ok) problems.push(`${what} has shape [${actual.join(",")}], expected [${expected.join(",")}]`);
}
