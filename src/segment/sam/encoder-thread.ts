// SAM's image encoder in a worker thread of its own (SamModelOptions.encoderThread, off by default).
// onnxruntime-node runs a session on the calling thread (its `run` is only deferred with
// setImmediate), so an encoder on the main thread blocks everything else for the whole encode
// (seconds on a CPU). In a worker the main thread keeps working meanwhile: with `prepare --jobs 2`
// one photo's decoding, decoder passes, masks and output files run while the next photo is being
// encoded. That gains nothing where the encoder already keeps every core busy, as on two cores
// (bench/README.md, "Two cores: overlap does not pay"). The session, its
// options and its numbers are exactly those of SamEncoder: the worker creates a SamEncoder and runs
// it, one encode at a time.
//
// Where this module runs from TypeScript sources (the tests), no compiled worker script exists and
// the encoder is created on the calling thread instead, as onnx/attention-chunking-file.ts does.

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { UserError } from "../../errors.js";
import type { Tensor } from "../../util/tensor.js";
import type { ValuePrecision } from "../onnx/value-precision.js";
import { type EncoderOutput, SamEncoder, type SamEncoderOptions } from "./encoder-session.js";

/** What SamModel needs of an image encoder, on this thread or in a worker. */
export interface ImageEncoder {
  /** Path the encoder was loaded from. */
  readonly path: string;
  /** Embedding width C (256 for every real SAM). */
  readonly embedDim: number;
  /** True when the encoder also returns the dense positional encoding (for the checkpoint check). */
  readonly hasPositional: boolean;
  /** What the load-time attention rewrite did, or why it left the graph alone. */
  readonly loadNotes: readonly string[];
  /** See {@link SamEncoder.attentionsKeptWhole}. */
  readonly attentionsKeptWhole: number;
  /** See {@link SamEncoder.positionalPrecision}. */
  readonly positionalPrecision: ValuePrecision | undefined;
  /** See {@link SamEncoder.cacheWarnings}. */
  readonly cacheWarnings: readonly string[];
  /** See {@link SamEncoder.fromCache}. */
  readonly fromCache: boolean;
  /** True when the session runs in a worker thread. */
  readonly threaded: boolean;
  /** Milliseconds spent inside the session's runs so far (measured on the thread that runs them). */
  readonly busyMs: number;
  /** Run the encoder on preprocessed pixels `[1,3,1024,1024]` (see preprocess.ts). */
  encode(pixelValues: Tensor): Promise<EncoderOutput>;
  /** Release the session (and end the worker). */
  dispose(): Promise<void>;
}

const WORKER_TAG = "persam-db image encoder";

/** Messages from the worker. */
type Reply =
  | {
      type: "ready";
      embedDim: number;
      hasPositional: boolean;
      loadNotes: string[];
      attentionsKeptWhole: number;
      positionalPrecision: ValuePrecision | undefined;
      cacheWarnings: string[];
      fromCache: boolean;
    }
  | {
      type: "encoded";
      id: number;
      embedding: Tensor;
      positional?: Tensor | undefined;
      runMs: number;
      /** The request's pixel buffer, handed back (see workerMain). */
      pixels: ArrayBuffer;
    }
  | { type: "failed"; id: number; error: ErrorData }
  | { type: "disposed" };

/** Messages to the worker. */
type Request = { type: "encode"; id: number; pixels: Tensor } | { type: "dispose" };

/** An error as it crosses the thread boundary (UserErrors keep their hint and exit code). */
interface ErrorData {
  readonly message: string;
  readonly user: boolean;
  readonly hint?: string | undefined;
  readonly exitCode?: number | undefined;
}

function errorData(error: unknown): ErrorData {
  if (error instanceof UserError)
    return { message: error.message, user: true, hint: error.hint, exitCode: error.exitCode };
  return { message: error instanceof Error ? error.message : String(error), user: false };
}

function errorOf(data: ErrorData): Error {
  if (!data.user) return new Error(`image encoder thread: ${data.message}`);
  return new UserError(data.message, {
    ...(data.hint === undefined ? {} : { hint: data.hint }),
    ...(data.exitCode === undefined ? {} : { exitCode: data.exitCode }),
  });
}

