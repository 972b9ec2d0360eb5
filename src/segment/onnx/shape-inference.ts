// Static shape inference over an ONNX graph: the shape (and, for small integer tensors, the values)
// of every value from the graph inputs' dims, for the attention rewrite and graph checks.

import {
  type ReadAttribute,
  type ReadModel,
  type ReadNode,
  readModel,
  tensorValues,
} from "./proto-reader.js";

/** Options of {@link inferShapes}. */
export interface ShapeInferenceOptions {
  readonly inputDims?: Readonly<Record<string, readonly number[]>>;
  /** Value of every symbolic (named) input dimension not given in `inputDims`. @default 1 */
  readonly symbolicDim?: number;
}

export type Shape = readonly number[];

const UNARY_SAME = new Set([
  "Identity",
  "Relu",
  "Sigmoid",
  "Tanh",
  "Erf",
  "Exp",
  "Log",
  "Sqrt",
  "Reciprocal",
  "Neg",
  "Abs",
  "Softplus",
  "Gelu",
  "Not",
  "Floor",
  "Ceil",
  "Round",
  "Sin",
  "Cos",
  "Clip",
  "LeakyRelu",
  "HardSigmoid",
  "HardSwish",
  "Elu",
  "Selu",
  "Sign",
  "IsNaN",
  "Dropout",
  "Softmax",
  "LogSoftmax",
  "LayerNormalization",
  "BatchNormalization",
  "InstanceNormalization",
  "GroupNormalization",
  "CumSum",
  "Trilu",
  "CastLike",
]);
const BINARY = new Set([
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Pow",
  "Max",
  "Min",
  "Sum",
  "Mean",
  "Mod",
  "Equal",
  "Less",
  "LessOrEqual",
  "Greater",
  "GreaterOrEqual",
  "And",
  "Or",
  "Xor",
  "Where",
  "PRelu",
  "BitShift",
]);
const COMPARE = new Set([
  "Equal",
  "Less",
  "LessOrEqual",
  "Greater",
  "GreaterOrEqual",
  "And",
  "Or",
  "Xor",
  "Not",
]);

/** Values are tracked for small tensors only (shape arithmetic); floats above this stay unknown. */
const MAX_TRACKED = 4096;
const INT_TYPES = new Set([2, 3, 4, 5, 6, 7, 9, 12, 13]);

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

function broadcast(shapes: readonly Shape[]): Shape | undefined {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = new Array(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const j = rank - s.length + i;
      const d = s[i]!;
      if (d === 1) continue;
      if (out[j] === 1) out[j] = d;
      else if (out[j] !== d) return undefined;
    }
  }
  return out;
}

/** Row-major broadcast index of `outIndex` (in `out`) into a tensor of shape `s`. */
function broadcastIndex(outIndex: number, out: Shape, s: Shape): number {
  let idx = 0;
  let stride = 1;
  let rem = outIndex;
  for (let j = out.length - 1; j >= 0; j--) {
    const coord = rem % out[j]!;
    rem = Math.floor(rem / out[j]!);
    const i = j - (out.length - s.length);
    if (i >= 0) {
      if (s[i]! !== 1) idx += coord * stride;
      stride *= s[i]!;
    }
  }
  return idx;
}

const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

export function attrInt(n: ReadNode, name: string, dflt: number): number {
  return n.attributes.get(name)?.i ?? dflt;
}
export function attrInts(n: ReadNode, name: string): readonly number[] | undefined {
  const a = n.attributes.get(name);
  return a ? a.ints : undefined;
}

