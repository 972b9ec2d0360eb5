// A minimal protobuf reader for ONNX ModelProto: just what FLOP counting needs (nodes, attributes,
// initializer shapes and small constant values, graph inputs/outputs with their shapes). Reads our
// own models and stock exports (proto2 unpacked or proto3 packed repeated scalars alike).

// Field numbers are those of onnx/onnx `onnx/onnx.proto`, as in proto.ts.

/** A tensor as read: shape, element type and, when stored inline, a view of its bytes. */
export interface ReadTensor {
  readonly name: string;
  readonly dims: readonly number[];
  /** `TensorProto.DataType` (1 float, 6 int32, 7 int64, 10 float16, 11 double, …). */
  readonly dataType: number;
  /** Inline little-endian `raw_data` (a view into the model bytes, not a copy), when present. */
  readonly rawData?: Uint8Array | undefined;
  /** `float_data`, `int32_data`, `int64_data` or `double_data` values, when the tensor uses them. */
  readonly values?: readonly number[] | undefined;
  /** True when the data lives in an external file (`data_location = EXTERNAL`). */
  readonly external: boolean;
}

/** One node attribute as read. Only the fields FLOP counting uses are kept. */
export interface ReadAttribute {
  readonly name: string;
  readonly type: number;
  readonly f?: number | undefined;
  readonly i?: number | undefined;
  readonly s?: string | undefined;
  readonly t?: ReadTensor | undefined;
  readonly floats: readonly number[];
  readonly ints: readonly number[];
}

export interface ReadNode {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: ReadonlyMap<string, ReadAttribute>;
}

/** A graph input/output/value_info: element type and dims (numbers, or names of dynamic axes). */
export interface ReadValueInfo {
  readonly name: string;
  readonly elemType: number;
  /** Undefined when the value has no shape recorded. */
  readonly dims: readonly (number | string)[] | undefined;
}

export interface ReadGraph {
  readonly name: string;
  readonly nodes: readonly ReadNode[];
  readonly initializers: ReadonlyMap<string, ReadTensor>;
  readonly inputs: readonly ReadValueInfo[];
  readonly outputs: readonly ReadValueInfo[];
  readonly valueInfo: readonly ReadValueInfo[];
}

export interface ReadModel {
  readonly irVersion: number;
  readonly producerName: string;
  /** Operator-set versions by domain ("" = the default ONNX domain). */
  readonly opsets: ReadonlyMap<string, number>;
  readonly graph: ReadGraph;
}

const textDecoder = new TextDecoder();

/** A cursor over protobuf bytes. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a JS number; values past 2^53 lose precision, negatives (64-bit) are kept signed. */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("Truncated protobuf varint");
      const b = this.buf[this.pos++]!;
      if (i < 7) {
        result += (b & 0x7f) * mul;
        mul *= 128;
        if (b < 0x80) return result;
      } else {
        // Bits 49 and up: rare (INT64_MAX sentinels, negative numbers); redo exactly with BigInt.
        this.pos -= i + 1;
        return this.varintBig();
      }
    }
    throw new Error("Malformed protobuf varint");
  }

  private varintBig(): number {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (b < 0x80) break;
    }
    return Number(BigInt.asIntN(64, v));
  }

  fixed32(): number {
    const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4);
    this.pos += 4;
    return view.getFloat32(0, true);
  }

  fixed64(): number {
    const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8);
    this.pos += 8;
    return view.getFloat64(0, true);
  }

  /** A length-delimited field's bytes, as a view. */
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) throw new Error("Truncated protobuf length-delimited field");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    return textDecoder.decode(this.bytes());
  }

  /** Skip a field of the given wire type. */
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.pos += this.varint();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`Unsupported protobuf wire type ${wire}`);
  }

  /** Calls `fn(field, wire)` per field; `fn` must consume the value or return false to skip it. */
  fields(fn: (field: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const key = this.varint();
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (!fn(field, wire)) this.skip(wire);
    }
  }

  /** A nested message reader over the next length-delimited field. */
  sub(): Reader {
    const n = this.varint();
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  /** A repeated varint field, packed (wire 2) or not (wire 0). */
  repeatedVarint(wire: number, out: number[]): void {
    if (wire === 2) {
      const r = this.sub();
      while (!r.done) out.push(r.varint());
    } else out.push(this.varint());
  }

  repeatedFloat(wire: number, out: number[]): void {
    if (wire === 2) {
      const r = this.sub();
      while (!r.done) out.push(r.fixed32());
    } else out.push(this.fixed32());
  }

  repeatedDouble(wire: number, out: number[]): void {
    if (wire === 2) {
      const r = this.sub();
      while (!r.done) out.push(r.fixed64());
    } else out.push(this.fixed64());
  }
}

