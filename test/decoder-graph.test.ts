// The decoder graph's interface, the SamDecoder session wrapper (validation), output
// selection, and the tiny random test encoder.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomDecoderWeights, randomEmbedding } from "../src/segment/models/random-weights.js";
import { buildTinyEncoderGraph } from "../src/segment/models/tiny-encoder.js";
import { buildDecoderGraph } from "../src/segment/sam/decoder-graph.js";
import { missingDecoderNames, SamDecoder, selectOutputs } from "../src/segment/sam/decoder-session.js";
import { DECODER_IO, type DecoderInputs } from "../src/segment/sam/decoder-types.js";
import { createSession, fromOrt, ioTypes, ortFloat32 } from "../src/segment/sam/ort.js";
import { densePositionalEncoding } from "../src/segment/sam/positional-encoding.js";
import { argmax, type Tensor } from "../src/util/tensor.js";

/** Element-wise equality; vitest's deep equality is slow on arrays of 10⁵–10⁶ elements. */
function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

const C = 32;
const weights = randomDecoderWeights({ embedDim: C, seed: 21 });
const imageEmbeddings = randomEmbedding(C, 22);
const prompt = { pointCoords: new Float32Array([300, 410, 0, 0]), pointLabels: new Float32Array([1, -1]) };

describe("buildDecoderGraph", () => {
  it("declares exactly the DECODER_IO inputs and outputs, with N as the only dynamic axis", async () => {
    const session = await createSession(buildDecoderGraph(weights), { threads: 1 });
    try {
      expect([...session.inputNames].sort()).toEqual(Object.values(DECODER_IO.inputs).sort());
      expect([...session.outputNames].sort()).toEqual(Object.values(DECODER_IO.outputs).sort());
      const inputs = ioTypes(session, "inputs");
      expect(inputs.get("image_embeddings")).toEqual({ type: "float32", dims: [1, C, 64, 64] });
      expect(inputs.get("point_coords")).toEqual({ type: "float32", dims: [1, "N", 2] });
      expect(inputs.get("point_labels")).toEqual({ type: "float32", dims: [1, "N"] });
      expect(inputs.get("mask_input")?.dims).toEqual([1, 1, 256, 256]);
      expect(inputs.get("has_mask_input")?.dims).toEqual([1]);
      expect(inputs.get("attn_sim")?.dims).toEqual([1, 1, 1, 4096]);
      expect(inputs.get("has_attn_sim")?.dims).toEqual([1]);
      expect(inputs.get("target_embedding")?.dims).toEqual([1, 1, C]);
      const outputs = ioTypes(session, "outputs");
      expect(outputs.get("low_res_masks")).toEqual({ type: "float32", dims: [1, 4, 256, 256] });
      expect(outputs.get("iou_predictions")).toEqual({ type: "float32", dims: [1, 4] });
    } finally {
      await session.release();
    }
  });

  it("names a missing weight", () => {
    const partial = new Map(weights);
    partial.delete("mask_decoder.transformer.layers.1.mlp.lin2.bias");
    expect(() => buildDecoderGraph(partial)).toThrow(
      "Expected decoder weight mask_decoder.transformer.layers.1.mlp.lin2.bias but it is missing",
    );
  });

  it("names a mis-shaped weight", () => {
    const bad = new Map(weights);
    bad.set("mask_decoder.mask_tokens.weight", { data: new Float32Array(3 * C), dims: [3, C] });
    expect(() => buildDecoderGraph(bad)).toThrow(
      `Expected [4,${C}] for decoder weight mask_decoder.mask_tokens.weight but received [3,${C}]`,
    );
  });

  it("accepts the tied name of the Gaussian matrix", async () => {
    const tied = new Map(weights);
    const g = tied.get("shared_image_embedding.positional_embedding")!;
    tied.delete("shared_image_embedding.positional_embedding");
    tied.set("prompt_encoder.shared_embedding.positional_embedding", g);
    const a = await SamDecoder.create({ weights, threads: 1 });
    const b = await SamDecoder.create({ weights: tied, threads: 1 });
    try {
      const inputs = { imageEmbeddings, ...prompt };
      expect(same((await b.run(inputs)).lowResMasks.data, (await a.run(inputs)).lowResMasks.data)).toBe(true);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});

describe("SamDecoder", () => {
  let decoder: SamDecoder;
  beforeAll(async () => {
    decoder = await SamDecoder.create({ weights, threads: 1 });
  });
  afterAll(async () => {
    await decoder.dispose();
  });

  it("reports its width and runs any number of points", async () => {
    expect(decoder.embedDim).toBe(C);
    for (const n of [0, 1, 2, 6]) {
      const out = await decoder.run({
        imageEmbeddings,
        pointCoords: Float32Array.from({ length: 2 * n }, (_, i) => 37 * i),
        pointLabels: Float32Array.from({ length: n }, (_, i) => (i === n - 1 ? -1 : i % 2)),
      });
      expect(out.lowResMasks.dims).toEqual([1, 4, 256, 256]);
      expect(out.iouScores.length).toBe(4);
      expect(out.lowResMasks.data.every(Number.isFinite)).toBe(true);
    }
  });

  it("depends on the points (label and position)", async () => {
    const a = await decoder.run({ imageEmbeddings, ...prompt });
    const b = await decoder.run({ imageEmbeddings, ...prompt, pointLabels: new Float32Array([0, -1]) });
    const c = await decoder.run({
      imageEmbeddings,
      ...prompt,
      pointCoords: new Float32Array([900, 100, 0, 0]),
    });
    expect(b.iouScores).not.toEqual(a.iouScores);
    expect(c.iouScores).not.toEqual(a.iouScores);
  });

  it("ignores the coordinates of a padding point (its PE is replaced, §2.2)", async () => {
    const a = await decoder.run({ imageEmbeddings, ...prompt });
    const b = await decoder.run({
      imageEmbeddings,
      ...prompt,
      pointCoords: new Float32Array([300, 410, 777, 55]),
    });
    expect(same(b.lowResMasks.data, a.lowResMasks.data)).toBe(true);
  });

  it("validates inputs before running, naming the input", async () => {
    const run = (extra: Partial<DecoderInputs>) => decoder.run({ imageEmbeddings, ...prompt, ...extra });
    await expect(run({ pointCoords: new Float32Array(3) })).rejects.toThrow(
      "Expected 4 values (2 per label) for pointCoords but received 3",
    );
    await expect(run({ imageEmbeddings: randomEmbedding(64, 1) })).rejects.toThrow(
      `Expected [1,${C},64,64] for imageEmbeddings but received [1,64,64,64]`,
    );
    await expect(run({ maskInput: { data: new Float32Array(16), dims: [1, 1, 4, 4] } })).rejects.toThrow(
      "Expected [1,1,256,256] for maskInput but received [1,1,4,4]",
    );
    await expect(run({ attnSim: new Float32Array(10) })).rejects.toThrow(
      "Expected 4096 values for attnSim but received 10",
    );
    await expect(run({ targetEmbedding: new Float32Array(5) })).rejects.toThrow(
      `Expected ${C} values for targetEmbedding but received 5`,
    );
  });

  it("lists every DECODER_IO name a session lacks", () => {
    expect(missingDecoderNames(["image_embeddings", "point_coords", "point_labels"], ["low_res_masks"])).toBe(
      "missing inputs mask_input, has_mask_input, attn_sim, has_attn_sim, target_embedding and outputs iou_predictions",
    );
    expect(
      missingDecoderNames([...Object.values(DECODER_IO.inputs)], [...Object.values(DECODER_IO.outputs)]),
    ).toBe(undefined);
  });
});

describe("selectOutputs and argmax", () => {
  const out = {
    lowResMasks: { data: new Float32Array(0), dims: [1, 4, 256, 256] } as Tensor,
    iouScores: new Float32Array([0.9, 0.2, 0.7, 0.7]),
  };

  it("takes tokens 1..3 for multimask and token 0 otherwise (§3.6)", () => {
    const multi = selectOutputs(out, true);
    expect(multi.indices).toEqual([1, 2, 3]);
    expect([...multi.scores]).toEqual([out.iouScores[1], out.iouScores[2], out.iouScores[3]]);
    const single = selectOutputs(out, false);
    expect(single.indices).toEqual([0]);
    expect([...single.scores]).toEqual([out.iouScores[0]]);
  });

  it("argmax returns the first index on ties and skips NaN", () => {
    expect(argmax([0.2, 0.7, 0.7])).toBe(1);
    expect(argmax([Number.NaN, 1, 3, 3])).toBe(2);
    expect(argmax([5])).toBe(0);
    expect(() => argmax([])).toThrow("Expected at least one value for argmax but received none");
  });
});

describe("buildTinyEncoderGraph (test weights)", () => {
  const positionalMatrix = weights.get("shared_image_embedding.positional_embedding")!;

  function image(seed: number): Float32Array {
    const data = new Float32Array(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++)
      data[i] = Math.sin(i * 0.001 * seed + seed) + 0.3 * Math.cos(i * 0.37);
    return data;
  }

  it("is deterministic from its seed", () => {
    const a = buildTinyEncoderGraph({ embedDim: C, positionalMatrix, seed: 5 });
    expect(same(buildTinyEncoderGraph({ embedDim: C, positionalMatrix, seed: 5 }), a)).toBe(true);
    expect(same(buildTinyEncoderGraph({ embedDim: C, positionalMatrix, seed: 6 }), a)).toBe(false);
  });

  it("has the vision_encoder I/O and gives image-dependent, normalised embeddings plus the dense PE", async () => {
    const session = await createSession(buildTinyEncoderGraph({ embedDim: C, positionalMatrix, seed: 5 }), {
      threads: 1,
    });
    try {
      expect(ioTypes(session, "inputs").get("pixel_values")).toEqual({
        type: "float32",
        dims: [1, 3, 1024, 1024],
      });
      const outputs = ioTypes(session, "outputs");
      expect(outputs.get("image_embeddings")?.dims).toEqual([1, C, 64, 64]);
      expect(outputs.get("image_positional_embeddings")?.dims).toEqual([1, C, 64, 64]);
      const run = async (seed: number) => {
        const out = await session.run({ pixel_values: ortFloat32(image(seed), [1, 3, 1024, 1024]) });
        return { emb: fromOrt(out.image_embeddings!), pe: fromOrt(out.image_positional_embeddings!) };
      };
      const a = await run(1);
      const b = await run(2);
      expect(a.emb.dims).toEqual([1, C, 64, 64]);
      expect(same(a.pe.data, densePositionalEncoding(positionalMatrix).data)).toBe(true);
      expect(same(a.emb.data, b.emb.data)).toBe(false);
      // Per pixel over channels: mean 0, variance 1 (the LayerNorm2d-like end).
      for (const p of [0, 1234, 4095]) {
        let mean = 0;
        let sq = 0;
        for (let ch = 0; ch < C; ch++) mean += a.emb.data[ch * 4096 + p]!;
        mean /= C;
        for (let ch = 0; ch < C; ch++) sq += (a.emb.data[ch * 4096 + p]! - mean) ** 2;
        expect(Math.abs(mean)).toBeLessThan(1e-5);
        expect(sq / C).toBeCloseTo(1, 3);
      }
      // Spatially varying: channel 0 differs between two cells.
      expect(a.emb.data[0]).not.toBeCloseTo(a.emb.data[2080]!, 3);
    } finally {
      await session.release();
    }
  });

  it("rejects a positional matrix of the wrong width", () => {
    expect(() => buildTinyEncoderGraph({ embedDim: 64, positionalMatrix, seed: 1 })).toThrow(
      `Expected [2,32] for positionalMatrix but received [2,${C / 2}]`,
    );
  });
});
