// Encoder file variants built from a float32 ONNX model, the way the Hub's "fp16" and "_quantized"
// image encoders are made, so their speed and output drift can be measured on the benchmark encoder
// (vit-encoder.ts) without downloading them:
//   - fp16-weights: float weights stored as float16, each widened by a Cast before use (compute and
//     I/O stay float32; only the file shrinks),
//   - fp16: the whole graph in float16, float16 input and output,
//   - dynamic int8: MatMul (and optionally Conv) weights quantized to 8 bits with a scale and zero
//     point, activations quantized at run time — what onnxruntime's `quantize_dynamic` emits (the
//     Transformers.js `*_quantized.onnx` files). Written from the ONNX operator definitions, not
//     from onnxruntime's Python quantizer.
// Every variant takes a model as read by proto-reader.ts and returns serialised ModelProto bytes.

import {
  type AttributeProtoData,
  DataType,
  encodeModel,
  float32Bytes,
  int64Bytes,
  type NodeProtoData,
  ProtoWriter,
  type TensorProtoData,
  type ValueInfoProtoData,
} from "../../src/segment/onnx/proto.js";
import type { ReadAttribute, ReadModel, ReadNode, ReadTensor } from "../../src/segment/onnx/proto-reader.js";
import { startInference } from "../../src/segment/onnx/shape-inference.js";
import { float32ToFloat16Bits } from "../../src/util/float16.js";

// `TensorProto.DataType` codes beyond proto.ts's `DataType` (which lists only what graph-builder
// emits); the writer stores the code as given, so widening the type here is safe.
const FLOAT = DataType.FLOAT;
const UINT8 = 2 as DataType;
const INT8 = 3 as DataType;
const FLOAT16 = 10 as DataType;

/** The variants {@link encoderVariant} builds, by name (also the bench case's names). */
export const ENCODER_VARIANTS = {
  "fp16-weights": "weights stored as float16, Cast to float32 before use; float32 compute and I/O",
  fp16: "whole graph in float16 (weights, activations, input and output)",
  "q8-u8": "dynamic int8: uint8 weights per tensor, MatMul + Conv (quantize_dynamic, QUInt8)",
  "q8-s8": "dynamic int8: int8 weights per tensor, MatMul + Conv (quantize_dynamic, QInt8 default)",
  "q8-s8-matmul": "as q8-s8 with Conv left float32 (op_types_to_quantize = MatMul)",
  "q8-s8-channel": "as q8-s8-matmul with one scale per MatMul output column (per_channel)",
  "q8-u8-contrib": "as q8-u8, MatMuls written as com.microsoft DynamicQuantizeMatMul",
} as const;
export type EncoderVariantName = keyof typeof ENCODER_VARIANTS;

/**
 * Build the named variant of a float32 model.
 * @throws Error when the model has external data or node attributes the writer cannot re-encode.
 */
export function encoderVariant(model: ReadModel, name: EncoderVariantName): Uint8Array {
  switch (name) {
    case "fp16-weights":
      return fp16WeightsVariant(model);
    case "fp16":
      return fp16Variant(model);
    case "q8-u8":
      return dynamicQuantVariant(model, { weightType: "uint8", conv: true });
    case "q8-s8":
      return dynamicQuantVariant(model, { weightType: "int8", conv: true });
    case "q8-s8-matmul":
      return dynamicQuantVariant(model, { weightType: "int8" });
    case "q8-s8-channel":
      return dynamicQuantVariant(model, { weightType: "int8", perChannel: true });
    case "q8-u8-contrib":
      return dynamicQuantVariant(model, { weightType: "uint8", conv: true, form: "contrib" });
  }
}

// ---------------------------------------------------------------------------------------------
// Read model → writable graph

