// PerSAM-F's only training: two scalar fusion weights for SAM's three multimask outputs, fitted on
// the reference photo with Dice + sigmoid focal loss and PyTorch's AdamW + cosine schedule (§8.2).
// Pure and hot: hand-derived gradients, float64 accumulators, no allocation inside the step loop.

import { grown } from "../../util/tensor.js";

/** How the per-step sums over the reference's pixels are computed. */
export type FusionSolver = "exact" | "binned";

/** The three full-resolution multimask logit maps (outputs 1, 2, 3; §8.2), M values each. */
export type FusionLogits = readonly [Float32Array, Float32Array, Float32Array];

/**
 * The three maps and the ground truth one row at a time, for {@link trainFusionWeightsFromRows}:
 * what a caller that computes the maps on the fly (PerSAM-F's adaptation, from the low-res logits)
 * hands over instead of `3 × M` floats and `M` bytes.
 */
export interface FusionRowSource {
  readonly width: number;
  readonly height: number;
  /**
   * Write row `y` (0 ≤ y < height, requested in increasing order, each once) of the three maps
   * into `l1`, `l2`, `l3` and its ground truth into `gt`, non-zero = foreground (`width` values
   * each, all written). The buffers are the trainer's, reused from row to row.
   */
  fillRow(y: number, l1: Float32Array, l2: Float32Array, l3: Float32Array, gt: Uint8Array): void;
}

/** Parameters of {@link trainFusionWeights}. */
export interface TrainFusionWeightsParams extends FusionTrainingOptions {
  /** `logits_high` of multimask outputs 1, 2, 3 at the reference's original resolution. */
  readonly logitsHigh: FusionLogits;
  /** Ground truth, M values, non-zero = foreground (`R channel > 0`, §8.2). */
  readonly gt: Uint8Array;
}

/** Parameters of {@link trainFusionWeightsFromRows}. */
export interface TrainFusionWeightsFromRowsParams extends FusionTrainingOptions {
  /** The maps and ground truth, row by row (M = width × height pixels). */
  readonly rows: FusionRowSource;
}

/** Optimiser and solver settings of {@link trainFusionWeights} (everything but the data). */
export interface FusionTrainingOptions {
  /**
   * Optimiser steps (= the reference's epochs; also the cosine schedule's T_max).
   * @default 1000
   */
  readonly steps?: number;
  /** @default 1e-3 */
  readonly lr?: number;
  /** AdamW decoupled weight decay (PyTorch's default, kept by the reference). @default 0.01 */
  readonly weightDecay?: number;
  /** @default 1e-4 (the reference passes eps=1e-4, not PyTorch's 1e-8) */
  readonly eps?: number;
  /** @default [0.9, 0.999] */
  readonly betas?: readonly [number, number];
  /** `(w1, w2)` before the first step. @default [1/3, 1/3] */
  readonly initialWeights?: readonly [number, number];
  /** Record the loss at every step k with k % logEvery === 0, and after the last step. @default 200 */
  readonly logEvery?: number;
  /**
   * `"exact"`: the literal per-pixel loss and gradient, every step (float64 sums): what the
   * reference computes, up to float32-vs-float64 rounding. Cost ≈ M·steps sigmoid evaluations,
   * most of it exp + log1p: minutes for 1000 steps at 12 MP (bench/README.md, case `persam-f`,
   * `train-exact`).
   * `"binned"`: pixels are grouped once into bins over (asinh L1, asinh L2, asinh L3) of width
   * `binWidth`, per ground-truth class, keeping per bin the count, the mean of (L1, L2 − L1,
   * L3 − L1) and its 3×3 second moments. Each step evaluates each bin at its mean plus a
   * second-order correction (½·h''·Σ(z − z̄)², a quadratic form in (1, w1, w2) of the moments, and
   * the matching gradient terms), so the error is third order in the within-bin spread of z.
   * A 12 MP map bins into a few thousand bins, so a step costs per bin, not per pixel
   * (bench/README.md, case `persam-f`, `train-binned`, and its target). Over the reference's 1000
   * steps it follows `"exact"` within 1e-6 relative in every step's loss and in λ
   * (persam-f-solver.test.ts); PyTorch sums in float32, so the reference agrees with itself only to
   * ~1e-6. At 10× the reference's lr (weights travel further) λ drifts further, within 3e-5
   * relative (persam-f-trainer.test.ts). Not the reference's algorithm; opt-in.
   * @default "exact"
   */
  readonly solver?: FusionSolver;
  /**
   * Bin width δ of `solver: "binned"`, in asinh(logit) units: bins are δ logits wide near 0 and
   * ≈ δ·|L| wide for large |L|. The error grows quickly with δ: the default keeps the final loss
   * and λ well inside the tests' 1e-6 relative of `"exact"`, twice the default does not; narrower
   * bins only make the steps slower.
   * @default 0.075
   */
  readonly binWidth?: number;
  /** Called after every optimiser step with the updated weights (for tests and progress). */
  readonly onStep?: (info: FusionStepInfo) => void;
}

/** One optimiser step, as reported to `onStep`. */
export interface FusionStepInfo {
  /** Iteration k (0-based). */
  readonly step: number;
  /** Learning rate used by this step. */
  readonly lr: number;
  /** Loss at the weights before this step. */
  readonly loss: number;
  /** Gradient at the weights before this step. */
  readonly grad: readonly [number, number];
  /** Weights after this step. */
  readonly weights: readonly [number, number];
}

