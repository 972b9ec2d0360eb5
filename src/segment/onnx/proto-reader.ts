// A protobuf reader for ONNX ModelProto: the wire format in full (every wire type, unknown fields,
// packed or unpacked repeated scalars, fields in any order, repeated occurrences of a message field
// merged) and the ONNX messages that graph tools need, decoded without copying tensor bytes.

// Field numbers are those of onnx/onnx `onnx/onnx.in.proto`, as in proto.ts. Protobuf rules the
// reader follows, whoever wrote the file:
// - fields may come in any order and more than once: a scalar field's last value wins, a repeated
//   field concatenates, and a non-repeated message field merges into the earlier one (so a
//   ModelProto.graph written in pieces reads as one graph);
// - a repeated scalar may be packed (one length-delimited run) or not (one key per value);
// - a field whose number this reader does not know, or that comes with another wire type than its
//   declaration's, is an unknown field and is skipped, groups (wire types 3 and 4) included;
// - int32 fields keep the low 32 bits of their varint, int64 fields read as signed 64-bit, uint64
//   fields as unsigned (as JS numbers: beyond 2^53 the nearest double).

import { float16BitsToNumber } from "../../util/float16.js";

/** Protobuf wire types. */
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;

/** `TensorProto.data_location = EXTERNAL`. */
const DATA_LOCATION_EXTERNAL = 1;

/** Where an external tensor's bytes are (`TensorProto.external_data`). */
export interface ReadExternalData {
  /** File path relative to the model file's folder (`location`); "" when the entry is missing. */
  readonly location: string;
  /** Byte offset in the file (`offset`); undefined = 0. */
  readonly offset?: number | undefined;
  /** Byte length (`length`); undefined = to the end of the file. */
  readonly length?: number | undefined;
  /** `checksum` (SHA1 digest), when given. */
  readonly checksum?: string | undefined;
  /** Every key/value entry as written, in order (the keys above included). */
  readonly entries: readonly (readonly [key: string, value: string])[];
}

/** A tensor as read: shape, element type and its data as stored (nothing is copied). */
export interface ReadTensor {
  readonly name: string;
  /** Dimensions (int64; a value past 2^53 is the nearest double). */
  readonly dims: readonly number[];
  /** `TensorProto.DataType` (1 float, 6 int32, 7 int64, 8 string, 10 float16, 11 double, …). */
  readonly dataType: number;
  /** Inline little-endian `raw_data` (a view into the model bytes, not a copy), when present. */
  readonly rawData?: Uint8Array | undefined;
  /**
   * `float_data`, `int32_data`, `int64_data`, `double_data` or `uint64_data` values as stored, when
   * the tensor uses them. Storage, not element values: float16/bfloat16 are bit patterns in
   * `int32_data`; {@link tensorValues} decodes them.
   */
  readonly values?: readonly number[] | undefined;
  /** `string_data` entries (byte strings, UTF-8 by convention), for a string tensor. */
  readonly strings?: readonly Uint8Array[] | undefined;
  /** True when the data lives in an external file (`data_location = EXTERNAL`). */
  readonly external: boolean;
  /** The `external_data` entries, when the tensor has any. */
  readonly externalData?: ReadExternalData | undefined;
  readonly docString: string;
}

/** A sparse tensor (`SparseTensorProto`): non-zero values, their indices and the dense shape. */
export interface ReadSparseTensor {
  readonly values: ReadTensor;
  readonly indices: ReadTensor;
  readonly dims: readonly number[];
}

/** One node attribute as read (`AttributeProto`). */
export interface ReadAttribute {
  readonly name: string;
  /** `AttributeProto.AttributeType` (1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 5 GRAPH, 6 FLOATS, …). */
  readonly type: number;
  /** A reference to an attribute of the enclosing function (`ref_attr_name`); "" when none. */
  readonly refAttrName: string;
  readonly docString: string;
  readonly f?: number | undefined;
  readonly i?: number | undefined;
  /** `s` decoded as UTF-8. */
  readonly s?: string | undefined;
  readonly t?: ReadTensor | undefined;
  readonly g?: ReadGraph | undefined;
  readonly sparseTensor?: ReadSparseTensor | undefined;
  readonly floats: readonly number[];
  readonly ints: readonly number[];
  /** `strings` decoded as UTF-8. */
  readonly strings: readonly string[];
  readonly tensors: readonly ReadTensor[];
  readonly graphs: readonly ReadGraph[];
  readonly sparseTensors: readonly ReadSparseTensor[];
}