/** A mutable copy of a read graph's structure (initializer data are views, not copies). */
interface Graph {
  name: string;
  nodes: NodeProtoData[];
  initializers: Map<string, TensorProtoData>;
  inputs: ValueInfoProtoData[];
  outputs: ValueInfoProtoData[];
  /** Every name in use (values, initializers, nodes), for {@link fresh}. */
  used: Set<string>;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Inline bytes of a read tensor (raw_data, or the typed `*_data` fields re-encoded). */
function tensorBytes(t: ReadTensor): Uint8Array {
  if (t.external) throw new Error(`Expected inline tensor data but ${t.name} is stored externally`);
  if (t.rawData) return t.rawData;
  const v = t.values ?? [];
  const n = v.length;
  switch (t.dataType) {
    case 1:
      return float32Bytes(v);
    case 7:
      return int64Bytes(v);
    case 6: {
      const out = new Uint8Array(n * 4);
      const view = new DataView(out.buffer);
      for (let i = 0; i < n; i++) view.setInt32(i * 4, v[i]!, true);
      return out;
    }
    default:
      throw new Error(`Expected raw data for tensor ${t.name} of element type ${t.dataType}`);
  }
}

function toTensor(t: ReadTensor): TensorProtoData {
  return { name: t.name, dataType: t.dataType as DataType, dims: t.dims, rawData: tensorBytes(t) };
}

/** A float32 tensor's values (a copy, so the result is aligned and independent of the model). */
function floatValues(t: TensorProtoData): Float32Array {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (LITTLE_ENDIAN_HOST) {
    // Copy through a fresh array: a Node Buffer's `slice` is a view of its whole pool, not a copy.
    const copy = new Uint8Array(n * 4);
    copy.set(t.rawData.subarray(0, n * 4));
    return new Float32Array(copy.buffer);
  }
  const out = new Float32Array(n);
  const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function toAttribute(a: ReadAttribute): AttributeProtoData {
  // AttributeProto.AttributeType: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS.
  switch (a.type) {
    case 1:
      return { name: a.name, kind: "float", value: a.f ?? 0 };
    case 2:
      return { name: a.name, kind: "int", value: a.i ?? 0 };
    case 3:
      return { name: a.name, kind: "string", value: a.s ?? "" };
    case 4:
      if (!a.t) throw new Error(`Expected a tensor in attribute ${a.name}`);
      return { name: a.name, kind: "tensor", value: toTensor(a.t) };
    case 6:
      return { name: a.name, kind: "floats", value: a.floats };
    case 7:
      return { name: a.name, kind: "ints", value: a.ints };
    default:
      throw new Error(
        `Expected a float, int, string, tensor, floats or ints attribute but ${a.name} is type ${a.type}`,
      );
  }
}

function toNode(n: ReadNode): NodeProtoData {
  return {
    opType: n.opType,
    inputs: n.inputs,
    outputs: n.outputs,
    name: n.name,
    ...(n.domain ? { domain: n.domain } : {}),
    attributes: [...n.attributes.values()].map(toAttribute),
  };
}

function toGraph(model: ReadModel): Graph {
  const g = model.graph;
  const used = new Set<string>();
  const nodes = g.nodes.map(toNode);
  for (const n of nodes) {
    for (const v of [...n.inputs, ...n.outputs]) used.add(v);
    if (n.name) used.add(n.name);
  }
  const initializers = new Map<string, TensorProtoData>();
  for (const [name, t] of g.initializers) {
    initializers.set(name, toTensor(t));
    used.add(name);
  }
  const valueInfo = (v: {
    name: string;
    elemType: number;
    dims: readonly (number | string)[] | undefined;
  }) => {
    used.add(v.name);
    return { name: v.name, elemType: v.elemType as DataType, dims: v.dims ?? [] };
  };
  return {
    name: g.name,
    nodes,
    initializers,
    inputs: g.inputs.map(valueInfo),
    outputs: g.outputs.map(valueInfo),
    used,
  };
}

/** A name derived from `base` that the graph does not use yet (and is now reserved). */
function fresh(g: Graph, base: string): string {
  let name = base;
  for (let i = 1; g.used.has(name); i++) name = `${base}_${i}`;
  g.used.add(name);
  return name;
}

/**
 * Serialise the graph with the model's versions. Extra operator sets (com.microsoft) are appended
 * as further `opset_import` fields: the field is repeated, so appended occurrences add entries.
 */
function finish(
  model: ReadModel,
  g: Graph,
  extraOpsets: ReadonlyMap<string, number> = new Map(),
): Uint8Array {
  const bytes = encodeModel({
    graph: {
      name: g.name,
      nodes: g.nodes,
      initializers: [...g.initializers.values()],
      inputs: g.inputs,
      outputs: g.outputs,
    },
    irVersion: model.irVersion || 8,
    opsetVersion: model.opsets.get("") ?? 17,
    producerName: model.producerName,
  });
  const opsets = new Map(extraOpsets);
  for (const [domain, version] of model.opsets)
    if (domain !== "" && !opsets.has(domain)) opsets.set(domain, version);
  if (opsets.size === 0) return bytes;
  const tail = new ProtoWriter();
  for (const [domain, version] of opsets) {
    const o = new ProtoWriter();
    o.string(1, domain);
    o.int(2, version);
    tail.message(8, o); // ModelProto.opset_import
  }
  const extra = tail.finish();
  const out = new Uint8Array(bytes.length + extra.length);
  out.set(bytes);
  out.set(extra, bytes.length);
  return out;
}

function elementCount(t: TensorProtoData): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

function halfTensor(name: string, t: TensorProtoData): TensorProtoData {
  const bits = float32ToFloat16Bits(floatValues(t));
  const rawData = LITTLE_ENDIAN_HOST ? new Uint8Array(bits.buffer) : littleEndian16(bits);
  return { name, dataType: FLOAT16, dims: t.dims, rawData };
}

function littleEndian16(bits: Uint16Array): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < bits.length; i++) view.setUint16(i * 2, bits[i]!, true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// fp16

/**
 * Float weights stored as float16, each followed by `Cast(to=float)` under the weight's original
 * name, so the rest of the graph is untouched and computes in float32 (the "fp16" files of many
 * Hub repos that must run on CPU). Scalars (one element) stay float32: they weigh nothing and keep
 * constants such as LayerNorm's epsilon exact. Expect float32 speed: onnxruntime's constant folding
 * evaluates a Cast of an initializer once when the session is created, so only the file (and the
 * load) is halved.
 */
export function fp16WeightsVariant(model: ReadModel): Uint8Array {
  const g = toGraph(model);
  const casts: NodeProtoData[] = [];
  for (const [name, t] of [...g.initializers]) {
    if (t.dataType !== FLOAT || elementCount(t) <= 1) continue;
    const half = fresh(g, `${name}_fp16`);
    g.initializers.delete(name);
    g.initializers.set(half, halfTensor(half, t));
    casts.push({
      opType: "Cast",
      name: fresh(g, `${name}_cast`),
      inputs: [half],
      outputs: [name],
      attributes: [{ name: "to", kind: "int", value: FLOAT }],
    });
  }
  g.nodes = [...casts, ...g.nodes];
  return finish(model, g);
}

/** Options of {@link fp16Variant}. */
export interface Fp16Options {
  /**
   * Keep the graph's float inputs and outputs float32, with a Cast to float16 after each input and
   * a Cast to float32 before each output (onnxconverter-common's `keep_io_types`, which the
   * Transformers.js fp16 conversion uses). @default false
   */
  readonly keepIoTypes?: boolean;
  /**
   * Ops left in float32, between a Cast to float32 of each float input and a Cast back to float16
   * of each float output (onnxconverter-common's `op_block_list`: ops onnxruntime lacks float16
   * kernels for). @default none
   */
  readonly opBlockList?: readonly string[];
}

/**
 * The ops of onnxconverter-common's default block list (also Transformers.js's float16 conversion)
 * that an image encoder can contain.
 */
export const FP16_OP_BLOCK_LIST = [
  "CumSum",
  "Min",
  "Max",
  "Resize",
  "Upsample",
  "TopK",
  "RoiAlign",
  "NonMaxSuppression",
] as const;

/**
 * The whole graph in float16: every float initializer (scalars included, since an op's inputs must
 * share one type), float `Constant` and `ConstantOfShape` values, `Cast(to=float)` targets and the
 * graph's float inputs and outputs (unless `keepIoTypes`) become float16. Attributes stay float
 * (ONNX defines them so, e.g. LayerNorm's epsilon). Whether a session can be created depends on the
 * execution provider having float16 kernels for every op of the graph (onnxruntime's CPU provider
 * lacks several; it does not insert casts).
 */
export function fp16Variant(model: ReadModel, options: Fp16Options = {}): Uint8Array {
  const g = toGraph(model);
  for (const [name, t] of g.initializers)
    if (t.dataType === FLOAT) g.initializers.set(name, halfTensor(name, t));
  const cast = (input: string, output: string, to: DataType): NodeProtoData => ({
    opType: "Cast",
    name: fresh(g, `${output}_cast`),
    inputs: [input],
    outputs: [output],
    attributes: [{ name: "to", kind: "int", value: to }],
  });
  const blocked = new Set(options.opBlockList ?? []);
  // Element types of the float32 graph's values, to find a blocked node's float inputs and outputs.
  const types = startInference(model);
  if (blocked.size > 0) for (const n of model.graph.nodes) types.infer(n);
  g.nodes = g.nodes.map((n) => {
    if (blocked.has(n.opType) && (n.domain ?? "") === "") return n;
    if ((n.opType === "Constant" || n.opType === "ConstantOfShape") && (n.domain ?? "") === "") {
      return {
        ...n,
        attributes: (n.attributes ?? []).map((a) =>
          a.kind === "tensor" && a.value.dataType === FLOAT
            ? { ...a, value: halfTensor(a.value.name, a.value) }
            : a,
        ),
      };
    }
    if (n.opType === "Cast") {
      return {
        ...n,
        attributes: (n.attributes ?? []).map((a) =>
          a.name === "to" && a.kind === "int" && Number(a.value) === FLOAT ? { ...a, value: FLOAT16 } : a,
        ),
      };
    }
    return n;
  });
  g.nodes = g.nodes.flatMap((n) => {
    if (!blocked.has(n.opType) || (n.domain ?? "") !== "") return [n];
    const isFloat = (v: string) => v !== "" && types.type(v) === FLOAT;
    const before: NodeProtoData[] = [];
    const after: NodeProtoData[] = [];
    const inputs = n.inputs.map((v) => {
      if (!isFloat(v)) return v;
      const wide = fresh(g, `${v}_fp32`);
      before.push(cast(v, wide, FLOAT));
      return wide;
    });
    const outputs = n.outputs.map((v) => {
      if (!isFloat(v)) return v;
      const wide = fresh(g, `${v}_fp32`);
      after.push(cast(wide, v, FLOAT16));
      return wide;
    });
    return [...before, { ...n, inputs, outputs }, ...after];
  });
  if (!options.keepIoTypes) {
    const half = (v: ValueInfoProtoData): ValueInfoProtoData =>
      v.elemType === FLOAT ? { ...v, elemType: FLOAT16 } : v;
    g.inputs = g.inputs.map(half);
    g.outputs = g.outputs.map(half);
    return finish(model, g);
  }
  const renamed = new Map<string, string>();
  const first: NodeProtoData[] = [];
  for (const v of g.inputs) {
    if (v.elemType !== FLOAT || g.initializers.has(v.name)) continue;
    const inner = fresh(g, `${v.name}_fp16`);
    renamed.set(v.name, inner);
    first.push(cast(v.name, inner, FLOAT16));
  }
  const last: NodeProtoData[] = [];
  const produced = new Set(g.nodes.flatMap((n) => n.outputs));
  for (const v of g.outputs) {
    if (v.elemType !== FLOAT || !produced.has(v.name)) continue;
    const inner = fresh(g, `${v.name}_fp16`);
    renamed.set(v.name, inner);
    last.push(cast(inner, v.name, FLOAT));
  }
  const rename = (name: string): string => renamed.get(name) ?? name;
  g.nodes = [
    ...first,
    ...g.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) })),
    ...last,
  ];
  return finish(model, g);
}

