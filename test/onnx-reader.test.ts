// proto-reader.ts against the protobuf wire format itself: models from our writer round-trip
// (property), and one hand-encoded model reads the same however its bytes are laid out (fields in
// any order, unknown fields of every wire type, groups, packed or unpacked repeated scalars, a
// message field written in pieces). Malformed bytes give an Error, never a hang.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DataType,
  encodeModel,
  type ModelProtoData,
  type NodeProtoData,
  type TensorProtoData,
  type ValueInfoProtoData,
} from "../src/segment/onnx/proto.js";
import { fieldSpans, type ReadModel, readModel, tensorValues } from "../src/segment/onnx/proto-reader.js";

const SEED = 0x0dd_f00d;

/** Run a property from the fixed seed; fast-check's failure message carries the seed and path. */
function check<Ts>(property: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(property, { seed: SEED, numRuns });
}

// ---------------------------------------------------------------------------------------------
// A protobuf encoder for tests: messages as lists of fields, laid out in many equivalent ways

type Scalar = "varint" | "i32" | "i64";

/** One field of a message as the test writes it. */
type Field =
  | { readonly n: number; readonly kind: "varint"; readonly value: bigint }
  | { readonly n: number; readonly kind: "i32"; readonly value: number }
  | { readonly n: number; readonly kind: "i64"; readonly value: number }
  | { readonly n: number; readonly kind: "bytes"; readonly value: Uint8Array }
  /** `singular`: a non-repeated message field, which protobuf merges when it occurs again. */
  | { readonly n: number; readonly kind: "msg"; readonly value: Field[]; readonly singular?: boolean }
  | { readonly n: number; readonly kind: "group"; readonly value: Field[] }
  /** A repeated scalar field: all its values, packed or not as the layout decides. */
  | {
      readonly n: number;
      readonly kind: "repeated";
      readonly scalar: Scalar;
      readonly value: readonly (bigint | number)[];
    }
  /** A packed run, as laid out. */
  | {
      readonly n: number;
      readonly kind: "packed";
      readonly scalar: Scalar;
      readonly value: (bigint | number)[];
    };

const te = new TextEncoder();
const varint = (n: number, value: bigint | number): Field => ({ n, kind: "varint", value: BigInt(value) });
const str = (n: number, value: string): Field => ({ n, kind: "bytes", value: te.encode(value) });
const msg = (n: number, value: Field[], singular = false): Field => ({ n, kind: "msg", value, singular });
const rep = (n: number, scalar: Scalar, value: readonly (bigint | number)[]): Field => ({
  n,
  kind: "repeated",
  scalar,
  value,
});

