import { describe, expect, it } from "vitest";
import { randomDecoderWeights, randomEmbedding } from "../src/segment/models/random-weights.js";
import { type EncodedImage, runPerSam } from "../src/segment/persam/persam.js";
import { adaptPerSamF, runPerSamF } from "../src/segment/persam/persam-f.js";
import { computeReferenceTarget } from "../src/segment/persam/target-embedding.js";
import type { DecoderInputs, DecoderOutputs, MaskDecoder } from "../src/segment/sam/decoder-types.js";
import { preprocessShape, transformBox } from "../src/segment/sam/preprocess.js";
import type { Tensor } from "../src/util/tensor.js";
import { ReferenceDecoder } from "./support/reference-decoder.js";

const C = 32;
const CELLS = 4096;
const N = 65536;

/** Random embedding with the cells of a rectangle (rows r0..r1, cols c0..c1, inclusive) sharing one vector. */
function blobEmbedding(seed: number, r0: number, r1: number, c0: number, c1: number): Tensor {
  const e = randomEmbedding(C, seed);
  for (let ch = 0; ch < C; ch++) {
    const v = 3 * Math.sin(ch * 1.7 + 0.3);
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) e.data[ch * CELLS + r * 64 + c] = v;
  }
  return e;
}

function gridOf(r0: number, r1: number, c0: number, c1: number): Uint8Array {
  const g = new Uint8Array(CELLS);
  for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) g[r * 64 + c] = 1;
  return g;
}

// A 64×48 photo: input size 768×1024, so photo pixel (x, y) sits on grid cell (col x, row y).
const SIZE = [48, 64] as const;
const image = (embedding: Tensor): EncodedImage => ({
  embedding,
  originalSize: SIZE,
  inputSize: preprocessShape(48, 64),
});

/** A decoder that records its inputs and answers with fixed logits: token t positive in a rectangle. */
class StubDecoder implements MaskDecoder {
  readonly embedDim = C;
  readonly calls: DecoderInputs[] = [];
  constructor(private readonly positive: (call: number, token: number) => boolean) {}
  async run(inputs: DecoderInputs): Promise<DecoderOutputs> {
    const call = this.calls.length;
    this.calls.push(inputs);
    const data = new Float32Array(4 * N).fill(-5);
    for (let t = 0; t < 4; t++) {
      if (!this.positive(call, t)) continue;
      // low-res rows 40..79, cols 40..119 → photo y ≈ 10..19, x ≈ 10..29
      for (let y = 40; y < 80; y++) for (let x = 40; x < 120; x++) data[t * N + y * 256 + x] = 5 + t;
    }
    return { lowResMasks: { data, dims: [1, 4, 256, 256] }, iouScores: Float32Array.of(0.1, 0.5, 0.9, 0.9) };
  }
}