/** A logged loss value. */
export interface FusionLossRecord {
  /** Iteration k whose pre-update weights were evaluated (`steps` for the final weights). */
  readonly step: number;
  readonly loss: number;
  readonly dice: number;
  readonly focal: number;
  /** Learning rate of step k (the last step's for the final record). */
  readonly lr: number;
}

/** Result of {@link trainFusionWeights}. */
export interface FusionTrainingResult {
  /** Trained `(w1, w2)`. */
  readonly weights: readonly [number, number];
  /** `[1 − w1 − w2, w1, w2]`, the weights of multimask outputs 1, 2, 3. */
  readonly lambdas: readonly [number, number, number];
  readonly lossHistory: readonly FusionLossRecord[];
  /** Loss at the trained weights. */
  readonly finalLoss: number;
  /** Number of pixels M. */
  readonly pixels: number;
  /** Number of samples each step visits (M for exact, the bin count for binned). */
  readonly samples: number;
  readonly solver: FusionSolver;
  /** Milliseconds spent binning (0 for exact) and in the step loop. */
  readonly timings: { readonly prepareMs: number; readonly trainMs: number };
}

/** Loss and gradient at given weights. */
export interface FusionLossValue {
  readonly loss: number;
  readonly dice: number;
  readonly focal: number;
  readonly grad: readonly [number, number];
}

/** Parameters of {@link fusionLoss}. */
export interface FusionLossParams {
  readonly logitsHigh: FusionLogits;
  readonly gt: Uint8Array;
  /** `(w1, w2)`. */
  readonly weights: readonly [number, number];
}

/**
 * Dice + focal loss of the fused logits `z = (1−w1−w2)·L1 + w1·L2 + w2·L3` and its gradient with
 * respect to `(w1, w2)`, exactly over all pixels (§8.2).
 * @throws {Error} when the maps and gt differ in length or are empty.
 */
export function fusionLoss(params: FusionLossParams): FusionLossValue {
  const set = checkInputs(params.logitsHigh, params.gt);
  const acc = new Float64Array(ACC_SIZE);
  const [w1, w2] = params.weights;
  accumulateExact(set, w1, w2, acc);
  return finish(acc, set.pixels, set.positives);
}

/**
 * Train PerSAM-F's fusion weights with the reference's optimiser: PyTorch AdamW (gradient at the
 * pre-decay weights, then decoupled decay, then the bias-corrected Adam update with eps added to
 * √v̂) and CosineAnnealingLR(T_max = steps, eta_min = 0), one step per iteration (§8.2).
 * @throws {Error} on mismatched lengths, empty input or a non-positive step count / bin width.
 */
export function trainFusionWeights(params: TrainFusionWeightsParams): FusionTrainingResult {
  const settings = checkOptions(params);
  const t0 = performance.now();
  return trainOnArrays(params, settings, checkInputs(params.logitsHigh, params.gt), t0);
}

/**
 * {@link trainFusionWeights} on maps handed over row by row. `solver: "binned"` bins each row as it
 * arrives, so no `M`-pixel array is ever built; the bins, and so every result, are identical to
 * `trainFusionWeights` on the same maps assembled (same pixel order, same points where the binning
 * flushes its running sums, same float64 additions). `solver: "exact"` needs every pixel at every
 * step: it assembles the maps first and is then `trainFusionWeights`.
 * @throws {Error} on an empty source or a non-positive step count / bin width.
 */
export function trainFusionWeightsFromRows(params: TrainFusionWeightsFromRowsParams): FusionTrainingResult {
  const settings = checkOptions(params);
  const { rows } = params;
  const { width, height } = rows;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(
      `Expected at least one pixel for PerSAM-F training but received ${width}×${height} pixels`,
    );
  }
  if (settings.solver === "exact") {
    const { logitsHigh, gt } = assembleRows(rows);
    const t0 = performance.now();
    // The assembled gt is the trainer's own: made 0/1 in place rather than copied.
    return trainOnArrays(params, settings, checkInputs(logitsHigh, gt, true), t0);
  }
  const t0 = performance.now();
  const { binned, positives } = binRows(rows, settings.binWidth);
  return optimise(params, settings, width * height, positives, binned, undefined, t0);
}

/** The whole maps and ground truth of a row source, as `trainFusionWeights` takes them. */
function assembleRows(rows: FusionRowSource): { logitsHigh: FusionLogits; gt: Uint8Array } {
  const { width, height } = rows;
  const m = width * height;
  const logitsHigh = [new Float32Array(m), new Float32Array(m), new Float32Array(m)] as const;
  const gt = new Uint8Array(m);
  for (let y = 0; y < height; y++) {
    const o = y * width;
    const e = o + width;
    rows.fillRow(
      y,
      logitsHigh[0].subarray(o, e),
      logitsHigh[1].subarray(o, e),
      logitsHigh[2].subarray(o, e),
      gt.subarray(o, e),
    );
  }
  return { logitsHigh, gt };
}