// ---------------------------------------------------------------------------------------------
// Dynamic int8 quantization

/** Options of {@link dynamicQuantVariant}. */
export interface DynamicQuantOptions {
  /**
   * Weight element type. `uint8`: asymmetric, zero point in [0, 255] (quantize_dynamic's QUInt8,
   * most Transformers.js `_quantized` files); `int8`: symmetric in [−127, 127], zero point 0 (QInt8,
   * quantize_dynamic's default).
   */
  readonly weightType: "uint8" | "int8";
  /** One scale (and zero point) per MatMul output column instead of per tensor. @default false */
  readonly perChannel?: boolean;
  /**
   * 7-bit weights (half the range), which avoids the int16 overflow of u8×s8 dot products on CPUs
   * without VNNI. @default false
   */
  readonly reduceRange?: boolean;
  /**
   * Also quantize Conv weights to ConvInteger, as quantize_dynamic does by default. Always per
   * tensor: onnxruntime's CPU ConvInteger rejects a per-channel weight zero point ("Non per-tensor
   * quantization is not supported now", 1.30). Older onnxruntime releases also lacked int8 weights
   * for ConvInteger (1.30 has them). @default false
   */
  readonly conv?: boolean;
  /**
   * `onnx`: DynamicQuantizeLinear → MatMulInteger → Cast → Mul by `a_scale · w_scale` (standard ops,
   * the form quantize_dynamic writes; onnxruntime fuses it when the session is created).
   * `contrib`: one com.microsoft DynamicQuantizeMatMul per MatMul (Conv keeps the standard form).
   * @default "onnx"
   */
  readonly form?: "onnx" | "contrib";
  /** Weights with fewer elements stay float32. @default 16 */
  readonly minElements?: number;
}

