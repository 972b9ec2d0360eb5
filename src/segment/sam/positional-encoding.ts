// SAM's random-Fourier positional encoding (persam-spec §2.1) for prompt points and for the 64×64
// image grid (§2.4): pure functions of the checkpoint's Gaussian matrix G.

import type { Tensor } from "../../util/tensor.js";
import { GRID_SIDE } from "./sam-constants.js";

function checkG(g: Tensor): number {
  const [rows, half] = g.dims;
  if (g.dims.length !== 2 || rows !== 2 || half === undefined || half < 1 || g.data.length !== 2 * half) {
    throw new Error(`Expected a [2, C/2] Gaussian matrix for G but received [${g.dims.join(",")}]`);
  }
  return half;
}

/** PE(u, v) into `out` at `offset`, in float64 maths (shared by both exports). */
function encodeInto(
  g: Float32Array,
  half: number,
  u: number,
  v: number,
  out: Float32Array,
  offset: number,
): void {
  const a = 2 * u - 1;
  const b = 2 * v - 1;
  for (let k = 0; k < half; k++) {
    // Row 0 of G multiplies x, row 1 multiplies y (§2.1 step 2; §9 item 5).
    const theta = 2 * Math.PI * (a * g[k]! + b * g[half + k]!);
    // All sines first, then all cosines — not interleaved (§2.1 step 4).
    out[offset + k] = Math.sin(theta);
    out[offset + half + k] = Math.cos(theta);
  }
}

/**
 * Random-Fourier encoding `PE(u, v)` of one normalised point (§2.1): `[sin θ_0…sin θ_{C/2−1},
 * cos θ_0…cos θ_{C/2−1}]` with `θ_k = 2π((2u−1)·G[0,k] + (2v−1)·G[1,k])`. `u` runs along x (width),
 * `v` along y (height), both in [0, 1]. For a prompt point in the 1024 frame use
 * `u = (x + 0.5) / 1024`, `v = (y + 0.5) / 1024` (§2.2).
 * @param g the checkpoint's Gaussian matrix `[2, C/2]`.
 * @returns C values, computed in float64 and rounded to float32.
 * @throws {Error} when `g` is not `[2, C/2]`.
 */
export function pointEncoding(g: Tensor, u: number, v: number): Float32Array {
  const half = checkG(g);
  const out = new Float32Array(2 * half);
  encodeInto(g.data, half, u, v, out, 0);
  return out;
}

/**
 * Dense positional encoding of the 64×64 image grid (§2.4, SAM's `get_dense_pe`):
 * `out[0, :, r, c] = PE((c + 0.5)/64, (r + 0.5)/64)`. Computed in float64 then cast, which the spec
 * allows (differs from PyTorch's float32 by ~1e-6). A constant of the checkpoint: compute it once.
 * @param g the checkpoint's Gaussian matrix `[2, C/2]`.
 * @returns `[1, C, 64, 64]`.
 */
export function densePositionalEncoding(g: Tensor): Tensor {
  const half = checkG(g);
  const c = 2 * half;
  const cells = GRID_SIDE * GRID_SIDE;
  const out = new Float32Array(c * cells);
  const one = new Float32Array(c);
  for (let r = 0; r < GRID_SIDE; r++) {
    for (let col = 0; col < GRID_SIDE; col++) {
      encodeInto(g.data, half, (col + 0.5) / GRID_SIDE, (r + 0.5) / GRID_SIDE, one, 0);
      const p = r * GRID_SIDE + col;
      for (let k = 0; k < c; k++) out[k * cells + p] = one[k]!;
    }
  }
  return { data: out, dims: [1, c, GRID_SIDE, GRID_SIDE] };
}
