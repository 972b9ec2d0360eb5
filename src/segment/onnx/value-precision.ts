// The precision a value of an ONNX graph is computed in: the lowest precision among the tensors,
// casts and quantized operations it depends on (what its error can be expected to be).

import type { ReadGraph, ReadModel, ReadNode } from "./proto-reader.js";

/**
 * Precision of a computed value, lowest first: `bfloat16` (every operation rounds to 8 significant
 * bits), `int8` (8-bit integer quantization of some operands, the `_quantized` exports; the rest is
 * float32), `float16`, `float32` (also for float64).
 */
export type ValuePrecision = "bfloat16" | "int8" | "float16" | "float32";

const RANK: Readonly<Record<ValuePrecision, number>> = { bfloat16: 0, int8: 1, float16: 2, float32: 3 };

/** `TensorProto.DataType` codes that lower a value's precision. */
const TYPE_PRECISION: ReadonlyMap<number, ValuePrecision> = new Map([
  [2, "int8"], // UINT8
  [3, "int8"], // INT8
  [10, "float16"],
  [16, "bfloat16"],
]);

/** Operations that compute in (or convert to) 8-bit integers, in any domain. */
const QUANTIZED_OPS = new Set([
  "QuantizeLinear",
  "DequantizeLinear",
  "DynamicQuantizeLinear",
  "MatMulInteger",
  "ConvInteger",
  "QLinearMatMul",
  "QLinearConv",
  "DynamicQuantizeMatMul",
  "MatMulIntegerToFloat",
  "DynamicQuantizeLSTM",
  "QAttention",
  "QGemm",
]);

/**
 * Operations whose output does not depend on their input's values (only on its shape): the walk
 * does not go through them, so a shape read from a float16 or quantized tensor lowers nothing.
 */
const SHAPE_OF = new Set(["Shape", "Size"]);

const lower = (a: ValuePrecision, b: ValuePrecision | undefined): ValuePrecision =>
  b !== undefined && RANK[b] < RANK[a] ? b : a;

/** What a node itself says about precision: its op, a Cast's target, the types of its constants. */
function nodePrecision(n: ReadNode): ValuePrecision {
  let p: ValuePrecision = "float32";
  if (QUANTIZED_OPS.has(n.opType)) p = "int8";
  if (n.opType === "Cast") p = lower(p, TYPE_PRECISION.get(n.attributes.get("to")?.i ?? 1));
  for (const a of n.attributes.values()) {
    // Constant / ConstantOfShape values, and whatever a subgraph (If, Loop, Scan) holds.
    if (a.t) p = lower(p, TYPE_PRECISION.get(a.t.dataType));
    for (const t of a.tensors) p = lower(p, TYPE_PRECISION.get(t.dataType));
    for (const g of [...(a.g ? [a.g] : []), ...a.graphs]) p = lower(p, graphPrecision(g));
  }
  return p;
}

/** The lowest precision anywhere in a subgraph (its values may all feed the node's outputs). */
function graphPrecision(g: ReadGraph): ValuePrecision {
  let p: ValuePrecision = "float32";
  for (const t of g.initializers.values()) p = lower(p, TYPE_PRECISION.get(t.dataType));
  for (const v of g.inputs) p = lower(p, TYPE_PRECISION.get(v.elemType));
  for (const n of g.nodes) p = lower(p, nodePrecision(n));
  return p;
}

/**
 * The precision `value` is computed in: walking back from it through every node it depends on
 * (but not through Shape or Size), the lowest of: the element types of the graph inputs and
 * initializers reached (float16, bfloat16, int8/uint8), the targets of the Casts passed, the values
 * of Constant / ConstantOfShape nodes, and `int8` for any quantized operation (QuantizeLinear,
 * DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinear*, onnxruntime's integer contrib ops).
 * A value computed in float32 from float32 tensors gives `float32`, also when a float16 tensor
 * elsewhere in the graph does not feed it.
 * @returns undefined when the graph has no value of that name.
 */
export function valuePrecision(model: ReadModel, value: string): ValuePrecision | undefined {
  const g = model.graph;
  const producer = new Map<string, ReadNode>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const inputs = new Map(g.inputs.map((v) => [v.name, v.elemType] as const));
  if (!producer.has(value) && !inputs.has(value) && !g.initializers.has(value)) return undefined;
  let p: ValuePrecision = "float32";
  const seen = new Set<string>();
  const pending = [value];
  while (pending.length > 0) {
    const v = pending.pop()!;
    if (!v || seen.has(v)) continue;
    seen.add(v);
    const n = producer.get(v);
    if (n) {
      p = lower(p, nodePrecision(n));
      if (!SHAPE_OF.has(n.opType)) pending.push(...n.inputs);
      continue;
    }
    const init = g.initializers.get(v);
    if (init) p = lower(p, TYPE_PRECISION.get(init.dataType));
    else p = lower(p, TYPE_PRECISION.get(inputs.get(v) ?? 1));
  }
  return p;
}