function elemBinary(op: string, a: number, b: number, isInt: boolean): number {
  switch (op) {
    case "Add":
    case "Sum":
      return a + b;
    case "Sub":
      return a - b;
    case "Mul":
      return a * b;
    case "Div":
      return isInt ? Math.trunc(a / b) : a / b;
    case "Pow":
      return a ** b;
    case "Max":
      return Math.max(a, b);
    case "Min":
      return Math.min(a, b);
    case "Mod": // fmod = 0: the remainder has the divisor's sign (as Python's %)
      return a - b * Math.floor(a / b);
    case "FMod": // Mod with fmod = 1: the dividend's sign (as C's fmod)
      return a % b;
    case "Equal":
      return a === b ? 1 : 0;
    case "Less":
      return a < b ? 1 : 0;
    case "LessOrEqual":
      return a <= b ? 1 : 0;
    case "Greater":
      return a > b ? 1 : 0;
    case "GreaterOrEqual":
      return a >= b ? 1 : 0;
    case "And":
      return a && b ? 1 : 0;
    case "Or":
      return a || b ? 1 : 0;
    default:
      return Number.NaN;
  }
}

/** Static shape (and small-value) inference state over one graph. */
export class Inference {
  readonly shapes = new Map<string, Shape>();
  readonly values = new Map<string, number[]>();
  readonly types = new Map<string, number>();

  constructor(readonly opset: number) {}

  set(name: string, shape: Shape, type: number, values?: number[]): void {
    if (name === "") return;
    this.shapes.set(name, shape);
    this.types.set(name, type);
    if (values && values.length === numel(shape) && values.length <= MAX_TRACKED)
      this.values.set(name, values);
  }

  shape(name: string | undefined): Shape | undefined {
    return name === undefined || name === "" ? undefined : this.shapes.get(name);
  }
  val(name: string | undefined): number[] | undefined {
    return name === undefined || name === "" ? undefined : this.values.get(name);
  }
  type(name: string | undefined): number {
    return (name && this.types.get(name)) || 1;
  }

