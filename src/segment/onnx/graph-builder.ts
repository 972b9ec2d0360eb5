// A small typed DSL for writing ONNX graphs by hand: values, initializers, nodes, unique names.

import type { Tensor } from "../../util/tensor.js";
import {
  type AttributeProtoData,
  DataType,
  encodeModel,
  float16Bytes,
  float32Bytes,
  type GraphProtoData,
  int64Bytes,
  type NodeProtoData,
  type TensorProtoData,
  type ValueInfoProtoData,
} from "./proto.js";

/** Element types a graph interface may declare. */
export type ElemType = "float" | "int64" | "float16";

/** A dimension: a fixed size, or a name for a dynamic axis. */
export type Dim = number | string;

/** A named value in a graph under construction (input, initializer or node output). */
export interface Value {
  readonly name: string;
}

/**
 * A node attribute value. A plain number is an `INT` (and must be an integer), a number array
 * `INTS`, a string `STRING`; floats must be spelled `{ float }` / `{ floats }` because ONNX Runtime
 * rejects an attribute of the wrong type and `1` would otherwise be ambiguous.
 */
export type AttrValue =
  | number
  | bigint
  | string
  | readonly number[]
  | { readonly float: number }
  | { readonly floats: readonly number[] }
  | { readonly tensor: TensorProtoData };

const ELEM: Record<ElemType, DataType> = {
  float: DataType.FLOAT,
  int64: DataType.INT64,
  float16: DataType.FLOAT16,
};

function toAttribute(name: string, v: AttrValue): AttributeProtoData {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) {
      throw new Error(
        `Expected an integer for attribute ${name} but received ${v} (use { float } for floats)`,
      );
    }
    return { name, kind: "int", value: v };
  }
  if (typeof v === "bigint") return { name, kind: "int", value: v };
  if (typeof v === "string") return { name, kind: "string", value: v };
  if (Array.isArray(v)) {
    const ints = v as readonly number[];
    for (const x of ints) {
      if (!Number.isInteger(x)) throw new Error(`Expected integers for attribute ${name} but received ${x}`);
    }
    return { name, kind: "ints", value: ints };
  }
  if ("float" in v) return { name, kind: "float", value: v.float };
  if ("floats" in v) return { name, kind: "floats", value: v.floats };
  return { name, kind: "tensor", value: (v as { readonly tensor: TensorProtoData }).tensor };
}

/**
 * Builds one ONNX graph. Every value gets a unique name (a requested name gains a numeric suffix
 * when taken); small constants are shared between uses.
 *
 * ```ts
 * const g = new GraphBuilder("demo");
 * const x = g.input("x", "float", [1, "N", 2]);
 * const y = g.op("MatMul", [x, g.init("w", w)]);
 * g.output(y, "y", "float", [1, "N", 4]);
 * const bytes = g.toModel();
 * ```
 */
export class GraphBuilder {
  private readonly used = new Set<string>();
  private readonly nodes: NodeProtoData[] = [];
  private readonly initializers: TensorProtoData[] = [];
  private readonly inputs: ValueInfoProtoData[] = [];
  private readonly outputs: ValueInfoProtoData[] = [];
  private readonly constCache = new Map<string, Value>();
  private nodeCount = 0;

  /** @param name graph name stored in the model. @default "graph" */
  constructor(readonly name = "graph") {}

  /** A name not used yet, derived from `base`. */
  uniqueName(base: string): string {
    if (!this.used.has(base)) {
      this.used.add(base);
      return base;
    }
    for (let i = 1; ; i++) {
      const candidate = `${base}_${i}`;
      if (!this.used.has(candidate)) {
        this.used.add(candidate);
        return candidate;
      }
    }
  }

  /**
   * Declare a graph input. Its name is kept exactly.
   * @throws Error if the name is already used.
   */
  input(name: string, type: ElemType, dims: readonly Dim[]): Value {
    if (this.used.has(name)) throw new Error(`Expected a new input name but received ${name} (already used)`);
    this.used.add(name);
    this.inputs.push({ name, elemType: ELEM[type], dims });
    return { name };
  }

  /** A float32 initializer from a tensor (data copied), named after `name`. */
  init(name: string, t: Tensor): Value {
    return this.initFloat(name, t.data, t.dims);
  }

