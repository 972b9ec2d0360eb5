import { describe, expect, it } from "vitest";
import { randomDecoderWeights } from "../src/segment/models/random-weights.js";
import { densePositionalEncoding, pointEncoding } from "../src/segment/sam/positional-encoding.js";
import { POSITIONAL_EMBEDDING_KEY } from "../src/segment/sam/safetensors.js";
import type { Tensor } from "../src/util/tensor.js";

// G = [[0.25, 1, 0], [0, 0.5, 2]] (C = 6): row 0 multiplies x, row 1 multiplies y.
const simpleG: Tensor = { data: new Float32Array([0.25, 1, 0, 0, 0.5, 2]), dims: [2, 3] };

describe("pointEncoding", () => {
  it("matches hand-computed values, sines first then cosines", () => {
    // u = 0.75, v = 0.25 → a = 0.5, b = −0.5 → p = [0.125, 0.25, −1] → θ = [π/4, π/2, −2π].
    const e = pointEncoding(simpleG, 0.75, 0.25);
    const expected = [Math.SQRT1_2, 1, 0, Math.SQRT1_2, 0, 1];
    expect(e.length).toBe(6);
    for (let k = 0; k < 6; k++) expect(e[k]).toBeCloseTo(expected[k]!, 6);
  });

  it("maps the centre (u, v) = (0.5, 0.5) to [0…0, 1…1]", () => {
    const g = randomDecoderWeights({ embedDim: 32, seed: 3 }).get(POSITIONAL_EMBEDDING_KEY)!;
    const e = pointEncoding(g, 0.5, 0.5);
    expect([...e.subarray(0, 16)].every((x) => x === 0)).toBe(true);
    expect([...e.subarray(16)].every((x) => x === 1)).toBe(true);
  });

  it("uses row 0 of G for x and row 1 for y", () => {
    const onlyX: Tensor = { data: new Float32Array([0.25, 0, 0, 0]), dims: [2, 2] };
    // Moving along y changes nothing when row 1 is zero.
    expect([...pointEncoding(onlyX, 1, 0)]).toEqual([...pointEncoding(onlyX, 1, 1)]);
    // u = 1 → a = 1 → θ_0 = 2π·0.25 = π/2.
    expect(pointEncoding(onlyX, 1, 0)[0]).toBeCloseTo(1, 7);
    expect(pointEncoding(onlyX, 0, 0)[0]).toBeCloseTo(-1, 7);
  });

  it("rejects a G that is not [2, C/2]", () => {
    expect(() => pointEncoding({ data: new Float32Array(6), dims: [3, 2] }, 0, 0)).toThrow(
      "Expected a [2, C/2] Gaussian matrix for G but received [3,2]",
    );
  });
});

describe("densePositionalEncoding", () => {
  const g = randomDecoderWeights({ embedDim: 32, seed: 7 }).get(POSITIONAL_EMBEDDING_KEY)!;
  const pe = densePositionalEncoding(g);

  it("is [1, C, 64, 64]", () => {
    expect(pe.dims).toEqual([1, 32, 64, 64]);
    expect(pe.data.length).toBe(32 * 4096);
  });

  it("holds PE((c + 0.5)/64, (r + 0.5)/64) at row r, column c", () => {
    for (const [r, c] of [
      [0, 0],
      [0, 63],
      [17, 5],
      [63, 0],
      [40, 41],
    ] as const) {
      const e = pointEncoding(g, (c + 0.5) / 64, (r + 0.5) / 64);
      const cell = Array.from({ length: 32 }, (_, k) => pe.data[k * 4096 + r * 64 + c]);
      expect(cell).toEqual([...e]);
    }
  });

  it("agrees with a prompt point at the cell centre (1024-frame pixel 16c + 7.5)", () => {
    const r = 9;
    const c = 30;
    const e = pointEncoding(g, (16 * c + 7.5 + 0.5) / 1024, (16 * r + 7.5 + 0.5) / 1024);
    for (let k = 0; k < 32; k++) expect(pe.data[k * 4096 + r * 64 + c]).toBe(e[k]);
  });

  it("matches the hand-computed G at the top-left cell", () => {
    const d = densePositionalEncoding(simpleG);
    // (u, v) = (1/128, 1/128) → a = b = −63/64.
    const a = -63 / 64;
    const thetas = [0.25 * a, 1 * a + 0.5 * a, 2 * a].map((p) => 2 * Math.PI * p);
    const expected = [...thetas.map(Math.sin), ...thetas.map(Math.cos)];
    for (let k = 0; k < 6; k++) expect(d.data[k * 4096]).toBeCloseTo(expected[k]!, 6);
  });
});