  /** Infer the outputs of `n`; returns false when they cannot be determined. */
  infer(n: ReadNode): boolean {
    const op = n.opType;
    const i0 = n.inputs[0];
    const s0 = this.shape(i0);
    const t0 = this.type(i0);
    const out = n.outputs[0] ?? "";

    if (op === "Constant") return this.constant(n);
    if (op === "Shape") {
      if (!s0) return false;
      const rank = s0.length;
      let start = normAxis(attrInt(n, "start", 0), rank);
      let end = n.attributes.has("end") ? normAxis(attrInt(n, "end", rank), rank) : rank;
      start = Math.max(0, Math.min(rank, start));
      end = Math.max(start, Math.min(rank, end));
      const v = s0.slice(start, end);
      this.set(out, [v.length], 7, [...v]);
      return true;
    }
    if (op === "Size") {
      if (!s0) return false;
      this.set(out, [], 7, [numel(s0)]);
      return true;
    }
    if (op === "DynamicQuantizeLinear") {
      if (!s0) return false;
      this.set(out, s0, 2);
      this.set(n.outputs[1] ?? "", [], 1);
      this.set(n.outputs[2] ?? "", [], 2);
      return true;
    }
    if (UNARY_SAME.has(op) || op === "QuantizeLinear" || op === "DequantizeLinear" || op === "Cast") {
      if (!s0) return false;
      let type = t0;
      if (op === "Cast") type = attrInt(n, "to", 1);
      if (op === "QuantizeLinear") type = 2;
      if (op === "DequantizeLinear") type = 1;
      if (COMPARE.has(op)) type = 9;
      let v = this.val(i0);
      if (v && op !== "Identity" && op !== "Cast") {
        const f = unaryValue(op);
        v = f ? v.map(f) : undefined;
      }
      if (v && op === "Cast" && INT_TYPES.has(type)) v = v.map(Math.trunc);
      this.set(out, s0, type, v);
      for (const extra of n.outputs.slice(1)) if (extra) this.set(extra, [], 1); // e.g. Dropout mask, LN stats
      return true;
    }
    if (BINARY.has(op)) {
      const shapes = n.inputs.filter((x) => x !== "").map((x) => this.shape(x));
      if (shapes.some((s) => !s)) return false;
      const shape = broadcast(shapes as Shape[]);
      if (!shape) return false;
      const type = COMPARE.has(op) ? 9 : op === "Where" ? this.type(n.inputs[1]) : t0;
      const valueOp = op === "Mod" && attrInt(n, "fmod", 0) === 1 ? "FMod" : op;
      let values: number[] | undefined;
      const vs = n.inputs.map((x) => this.val(x));
      if (numel(shape) <= MAX_TRACKED && vs.every((v) => v !== undefined)) {
        values = new Array(numel(shape));
        const ss = shapes as Shape[];
        for (let k = 0; k < values.length; k++) {
          const at = vs.map((v, j) => v![broadcastIndex(k, shape, ss[j]!)]!);
          if (op === "Where") values[k] = at[0] ? at[1]! : at[2]!;
          else
            values[k] = at.slice(1).reduce((a, b) => elemBinary(valueOp, a, b, INT_TYPES.has(type)), at[0]!);
          if (op === "Mean") values[k] = values[k]! / at.length;
        }
      }
      this.set(out, shape, type, values);
      return true;
    }
    switch (op) {
      case "MatMul":
      case "MatMulInteger": {
        const s1 = this.shape(n.inputs[1]);
        if (!s0 || !s1) return false;
        const shape = matmulShape(s0, s1);
        if (!shape) return false;
        this.set(out, shape, op === "MatMul" ? t0 : 6);
        return true;
      }
      case "Einsum": {
        const shapes = n.inputs.map((x) => this.shape(x));
        const e = einsum(n.attributes.get("equation")?.s, shapes);
        if (!e) return false;
        this.set(out, e.shape, t0);
        return true;
      }
      case "Gemm": {
        const s1 = this.shape(n.inputs[1]);
        if (!s0 || !s1) return false;
        const m = attrInt(n, "transA", 0) ? s0[1]! : s0[0]!;
        const nn = attrInt(n, "transB", 0) ? s1[0]! : s1[1]!;
        this.set(out, [m, nn], t0);
        return true;
      }
      case "Conv":
      case "ConvInteger":
      case "MaxPool":
      case "AveragePool":
      case "LpPool": {
        if (!s0) return false;
        const pooled = op.endsWith("Pool");
        const sw = pooled ? undefined : this.shape(n.inputs[1]);
        if (!pooled && !sw) return false;
        const spatial = s0.length - 2;
        const kernel = attrInts(n, "kernel_shape") ?? sw!.slice(2);
        const strides = attrInts(n, "strides") ?? new Array(spatial).fill(1);
        const dil = attrInts(n, "dilations") ?? new Array(spatial).fill(1);
        const pads = attrInts(n, "pads") ?? new Array(2 * spatial).fill(0);
        const autoPad = n.attributes.get("auto_pad")?.s ?? "NOTSET";
        const ceil = attrInt(n, "ceil_mode", 0) === 1;
        const dims: number[] = [s0[0]!, pooled ? s0[1]! : sw![0]!];
        for (let k = 0; k < spatial; k++) {
          const inp = s0[2 + k]!;
          const eff = (kernel[k]! - 1) * (dil[k] ?? 1) + 1;
          const st = strides[k] ?? 1;
          if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") dims.push(Math.ceil(inp / st));
          else if (autoPad === "VALID") dims.push(Math.floor((inp - eff) / st) + 1);
          else {
            const span = inp + pads[k]! + pads[k + spatial]! - eff;
            dims.push((ceil ? Math.ceil(span / st) : Math.floor(span / st)) + 1);
          }
        }
        this.set(out, dims, op === "ConvInteger" ? 6 : t0);
        if (op === "MaxPool" && n.outputs[1]) this.set(n.outputs[1], dims, 7);
        return true;
      }
      case "GlobalAveragePool":
      case "GlobalMaxPool": {
        if (!s0) return false;
        this.set(out, [s0[0]!, s0[1]!, ...s0.slice(2).map(() => 1)], t0);
        return true;
      }
      case "ConvTranspose": {
        const sw = this.shape(n.inputs[1]);
        if (!s0 || !sw) return false;
        const spatial = s0.length - 2;
        const group = attrInt(n, "group", 1);
        const kernel = attrInts(n, "kernel_shape") ?? sw.slice(2);
        const strides = attrInts(n, "strides") ?? new Array(spatial).fill(1);
        const dil = attrInts(n, "dilations") ?? new Array(spatial).fill(1);
        const pads = attrInts(n, "pads") ?? new Array(2 * spatial).fill(0);
        const outPad = attrInts(n, "output_padding") ?? new Array(spatial).fill(0);
        const outShape = attrInts(n, "output_shape");
        const dims: number[] = [s0[0]!, sw[1]! * group];
        for (let k = 0; k < spatial; k++) {
          if (outShape && outShape.length === spatial) dims.push(outShape[k]!);
          else
            dims.push(
              strides[k]! * (s0[2 + k]! - 1) +
                (outPad[k] ?? 0) +
                (kernel[k]! - 1) * (dil[k] ?? 1) +
                1 -
                pads[k]! -
                pads[k + spatial]!,
            );
        }
        this.set(out, dims, t0);
        return true;
      }
      case "Reshape": {
        const target = this.val(n.inputs[1]) ?? attrInts(n, "shape");
        if (!s0 || !target) return false;
        const allowZero = attrInt(n, "allowzero", 0) === 1;
        const dims = target.map((d, k) => (d === 0 && !allowZero ? s0[k]! : d));
        const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        const resolved = dims.map((d) => (d === -1 ? numel(s0) / known : d));
        if (numel(resolved) !== numel(s0) || resolved.some((d) => !Number.isInteger(d))) return false;
        this.set(out, resolved, t0, this.val(i0));
        return true;
      }
      case "Flatten": {
        if (!s0) return false;
        const axis = normAxis(attrInt(n, "axis", 1), s0.length);
        const shape = [numel(s0.slice(0, axis)), numel(s0.slice(axis))];
        this.set(out, shape, t0, this.val(i0));
        return true;
      }
      case "Transpose": {
        if (!s0) return false;
        const perm = attrInts(n, "perm") ?? s0.map((_, k) => s0.length - 1 - k);
        const shape = perm.map((p) => s0[p]!);
        const v = this.val(i0);
        this.set(out, shape, t0, v ? transposeValues(v, s0, perm) : undefined);
        return true;
      }
      case "Squeeze":
      case "Unsqueeze": {
        if (!s0) return false;
        const axes = this.opset >= 13 ? (this.val(n.inputs[1]) ?? attrInts(n, "axes")) : attrInts(n, "axes");
        let shape: number[];
        if (op === "Squeeze") {
          const ax = axes?.map((a) => normAxis(a, s0.length));
          shape = s0.filter((d, k) => (ax ? !ax.includes(k) : d !== 1));
        } else {
          if (!axes) return false;
          const rank = s0.length + axes.length;
          const ax = axes.map((a) => normAxis(a, rank));
          shape = [];
          let src = 0;
          for (let k = 0; k < rank; k++) shape.push(ax.includes(k) ? 1 : s0[src++]!);
        }
        this.set(out, shape, t0, this.val(i0));
        return true;
      }
      case "Concat": {
        const shapes = n.inputs.map((x) => this.shape(x));
        if (shapes.some((s) => !s)) return false;
        const ss = shapes as Shape[];
        const axis = normAxis(attrInt(n, "axis", 0), ss[0]!.length);
        const shape = [...ss[0]!];
        shape[axis] = ss.reduce((a, s) => a + s[axis]!, 0);
        const vs = n.inputs.map((x) => this.val(x));
        const values = ss[0]!.length === 1 && vs.every((v) => v) ? vs.flatMap((v) => v!) : undefined;
        this.set(out, shape, t0, values);
        return true;
      }
      case "Split": {
        if (!s0) return false;
        const axis = normAxis(attrInt(n, "axis", 0), s0.length);
        const parts = n.outputs.length;
        const sizes =
          this.val(n.inputs[1]) ??
          attrInts(n, "split") ??
          Array.from({ length: parts }, (_, k) => {
            const each = Math.ceil(s0[axis]! / parts);
            return Math.max(0, Math.min(each, s0[axis]! - k * each));
          });
        n.outputs.forEach((o, k) => {
          const shape = [...s0];
          shape[axis] = sizes[k]!;
          this.set(o, shape, t0);
        });
        return true;
      }
      case "Slice": {
        if (!s0) return false;
        const byInput = this.opset >= 10;
        const starts = byInput ? this.val(n.inputs[1]) : attrInts(n, "starts");
        const ends = byInput ? this.val(n.inputs[2]) : attrInts(n, "ends");
        if (!starts || !ends) return false;
        const axes = (byInput ? this.val(n.inputs[3]) : attrInts(n, "axes")) ?? starts.map((_, k) => k);
        const steps = (byInput ? this.val(n.inputs[4]) : undefined) ?? starts.map(() => 1);
        const shape = [...s0];
        const ranges = s0.map((d) => [0, d, 1] as [number, number, number]);
        axes.forEach((a, k) => {
          const ax = normAxis(a, s0.length);
          const dim = s0[ax]!;
          const step = steps[k]!;
          let st = starts[k]!;
          let en = ends[k]!;
          st = st < 0 ? st + dim : st;
          en = en < 0 ? en + dim : en;
          if (step > 0) {
            st = Math.max(0, Math.min(dim, st));
            en = Math.max(0, Math.min(dim, en));
            shape[ax] = Math.max(0, Math.ceil((en - st) / step));
          } else {
            st = Math.max(-1, Math.min(dim - 1, st));
            en = Math.max(-1, Math.min(dim - 1, en));
            shape[ax] = Math.max(0, Math.ceil((en - st) / step));
          }
          ranges[ax] = [st, en, step];
        });
        const v = this.val(i0);
        const values = v ? sliceValues(v, s0, ranges, shape) : undefined;
        this.set(out, shape, t0, values);
        return true;
      }
      case "Pad": {
        if (!s0) return false;
        const pads = this.opset >= 11 ? this.val(n.inputs[1]) : attrInts(n, "pads");
        if (!pads) return false;
        const axes = this.val(n.inputs[3])?.map((a) => normAxis(a, s0.length)) ?? s0.map((_, k) => k);
        const shape = [...s0];
        axes.forEach((ax, k) => {
          shape[ax] = s0[ax]! + pads[k]! + pads[k + axes.length]!;
        });
        this.set(out, shape, t0);
        return true;
      }
      case "Gather": {
        const si = this.shape(n.inputs[1]);
        if (!s0 || !si) return false;
        const axis = normAxis(attrInt(n, "axis", 0), s0.length);
        const shape = [...s0.slice(0, axis), ...si, ...s0.slice(axis + 1)];
        const v = this.val(i0);
        const idx = this.val(n.inputs[1]);
        let values: number[] | undefined;
        if (v && idx && s0.length === 1) values = idx.map((k) => v[k < 0 ? k + s0[0]! : k]!);
        this.set(out, shape, t0, values);
        return true;
      }
      case "Expand": {
        const target = this.val(n.inputs[1]);
        if (!s0 || !target) return false;
        const shape = broadcast([s0, target]);
        if (!shape) return false;
        const v = this.val(i0);
        const values =
          v && numel(shape) <= MAX_TRACKED
            ? Array.from({ length: numel(shape) }, (_, k) => v[broadcastIndex(k, shape, s0)]!)
            : undefined;
        this.set(out, shape, t0, values);
        return true;
      }
      case "Tile": {
        const reps = this.val(n.inputs[1]);
        if (!s0 || !reps) return false;
        this.set(
          out,
          s0.map((d, k) => d * reps[k]!),
          t0,
        );
        return true;
      }
      case "ConstantOfShape": {
        const target = this.val(i0);
        if (!target) return false;
        const valueAttr = n.attributes.get("value")?.t;
        const fill = valueAttr ? (tensorValues(valueAttr)?.[0] ?? 0) : 0;
        const type = valueAttr?.dataType ?? 1;
        const count = numel(target);
        this.set(out, target, type, count <= MAX_TRACKED ? new Array(count).fill(fill) : undefined);
        return true;
      }
      case "Range": {
        const [start, limit, delta] = [0, 1, 2].map((k) => this.val(n.inputs[k])?.[0]);
        if (start === undefined || limit === undefined || delta === undefined) return false;
        const count = Math.max(0, Math.ceil((limit - start) / delta));
        const values = Array.from({ length: count }, (_, k) => start + k * delta);
        this.set(out, [count], t0, values);
        return true;
      }
      case "ReduceMean":
      case "ReduceSum":
      case "ReduceMax":
      case "ReduceMin":
      case "ReduceProd":
      case "ReduceL2":
      case "ReduceL1":
      case "ReduceSumSquare":
      case "ReduceLogSumExp":
      case "ArgMax":
      case "ArgMin": {
        if (!s0) return false;
        const arg = op.startsWith("Arg");
        const axesFromInput = !arg && (this.opset >= 18 || (op === "ReduceSum" && this.opset >= 13));
        let axes = arg
          ? [attrInt(n, "axis", 0)]
          : axesFromInput
            ? (this.val(n.inputs[1]) ?? (n.inputs[1] ? undefined : []))
            : (attrInts(n, "axes") ?? []);
        if (!axes) return false;
        if (axes.length === 0) axes = attrInt(n, "noop_with_empty_axes", 0) ? [] : s0.map((_, k) => k);
        const ax = axes.map((a) => normAxis(a, s0.length));
        const keep = attrInt(n, "keepdims", 1) === 1;
        const shape: number[] = [];
        s0.forEach((d, k) => {
          if (!ax.includes(k)) shape.push(d);
          else if (keep) shape.push(1);
        });
        this.set(out, shape, arg ? 7 : t0);
        return true;
      }
      case "Resize":
      case "Upsample": {
        if (!s0) return false;
        const sizes = op === "Resize" ? this.val(n.inputs[3]) : undefined;
        const scales = op === "Resize" ? this.val(n.inputs[2]) : this.val(n.inputs[1]);
        let shape: number[] | undefined;
        if (sizes && sizes.length === s0.length) shape = sizes;
        else if (scales && scales.length === s0.length) shape = s0.map((d, k) => Math.floor(d * scales[k]!));
        if (!shape) return false;
        this.set(out, shape, t0);
        return true;
      }
      default:
        return false;
    }
  }