/** The solver's samples from whole maps (the bins, or the pixels themselves), then the optimiser. */
function trainOnArrays(
  params: FusionTrainingOptions,
  settings: CheckedOptions,
  inputs: CheckedInputs,
  t0: number,
): FusionTrainingResult {
  const binned = settings.solver === "binned" ? binSamples(inputs, settings.binWidth) : undefined;
  return optimise(params, settings, inputs.pixels, inputs.positives, binned, inputs, t0);
}

interface CheckedOptions {
  readonly steps: number;
  readonly logEvery: number;
  readonly solver: FusionSolver;
  readonly binWidth: number;
}

function checkOptions(params: FusionTrainingOptions): CheckedOptions {
  const steps = params.steps ?? 1000;
  const logEvery = params.logEvery ?? 200;
  const solver = params.solver ?? "exact";
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`Expected a positive integer for steps but received ${steps}`);
  if (!Number.isInteger(logEvery) || logEvery < 1) {
    throw new Error(`Expected a positive integer for logEvery but received ${logEvery}`);
  }
  const binWidth = params.binWidth ?? 0.075;
  if (solver === "binned" && (!(binWidth > 0) || !Number.isFinite(binWidth))) {
    throw new Error(`Expected a positive binWidth but received ${binWidth}`);
  }
  return { steps, logEvery, solver, binWidth };
}

/**
 * The AdamW + cosine loop over the prepared samples (`binned`, or the pixels of `inputs`), started
 * at `t0` for the timings.
 */
function optimise(
  params: FusionTrainingOptions,
  settings: CheckedOptions,
  pixels: number,
  positives: number,
  binned: BinnedSamples | undefined,
  inputs: CheckedInputs | undefined,
  t0: number,
): FusionTrainingResult {
  const { steps, logEvery, solver } = settings;
  const lr = params.lr ?? 1e-3;
  const weightDecay = params.weightDecay ?? 0.01;
  const eps = params.eps ?? 1e-4;
  const [beta1, beta2] = params.betas ?? [0.9, 0.999];
  const t1 = performance.now();
  const evaluate = (x1: number, x2: number, acc: Float64Array): void => {
    if (binned) accumulateBinned(binned, x1, x2, acc);
    else accumulateExact(inputs!, x1, x2, acc);
  };

  const acc = new Float64Array(ACC_SIZE);
  let w1 = params.initialWeights?.[0] ?? 1 / 3;
  let w2 = params.initialWeights?.[1] ?? 1 / 3;
  let m1 = 0;
  let m2 = 0;
  let v1 = 0;
  let v2 = 0;
  const history: FusionLossRecord[] = [];
  let lrK = lr;
  for (let k = 0; k < steps; k++) {
    // CosineAnnealingLR closed form; PyTorch's recursive update equals it up to rounding.
    lrK = 0.5 * lr * (1 + Math.cos((Math.PI * k) / steps));
    evaluate(w1, w2, acc);
    const value = finish(acc, pixels, positives);
    if (k % logEvery === 0) {
      history.push({ step: k, loss: value.loss, dice: value.dice, focal: value.focal, lr: lrK });
    }
    const [g1, g2] = value.grad;
    const n = k + 1;
    // torch.optim.AdamW (single-tensor path): decay first, on the weights the gradient was taken at.
    w1 *= 1 - lrK * weightDecay;
    w2 *= 1 - lrK * weightDecay;
    m1 += (g1 - m1) * (1 - beta1); // exp_avg.lerp_(grad, 1 − β1)
    m2 += (g2 - m2) * (1 - beta1);
    v1 = v1 * beta2 + (1 - beta2) * g1 * g1;
    v2 = v2 * beta2 + (1 - beta2) * g2 * g2;
    const stepSize = lrK / (1 - beta1 ** n);
    const bc2Sqrt = Math.sqrt(1 - beta2 ** n);
    w1 -= (stepSize * m1) / (Math.sqrt(v1) / bc2Sqrt + eps);
    w2 -= (stepSize * m2) / (Math.sqrt(v2) / bc2Sqrt + eps);
    params.onStep?.({ step: k, lr: lrK, loss: value.loss, grad: [g1, g2], weights: [w1, w2] });
  }
  evaluate(w1, w2, acc);
  const final = finish(acc, pixels, positives);
  history.push({ step: steps, loss: final.loss, dice: final.dice, focal: final.focal, lr: lrK });
  const t2 = performance.now();
  return {
    weights: [w1, w2],
    lambdas: [1 - w1 - w2, w1, w2],
    lossHistory: history,
    finalLoss: final.loss,
    pixels,
    samples: binned ? binned.bins : pixels,
    solver,
    timings: { prepareMs: t1 - t0, trainMs: t2 - t1 },
  };
}

// ---- internals ---------------------------------------------------------------------------------

interface BinnedSamples {
  /**
   * Per bin, {@link BIN_STRIDE} values: count n, the members' means of (L1, d2, d3) and the
   * six central second moments Σ δaδb over its members, δ = (L1, d2, d3) − mean, in the order
   * C11, C12, C13, C22, C23, C33.
   */
  readonly data: Float64Array;
  /** Class of each bin, 0/1. */
  readonly gt: Uint8Array;
  readonly bins: number;
}

const BIN_STRIDE = 10;