function pushVarint(out: number[], value: bigint): void {
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

function pushScalar(out: number[], scalar: Scalar, value: bigint | number): void {
  if (scalar === "varint") {
    pushVarint(out, BigInt(value));
    return;
  }
  const b = new Uint8Array(scalar === "i32" ? 4 : 8);
  const view = new DataView(b.buffer);
  if (scalar === "i32") view.setFloat32(0, Number(value), true);
  else view.setFloat64(0, Number(value), true);
  out.push(...b);
}

const WIRE = { varint: 0, i64: 1, bytes: 2, msg: 2, packed: 2, group: 3, i32: 5 } as const;

function encode(fields: readonly Field[], out: number[] = []): number[] {
  for (const f of fields) {
    if (f.kind === "repeated") {
      encode(
        f.value.map((v) => ({ n: f.n, kind: f.scalar, value: v }) as Field),
        out,
      );
      continue;
    }
    pushVarint(out, BigInt(f.n * 8 + WIRE[f.kind]));
    switch (f.kind) {
      case "varint":
      case "i32":
      case "i64":
        pushScalar(out, f.kind, f.value);
        break;
      case "bytes":
        pushVarint(out, BigInt(f.value.length));
        out.push(...f.value);
        break;
      case "msg": {
        const inner = encode(f.value);
        pushVarint(out, BigInt(inner.length));
        out.push(...inner);
        break;
      }
      case "packed": {
        const inner: number[] = [];
        for (const v of f.value) pushScalar(inner, f.scalar, v);
        pushVarint(out, BigInt(inner.length));
        out.push(...inner);
        break;
      }
      case "group":
        encode(f.value, out);
        pushVarint(out, BigInt(f.n * 8 + 4));
        break;
    }
  }
  return out;
}

const toBytes = (fields: readonly Field[]): Uint8Array => Uint8Array.from(encode(fields));

/** A small deterministic generator for layout choices. */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

/** An unknown field: a number no ONNX message uses here, any wire type, groups nested. */
function unknownField(rand: (n: number) => number, depth = 0): Field {
  const n = [99, 1000, 4095, 2 ** 29 - 1][rand(4)]!;
  switch (rand(depth < 2 ? 5 : 4)) {
    case 0:
      return varint(n, -BigInt(rand(1000)) * 1_000_000_007n);
    case 1:
      return { n, kind: "i32", value: 1.5 };
    case 2:
      return { n, kind: "i64", value: -2.25 };
    case 3:
      return { n, kind: "bytes", value: Uint8Array.from([0x0a, 0xff, 0x1c, 0x00]) };
    default:
      return { n, kind: "group", value: [unknownField(rand, depth + 1), unknownField(rand, depth + 1)] };
  }
}

/**
 * A known field number written with a wire type its declaration does not have: protobuf reads it as
 * an unknown field, whatever its number. (A repeated scalar's packed form is not such a case.)
 */
function wrongWireField(f: Field, rand: (n: number) => number): Field | undefined {
  const wireOf = (x: Field): number => (x.kind === "repeated" ? WIRE[x.scalar] : WIRE[x.kind]);
  const own = wireOf(f);
  const options: Field[] = [
    varint(f.n, 5),
    { n: f.n, kind: "i32", value: 2 },
    { n: f.n, kind: "i64", value: 3 },
    { n: f.n, kind: "group", value: [varint(1, 1)] },
  ];
  if (f.kind === "varint" || f.kind === "i32" || f.kind === "i64") {
    options.push({ n: f.n, kind: "bytes", value: Uint8Array.from([1, 2]) });
  }
  const usable = options.filter((o) => wireOf(o) !== own);
  return usable.length > 0 ? usable[rand(usable.length)] : undefined;
}

/**
 * The same message laid out differently: repeated scalars packed, unpacked or both; singular message
 * fields possibly split in two occurrences; unknown and wrong-wire fields added; fields shuffled,
 * keeping the order of the fields that share a number (which protobuf preserves).
 */
function relayout(fields: readonly Field[], rand: (n: number) => number): Field[] {
  const atoms: Field[] = [];
  for (const f of fields) {
    if (f.kind === "repeated") {
      let i = 0;
      while (i < f.value.length) {
        const take = 1 + rand(f.value.length - i);
        const chunk = f.value.slice(i, i + take);
        if (rand(2)) atoms.push({ n: f.n, kind: "packed", scalar: f.scalar, value: [...chunk] });
        else for (const v of chunk) atoms.push({ n: f.n, kind: f.scalar, value: v } as Field);
        i += take;
      }
      if (f.value.length === 0 && rand(2))
        atoms.push({ n: f.n, kind: "packed", scalar: f.scalar, value: [] });
    } else if (f.kind === "msg") {
      const inner = relayout(f.value, rand);
      if (f.singular && rand(2)) {
        const cut = rand(inner.length + 1);
        atoms.push(msg(f.n, inner.slice(0, cut)), msg(f.n, inner.slice(cut)));
      } else atoms.push(msg(f.n, inner));
    } else atoms.push(f);
    if (rand(4) === 0) {
      const wrong = wrongWireField(f, rand);
      if (wrong) atoms.push(wrong);
    }
  }
  for (let k = rand(3); k > 0; k--) atoms.push(unknownField(rand));
  // Shuffle: a random interleaving of the per-number sequences.
  const queues = new Map<number, Field[]>();
  for (const a of atoms) queues.set(a.n, [...(queues.get(a.n) ?? []), a]);
  const out: Field[] = [];
  while (queues.size > 0) {
    const keys = [...queues.keys()];
    const key = keys[rand(keys.length)]!;
    const q = queues.get(key)!;
    out.push(q.shift()!);
    if (q.length === 0) queues.delete(key);
  }
  return out;
}

// A hand-encoded ModelProto (field numbers of onnx.proto) using every kind of field the reader reads.

const dim = (d: number | string): Field => msg(1, [typeof d === "number" ? varint(1, d) : str(2, d)]);
const valueInfo = (name: string, elemType: number, dims: (number | string)[]): Field =>
  msg(11, [
    str(1, name),
    msg(2, [msg(1, [varint(1, elemType), msg(2, dims.map(dim), true)], true)], true),
    str(3, `doc of ${name}`),
  ]);

const tensor = (n: number, singular = false): Field =>
  msg(
    n,
    [
      rep(1, "varint", [2, -3]), // dims, a negative one among them
      varint(2, 7), // int64
      rep(7, "varint", [-1n, 2n ** 62n, -(2n ** 63n), 0n, 5n, -6n]), // int64_data
      str(8, "shape_like"),
      msg(13, [str(1, "location"), str(2, "weights.bin")]),
      msg(13, [str(1, "offset"), str(2, "4096")]),
      msg(13, [str(1, "length"), str(2, "48")]),
      varint(14, 1), // data_location = EXTERNAL
    ],
    singular,
  );

const subgraph: Field = msg(
  6,
  [
    msg(1, [str(1, "a"), str(2, "b"), str(4, "Neg")]),
    str(2, "inner"),
    {
      n: 5,
      kind: "msg",
      value: [rep(1, "varint", [2]), varint(2, 1), rep(4, "i32", [0.5, -2]), str(8, "inner_w")],
    },
  ],
  true,
);

const MODEL: Field[] = [
  varint(1, 8), // ir_version
  str(2, "hand-built"),
  str(3, "0.1"),
  varint(5, -2), // model_version
  str(6, "a model laid out many ways"),
  msg(8, [str(1, ""), varint(2, 17)]),
  msg(8, [str(1, "com.example"), varint(2, 2)]),
  msg(14, [str(1, "k"), str(2, "v")]),
  msg(
    7,
    [
      msg(1, [
        str(1, "x"),
        str(1, "shape_like"),
        str(2, "y"),
        str(3, "node0"),
        str(4, "Reshape"),
        msg(5, [str(1, "allowzero"), varint(20, 2), varint(3, -1)]),
        msg(5, [str(1, "perm"), varint(20, 7), rep(8, "varint", [-1, 0, 2n ** 40n])]),
        msg(5, [str(1, "alpha"), varint(20, 1), { n: 2, kind: "i32", value: 0.75 }]),
        msg(5, [str(1, "scales"), varint(20, 6), rep(7, "i32", [1.5, -0.25])]),
        msg(5, [str(1, "mode"), varint(20, 3), str(4, "nearest")]),
        msg(5, [str(1, "value"), varint(20, 4), tensor(5, true)]),
        msg(5, [str(1, "body"), varint(20, 5), subgraph]),
        str(6, "node doc"),
        str(7, ""),
      ]),
      msg(1, [str(1, "y"), str(2, "z"), str(4, "Custom"), str(7, "com.example")]),
      str(2, "laid_out"),
      tensor(5),
      {
        n: 5,
        kind: "msg",
        value: [rep(1, "varint", [3]), varint(2, 11), rep(10, "i64", [Math.PI, -0, 1e-300]), str(8, "d")],
      },
      msg(5, [rep(1, "varint", [2]), varint(2, 8), str(6, "ab"), str(6, ""), str(8, "s")]),
      str(10, "graph doc"),
      valueInfo("x", 1, ["batch", 3, -1]),
      { ...valueInfo("z", 1, [4]), n: 12 },
      { ...valueInfo("y", 1, []), n: 13 },
    ],
    true,
  ),
];

describe("readModel on a hand-encoded model laid out in many ways", () => {
  const canonical = readModel(toBytes(MODEL));

  it("reads the canonical layout as written", () => {
    const m = canonical;
    expect([m.irVersion, m.producerName, m.producerVersion, m.modelVersion, m.docString]).toEqual([
      8,
      "hand-built",
      "0.1",
      -2,
      "a model laid out many ways",
    ]);
    expect(m.opsets).toEqual(
      new Map([
        ["", 17],
        ["com.example", 2],
      ]),
    );
    expect(m.metadataProps).toEqual(new Map([["k", "v"]]));
    const g = m.graph;
    expect([g.name, g.docString]).toEqual(["laid_out", "graph doc"]);
    const [n0, n1] = g.nodes;
    expect([n0!.name, n0!.opType, n0!.inputs, n0!.outputs, n0!.docString]).toEqual([
      "node0",
      "Reshape",
      ["x", "shape_like"],
      ["y"],
      "node doc",
    ]);
    expect(n1!.domain).toBe("com.example");
    const a = (name: string) => n0!.attributes.get(name)!;
    expect(a("allowzero").i).toBe(-1);
    expect(a("perm").ints).toEqual([-1, 0, 2 ** 40]);
    expect(a("alpha").f).toBe(0.75);
    expect(a("scales").floats).toEqual([1.5, -0.25]);
    expect(a("mode").s).toBe("nearest");
    expect(a("value").t!.dims).toEqual([2, -3]);
    expect(a("body").g!.nodes[0]!.opType).toBe("Neg");
    expect(tensorValues(a("body").g!.initializers.get("inner_w")!)).toEqual([0.5, -2]);
    const shapeLike = g.initializers.get("shape_like")!;
    expect(shapeLike.values).toEqual([-1, 2 ** 62, -(2 ** 63), 0, 5, -6]);
    expect(shapeLike.external).toBe(true);
    expect(shapeLike.externalData).toMatchObject({ location: "weights.bin", offset: 4096, length: 48 });
    expect(tensorValues(g.initializers.get("d")!)).toEqual([Math.PI, -0, 1e-300]);
    expect(g.initializers.get("s")!.strings?.map((s) => new TextDecoder().decode(s))).toEqual(["ab", ""]);
    expect(g.inputs).toEqual([
      { name: "x", typeKind: "tensor", elemType: 1, dims: ["batch", 3, -1], docString: "doc of x" },
    ]);
    expect(g.outputs.map((o) => o.name)).toEqual(["z"]);
    expect(g.valueInfo[0]!.dims).toEqual([]);
  });

  it("reads the same model from any equivalent layout", () => {
    check(
      fc.property(fc.integer(), (seed) => {
        const bytes = toBytes(relayout(MODEL, prng(seed)));
        expect(readModel(bytes)).toEqual(canonical);
        // fieldSpans tiles every message it is given, unknown fields and groups included.
        let end = 0;
        for (const s of fieldSpans(bytes)) {
          expect(s.start).toBe(end);
          end = s.end;
        }
        expect(end).toBe(bytes.length);
      }),
      300,
    );
  });

  it("skips a group up to its own end key, nested groups included", () => {
    const g: Field = { n: 9, kind: "group", value: [{ n: 9, kind: "group", value: [varint(9, 1)] }] };
    const bytes = toBytes([varint(1, 3), g, varint(1, 4)]);
    expect([...fieldSpans(bytes)].map((s) => [s.field, s.wire, s.end - s.start])).toEqual([
      [1, 0, 2],
      [9, 3, 6], // start key, start key, 9 = 1, end key, end key
      [1, 0, 2],
    ]);
    const model = toBytes([g, msg(7, [str(2, "g"), g]), varint(1, 9)]);
    expect(readModel(model).irVersion).toBe(9);
    expect(readModel(model).graph.name).toBe("g");
  });
});

describe("readModel on malformed bytes", () => {
  const bytes = toBytes(MODEL);

  it("throws an Error for a truncated model or a mismatched group, and never hangs", () => {
    check(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), (cut) => {
        try {
          readModel(bytes.subarray(0, cut));
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
        }
      }),
      200,
    );
    expect(() => readModel(Uint8Array.from([0x0b, 0x08, 0x01]))).toThrow(/Truncated protobuf group/);
    expect(() => readModel(Uint8Array.from([0x0b, 0x14]))).toThrow(/closed as group 2/);
    expect(() => readModel(Uint8Array.from([0x0c]))).toThrow(/without its start/);
    expect(() => readModel(Uint8Array.from([0x0e]))).toThrow(/wire type 6/);
    expect(() => readModel(Uint8Array.from([0x00]))).toThrow(/field key 0/);
    expect(() => readModel(Uint8Array.from([0x3a, 0x05, 0x12]))).toThrow(/Truncated/);
  });

  it("throws an Error or reads something for random byte changes, never anything else", () => {
    check(
      fc.property(
        fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.nat(255)), { minLength: 1, maxLength: 4 }),
        (edits) => {
          const b = Uint8Array.from(bytes);
          for (const [at, value] of edits) b[at] = value;
          try {
            readModel(b);
            [...fieldSpans(b)];
          } catch (error) {
            expect(error).toBeInstanceOf(Error);
          }
        },
      ),
      300,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Round trip through our writer

const name = fc.string({ unit: "grapheme", maxLength: 8 });
const dims = fc.array(fc.nat(5), { maxLength: 4 });

const floatTensor: fc.Arbitrary<TensorProtoData> = fc.tuple(name, dims).chain(([n, d]) =>
  fc
    .array(fc.float({ noNaN: true }), {
      minLength: d.reduce((a, b) => a * b, 1),
      maxLength: d.reduce((a, b) => a * b, 1),
    })
    .map((values) => {
      const rawData = new Uint8Array(values.length * 4);
      const view = new DataView(rawData.buffer);
      values.forEach((v, i) => {
        view.setFloat32(i * 4, v, true);
      });
      return { name: n, dataType: DataType.FLOAT, dims: d, rawData };
    }),
);

const int64Tensor: fc.Arbitrary<TensorProtoData> = fc
  .tuple(name, fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { maxLength: 6 }))
  .map(([n, values]) => {
    const rawData = new Uint8Array(values.length * 8);
    const view = new DataView(rawData.buffer);
    values.forEach((v, i) => {
      view.setBigInt64(i * 8, v, true);
    });
    return { name: n, dataType: DataType.INT64, dims: [values.length], rawData };
  });

const tensorArb = fc.oneof(floatTensor, int64Tensor);
const int64 = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
);