  private constant(n: ReadNode): boolean {
    const out = n.outputs[0] ?? "";
    const a: ReadAttribute | undefined = [...n.attributes.values()][0];
    if (!a) return false;
    if (a.t) {
      const v = a.t.dims.reduce((x, y) => x * y, 1) <= MAX_TRACKED ? tensorValues(a.t) : undefined;
      this.set(out, a.t.dims, a.t.dataType, v);
    } else if (a.name === "value_float") this.set(out, [], 1, [a.f ?? 0]);
    else if (a.name === "value_int") this.set(out, [], 7, [a.i ?? 0]);
    else if (a.name === "value_floats") this.set(out, [a.floats.length], 1, [...a.floats]);
    else if (a.name === "value_ints") this.set(out, [a.ints.length], 7, [...a.ints]);
    else return false;
    return true;
  }
}

function unaryValue(op: string): ((x: number) => number) | undefined {
  switch (op) {
    case "Neg":
      return (x) => -x;
    case "Abs":
      return Math.abs;
    case "Floor":
      return Math.floor;
    case "Ceil":
      return Math.ceil;
    case "Sqrt":
      return Math.sqrt;
    case "Not":
      return (x) => (x ? 0 : 1);
    case "Sign":
      return Math.sign;
    case "Round":
      return Math.round;
    default:
      return undefined;
  }
}