// Accumulator slots: Σp, Σ_{g=1} p, Σ focal, Σ p(1−p)·d2, Σ p(1−p)·d3, Σ_{g=1} p(1−p)·d2,
// Σ_{g=1} p(1−p)·d3, Σ ∂focal/∂z·d2, Σ ∂focal/∂z·d3 (dk = Lk − L1).
const ACC_SIZE = 9;

interface CheckedInputs {
  readonly l1: Float32Array;
  readonly l2: Float32Array;
  readonly l3: Float32Array;
  /** Ground truth as 0/1 (the caller's array when it already is). */
  readonly gt: Uint8Array;
  readonly pixels: number;
  readonly positives: number;
}

/** `owned`: `gt` is the trainer's own array, to be made 0/1 in place instead of copied. */
function checkInputs(logits: FusionLogits, gt: Uint8Array, owned = false): CheckedInputs {
  const [l1, l2, l3] = logits;
  const m = gt.length;
  if (m === 0) throw new Error("Expected at least one pixel for PerSAM-F training but received none");
  if (l1.length !== m || l2.length !== m || l3.length !== m) {
    throw new Error(
      `Expected 3 logit maps of ${m} values but received ${l1.length}, ${l2.length}, ${l3.length}`,
    );
  }
  let positives = 0;
  let binary = true;
  for (let j = 0; j < m; j++) {
    const g = gt[j]!;
    positives += g === 0 ? 0 : 1;
    if (g > 1) binary = false;
  }
  let gt01 = gt;
  if (!binary) {
    gt01 = owned ? gt : new Uint8Array(m);
    for (let j = 0; j < m; j++) gt01[j] = gt[j] === 0 ? 0 : 1;
  }
  return { l1, l2, l3, gt: gt01, pixels: m, positives };
}

/**
 * Per-pixel terms (§8.2), stable for any z: with e = exp(−|z|), sp = log1p(e) = softplus(−|z|),
 * p = σ(z), q = 1 − p, ln p = −softplus(−z), ln q = −softplus(z).
 * Focal g=1: 0.25·q²·(−ln p), derivative 0.25·q²·(2p·ln p − q);
 * Focal g=0: 0.75·p²·(−ln q), derivative 0.75·p²·(p − 2q·ln q).
 * One fused pass over the float32 maps, z = L1 + w1·(L2 − L1) + w2·(L3 − L1), one exp and one log1p
 * per pixel, float64 sums, no allocation. Most of the time is exp + log1p, so precomputed
 * L2 − L1, L3 − L1 arrays or a branch-free class select do not make it faster (the class branch is
 * predictable on a mask).
 */
function accumulateExact(s: CheckedInputs, w1: number, w2: number, acc: Float64Array): void {
  const { l1, l2, l3, gt, pixels } = s;
  let sp0 = 0;
  let sIp = 0;
  let sF = 0;
  let sA2 = 0;
  let sA3 = 0;
  let sG2 = 0;
  let sG3 = 0;
  let sD2 = 0;
  let sD3 = 0;
  for (let j = 0; j < pixels; j++) {
    const x1 = l1[j]!;
    const d2 = l2[j]! - x1;
    const d3 = l3[j]! - x1;
    const z = x1 + w1 * d2 + w2 * d3;
    const pos = z >= 0;
    const e = Math.exp(pos ? -z : z);
    const sp = Math.log1p(e);
    const r = 1 / (1 + e);
    const p = pos ? r : e * r;
    const q = pos ? e * r : r;
    const pq = p * q;
    sp0 += p;
    sA2 += pq * d2;
    sA3 += pq * d3;
    let fd: number;
    if (gt[j] !== 0) {
      const lnp = pos ? -sp : z - sp;
      const qq = 0.25 * q * q;
      sIp += p;
      sF -= qq * lnp;
      fd = qq * (2 * p * lnp - q);
      sG2 += pq * d2;
      sG3 += pq * d3;
    } else {
      const lnq = pos ? -z - sp : -sp;
      const pp = 0.75 * p * p;
      sF -= pp * lnq;
      fd = pp * (p - 2 * q * lnq);
    }
    sD2 += fd * d2;
    sD3 += fd * d3;
  }
  storeAcc(acc, sp0, sIp, sF, sA2, sA3, sG2, sG3, sD2, sD3);
}

/**
 * As {@link accumulateExact}, with each bin's sums taken from a second-order expansion about its
 * mean: for a bin with members z_j = z̄ + e_j (Σ e_j = 0), e_j = (1, w1, w2)·δ_j,
 * Σ h(z_j) ≈ n·h(z̄) + ½·h''(z̄)·Q and Σ h(z_j)·d_j ≈ d̄·(n·h(z̄) + ½·h''(z̄)·Q) + h'(z̄)·Σ e_j·δd_j,
 * with Q = Σ e_j² = vᵀCv and Σ e_j·δd_j = (Cv)_d, v = (1, w1, w2), C the bin's second moments.
 * The error is third order in the within-bin spread of z. Derivatives, for the focal term in
 * ζ = σz with Φ(ζ) = −α·s²·ln t (t = σ(ζ), s = 1 − t, see accumulateExact):
 * Φ' = α·s²·(2t·ln t − s), Φ'' = α·t·s²·(5s + 2·ln t·(s − 2t)),
 * Φ''' = α·t·s²·(7s² − 19ts + 2·ln t·(s² − 7ts + 4t²)); d^k/dz^k = σ^k·d^k/dζ^k.
 * And p' = pq, p'' = pq(1 − 2p), (pq)' = pq(1 − 2p), (pq)'' = pq(1 − 6pq).
 */
