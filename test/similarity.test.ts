import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { cosineSimilarityGrid, gridPeakInImage, similarityMap } from "../src/segment/persam/similarity.js";
import { computeReferenceTarget } from "../src/segment/persam/target-embedding.js";
import type { Tensor } from "../src/util/tensor.js";

const CELLS = 4096;

/** A [1, C, 64, 64] embedding whose cell k holds vec(k). */
function embeddingOf(channels: number, vec: (k: number) => number[]): Tensor {
  const data = new Float32Array(channels * CELLS);
  for (let k = 0; k < CELLS; k++) {
    const v = vec(k);
    for (let c = 0; c < channels; c++) data[c * CELLS + k] = v[c]!;
  }
  return { data, dims: [1, channels, 64, 64] };
}

describe("computeReferenceTarget", () => {
  // Cells 0 and 1 hold (1,0) and (3,4); everything else (0,1).
  const emb = embeddingOf(2, (k) => (k === 0 ? [1, 0] : k === 1 ? [3, 4] : [0, 1]));
  const grid = new Uint8Array(CELLS);
  grid[0] = 1;
  grid[1] = 1;

  it("takes the mean of the masked cells as t and normalises it for targetFeat (§7.1)", () => {
    const t = computeReferenceTarget({ references: [{ embedding: emb, grid }] });
    expect(Array.from(t.targetEmbedding)).toEqual([2, 2]);
    expect(t.targetFeat[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(t.targetFeat[1]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(t.cellCounts).toEqual([2]);
  });

  it("uses (max + mean) / 2 for PerSAM-F (§8.1)", () => {
    const t = computeReferenceTarget({ references: [{ embedding: emb, grid }], variant: "persam-f" });
    // max (3,4), mean (2,2) → (2.5, 3) → /‖·‖ = /√15.25
    const n = Math.sqrt(2.5 * 2.5 + 9);
    expect(t.targetFeat[0]).toBeCloseTo(2.5 / n, 6);
    expect(t.targetFeat[1]).toBeCloseTo(3 / n, 6);
    expect(Array.from(t.targetEmbedding)).toEqual([2, 2]);
  });

  it("averages the target embeddings of several references", () => {
    const other = new Uint8Array(CELLS);
    other[5] = 1; // (0,1)
    const t = computeReferenceTarget({
      references: [
        { embedding: emb, grid },
        { embedding: emb, grid: other },
      ],
    });
    expect(Array.from(t.targetEmbedding)).toEqual([1, 1.5]);
  });

  it("refuses an empty grid with a UserError that says why", () => {
    expect(() =>
      computeReferenceTarget({ references: [{ embedding: emb, grid: new Uint8Array(CELLS) }] }),
    ).toThrow(UserError);
    expect(() =>
      computeReferenceTarget({ references: [{ embedding: emb, grid: new Uint8Array(CELLS) }] }),
    ).toThrow(/covers no cell/);
  });
});

describe("cosineSimilarityGrid", () => {
  it("divides by each location's norm and gives 0 for a zero vector", () => {
    const emb = embeddingOf(2, (k) => (k === 0 ? [3, 4] : k === 1 ? [0, 0] : [-2, 0]));
    const sim = cosineSimilarityGrid({ embedding: emb, targetFeat: Float32Array.of(1, 0) });
    expect(sim[0]).toBeCloseTo(0.6, 6);
    expect(sim[1]).toBe(0);
    expect(sim[2]).toBeCloseTo(-1, 6);
  });

  it("rejects a target of the wrong width", () => {
    const emb = embeddingOf(2, () => [1, 0]);
    expect(() => cosineSimilarityGrid({ embedding: emb, targetFeat: Float32Array.of(1, 0, 0) })).toThrow(
      /Expected 2 values for targetFeat/,
    );
  });
});

describe("similarityMap", () => {
  it("up-samples to the photo size and keeps the 64 grid; a constant map stays constant", () => {
    const emb = embeddingOf(2, () => [3, 4]);
    const m = similarityMap({
      embedding: emb,
      targetFeat: Float32Array.of(1, 0),
      originalSize: [30, 40],
      inputSize: [768, 1024],
    });
    expect(m.sim.length).toBe(1200);
    expect(m.sim64.length).toBe(CELLS);
    for (const v of m.sim) expect(v).toBeCloseTo(0.6, 6);
    expect(m.stats.std).toBeCloseTo(0, 6);
    expect(m.stats.peak64).toBeCloseTo(0.6, 6);
  });

  it("maps grid cell (r, c) to the photo region it covers (square photo, 1024 px → 64 cells)", () => {
    // Only cell (10, 20) points along the target.
    const emb = embeddingOf(2, (k) => (k === 10 * 64 + 20 ? [1, 0] : [0, 1]));
    const m = similarityMap({
      embedding: emb,
      targetFeat: Float32Array.of(1, 0),
      originalSize: [64, 64],
      inputSize: [1024, 1024],
    });
    // A 64×64 photo: grid and photo coincide, pixel (x=20, y=10) sees the peak.
    let best = 0;
    for (let j = 1; j < m.sim.length; j++) if (m.sim[j]! > m.sim[best]!) best = j;
    expect([best % 64, Math.floor(best / 64)]).toEqual([20, 10]);
  });

  it("gridPeakInImage ignores the padding cells", () => {
    const sim64 = new Float32Array(CELLS);
    sim64[63 * 64] = 0.9; // bottom row: padding for a 512-high input
    sim64[5] = 0.4;
    expect(gridPeakInImage(sim64, [512, 1024])).toBeCloseTo(0.4, 6);
    expect(gridPeakInImage(sim64, [1024, 1024])).toBeCloseTo(0.9, 6);
  });
});