  /** A float32 initializer from values and dims. */
  initFloat(name: string, data: Float32Array | readonly number[], dims: readonly number[]): Value {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new Error(
        `Expected ${n} values for initializer ${name} [${dims.join(",")}] but received ${data.length}`,
      );
    }
    const unique = this.uniqueName(name);
    this.initializers.push({
      name: unique,
      dataType: DataType.FLOAT,
      dims: [...dims],
      rawData: float32Bytes(data),
    });
    return { name: unique };
  }

  /** A float16 initializer from float values (rounded to nearest even) and dims. */
  initFloat16(name: string, data: Float32Array | readonly number[], dims: readonly number[]): Value {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new Error(
        `Expected ${n} values for initializer ${name} [${dims.join(",")}] but received ${data.length}`,
      );
    }
    const unique = this.uniqueName(name);
    this.initializers.push({
      name: unique,
      dataType: DataType.FLOAT16,
      dims: [...dims],
      rawData: float16Bytes(data),
    });
    return { name: unique };
  }

  /** An int64 initializer. */
  initInt64(
    name: string,
    values: readonly (number | bigint)[],
    dims: readonly number[] = [values.length],
  ): Value {
    const unique = this.uniqueName(name);
    this.initializers.push({
      name: unique,
      dataType: DataType.INT64,
      dims: [...dims],
      rawData: int64Bytes(values),
    });
    return { name: unique };
  }

  /**
   * A shared float constant: a scalar (rank 0) for a number, rank 1 for an array, unless `dims` is
   * given. Equal small constants are emitted once.
   */
  constant(values: number | readonly number[], dims?: readonly number[]): Value {
    const data = typeof values === "number" ? [values] : values;
    const shape = dims ?? (typeof values === "number" ? [] : [data.length]);
    const key = `f:${shape.join("x")}:${data.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.initFloat("const", data, shape);
    if (data.length <= 64) this.constCache.set(key, v);
    return v;
  }

  /** A shared int64 constant of rank 1 (shapes, axes), or rank 0 with `scalar`. */
  constantInt64(values: number | readonly number[]): Value {
    const scalar = typeof values === "number";
    const data = scalar ? [values] : values;
    const key = `i:${scalar ? "s" : "v"}:${data.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.initInt64("shape", data, scalar ? [] : [data.length]);
    this.constCache.set(key, v);
    return v;
  }

  /**
   * Add a node with one output; returns the output value. Pass `null` for an omitted optional input.
   */
  op(
    opType: string,
    inputs: readonly (Value | null)[],
    attrs: Readonly<Record<string, AttrValue>> = {},
  ): Value {
    const [out] = this.opN(opType, inputs, 1, attrs);
    return out!;
  }

  /** Add a node with `outputs` outputs. */
  opN(
    opType: string,
    inputs: readonly (Value | null)[],
    outputs: number,
    attrs: Readonly<Record<string, AttrValue>> = {},
  ): Value[] {
    const base = opType.toLowerCase();
    const outNames: string[] = [];
    for (let i = 0; i < outputs; i++) outNames.push(this.uniqueName(base));
    this.nodes.push({
      opType,
      name: `n${this.nodeCount++}_${opType}`,
      inputs: inputs.map((v) => (v === null ? "" : v.name)),
      outputs: outNames,
      attributes: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
    });
    return outNames.map((name) => ({ name }));
  }

  /**
   * Declare `value` as a graph output called `name` (through an Identity node when its current name
   * differs).
   * @throws Error if `name` is already taken by another value.
   */
  output(value: Value, name: string, type: ElemType, dims: readonly Dim[]): void {
    if (value.name !== name) {
      if (this.used.has(name))
        throw new Error(`Expected a new output name but received ${name} (already used)`);
      this.used.add(name);
      this.nodes.push({
        opType: "Identity",
        name: `n${this.nodeCount++}_Identity`,
        inputs: [value.name],
        outputs: [name],
      });
    }
    this.outputs.push({ name, elemType: ELEM[type], dims });
  }

  /** The graph as plain protobuf data. */
  toGraph(): GraphProtoData {
    return {
      name: this.name,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.inputs,
      outputs: this.outputs,
    };
  }

  /** Serialised ONNX model (IR 8, opset 17 unless overridden). */
  toModel(options: { opsetVersion?: number; irVersion?: number } = {}): Uint8Array {
    return encodeModel({ graph: this.toGraph(), ...options });
  }
}