function matmulShape(a: Shape, b: Shape): Shape | undefined {
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  if (a2[a2.length - 1] !== b2[b2.length - 2]) return undefined;
  const batch = broadcast([a2.slice(0, -2), b2.slice(0, -2)]);
  if (!batch) return undefined;
  const out = [...batch];
  if (a.length !== 1) out.push(a2[a2.length - 2]!);
  if (b.length !== 1) out.push(b2[b2.length - 1]!);
  return out;
}

function transposeValues(v: readonly number[], s: Shape, perm: readonly number[]): number[] {
  const outShape = perm.map((p) => s[p]!);
  const strides = s.map((_, k) => numel(s.slice(k + 1)));
  const out = new Array<number>(v.length);
  for (let k = 0; k < v.length; k++) {
    let rem = k;
    let src = 0;
    for (let j = outShape.length - 1; j >= 0; j--) {
      const c = rem % outShape[j]!;
      rem = Math.floor(rem / outShape[j]!);
      src += c * strides[perm[j]!]!;
    }
    out[k] = v[src]!;
  }
  return out;
}

/**
 * An Einsum's output shape and the size of each label, or undefined for an equation this does not
 * read (ellipsis broadcasting) or that does not fit the input shapes. Without `->`, the output is
 * the labels used once, in alphabetical order.
 */