/** One graph node (`NodeProto`). Attributes by name: a repeated name keeps its last occurrence. */
export interface ReadNode {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: ReadonlyMap<string, ReadAttribute>;
  readonly docString: string;
}

/** Which member of `TypeProto`'s `value` oneof a value's type uses. */
export type ReadTypeKind = "tensor" | "sparse_tensor" | "sequence" | "map" | "optional" | "opaque";

/** A graph input/output/value_info: element type and dims (numbers, or names of dynamic axes). */
export interface ReadValueInfo {
  readonly name: string;
  /** The kind of type recorded; undefined when the value has no type. */
  readonly typeKind?: ReadTypeKind | undefined;
  /** Element type of a tensor or sparse tensor type; 0 otherwise. */
  readonly elemType: number;
  /** Undefined when the value has no shape recorded. A dimension with neither field is "?". */
  readonly dims: readonly (number | string)[] | undefined;
  readonly docString: string;
}

/** A graph (`GraphProto`), the model's main graph or a subgraph of an If/Loop/Scan attribute. */
export interface ReadGraph {
  readonly name: string;
  readonly nodes: readonly ReadNode[];
  /** Initializers by name: a repeated name keeps its last occurrence. */
  readonly initializers: ReadonlyMap<string, ReadTensor>;
  readonly sparseInitializers: readonly ReadSparseTensor[];
  readonly inputs: readonly ReadValueInfo[];
  readonly outputs: readonly ReadValueInfo[];
  readonly valueInfo: readonly ReadValueInfo[];
  readonly docString: string;
}

/** A model (`ModelProto`). Training info, functions and device configurations are not read. */
export interface ReadModel {
  readonly irVersion: number;
  readonly producerName: string;
  readonly producerVersion: string;
  readonly domain: string;
  readonly modelVersion: number;
  readonly docString: string;
  /** Operator-set versions by domain ("" = the default ONNX domain). */
  readonly opsets: ReadonlyMap<string, number>;
  /** `metadata_props` (a repeated key keeps its last value). */
  readonly metadataProps: ReadonlyMap<string, string>;
  readonly graph: ReadGraph;
}

const textDecoder = new TextDecoder();

