// proto-reader.ts on ONNX files written by other tools (onnx.helper + onnx.save, torch.onnx.export):
// everything it reads must equal what the official protobuf library read back from the same files
// (test/fixtures/onnx/expected.json, written by make-fixtures.py next to the files).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  externalDataFiles,
  externalTensors,
  type ReadAttribute,
  type ReadGraph,
  type ReadModel,
  type ReadSparseTensor,
  type ReadTensor,
  type ReadValueInfo,
  readModel,
  tensorValues,
} from "../src/segment/onnx/proto-reader.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "onnx");
const expected = JSON.parse(readFileSync(join(FIXTURES, "expected.json"), "utf8")) as Record<string, unknown>;
const textDecoder = new TextDecoder();
const read = (name: string): ReadModel => readModel(readFileSync(join(FIXTURES, name)));

// The dump format of make-fixtures.py, built from what proto-reader.ts read.

function dumpTensor(t: ReadTensor): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: t.name,
    dims: t.dims,
    dataType: t.dataType,
    docString: t.docString,
    external: t.external,
    externalData: t.externalData?.entries ?? [],
  };
  if (t.external) return out;
  const values = t.dataType === 8 ? (t.strings ?? []).map((s) => textDecoder.decode(s)) : tensorValues(t);
  if (!values) throw new Error(`tensorValues could not decode ${t.name} (type ${t.dataType})`);
  if (values.length <= 16) out.values = values;
  else {
    let sum = 0;
    for (const v of values as number[]) sum += v;
    Object.assign(out, { count: values.length, head: values.slice(0, 8), sum });
  }
  return out;
}

const dumpSparse = (s: ReadSparseTensor) => ({
  values: dumpTensor(s.values),
  indices: dumpTensor(s.indices),
  dims: s.dims,
});

function dumpAttribute(a: ReadAttribute): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: a.name,
    type: a.type,
    refAttrName: a.refAttrName,
    docString: a.docString,
  };
  if (a.f !== undefined) out.f = a.f;
  if (a.i !== undefined) out.i = a.i;
  if (a.s !== undefined) out.s = a.s;
  if (a.t) out.t = dumpTensor(a.t);
  if (a.g) out.g = dumpGraph(a.g);
  if (a.sparseTensor) out.sparseTensor = dumpSparse(a.sparseTensor);
  return {
    ...out,
    floats: a.floats,
    ints: a.ints,
    strings: a.strings,
    tensors: a.tensors.map(dumpTensor),
    graphs: a.graphs.map(dumpGraph),
    sparseTensors: a.sparseTensors.map(dumpSparse),
  };
}

const dumpValueInfo = (v: ReadValueInfo) => ({
  name: v.name,
  docString: v.docString,
  typeKind: v.typeKind ?? null,
  elemType: v.elemType,
  dims: v.dims ?? null,
});

function dumpGraph(g: ReadGraph): Record<string, unknown> {
  return {
    name: g.name,
    docString: g.docString,
    nodes: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      inputs: n.inputs,
      outputs: n.outputs,
      docString: n.docString,
      attributes: [...n.attributes.values()].map(dumpAttribute),
    })),
    initializers: [...g.initializers.values()].map(dumpTensor),
    sparseInitializers: g.sparseInitializers.map(dumpSparse),
    inputs: g.inputs.map(dumpValueInfo),
    outputs: g.outputs.map(dumpValueInfo),
    valueInfo: g.valueInfo.map(dumpValueInfo),
  };
}

const dumpModel = (m: ReadModel) => ({
  irVersion: m.irVersion,
  producerName: m.producerName,
  producerVersion: m.producerVersion,
  domain: m.domain,
  modelVersion: m.modelVersion,
  docString: m.docString,
  opsets: Object.fromEntries(m.opsets),
  metadataProps: Object.fromEntries(m.metadataProps),
  graph: dumpGraph(m.graph),
});

