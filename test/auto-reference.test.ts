import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { randomDecoderWeights, randomEmbedding } from "../src/segment/models/random-weights.js";
import { candidateGrid, chooseAutoReference, clickGrid } from "../src/segment/persam/auto-reference.js";
import type { EncodedImage } from "../src/segment/persam/persam.js";
import type { DecoderInputs, DecoderOutputs, MaskDecoder } from "../src/segment/sam/decoder-types.js";
import { preprocessShape } from "../src/segment/sam/preprocess.js";
import type { Tensor } from "../src/util/tensor.js";
import { ReferenceDecoder } from "./support/reference-decoder.js";

const C = 32;
const CELLS = 4096;
const N = 65536;

function blobEmbedding(
  seed: number,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
  background?: number[],
): Tensor {
  const e = randomEmbedding(C, seed);
  for (let ch = 0; ch < C; ch++) {
    const v = 3 * Math.sin(ch * 1.7 + 0.3);
    for (let k = 0; k < CELLS; k++) if (background) e.data[ch * CELLS + k] = background[ch]!;
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) e.data[ch * CELLS + r * 64 + c] = v;
  }
  return e;
}
const image = (embedding: Tensor): EncodedImage => ({
  embedding,
  originalSize: [64, 64],
  inputSize: preprocessShape(64, 64),
});

describe("clickGrid and candidateGrid", () => {
  it("places a 3×3 grid at 30/50/70 % of each side", () => {
    expect(clickGrid(100, 50, 3, 0.4)).toEqual([
      [30, 15],
      [50, 15],
      [70, 15],
      [30, 25],
      [50, 25],
      [70, 25],
      [30, 35],
      [50, 35],
      [70, 35],
    ]);
  });

  it("marks a cell when the 2×2 low-res logits under its taps are all positive", () => {
    const low = new Float32Array(N).fill(-1);
    // Cell (2, 3) reads low-res rows 9..10, cols 13..14.
    for (const [y, x] of [
      [9, 13],
      [9, 14],
      [10, 13],
      [10, 14],
    ] as const)
      low[y * 256 + x] = 1;
    const g = candidateGrid(low, [1024, 1024]);
    expect(g.reduce((s, v) => s + v, 0)).toBe(1);
    expect(g[2 * 64 + 3]).toBe(1);
    low[10 * 256 + 14] = -1;
    expect(candidateGrid(low, [1024, 1024])[2 * 64 + 3]).toBe(0);
    // Outside the resized photo (input 512 high) nothing counts.
    for (let x = 0; x < 256; x++) low[200 * 256 + x] = low[201 * 256 + x] = 1;
    expect(candidateGrid(low, [512, 1024]).reduce((s, v) => s + v, 0)).toBe(0);
  });
});

/** Stub: token 1 = the blob of the photo (by index), token 2 = almost the whole photo, token 3 = empty. */
class BlobDecoder implements MaskDecoder {
  readonly embedDim = C;
  constructor(private readonly blobs: readonly (readonly [number, number, number, number])[]) {}
  async run(inputs: DecoderInputs): Promise<DecoderOutputs> {
    const photo = this.blobs.findIndex((_, i) => inputs.imageEmbeddings === embeddings[i]);
    const [r0, r1, c0, c1] = this.blobs[photo]!;
    const data = new Float32Array(4 * N).fill(-4);
    for (let y = 4 * r0; y < 4 * (r1 + 1); y++)
      for (let x = 4 * c0; x < 4 * (c1 + 1); x++) data[N + y * 256 + x] = 4;
    for (let y = 0; y < 250; y++) for (let x = 0; x < 250; x++) data[2 * N + y * 256 + x] = 4;
    return { lowResMasks: { data, dims: [1, 4, 256, 256] }, iouScores: Float32Array.of(0.5, 0.8, 0.95, 0.1) };
  }
}
const blobs = [
  [24, 33, 24, 33],
  [10, 19, 40, 49],
  [40, 49, 8, 17],
] as const;
// The background is the same in every photo ("present everywhere"), the blob is the subject.
const bg = Array.from({ length: C }, (_, ch) => Math.cos(ch * 0.9));
const embeddings = blobs.map(([r0, r1, c0, c1], i) => blobEmbedding(10 + i, r0, r1, c0, c1, bg));

describe("chooseAutoReference", () => {
  it("prefers the subject that recurs in the other photos over the whole-photo background", async () => {
    const choice = await chooseAutoReference({
      decoder: new BlobDecoder(blobs),
      images: embeddings.map(image),
    });
    expect(choice.candidate.token).toBe(1);
    expect(choice.photoIndex).toBe(0);
    expect(choice.candidate.meanPeak).toBeCloseTo(1, 5);
    // The whole-photo candidate is also found everywhere (background), but loses to the area rule.
    const whole = choice.candidates.filter((c) => c.token === 2);
    expect(whole.every((c) => c.skipped === "too-large" || c.score < choice.score)).toBe(true);
    expect(choice.candidates.filter((c) => c.token === 3).every((c) => c.skipped === "too-small")).toBe(true);
    // Nine clicks give the same masks: one kept, the rest merged as duplicates.
    expect(
      choice.candidates.filter((c) => c.photoIndex === 0 && c.token === 1 && c.skipped === "duplicate")
        .length,
    ).toBe(8);
    expect(choice.grid.reduce((s, v) => s + v, 0)).toBeGreaterThanOrEqual(64);
    expect(choice.mask.length).toBe(64 * 64);
  });

  it("runs end to end on the reference decoder and is deterministic", async () => {
    // Random weights give speckled masks, so the outcome may be a clear refusal: either way, the
    // same inputs must give the same answer, after one decoder pass per click and photo.
    const inner = new ReferenceDecoder(randomDecoderWeights({ embedDim: C, seed: 5 }));
    let passes = 0;
    const decoder: MaskDecoder = {
      embedDim: C,
      run: (i) => {
        passes++;
        return inner.run(i);
      },
    };
    const imgs = embeddings.slice(0, 2).map(image);
    const attempt = () =>
      chooseAutoReference({ decoder, images: imgs, gridPoints: 1, maxAreaFraction: 1 }).then(
        (c) => ({ photo: c.photoIndex, score: c.score, cells: c.grid.reduce((s, v) => s + v, 0) }),
        (e: unknown) => (e instanceof UserError ? e.message : Promise.reject(e)),
      );
    const a = await attempt();
    expect(passes).toBeGreaterThanOrEqual(2);
    expect(await attempt()).toEqual(a);
  });
});
