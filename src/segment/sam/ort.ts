// The one module that imports onnxruntime-node: session creation with our defaults, and float32
// tensor conversion. Everything else talks to ONNX Runtime through here.

import * as ort from "onnxruntime-node";
import { float16BitsToFloat32, float32ToFloat16Bits } from "../../util/float16.js";
import type { Tensor } from "../../util/tensor.js";

export type OrtSession = ort.InferenceSession;
export type OrtTensor = ort.Tensor;

/** The version of onnxruntime-node (the native runtime it loads), e.g. "1.30.0". */
export function onnxruntimeVersion(): string {
  const versions = ort.env.versions as { node?: string; common?: string } | undefined;
  return versions?.node ?? versions?.common ?? "unknown";
}

/** Session options persam-db exposes. */
export interface SessionOptions {
  /**
   * Intra-op threads for this session.
   * @default 0 (onnxruntime's choice: one per physical core)
   */
  threads?: number;
  /**
   * Graph optimisation level.
   * @default "all"
   */
  graphOptimization?: "disabled" | "basic" | "extended" | "all";
  /**
   * onnxruntime's CPU memory arena (`enableCpuMemArena`): freed activation buffers are kept for
   * reuse instead of being returned to the system. See bench/README.md "encoder" for its effect on
   * peak RSS and time.
   * @default true (onnxruntime's default)
   */
  cpuMemArena?: boolean;
  /**
   * onnxruntime's memory pattern (`enableMemPattern`): after the first run, one block is planned
   * and allocated for all activations of a run. Off by default here: with the CPU arena on, the
   * planned block comes on top of the arena's chunks from the first run, which about doubles a SAM
   * image encoder's peak RSS for no speed-up (bench/README.md, case `encoder`).
   * @default false (onnxruntime's own default is true)
   */
  memPattern?: boolean;
  /**
   * `"parallel"` runs independent graph branches at once on `interOpThreads` threads.
   * @default "sequential"
   */
  executionMode?: "sequential" | "parallel";
  /**
   * Inter-op threads (only used with `executionMode: "parallel"`).
   * @default 1
   */
  interOpThreads?: number;
  /**
   * Whether idle intra-op threads spin (busy-wait) for the next piece of work
   * (`session.intra_op.allow_spinning`). Spinning lowers latency on an idle machine and burns CPU
   * that other processes could use on a busy one.
   * @default true (onnxruntime's default)
   */
  allowSpinning?: boolean;
  /**
   * Whether onnxruntime pre-packs constant weights into its GEMM kernels' layout at load
   * (`session.disable_prepacking` = "1" when false). The packed copies come on top of the weights
   * as loaded, so without them a ViT-B-size encoder needs noticeably less memory, after load and
   * at its peak, for the same encode CPU time; for a SlimSAM-77-size encoder it makes no difference
   * (bench/README.md, case `encoder`). Not the default, for two reasons: the unpacked GEMM rounds
   * differently (most values of an embedding differ in the last bits, though each setting alone is
   * deterministic), and without it RSS creeps up with every encode where with it it stays flat.
   * @default true (onnxruntime's default)
   */
  prepackWeights?: boolean;
  /**
   * onnxruntime's profiler (`enableProfiling`): every operator's run is timed and written, as a
   * Chrome-trace JSON file named with this prefix, when the session's profiling ends (see
   * SamEncoder.endProfiling). For the benchmarks; it slows every run down.
   * @default off
   */
  profileFilePrefix?: string;
}

/** What a session creation does besides opening the session. */
export interface CreateSessionExtras {
  /**
   * Write onnxruntime's optimised graph here (`optimizedModelFilePath`), to be opened later with
   * `graphOptimization: "disabled"`. At level "all" the graph holds layout choices for this CPU;
   * onnxruntime's warning that says so is not shown (the caller keys the file by the CPU).
   */
  readonly saveOptimizedTo?: string | undefined;
}

/** Create a CPU session from a model file path or the bytes of a model. */
export async function createSession(
  model: string | Uint8Array,
  options: SessionOptions = {},
  extras: CreateSessionExtras = {},
): Promise<OrtSession> {
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: ["cpu"],
    graphOptimizationLevel: options.graphOptimization ?? "all",
    intraOpNumThreads: options.threads ?? 0,
    interOpNumThreads: options.interOpThreads ?? 1,
    executionMode: options.executionMode ?? "sequential",
  };
  // Apart from the memory pattern, only what the caller sets is passed: onnxruntime's defaults stay.
  if (options.cpuMemArena !== undefined) sessionOptions.enableCpuMemArena = options.cpuMemArena;
  sessionOptions.enableMemPattern = options.memPattern ?? false;
  const session: Record<string, unknown> = {};
  if (options.allowSpinning !== undefined) {
    session.intra_op = { allow_spinning: options.allowSpinning ? "1" : "0" };
  }
  if (options.prepackWeights === false) session.disable_prepacking = "1";
  if (options.profileFilePrefix !== undefined) {
    sessionOptions.enableProfiling = true;
    sessionOptions.profileFilePrefix = options.profileFilePrefix;
  }
  if (Object.keys(session).length > 0) sessionOptions.extra = { session };
  if (extras.saveOptimizedTo !== undefined) {
    sessionOptions.optimizedModelFilePath = extras.saveOptimizedTo;
    sessionOptions.logSeverityLevel = 3;
  }
  if (typeof model === "string") return ort.InferenceSession.create(model, sessionOptions);
  return ort.InferenceSession.create(model, sessionOptions);
}

/** A float32 onnxruntime tensor viewing our tensor's data (no copy). */
export function toOrtFloat32(t: Tensor): OrtTensor {
  return new ort.Tensor("float32", t.data, [...t.dims]);
}

/** A float32 onnxruntime tensor from raw data and dims. */
export function ortFloat32(data: Float32Array, dims: readonly number[]): OrtTensor {
  return new ort.Tensor("float32", data, [...dims]);
}

/** A float16 onnxruntime tensor from float32 data (for fp16 encoder inputs). */
export function ortFloat16(data: Float32Array, dims: readonly number[]): OrtTensor {
  return new ort.Tensor("float16", float32ToFloat16Bits(data), [...dims]);
}

/** Read an output tensor as float32 (float16 outputs are widened). */
export function fromOrt(t: OrtTensor): Tensor {
  if (t.type === "float32") return { data: t.data as Float32Array, dims: [...t.dims] };
  if (t.type === "float16") return { data: float16BitsToFloat32(t.data as Uint16Array), dims: [...t.dims] };
  throw new Error(`Expected a float32 or float16 output but received ${t.type}`);
}

/** Element types of a session's inputs or outputs, by name (from the session metadata). */
export function ioTypes(
  session: OrtSession,
  which: "inputs" | "outputs",
): Map<string, { type: string; dims: readonly (number | string)[] }> {
  const meta = which === "inputs" ? session.inputMetadata : session.outputMetadata;
  const out = new Map<string, { type: string; dims: readonly (number | string)[] }>();
  for (const m of meta) {
    if (m.isTensor) out.set(m.name, { type: m.type, dims: m.shape });
    else out.set(m.name, { type: "non-tensor", dims: [] });
  }
  return out;
}