function accumulateBinned(b: BinnedSamples, w1: number, w2: number, acc: Float64Array): void {
  const { data, gt, bins } = b;
  let sP1 = 0;
  let sP0 = 0;
  let sF = 0;
  let sA2 = 0;
  let sA3 = 0;
  let sG2 = 0;
  let sG3 = 0;
  let sD2 = 0;
  let sD3 = 0;
  for (let j = 0, o = 0; j < bins; j++, o += BIN_STRIDE) {
    const n = data[o]!;
    const m1 = data[o + 1]!;
    const d2 = data[o + 2]!;
    const d3 = data[o + 3]!;
    const c11 = data[o + 4]!;
    const c12 = data[o + 5]!;
    const c13 = data[o + 6]!;
    const c22 = data[o + 7]!;
    const c23 = data[o + 8]!;
    const c33 = data[o + 9]!;
    const cv1 = c11 + w1 * c12 + w2 * c13;
    const cv2 = c12 + w1 * c22 + w2 * c23;
    const cv3 = c13 + w1 * c23 + w2 * c33;
    const hq = 0.5 * (cv1 + w1 * cv2 + w2 * cv3);
    const g = gt[j]!;
    const sign = 2 * g - 1;
    const zeta = sign * (m1 + w1 * d2 + w2 * d3);
    const pos = zeta >= 0;
    const e = Math.exp(pos ? -zeta : zeta);
    const sp = Math.log1p(e);
    const r = 1 / (1 + e);
    const er = e * r;
    const t = pos ? r : er;
    const u = pos ? er : r;
    const lnt = pos ? -sp : zeta - sp;
    const tu = t * u;
    const p = g * t + (1 - g) * u;
    const alpha = 0.75 - 0.5 * g;
    const au2 = alpha * u * u;
    const phi1 = au2 * (2 * t * lnt - u);
    const tau2 = t * au2;
    const phi2 = tau2 * (5 * u + 2 * lnt * (u - 2 * t));
    const phi3 = tau2 * (7 * u * u - 19 * tu + 2 * lnt * (u * u - 7 * tu + 4 * t * t));
    const tu1 = tu * (1 - 2 * p);
    const sumP = n * p + hq * tu1;
    const sumTu = n * tu + hq * tu * (1 - 6 * tu);
    const a2 = d2 * sumTu + tu1 * cv2;
    const a3 = d3 * sumTu + tu1 * cv3;
    const sumFd = sign * (n * phi1 + hq * phi3);
    sP1 += g * sumP;
    sP0 += (1 - g) * sumP;
    sF += -n * au2 * lnt + hq * phi2;
    sA2 += a2;
    sA3 += a3;
    sG2 += g * a2;
    sG3 += g * a3;
    sD2 += d2 * sumFd + phi2 * cv2;
    sD3 += d3 * sumFd + phi2 * cv3;
  }
  storeAcc(acc, sP1 + sP0, sP1, sF, sA2, sA3, sG2, sG3, sD2, sD3);
}

/** Write one evaluation's sums into the accumulator slots (see ACC_SIZE) that {@link finish} reads. */
function storeAcc(
  acc: Float64Array,
  sumP: number,
  sumPPos: number,
  focal: number,
  pq2: number,
  pq3: number,
  pq2Pos: number,
  pq3Pos: number,
  focal2: number,
  focal3: number,
): void {
  acc[0] = sumP;
  acc[1] = sumPPos;
  acc[2] = focal;
  acc[3] = pq2;
  acc[4] = pq3;
  acc[5] = pq2Pos;
  acc[6] = pq3Pos;
  acc[7] = focal2;
  acc[8] = focal3;
}

/**
 * Loss and gradient from the sums. Dice = 1 − (2I+1)/(S+1) with S = Σp + Σg;
 * ∂Dice/∂z_j = p_j(1−p_j)·[(2I+1) − 2g_j(S+1)]/(S+1)², so Σ_j ∂Dice/∂z_j·d_j needs only
 * Σ p(1−p)d and Σ_{g=1} p(1−p)d. Focal is a mean over the M pixels.
 */
function finish(acc: Float64Array, pixels: number, positives: number): FusionLossValue {
  const sumP = acc[0]!;
  const inter = acc[1]!;
  const s1 = sumP + positives + 1;
  const num = 2 * inter + 1;
  const dice = 1 - num / s1;
  const focal = acc[2]! / pixels;
  const s1s1 = s1 * s1;
  const grad1 = (num * acc[3]! - 2 * s1 * acc[5]!) / s1s1 + acc[7]! / pixels;
  const grad2 = (num * acc[4]! - 2 * s1 * acc[6]!) / s1s1 + acc[8]! / pixels;
  return { loss: dice + focal, dice, focal, grad: [grad1, grad2] };
}

