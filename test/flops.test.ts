// FLOP counting from ONNX graphs (hand-counted small graphs, stock-export shape arithmetic, the
// SAM ViT-B figure) and the CPU peak estimate.

import { describe, expect, it } from "vitest";
import { countFlops, cpuPeakFlops } from "../bench/flops.js";
import { buildVitEncoderGraph, buildVitEncoderShapeOnly } from "../bench/models/vit-encoder.js";
import { type Dim, GraphBuilder, type Value } from "../src/segment/onnx/graph-builder.js";
import { inferShapes } from "../src/segment/onnx/shape-inference.js";

const zeros = (...dims: number[]): Float32Array => new Float32Array(dims.reduce((a, b) => a * b, 1));

function graph(inputDims: readonly Dim[], body: (g: GraphBuilder, x: Value) => Value): Uint8Array {
  const g = new GraphBuilder("t");
  const x = g.input("x", "float", inputDims);
  g.output(body(g, x), "y", "float", []);
  return g.toModel();
}

describe("countFlops on hand-countable graphs", () => {
  it("MatMul: 2·M·K·N per batch element", () => {
    const bytes = graph([2, 4, 8], (g, x) => g.op("MatMul", [x, g.initFloat("w", zeros(8, 16), [8, 16])]));
    const r = countFlops(bytes);
    expect(r.total).toBe(2 * 2 * 4 * 8 * 16);
    expect(r.mac).toBe(r.total);
    expect(r.byOp.MatMul).toEqual({ count: 1, flops: 2048 });
    expect(r.unknown).toEqual([]);
  });

  it("Gemm with transB and a bias", () => {
    const bytes = graph([3, 5], (g, x) =>
      g.op("Gemm", [x, g.initFloat("b", zeros(7, 5), [7, 5]), g.initFloat("c", zeros(7), [7])], {
        transB: 1,
      }),
    );
    expect(countFlops(bytes).total).toBe(2 * 3 * 5 * 7 + 3 * 7);
  });

  it("Conv: padded with bias, strided, grouped", () => {
    const padded = graph([1, 3, 8, 8], (g, x) =>
      g.op("Conv", [x, g.initFloat("w", zeros(5, 3, 3, 3), [5, 3, 3, 3]), g.initFloat("b", zeros(5), [5])], {
        kernel_shape: [3, 3],
        pads: [1, 1, 1, 1],
      }),
    );
    expect(countFlops(padded).total).toBe(2 * (5 * 8 * 8) * (3 * 3 * 3) + 5 * 8 * 8);
    const strided = graph([1, 3, 8, 8], (g, x) =>
      g.op("Conv", [x, g.initFloat("w", zeros(5, 3, 3, 3), [5, 3, 3, 3])], { strides: [2, 2] }),
    );
    expect(countFlops(strided).total).toBe(2 * (5 * 3 * 3) * 27);
    const grouped = graph([1, 4, 6, 6], (g, x) =>
      g.op("Conv", [x, g.initFloat("w", zeros(4, 1, 3, 3), [4, 1, 3, 3])], { group: 4, pads: [1, 1, 1, 1] }),
    );
    expect(countFlops(grouped).total).toBe(2 * (4 * 6 * 6) * 9);
  });

  it("ConvTranspose: 2·(input elements)·(C_out·k_h·k_w), output shape inferred", () => {
    const bytes = graph([1, 4, 8, 8], (g, x) =>
      g.op("ConvTranspose", [x, g.initFloat("w", zeros(4, 2, 2, 2), [4, 2, 2, 2])], { strides: [2, 2] }),
    );
    expect(countFlops(bytes).total).toBe(2 * (4 * 64) * (2 * 2 * 2));
    expect(inferShapes(bytes).get("y")).toEqual([1, 2, 16, 16]);
  });

  it("an attention block: projections, scores, scale, softmax, weighted sum", () => {
    const n = 6;
    const d = 4;
    const bytes = graph([1, n, d], (g, x) => {
      const [q, k, v] = ["q", "k", "v"].map((s) =>
        g.op("MatMul", [x, g.initFloat(s, zeros(d, d), [d, d])]),
      ) as [Value, Value, Value];
      const scores = g.op("Mul", [
        g.op("MatMul", [q, g.op("Transpose", [k], { perm: [0, 2, 1] })]),
        g.constant(0.5),
      ]);
      return g.op("MatMul", [g.op("Softmax", [scores], { axis: -1 }), v]);
    });
    const r = countFlops(bytes);
    const projections = 3 * 2 * n * d * d;
    const qk = 2 * n * n * d;
    const pv = 2 * n * n * d;
    expect(r.mac).toBe(projections + qk + pv);
    expect(r.byOp.Mul!.flops).toBe(n * n);
    expect(r.byOp.Softmax!.flops).toBe(5 * n * n);
    expect(r.byOp.Transpose!.flops).toBe(0);
    expect(r.total).toBe(projections + qk + pv + n * n + 5 * n * n);
  });

  it("follows shape arithmetic of stock exports (Shape→Gather→Unsqueeze→Concat→Reshape) with symbolic dims", () => {
    const bytes = graph(["batch", 16, 8], (g, x) => {
      const batch = g.op("Unsqueeze", [
        g.op("Gather", [g.op("Shape", [x]), g.constantInt64(0)], { axis: 0 }),
        g.constantInt64([0]),
      ]);
      const target = g.op("Concat", [batch, g.constantInt64([-1])], { axis: 0 });
      const flat = g.op("Reshape", [x, target]);
      return g.op("MatMul", [flat, g.initFloat("w", zeros(128, 10), [128, 10])]);
    });
    expect(countFlops(bytes).total).toBe(2 * 128 * 10);
    expect(countFlops(bytes, { symbolicDim: 4 }).total).toBe(4 * 2 * 128 * 10);
    expect(countFlops(bytes, { inputDims: { x: [3, 16, 8] } }).total).toBe(3 * 2 * 128 * 10);
    expect(inferShapes(bytes, { symbolicDim: 4 }).get("y")).toEqual([4, 10]);
  });

  it("Einsum: output shape from the equation, 2·(product of the label sizes) per operand pair", () => {
    // SAM's decomposed relative position term: rel_h = einsum("bhwc,hkc->bhwk", q, R_h).
    const bytes = graph([2, 3, 4, 5], (g, x) =>
      g.op("Einsum", [x, g.initFloat("r", zeros(3, 6, 5), [3, 6, 5])], { equation: "bhwc,hkc->bhwk" }),
    );
    const r = countFlops(bytes);
    expect(inferShapes(bytes).get("y")).toEqual([2, 3, 4, 6]);
    expect(r.byOp.Einsum).toEqual({ count: 1, flops: 2 * (2 * 3 * 4 * 5 * 6) });
    expect(r.mac).toBe(r.total);
    // Implicit output: the labels used once, in alphabetical order.
    const implicit = graph([3, 4], (g, x) =>
      g.op("Einsum", [g.initFloat("a", zeros(4, 2), [4, 2]), x], { equation: "jk, ij" }),
    );
    expect(inferShapes(implicit).get("y")).toEqual([3, 2]);
    const ellipsis = graph([3, 4], (g, x) => g.op("Einsum", [x, x], { equation: "...j,...j->..." }));
    expect(countFlops(ellipsis).unknown).toHaveLength(2); // not read, not guessed
  });

  it("follows torch's F.pad arithmetic (Python-style Mod, 2-D reversed Slice, Transpose) to the padded shape", () => {
    // pad so that H and W become multiples of 4: ph = (−H) mod 4, ONNX pads from torch's
    // (0, 0, 0, pw, 0, ph, 0, 0) reshaped to rows per axis, reversed, transposed and flattened.
    const bytes = graph([1, 5, 7, 3], (g, x) => {
      const size = (axis: number): Value =>
        g.op("Gather", [g.op("Shape", [x]), g.constantInt64(axis)], { axis: 0 });
      const pad = (axis: number): Value =>
        g.op("Unsqueeze", [
          g.op("Mod", [g.op("Neg", [size(axis)]), g.constantInt64(4)]),
          g.constantInt64([0]),
        ]);
      const zero = g.constantInt64([0]);
      const flat = g.op("Concat", [zero, zero, zero, pad(2), zero, pad(1), zero, zero], { axis: 0 });
      const rows = g.op("Reshape", [flat, g.constantInt64([-1, 2])]);
      const reversed = g.op("Slice", [
        rows,
        g.constantInt64([-1]),
        g.constantInt64([-(2 ** 53)]),
        g.constantInt64([0]),
        g.constantInt64([-1]),
      ]);
      const pads = g.op("Reshape", [g.op("Transpose", [reversed], { perm: [1, 0] }), g.constantInt64([-1])]);
      return g.op("Pad", [x, pads]);
    });
    expect(inferShapes(bytes).get("y")).toEqual([1, 8, 8, 3]);
  });

  it("lists nodes whose shapes it cannot infer instead of guessing", () => {
    const bytes = graph([4], (g, x) => g.op("Relu", [g.op("NonZero", [x])]));
    const r = countFlops(bytes);
    expect(r.unknown).toEqual(["NonZero n0_NonZero", "Relu n1_Relu", "Identity n2_Identity"]);
    expect(r.total).toBe(0);
  });
});

