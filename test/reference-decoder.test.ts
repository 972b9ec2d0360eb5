import { beforeAll, describe, expect, it } from "vitest";
import { randomDecoderWeights, randomEmbedding } from "../src/segment/models/random-weights.js";
import type { DecoderInputs, DecoderOutputs } from "../src/segment/sam/decoder-types.js";
import { pointEncoding } from "../src/segment/sam/positional-encoding.js";
import { POSITIONAL_EMBEDDING_KEY } from "../src/segment/sam/safetensors.js";
import type { Tensor } from "../src/util/tensor.js";
import {
  type AttentionWeights,
  erf,
  erfc,
  gelu,
  type LinearWeights,
  ReferenceDecoder,
  samAttention,
} from "./support/reference-decoder.js";

const C = 32;
const PE = "prompt_encoder";
const MD = "mask_decoder";

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function std(x: Float32Array): number {
  let s = 0;
  let s2 = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
  }
  const mean = s / x.length;
  return Math.sqrt(s2 / x.length - mean * mean);
}

/** A sigmoid-like attn_sim with spatial structure, values in (0, 1). */
function someAttnSim(): Float32Array {
  return Float32Array.from({ length: 4096 }, (_, i) => 1 / (1 + Math.exp(-3 * Math.sin(i / 300))));
}

function withTensor(w: Map<string, Tensor>, name: string, f: (x: Float32Array) => void): Map<string, Tensor> {
  const out = new Map(w);
  const t = w.get(name)!;
  const data = t.data.slice();
  f(data);
  out.set(name, { data, dims: t.dims });
  return out;
}

describe("erf, erfc, gelu", () => {
  it("match reference values to float64 accuracy", () => {
    const cases: Array<[number, number]> = [
      [0, 0],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.5, 0.999593047982555],
      [3, 0.9999779095030014],
    ];
    for (const [x, y] of cases) {
      expect(Math.abs(erf(x) - y)).toBeLessThan(4e-16);
      expect(Math.abs(erf(-x) + y)).toBeLessThan(4e-16);
    }
    expect(erfc(3) / 2.209049699858544e-5 - 1).toBeLessThan(1e-14);
    expect(Math.abs(erfc(5) / 1.5374597944280349e-12 - 1)).toBeLessThan(1e-14);
    expect(Math.abs(erfc(-1) - 1.8427007929497148)).toBeLessThan(4e-16);
    // Continuous across the series / continued-fraction switch at 2.5 (slope 2/√π·e^{−6.25}).
    const slope = (2 / Math.sqrt(Math.PI)) * Math.exp(-6.25);
    expect(Math.abs(erf(2.5 + 1e-9) - erf(2.5 - 1e-9) - 2e-9 * slope)).toBeLessThan(1e-15);
    expect(Math.abs(erfc(2.5) - 4.069520174449589e-4)).toBeLessThan(1e-18);
  });

  it("gives exact (erf) GELU, including the far negative tail", () => {
    expect(gelu(1)).toBeCloseTo(0.8413447460685429, 15);
    expect(gelu(-1)).toBeCloseTo(-0.15865525393145707, 15);
    expect(gelu(0)).toBe(0);
    // −10·Φ(−10): cancellation in 1 + erf would give 0 here.
    expect(gelu(-10) / (-10 * 7.619853024160527e-24) - 1).toBeLessThan(1e-12);
    // Not the tanh approximation (which gives 1.9545976940 at x = 2).
    expect(gelu(2)).toBeCloseTo(1.9544997361036416, 14);
  });
});

