// Encoder variants (encoder-variants.ts) built from a tiny random ViT encoder (vit-encoder.ts): each
// loads in onnxruntime, keeps the interface, and stays close to the float32 model's output; the
// weight quantization itself is checked on a hand-built MatMul / Conv graph.

import { beforeAll, describe, expect, it } from "vitest";
import {
  type DynamicQuantOptions,
  dynamicQuantVariant,
  ELEMENT_TYPES,
  ENCODER_VARIANTS,
  type EncoderVariantName,
  encoderVariant,
  fp16Variant,
  fp16WeightsVariant,
  outputDifference,
} from "../bench/models/encoder-variants.js";
import { buildVitEncoderGraph, type VitConfig } from "../bench/models/vit-encoder.js";
import { GraphBuilder } from "../src/segment/onnx/graph-builder.js";
import { type ReadModel, readModel, tensorValues } from "../src/segment/onnx/proto-reader.js";
import { createSession, fromOrt, ortFloat16, ortFloat32 } from "../src/segment/sam/ort.js";
import { ENCODER_SIDE } from "../src/segment/sam/sam-constants.js";
import { mulberry32 } from "../src/util/seeded-random.js";

/** A tiny SAM-shaped ViT: 2 windowed blocks, width 24, 16 output channels (runs in ~0.2 s). */
const TINY: VitConfig = {
  embedDim: 24,
  depth: 2,
  heads: 2,
  mlpDim: 48,
  windowSize: 14,
  globalAttnIndexes: [],
  outChans: 16,
};

function uniform(n: number, seed: number, lo: number, hi: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * next();
  return out;
}

const PIXELS = uniform(3 * ENCODER_SIDE * ENCODER_SIDE, 7, -2, 2);
const DIMS = [1, 3, ENCODER_SIDE, ENCODER_SIDE];

async function embed(bytes: Uint8Array): Promise<{ data: Float32Array; inputType: string }> {
  const session = await createSession(bytes, { threads: 1 });
  try {
    const meta = session.inputMetadata[0]!;
    const inputType = meta.isTensor ? meta.type : "?";
    const feed = inputType === "float16" ? ortFloat16(PIXELS, DIMS) : ortFloat32(PIXELS, DIMS);
    const result = await session.run({ pixel_values: feed });
    return { data: new Float32Array(fromOrt(result.image_embeddings!).data), inputType };
  } finally {
    await session.release();
  }
}