describe("readModel on files written by onnx (Python) and torch.onnx.export", () => {
  for (const name of ["relu.onnx", "everything.onnx", "torch-attention.onnx"]) {
    it(`${name}: every field read equals what the official protobuf library read`, () => {
      expect(dumpModel(read(name))).toEqual(expected[name]);
    });
  }

  it("relu.onnx: the one Relu node, its symbolic batch axis and doc strings", () => {
    const m = read("relu.onnx");
    expect(m.producerName).toBe("make-fixtures.py");
    expect(m.opsets).toEqual(new Map([["", 17]]));
    expect(m.graph.nodes.map((n) => [n.opType, n.inputs, n.outputs, n.docString])).toEqual([
      ["Relu", ["X"], ["Y"], "Y = max(X, 0)"],
    ]);
    expect(m.graph.inputs[0]).toMatchObject({ name: "X", elemType: 1, dims: ["N", 3] });
  });

  it("everything.onnx: negative ints, every attribute kind, typed tensors, subgraphs", () => {
    const m = read("everything.onnx");
    expect(m.modelVersion).toBe(-3);
    expect(m.metadataProps.get("note")).toBe("ünicode ✓");
    expect(m.opsets.get("com.example")).toBe(1);
    const g = m.graph;
    const init = (n: string): ReadTensor => g.initializers.get(n)!;
    expect(tensorValues(init("int64_negative"))).toEqual([-1, 0, 1, -(2 ** 63), 2 ** 63]);
    expect(tensorValues(init("int32_negative"))).toEqual([-(2 ** 31), -1, 2 ** 31 - 1]);
    expect(tensorValues(init("shape_negative"))).toEqual([-1, 2]);
    expect(tensorValues(init("uint64_big"))).toEqual([2 ** 64, 1]);
    expect(tensorValues(init("double_data"))).toEqual([Math.PI, -1e300, 5e-324]);
    expect(tensorValues(init("float16_bits"))).toEqual([1, -2.5, 65504]);
    expect(tensorValues(init("bfloat16_bits"))).toEqual([1, -3]);
    expect(tensorValues(init("flags"))).toEqual([1, 0, 1]);
    expect(tensorValues(init("empty"))).toEqual([]);
    expect(init("strings").strings?.map((s) => textDecoder.decode(s))).toEqual(["alpha", "βeta", ""]);
    expect(init("strings").dims).toEqual([3]);

    const node = g.nodes.find((n) => n.opType === "Everything")!;
    expect(node.domain).toBe("com.example");
    const a = (n: string): ReadAttribute => node.attributes.get(n)!;
    expect(a("i").i).toBe(-7);
    expect(a("i_min").i).toBe(-(2 ** 63));
    expect(a("ints").ints).toEqual([-1, 0, 2 ** 40, -(2 ** 40)]);
    expect(a("floats").floats).toEqual([1.5, -0.5]);
    expect(a("s").s).toBe("héllo");
    expect(a("strings").strings).toEqual(["a", "", "ü"]);
    expect(tensorValues(a("t").t!)).toEqual([-3, 4]);
    expect(a("g").g!.nodes.map((n) => n.opType)).toEqual(["Identity"]);
    expect(a("graphs").graphs.map((sub) => sub.name)).toEqual(["attr_g0", "attr_g1"]);
    expect(a("tensors").tensors.map(tensorValues)).toEqual([[0.5], [-5, 6]]);
    expect(tensorValues(a("sparse").sparseTensor!.values)).toEqual([2.5]);
    expect(a("sparse_list").sparseTensors[0]!.dims).toEqual([2, 4]);
    expect([a("tp").type, a("type_protos").type]).toEqual([13, 14]);
    expect(a("empty_ints")).toMatchObject({ type: 7, ints: [] });
    expect(a("f")).toMatchObject({ f: 0.25, docString: "a float attribute" });

    const loop = g.nodes.find((n) => n.opType === "Loop")!;
    expect(loop.attributes.get("body")!.g!.nodes.map((n) => n.opType)).toEqual(["Identity", "Add"]);
    const ifNode = g.nodes.find((n) => n.opType === "If")!;
    expect(ifNode.attributes.get("else_branch")!.g!.nodes[0]!.opType).toBe("Neg");
    expect(g.valueInfo.map((v) => [v.name, v.typeKind, v.dims])).toEqual([
      ["mm", "tensor", ["N", 2]],
      ["relu_out", "tensor", undefined],
      ["unused_sequence", "sequence", undefined],
      ["unused_sparse", "sparse_tensor", [2, 4]],
    ]);
    expect(g.outputs.find((o) => o.name === "loop_out")!.dims).toEqual(["N", "?"]);
  });

  it("everything.onnx: external data references, and the bytes they point at", () => {
    const m = read("everything.onnx");
    expect(externalDataFiles(m)).toEqual(["everything-weights-a.bin", "everything-weights-b.bin"]);
    const refs = externalTensors(m).map(({ tensor, location }) => [
      tensor.name,
      location,
      tensor.externalData?.offset,
      tensor.externalData?.length,
    ]);
    expect(refs).toEqual([
      ["ext_a1", "everything-weights-a.bin", 0, 16],
      ["ext_a2", "everything-weights-a.bin", 16, 24],
      ["ext_b", "everything-weights-b.bin", undefined, undefined],
    ]);
    const floatsAt = (tensor: ReadTensor): number[] => {
      const file = readFileSync(join(FIXTURES, tensor.externalData!.location));
      const offset = tensor.externalData!.offset ?? 0;
      const length = tensor.externalData!.length ?? file.length - offset;
      return tensorValues({ ...tensor, external: false, rawData: file.subarray(offset, offset + length) })!;
    };
    const ext = (n: string): ReadTensor => m.graph.initializers.get(n)!;
    expect(floatsAt(ext("ext_a1"))).toEqual([1, 2, 3, 4]);
    expect(floatsAt(ext("ext_a2"))).toEqual([0, 0.5, 1, 1.5, 2, 2.5]);
    expect(floatsAt(ext("ext_b"))).toEqual([-1, -2, -3, -4, -5]);
    expect(tensorValues(ext("ext_b"))).toBeUndefined(); // not inline
  });

  it("torch-attention.onnx: the exporter's graph as written", () => {
    const m = read("torch-attention.onnx");
    expect(m.producerName).toBe("pytorch");
    expect(m.opsets.get("")).toBe(17);
    const ops = m.graph.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === "Softmax")).toHaveLength(2);
    expect(ops.filter((o) => o === "Einsum")).toHaveLength(4);
    expect(m.graph.initializers.get("blocks.1.attn.rel_pos_h")!.dims).toEqual([15, 8]);
  });
});
