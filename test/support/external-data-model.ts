// A tiny ONNX model that keeps its weights in two external-data files, as large exports do
// (sam-vit-huge's encoder): y = x + a + b, with `a` in one data file and `b` in another. Written with
// our protobuf writer; onnxruntime loads it from a path and needs both files beside it.

import { ProtoWriter } from "../../src/segment/onnx/proto.js";

const FLOAT = 1;
const EXTERNAL = 1;

function valueInfo(name: string, size: number): ProtoWriter {
  const dim = new ProtoWriter();
  dim.int(1, size); // dim_value
  const shape = new ProtoWriter();
  shape.message(1, dim);
  const tensorType = new ProtoWriter();
  tensorType.int(1, FLOAT); // elem_type
  tensorType.message(2, shape);
  const type = new ProtoWriter();
  type.message(1, tensorType); // TypeProto.tensor_type
  const w = new ProtoWriter();
  w.string(1, name);
  w.message(2, type);
  return w;
}

function entry(key: string, value: string): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, key);
  w.string(2, value);
  return w;
}

/** A TensorProto whose data lives at `location` (dims, data_type, name, external_data, data_location). */
function externalTensor(name: string, size: number, location: string): ProtoWriter {
  const w = new ProtoWriter();
  w.int(1, size); // dims
  w.int(2, FLOAT); // data_type
  w.string(8, name);
  w.message(13, entry("location", location)); // external_data
  w.message(13, entry("offset", "0"));
  w.message(13, entry("length", String(size * 4)));
  w.int(14, EXTERNAL); // data_location
  return w;
}

function add(a: string, b: string, out: string): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, a);
  w.string(1, b);
  w.string(2, out);
  w.string(4, "Add");
  return w;
}

/** The model and its two data files, by file name (the data files sit beside the model). */
export function externalDataModel(params: {
  a: Float32Array;
  b: Float32Array;
  /** @default "weights-a.bin" */
  locationA?: string;
  /** @default "weights-b.bin" */
  locationB?: string;
}): { model: Uint8Array; files: Record<string, Uint8Array> } {
  const n = params.a.length;
  const la = params.locationA ?? "weights-a.bin";
  const lb = params.locationB ?? "weights-b.bin";
  const graph = new ProtoWriter();
  graph.message(1, add("x", "a", "xa"));
  graph.message(1, add("xa", "b", "y"));
  graph.string(2, "external-data-fixture");
  graph.message(5, externalTensor("a", n, la));
  graph.message(5, externalTensor("b", n, lb));
  graph.message(11, valueInfo("x", n));
  graph.message(12, valueInfo("y", n));
  const model = new ProtoWriter();
  model.int(1, 8); // ir_version
  model.string(2, "persam-db tests");
  model.message(7, graph);
  const opset = new ProtoWriter();
  opset.string(1, "");
  opset.int(2, 17);
  model.message(8, opset);
  const bytes = (v: Float32Array) =>
    new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
  return { model: model.finish(), files: { [la]: bytes(params.a), [lb]: bytes(params.b) } };
}