/** A quantized weight: values and one or per-channel scale / zero point. */
interface QuantizedWeight {
  readonly data: Uint8Array;
  readonly scale: Float32Array;
  readonly zeroPoint: Uint8Array;
}

/** Round half to even (numpy's `rint`, which the quantization formulas assume). */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantize `w` along `channels` groups (`channelOf(i)` gives element i's group). uint8: the range
 * [min(0, lo), max(0, hi)] maps linearly onto [0, qmax] (zero exactly representable, so zero padding
 * stays exact); int8: symmetric, scale = max|w| / qmax, zero point 0. `q = clamp(rint(w / s) + z)`.
 */
function quantize(
  w: Float32Array,
  channels: number,
  channelOf: (i: number) => number,
  type: "uint8" | "int8",
  reduceRange: boolean,
): QuantizedWeight {
  const lo = new Float64Array(channels);
  const hi = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = channelOf(i);
    const v = w[i]!;
    if (v < lo[c]!) lo[c] = v;
    if (v > hi[c]!) hi[c] = v;
  }
  const scale = new Float32Array(channels);
  const zeroPoint = new Uint8Array(channels);
  const zero = new Float64Array(channels);
  const signed = type === "int8";
  const qmin = signed ? (reduceRange ? -63 : -127) : 0;
  const qmax = signed ? (reduceRange ? 63 : 127) : reduceRange ? 127 : 255;
  for (let c = 0; c < channels; c++) {
    if (signed) {
      const m = Math.max(-lo[c]!, hi[c]!);
      scale[c] = m > 0 ? m / qmax : 1;
      zero[c] = 0;
    } else {
      const range = hi[c]! - lo[c]!;
      scale[c] = range > 0 ? range / qmax : 1;
      zero[c] = Math.min(qmax, Math.max(0, rint(-lo[c]! / scale[c]!)));
      zeroPoint[c] = zero[c]!;
    }
  }
  const data = new Uint8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const c = channelOf(i);
    const q = Math.min(qmax, Math.max(qmin, rint(w[i]! / scale[c]!) + zero[c]!));
    data[i] = q & 0xff; // int8 stored as its two's-complement byte
  }
  return { data, scale, zeroPoint };
}

