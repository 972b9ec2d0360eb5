// valuePrecision (onnx/value-precision.ts): the precision a graph computes one value in, from the
// tensors, casts and quantized operations it depends on, and nothing else in the graph.

import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../src/segment/onnx/graph-builder.js";
import { DataType, float16Bytes } from "../src/segment/onnx/proto.js";
import { readModel } from "../src/segment/onnx/proto-reader.js";
import { valuePrecision } from "../src/segment/onnx/value-precision.js";

/** A graph with a float32 input `x` [2, 2]; `build` adds nodes and returns the outputs by name. */
function model(build: (g: GraphBuilder, x: { name: string }) => Record<string, { name: string }>) {
  const g = new GraphBuilder("precision_TEST");
  const x = g.input("x", "float", [2, 2]);
  for (const [name, v] of Object.entries(build(g, x))) g.output(v, name, "float", [2, 2]);
  return readModel(g.toModel());
}

describe("valuePrecision", () => {
  it("is float32 for float32 arithmetic, and undefined for a name the graph lacks", () => {
    const m = model((g, x) => ({ y: g.op("Mul", [g.op("Sin", [x]), g.constant(2)]) }));
    expect(valuePrecision(m, "y")).toBe("float32");
    expect(valuePrecision(m, "x")).toBe("float32");
    expect(valuePrecision(m, "nope")).toBeUndefined();
  });

  it("is float16 for a float16 initializer widened by a Cast, or a detour through a float16 Cast", () => {
    const m = model((g, x) => ({
      stored: g.op("Cast", [g.initFloat16("pe", [0.1, 0.2, 0.3, 0.4], [2, 2])], { to: 1 }),
      detour: g.op("Cast", [g.op("Cast", [x], { to: 10 })], { to: 1 }),
      bfloat: g.op("Cast", [g.op("Cast", [x], { to: 16 })], { to: 1 }),
    }));
    expect(valuePrecision(m, "stored")).toBe("float16");
    expect(valuePrecision(m, "detour")).toBe("float16");
    expect(valuePrecision(m, "bfloat")).toBe("bfloat16");
  });

  it("is float16 for a ConstantOfShape or Constant of float16 values", () => {
    const half = { name: "v", dataType: DataType.FLOAT16, dims: [1], rawData: float16Bytes([1]) };
    const m = model((g, x) => ({
      filled: g.op("Add", [
        x,
        g.op("ConstantOfShape", [g.constantInt64([2, 2])], { value: { tensor: half } }),
      ]),
      fromConstant: g.op("Add", [x, g.op("Constant", [], { value: { tensor: { ...half, dims: [] } } })]),
    }));
    expect(valuePrecision(m, "filled")).toBe("float16");
    expect(valuePrecision(m, "fromConstant")).toBe("float16");
  });

  it("is int8 behind a dynamic quantization (DynamicQuantizeLinear → MatMulInteger), the lowest of several", () => {
    const m = model((g, x) => {
      const [q, scale, zero] = g.opN("DynamicQuantizeLinear", [x], 3);
      const product = g.op("MatMulInteger", [q!, q!, zero!, zero!]);
      const dequantized = g.op("Mul", [g.op("Cast", [product], { to: 1 }), g.op("Mul", [scale!, scale!])]);
      return { y: g.op("Add", [dequantized, g.op("Cast", [g.op("Cast", [x], { to: 10 })], { to: 1 })]) };
    });
    expect(valuePrecision(m, "y")).toBe("int8");
  });

  it("is not lowered by what a value only takes the shape of, or by tensors that do not feed it", () => {
    const m = model((g, x) => {
      const half = g.op("Cast", [x], { to: 10 });
      const shaped = g.op("Expand", [g.op("Sin", [x]), g.op("Shape", [half])]);
      const [q] = g.opN("DynamicQuantizeLinear", [x], 3);
      const elsewhere = g.op("Cast", [q!], { to: 1 });
      return { shaped, elsewhere };
    });
    expect(valuePrecision(m, "shaped")).toBe("float32");
    expect(valuePrecision(m, "elsewhere")).toBe("int8");
  });
});