describe("samAttention", () => {
  const identity = (n: number, bias?: number[]): LinearWeights => ({
    w: Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)),
    b: bias ? Float32Array.from(bias) : new Float32Array(n),
    out: n,
    in: n,
  });
  // Width 16, 8 heads → 2 channels per head, scale 1/√2.
  const n = 16;
  const bq = Array.from({ length: n }, (_, i) => 0.05 * i);
  const weights: AttentionWeights = {
    q: identity(n, bq),
    k: identity(n),
    v: identity(n),
    o: identity(
      n,
      Array.from({ length: n }, () => 0.5),
    ),
    internal: n,
  };
  const rows = (r: number, seed: number) =>
    Float32Array.from({ length: r * n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 1.5);
  const q = rows(2, 1);
  const k = rows(3, 2);
  const v = rows(3, 3);

  /** One head by hand: contiguous channels 2h, 2h+1. */
  function byHand(sim?: number[]): number[] {
    const out: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let h = 0; h < 8; h++) {
        const s = [0, 1, 2].map(
          (j) =>
            ((q[i * n + 2 * h]! + bq[2 * h]!) * k[j * n + 2 * h]! +
              (q[i * n + 2 * h + 1]! + bq[2 * h + 1]!) * k[j * n + 2 * h + 1]!) /
            Math.SQRT2,
        );
        let p = s.map(Math.exp);
        let z = p.reduce((a, b) => a + b);
        p = p.map((x) => x / z);
        if (sim) {
          p = p.map((x, j) => Math.exp(x + sim[j]!));
          z = p.reduce((a, b) => a + b);
          p = p.map((x) => x / z);
        }
        for (const d of [0, 1]) out.push(0.5 + p.reduce((a, pj, j) => a + pj * v[j * n + 2 * h + d]!, 0));
      }
    }
    return out;
  }

  it("matches a hand computation per head", () => {
    const got = samAttention(q, 2, k, v, 3, weights);
    const want = byHand();
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 6);
  });

  it("adds attn_sim to the probabilities and applies softmax again", () => {
    const sim = [0.9, 0.1, 0.5];
    const got = samAttention(q, 2, k, v, 3, weights, new Float32Array(sim));
    const want = byHand(sim);
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 6);
    // A zero sim is not neutral (the second softmax), unlike a pre-softmax mask.
    expect(
      maxAbsDiff(
        samAttention(q, 2, k, v, 3, weights, new Float32Array(3)),
        samAttention(q, 2, k, v, 3, weights),
      ),
    ).toBeGreaterThan(1e-3);
  });
});