const attribute = fc.oneof(
  fc.record({ kind: fc.constant("float" as const), value: fc.float({ noNaN: true }) }),
  fc.record({ kind: fc.constant("int" as const), value: int64 }),
  fc.record({ kind: fc.constant("string" as const), value: name }),
  fc.record({ kind: fc.constant("tensor" as const), value: tensorArb }),
  fc.record({
    kind: fc.constant("floats" as const),
    value: fc.array(fc.float({ noNaN: true }), { maxLength: 5 }),
  }),
  fc.record({ kind: fc.constant("ints" as const), value: fc.array(int64, { maxLength: 5 }) }),
);

const node: fc.Arbitrary<NodeProtoData> = fc.record(
  {
    opType: name,
    inputs: fc.array(name, { maxLength: 3 }),
    outputs: fc.array(name, { maxLength: 3 }),
    name,
    domain: name,
    attributes: fc
      .uniqueArray(fc.tuple(name, attribute), { selector: ([n]) => n, maxLength: 4 })
      .map((list) => list.map(([n, a]) => ({ name: n, ...a }))),
  },
  { requiredKeys: ["opType", "inputs", "outputs"] },
);

const valueInfoArb: fc.Arbitrary<ValueInfoProtoData> = fc.record({
  name,
  elemType: fc.constantFrom(DataType.FLOAT, DataType.INT64),
  dims: fc.array(fc.oneof(fc.nat(4096), name), { maxLength: 4 }),
});

