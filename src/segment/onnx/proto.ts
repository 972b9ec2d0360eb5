// A minimal protobuf writer for ONNX ModelProto: only the messages and fields our hand-built graphs use.

import { float32ToFloat16Bits } from "../../util/float16.js";

// Field numbers below are those of onnx/onnx `onnx/onnx.proto` (proto2). Repeated scalar fields are
// written unpacked, as proto2 declares them; every protobuf parser also accepts that form.

/** ONNX tensor element types we emit (`TensorProto.DataType`). */
export const DataType = { FLOAT: 1, INT64: 7, FLOAT16: 10 } as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

/** A tensor stored inline as little-endian `raw_data`. */
export interface TensorProtoData {
  readonly name: string;
  readonly dataType: DataType;
  readonly dims: readonly number[];
  /** Little-endian element bytes, row-major. */
  readonly rawData: Uint8Array;
}

/** One node attribute: a name plus exactly one typed value. */
export type AttributeProtoData = { readonly name: string } & (
  | { readonly kind: "float"; readonly value: number }
  | { readonly kind: "int"; readonly value: number | bigint }
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "tensor"; readonly value: TensorProtoData }
  | { readonly kind: "floats"; readonly value: readonly number[] }
  | { readonly kind: "ints"; readonly value: readonly (number | bigint)[] }
);

/** One graph node. */
export interface NodeProtoData {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  /** Operator-set domain; absent = the default ONNX domain. */
  readonly domain?: string;
  readonly attributes?: readonly AttributeProtoData[];
}

/** A graph input, output or value_info entry: a tensor type with a (possibly symbolic) shape. */
export interface ValueInfoProtoData {
  readonly name: string;
  readonly elemType: DataType;
  /** Numbers become `dim_value`, strings `dim_param` (a named dynamic axis). */
  readonly dims: readonly (number | string)[];
}

/** A graph: nodes in topological order plus its constants and interface. */
export interface GraphProtoData {
  readonly name: string;
  readonly nodes: readonly NodeProtoData[];
  readonly initializers: readonly TensorProtoData[];
  readonly inputs: readonly ValueInfoProtoData[];
  readonly outputs: readonly ValueInfoProtoData[];
  readonly valueInfo?: readonly ValueInfoProtoData[];
}

/** A model: the graph plus versioning. */
export interface ModelProtoData {
  readonly graph: GraphProtoData;
  /** @default 8 */
  readonly irVersion?: number;
  /** Version of the default ("") operator set. @default 17 */
  readonly opsetVersion?: number;
  /** @default "persam-db" */
  readonly producerName?: string;
}

const WIRE_VARINT = 0;
const WIRE_FIXED32 = 5;
const WIRE_LEN = 2;
const textEncoder = new TextEncoder();