/** Bin indices per axis lie in 0..Q_RANGE−1 (clamped), so a key fits in 31 bits with the class. */
const Q_RANGE = 1024;
const Q_OFFSET = Q_RANGE / 2;
/** Logit scale a of the bins' asinh spacing. */
const ASINH_SCALE = 1;
/** Quantiser look-up table: logits in [−Q_TABLE_RANGE, Q_TABLE_RANGE), steps of binWidth/8. */
const Q_TABLE_RANGE = 64;
const Q_TABLE_SUBSTEPS = 8;
/** Pixels per call of the hot loop (so that V8 optimises it as a function, not on-stack). */
const BIN_CHUNK = 1 << 16;

/** φ(L) = round(a·asinh(L/a)/δ) + offset, clamped to 0..Q_RANGE−1. */
function binIndex(x: number, inv: number): number {
  const q = Math.round(ASINH_SCALE * Math.asinh(x / ASINH_SCALE) * inv) + Q_OFFSET;
  return q >= 0 ? (q < Q_RANGE ? q : Q_RANGE - 1) : 0;
}

/** Quantiser φ as a table on a grid of δ/Q_TABLE_SUBSTEPS over ±Q_TABLE_RANGE. */
interface Quantiser {
  readonly table: Int32Array;
  readonly invStep: number;
  /** 1/δ, for values outside the table. */
  readonly inv: number;
  /**
   * Per bin index i, the table positions u = (L + Q_TABLE_RANGE)·invStep that look up i:
   * `uLo[i] ≤ u < uHi[i]` ⇔ `table[u | 0] === i` (for u inside the table; the table is
   * non-decreasing, so each index owns one run of entries). Empty (+∞, −∞) for indices the table
   * does not hold.
   */
  readonly uLo: Float64Array;
  readonly uHi: Float64Array;
}

function quantiser(binWidth: number): Quantiser {
  const inv = 1 / binWidth;
  const step = binWidth / Q_TABLE_SUBSTEPS;
  const table = new Int32Array(Math.ceil((2 * Q_TABLE_RANGE) / step));
  for (let i = 0; i < table.length; i++) table[i] = binIndex(-Q_TABLE_RANGE + (i + 0.5) * step, inv);
  const uLo = new Float64Array(Q_RANGE).fill(Number.POSITIVE_INFINITY);
  const uHi = new Float64Array(Q_RANGE).fill(Number.NEGATIVE_INFINITY);
  for (let k = 0; k < table.length; k++) {
    const i = table[k]!;
    if (k < uLo[i]!) uLo[i] = k;
    uHi[i] = k + 1;
  }
  return { table, invStep: 1 / step, inv, uLo, uHi };
}

/**
 * Open-addressing hash table from bin key to bin slot, with per-slot moment sums
 * ({@link BIN_STRIDE} values: count, Σδ, Σδaδb about the slot's first member `refs`) and class.
 */
class BinTable {
  keys = new Int32Array(1 << 15).fill(-1);
  slots = new Int32Array(1 << 15);
  sums = new Float64Array((1 << 13) * BIN_STRIDE);
  refs = new Float64Array((1 << 13) * 3);
  cls = new Uint8Array(1 << 13);
  bins = 0;

  /** The slot of `key`, created with reference point (x1, d2, d3) and class g when new. */
  slotOf(key: number, x1: number, d2: number, d3: number, g: number): number {
    const keys = this.keys;
    const mask = keys.length - 1;
    let h = hashOf(key) & mask;
    for (;;) {
      const k = keys[h]!;
      if (k === key) return this.slots[h]!;
      if (k === -1) break;
      h = (h + 1) & mask;
    }
    const slot = this.bins++;
    if (slot === this.cls.length) this.growBins();
    this.cls[slot] = g;
    this.refs[3 * slot] = x1;
    this.refs[3 * slot + 1] = d2;
    this.refs[3 * slot + 2] = d3;
    keys[h] = key;
    this.slots[h] = slot;
    if (this.bins * 2 > keys.length) this.rehash();
    return slot;
  }

  private growBins(): void {
    const capacity = this.cls.length * 2;
    this.sums = grown(this.sums, capacity * BIN_STRIDE);
    this.refs = grown(this.refs, capacity * 3);
    this.cls = grown(this.cls, capacity);
  }

  private rehash(): void {
    const oldKeys = this.keys;
    const oldSlots = this.slots;
    const keys = new Int32Array(oldKeys.length * 2).fill(-1);
    const slots = new Int32Array(keys.length);
    const mask = keys.length - 1;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      if (k === -1) continue;
      let h = hashOf(k) & mask;
      while (keys[h] !== -1) h = (h + 1) & mask;
      keys[h] = k;
      slots[h] = oldSlots[i]!;
    }
    this.keys = keys;
    this.slots = slots;
  }
}

function hashOf(key: number): number {
  const h = Math.imul(key, 0x9e3779b1);
  return h ^ (h >>> 15);
}

/**
 * Merge pixels into bins keyed by (φ(L1), φ(L2), φ(L3), g), φ(L) ≈ round(asinh(L)/δ) (bins δ wide
 * near L = 0, where the loss is curved, ≈ δ·|L| wide where it saturates), looked up in a table on a
 * grid of δ/8 (asinh only outside ±64). Per bin: count and, relative to its first member, float64
 * sums of δ = (L1, d2, d3) − first and of δaδb (typed arrays only; consecutive pixels of the same
 * bin, the common case on smooth maps, accumulate in registers until the bin changes or a chunk of
 * {@link BIN_CHUNK} pixels ends). Returns means and central moments.
 */