/** A cursor over protobuf bytes `buf[pos, end)`. Every read checks that it stays inside. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    if (start < 0 || end > buf.length || start > end) throw new Error("Protobuf range outside its buffer");
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) throw new Error(`Truncated protobuf ${what}`);
  }

  /**
   * A varint as a signed 64-bit integer (int64, and the two's complement of a negative int32),
   * as a JS number: past 2^53 in magnitude, the nearest double.
   */
  varint(): number {
    let result = 0;
    let mul = 1;
    const start = this.pos;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw new Error("Truncated protobuf varint");
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    // Bits 49 and up (INT64_MAX sentinels, negative numbers): redo exactly with BigInt.
    this.pos = start;
    return Number(BigInt.asIntN(64, this.varintBig()));
  }

  /** A varint as an unsigned 64-bit integer (uint64), as a JS number. */
  uvarint(): number {
    const start = this.pos;
    const v = this.varint();
    if (v >= 0) return v;
    this.pos = start;
    return Number(this.varintBig());
  }

  /** An int32 or enum field: the low 32 bits of the varint, signed. */
  int32(): number {
    return this.varint() | 0;
  }

  /** The varint's low 64 bits, unsigned. */
  private varintBig(): bigint {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("Truncated protobuf varint");
      const b = this.buf[this.pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, v);
      shift += 7n;
    }
    throw new Error("Malformed protobuf varint (more than 10 bytes)");
  }

  /** A fixed32 field as float. */
  float(): number {
    this.need(4, "fixed32");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  /** A fixed64 field as double. */
  double(): number {
    this.need(8, "fixed64");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  /** The length prefix of a length-delimited field, checked against the bytes left. */
  private length(): number {
    const n = this.varint();
    if (n < 0) throw new Error("Malformed protobuf length (negative)");
    this.need(n, "length-delimited field");
    return n;
  }

  /** A length-delimited field's bytes, as a view. */
  bytes(): Uint8Array {
    const n = this.length();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    return textDecoder.decode(this.bytes());
  }

  /** A nested message reader over the next length-delimited field. */
  sub(): Reader {
    const n = this.length();
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  /** A field key: field number and wire type. */
  key(): { field: number; wire: number } {
    const key = this.varint();
    // A key is a uint32: field numbers 1 to 2^29 - 1.
    if (key < 8 || key > 0xffffffff) throw new Error(`Invalid protobuf field key ${key}`);
    return { field: Math.floor(key / 8), wire: key & 7 };
  }

  /** Skip the value of a field of the given wire type (a group up to its matching end key). */
  skip(wire: number, field: number): void {
    switch (wire) {
      case VARINT:
        this.varint();
        return;
      case I64:
        this.need(8, "fixed64");
        this.pos += 8;
        return;
      case LEN: {
        // Not `this.pos += this.length()`: that adds to the position from before the length
        // prefix was read, landing inside the field.
        const n = this.length();
        this.pos += n;
        return;
      }
      case I32:
        this.need(4, "fixed32");
        this.pos += 4;
        return;
      case SGROUP:
        for (;;) {
          if (this.done) throw new Error(`Truncated protobuf group ${field}`);
          const k = this.key();
          if (k.wire === EGROUP) {
            if (k.field !== field) throw new Error(`Protobuf group ${field} closed as group ${k.field}`);
            return;
          }
          this.skip(k.wire, k.field);
        }
      case EGROUP:
        throw new Error(`Protobuf end of group ${field} without its start`);
      default:
        throw new Error(`Invalid protobuf wire type ${wire}`);
    }
  }

  /**
   * Calls `fn(field, wire)` per field; `fn` consumes the value and returns true, or returns false
   * without consuming anything, and the field is skipped as unknown.
   */
  fields(fn: (field: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const { field, wire } = this.key();
      if (!fn(field, wire)) this.skip(wire, field);
    }
  }

  /**
   * One occurrence of a repeated scalar field whose values have wire type `scalarWire`: a packed run
   * (wire 2) or one value. Returns false, consuming nothing, for any other wire type.
   */
  repeated(wire: number, scalarWire: number, read: (r: Reader) => number, out: number[]): boolean {
    if (wire === LEN) {
      const r = this.sub();
      while (!r.done) out.push(read(r));
      return true;
    }
    if (wire !== scalarWire) return false;
    out.push(read(this));
    return true;
  }
}

const readInt64 = (r: Reader): number => r.varint();
const readUint64 = (r: Reader): number => r.uvarint();
const readInt32 = (r: Reader): number => r.int32();
const readFloat = (r: Reader): number => r.float();
const readDouble = (r: Reader): number => r.double();

/** One field of a message located in its buffer: for copying or dropping serialised fields verbatim. */
export interface FieldSpan {
  readonly field: number;
  readonly wire: number;
  /** Offset of the field's key. */
  readonly start: number;
  /** Offset just past the field (past the end-group key for a group). */
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
    const { field, wire } = r.key();
    let payloadStart = r.pos;
    if (wire === LEN) {
      const n = r.bytes().length;
      payloadStart = r.pos - n;
    } else r.skip(wire, field);
    yield { field, wire, start: fieldStart, end: r.pos, payloadStart };
  }
}

/** A ReadTensor under construction (protobuf merges repeated occurrences into one). */
interface TensorAcc {
  name: string;
  dataType: number;
  dims: number[];
  rawData: Uint8Array | undefined;
  values: number[];
  strings: Uint8Array[];
  dataLocation: number;
  externalEntries: [string, string][];
  docString: string;
}

const newTensor = (): TensorAcc => ({
  name: "",
  dataType: 0,
  dims: [],
  rawData: undefined,
  values: [],
  strings: [],
  dataLocation: 0,
  externalEntries: [],
  docString: "",
});

/** A `StringStringEntryProto` as [key, value]. */
function readEntry(r: Reader): [string, string] {
  let key = "";
  let value = "";
  r.fields((f, w) => {
    if (w !== LEN) return false;
    if (f === 1) key = r.string();
    else if (f === 2) value = r.string();
    else return false;
    return true;
  });
  return [key, value];
}

function readTensorInto(r: Reader, t: TensorAcc): void {
  r.fields((f, w) => {
    switch (f) {
      case 1:
        return r.repeated(w, VARINT, readInt64, t.dims);
      case 2:
        if (w !== VARINT) return false;
        t.dataType = r.int32();
        return true;
      case 4:
        return r.repeated(w, I32, readFloat, t.values); // float_data
      case 5:
        return r.repeated(w, VARINT, readInt32, t.values); // int32_data
      case 7:
        return r.repeated(w, VARINT, readInt64, t.values); // int64_data
      case 10:
        return r.repeated(w, I64, readDouble, t.values); // double_data
      case 11:
        return r.repeated(w, VARINT, readUint64, t.values); // uint64_data
      case 6:
        if (w !== LEN) return false;
        t.strings.push(r.bytes()); // string_data
        return true;
      case 8:
        if (w !== LEN) return false;
        t.name = r.string();
        return true;
      case 9:
        if (w !== LEN) return false;
        t.rawData = r.bytes();
        return true;
      case 12:
        if (w !== LEN) return false;
        t.docString = r.string();
        return true;
      case 13:
        if (w !== LEN) return false;
        t.externalEntries.push(readEntry(r.sub()));
        return true;
      case 14:
        if (w !== VARINT) return false;
        t.dataLocation = r.int32();
        return true;
      default:
        return false; // segment, metadata_props
    }
  });
}

/** A decimal `offset`/`length` entry as a number. */
function externalNumber(entries: readonly [string, string][], key: string): number | undefined {
  let text: string | undefined;
  for (const [k, v] of entries) if (k === key) text = v;
  if (text === undefined) return undefined;
  if (!/^\s*\d+\s*$/.test(text)) {
    throw new Error(`Expected a non-negative integer for external data ${key} but found "${text}"`);
  }
  return Number(text);
}

function finishTensor(t: TensorAcc): ReadTensor {
  let externalData: ReadExternalData | undefined;
  if (t.externalEntries.length > 0 || t.dataLocation === DATA_LOCATION_EXTERNAL) {
    const last = (key: string): string | undefined => {
      let v: string | undefined;
      for (const [k, value] of t.externalEntries) if (k === key) v = value;
      return v;
    };
    externalData = {
      location: last("location") ?? "",
      offset: externalNumber(t.externalEntries, "offset"),
      length: externalNumber(t.externalEntries, "length"),
      checksum: last("checksum"),
      entries: t.externalEntries,
    };
  }
  return {
    name: t.name,
    dims: t.dims,
    dataType: t.dataType,
    rawData: t.rawData,
    values: t.values.length > 0 ? t.values : undefined,
    strings: t.strings.length > 0 ? t.strings : undefined,
    external: t.dataLocation === DATA_LOCATION_EXTERNAL,
    externalData,
    docString: t.docString,
  };
}

function readTensor(r: Reader): ReadTensor {
  const t = newTensor();
  readTensorInto(r, t);
  return finishTensor(t);
}

interface SparseAcc {
  values: TensorAcc;
  indices: TensorAcc;
  dims: number[];
}

const newSparse = (): SparseAcc => ({ values: newTensor(), indices: newTensor(), dims: [] });

function readSparseInto(r: Reader, s: SparseAcc): void {
  r.fields((f, w) => {
    if (f === 3) return r.repeated(w, VARINT, readInt64, s.dims);
    if (w !== LEN) return false;
    if (f === 1) readTensorInto(r.sub(), s.values);
    else if (f === 2) readTensorInto(r.sub(), s.indices);
    else return false;
    return true;
  });
}

const finishSparse = (s: SparseAcc): ReadSparseTensor => ({
  values: finishTensor(s.values),
  indices: finishTensor(s.indices),
  dims: s.dims,
});

function readSparse(r: Reader): ReadSparseTensor {
  const s = newSparse();
  readSparseInto(r, s);
  return finishSparse(s);
}

function readAttribute(r: Reader): ReadAttribute {
  let name = "";
  let type = 0;
  let refAttrName = "";
  let docString = "";
  let f: number | undefined;
  let i: number | undefined;
  let s: string | undefined;
  let t: TensorAcc | undefined;
  let g: GraphAcc | undefined;
  let sparse: SparseAcc | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  const strings: string[] = [];
  const tensors: ReadTensor[] = [];
  const graphs: ReadGraph[] = [];
  const sparseTensors: ReadSparseTensor[] = [];
  r.fields((field, w) => {
    switch (field) {
      case 2:
        if (w !== I32) return false;
        f = r.float();
        return true;
      case 3:
        if (w !== VARINT) return false;
        i = r.varint();
        return true;
      case 20:
        if (w !== VARINT) return false;
        type = r.int32();
        return true;
      case 7:
        return r.repeated(w, I32, readFloat, floats);
      case 8:
        return r.repeated(w, VARINT, readInt64, ints);
      default:
        break;
    }
    if (w !== LEN) return false;
    switch (field) {
      case 1:
        name = r.string();
        break;
      case 4:
        s = r.string();
        break;
      case 5:
        t ??= newTensor();
        readTensorInto(r.sub(), t);
        break;
      case 6:
        g ??= newGraph();
        readGraphInto(r.sub(), g);
        break;
      case 9:
        strings.push(r.string());
        break;
      case 10:
        tensors.push(readTensor(r.sub()));
        break;
      case 11:
        graphs.push(readGraph(r.sub()));
        break;
      case 13:
        docString = r.string();
        break;
      case 21:
        refAttrName = r.string();
        break;
      case 22:
        sparse ??= newSparse();
        readSparseInto(r.sub(), sparse);
        break;
      case 23:
        sparseTensors.push(readSparse(r.sub()));
        break;
      default:
        return false; // tp, type_protos
    }
    return true;
  });
  return {
    name,
    type,
    refAttrName,
    docString,
    f,
    i,
    s,
    t: t && finishTensor(t),
    g,
    sparseTensor: sparse && finishSparse(sparse),
    floats,
    ints,
    strings,
    tensors,
    graphs,
    sparseTensors,
  };
}

function readNode(r: Reader): ReadNode {
  let name = "";
  let opType = "";
  let domain = "";
  let docString = "";
  const inputs: string[] = [];
  const outputs: string[] = [];
  const attributes = new Map<string, ReadAttribute>();
  r.fields((f, w) => {
    if (w !== LEN) return false;
    if (f === 1) inputs.push(r.string());
    else if (f === 2) outputs.push(r.string());
    else if (f === 3) name = r.string();
    else if (f === 4) opType = r.string();
    else if (f === 5) {
      const a = readAttribute(r.sub());
      attributes.set(a.name, a);
    } else if (f === 6) docString = r.string();
    else if (f === 7) domain = r.string();
    else return false;
    return true;
  });
  return { name, opType, domain, inputs, outputs, attributes, docString };
}

/** TypeProto member numbers → kind. */
const TYPE_KINDS: ReadonlyMap<number, ReadTypeKind> = new Map([
  [1, "tensor"],
  [4, "sequence"],
  [5, "map"],
  [7, "opaque"],
  [8, "sparse_tensor"],
  [9, "optional"],
]);

interface ValueInfoAcc {
  typeKind: ReadTypeKind | undefined;
  elemType: number;
  dims: (number | string)[] | undefined;
}

/** `TypeProto.Tensor` / `TypeProto.SparseTensor`: elem_type and shape. */
function readTensorTypeInto(r: Reader, acc: ValueInfoAcc): void {
  r.fields((f, w) => {
    if (f === 1 && w === VARINT) acc.elemType = r.int32();
    else if (f === 2 && w === LEN) {
      acc.dims ??= [];
      const dims = acc.dims;
      const shape = r.sub();
      shape.fields((sf, sw) => {
        if (sf !== 1 || sw !== LEN) return false;
        const dim = shape.sub();
        let d: number | string = "?";
        dim.fields((df, dw) => {
          if (df === 1 && dw === VARINT) d = dim.varint();
          else if (df === 2 && dw === LEN) d = dim.string();
          else return false;
          return true;
        });
        dims.push(d);
        return true;
      });
    } else return false;
    return true;
  });
}

function readValueInfo(r: Reader): ReadValueInfo {
  let name = "";
  let docString = "";
  const acc: ValueInfoAcc = { typeKind: undefined, elemType: 0, dims: undefined };
  r.fields((f, w) => {
    if (w !== LEN) return false;
    if (f === 1) name = r.string();
    else if (f === 3) docString = r.string();
    else if (f === 2) {
      const type = r.sub();
      type.fields((tf, tw) => {
        const kind = TYPE_KINDS.get(tf);
        if (!kind || tw !== LEN) return false; // denotation
        if (kind !== acc.typeKind) {
          // Another member of the oneof replaces the previous one.
          acc.typeKind = kind;
          acc.elemType = 0;
          acc.dims = undefined;
        }
        if (kind === "tensor" || kind === "sparse_tensor") readTensorTypeInto(type.sub(), acc);
        else type.skip(tw, tf);
        return true;
      });
    } else return false;
    return true;
  });
  return { name, typeKind: acc.typeKind, elemType: acc.elemType, dims: acc.dims, docString };
}

/** A ReadGraph under construction (protobuf merges repeated occurrences into one). */
interface GraphAcc {
  name: string;
  docString: string;
  nodes: ReadNode[];
  initializers: Map<string, ReadTensor>;
  sparseInitializers: ReadSparseTensor[];
  inputs: ReadValueInfo[];
  outputs: ReadValueInfo[];
  valueInfo: ReadValueInfo[];
}

const newGraph = (): GraphAcc => ({
  name: "",
  docString: "",
  nodes: [],
  initializers: new Map(),
  sparseInitializers: [],
  inputs: [],
  outputs: [],
  valueInfo: [],
});

function readGraphInto(r: Reader, g: GraphAcc): void {
  r.fields((f, w) => {
    if (w !== LEN) return false;
    if (f === 1) g.nodes.push(readNode(r.sub()));
    else if (f === 2) g.name = r.string();
    else if (f === 5) {
      const t = readTensor(r.sub());
      g.initializers.set(t.name, t);
    } else if (f === 15) g.sparseInitializers.push(readSparse(r.sub()));
    else if (f === 10) g.docString = r.string();
    else if (f === 11) g.inputs.push(readValueInfo(r.sub()));
    else if (f === 12) g.outputs.push(readValueInfo(r.sub()));
    else if (f === 13) g.valueInfo.push(readValueInfo(r.sub()));
    else return false; // quantization_annotation, metadata_props
    return true;
  });
}

function readGraph(r: Reader): ReadGraph {
  const g = newGraph();
  readGraphInto(r, g);
  return g;
}

/**
 * Parse ONNX ModelProto bytes. Tensor data is not copied: `rawData` and `strings` view `bytes`.
 * @throws Error on malformed protobuf or a model without a graph.
 */
export function readModel(bytes: Uint8Array): ReadModel {
  const r = new Reader(bytes);
  let irVersion = 0;
  let producerName = "";
  let producerVersion = "";
  let domain = "";
  let modelVersion = 0;
  let docString = "";
  let graph: GraphAcc | undefined;
  const opsets = new Map<string, number>();
  const metadataProps = new Map<string, string>();
  r.fields((f, w) => {
    if (w === VARINT) {
      if (f === 1) irVersion = r.varint();
      else if (f === 5) modelVersion = r.varint();
      else return false;
      return true;
    }
    if (w !== LEN) return false;
    if (f === 2) producerName = r.string();
    else if (f === 3) producerVersion = r.string();
    else if (f === 4) domain = r.string();
    else if (f === 6) docString = r.string();
    else if (f === 7) {
      graph ??= newGraph();
      readGraphInto(r.sub(), graph);
    } else if (f === 8) {
      const o = r.sub();
      let opsetDomain = "";
      let version = 0;
      o.fields((of, ow) => {
        if (of === 1 && ow === LEN) opsetDomain = o.string();
        else if (of === 2 && ow === VARINT) version = o.varint();
        else return false;
        return true;
      });
      opsets.set(opsetDomain, version);
    } else if (f === 14) {
      const [key, value] = readEntry(r.sub());
      metadataProps.set(key, value);
    } else return false; // training_info, functions, configuration
    return true;
  });
  if (!graph) throw new Error("Expected an ONNX ModelProto with a graph but found none");
  return {
    irVersion,
    producerName,
    producerVersion,
    domain,
    modelVersion,
    docString,
    opsets,
    metadataProps,
    graph,
  };
}

/** Every tensor of a graph and its subgraphs: initializers, sparse ones, node attribute tensors. */
function* graphTensors(g: ReadGraph): Generator<ReadTensor> {
  for (const t of g.initializers.values()) yield t;
  for (const s of g.sparseInitializers) yield* [s.values, s.indices];
  for (const n of g.nodes) {
    for (const a of n.attributes.values()) {
      if (a.t) yield a.t;
      yield* a.tensors;
      for (const s of [...(a.sparseTensor ? [a.sparseTensor] : []), ...a.sparseTensors]) {
        yield* [s.values, s.indices];
      }
      if (a.g) yield* graphTensors(a.g);
      for (const sub of a.graphs) yield* graphTensors(sub);
    }
  }
}

/**
 * The tensors of a model's graph (subgraphs included) whose data is in external files, with the
 * file each one names.
 */
export function externalTensors(model: ReadModel): { tensor: ReadTensor; location: string }[] {
  const out: { tensor: ReadTensor; location: string }[] = [];
  for (const t of graphTensors(model.graph)) {
    if (t.external) out.push({ tensor: t, location: t.externalData?.location ?? "" });
  }
  return out;
}

/** The distinct external data files a model's graph (subgraphs included) references, in first-use order. */
export function externalDataFiles(model: ReadModel): string[] {
  return [...new Set(externalTensors(model).map((e) => e.location))];
}

/** bfloat16 bits (the high half of a float32) to a number. */
function bfloat16ToNumber(h: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, (h & 0xffff) << 16);
  return view.getFloat32(0);
}

