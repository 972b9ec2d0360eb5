import { describe, expect, it } from "vitest";
import { type FusionLogits, trainFusionWeights } from "../src/segment/persam/persam-f-trainer.js";
import { lowResToOriginal } from "../src/segment/sam/postprocess.js";

/** Deterministic pseudo-random numbers in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/**
 * A realistic reference: SAM-like [3, 256, 256] multimask logits of an elliptical subject (a part,
 * the whole, the whole plus surroundings, with ripples; strongly negative padding) up-sampled to
 * `h × w` by SAM's post-processing, and a ground-truth blob whose edge wobbles and is noisy.
 */
function reference(h: number, w: number): { logits: FusionLogits; gt: Uint8Array } {
  const side = 256;
  const inputSize: [number, number] = [
    Math.round((1024 * h) / Math.max(h, w)),
    Math.round((1024 * w) / Math.max(h, w)),
  ];
  const hImg = inputSize[0] / 4;
  const wImg = inputSize[1] / 4;
  const low = new Float32Array(3 * side * side);
  const radii = [0.6, 1, 1.4];
  for (let k = 0; k < 3; k++) {
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const dx = (x - wImg / 2) / (wImg / 5);
        const dy = (y - hImg / 2) / (hImg / 4);
        const r = Math.hypot(dx, dy) / radii[k]!;
        low[k * side * side + y * side + x] =
          y >= hImg || x >= wImg ? -20 : 12 * (1 - r) + 1.5 * Math.sin(x / 7 + k) * Math.cos(y / 9 - k);
      }
    }
  }
  const m = h * w;
  const hi = lowResToOriginal(low, 3, inputSize, [h, w]);
  const rnd = lcg(5);
  const gt = new Uint8Array(m);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const dx = (x - w / 2) / (w / 5);
      const dy = (y - h / 2) / (h / 4);
      const r = Math.hypot(dx, dy) * (1 + 0.05 * Math.sin(7 * Math.atan2(dy, dx))) + (rnd() - 0.5) * 0.04;
      gt[y * w + x] = r < 1.05 ? 1 : 0;
    }
  }
  return { logits: [hi.subarray(0, m), hi.subarray(m, 2 * m), hi.subarray(2 * m)], gt };
}

describe("binned fusion solver", () => {
  it("follows the exact solver over the reference's 1000 steps within 1e-6 relative (loss and λ)", () => {
    const { logits, gt } = reference(480, 640);
    const exactLoss: number[] = [];
    const exact = trainFusionWeights({
      logitsHigh: logits,
      gt,
      onStep: (s) => exactLoss.push(s.loss),
    });
    let worstStep = 0;
    const binned = trainFusionWeights({
      logitsHigh: logits,
      gt,
      solver: "binned",
      onStep: (s) => {
        worstStep = Math.max(worstStep, Math.abs(s.loss - exactLoss[s.step]!) / exactLoss[s.step]!);
      },
    });
    expect(binned.samples).toBeLessThan(gt.length / 20);
    // The bound is the float32 level at which the exact computation agrees with itself; the binned
    // solver stays well inside it (bin width δ = 0.075).
    expect(worstStep).toBeLessThan(1e-6);
    expect(Math.abs(binned.finalLoss - exact.finalLoss) / exact.finalLoss).toBeLessThan(1e-6);
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(binned.lambdas[i]! - exact.lambdas[i]!) / Math.abs(exact.lambdas[i]!)).toBeLessThan(
        1e-6,
      );
    }
  });
});