/**
 * MatMul (and optionally Conv) with a float32 initializer weight computed in 8 bits: the weight is
 * quantized once here, the activation per run by DynamicQuantizeLinear (uint8, per tensor, range
 * from the tensor's own min/max); the int32 product is rescaled by `a_scale · w_scale`. MatMuls of
 * two activations (attention's q·kᵀ and attn·v), LayerNorm, Softmax, GELU and every other op stay
 * float32, as quantize_dynamic leaves them with its MatMulConstBOnly option.
 * Not done (quantize_dynamic does it, the effect on this encoder is tiny): Gather of a constant
 * table (the relative-position tables) read from 8-bit data.
 */
export function dynamicQuantVariant(model: ReadModel, options: DynamicQuantOptions): Uint8Array {
  const g = toGraph(model);
  const type = options.weightType;
  const form = options.form ?? "onnx";
  const minElements = options.minElements ?? 16;
  const reduceRange = options.reduceRange ?? false;
  const perChannel = options.perChannel ?? false;
  const wType = type === "uint8" ? UINT8 : INT8;
  /** DynamicQuantizeLinear outputs per activation name (one quantization per tensor). */
  const quantizedActivations = new Map<string, { q: string; scale: string; zero: string }>();
  const out: NodeProtoData[] = [];
  let contrib = false;

  const addInit = (
    base: string,
    dataType: DataType,
    dims: readonly number[],
    rawData: Uint8Array,
  ): string => {
    const name = fresh(g, base);
    g.initializers.set(name, { name, dataType, dims, rawData });
    return name;
  };
  const node = (
    opType: string,
    inputs: string[],
    outputs: string[],
    attrs: AttributeProtoData[] = [],
    domain?: string,
  ) =>
    out.push({
      opType,
      name: fresh(g, `${outputs[0]}_node`),
      inputs,
      outputs,
      attributes: attrs,
      ...(domain ? { domain } : {}),
    });
  const activation = (a: string) => {
    let q = quantizedActivations.get(a);
    if (!q) {
      q = { q: fresh(g, `${a}_quantized`), scale: fresh(g, `${a}_scale`), zero: fresh(g, `${a}_zero_point`) };
      node("DynamicQuantizeLinear", [a], [q.q, q.scale, q.zero]);
      quantizedActivations.set(a, q);
    }
    return q;
  };
  /** int32 product → float: Cast, then Mul by a_scale · w_scale (w_scale shaped for broadcasting). */
  const rescale = (int32: string, aScale: string, wScale: string, output: string) => {
    const f = fresh(g, `${output}_float`);
    node("Cast", [int32], [f], [{ name: "to", kind: "int", value: FLOAT }]);
    const s = fresh(g, `${output}_scale`);
    node("Mul", [aScale, wScale], [s]);
    node("Mul", [f, s], [output]);
  };

  for (const n of g.nodes) {
    const isMatMul = n.opType === "MatMul" && (n.domain ?? "") === "";
    const isConv = options.conv === true && n.opType === "Conv" && (n.domain ?? "") === "";
    const w = isMatMul || isConv ? g.initializers.get(n.inputs[1] ?? "") : undefined;
    const ok =
      w !== undefined &&
      w.dataType === FLOAT &&
      elementCount(w) >= minElements &&
      (isMatMul
        ? w.dims.length === 2
        : w.dims.length >= 3 &&
          (n.attributes ?? []).every((a) => a.name !== "group" || Number(a.value) === 1));
    if (!ok || !w) {
      out.push(n);
      continue;
    }
    const values = floatValues(w);
    const a = n.inputs[0]!;
    const y = n.outputs[0]!;
    if (isMatMul) {
      // W [K, N]: per channel = per output column n = i mod N.
      const cols = w.dims[1]!;
      const qw = perChannel
        ? quantize(values, cols, (i) => i % cols, type, reduceRange)
        : quantize(values, 1, () => 0, type, reduceRange);
      const c = qw.scale.length;
      const qName = addInit(`${w.name}_quantized`, wType, w.dims, qw.data);
      const sName = addInit(`${w.name}_scale`, FLOAT, perChannel ? [c] : [], float32Bytes(qw.scale));
      const zName = addInit(`${w.name}_zero_point`, wType, perChannel ? [c] : [], qw.zeroPoint);
      if (form === "contrib") {
        node("DynamicQuantizeMatMul", [a, qName, sName, zName], [y], [], "com.microsoft");
        contrib = true;
      } else {
        const aq = activation(a);
        const prod = fresh(g, `${y}_int32`);
        node("MatMulInteger", [aq.q, qName, aq.zero, zName], [prod]);
        rescale(prod, aq.scale, sName, y);
      }
    } else {
      // W [M, C/group, kH, kW], one scale for all (see DynamicQuantOptions.conv).
      const qw = quantize(values, 1, () => 0, type, reduceRange);
      const spatial = w.dims.length - 2;
      const qName = addInit(`${w.name}_quantized`, wType, w.dims, qw.data);
      const zName = addInit(`${w.name}_zero_point`, wType, [], qw.zeroPoint);
      const sName = addInit(`${w.name}_scale`, FLOAT, [], float32Bytes(qw.scale));
      const aq = activation(a);
      const prod = fresh(g, `${y}_int32`);
      const conv: NodeProtoData = {
        opType: "ConvInteger",
        name: fresh(g, `${y}_node`),
        inputs: [aq.q, qName, aq.zero, zName],
        outputs: [prod],
        attributes: n.attributes ?? [],
      };
      out.push(conv);
      const bias = n.inputs[2] ? g.initializers.get(n.inputs[2]) : undefined;
      if (n.inputs[2] && !bias)
        throw new Error(`Expected the bias of Conv ${n.name ?? y} to be an initializer`);
      if (bias) {
        const scaled = fresh(g, `${y}_unbiased`);
        rescale(prod, aq.scale, sName, scaled);
        const b = addInit(
          `${bias.name}_broadcast`,
          FLOAT,
          [elementCount(bias), ...new Array<number>(spatial).fill(1)],
          bias.rawData,
        );
        node("Add", [scaled, b], [y]);
      } else {
        rescale(prod, aq.scale, sName, y);
      }
    }
  }
  g.nodes = out;
  // Drop float weights nothing reads any more.
  const read = new Set(g.nodes.flatMap((n) => n.inputs));
  for (const o of g.outputs) read.add(o.name);
  for (const name of [...g.initializers.keys()]) if (!read.has(name)) g.initializers.delete(name);
  return finish(model, g, contrib ? new Map([["com.microsoft", 1]]) : new Map());
}