function binSamples(c: CheckedInputs, binWidth: number): BinnedSamples {
  const b = binning(binWidth, c.pixels);
  binPixels(b, c.l1, c.l2, c.l3, c.gt, c.pixels, 0);
  return binMoments(b.table);
}

/**
 * {@link binSamples} on maps that arrive row by row: each row is binned into the same table with
 * the same running sums, flushed at the same global pixel indices (multiples of BIN_CHUNK and the
 * end), so the bins equal `binSamples` on the assembled maps bit for bit. Also counts the positives.
 */
function binRows(rows: FusionRowSource, binWidth: number): { binned: BinnedSamples; positives: number } {
  const { width, height } = rows;
  const b = binning(binWidth, width * height);
  const l1 = new Float32Array(width);
  const l2 = new Float32Array(width);
  const l3 = new Float32Array(width);
  const gt = new Uint8Array(width);
  for (let y = 0; y < height; y++) {
    rows.fillRow(y, l1, l2, l3, gt);
    binPixels(b, l1, l2, l3, gt, width, y * width);
  }
  return { binned: binMoments(b.table), positives: b.positives };
}

/** The state of one binning of `pixels` pixels, fed in order by {@link binPixels}. */
interface Binning {
  readonly quantiser: Quantiser;
  readonly table: BinTable;
  /** The running sums (RUN_*). */
  readonly run: Float64Array;
  readonly pixels: number;
  /** Global index of the next pixel before which the running sums are flushed. */
  nextFlush: number;
  /** Foreground pixels binned so far. */
  positives: number;
}

function binning(binWidth: number, pixels: number): Binning {
  const run = new Float64Array(RUN_SIZE);
  run[RUN_KEY] = -1;
  return {
    quantiser: quantiser(binWidth),
    table: new BinTable(),
    run,
    pixels,
    nextFlush: Math.min(BIN_CHUNK, pixels),
    positives: 0,
  };
}

/**
 * Bin the next `count` pixels (global indices base..base+count−1, the first `count` values of the
 * arrays), flushing the running sums at every multiple of BIN_CHUNK and at the last pixel, whatever
 * the pieces the pixels arrive in.
 */
function binPixels(
  b: Binning,
  l1: Float32Array,
  l2: Float32Array,
  l3: Float32Array,
  gt: Uint8Array,
  count: number,
  base: number,
): void {
  let x = 0;
  while (x < count) {
    const stop = Math.min(count, b.nextFlush - base);
    b.positives += binSpan(l1, l2, l3, gt, x, stop, b.quantiser, b.table, b.run);
    x = stop;
    if (base + x === b.nextFlush) {
      flushRun(b.table, b.run);
      b.nextFlush = Math.min(b.nextFlush + BIN_CHUNK, b.pixels);
    }
  }
}

/** Means and central moments about them: C = S − s·sᵀ/n for sums S, s about the first member. */
function binMoments(t: BinTable): BinnedSamples {
  const { sums, refs, bins } = t;
  const data = new Float64Array(bins * BIN_STRIDE);
  for (let k = 0; k < bins; k++) {
    const o = k * BIN_STRIDE;
    const cnt = sums[o]!;
    const m1 = sums[o + 1]! / cnt;
    const m2 = sums[o + 2]! / cnt;
    const m3 = sums[o + 3]! / cnt;
    data[o] = cnt;
    data[o + 1] = refs[3 * k]! + m1;
    data[o + 2] = refs[3 * k + 1]! + m2;
    data[o + 3] = refs[3 * k + 2]! + m3;
    data[o + 4] = sums[o + 4]! - cnt * m1 * m1;
    data[o + 5] = sums[o + 5]! - cnt * m1 * m2;
    data[o + 6] = sums[o + 6]! - cnt * m1 * m3;
    data[o + 7] = sums[o + 7]! - cnt * m2 * m2;
    data[o + 8] = sums[o + 8]! - cnt * m2 * m3;
    data[o + 9] = sums[o + 9]! - cnt * m3 * m3;
  }
  return { data, gt: t.cls.slice(0, bins), bins };
}

// The binning's running state between calls of binSpan (a Float64Array, so that nothing is boxed):
// the current key (−1: none) and slot, the slot's reference point, the run's count and its nine
// sums (Σa, Σb, Σc, Σaa, Σab, Σac, Σbb, Σbc, Σcc).
const RUN_KEY = 0;
const RUN_SLOT = 1;
const RUN_REF = 2;
const RUN_N = 5;
const RUN_SUMS = 6;
const RUN_SIZE = RUN_SUMS + 9;

/** Add the running sums to their slot and forget the current bin (the next pixel looks its key up). */
function flushRun(t: BinTable, run: Float64Array): void {
  const r = (i: number): number => run[RUN_SUMS + i]!;
  addRun(t, run[RUN_SLOT]!, run[RUN_N]!, r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7), r(8));
  run.fill(0);
  run[RUN_KEY] = -1;
}