/** One field of a message located in its buffer: for copying or dropping serialised fields verbatim. */
export interface FieldSpan {
  readonly field: number;
  readonly wire: number;
  /** Offset of the field's key. */
  readonly start: number;
  /** Offset just past the field. */
  readonly end: number;
  /** Offset of the value: past the length prefix for a length-delimited field (wire 2). */
  readonly payloadStart: number;
}

/**
 * The fields of the message in `buf[start, end)`, in order, with their byte offsets.
 * @throws Error on a malformed or truncated field.
 */
export function* fieldSpans(buf: Uint8Array, start = 0, end = buf.length): Generator<FieldSpan> {
  const r = new Reader(buf, start, end);
  while (!r.done) {
    const fieldStart = r.pos;
    const key = r.varint();
    const wire = key & 7;
    let payloadStart = r.pos;
    if (wire === 2) {
      const n = r.varint();
      payloadStart = r.pos;
      r.pos += n;
    } else r.skip(wire);
    if (r.pos > end) throw new Error("Truncated protobuf field");
    yield { field: Math.floor(key / 8), wire, start: fieldStart, end: r.pos, payloadStart };
  }
}

function readTensor(r: Reader): ReadTensor {
  let name = "";
  let dataType = 0;
  const dims: number[] = [];
  let rawData: Uint8Array | undefined;
  const values: number[] = [];
  let external = false;
  r.fields((f, w) => {
    if (f === 1) r.repeatedVarint(w, dims);
    else if (f === 2) dataType = r.varint();
    else if (f === 4)
      r.repeatedFloat(w, values); // float_data
    else if (f === 5 || f === 7)
      r.repeatedVarint(w, values); // int32_data, int64_data
    else if (f === 10)
      r.repeatedDouble(w, values); // double_data
    else if (f === 8) name = r.string();
    else if (f === 9) rawData = r.bytes();
    else if (f === 14)
      external = r.varint() === 1; // data_location
    else return false;
    return true;
  });
  return { name, dims, dataType, rawData, values: values.length > 0 ? values : undefined, external };
}

function readAttribute(r: Reader): ReadAttribute {
  let name = "";
  let type = 0;
  let f: number | undefined;
  let i: number | undefined;
  let s: string | undefined;
  let t: ReadTensor | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  r.fields((field, w) => {
    if (field === 1) name = r.string();
    else if (field === 20) type = r.varint();
    else if (field === 2) f = r.fixed32();
    else if (field === 3) i = r.varint();
    else if (field === 4) s = r.string();
    else if (field === 5) t = readTensor(r.sub());
    else if (field === 7) r.repeatedFloat(w, floats);
    else if (field === 8) r.repeatedVarint(w, ints);
    else return false;
    return true;
  });
  return { name, type, f, i, s, t, floats, ints };
}

function readNode(r: Reader): ReadNode {
  let name = "";
  let opType = "";
  let domain = "";
  const inputs: string[] = [];
  const outputs: string[] = [];
  const attributes = new Map<string, ReadAttribute>();
  r.fields((f) => {
    if (f === 1) inputs.push(r.string());
    else if (f === 2) outputs.push(r.string());
    else if (f === 3) name = r.string();
    else if (f === 4) opType = r.string();
    else if (f === 5) {
      const a = readAttribute(r.sub());
      attributes.set(a.name, a);
    } else if (f === 7) domain = r.string();
    else return false;
    return true;
  });
  return { name, opType, domain, inputs, outputs, attributes };
}

