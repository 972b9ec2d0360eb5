// runPerSam without H × W maps against its literal full-resolution path (literalFullResolution):
// same masks, areas, boxes, prior points and decoder prompts; attn_sim within 1e-6.

import { describe, expect, it } from "vitest";
import type { DecoderInputs, DecoderOutputs, MaskDecoder } from "../src/segment/decoder-types.js";
import {
  type EncodedImage,
  type PerSamResult,
  runPerSam,
  upsampleMask,
  upsampleMaskLiteral,
} from "../src/segment/persam.js";
import { preprocessShape } from "../src/segment/preprocess.js";
import { randomDecoderWeights, randomEmbedding } from "../src/segment/random-weights.js";
import { computeReferenceTarget } from "../src/segment/reference.js";
import { ReferenceDecoder } from "../src/segment/reference-decoder.js";
import type { Size, Tensor } from "../src/segment/tensor.js";

const C = 32;
const N = 256 * 256;

/** Embedding with a block of cells sharing one vector (the subject). */
function blobEmbedding(seed: number, r0: number, r1: number, c0: number, c1: number): Tensor {
  const e = randomEmbedding(C, seed);
  for (let ch = 0; ch < C; ch++) {
    const v = 3 * Math.sin(ch * 1.7 + 0.3);
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) e.data[ch * 4096 + r * 64 + c] = v;
  }
  return e;
}

function gridOf(r0: number, r1: number, c0: number, c1: number): Uint8Array {
  const g = new Uint8Array(4096);
  for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) g[r * 64 + c] = 1;
  return g;
}

/** Answers each call with elliptical logits (rippled, a different radius per token and call). */
class EllipseDecoder implements MaskDecoder {
  readonly embedDim = C;
  readonly calls: DecoderInputs[] = [];
  constructor(
    private readonly inputSize: Size,
    private readonly emptyCall = -1,
  ) {}
  async run(inputs: DecoderInputs): Promise<DecoderOutputs> {
    const call = this.calls.length;
    this.calls.push(inputs);
    const data = new Float32Array(4 * N);
    const hImg = this.inputSize[0] / 4;
    const wImg = this.inputSize[1] / 4;
    for (let t = 0; t < 4; t++) {
      const radius = 0.5 + 0.3 * t + 0.1 * call;
      for (let y = 0; y < 256; y++) {
        for (let x = 0; x < 256; x++) {
          const dx = (x - wImg / 2) / (wImg / 5);
          const dy = (y - hImg / 3) / (hImg / 4);
          const v =
            12 * (1 - Math.hypot(dx, dy) / radius) + 1.5 * Math.sin(x / 7 + t) * Math.cos(y / 9 - call);
          data[t * N + y * 256 + x] = call === this.emptyCall ? -Math.abs(v) - 1 : v;
        }
      }
    }
    return {
      lowResMasks: { data, dims: [1, 4, 256, 256] },
      iouScores: Float32Array.of(0.1, 0.5 + 0.1 * call, 0.7, 0.6),
    };
  }
}

function expectSame(fast: PerSamResult, literal: PerSamResult, where: string): void {
  expect(Buffer.from(fast.mask).equals(Buffer.from(literal.mask)), where).toBe(true);
  expect(fast.area, where).toBe(literal.area);
  expect(fast.prior, where).toStrictEqual(literal.prior);
  expect(fast.flags, where).toEqual(literal.flags);
  expect(fast.iouScore, where).toBe(literal.iouScore);
  expect(
    fast.steps.map((s) => [s.name, s.chosen, s.box]),
    where,
  ).toEqual(literal.steps.map((s) => [s.name, s.chosen, s.box]));
  expect(fast.similarity.max).toBe(literal.similarity.max);
  expect(fast.similarity.min).toBe(literal.similarity.min);
  expect(fast.similarity.peak64Image).toBe(literal.similarity.peak64Image);
  expect(Math.abs(fast.similarity.mean - literal.similarity.mean)).toBeLessThan(1e-7);
  expect(Math.abs(fast.similarity.std - literal.similarity.std)).toBeLessThan(1e-7);
}

