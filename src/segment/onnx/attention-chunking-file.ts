// chunkAttention from a model file to a model file, and a worker thread to run it in; the same read
// of the file also tells the precision of chosen outputs (value-precision.ts). The rewrite
// needs the model's bytes whole (a ViT-B-size encoder: 363 MB); read on the main thread they stay
// allocated until the next garbage collection, on top of onnxruntime's own copy of the weights and
// the first encode's activations, raising the peak. A worker's memory is freed when the worker
// ends, so the main thread never holds the bytes.

import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import {
  type AttentionChunkingOptions,
  type AttentionChunkingResult,
  chunkAttention,
} from "./attention-chunking.js";
import { type ReadModel, readModel } from "./proto-reader.js";
import { type ValuePrecision, valuePrecision } from "./value-precision.js";

/** What to rewrite. */
export interface ChunkFileRequest {
  /** The model file. */
  readonly input: string;
  /** Where the rewritten model goes (written only when something was rewritten). */
  readonly output: string;
  readonly chunks: number;
  /** See {@link AttentionChunkingOptions.minScoreBytes}. */
  readonly minScoreBytes?: number | undefined;
  /** Values whose precision to report (see {@link ChunkFileReply.precisions}). @default none */
  readonly precisionOf?: readonly string[] | undefined;
}

/** What was done. */
export interface ChunkFileReply {
  /** Attentions rewritten; 0 = `output` was not written. */
  readonly rewritten: number;
  /** See {@link AttentionChunkingResult.large}. */
  readonly large: number;
  readonly notes: readonly string[];
  /**
   * {@link valuePrecision} of each `precisionOf` value the graph has; empty when the model could not
   * be parsed.
   */
  readonly precisions: Readonly<Record<string, ValuePrecision>>;
  /** See {@link AttentionChunkingResult.externalData}; empty when none. */
  readonly externalData: readonly string[];
}

/**
 * Rewrite `input` into `output` in this thread (see {@link chunkAttentionFileInWorker}); with
 * `chunks` 1 only the precisions are found.
 */
export function chunkAttentionFile(request: ChunkFileRequest): ChunkFileReply {
  const bytes = readFileSync(request.input);
  // Parsed once for both (a ViT-B-size graph is a few hundred MB); a model that does not parse is
  // left to chunkAttention, whose notes say so.
  const needsModel = request.chunks > 1 || (request.precisionOf ?? []).length > 0;
  const model = needsModel ? parsedOrUndefined(bytes) : undefined;
  const precisions = model === undefined ? {} : precisionsOf(model, request.precisionOf ?? []);
  const result = chunkAttention(bytes, {
    chunks: request.chunks,
    ...(request.minScoreBytes === undefined ? {} : { minScoreBytes: request.minScoreBytes }),
    model,
  });
  if (result.rewritten > 0) {
    const fd = openSync(request.output, "w");
    try {
      for (const part of result.parts) {
        let offset = 0;
        while (offset < part.length) offset += writeSync(fd, part, offset, part.length - offset);
      }
    } finally {
      closeSync(fd);
    }
  }
  return {
    rewritten: result.rewritten,
    large: result.large,
    notes: result.notes,
    externalData: result.externalData ?? [],
    precisions,
  };
}

function parsedOrUndefined(bytes: Uint8Array): ReadModel | undefined {
  try {
    return readModel(bytes);
  } catch {
    return undefined;
  }
}

function precisionsOf(model: ReadModel, values: readonly string[]): Record<string, ValuePrecision> {
  const out: Record<string, ValuePrecision> = {};
  for (const v of values) {
    const p = valuePrecision(model, v);
    if (p !== undefined) out[v] = p;
  }
  return out;
}

const WORKER_TAG = "persam-db attention chunking";

/**
 * {@link chunkAttentionFile} in a worker thread, so that the model's bytes are freed when it ends.
 * Where this module runs from TypeScript sources (tests), no compiled worker script exists and the
 * rewrite runs in this thread instead.
 */
export async function chunkAttentionFileInWorker(request: ChunkFileRequest): Promise<ChunkFileReply> {
  const script = fileURLToPath(import.meta.url);
  if (!script.endsWith(".js") || !existsSync(script)) return chunkAttentionFile(request);
  return new Promise<ChunkFileReply>((resolve, reject) => {
    const worker = new Worker(script, { workerData: { tag: WORKER_TAG, request } });
    let reply: ChunkFileReply | undefined;
    worker.once("message", (m: ChunkFileReply) => {
      reply = m;
    });
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (reply) resolve(reply);
      else reject(new Error(`the attention-chunking worker exited with code ${code} and no result`));
    });
  });
}

// Worker side: run the request and post the reply; the thread then ends and its memory is freed.
if (!isMainThread && (workerData as { tag?: string } | null)?.tag === WORKER_TAG) {
  const request = (workerData as { request: ChunkFileRequest }).request;
  parentPort?.postMessage(chunkAttentionFile(request));
}