describe("ReferenceDecoder (C = 32)", () => {
  const weights = randomDecoderWeights({ embedDim: C, seed: 11 });
  const embedding = randomEmbedding(C, 12);
  const decoder = new ReferenceDecoder(weights);
  // Positive, negative, padding point (§2.2), coordinates in the 1024 frame.
  const base: DecoderInputs = {
    imageEmbeddings: embedding,
    pointCoords: new Float32Array([512.3, 300, 100, 820, 0, 0]),
    pointLabels: new Float32Array([1, 0, -1]),
  };
  let plain: DecoderOutputs;
  beforeAll(async () => {
    plain = await decoder.run(base);
  });

  it("returns four unselected masks and IoU scores with nontrivial values", () => {
    expect(plain.lowResMasks.dims).toEqual([1, 4, 256, 256]);
    expect(plain.lowResMasks.data.length).toBe(4 * 65536);
    expect(plain.iouScores.length).toBe(4);
    expect(plain.lowResMasks.data.every(Number.isFinite)).toBe(true);
    expect(plain.iouScores.every(Number.isFinite)).toBe(true);
    for (let i = 0; i < 4; i++) {
      const m = plain.lowResMasks.data.subarray(i * 65536, (i + 1) * 65536);
      expect(std(m)).toBeGreaterThan(1e-3);
      expect(Math.max(...m.map(Math.abs))).toBeLessThan(100);
    }
    expect(new Set(plain.iouScores).size).toBe(4);
  });

  it("is deterministic", async () => {
    const again = await new ReferenceDecoder(randomDecoderWeights({ embedDim: C, seed: 11 })).run(base);
    expect(again.lowResMasks.data).toEqual(plain.lowResMasks.data);
    expect(again.iouScores).toEqual(plain.iouScores);
  });

  it("treats a zero target embedding as absent and a nonzero one as a prompt", async () => {
    const zero = await decoder.run({ ...base, targetEmbedding: new Float32Array(C) });
    expect(zero.lowResMasks.data).toEqual(plain.lowResMasks.data);
    expect(zero.iouScores).toEqual(plain.iouScores);
    const t = Float32Array.from({ length: C }, (_, i) => embedding.data[i * 4096 + 2080]!);
    const target = await decoder.run({ ...base, targetEmbedding: t });
    expect(maxAbsDiff(target.lowResMasks.data, plain.lowResMasks.data)).toBeGreaterThan(1e-3);
  });

  it("applies attn_sim post-softmax: any constant map acts alike, and differs from no map", async () => {
    const zeros = await decoder.run({ ...base, attnSim: new Float32Array(4096) });
    const halves = await decoder.run({ ...base, attnSim: new Float32Array(4096).fill(0.5) });
    expect(maxAbsDiff(zeros.lowResMasks.data, halves.lowResMasks.data)).toBeLessThan(1e-6);
    expect(maxAbsDiff(zeros.lowResMasks.data, plain.lowResMasks.data)).toBeGreaterThan(1e-4);
    const structured = await decoder.run({ ...base, attnSim: someAttnSim() });
    expect(maxAbsDiff(structured.lowResMasks.data, zeros.lowResMasks.data)).toBeGreaterThan(1e-4);
  });

  it("feeds attn_sim only to the token→image attention of the two blocks", async () => {
    // With both token→image attentions silenced, attn_sim has nowhere else to act.
    let w = weights;
    for (const l of [0, 1]) {
      const p = `${MD}.transformer.layers.${l}.cross_attn_token_to_image.out_proj`;
      w = withTensor(
        withTensor(w, `${p}.weight`, (x) => x.fill(0)),
        `${p}.bias`,
        (x) => x.fill(0),
      );
    }
    const silenced = new ReferenceDecoder(w);
    const a = await silenced.run(base);
    const b = await silenced.run({ ...base, attnSim: someAttnSim() });
    expect(b.lowResMasks.data).toEqual(a.lowResMasks.data);
    expect(b.iouScores).toEqual(a.iouScores);
  });

  it("pairs mask token i with hypernetwork i", async () => {
    // Swapping tokens 0↔1 and their hypernetworks swaps masks 0↔1 (the rest is token-equivariant).
    let w = withTensor(weights, `${MD}.mask_tokens.weight`, (x) => {
      const row0 = x.slice(0, C);
      x.copyWithin(0, C, 2 * C);
      x.set(row0, C);
    });
    for (const suffix of [
      "proj_in.weight",
      "proj_in.bias",
      "layers.0.weight",
      "layers.0.bias",
      "proj_out.weight",
      "proj_out.bias",
    ]) {
      w.set(
        `${MD}.output_hypernetworks_mlps.0.${suffix}`,
        weights.get(`${MD}.output_hypernetworks_mlps.1.${suffix}`)!,
      );
      w.set(
        `${MD}.output_hypernetworks_mlps.1.${suffix}`,
        weights.get(`${MD}.output_hypernetworks_mlps.0.${suffix}`)!,
      );
    }
    w = new Map(w);
    const swapped = await new ReferenceDecoder(w).run(base);
    const m = (o: DecoderOutputs, i: number) => o.lowResMasks.data.subarray(i * 65536, (i + 1) * 65536);
    expect(maxAbsDiff(m(swapped, 0), m(plain, 1))).toBeLessThan(1e-5);
    expect(maxAbsDiff(m(swapped, 1), m(plain, 0))).toBeLessThan(1e-5);
    expect(maxAbsDiff(m(swapped, 2), m(plain, 2))).toBeLessThan(1e-5);
    expect(maxAbsDiff(m(plain, 0), m(plain, 1))).toBeGreaterThan(1e-3);
  });

  it("distinguishes positive from negative clicks and uses the mask input", async () => {
    const flipped = await decoder.run({ ...base, pointLabels: new Float32Array([0, 1, -1]) });
    expect(maxAbsDiff(flipped.lowResMasks.data, plain.lowResMasks.data)).toBeGreaterThan(1e-3);
    const maskInput = {
      data: plain.lowResMasks.data.slice(0, 65536).map((x) => 20 * x),
      dims: [1, 1, 256, 256],
    };
    const refined = await decoder.run({ ...base, maskInput });
    expect(maxAbsDiff(refined.lowResMasks.data, plain.lowResMasks.data)).toBeGreaterThan(1e-3);
  });

  it("rejects inputs of the wrong shape", async () => {
    await expect(decoder.run({ ...base, imageEmbeddings: randomEmbedding(16, 1) })).rejects.toThrow(
      "Expected [1,32,64,64] for imageEmbeddings but received [1,16,64,64]",
    );
    await expect(decoder.run({ ...base, pointLabels: new Float32Array([1]) })).rejects.toThrow(
      "Expected 2 values (N×2) for pointCoords but received 6",
    );
    await expect(decoder.run({ ...base, attnSim: new Float32Array(10) })).rejects.toThrow(
      "Expected 4096 values for attnSim but received 10",
    );
    await expect(decoder.run({ ...base, targetEmbedding: new Float32Array(256) })).rejects.toThrow(
      "Expected 32 values for targetEmbedding but received 256",
    );
  });

  it("refuses incomplete weights, naming what is missing", () => {
    const w = new Map(weights);
    w.delete(`${MD}.iou_prediction_head.proj_out.bias`);
    expect(() => new ReferenceDecoder(w)).toThrow(
      "Expected complete SAM decoder weights but received missing mask_decoder.iou_prediction_head.proj_out.bias",
    );
  });
});