export function einsum(
  equation: string | undefined,
  shapes: readonly (Shape | undefined)[],
): { shape: number[]; sizes: Map<string, number> } | undefined {
  if (equation === undefined || equation.includes(".") || shapes.some((x) => !x)) return undefined;
  const [lhs, rhs] = equation.replace(/\s+/g, "").split("->") as [string, string | undefined];
  const terms = lhs.split(",");
  if (terms.length !== shapes.length) return undefined;
  const sizes = new Map<string, number>();
  const uses = new Map<string, number>();
  for (let t = 0; t < terms.length; t++) {
    const term = terms[t]!;
    const shape = shapes[t]!;
    if (term.length !== shape.length) return undefined;
    for (let k = 0; k < term.length; k++) {
      const label = term[k]!;
      const known = sizes.get(label);
      if (known !== undefined && known !== shape[k]) return undefined;
      sizes.set(label, shape[k]!);
      uses.set(label, (uses.get(label) ?? 0) + 1);
    }
  }
  const outLabels =
    rhs ??
    [...uses]
      .filter(([, count]) => count === 1)
      .map(([label]) => label)
      .sort()
      .join("");
  const shape: number[] = [];
  for (const label of outLabels) {
    const d = sizes.get(label);
    if (d === undefined) return undefined;
    shape.push(d);
  }
  return { shape, sizes };
}

