import { describe, expect, it } from "vitest";
import { attnSim } from "../src/segment/persam/attn-sim.js";

describe("attnSim", () => {
  it("standardises with the unbiased std (N − 1) before the sigmoid", () => {
    // A 64×64 map (the resize to 64×64 is then the identity): top half 1, bottom half 0.
    const sim = new Float32Array(4096);
    sim.fill(1, 0, 2048);
    const out = attnSim({ sim, originalSize: [64, 64] });
    const unbiased = Math.sqrt(1024 / 4095); // Σ(x − 0.5)² = 1024
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    expect(out[0]).toBeCloseTo(sig(0.5 / unbiased), 6);
    expect(out[4095]).toBeCloseTo(sig(-0.5 / unbiased), 6);
    // The biased std (0.5) would give sigmoid(1), 2e-5 away: outside the 6-digit tolerance.
    expect(Math.abs(out[0]! - sig(1))).toBeGreaterThan(1e-5);
  });

  it("gives 0.5 everywhere for a constant map instead of NaN", () => {
    const out = attnSim({ sim: new Float32Array(100).fill(0.3), originalSize: [10, 10] });
    expect(out.length).toBe(4096);
    expect(out.every((v) => v === 0.5)).toBe(true);
  });

  it("stretches a non-square photo over the whole grid by default; aligned keeps it in the padded frame", () => {
    // A 32×64 photo (input 512×1024): the bottom half of the token grid is padding.
    const sim = new Float32Array(32 * 64);
    for (let x = 0; x < 64; x++) sim[31 * 64 + x] = 1; // the photo's last row is the hot one
    const straight = attnSim({ sim, originalSize: [32, 64] });
    const aligned = attnSim({ sim, originalSize: [32, 64], inputSize: [512, 1024], aligned: true });
    const rowMean = (a: Float32Array, r: number) =>
      a.slice(r * 64, r * 64 + 64).reduce((s, v) => s + v, 0) / 64;
    // Straight: the last photo row lands on the last grid row (the reference's misalignment).
    expect(rowMean(straight, 63)).toBeGreaterThan(rowMean(straight, 31));
    // Aligned: it lands on grid row 31 (the photo's bottom inside the 1024 frame); padding is low.
    expect(rowMean(aligned, 31)).toBeGreaterThan(rowMean(aligned, 63));
    expect(rowMean(aligned, 31)).toBeGreaterThan(rowMean(aligned, 20));
  });
});
