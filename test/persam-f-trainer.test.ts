import { describe, expect, it } from "vitest";
import {
  type FusionLogits,
  fusionLoss,
  trainFusionWeights,
  trainFusionWeightsFromRows,
} from "../src/segment/persam/persam-f-trainer.js";
import { lowResToOriginal } from "../src/segment/sam/postprocess.js";

/** Deterministic pseudo-random numbers in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** A small random problem: M pixels, logits in ±8, gt correlated with the third map. */
function problem(m: number, seed: number): { logits: FusionLogits; gt: Uint8Array } {
  const rnd = lcg(seed);
  const l = [new Float32Array(m), new Float32Array(m), new Float32Array(m)] as const;
  const gt = new Uint8Array(m);
  for (let j = 0; j < m; j++) {
    for (const a of l) a[j] = (rnd() - 0.5) * 16;
    gt[j] = l[2][j]! + (rnd() - 0.5) * 6 > 0 ? 1 : 0;
  }
  return { logits: l, gt };
}

/** Loss written straight from the definitions (§8.2), float64, independent of the trainer. */
function naiveLoss(logits: FusionLogits, gt: Uint8Array, w1: number, w2: number): number {
  const m = gt.length;
  let inter = 0;
  let sp = 0;
  let sg = 0;
  let focal = 0;
  for (let j = 0; j < m; j++) {
    const z = (1 - w1 - w2) * logits[0][j]! + w1 * logits[1][j]! + w2 * logits[2][j]!;
    const p = 1 / (1 + Math.exp(-z));
    const g = gt[j]!;
    inter += p * g;
    sp += p;
    sg += g;
    const ce = Math.max(z, 0) - z * g + Math.log(1 + Math.exp(-Math.abs(z)));
    const pt = p * g + (1 - p) * (1 - g);
    const at = 0.25 * g + 0.75 * (1 - g);
    focal += at * ce * (1 - pt) ** 2;
  }
  return 1 - (2 * inter + 1) / (sp + sg + 1) + focal / m;
}

describe("fusionLoss", () => {
  it("matches a hand computation on one pixel", () => {
    // z = 0 → p = 0.5; g = 1: Dice = 1 − (2·0.5 + 1)/(0.5 + 1 + 1) = 0.2; focal = 0.25·ln2·0.25.
    const one = Float32Array.of(0);
    const v = fusionLoss({ logitsHigh: [one, one, one], gt: Uint8Array.of(1), weights: [0.3, 0.2] });
    expect(v.dice).toBeCloseTo(0.2, 12);
    expect(v.focal).toBeCloseTo(0.0625 * Math.LN2, 12);
  });

  it("equals the direct definition and its gradient matches central finite differences", () => {
    const { logits, gt } = problem(500, 7);
    for (const [w1, w2] of [
      [1 / 3, 1 / 3],
      [0.8, -0.4],
      [-0.2, 1.1],
    ] as const) {
      const v = fusionLoss({ logitsHigh: logits, gt, weights: [w1, w2] });
      expect(v.loss).toBeCloseTo(naiveLoss(logits, gt, w1, w2), 12);
      const h = 1e-6;
      const d1 = (naiveLoss(logits, gt, w1 + h, w2) - naiveLoss(logits, gt, w1 - h, w2)) / (2 * h);
      const d2 = (naiveLoss(logits, gt, w1, w2 + h) - naiveLoss(logits, gt, w1, w2 - h)) / (2 * h);
      expect(Math.abs(v.grad[0] - d1)).toBeLessThan(1e-7 * Math.max(1, Math.abs(d1)));
      expect(Math.abs(v.grad[1] - d2)).toBeLessThan(1e-7 * Math.max(1, Math.abs(d2)));
    }
  });

  it("stays finite for saturated logits", () => {
    const big = Float32Array.of(200, -200);
    const v = fusionLoss({ logitsHigh: [big, big, big], gt: Uint8Array.of(0, 1), weights: [0, 0] });
    expect(Number.isFinite(v.loss) && Number.isFinite(v.grad[0])).toBe(true);
    expect(v.focal).toBeCloseTo((0.75 * 200 + 0.25 * 200) / 2, 6);
  });
});