const modelArb: fc.Arbitrary<ModelProtoData> = fc.record({
  graph: fc.record(
    {
      name,
      nodes: fc.array(node, { maxLength: 4 }),
      initializers: fc.uniqueArray(tensorArb, { selector: (t) => t.name, maxLength: 3 }),
      inputs: fc.array(valueInfoArb, { maxLength: 2 }),
      outputs: fc.array(valueInfoArb, { maxLength: 2 }),
      valueInfo: fc.array(valueInfoArb, { maxLength: 2 }),
    },
    { requiredKeys: ["name", "nodes", "initializers", "inputs", "outputs"] },
  ),
  irVersion: fc.integer({ min: 3, max: 11 }),
  opsetVersion: fc.integer({ min: 1, max: 23 }),
  producerName: name,
});

/** What readModel should return for `m`, in its own terms. */
function expectedRead(m: ModelProtoData): unknown {
  const tensor = (t: TensorProtoData) => ({
    name: t.name,
    dims: t.dims,
    dataType: t.dataType,
    rawData: t.rawData,
  });
  const info = (v: ValueInfoProtoData) => ({
    name: v.name,
    typeKind: "tensor",
    elemType: v.elemType,
    dims: v.dims,
  });
  return {
    irVersion: m.irVersion,
    producerName: m.producerName,
    opsets: new Map([["", m.opsetVersion]]),
    nodes: m.graph.nodes.map((n) => ({
      opType: n.opType,
      inputs: n.inputs,
      outputs: n.outputs,
      name: n.name ?? "",
      domain: n.domain ?? "",
      attributes: (n.attributes ?? []).map((a) => {
        switch (a.kind) {
          case "float":
            return { name: a.name, f: Math.fround(a.value) };
          case "int":
            return { name: a.name, i: Number(a.value) };
          case "string":
            return { name: a.name, s: a.value };
          case "tensor":
            return { name: a.name, t: tensor(a.value) };
          case "floats":
            return { name: a.name, floats: a.value.map(Math.fround) };
          case "ints":
            return { name: a.name, ints: a.value.map(Number) };
        }
        return {};
      }),
    })),
    initializers: m.graph.initializers.map(tensor),
    inputs: m.graph.inputs.map(info),
    outputs: m.graph.outputs.map(info),
    valueInfo: (m.graph.valueInfo ?? []).map(info),
  };
}