function readValueInfo(r: Reader): ReadValueInfo {
  let name = "";
  let elemType = 0;
  let dims: (number | string)[] | undefined;
  r.fields((f) => {
    if (f === 1) name = r.string();
    else if (f === 2) {
      const type = r.sub();
      type.fields((tf) => {
        if (tf !== 1) return false; // tensor_type only
        const tt = type.sub();
        tt.fields((ttf) => {
          if (ttf === 1) elemType = tt.varint();
          else if (ttf === 2) {
            dims = [];
            const shape = tt.sub();
            shape.fields((sf) => {
              if (sf !== 1) return false;
              const dim = shape.sub();
              let d: number | string = "?";
              dim.fields((df) => {
                if (df === 1) d = dim.varint();
                else if (df === 2) d = dim.string();
                else return false;
                return true;
              });
              dims!.push(d);
              return true;
            });
          } else return false;
          return true;
        });
        return true;
      });
    } else return false;
    return true;
  });
  return { name, elemType, dims };
}

interface GraphParts {
  name: string;
  nodes: ReadNode[];
  initializers: Map<string, ReadTensor>;
  inputs: ReadValueInfo[];
  outputs: ReadValueInfo[];
  valueInfo: ReadValueInfo[];
}

/**
 * Read a GraphProto into `acc`. Protobuf merges repeated occurrences of a non-repeated message field
 * (ModelProto.graph may be written in pieces, e.g. one initializer per piece): repeated fields
 * concatenate, so reading every piece into the same accumulator gives the merged graph.
 */
function readGraphInto(r: Reader, acc: GraphParts): void {
  const { nodes, initializers, inputs, outputs, valueInfo } = acc;
  r.fields((f) => {
    if (f === 1) nodes.push(readNode(r.sub()));
    else if (f === 2) acc.name = r.string();
    else if (f === 5) {
      const t = readTensor(r.sub());
      initializers.set(t.name, t);
    } else if (f === 11) inputs.push(readValueInfo(r.sub()));
    else if (f === 12) outputs.push(readValueInfo(r.sub()));
    else if (f === 13) valueInfo.push(readValueInfo(r.sub()));
    else return false;
    return true;
  });
}

/**
 * Parse ONNX ModelProto bytes. Initializer data is not copied: `rawData` views `bytes`.
 * @throws Error on malformed protobuf or a model without a graph.
 */
export function readModel(bytes: Uint8Array): ReadModel {
  const r = new Reader(bytes);
  let irVersion = 0;
  let producerName = "";
  let graph: GraphParts | undefined;
  const opsets = new Map<string, number>();
  r.fields((f) => {
    if (f === 1) irVersion = r.varint();
    else if (f === 2) producerName = r.string();
    else if (f === 7) {
      graph ??= { name: "", nodes: [], initializers: new Map(), inputs: [], outputs: [], valueInfo: [] };
      readGraphInto(r.sub(), graph);
    } else if (f === 8) {
      const o = r.sub();
      let domain = "";
      let version = 0;
      o.fields((of) => {
        if (of === 1) domain = o.string();
        else if (of === 2) version = o.varint();
        else return false;
        return true;
      });
      opsets.set(domain, version);
    } else return false;
    return true;
  });
  if (!graph) throw new Error("Expected an ONNX ModelProto with a graph but found none");
  return { irVersion, producerName, opsets, graph };
}

/**
 * The values of a small tensor as numbers (int64/int32/float/double/bool/uint8/int8), or undefined
 * when the data is external or of another type.
 */
export function tensorValues(t: ReadTensor): number[] | undefined {
  if (t.values) return [...t.values];
  if (t.external) return undefined;
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (n === 0) return [];
  const raw = t.rawData;
  if (!raw) return undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = new Array(n);
  switch (t.dataType) {
    case 1:
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case 7:
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      return out;
    case 6:
      for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    case 11:
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    case 2:
    case 9:
      for (let i = 0; i < n; i++) out[i] = view.getUint8(i);
      return out;
    case 3:
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      return out;
    default:
      return undefined;
  }
}