/** The values of a Slice: per axis of `s` (row-major), `[start, end, step]` gives the kept indices. */
function sliceValues(
  v: readonly number[],
  s: Shape,
  ranges: readonly (readonly [number, number, number])[],
  outShape: Shape,
): number[] {
  const strides = s.map((_, k) => numel(s.slice(k + 1)));
  const out = new Array<number>(numel(outShape));
  for (let k = 0; k < out.length; k++) {
    let rem = k;
    let src = 0;
    for (let j = outShape.length - 1; j >= 0; j--) {
      const c = rem % outShape[j]!;
      rem = Math.floor(rem / outShape[j]!);
      const [start, , step] = ranges[j]!;
      src += (start + c * step) * strides[j]!;
    }
    out[k] = v[src]!;
  }
  return out;
}

/** Inference state over `m` with its initializers and graph inputs set (symbolic dims per `options`). */
export function startInference(m: ReadModel, options: ShapeInferenceOptions = {}): Inference {
  const g = m.graph;
  const inf = new Inference(m.opsets.get("") ?? m.opsets.get("ai.onnx") ?? 17);
  for (const [name, t] of g.initializers) {
    const small = t.dims.reduce((a, b) => a * b, 1) <= MAX_TRACKED;
    inf.set(name, t.dims, t.dataType, small ? tensorValues(t) : undefined);
  }
  const sym = options.symbolicDim ?? 1;
  for (const input of g.inputs) {
    if (g.initializers.has(input.name)) continue;
    const given = options.inputDims?.[input.name];
    const dims = given ?? input.dims?.map((d) => (typeof d === "number" && d > 0 ? d : sym));
    if (dims) inf.set(input.name, dims, input.elemType || 1);
  }
  return inf;
}

/** Shapes of every value after static inference, for tests and diagnostics (unknown ones absent). */
export function inferShapes(
  model: Uint8Array | ReadModel,
  options: ShapeInferenceOptions = {},
): Map<string, Shape> {
  const m = model instanceof Uint8Array ? readModel(model) : model;
  const inf = startInference(m, options);
  for (const n of m.graph.nodes) inf.infer(n);
  return inf.shapes;
}