/** Bytes per element and little-endian decoder of the types {@link tensorValues} reads from raw_data. */
const RAW_DECODERS: ReadonlyMap<number, readonly [number, (v: DataView, o: number) => number]> = new Map([
  [1, [4, (v, o) => v.getFloat32(o, true)]],
  [2, [1, (v, o) => v.getUint8(o)]],
  [3, [1, (v, o) => v.getInt8(o)]],
  [4, [2, (v, o) => v.getUint16(o, true)]],
  [5, [2, (v, o) => v.getInt16(o, true)]],
  [6, [4, (v, o) => v.getInt32(o, true)]],
  [7, [8, (v, o) => Number(v.getBigInt64(o, true))]],
  [9, [1, (v, o) => v.getUint8(o)]],
  [10, [2, (v, o) => float16BitsToNumber(v.getUint16(o, true))]],
  [11, [8, (v, o) => v.getFloat64(o, true)]],
  [12, [4, (v, o) => v.getUint32(o, true)]],
  [13, [8, (v, o) => Number(v.getBigUint64(o, true))]],
  [16, [2, (v, o) => bfloat16ToNumber(v.getUint16(o, true))]],
]);

/**
 * The element values of a tensor as numbers (float, double, float16, bfloat16, bool and the
 * integer types up to 64 bits; int64/uint64 past 2^53 as the nearest double), or undefined when the
 * data is external, of another type (string, complex, 8-bit and 4-bit floats, 4-bit integers), or
 * shorter than the dims say.
 */
export function tensorValues(t: ReadTensor): number[] | undefined {
  const decoder = RAW_DECODERS.get(t.dataType);
  if (!decoder || t.external) return undefined;
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.values) {
    if (t.dataType === 10) return t.values.map(float16BitsToNumber);
    if (t.dataType === 16) return t.values.map(bfloat16ToNumber);
    return [...t.values];
  }
  if (n === 0) return [];
  const raw = t.rawData;
  const [width, read] = decoder;
  if (!raw || raw.byteLength < n * width) return undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = read(view, i * width);
  return out;
}
