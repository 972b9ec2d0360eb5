// The benchmark ViT encoder (random weights at SAM/SlimSAM sizes): it runs in onnxruntime with the
// SAM encoder interface, one block matches plain arithmetic (windows with padding, global
// attention, decomposed relative positions), and the presets have SAM's parameter counts.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  buildVitBlockTestGraph,
  buildVitEncoderGraph,
  buildVitEncoderShapeOnly,
  ensureVitEncoderModel,
  resolveVitConfig,
  type VitConfig,
  vitParameterCount,
} from "../bench/models/vit-encoder.js";
import { readModel } from "../src/segment/onnx/proto-reader.js";
import { SamEncoder } from "../src/segment/sam/encoder-session.js";
import { createSession, fromOrt, ortFloat32 } from "../src/segment/sam/ort.js";

const dir = mkdtempSync(join(tmpdir(), "vit-encoder-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY: VitConfig = {
  embedDim: 24,
  depth: 2,
  heads: 2,
  mlpDim: 48,
  windowSize: 14,
  globalAttnIndexes: [1],
  outChans: 256,
};

function seeded(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

/** erf, Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7). */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

type W = ReadonlyMap<string, { readonly data: Float32Array; readonly dims: readonly number[] }>;

/** Plain-arithmetic SAM ViT block on a G×G×D map (row-major), for one window size (0 = global). */
function referenceBlock(
  x: Float32Array,
  grid: number,
  dim: number,
  heads: number,
  mlp: number,
  window: number,
  w: W,
): Float32Array {
  const get = (k: string): Float32Array => w.get(k)!.data;
  const ln = (v: Float32Array, g: Float32Array, b: Float32Array): Float32Array => {
    let mean = 0;
    for (const a of v) mean += a;
    mean /= v.length;
    let variance = 0;
    for (const a of v) variance += (a - mean) ** 2;
    variance /= v.length;
    const r = 1 / Math.sqrt(variance + 1e-6);
    return v.map((a, i) => (a - mean) * r * g[i]! + b[i]!);
  };
  const linear = (v: Float32Array, wt: Float32Array, b: Float32Array, outDim: number): Float32Array => {
    const out = new Float32Array(outDim);
    for (let o = 0; o < outDim; o++) {
      let s = b[o]!;
      for (let i = 0; i < v.length; i++) s += v[i]! * wt[i * outDim + o]!;
      out[o] = s;
    }
    return out;
  };
  const tok = (r: number, c: number): Float32Array =>
    x.subarray((r * grid + c) * dim, (r * grid + c + 1) * dim);
  const side = window > 0 ? window : grid;
  const padded = window > 0 ? Math.ceil(grid / window) * window : grid;
  const hd = dim / heads;
  const scale = 1 / Math.sqrt(hd);
  const relH = get("attn.rel_pos_h");
  const relW = get("attn.rel_pos_w");
  const y = new Float32Array(x);
  for (let wy = 0; wy < padded; wy += side) {
    for (let wx = 0; wx < padded; wx += side) {
      const n = side * side;
      const qkv: Float32Array[] = [];
      for (let i = 0; i < n; i++) {
        const r = wy + Math.floor(i / side);
        const c = wx + (i % side);
        // Padding comes after norm1: padded tokens are zero vectors (they still act as keys).
        const h =
          r < grid && c < grid
            ? ln(tok(r, c), get("norm1.weight"), get("norm1.bias"))
            : new Float32Array(dim);
        qkv.push(linear(h, get("attn.qkv.weight"), get("attn.qkv.bias"), 3 * dim));
      }
      const merged = Array.from({ length: n }, () => new Float32Array(dim));
      for (let head = 0; head < heads; head++) {
        for (let i = 0; i < n; i++) {
          const q = qkv[i]!.subarray(head * hd, (head + 1) * hd);
          const logits = new Float64Array(n);
          for (let j = 0; j < n; j++) {
            const k = qkv[j]!.subarray(dim + head * hd, dim + (head + 1) * hd);
            const rh = (Math.floor(i / side) - Math.floor(j / side) + side - 1) * hd;
            const rw = ((i % side) - (j % side) + side - 1) * hd;
            let s = 0;
            for (let c = 0; c < hd; c++)
              s += q[c]! * k[c]! * scale + q[c]! * relH[rh + c]! + q[c]! * relW[rw + c]!;
            logits[j] = s;
          }
          const max = Math.max(...logits);
          let sum = 0;
          for (let j = 0; j < n; j++) {
            logits[j] = Math.exp(logits[j]! - max);
            sum += logits[j]!;
          }
          for (let j = 0; j < n; j++) {
            const p = logits[j]! / sum;
            const v = qkv[j]!;
            for (let c = 0; c < hd; c++) merged[i]![head * hd + c]! += p * v[2 * dim + head * hd + c]!;
          }
        }
      }
      for (let i = 0; i < n; i++) {
        const r = wy + Math.floor(i / side);
        const c = wx + (i % side);
        if (r >= grid || c >= grid) continue;
        const a = linear(merged[i]!, get("attn.proj.weight"), get("attn.proj.bias"), dim);
        const base = (r * grid + c) * dim;
        for (let k = 0; k < dim; k++) y[base + k]! += a[k]!;
      }
    }
  }
  const out = new Float32Array(y);
  for (let t = 0; t < grid * grid; t++) {
    const v = y.subarray(t * dim, (t + 1) * dim);
    let m = linear(
      ln(v, get("norm2.weight"), get("norm2.bias")),
      get("mlp.lin1.weight"),
      get("mlp.lin1.bias"),
      mlp,
    );
    m = m.map((a) => 0.5 * a * (1 + erf(a / Math.SQRT2)));
    m = linear(m, get("mlp.lin2.weight"), get("mlp.lin2.bias"), dim);
    for (let k = 0; k < dim; k++) out[t * dim + k]! += m[k]!;
  }
  return out;
}

async function runBlock(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await createSession(bytes, { threads: 1 });
  try {
    const out = await session.run({ x: ortFloat32(x, dims) });
    return fromOrt(out.y!).data;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("ViT block vs plain arithmetic", () => {
  it.each([
    { name: "windowed, 10×10 padded to 12×12 (3×3 windows of 4)", grid: 10, window: 4 },
    { name: "windowed, no padding (2×2 windows of 4)", grid: 8, window: 4 },
    { name: "global attention on 6×6", grid: 6, window: 0 },
  ])("$name", async ({ grid, window }) => {
    const shape = { grid, dim: 8, heads: 2, mlpDim: 16, window };
    const { bytes, weights } = buildVitBlockTestGraph(shape, 7);
    const x = seeded(grid * grid * 8, 11);
    const actual = await runBlock(bytes, x, [1, grid, grid, 8]);
    const expected = referenceBlock(x, grid, 8, 2, 16, window, weights);
    expect(maxAbsDiff(actual, expected)).toBeLessThan(2e-5);
  });
});

describe("buildVitEncoderGraph", () => {
  it("runs in onnxruntime through SamEncoder at a tiny width and gives [1,256,64,64]", async () => {
    const path = ensureVitEncoderModel({ preset: TINY, seed: 3 }, dir);
    expect(readFileSync(path).equals(Buffer.from(buildVitEncoderGraph({ preset: TINY, seed: 3 })))).toBe(
      true,
    );
    const encoder = await SamEncoder.create({ path, threads: 2 });
    try {
      expect(encoder.embedDim).toBe(256);
      expect(encoder.hasPositional).toBe(true);
      const out = await encoder.encode({ data: seeded(3 * 1024 * 1024, 5, 2), dims: [1, 3, 1024, 1024] });
      expect(out.embedding.dims).toEqual([1, 256, 64, 64]);
      expect(out.positional?.dims).toEqual([1, 256, 64, 64]);
      expect(out.embedding.data.every(Number.isFinite)).toBe(true);
      // LayerNorm2d last: per pixel, channels have mean ≈ β-mean and spread ≈ γ (random, near 1).
      let sq = 0;
      for (const v of out.embedding.data) sq += v * v;
      expect(Math.sqrt(sq / out.embedding.data.length)).toBeGreaterThan(0.5);
    } finally {
      await encoder.dispose();
    }
  });

  it("is deterministic per seed and labels its weights as random benchmark weights", () => {
    const a = buildVitEncoderGraph({ preset: { ...TINY, depth: 1, globalAttnIndexes: [] }, seed: 9 });
    const b = buildVitEncoderGraph({ preset: { ...TINY, depth: 1, globalAttnIndexes: [] }, seed: 9 });
    const c = buildVitEncoderGraph({ preset: { ...TINY, depth: 1, globalAttnIndexes: [] }, seed: 10 });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
    const model = readModel(a);
    expect(model.producerName).toMatch(/RANDOM BENCHMARK\/TEST WEIGHTS/);
    const names = [...model.graph.initializers.keys()];
    expect(names).toContain("RANDOM_BENCHMARK_WEIGHTS.image_encoder.blocks.0.attn.qkv.weight");
    // Weight fragments appended after the header merge into one graph.
    const weightCount = names.filter((n) => n.startsWith("RANDOM_BENCHMARK_WEIGHTS.")).length;
    expect(weightCount).toBe(3 + 14 + 6); // patch embed + pos, one block, neck
  });

  it("has SAM's parameter counts and validates configs", () => {
    expect(vitParameterCount("sam-vit-base")).toBe(89_670_912);
    expect(vitParameterCount("slimsam-77")).toBe(5_658_968);
    expect(vitParameterCount("slimsam-50")).toBe(23_897_216);
    // The shape-only graph declares exactly those weights.
    const model = readModel(buildVitEncoderShapeOnly({ preset: "slimsam-77" }));
    let n = 0;
    for (const [name, t] of model.graph.initializers) {
      if (name.startsWith("RANDOM_BENCHMARK_WEIGHTS.")) n += t.dims.reduce((a, b) => a * b, 1);
    }
    expect(n).toBe(5_658_968);
    expect(() => resolveVitConfig({ ...TINY, heads: 5 })).toThrow(/heads to divide embedDim/);
    expect(() => resolveVitConfig({ ...TINY, globalAttnIndexes: [2] })).toThrow(/global attention/);
  });
});