// Exported for tests: the element-type codes used above.
export const ELEMENT_TYPES = { FLOAT, UINT8, INT8, FLOAT16 } as const;

/** How far a variant's output is from the float32 model's on the same input. */
export interface OutputDifference {
  readonly maxAbs: number;
  readonly meanAbs: number;
  /** Cosine similarity of the two outputs as flat vectors. */
  readonly cosine: number;
  /** Root mean square of the reference, for scale. */
  readonly referenceRms: number;
}

/**
 * Compare a variant's output with the reference (float32 model) output, element by element.
 * @throws Error when the lengths differ.
 */
export function outputDifference(reference: Float32Array, variant: Float32Array): OutputDifference {
  if (reference.length !== variant.length) {
    throw new Error(
      `Expected outputs of equal length but received ${reference.length} and ${variant.length}`,
    );
  }
  let maxAbs = 0;
  let sumAbs = 0;
  let dot = 0;
  let rr = 0;
  let vv = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = reference[i]!;
    const v = variant[i]!;
    const d = Math.abs(v - r);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = d;
    sumAbs += d;
    dot += r * v;
    rr += r * r;
    vv += v * v;
  }
  const n = Math.max(reference.length, 1);
  return {
    maxAbs,
    meanAbs: sumAbs / n,
    cosine: rr > 0 && vv > 0 ? dot / Math.sqrt(rr * vv) : Number.NaN,
    referenceRms: Math.sqrt(rr / n),
  };
}