/** The in-thread encoder seen through {@link ImageEncoder}. */
class LocalEncoder implements ImageEncoder {
  readonly threaded = false;
  busyMs = 0;
  constructor(private readonly encoder: SamEncoder) {}
  get path(): string {
    return this.encoder.path;
  }
  get embedDim(): number {
    return this.encoder.embedDim;
  }
  get hasPositional(): boolean {
    return this.encoder.hasPositional;
  }
  get loadNotes(): readonly string[] {
    return this.encoder.loadNotes;
  }
  get attentionsKeptWhole(): number {
    return this.encoder.attentionsKeptWhole;
  }
  get positionalPrecision(): ValuePrecision | undefined {
    return this.encoder.positionalPrecision;
  }
  get cacheWarnings(): readonly string[] {
    return this.encoder.cacheWarnings;
  }
  get fromCache(): boolean {
    return this.encoder.fromCache;
  }
  async encode(pixelValues: Tensor): Promise<EncoderOutput> {
    const t = performance.now();
    try {
      return await this.encoder.encode(pixelValues);
    } finally {
      this.busyMs += performance.now() - t;
    }
  }
  dispose(): Promise<void> {
    return this.encoder.dispose();
  }
}

/** A SamEncoder running in a worker thread. */
class ThreadEncoder implements ImageEncoder {
  readonly threaded = true;
  busyMs = 0;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (o: EncoderOutput) => void; reject: (e: Error) => void }
  >();
  private failure: Error | undefined;
  private disposing: Promise<void> | undefined;

  constructor(
    private readonly worker: Worker,
    readonly path: string,
    readonly embedDim: number,
    readonly hasPositional: boolean,
    readonly loadNotes: readonly string[],
    readonly attentionsKeptWhole: number,
    readonly positionalPrecision: ValuePrecision | undefined,
    readonly cacheWarnings: readonly string[],
    readonly fromCache: boolean,
  ) {
    // An idle worker does not keep the process alive (a model the caller forgot to dispose must
    // not hang the CLI at exit); one with an encode in flight does.
    worker.unref();
    worker.on("message", (reply: Reply) => {
      if (reply.type !== "encoded" && reply.type !== "failed") return;
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.type === "encoded") this.busyMs += reply.runMs;
      if (reply.type === "encoded")
        waiting?.resolve({ embedding: reply.embedding, positional: reply.positional });
      else waiting?.reject(errorOf(reply.error));
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      for (const waiting of this.pending.values()) waiting.reject(this.failure);
      this.pending.clear();
    };
    worker.on("error", (error) => fail(new Error(`image encoder thread failed: ${error.message}`)));
    worker.on("exit", (code) => fail(new Error(`image encoder thread exited (code ${code})`)));
  }

  /**
   * The pixels' buffer is handed to the worker (transferred, not copied) when it is a whole
   * ArrayBuffer of its own, as samPreprocess gives it; the caller must not use it afterwards.
   */
  encode(pixelValues: Tensor): Promise<EncoderOutput> {
    if (this.disposing) return Promise.reject(new Error("image encoder thread: already disposed"));
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const data = pixelValues.data;
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    const pixels: Tensor = { data: whole ? data : data.slice(), dims: pixelValues.dims };
    return new Promise<EncoderOutput>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      const request: Request = { type: "encode", id, pixels };
      this.worker.postMessage(request, [pixels.data.buffer as ArrayBuffer]);
    });
  }

  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      this.worker.ref(); // whatever the caller does after dispose() must still run
      if (!this.failure) {
        const done = new Promise<void>((resolve) => {
          const onReply = (reply: Reply): void => {
            if (reply.type === "disposed") resolve();
          };
          this.worker.on("message", onReply);
          this.worker.once("exit", () => resolve());
        });
        this.worker.postMessage({ type: "dispose" } satisfies Request);
        await done;
      }
      await this.worker.terminate();
    })();
    return this.disposing;
  }
}