describe("ReferenceDecoder prompt encoder", () => {
  const weights = randomDecoderWeights({ embedDim: C, seed: 21 });
  const pointEmbed = [0, 1, 2, 3].map((i) => weights.get(`${PE}.point_embed.${i}.weight`)!.data);
  const notAPoint = weights.get(`${PE}.not_a_point_embed.weight`)!.data;

  it("replaces the padding point's PE by not_a_point_embed exactly", () => {
    const d = new ReferenceDecoder(weights);
    const s = d.sparseEmbeddings(new Float32Array([100, 200, 640, 17]), new Float32Array([1, -1]));
    expect(s.dims).toEqual([1, 2, C]);
    expect(s.data.subarray(C)).toEqual(notAPoint);
  });

  it("adds point_embed[label] to the PE of (x + 0.5, y + 0.5)/1024", () => {
    // G = 0 except G[0,0] = 1: PE = [sin θ, 0…, cos θ, 1…] with θ = 2π(2u − 1).
    const g = new Float32Array(C).fill(0);
    g[0] = 1;
    const d = new ReferenceDecoder(
      new Map(weights).set(POSITIONAL_EMBEDDING_KEY, { data: g, dims: [2, C / 2] }),
    );
    // x = 255.5 → u = 0.25 → θ = −π: sin = 0, cos = −1 (only with the +0.5 shift and /1024).
    const coords = new Float32Array([255.5, 3, 255.5, 3, 255.5, 3, 255.5, 3, 255.5, 3]);
    const s = d.sparseEmbeddings(coords, new Float32Array([0, 1, 2, 3, 7]));
    const pe = (k: number) => (k === C / 2 ? -1 : k > C / 2 ? 1 : 0);
    for (let label = 0; label < 4; label++) {
      for (let k = 0; k < C; k++) {
        expect(s.data[label * C + k]).toBeCloseTo(pe(k) + pointEmbed[label]![k]!, 6);
      }
    }
    // An unknown label gets the bare PE (SA ONNX rule).
    for (let k = 0; k < C; k++) expect(s.data[4 * C + k]).toBeCloseTo(pe(k), 6);
  });

  it("uses the checkpoint's G for the point PE", () => {
    const d = new ReferenceDecoder(weights);
    const s = d.sparseEmbeddings(new Float32Array([700, 123]), new Float32Array([1]));
    const e = pointEncoding(weights.get(POSITIONAL_EMBEDDING_KEY)!, 700.5 / 1024, 123.5 / 1024);
    for (let k = 0; k < C; k++) expect(s.data[k]).toBe(Math.fround(e[k]! + pointEmbed[1]![k]!));
  });

  it("broadcasts no_mask_embed without a mask", () => {
    const dense = new ReferenceDecoder(weights).denseEmbeddings();
    const noMask = weights.get(`${PE}.no_mask_embed.weight`)!.data;
    expect(dense.dims).toEqual([1, C, 64, 64]);
    for (const cell of [0, 1, 2047, 4095])
      for (let c = 0; c < C; c++) expect(dense.data[c * 4096 + cell]).toBe(noMask[c]);
  });

  it("matches an independent NCHW computation of the mask path", () => {
    const mask = Float32Array.from(
      { length: 65536 },
      (_, i) => 4 * Math.sin(i * 0.37) + Math.cos((i >> 8) * 0.05),
    );
    const dense = new ReferenceDecoder(weights).denseEmbeddings({ data: mask, dims: [1, 1, 256, 256] });
    const get = (n: string) => weights.get(`${PE}.mask_embed.${n}`)!.data;
    // Conv2d k=2 s=2 over NCHW, weight [out, in, kh, kw].
    const conv = (
      x: Float32Array,
      cin: number,
      side: number,
      w: Float32Array,
      b: Float32Array,
      cout: number,
    ) => {
      const s = side / 2;
      const y = new Float64Array(cout * s * s);
      for (let o = 0; o < cout; o++)
        for (let i = 0; i < s; i++)
          for (let j = 0; j < s; j++) {
            let acc = b[o]!;
            for (let c = 0; c < cin; c++)
              for (let a = 0; a < 2; a++)
                for (let bb = 0; bb < 2; bb++)
                  acc +=
                    w[((o * cin + c) * 2 + a) * 2 + bb]! * x[(c * side + 2 * i + a) * side + 2 * j + bb]!;
            y[(o * s + i) * s + j] = acc;
          }
      return Float32Array.from(y);
    };
    const ln2dGelu = (x: Float32Array, ch: number, side: number, gamma: Float32Array, beta: Float32Array) => {
      const p = side * side;
      for (let q = 0; q < p; q++) {
        let mean = 0;
        for (let c = 0; c < ch; c++) mean += x[c * p + q]! / ch;
        let v = 0;
        for (let c = 0; c < ch; c++) v += (x[c * p + q]! - mean) ** 2 / ch;
        for (let c = 0; c < ch; c++)
          x[c * p + q] = gelu(((x[c * p + q]! - mean) / Math.sqrt(v + 1e-6)) * gamma[c]! + beta[c]!);
      }
    };
    const x1 = conv(mask, 1, 256, get("conv1.weight"), get("conv1.bias"), 4);
    ln2dGelu(x1, 4, 128, get("layer_norm1.weight"), get("layer_norm1.bias"));
    const x2 = conv(x1, 4, 128, get("conv2.weight"), get("conv2.bias"), 16);
    ln2dGelu(x2, 16, 64, get("layer_norm2.weight"), get("layer_norm2.bias"));
    const w3 = get("conv3.weight");
    const b3 = get("conv3.bias");
    let worst = 0;
    for (let o = 0; o < C; o++)
      for (let q = 0; q < 4096; q++) {
        let acc = b3[o]!;
        for (let c = 0; c < 16; c++) acc += w3[o * 16 + c]! * x2[c * 4096 + q]!;
        worst = Math.max(worst, Math.abs(acc - dense.data[o * 4096 + q]!));
      }
    expect(worst).toBeLessThan(1e-5);
    expect(std(dense.data)).toBeGreaterThan(0.01);
  });
});