/**
 * Appends protobuf fields to a list of chunks; nested messages are separate writers whose chunks are
 * spliced in after their length, so large initializers are copied once, in {@link ProtoWriter.finish}.
 */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  private size = 0;

  /** Total encoded length so far, in bytes. */
  get length(): number {
    return this.size + this.scratch.length;
  }

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    this.chunks.push(Uint8Array.from(this.scratch));
    this.size += this.scratch.length;
    this.scratch = [];
  }

  private pushBytes(bytes: Uint8Array): void {
    this.flushScratch();
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.size += bytes.length;
  }

  /** Write an unsigned or signed 64-bit varint (negative values as 10-byte two's complement). */
  varint(value: number | bigint): void {
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) {
        throw new Error(`Expected a safe integer for a protobuf varint but received ${value}`);
      }
      if (value >= 0 && value < 2 ** 31) {
        let v = value;
        while (v >= 0x80) {
          this.scratch.push((v & 0x7f) | 0x80);
          v >>>= 7;
        }
        this.scratch.push(v);
        return;
      }
      value = BigInt(value);
    }
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.scratch.push(Number(v));
  }

  /** Append already-encoded protobuf bytes (whole fields) verbatim, without copying them now. */
  raw(bytes: Uint8Array): void {
    this.pushBytes(bytes);
  }

  /** Write a field key (field number and wire type). */
  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** A varint field (int32, int64, enum). */
  int(field: number, value: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  /** A 32-bit float field. */
  float(field: number, value: number): void {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    for (const x of b) this.scratch.push(x);
  }

  /** A bytes field. */
  bytes(field: number, value: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(value.length);
    this.pushBytes(value);
  }

  /** A UTF-8 string field. */
  string(field: number, value: string): void {
    this.bytes(field, textEncoder.encode(value));
  }

  /** An embedded message field. */
  message(field: number, inner: ProtoWriter): void {
    inner.flushScratch();
    this.tag(field, WIRE_LEN);
    this.varint(inner.size);
    this.flushScratch();
    for (const c of inner.chunks) this.chunks.push(c);
    this.size += inner.size;
  }

  /**
   * The encoded bytes as the pieces they were written from (views, not copies: what `raw` and
   * `bytes` were given is shared), for writing a large message out without assembling it.
   */
  parts(): readonly Uint8Array[] {
    this.flushScratch();
    return [...this.chunks];
  }

  /** The encoded bytes. */
  finish(): Uint8Array {
    this.flushScratch();
    const out = new Uint8Array(this.size);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

/** A `TensorProto` message: dims, data_type, name, raw_data (in that field order). */
export function writeTensor(t: TensorProtoData): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.int(1, d); // dims
  w.int(2, t.dataType); // data_type
  w.string(8, t.name); // name
  w.bytes(9, t.rawData); // raw_data
  return w;
}

// AttributeProto.AttributeType values.
const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

/** An `AttributeProto` message: name, type, then the one value field. */
export function writeAttribute(a: AttributeProtoData): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, a.name);
  w.int(20, ATTR_TYPE[a.kind]); // type
  switch (a.kind) {
    case "float":
      w.float(2, a.value);
      break;
    case "int":
      w.int(3, a.value);
      break;
    case "string":
      w.string(4, a.value);
      break;
    case "tensor":
      w.message(5, writeTensor(a.value));
      break;
    case "floats":
      for (const v of a.value) w.float(7, v);
      break;
    case "ints":
      for (const v of a.value) w.int(8, v);
      break;
  }
  return w;
}

/** A `NodeProto` message: inputs, outputs, name?, op_type, attributes, domain? (in that order). */
export function writeNode(n: NodeProtoData): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attributes ?? []) w.message(5, writeAttribute(a));
  if (n.domain !== undefined) w.string(7, n.domain);
  return w;
}

function writeValueInfo(v: ValueInfoProtoData): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims) {
    const dim = new ProtoWriter();
    if (typeof d === "number")
      dim.int(1, d); // dim_value
    else dim.string(2, d); // dim_param
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter();
  tensorType.int(1, v.elemType); // elem_type
  tensorType.message(2, shape); // shape
  const type = new ProtoWriter();
  type.message(1, tensorType); // TypeProto.tensor_type
  const w = new ProtoWriter();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

function writeGraph(g: GraphProtoData): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, writeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, writeTensor(t));
  for (const v of g.inputs) w.message(11, writeValueInfo(v));
  for (const v of g.outputs) w.message(12, writeValueInfo(v));
  for (const v of g.valueInfo ?? []) w.message(13, writeValueInfo(v));
  return w;
}

/** Serialise a model to ONNX protobuf bytes, ready for `InferenceSession.create(bytes)`. */
export function encodeModel(model: ModelProtoData): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, model.irVersion ?? 8); // ir_version
  w.string(2, model.producerName ?? "persam-db"); // producer_name
  w.message(7, writeGraph(model.graph)); // graph
  const opset = new ProtoWriter();
  opset.string(1, ""); // domain: the default ONNX operator set
  opset.int(2, model.opsetVersion ?? 17); // version
  w.message(8, opset); // opset_import
  return w.finish();
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian bytes of float32 values (a copy, independent of the host's byte order). */
export function float32Bytes(values: Float32Array | readonly number[]): Uint8Array {
  if (LITTLE_ENDIAN_HOST) {
    const copy = Float32Array.from(values);
    return new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
  }
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

/** Little-endian bytes of float16 values (each rounded to the nearest float16, ties to even). */
export function float16Bytes(values: Float32Array | readonly number[]): Uint8Array {
  const bits = float32ToFloat16Bits(Float32Array.from(values));
  const out = new Uint8Array(bits.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < bits.length; i++) view.setUint16(i * 2, bits[i]!, true);
  return out;
}

/** Little-endian bytes of int64 values. */
export function int64Bytes(values: readonly (number | bigint)[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i]!), true);
  return out;
}
