// Count the floating-point operations of an ONNX graph from the graph itself (static shapes), and
// estimate this CPU's theoretical fp32 peak, so a measured encoder time can be read as FLOP/s.

import { readFileSync } from "node:fs";
import * as os from "node:os";
import { type ReadModel, type ReadNode, readModel } from "../src/segment/onnx/proto-reader.js";
import {
  attrInt,
  attrInts,
  einsum,
  type Inference,
  numel,
  type ShapeInferenceOptions,
  startInference,
} from "../src/segment/onnx/shape-inference.js";

/*
 * Counting rules (a convention; tools differ, so the rule is stated with every figure):
 * - A multiply-add is 2 FLOPs. MatMul [..,M,K]·[..,K,N] = 2·M·K·N per batch element; Gemm adds M·N
 *   for a bias C; Conv = 2·(output elements)·(C_in/group·k_h·k_w) + output elements when biased;
 *   ConvTranspose = 2·(input elements)·(C_out/group·k_h·k_w) + output elements when biased.
 *   MatMulInteger/ConvInteger count the same (integer MACs, reported under their own op type).
 *   Einsum of k ≥ 2 operands = 2·(k−1)·(product of the sizes of all its labels), a contraction done
 *   as one multiply-add per label combination and operand pair; of one operand = its elements.
 * - Element-wise arithmetic (Add, Sub, Mul, Div, Pow, Sqrt, Erf, Exp, Tanh, Relu, …): 1 per output
 *   element; Erf/Exp/Tanh are one "operation" although each costs several instructions.
 * - Softmax: 5 per element (max, subtract, exp, sum, divide). LayerNormalization: 7 per element
 *   (mean, subtract, square, variance, scale by 1/σ, γ, β). BatchNormalization: 2 (fused scale+shift).
 *   Reduce*: 1 per input element. Pooling: 1 per window element per output.
 * - Data movement (Reshape, Transpose, Pad, Slice, Concat, Gather, Split, Expand, Cast, Shape, …): 0.
 * `mac` in the report sums the MAC-based ops only: those are what a CPU's FMA peak bounds.
 */

/** FLOPs of one op type. */
export interface OpFlops {
  /** Nodes of this type. */
  count: number;
  flops: number;
}

/** What {@link countFlops} returns. */
export interface FlopReport {
  /** All counted FLOPs. */
  readonly total: number;
  /** FLOPs of MatMul, Gemm, Conv, ConvTranspose (and their integer forms): multiply-adds × 2. */
  readonly mac: number;
  /** Per op type, in descending order of FLOPs. */
  readonly byOp: Readonly<Record<string, OpFlops>>;
  /** Nodes in the graph. */
  readonly nodes: number;
  /** Nodes whose output shapes could not be inferred statically (`opType name`); not counted. */
  readonly unknown: readonly string[];
}

/** Options of {@link countFlops}. */
/** Options of {@link countFlops}: those of shape inference. */
export type CountFlopsOptions = ShapeInferenceOptions;

const MAC_OPS = new Set([
  "MatMul",
  "Gemm",
  "Conv",
  "ConvTranspose",
  "MatMulInteger",
  "ConvInteger",
  "Einsum",
]);
const ZERO_COST = new Set([
  "Identity",
  "Reshape",
  "Transpose",
  "Pad",
  "Slice",
  "Concat",
  "Gather",
  "GatherElements",
  "Split",
  "Squeeze",
  "Unsqueeze",
  "Flatten",
  "Expand",
  "Tile",
  "Cast",
  "CastLike",
  "Shape",
  "Size",
  "Constant",
  "ConstantOfShape",
  "Range",
  "Dropout",
  "DepthToSpace",
  "SpaceToDepth",
  "QuantizeLinear",
  "DequantizeLinear",
]);
const PER_ELEMENT: Readonly<Record<string, number>> = {
  Softmax: 5,
  LogSoftmax: 6,
  LayerNormalization: 7,
  BatchNormalization: 2,
  InstanceNormalization: 7,
  GroupNormalization: 7,
  Where: 0,
  Equal: 0,
  Not: 0,
  And: 0,
  Or: 0,
  Xor: 0,
};