describe("randomDecoderWeights", () => {
  it("is deterministic per seed and scaled like PyTorch's init", () => {
    const a = randomDecoderWeights({ embedDim: C, seed: 1 });
    const b = randomDecoderWeights({ embedDim: C, seed: 1 });
    const c = randomDecoderWeights({ embedDim: C, seed: 2 });
    const name = `${MD}.transformer.layers.0.mlp.lin1.weight`;
    expect(a.get(name)).toEqual(b.get(name));
    expect(maxAbsDiff(a.get(name)!.data, c.get(name)!.data)).toBeGreaterThan(0.01);
    expect(a.get(name)!.dims).toEqual([8 * C, C]);
    const bound = 1 / Math.sqrt(C);
    expect(a.get(name)!.data.every((x) => Math.abs(x) <= bound)).toBe(true);
    expect(Math.max(...a.get(name)!.data)).toBeGreaterThan(0.9 * bound);
    const ln = a.get(`${MD}.transformer.layers.1.layer_norm3.weight`)!.data;
    expect(ln.every((x) => x > 0.5 && x < 1.5)).toBe(true);
    expect(std(ln)).toBeGreaterThan(0.01);
    expect(a.get(POSITIONAL_EMBEDDING_KEY)!.dims).toEqual([2, C / 2]);
    expect(randomEmbedding(C, 3).data).toEqual(randomEmbedding(C, 3).data);
    expect(randomEmbedding(C, 3).dims).toEqual([1, C, 64, 64]);
  });

  it("defaults the MLP width to 2048 at C = 256 and rejects odd widths", () => {
    const w = randomDecoderWeights({ embedDim: 256, seed: 0 });
    expect(w.get(`${MD}.transformer.layers.0.mlp.lin1.weight`)!.dims).toEqual([2048, 256]);
    expect(() => randomDecoderWeights({ embedDim: 40, seed: 0 })).toThrow(
      "Expected a positive multiple of 16 for embedDim but received 40",
    );
  });
});

describe("ReferenceDecoder at C = 256", () => {
  it("runs one PerSAM pass within seconds with nontrivial outputs", async () => {
    const decoder = new ReferenceDecoder(randomDecoderWeights({ embedDim: 256, seed: 31 }));
    const embedding = randomEmbedding(256, 32);
    const t0 = performance.now();
    const out = await decoder.run({
      imageEmbeddings: embedding,
      pointCoords: new Float32Array([400, 600, 900, 100, 0, 0]),
      pointLabels: new Float32Array([1, 0, -1]),
      attnSim: someAttnSim(),
      targetEmbedding: Float32Array.from({ length: 256 }, (_, i) => embedding.data[i * 4096 + 1000]!),
    });
    const ms = performance.now() - t0;
    console.log(`[reference-decoder] one C=256 pass with attn_sim + target: ${ms.toFixed(0)} ms`);
    expect(out.lowResMasks.dims).toEqual([1, 4, 256, 256]);
    expect(out.lowResMasks.data.every(Number.isFinite)).toBe(true);
    expect(std(out.lowResMasks.data)).toBeGreaterThan(1e-3);
    expect(new Set(out.iouScores).size).toBe(4);
  });
});