function actualRead(m: ReadModel): unknown {
  const tensor = (t: NonNullable<ReturnType<ReadModel["graph"]["initializers"]["get"]>>) => ({
    name: t.name,
    dims: t.dims,
    dataType: t.dataType,
    rawData: t.rawData,
  });
  const info = (v: ReadModel["graph"]["inputs"][number]) => ({
    name: v.name,
    typeKind: v.typeKind,
    elemType: v.elemType,
    dims: v.dims,
  });
  return {
    irVersion: m.irVersion,
    producerName: m.producerName,
    opsets: m.opsets,
    nodes: m.graph.nodes.map((n) => ({
      opType: n.opType,
      inputs: n.inputs,
      outputs: n.outputs,
      name: n.name,
      domain: n.domain,
      attributes: [...n.attributes.values()].map((a) => {
        const kinds = { 1: "f", 2: "i", 3: "s", 4: "t", 6: "floats", 7: "ints" } as const;
        const key = kinds[a.type as keyof typeof kinds];
        const value = key === "t" ? tensor(a.t!) : a[key];
        return { name: a.name, [key]: value };
      }),
    })),
    initializers: [...m.graph.initializers.values()].map(tensor),
    inputs: m.graph.inputs.map(info),
    outputs: m.graph.outputs.map(info),
    valueInfo: m.graph.valueInfo.map(info),
  };
}

describe("readModel on models from our writer (proto.ts)", () => {
  it("reads back what encodeModel wrote", () => {
    check(
      fc.property(modelArb, (m) => {
        expect(actualRead(readModel(encodeModel(m)))).toEqual(expectedRead(m));
      }),
      200,
    );
  });
});