/** Values are tracked for small tensors only (shape arithmetic); floats above this stay unknown. */
/** FLOPs of one node, given inferred shapes (see the counting rules at the top of this file). */
function nodeFlops(n: ReadNode, inf: Inference): number {
  const op = n.opType;
  if (ZERO_COST.has(op)) return 0;
  const outShape = inf.shape(n.outputs[0]);
  if (!outShape) return 0;
  const outCount = numel(outShape);
  switch (op) {
    case "MatMul":
    case "MatMulInteger": {
      const a = inf.shape(n.inputs[0])!;
      const k = a[a.length - 1]!;
      return 2 * outCount * k;
    }
    case "Gemm": {
      const a = inf.shape(n.inputs[0])!;
      const k = attrInt(n, "transA", 0) ? a[0]! : a[1]!;
      return 2 * outCount * k + (n.inputs[2] ? outCount : 0);
    }
    case "Conv":
    case "ConvInteger": {
      const w = inf.shape(n.inputs[1])!;
      const perOut = numel(w.slice(1)); // C_in/group · k_h · k_w
      return 2 * outCount * perOut + (op === "Conv" && n.inputs[2] ? outCount : 0);
    }
    case "ConvTranspose": {
      const x = inf.shape(n.inputs[0])!;
      const w = inf.shape(n.inputs[1])!;
      const perIn = numel(w.slice(1)); // C_out/group · k_h · k_w
      return 2 * numel(x) * perIn + (n.inputs[2] ? outCount : 0);
    }
    case "MaxPool":
    case "AveragePool":
    case "LpPool": {
      const k = attrInts(n, "kernel_shape") ?? [];
      return outCount * numel(k);
    }
    case "GlobalAveragePool":
    case "GlobalMaxPool":
      return numel(inf.shape(n.inputs[0])!);
    case "Einsum": {
      const operands = n.inputs.filter((x) => x !== "");
      if (operands.length < 2) return numel(inf.shape(operands[0])!);
      const e = einsum(
        n.attributes.get("equation")?.s,
        operands.map((x) => inf.shape(x)),
      )!;
      return 2 * (operands.length - 1) * numel([...e.sizes.values()]);
    }
    default:
      break;
  }
  if (op.startsWith("Reduce") || op.startsWith("Arg")) return numel(inf.shape(n.inputs[0])!);
  const per = PER_ELEMENT[op];
  if (per !== undefined) return per * outCount;
  if (op === "Sum" || op === "Mean" || op === "Max" || op === "Min") {
    return outCount * Math.max(1, n.inputs.filter((x) => x !== "").length - 1);
  }
  return outCount;
}

/**
 * Count the FLOPs of an ONNX model with static shapes (graph inputs' symbolic dims set to
 * `symbolicDim`, 1 by default). Nodes whose shapes cannot be inferred are listed in `unknown` and
 * contribute nothing (nor do nodes depending on them).
 * @param model ONNX bytes or a model from {@link readModel}.
 */
export function countFlops(model: Uint8Array | ReadModel, options: CountFlopsOptions = {}): FlopReport {
  const m = model instanceof Uint8Array ? readModel(model) : model;
  const g = m.graph;
  const inf = startInference(m, options);
  const byOp: Record<string, OpFlops> = {};
  const unknown: string[] = [];
  let total = 0;
  let mac = 0;
  for (const n of g.nodes) {
    if (!inf.infer(n)) {
      unknown.push(`${n.opType} ${n.name}`);
      continue;
    }
    const f = nodeFlops(n, inf);
    const entry = byOp[n.opType] ?? { count: 0, flops: 0 };
    entry.count += 1;
    entry.flops += f;
    byOp[n.opType] = entry;
    total += f;
    if (MAC_OPS.has(n.opType)) mac += f;
  }
  const sorted = Object.fromEntries(Object.entries(byOp).sort((a, b) => b[1].flops - a[1].flops));
  return { total, mac, byOp: sorted, nodes: g.nodes.length, unknown };
}