function opCounts(bytes: Uint8Array): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of readModel(bytes).graph.nodes) {
    const key = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

describe("encoder variants of a tiny ViT encoder", () => {
  let fp32: Uint8Array;
  let model: ReadModel;
  let reference: Float32Array;

  beforeAll(async () => {
    fp32 = buildVitEncoderGraph({ preset: TINY });
    // Read from a Node Buffer, as from a file: its `slice` is a view, which the variants must not trip on.
    model = readModel(Buffer.from(fp32));
    reference = (await embed(fp32)).data;
  });

  // Measured on this model and input (reference RMS ≈ 1, LayerNorm2d output): fp16-weights max
  // 0.0024, fp16 0.0033; q8-u8 (Conv too) max 0.085, mean 0.012, cosine 0.99988; q8-s8 max 0.036,
  // mean 0.0041, cosine 0.999986. The bounds leave about 3× headroom.
  const BOUNDS: Record<EncoderVariantName, { maxAbs: number; meanAbs: number; cosine: number }> = {
    "fp16-weights": { maxAbs: 0.01, meanAbs: 0.0015, cosine: 0.999999 },
    fp16: { maxAbs: 0.01, meanAbs: 0.0015, cosine: 0.999999 },
    "q8-u8": { maxAbs: 0.25, meanAbs: 0.035, cosine: 0.9995 },
    "q8-u8-contrib": { maxAbs: 0.25, meanAbs: 0.035, cosine: 0.9995 },
    "q8-s8": { maxAbs: 0.25, meanAbs: 0.035, cosine: 0.9995 },
    "q8-s8-matmul": { maxAbs: 0.1, meanAbs: 0.012, cosine: 0.9999 },
    "q8-s8-channel": { maxAbs: 0.1, meanAbs: 0.012, cosine: 0.9999 },
  };

  for (const name of Object.keys(ENCODER_VARIANTS) as EncoderVariantName[]) {
    it(`${name} runs in onnxruntime and stays close to float32`, async () => {
      const bytes = encoderVariant(model, name);
      const { data, inputType } = await embed(bytes);
      expect(inputType).toBe(name === "fp16" ? "float16" : "float32");
      const d = outputDifference(reference, data);
      expect(d.referenceRms).toBeGreaterThan(0.5);
      expect(d.maxAbs).toBeLessThanOrEqual(BOUNDS[name].maxAbs);
      expect(d.meanAbs).toBeLessThanOrEqual(BOUNDS[name].meanAbs);
      expect(d.cosine).toBeGreaterThanOrEqual(BOUNDS[name].cosine);
      expect(d.maxAbs).toBeGreaterThan(0); // really a different computation
    });
  }

  it("fp16-weights: every non-scalar float weight is float16 behind a Cast, file about half", () => {
    const bytes = fp16WeightsVariant(model);
    const g = readModel(bytes).graph;
    let halves = 0;
    for (const t of g.initializers.values()) {
      const n = t.dims.reduce((a, b) => a * b, 1);
      if (t.dataType === ELEMENT_TYPES.FLOAT) expect(n).toBeLessThanOrEqual(1);
      if (t.dataType === ELEMENT_TYPES.FLOAT16) halves++;
    }
    expect(halves).toBeGreaterThan(10);
    expect(opCounts(bytes).get("Cast")).toBe(halves);
    expect(bytes.length).toBeLessThan(fp32.length * 0.55);
  });

  it("fp16: float16 interface and no float32 tensor left", () => {
    const g = readModel(fp16Variant(model)).graph;
    expect(g.inputs[0]!.elemType).toBe(ELEMENT_TYPES.FLOAT16);
    for (const o of g.outputs) expect(o.elemType).toBe(ELEMENT_TYPES.FLOAT16);
    for (const t of g.initializers.values()) expect(t.dataType).not.toBe(ELEMENT_TYPES.FLOAT);
  });

  it("dynamic quantization replaces weight MatMuls (and Convs when asked), not activation MatMuls", () => {
    const before = opCounts(fp32);
    const weightMatMuls = readModel(fp32).graph.nodes.filter(
      (n) => n.opType === "MatMul" && model.graph.initializers.has(n.inputs[1]!),
    ).length;
    expect(weightMatMuls).toBe(4 * TINY.depth); // qkv, proj, lin1, lin2
    const u8 = opCounts(encoderVariant(model, "q8-u8"));
    expect(u8.get("MatMulInteger")).toBe(weightMatMuls);
    expect(u8.get("MatMul")).toBe(before.get("MatMul")! - weightMatMuls);
    expect(u8.get("ConvInteger")).toBe(before.get("Conv"));
    expect(u8.get("Conv")).toBeUndefined();
    expect(opCounts(encoderVariant(model, "q8-s8")).get("ConvInteger")).toBe(before.get("Conv"));
    const s8 = opCounts(encoderVariant(model, "q8-s8-matmul"));
    expect(s8.get("Conv")).toBe(before.get("Conv"));
    const contrib = encoderVariant(model, "q8-u8-contrib");
    expect(opCounts(contrib).get("com.microsoft.DynamicQuantizeMatMul")).toBe(weightMatMuls);
    expect(readModel(contrib).opsets.get("com.microsoft")).toBe(1);
  });
});

describe("weight quantization arithmetic", () => {
  /** x [4, 8] · W [8, 6] + a 3×3 Conv [5, 2, 3, 3] with bias on [1, 2, 6, 6]. */
  function smallModel(): { bytes: Uint8Array; w: Float32Array; cw: Float32Array } {
    const g = new GraphBuilder("q");
    const x = g.input("x", "float", [4, 8]);
    const w = uniform(48, 3, -0.7, 0.4);
    g.output(g.op("MatMul", [x, g.initFloat("w", w, [8, 6])]), "y", "float", [4, 6]);
    const img = g.input("img", "float", [1, 2, 6, 6]);
    const cw = uniform(90, 4, -0.3, 0.5);
    const conv = g.op(
      "Conv",
      [img, g.initFloat("cw", cw, [5, 2, 3, 3]), g.initFloat("cb", [0.1, -0.2, 0.3, 0, 1], [5])],
      { kernel_shape: [3, 3], pads: [1, 1, 1, 1] },
    );
    g.output(conv, "z", "float", [1, 5, 6, 6]);
    return { bytes: g.toModel(), w, cw };
  }

  /** Dequantized weight `(q − z) · s` from the variant's initializers, per channel along `axisOf`. */
  function dequantized(bytes: Uint8Array, base: string, axisOf: (i: number) => number): Float32Array {
    const inits = readModel(bytes).graph.initializers;
    const q = tensorValues(inits.get(`${base}_quantized`)!)!;
    const s = tensorValues(inits.get(`${base}_scale`)!)!;
    const z = tensorValues(inits.get(`${base}_zero_point`)!)!;
    return Float32Array.from(q, (v, i) => (v - z[axisOf(i) % z.length]!) * s[axisOf(i) % s.length]!);
  }

  const cases: [string, DynamicQuantOptions][] = [
    ["uint8 per tensor", { weightType: "uint8", conv: true }],
    ["int8 per tensor", { weightType: "int8", conv: true }],
    ["int8 per channel", { weightType: "int8", perChannel: true }],
    [
      "uint8 per channel, reduced range",
      { weightType: "uint8", perChannel: true, reduceRange: true, conv: true },
    ],
  ];
  for (const [label, options] of cases) {
    it(`${label}: weights round-trip within half a step and the graph matches float32`, async () => {
      const { bytes, w, cw } = smallModel();
      const q = dynamicQuantVariant(readModel(bytes), options);
      const inits = readModel(q).graph.initializers;
      const qType = options.weightType === "uint8" ? ELEMENT_TYPES.UINT8 : ELEMENT_TYPES.INT8;
      expect(inits.get("w_quantized")!.dataType).toBe(qType);
      expect(inits.has("w")).toBe(false);
      const steps = tensorValues(inits.get("w_scale")!)!;
      const back = dequantized(q, "w", (i) => i % 6);
      for (let i = 0; i < w.length; i++) {
        expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(steps[(i % 6) % steps.length]! / 2 + 1e-7);
      }
      if (options.conv) {
        const cback = dequantized(q, "cw", (i) => Math.floor(i / 18));
        const cs = tensorValues(inits.get("cw_scale")!)!;
        for (let i = 0; i < cw.length; i++) {
          expect(Math.abs(cback[i]! - cw[i]!)).toBeLessThanOrEqual(
            cs[Math.floor(i / 18) % cs.length]! / 2 + 1e-7,
          );
        }
      } else {
        expect(inits.has("cw")).toBe(true);
      }
      const x = uniform(32, 5, -1, 1);
      const img = uniform(72, 6, -1, 1);
      const run = async (b: Uint8Array) => {
        const s = await createSession(b, { threads: 1 });
        const r = await s.run({ x: ortFloat32(x, [4, 8]), img: ortFloat32(img, [1, 2, 6, 6]) });
        await s.release();
        return { y: fromOrt(r.y!).data, z: fromOrt(r.z!).data };
      };
      const ref = await run(bytes);
      const got = await run(q);
      // Error of a dot product of 8 (resp. 18) terms with both sides quantized to 8 bits (7 with
      // reduced range): measured ≤ 0.02; the weights' and inputs' steps are ≈ 0.004–0.008.
      expect(outputDifference(ref.y, got.y).maxAbs).toBeLessThan(0.05);
      expect(outputDifference(ref.z, got.z).maxAbs).toBeLessThan(0.08);
    });
  }
});