describe("runPerSam cascade (stub decoder)", () => {
  const ref = blobEmbedding(1, 20, 27, 30, 37);
  const target = computeReferenceTarget({ references: [{ embedding: ref, grid: gridOf(20, 27, 30, 37) }] });
  const photo = image(blobEmbedding(2, 10, 15, 40, 45));

  it("feeds the prompts of §7.2 6–8 and keeps the best multimask output (first on ties)", async () => {
    const stub = new StubDecoder(() => true);
    const r = await runPerSam({ decoder: stub, target, image: photo });
    expect(stub.calls.length).toBe(3);
    const [first, ref1, ref2] = stub.calls as [DecoderInputs, DecoderInputs, DecoderInputs];
    expect(Array.from(first.pointLabels)).toEqual([1, 0, -1]);
    expect(first.attnSim?.length).toBe(CELLS);
    expect(first.targetEmbedding).toBe(target.targetEmbedding);
    expect(first.maskInput).toBeUndefined();
    // Refinement 1: same tokens, no hooks, mask input = first pass's token 0 logits.
    expect(Array.from(ref1.pointLabels)).toEqual([1, 0, -1]);
    expect(ref1.attnSim).toBeUndefined();
    expect(ref1.targetEmbedding).toBeUndefined();
    expect(ref1.maskInput?.data[40 * 256 + 40]).toBe(5);
    // Refinement 2: 2 clicks + box (labels 2, 3), no padding; mask input = token 2 (IoU 0.9, first tie).
    expect(Array.from(ref2.pointLabels)).toEqual([1, 0, 2, 3]);
    expect(ref2.maskInput?.data[40 * 256 + 40]).toBe(7);
    const box = r.steps[2]!.box!;
    expect(Array.from(ref2.pointCoords.slice(4))).toEqual(
      Array.from(transformBox(box, SIZE, photo.inputSize)),
    );
    // The box is the inclusive extent of the up-sampled rectangle (photo x ≈ 10..29, y ≈ 10..19).
    expect(box[0]).toBeGreaterThanOrEqual(9);
    expect(box[0]).toBeLessThanOrEqual(10);
    expect(box[2]).toBeGreaterThanOrEqual(29);
    expect(box[2]).toBeLessThanOrEqual(30);
    expect(box[1]).toBeGreaterThanOrEqual(9);
    expect(box[3]).toBeLessThanOrEqual(20);
    expect(r.steps.map((s) => [s.name, s.chosen])).toEqual([
      ["first", 0],
      ["refine1", 2],
      ["refine2", 2],
    ]);
    expect(r.iouScore).toBeCloseTo(0.9, 6);
    expect(r.flags).toEqual([]);
    expect(r.area).toBeGreaterThan(150);
  });

  it("puts the positive click on the blob and the negative one off it", async () => {
    const r = await runPerSam({ decoder: new StubDecoder(() => true), target, image: photo });
    const [x, y] = r.prior.positive;
    expect(x).toBeGreaterThanOrEqual(40);
    expect(x).toBeLessThanOrEqual(46);
    expect(y).toBeGreaterThanOrEqual(10);
    expect(y).toBeLessThanOrEqual(16);
    const [nx, ny] = r.prior.negative;
    expect(nx >= 40 && nx <= 46 && ny >= 10 && ny <= 16).toBe(false);
    expect(r.similarity.peak64).toBeCloseTo(1, 5);
  });

  it("skips refinement 2 when refinement 1's mask is empty and flags it (§9.19)", async () => {
    const stub = new StubDecoder((call) => call === 0);
    const r = await runPerSam({ decoder: stub, target, image: photo });
    expect(stub.calls.length).toBe(2);
    expect(r.flags).toEqual(["empty-mask-fallback", "empty-mask"]);
    expect(r.steps.map((s) => s.name)).toEqual(["first", "refine1"]);
    expect(r.area).toBe(0);
  });

  it("runPerSamF fuses the multimask outputs with λ and refines with box + fused mask input", async () => {
    const stub = new StubDecoder(() => true);
    const ft = computeReferenceTarget({
      references: [{ embedding: ref, grid: gridOf(20, 27, 30, 37) }],
      variant: "persam-f",
    });
    const r = await runPerSamF({ decoder: stub, target: ft, lambdas: [0.5, 0.25, 0.25], image: photo });
    expect(stub.calls.length).toBe(3);
    expect(Array.from(stub.calls[0]!.pointLabels)).toEqual([1, -1]);
    expect(Array.from(stub.calls[1]!.pointLabels)).toEqual([1, 2, 3]);
    // ℓ = 0.5·6 + 0.25·7 + 0.25·8 = 6.75 inside, −5 outside.
    expect(stub.calls[1]!.maskInput?.data[40 * 256 + 40]).toBeCloseTo(6.75, 6);
    expect(stub.calls[1]!.maskInput?.data[0]).toBeCloseTo(-5, 6);
    expect(stub.calls[2]!.maskInput?.data[40 * 256 + 40]).toBe(7);
    expect(r.flags).toEqual([]);
  });
});

describe("PerSAM on the reference decoder (C = 32)", () => {
  const decoder = new ReferenceDecoder(randomDecoderWeights({ embedDim: C, seed: 5 }));
  const ref = blobEmbedding(1, 20, 27, 30, 37);
  const refGrid = gridOf(20, 27, 30, 37);

  it("runPerSam runs the whole cascade and returns a photo-sized mask", async () => {
    const target = computeReferenceTarget({ references: [{ embedding: ref, grid: refGrid }] });
    const r = await runPerSam({ decoder, target, image: image(blobEmbedding(2, 10, 15, 40, 45)) });
    expect(r.mask.length).toBe(48 * 64);
    expect(r.prior.positive[0]).toBeGreaterThanOrEqual(40);
    expect(r.prior.positive[1]).toBeLessThanOrEqual(16);
    expect(r.steps.length).toBe(r.flags.includes("empty-mask-fallback") ? 2 : 3);
    expect(Number.isFinite(r.iouScore)).toBe(true);
  });

  it("adaptPerSamF trains λ on the reference and runPerSamF uses them", async () => {
    const red = new Uint8Array(48 * 64);
    for (let y = 20; y <= 27; y++) for (let x = 30; x <= 37; x++) red[y * 64 + x] = 128;
    const a = await adaptPerSamF({
      decoder,
      referenceImage: image(ref),
      referenceMaskRed: red,
      referenceGrid: refGrid,
      trainer: { steps: 200 },
    });
    expect(a.target.variant).toBe("persam-f");
    const [x, y] = a.referencePoint;
    expect(x >= 30 && x <= 38 && y >= 20 && y <= 28).toBe(true);
    expect(a.lambdas[0] + a.lambdas[1] + a.lambdas[2]).toBeCloseTo(1, 12);
    expect(a.training.finalLoss).toBeLessThanOrEqual(a.training.lossHistory[0]!.loss);
    const r = await runPerSamF({
      decoder,
      target: a.target,
      lambdas: a.lambdas,
      image: image(blobEmbedding(2, 10, 15, 40, 45)),
    });
    expect(r.mask.length).toBe(48 * 64);
    expect(r.prior.positive[0]).toBeGreaterThanOrEqual(40);
  });
});