/**
 * Load a SAM image encoder, in a worker thread when `thread` is true and a compiled worker script
 * exists (else on this thread). Same errors as {@link SamEncoder.create}.
 */
export async function createImageEncoder(options: SamEncoderOptions, thread: boolean): Promise<ImageEncoder> {
  const script = fileURLToPath(import.meta.url);
  if (!thread || !script.endsWith(".js") || !existsSync(script)) {
    return new LocalEncoder(await SamEncoder.create(options));
  }
  const worker = new Worker(script, { workerData: { tag: WORKER_TAG, options } });
  let onMessage: (reply: Reply) => void = () => {};
  let onError: (error: Error) => void = () => {};
  let onExit: (code: number) => void = () => {};
  const ready = await new Promise<Extract<Reply, { type: "ready" }>>((resolve, reject) => {
    onMessage = (reply) => {
      if (reply.type === "ready") resolve(reply);
      else if (reply.type === "failed") reject(errorOf(reply.error));
    };
    onError = reject;
    onExit = (code) => reject(new Error(`image encoder thread exited (code ${code}) while loading`));
    worker.on("message", onMessage).on("error", onError).on("exit", onExit);
  })
    .catch(async (error: unknown) => {
      await worker.terminate();
      throw error;
    })
    .finally(() => {
      worker.off("message", onMessage).off("error", onError).off("exit", onExit);
    });
  return new ThreadEncoder(
    worker,
    options.path,
    ready.embedDim,
    ready.hasPositional,
    ready.loadNotes,
    ready.attentionsKeptWhole,
    ready.positionalPrecision,
    ready.cacheWarnings,
    ready.fromCache,
  );
}

// Worker side: create the SamEncoder, then encode one request at a time, in order of arrival.
async function workerMain(options: SamEncoderOptions): Promise<void> {
  const port = parentPort!;
  let encoder: SamEncoder;
  try {
    encoder = await SamEncoder.create(options);
  } catch (error) {
    port.postMessage({ type: "failed", id: 0, error: errorData(error) } satisfies Reply);
    port.close();
    return;
  }
  port.postMessage({
    type: "ready",
    embedDim: encoder.embedDim,
    hasPositional: encoder.hasPositional,
    loadNotes: [...encoder.loadNotes],
    attentionsKeptWhole: encoder.attentionsKeptWhole,
    positionalPrecision: encoder.positionalPrecision,
    cacheWarnings: [...encoder.cacheWarnings],
    fromCache: encoder.fromCache,
  } satisfies Reply);
  // One session run at a time: concurrent runs would share its threads and double its activations.
  let queue: Promise<void> = Promise.resolve();
  port.on("message", (request: Request) => {
    queue = queue.then(async () => {
      if (request.type === "dispose") {
        await encoder.dispose();
        port.postMessage({ type: "disposed" } satisfies Reply);
        port.close();
        return;
      }
      try {
        const t = performance.now();
        const out = await encoder.encode(request.pixels);
        const runMs = performance.now() - t;
        // The embedding is SamEncoder's own copy; the positional encoding may still be a view of
        // onnxruntime's output, so it is copied before its buffer is handed over.
        const positional = out.positional && { data: out.positional.data.slice(), dims: out.positional.dims };
        // The 12 MB pixel buffer goes back with the reply, to be freed by the main thread's
        // garbage collector: this thread allocates little, so its collector runs seldom.
        const pixels = request.pixels.data.buffer as ArrayBuffer;
        const transfer = [out.embedding.data.buffer as ArrayBuffer, pixels];
        if (positional) transfer.push(positional.data.buffer as ArrayBuffer);
        const reply: Reply = {
          type: "encoded",
          id: request.id,
          embedding: out.embedding,
          positional,
          runMs,
          pixels,
        };
        port.postMessage(reply, transfer);
      } catch (error) {
        port.postMessage({ type: "failed", id: request.id, error: errorData(error) } satisfies Reply);
      }
    });
  });
}

if (!isMainThread && (workerData as { tag?: string } | null)?.tag === WORKER_TAG) {
  void workerMain((workerData as { options: SamEncoderOptions }).options);
}
