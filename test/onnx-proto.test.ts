// The protobuf writer and graph DSL, checked by running the models they produce in onnxruntime.

import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../src/segment/onnx/graph-builder.js";
import { DataType, encodeModel, ProtoWriter } from "../src/segment/onnx/proto.js";
import { createSession, fromOrt, ortFloat32 } from "../src/segment/sam/ort.js";

function seq(n: number, scale = 0.1, offset = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(i * 1.7 + offset) * scale * ((i % 7) + 1);
  return out;
}

function expectClose(actual: Float32Array, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i]!;
    if (Math.abs(actual[i]! - e) > tol * Math.max(1, Math.abs(e))) {
      throw new Error(`Element ${i}: expected ${e} but received ${actual[i]}`);
    }
  }
}

/** erf by its Maclaurin series (double precision for |x| < 3). */
function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

async function runModel(
  bytes: Uint8Array,
  feeds: Record<string, { data: Float32Array; dims: number[] }>,
): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
  const session = await createSession(bytes, { threads: 1 });
  try {
    const ortFeeds: Record<string, ReturnType<typeof ortFloat32>> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = ortFloat32(v.data, v.dims);
    const out = await session.run(ortFeeds);
    const res: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
    for (const [k, v] of Object.entries(out)) res[k] = fromOrt(v);
    return res;
  } finally {
    await session.release();
  }
}

describe("ProtoWriter", () => {
  it("encodes varints as protobuf does, negatives as 10-byte two's complement", () => {
    const w = new ProtoWriter();
    w.varint(1);
    w.varint(300);
    w.varint(-1);
    w.varint(2 ** 40);
    expect([...w.finish()]).toEqual([
      0x01,
      0xac,
      0x02,
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
      0x80,
      0x80,
      0x80,
      0x80,
      0x80,
      0x20,
    ]);
  });

  it("writes keys, strings and nested messages with their lengths", () => {
    const inner = new ProtoWriter();
    inner.int(1, 150);
    const w = new ProtoWriter();
    w.string(2, "ab");
    w.message(3, inner);
    w.float(4, 1);
    expect([...w.finish()]).toEqual([0x12, 2, 0x61, 0x62, 0x1a, 3, 0x08, 0x96, 0x01, 0x25, 0, 0, 0x80, 0x3f]);
  });

  it("rejects non-integer varints", () => {
    expect(() => new ProtoWriter().varint(1.5)).toThrow(
      "Expected a safe integer for a protobuf varint but received 1.5",
    );
  });
});