describe("countFlops on the benchmark ViT encoders", () => {
  it("SAM ViT-B at 1024²: ≈ 488 GMACs (≈ 976 GFLOPs), within 10%", () => {
    const r = countFlops(buildVitEncoderShapeOnly({ preset: "sam-vit-base" }));
    expect(r.unknown).toEqual([]);
    const gmacs = r.mac / 2 / 1e9;
    console.log(`sam-vit-base: ${gmacs.toFixed(1)} GMACs; ${(r.total / 1e9).toFixed(1)} GFLOPs in all`);
    expect(Math.abs(gmacs - 488) / 488).toBeLessThan(0.1);
  });

  it("counts the same from the full model as from the shape-only graph (SlimSAM-77)", () => {
    const full = countFlops(buildVitEncoderGraph({ preset: "slimsam-77" }));
    const shapeOnly = countFlops(buildVitEncoderShapeOnly({ preset: "slimsam-77" }));
    expect(full.unknown).toEqual([]);
    expect(full.total).toBe(shapeOnly.total);
    expect(full.byOp).toEqual(shapeOnly.byOp);
  });
});

describe("cpuPeakFlops", () => {
  const info = (vendor: string, family: number, flags: string): string =>
    `processor\t: 0\nvendor_id\t: ${vendor}\ncpu family\t: ${family}\nmodel name\t: Test CPU\ncpu MHz\t\t: 3000.000\nflags\t\t: fpu sse sse2 ${flags}\n`;

  it("AVX2+FMA: 32 FLOP/cycle/core", () => {
    const p = cpuPeakFlops(2, info("GenuineIntel", 6, "avx avx2 fma"));
    expect(p.flopsPerCycle).toBe(32);
    expect(p.peakFlops).toBe(2 * 3000e6 * 32);
    expect(p.model).toBe("Test CPU");
    expect(p.assumptions).toMatch(/2 FMA units/);
  });

  it("AVX-512: 64, but 32 on AMD Zen 4 (family 25); AVX alone 16; SSE 8", () => {
    expect(cpuPeakFlops(1, info("GenuineIntel", 6, "avx avx2 fma avx512f")).flopsPerCycle).toBe(64);
    expect(cpuPeakFlops(1, info("AuthenticAMD", 25, "avx avx2 fma avx512f")).flopsPerCycle).toBe(32);
    expect(cpuPeakFlops(1, info("AuthenticAMD", 26, "avx avx2 fma avx512f")).flopsPerCycle).toBe(64);
    expect(cpuPeakFlops(1, info("GenuineIntel", 6, "avx")).flopsPerCycle).toBe(16);
    expect(cpuPeakFlops(1, info("GenuineIntel", 6, "")).flopsPerCycle).toBe(8);
  });

  it("reads this machine", () => {
    const p = cpuPeakFlops(2);
    expect(p.cores).toBe(2);
    expect(p.peakFlops).toBeGreaterThan(0);
  });
});