/** Add a run of `n` pixels (count and its nine sums) to bin `slot`; nothing when `n` is 0. */
function addRun(
  t: BinTable,
  slot: number,
  n: number,
  sa: number,
  sb: number,
  sc: number,
  saa: number,
  sab: number,
  sac: number,
  sbb: number,
  sbc: number,
  scc: number,
): void {
  if (n === 0) return;
  const sums = t.sums;
  const o = slot * BIN_STRIDE;
  sums[o]! += n;
  sums[o + 1]! += sa;
  sums[o + 2]! += sb;
  sums[o + 3]! += sc;
  sums[o + 4]! += saa;
  sums[o + 5]! += sab;
  sums[o + 6]! += sac;
  sums[o + 7]! += sbb;
  sums[o + 8]! += sbc;
  sums[o + 9]! += scc;
}

/**
 * {@link binSamples}' hot loop over pixels start..end−1 of the given arrays, continuing the run in
 * `run` (and leaving it there: a run ends only on a new key or {@link flushRun}). Ground truth is
 * non-zero = foreground (class 1). Returns the number of foreground pixels.
 */
function binSpan(
  l1: Float32Array,
  l2: Float32Array,
  l3: Float32Array,
  gt: Uint8Array,
  start: number,
  end: number,
  q: Quantiser,
  t: BinTable,
  run: Float64Array,
): number {
  const { table, invStep, inv, uLo, uHi } = q;
  const tableLen = table.length;
  // Table positions of the current bin's three indices and its class: a pixel inside all three has
  // the current key without the lookups (the common case: runs of one bin on smooth maps). Empty
  // until the first pixel of this call has been looked up.
  let a1 = Number.POSITIVE_INFINITY;
  let b1 = Number.NEGATIVE_INFINITY;
  let a2 = a1;
  let b2 = b1;
  let a3 = a1;
  let b3 = b1;
  let curG = -1;
  let positives = 0;
  let curKey = run[RUN_KEY]! | 0;
  let cur = run[RUN_SLOT]! | 0;
  let r1 = run[RUN_REF]!;
  let r2 = run[RUN_REF + 1]!;
  let r3 = run[RUN_REF + 2]!;
  let n = run[RUN_N]!;
  let sa = run[RUN_SUMS]!;
  let sb = run[RUN_SUMS + 1]!;
  let sc = run[RUN_SUMS + 2]!;
  let saa = run[RUN_SUMS + 3]!;
  let sab = run[RUN_SUMS + 4]!;
  let sac = run[RUN_SUMS + 5]!;
  let sbb = run[RUN_SUMS + 6]!;
  let sbc = run[RUN_SUMS + 7]!;
  let scc = run[RUN_SUMS + 8]!;
  for (let j = start; j < end; j++) {
    const x1 = l1[j]!;
    const x2 = l2[j]!;
    const x3 = l3[j]!;
    const d2 = x2 - x1;
    const d3 = x3 - x1;
    const u1 = (x1 + Q_TABLE_RANGE) * invStep;
    const u2 = (x2 + Q_TABLE_RANGE) * invStep;
    const u3 = (x3 + Q_TABLE_RANGE) * invStep;
    const g = gt[j] === 0 ? 0 : 1;
    positives += g;
    if (!(u1 >= a1 && u1 < b1 && u2 >= a2 && u2 < b2 && u3 >= a3 && u3 < b3 && g === curG)) {
      const i1 = u1 >= 0 && u1 < tableLen ? table[u1 | 0]! : binIndex(x1, inv);
      const i2 = u2 >= 0 && u2 < tableLen ? table[u2 | 0]! : binIndex(x2, inv);
      const i3 = u3 >= 0 && u3 < tableLen ? table[u3 | 0]! : binIndex(x3, inv);
      a1 = uLo[i1]!;
      b1 = uHi[i1]!;
      a2 = uLo[i2]!;
      b2 = uHi[i2]!;
      a3 = uLo[i3]!;
      b3 = uHi[i3]!;
      curG = g;
      const key = (i1 << 21) | (i2 << 11) | (i3 << 1) | g;
      if (key !== curKey) {
        addRun(t, cur, n, sa, sb, sc, saa, sab, sac, sbb, sbc, scc);
        n = 0;
        sa = sb = sc = saa = sab = sac = sbb = sbc = scc = 0;
        curKey = key;
        cur = t.slotOf(key, x1, d2, d3, g);
        const refs = t.refs;
        r1 = refs[3 * cur]!;
        r2 = refs[3 * cur + 1]!;
        r3 = refs[3 * cur + 2]!;
      }
    }
    const a = x1 - r1;
    const b = d2 - r2;
    const cc = d3 - r3;
    n++;
    sa += a;
    sb += b;
    sc += cc;
    saa += a * a;
    sab += a * b;
    sac += a * cc;
    sbb += b * b;
    sbc += b * cc;
    scc += cc * cc;
  }
  run[RUN_KEY] = curKey;
  run[RUN_SLOT] = cur;
  run[RUN_REF] = r1;
  run[RUN_REF + 1] = r2;
  run[RUN_REF + 2] = r3;
  run[RUN_N] = n;
  run[RUN_SUMS] = sa;
  run[RUN_SUMS + 1] = sb;
  run[RUN_SUMS + 2] = sc;
  run[RUN_SUMS + 3] = saa;
  run[RUN_SUMS + 4] = sab;
  run[RUN_SUMS + 5] = sac;
  run[RUN_SUMS + 6] = sbb;
  run[RUN_SUMS + 7] = sbc;
  run[RUN_SUMS + 8] = scc;
  return positives;
}