/** This CPU's theoretical fp32 peak, with the assumptions that produced it. */
export interface CpuPeak {
  readonly model: string;
  readonly vendor: string;
  /** `cpu family` from /proc/cpuinfo (AMD: 25 = Zen 3/4, 26 = Zen 5). */
  readonly family: number;
  /** Clock used, MHz: /proc/cpuinfo's `cpu MHz` of the first CPU (often the base clock on VMs). */
  readonly mhz: number;
  /** Cores the peak is for. */
  readonly cores: number;
  /** fp32 FLOPs per cycle per core assumed. */
  readonly flopsPerCycle: number;
  /** cores × MHz × 10^6 × flopsPerCycle. */
  readonly peakFlops: number;
  /** The SIMD level the figure assumes: "avx512", "avx2+fma", "avx", "sse" or "unknown". */
  readonly simd: string;
  /** The assumptions in words. */
  readonly assumptions: string;
}

/**
 * Theoretical fp32 peak for `cores` cores from /proc/cpuinfo (model, `cpu MHz`, flags):
 * - AVX-512F: 2 FMA units × 16 lanes × 2 = 64 FLOP/cycle/core, except AMD family 25 (Zen 4), whose
 *   AVX-512 runs on 256-bit units: 32;
 * - AVX2 + FMA: 2 FMA units × 8 lanes × 2 = 32; AVX without FMA: 8 mul + 8 add = 16; else SSE: 8.
 * Upper bounds: many Intel parts have one 512-bit FMA unit (32), turbo/boost clocks differ from
 * `cpu MHz`, and two logical CPUs that are SMT siblings share one core's FMA units.
 * @param cores default: logical CPUs available to this process.
 * @param cpuinfo text of /proc/cpuinfo (read when omitted; empty off Linux).
 */
export function cpuPeakFlops(cores = os.availableParallelism(), cpuinfo?: string): CpuPeak {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      text = "";
    }
  }
  const field = (name: string): string | undefined =>
    new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(text)?.[1]?.trim();
  const model = field("model name") ?? os.cpus()[0]?.model ?? "unknown";
  const vendor = field("vendor_id") ?? "unknown";
  const family = Number(field("cpu family") ?? 0);
  const mhz = Number(field("cpu MHz") ?? os.cpus()[0]?.speed ?? 0);
  const flags = new Set((field("flags") ?? "").split(/\s+/));
  let flopsPerCycle: number;
  let simd: string;
  let why: string;
  if (flags.has("avx512f")) {
    simd = "avx512";
    if (vendor === "AuthenticAMD" && family === 25) {
      flopsPerCycle = 32;
      why = "AVX-512 on AMD Zen 4 executes as 2×256-bit: 2 FMA × 8 lanes × 2";
    } else {
      flopsPerCycle = 64;
      why = "AVX-512: 2 FMA units × 16 fp32 lanes × 2 FLOP";
    }
  } else if (flags.has("avx2") && flags.has("fma")) {
    simd = "avx2+fma";
    flopsPerCycle = 32;
    why = "AVX2+FMA: 2 FMA units × 8 fp32 lanes × 2 FLOP";
  } else if (flags.has("avx")) {
    simd = "avx";
    flopsPerCycle = 16;
    why = "AVX without FMA: 8-lane add + 8-lane multiply per cycle";
  } else if (flags.size > 1) {
    simd = "sse";
    flopsPerCycle = 8;
    why = "SSE: 4-lane add + 4-lane multiply per cycle";
  } else {
    simd = "unknown";
    flopsPerCycle = 16;
    why = "no /proc/cpuinfo flags: 16 FLOP/cycle assumed";
  }
  const peakFlops = cores * mhz * 1e6 * flopsPerCycle;
  const assumptions =
    `${why}; ${cores} core(s) at ${mhz} MHz (/proc/cpuinfo 'cpu MHz', not the boost clock); ` +
    "upper bound: SMT siblings share FMA units and some parts have one FMA unit";
  return { model, vendor, family, mhz, cores, flopsPerCycle, peakFlops, simd, assumptions };
}