describe("ONNX models from the writer run in onnxruntime", () => {
  it("runs Add with a dynamic axis, built directly from protobuf data", async () => {
    const bytes = encodeModel({
      graph: {
        name: "add",
        nodes: [{ opType: "Add", inputs: ["a", "b"], outputs: ["y"] }],
        initializers: [
          {
            name: "b",
            dataType: DataType.FLOAT,
            dims: [2],
            rawData: new Uint8Array(new Float32Array([1, -2]).buffer),
          },
        ],
        inputs: [{ name: "a", elemType: DataType.FLOAT, dims: ["N", 2] }],
        outputs: [{ name: "y", elemType: DataType.FLOAT, dims: ["N", 2] }],
      },
    });
    const session = await createSession(bytes, { threads: 1 });
    expect(session.inputNames).toEqual(["a"]);
    expect(session.outputNames).toEqual(["y"]);
    const out = await session.run({ a: ortFloat32(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]) });
    expect([...fromOrt(out.y!).data]).toEqual([2, 0, 4, 2, 6, 4]);
    await session.release();
  });

  it("runs MatMul, Gemm(transB, alpha) and Reshape with a -1 int64 shape", async () => {
    const g = new GraphBuilder("mm");
    const x = g.input("x", "float", ["N", 3]);
    const w = g.initFloat("w", seq(12), [3, 4]);
    const m = g.op("MatMul", [x, w]);
    const wt = g.initFloat("wt", seq(8, 0.2, 1), [2, 4]);
    const bias = g.initFloat("b", [0.5, -0.25], [2]);
    const gm = g.op("Gemm", [m, wt, bias], { transB: 1, alpha: { float: 2 } });
    const r = g.op("Reshape", [gm, g.constantInt64([-1])]);
    g.output(r, "y", "float", ["M"]);
    const xs = seq(6, 1, 2);
    const out = await runModel(g.toModel(), { x: { data: xs, dims: [2, 3] } });
    const W = seq(12);
    const Wt = seq(8, 0.2, 1);
    const expected: number[] = [];
    for (let n = 0; n < 2; n++) {
      const mrow = [0, 1, 2, 3].map((j) => [0, 1, 2].reduce((s, k) => s + xs[n * 3 + k]! * W[k * 4 + j]!, 0));
      for (let o = 0; o < 2; o++) {
        const dot = mrow.reduce((s, v, j) => s + v * Wt[o * 4 + j]!, 0);
        expected.push(2 * dot + [0.5, -0.25][o]!);
      }
    }
    expect(out.y!.dims).toEqual([4]);
    expectClose(out.y!.data, expected);
  });

  it("runs Conv (strides) and ConvTranspose (k=2, s=2, weight [in,out,2,2])", async () => {
    const g = new GraphBuilder("conv");
    const x = g.input("x", "float", [1, 2, 4, 4]);
    const cw = seq(3 * 2 * 2 * 2, 0.3);
    const c = g.op(
      "Conv",
      [x, g.initFloat("cw", cw, [3, 2, 2, 2]), g.initFloat("cb", [0.1, 0.2, 0.3], [3])],
      {
        strides: [2, 2],
        kernel_shape: [2, 2],
      },
    );
    const tw = seq(3 * 2 * 2 * 2, 0.4, 3);
    const t = g.op(
      "ConvTranspose",
      [c, g.initFloat("tw", tw, [3, 2, 2, 2]), g.initFloat("tb", [-1, 1], [2])],
      {
        strides: [2, 2],
        kernel_shape: [2, 2],
      },
    );
    g.output(c, "c", "float", [1, 3, 2, 2]);
    g.output(t, "t", "float", [1, 2, 4, 4]);
    const xs = seq(32, 1, 5);
    const out = await runModel(g.toModel(), { x: { data: xs, dims: [1, 2, 4, 4] } });
    const cExp = new Float32Array(12);
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++) {
          let s = [0.1, 0.2, 0.3][o]!;
          for (let ci = 0; ci < 2; ci++)
            for (let a = 0; a < 2; a++)
              for (let b = 0; b < 2; b++)
                s += xs[ci * 16 + (2 * i + a) * 4 + 2 * j + b]! * cw[((o * 2 + ci) * 2 + a) * 2 + b]!;
          cExp[o * 4 + i * 2 + j] = s;
        }
    expectClose(out.c!.data, cExp);
    const tExp = new Float32Array(32);
    for (let o = 0; o < 2; o++)
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++)
          for (let a = 0; a < 2; a++)
            for (let b = 0; b < 2; b++) {
              let s = [-1, 1][o]!;
              for (let ci = 0; ci < 3; ci++)
                s += cExp[ci * 4 + i * 2 + j]! * tw[((ci * 2 + o) * 2 + a) * 2 + b]!;
              tExp[o * 16 + (2 * i + a) * 4 + 2 * j + b] = s;
            }
    expectClose(out.t!.data, tExp);
  });

  it("runs Softmax(axis -1), LayerNormalization(epsilon) and Erf", async () => {
    const g = new GraphBuilder("norm");
    const x = g.input("x", "float", [2, 5]);
    g.output(g.op("Softmax", [x], { axis: -1 }), "s", "float", [2, 5]);
    const ln = g.op("LayerNormalization", [x, g.constant([1, 2, 3, 4, 5]), g.constant([0, 0, 0, 0, 1])], {
      axis: -1,
      epsilon: { float: 0.5 },
    });
    g.output(ln, "ln", "float", [2, 5]);
    g.output(g.op("Erf", [x]), "e", "float", [2, 5]);
    const xs = seq(10, 0.4, 7); // |x| < 3, where the erf series below is exact to double precision
    const out = await runModel(g.toModel(), { x: { data: xs, dims: [2, 5] } });
    const sExp: number[] = [];
    const lnExp: number[] = [];
    for (let r = 0; r < 2; r++) {
      const row = [...xs.subarray(r * 5, r * 5 + 5)];
      const mx = Math.max(...row);
      const ex = row.map((v) => Math.exp(v - mx));
      const sum = ex.reduce((a, b) => a + b, 0);
      sExp.push(...ex.map((v) => v / sum));
      const mean = row.reduce((a, b) => a + b, 0) / 5;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 5;
      lnExp.push(
        ...row.map((v, i) => ((v - mean) / Math.sqrt(variance + 0.5)) * (i + 1) + (i === 4 ? 1 : 0)),
      );
    }
    expectClose(out.s!.data, sExp);
    expectClose(out.ln!.data, lnExp);
    expectClose(
      out.e!.data,
      [...xs].map((v) => erfSeries(v)),
    );
  });

  it("runs Resize with string attributes (linear, half_pixel)", async () => {
    const g = new GraphBuilder("resize");
    const x = g.input("x", "float", [1, 1, 2, 2]);
    const y = g.op("Resize", [x, null, g.constant([1, 1, 2, 2])], {
      mode: "linear",
      coordinate_transformation_mode: "half_pixel",
    });
    g.output(y, "y", "float", [1, 1, 4, 4]);
    const out = await runModel(g.toModel(), {
      x: { data: new Float32Array([0, 4, 8, 12]), dims: [1, 1, 2, 2] },
    });
    // half-pixel: source = (o + 0.5)/2 − 0.5, clamped at the edges → 0, 1, 3, 4 along a row.
    expectClose(out.y!.data, [0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12]);
  });
});

describe("GraphBuilder", () => {
  it("gives taken names a numeric suffix and shares equal small constants", () => {
    const g = new GraphBuilder();
    const a = g.initFloat("w", [1], [1]);
    const b = g.initFloat("w", [2], [1]);
    expect([a.name, b.name]).toEqual(["w", "w_1"]);
    expect(g.constant(0.5).name).toBe(g.constant(0.5).name);
    expect(g.constantInt64([1, -1]).name).toBe(g.constantInt64([1, -1]).name);
    expect(g.constant(0.5).name).not.toBe(g.constant(0.25).name);
  });

  it("rejects a reused input name and a non-integer int attribute", () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float", [1]);
    expect(() => g.input("x", "float", [1])).toThrow(
      "Expected a new input name but received x (already used)",
    );
    expect(() => g.op("Softmax", [x], { axis: 0.5 })).toThrow(
      "Expected an integer for attribute axis but received 0.5 (use { float } for floats)",
    );
  });
});