function expectSamePrompts(fast: DecoderInputs[], literal: DecoderInputs[], where: string): void {
  expect(fast.length, where).toBe(literal.length);
  for (let i = 0; i < fast.length; i++) {
    expect(fast[i]!.pointCoords, where).toEqual(literal[i]!.pointCoords);
    expect(fast[i]!.pointLabels, where).toEqual(literal[i]!.pointLabels);
    const a = fast[i]!.attnSim;
    const b = literal[i]!.attnSim;
    expect(a === undefined, where).toBe(b === undefined);
    if (a && b) {
      let worst = 0;
      for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
      expect(worst, where).toBeLessThanOrEqual(1e-6);
    }
  }
}

describe("runPerSam: fast path equals the literal full-resolution path", () => {
  const target = computeReferenceTarget({
    references: [{ embedding: blobEmbedding(1, 20, 27, 30, 37), grid: gridOf(20, 27, 30, 37) }],
  });

  const cases: [Size, boolean][] = [
    [[3024, 4032], false],
    [[4032, 3024], true],
    [[480, 640], true],
    [[48, 64], false],
    [[1, 517], false],
    [[517, 1], true],
  ];
  for (const [size, aligned] of cases) {
    it(`${size[1]}×${size[0]} (alignedAttnSim ${aligned})`, async () => {
      const image: EncodedImage = {
        embedding: blobEmbedding(2, 10, 15, 40, 45),
        originalSize: size,
        inputSize: preprocessShape(...size),
      };
      const dFast = new EllipseDecoder(image.inputSize);
      const dLit = new EllipseDecoder(image.inputSize);
      const options = { alignedAttnSim: aligned };
      const fast = await runPerSam({ decoder: dFast, target, image, options });
      const literal = await runPerSam({
        decoder: dLit,
        target,
        image,
        options: { ...options, literalFullResolution: true },
      });
      expectSame(fast, literal, `${size}`);
      expectSamePrompts(dFast.calls, dLit.calls, `${size}`);
    });
  }

  it("keeps refinement 1's (empty) mask when its box is missing, like the literal path", async () => {
    const size: Size = [480, 640];
    const image: EncodedImage = {
      embedding: blobEmbedding(3, 5, 9, 5, 9),
      originalSize: size,
      inputSize: preprocessShape(...size),
    };
    const fast = await runPerSam({ decoder: new EllipseDecoder(image.inputSize, 1), target, image });
    const literal = await runPerSam({
      decoder: new EllipseDecoder(image.inputSize, 1),
      target,
      image,
      options: { literalFullResolution: true },
    });
    expect(fast.flags).toContain("empty-mask-fallback");
    expectSame(fast, literal, "fallback");
  });

  it("with the reference decoder (random weights), masks from a real cascade", async () => {
    const decoder = new ReferenceDecoder(randomDecoderWeights({ embedDim: C, seed: 5 }));
    const size: Size = [480, 640];
    const image: EncodedImage = {
      embedding: blobEmbedding(4, 10, 15, 40, 45),
      originalSize: size,
      inputSize: preprocessShape(...size),
    };
    const fast = await runPerSam({ decoder, target, image });
    const literal = await runPerSam({ decoder, target, image, options: { literalFullResolution: true } });
    expectSame(fast, literal, "reference decoder");
    for (let i = 0; i < fast.steps.length; i++) {
      let worst = 0;
      const a = fast.steps[i]!.lowRes;
      const b = literal.steps[i]!.lowRes;
      for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
      expect(worst).toBeLessThan(1e-4);
    }
  });

  it("upsampleMask equals upsampleMaskLiteral", async () => {
    const size: Size = [3024, 4032];
    const inputSize = preprocessShape(...size);
    const out = await new EllipseDecoder(inputSize).run({} as DecoderInputs);
    const image: EncodedImage = { embedding: randomEmbedding(C, 1), originalSize: size, inputSize };
    for (const t of [0, 3]) {
      const low = out.lowResMasks.data.slice(t * N, (t + 1) * N);
      expect(Buffer.from(upsampleMask(low, image)).equals(Buffer.from(upsampleMaskLiteral(low, image)))).toBe(
        true,
      );
    }
  });
});