describe("trainFusionWeights", () => {
  it("follows torch.optim.AdamW + CosineAnnealingLR step for step", () => {
    const { logits, gt } = problem(300, 11);
    const steps = 50;
    const seen: (readonly [number, number])[] = [];
    const result = trainFusionWeights({
      logitsHigh: logits,
      gt,
      steps,
      logEvery: 10,
      onStep: (s) => seen.push(s.weights),
    });

    // Independent transcription of torch's AdamW (decoupled decay, bias corrections, eps after √v̂)
    // with the gradient from finite differences of the direct loss.
    const lr = 1e-3;
    let w = [1 / 3, 1 / 3];
    const m = [0, 0];
    const v = [0, 0];
    for (let k = 0; k < steps; k++) {
      const eta = (lr * (1 + Math.cos((Math.PI * k) / steps))) / 2;
      const h = 1e-6;
      const g = [0, 1].map((i) => {
        const up = [...w];
        const dn = [...w];
        up[i]! += h;
        dn[i]! -= h;
        return (naiveLoss(logits, gt, up[0]!, up[1]!) - naiveLoss(logits, gt, dn[0]!, dn[1]!)) / (2 * h);
      });
      w = w.map((x) => x * (1 - eta * 0.01));
      for (let i = 0; i < 2; i++) {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
        const mHat = m[i]! / (1 - 0.9 ** (k + 1));
        const vHat = v[i]! / (1 - 0.999 ** (k + 1));
        w[i] = w[i]! - (eta * mHat) / (Math.sqrt(vHat) + 1e-4);
      }
      expect(seen[k]![0]).toBeCloseTo(w[0]!, 9);
      expect(seen[k]![1]).toBeCloseTo(w[1]!, 9);
    }
    expect(result.weights[0]).toBeCloseTo(w[0]!, 9);
    expect(result.lambdas[0]).toBeCloseTo(1 - w[0]! - w[1]!, 9);
    expect(result.lossHistory.map((r) => r.step)).toEqual([0, 10, 20, 30, 40, 50]);
    expect(result.lossHistory[0]!.lr).toBe(1e-3);
    expect(result.finalLoss).toBeCloseTo(naiveLoss(logits, gt, w[0]!, w[1]!), 9);
    // Adam moves each weight by about lr per step at first, in the descent direction.
    expect(Math.abs(seen[0]![0] - (1 / 3) * (1 - 1e-5))).toBeCloseTo(1e-3, 4);
  });

  it("lowers the loss and favours the map that matches the ground truth", () => {
    const { logits, gt } = problem(400, 3);
    const r = trainFusionWeights({ logitsHigh: logits, gt, steps: 300, lr: 0.05 });
    expect(r.finalLoss).toBeLessThan(r.lossHistory[0]!.loss);
    expect(r.lambdas[2]).toBeGreaterThan(r.lambdas[0]);
    expect(r.lambdas[2]).toBeGreaterThan(r.lambdas[1]);
  });

  it("binned solver stays close to the exact loss and λ at 10× the reference's lr", () => {
    // At lr = 0.01 the weights travel ~10× further than the reference's, so z mixes the maps with
    // larger coefficients and the asinh bins' width at |L| ≫ 1 shows: the agreement is looser than
    // at the reference's lr (persam-f-solver.test.ts), hence the wider bounds below.
    // Smooth low-res logits up-sampled as SAM's post-processing does (many similar pixels).
    const low = new Float32Array(3 * 65536);
    for (let k = 0; k < 3; k++) {
      for (let y = 0; y < 256; y++) {
        for (let x = 0; x < 256; x++) {
          const d = Math.hypot(y - 60, x - 80);
          low[k * 65536 + y * 256 + x] =
            (30 * (1 + 0.2 * (k - 1)) - d) * (0.5 + 0.3 * k) + 2 * Math.sin(x / 9 + k);
        }
      }
    }
    const h = 300;
    const w = 400;
    const hi = lowResToOriginal(low, 3, [768, 1024], [h, w]);
    const m = h * w;
    const logits: FusionLogits = [hi.subarray(0, m), hi.subarray(m, 2 * m), hi.subarray(2 * m)];
    const gt = new Uint8Array(m);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++)
        gt[y * w + x] = Math.hypot((y * 768) / h / 4 - 60, (x * 1024) / w / 4 - 80) < 31 ? 1 : 0;
    }
    const steps = 150;
    const exact = trainFusionWeights({ logitsHigh: logits, gt, steps, lr: 0.01 });
    const binned = trainFusionWeights({ logitsHigh: logits, gt, steps, lr: 0.01, solver: "binned" });
    expect(binned.samples).toBeLessThan(m / 5);
    expect(Math.abs(binned.finalLoss - exact.finalLoss) / exact.finalLoss).toBeLessThan(1e-6);
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(binned.lambdas[i]! - exact.lambdas[i]!) / Math.abs(exact.lambdas[i]!)).toBeLessThan(
        3e-5,
      );
    }
  });

  it("binned solver handles logits beyond its table, saturated maps and non-binary ground truth", () => {
    const m = 4000;
    const rnd = lcg(9);
    const l = [new Float32Array(m), new Float32Array(m), new Float32Array(m)] as const;
    const gt = new Uint8Array(m);
    for (let j = 0; j < m; j++) {
      const base = j % 4 === 0 ? 300 * (rnd() - 0.5) : 12 * (rnd() - 0.5);
      for (const a of l) a[j] = base + rnd() - 0.5;
      gt[j] = base + (rnd() - 0.5) * 4 > 0 ? 255 : 0;
    }
    const exact = trainFusionWeights({ logitsHigh: l, gt, steps: 100, lr: 0.01 });
    const binned = trainFusionWeights({ logitsHigh: l, gt, steps: 100, lr: 0.01, solver: "binned" });
    expect(Number.isFinite(binned.finalLoss)).toBe(true);
    expect(Math.abs(binned.finalLoss - exact.finalLoss) / exact.finalLoss).toBeLessThan(1e-3);
    expect(() => trainFusionWeights({ logitsHigh: l, gt, steps: 1, solver: "binned", binWidth: 0 })).toThrow(
      /positive binWidth/,
    );
  });

  it("trainFusionWeightsFromRows equals trainFusionWeights on the assembled maps (binned and exact)", () => {
    // 301 × 403 = 121 303 pixels: the binning's 64 Ki-pixel flush falls inside row 162.
    const h = 301;
    const w = 403;
    const m = h * w;
    const rnd = lcg(11);
    const l = [new Float32Array(m), new Float32Array(m), new Float32Array(m)] as const;
    const gt = new Uint8Array(m);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const j = y * w + x;
        const base = 9 - Math.hypot(x - 200, y - 150) / 12;
        // Smooth (long runs of one bin, as on real maps), so that where the runs are cut matters.
        for (let k = 0; k < 3; k++) l[k]![j] = base * (0.6 + 0.3 * k) + Math.sin(x / 13 + k);
        gt[j] = base + rnd() - 0.5 > 0 ? 1 : 0;
      }
    }
    const rows = {
      width: w,
      height: h,
      fillRow(y: number, a: Float32Array, b: Float32Array, c: Float32Array, g: Uint8Array): void {
        a.set(l[0].subarray(y * w, (y + 1) * w));
        b.set(l[1].subarray(y * w, (y + 1) * w));
        c.set(l[2].subarray(y * w, (y + 1) * w));
        g.set(gt.subarray(y * w, (y + 1) * w));
      },
    };
    for (const solver of ["binned", "exact"] as const) {
      const steps = solver === "binned" ? 300 : 5;
      const fromArrays = trainFusionWeights({ logitsHigh: l, gt, steps, solver, logEvery: 1 });
      const fromRows = trainFusionWeightsFromRows({ rows, steps, solver, logEvery: 1 });
      expect(fromRows.samples, solver).toBe(fromArrays.samples);
      expect(fromRows.pixels, solver).toBe(m);
      expect(fromRows.lambdas, solver).toEqual(fromArrays.lambdas);
      expect(fromRows.lossHistory, solver).toEqual(fromArrays.lossHistory);
    }
    // Ground truth from a row source is non-zero = foreground, like trainFusionWeights' gt.
    const gt255 = gt.map((g) => g * 255);
    const rows255 = {
      ...rows,
      fillRow: (y: number, a: Float32Array, b: Float32Array, c: Float32Array, g: Uint8Array): void => {
        rows.fillRow(y, a, b, c, g);
        g.set(gt255.subarray(y * w, (y + 1) * w));
      },
    };
    const want = trainFusionWeights({ logitsHigh: l, gt, steps: 50, solver: "binned" });
    expect(trainFusionWeightsFromRows({ rows: rows255, steps: 50, solver: "binned" }).lossHistory).toEqual(
      want.lossHistory,
    );
    expect(trainFusionWeights({ logitsHigh: l, gt: gt255, steps: 50, solver: "binned" }).lossHistory).toEqual(
      want.lossHistory,
    );
    expect(() =>
      trainFusionWeightsFromRows({ rows: { ...rows, height: 0 }, solver: "binned", steps: 1 }),
    ).toThrow(/at least one pixel/);
  });

  it("rejects mismatched lengths", () => {
    const a = new Float32Array(3);
    expect(() =>
      trainFusionWeights({ logitsHigh: [a, a, new Float32Array(2)], gt: new Uint8Array(3) }),
    ).toThrow(/Expected 3 logit maps of 3 values/);
  });
});
