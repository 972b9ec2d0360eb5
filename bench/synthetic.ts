// Deterministic synthetic inputs for the benchmarks: a 12 MP photo-like RGB image, PerSAM-F logit
// maps with a matching ground truth, decoder prompts. Nothing here is meant to look like real data
// beyond what the timed code is sensitive to (sizes, smoothness, value ranges).

import { lowResToOriginal } from "../src/segment/sam/postprocess.js";
import { preprocessShape } from "../src/segment/sam/preprocess.js";
import { GRID_SIDE, LOW_RES_SIDE } from "../src/segment/sam/sam-constants.js";
import { mulberry32 } from "../src/util/seeded-random.js";
import type { Size } from "../src/util/tensor.js";

/** A 12 MP phone photo, landscape: 4032 × 3024. */
export const PHOTO_12MP = { width: 4032, height: 3024 } as const;

/** mulberry32: uniforms in [0, 1), deterministic from a seed (the project's test PRNG). */
export const prng = mulberry32;

/**
 * Interleaved RGB8 pixels of a photo-like image: a smooth two-colour gradient background, a
 * shaded elliptical "subject" in the middle and ±6 levels of noise (so that JPEG has texture to
 * code, as a real photo has; pure noise would make an unrealistically large file).
 */
export function syntheticPhoto(width: number, height: number, seed = 1): Uint8Array {
  const rand = prng(seed);
  const out = new Uint8Array(width * height * 3);
  const cx = width / 2;
  const cy = height / 2;
  const rx = width / 5;
  const ry = height / 4;
  for (let y = 0; y < height; y++) {
    const fy = y / height;
    for (let x = 0; x < width; x++) {
      const fx = x / width;
      const dx = (x - cx) / rx;
      const dy = (y - cy) / ry;
      const r2 = dx * dx + dy * dy;
      let red: number;
      let green: number;
      let blue: number;
      if (r2 < 1) {
        const shade = 1 - 0.5 * r2;
        red = 200 * shade;
        green = 120 * shade;
        blue = 60 * shade;
      } else {
        red = 60 + 80 * fx;
        green = 90 + 60 * fy;
        blue = 140 + 50 * (1 - fx);
      }
      const n = (rand() - 0.5) * 12;
      const i = (y * width + x) * 3;
      out[i] = clamp8(red + n);
      out[i + 1] = clamp8(green + n);
      out[i + 2] = clamp8(blue + n);
    }
  }
  return out;
}

function clamp8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/**
 * Three low-res `[3, 256, 256]` multimask logit planes of a centred elliptical subject, as SAM
 * gives for a click on it (a part, the whole, the whole plus surroundings), plus smooth ripples so
 * that the planes are not exact rescalings of each other. Only the image part of the padded frame
 * carries the subject; the padding is strongly negative, as SAM's outputs are there.
 */
export function syntheticLowResLogits(inputSize: Size, seed = 2): Float32Array {
  const rand = prng(seed);
  const n = LOW_RES_SIDE * LOW_RES_SIDE;
  const out = new Float32Array(3 * n);
  const hImg = inputSize[0] / 4;
  const wImg = inputSize[1] / 4;
  const radii = [0.6, 1, 1.4];
  for (let p = 0; p < 3; p++) {
    const phase = rand() * 2 * Math.PI;
    for (let y = 0; y < LOW_RES_SIDE; y++) {
      for (let x = 0; x < LOW_RES_SIDE; x++) {
        let v: number;
        if (y >= hImg || x >= wImg) {
          v = -20;
        } else {
          const dx = (x - wImg / 2) / (wImg / 5);
          const dy = (y - hImg / 2) / (hImg / 4);
          const r = Math.sqrt(dx * dx + dy * dy) / radii[p]!;
          v = 12 * (1 - r) + 1.5 * Math.sin(x / 7 + phase) * Math.cos(y / 9 - phase);
        }
        out[p * n + y * LOW_RES_SIDE + x] = v;
      }
    }
  }
  return out;
}

/** PerSAM-F training inputs at a photo's full resolution: 3 logit maps and the ground truth. */
export interface FusionInputs {
  readonly logitsHigh: readonly [Float32Array, Float32Array, Float32Array];
  readonly gt: Uint8Array;
  readonly inputSize: Size;
  readonly originalSize: Size;
}

/**
 * `logits_high` of {@link syntheticLowResLogits} up-sampled to `width × height` exactly as
 * adaptPerSamF does (persam-spec §4.1), and the subject's ellipse as ground truth (1 = foreground).
 */
export function syntheticFusionInputs(width: number, height: number): FusionInputs {
  const originalSize: Size = [height, width];
  const inputSize = preprocessShape(height, width);
  const high = lowResToOriginal(syntheticLowResLogits(inputSize), 3, inputSize, originalSize);
  const m = width * height;
  const gt = new Uint8Array(m);
  const cx = width / 2;
  const cy = height / 2;
  const rx = width / 5;
  const ry = height / 4;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = (x - cx) / rx;
      const dy = (y - cy) / ry;
      gt[y * width + x] = dx * dx + dy * dy < 1 ? 1 : 0;
    }
  }
  return {
    logitsHigh: [high.subarray(0, m), high.subarray(m, 2 * m), high.subarray(2 * m, 3 * m)],
    gt,
    inputSize,
    originalSize,
  };
}

/** A 64×64 reference grid (1 = subject) covering a centred ellipse of the image part of the frame. */
export function syntheticGrid(inputSize: Size): Uint8Array {
  const grid = new Uint8Array(GRID_SIDE * GRID_SIDE);
  const h = inputSize[0] / 16;
  const w = inputSize[1] / 16;
  for (let r = 0; r < GRID_SIDE; r++) {
    for (let c = 0; c < GRID_SIDE; c++) {
      const dx = (c + 0.5 - w / 2) / (w / 5);
      const dy = (r + 0.5 - h / 2) / (h / 4);
      grid[r * GRID_SIDE + c] = dx * dx + dy * dy < 1 ? 1 : 0;
    }
  }
  return grid;
}

/** Uniform values in (0, 1) (an attn_sim-like bias) or in [lo, hi). */
export function uniformArray(length: number, seed: number, lo = 0, hi = 1): Float32Array {
  const rand = prng(seed);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}
