// Exact shortcuts around the full-resolution up-sampling of a 256×256 low-res plane (§4.1 steps
// 1–3): the values of `lowResToOriginal` computed only where they are needed, bit for bit the same
// arithmetic, for masks (threshold, box, area), extrema (location prior), moments (mean / std) and
// sampled resizes (attn_sim). No H×W float map is built.
//
// Why it is exact: every full-resolution value is a sum of low-res taps with non-negative weights
// (two float32-rounded bilinear stages). So a pixel is ≤ 0 when all its positive-weight taps are ≤ 0,
// > 0 when all are ≥ SURE_POSITIVE, and within a hair (|Σw − 1| ≤ 1e-6, rounding) of the range of its
// taps: blocks of pixels sharing the same taps are classified from the low-res values alone, and
// only the undecided ones are evaluated, with the literal path's own operators, order of additions
// and float32 roundings.

import { type Box, grown, type Size } from "../../util/tensor.js";
import {
  composedAxis,
  lowResToOriginal,
  type SparseAxis,
  torchBilinearTaps,
  toSparse,
} from "./postprocess.js";
import { LOW_RES_SIDE } from "./sam-constants.js";

/** A tap value at or above this makes a convex combination of such taps surely > 0 in float32. */
const SURE_POSITIVE = 1e-30;
const SIDE = LOW_RES_SIDE;
/** A float64 rounds to a float32 > 0 exactly when it exceeds 2⁻¹⁵⁰ (half the least denormal, ties to even). */
const F32_POSITIVE = 2 ** -150;

/** Upper bound of a full-resolution value whose positive-weight taps are all ≤ `m`. */
function upper(m: number): number {
  return m + Math.abs(m) * 1e-6 + 1e-44;
}

/** Mask, area and box of a thresholded full-resolution plane. */
export interface RegionMask {
  /** `H × W` binary mask (1 = logit > 0). */
  readonly mask: Uint8Array;
  readonly area: number;
  /** Inclusive extents `[x_min, y_min, x_max, y_max]`, undefined when empty (as `maskBox`). */
  readonly box: Box | undefined;
}

/** Positions and values of the global max and min (first row-major index on ties). */
export interface FieldExtremes {
  readonly maxIndex: number;
  readonly maxValue: number;
  readonly minIndex: number;
  readonly minValue: number;
}

/** Column segments per row group (see `LowResField.segments`). */
interface Segments {
  /** Segments of row group g: `start[g] .. start[g + 1] − 1`. */
  readonly start: Int32Array;
  readonly x0: Int32Array;
  readonly x1: Int32Array;
  /** 1: every pixel > 0; 0: undecided. */
  readonly sure: Uint8Array;
}

/** Runs of consecutive output indices whose positive-weight taps span the same low-res range. */
interface TapGroups {
  readonly count: number;
  /** Output index range `[start, end)` of each group. */
  readonly start: Int32Array;
  readonly end: Int32Array;
  /** Low-res range `[lo, hi]` (inclusive) of the positive-weight taps of each group. */
  readonly lo: Int32Array;
  readonly hi: Int32Array;
}

function tapGroups(axis: SparseAxis, outSize: number): TapGroups {
  const { k, index, weight } = axis;
  const start: number[] = [];
  const end: number[] = [];
  const los: number[] = [];
  const his: number[] = [];
  for (let o = 0; o < outSize; o++) {
    let lo = SIDE;
    let hi = -1;
    for (let t = o * k; t < o * k + k; t++) {
      if (weight[t]! > 0) {
        lo = Math.min(lo, index[t]!);
        hi = Math.max(hi, index[t]!);
      }
    }
    if (hi < 0) lo = hi = index[o * k]!; // all weights 0 (cannot happen for bilinear taps)
    const g = start.length - 1;
    if (g >= 0 && los[g] === lo && his[g] === hi) {
      end[g] = o + 1;
    } else {
      start.push(o);
      end.push(o + 1);
      los.push(lo);
      his.push(hi);
    }
  }
  return {
    count: start.length,
    start: Int32Array.from(start),
    end: Int32Array.from(end),
    lo: Int32Array.from(los),
    hi: Int32Array.from(his),
  };
}

/**
 * The full-resolution plane `lowResToOriginal(lowRes, 1, inputSize, originalSize)`, evaluated on
 * demand. Every value it returns equals the literal map's bit for bit (same operators, same order of
 * additions, same float32 intermediate). A plane with a non-finite value falls back to the literal
 * map for everything (the bounds above need finite taps).
 */
export class LowResField {
  readonly width: number;
  readonly height: number;
  /** The `256 × 256` plane. */
  readonly lowRes: Float32Array;
  private readonly rows: SparseAxis;
  private readonly cols: SparseAxis;
  /** The literal path's order: rows shrink first when the photo is less than 256 rows high. */
  private readonly verticalFirst: boolean;
  /** Float32 intermediate rows: low-res row → W values (horizontal first) or output row → 256. */
  private readonly tmp: (Float32Array | undefined)[];
  private readonly inputSize: Size;
  private literal: Float32Array | undefined;
  /** Buffers of intermediate rows forgotten by {@link discardBefore}, and where it stopped. */
  private readonly spare: Float32Array[] = [];
  private discardFrom = 0;
  private rowGroupsCache: TapGroups | undefined;
  private segmentsCache: Segments | undefined;
  /** First and last positive column of the latest {@link markRow}. */
  private runFirst = -1;
  private runLast = -1;
  private colGroupsCache: TapGroups | undefined;
  readonly finite: boolean;
  /**
   * Finite and at most 1e37 in magnitude, so every float32 intermediate is finite too and a
   * zero-weight tap adds ±0 (what lets {@link rowInto} skip trailing zero-weight taps).
   */
  private readonly bounded: boolean;

  /** @throws RangeError as `lowResToOriginal`. */
  constructor(lowRes: Float32Array, inputSize: Size, originalSize: Size) {
    if (lowRes.length !== SIDE * SIDE) {
      throw new RangeError(`Expected ${SIDE * SIDE} values but received ${lowRes.length}`);
    }
    const [h, w] = originalSize;
    this.rows = composedAxis(inputSize[0], h);
    this.cols = composedAxis(inputSize[1], w);
    this.height = h;
    this.width = w;
    this.lowRes = lowRes;
    this.inputSize = inputSize;
    this.verticalFirst = h < SIDE;
    this.tmp = new Array<Float32Array | undefined>(this.verticalFirst ? h : SIDE);
    let finite = true;
    let maxAbs = 0;
    for (let i = 0; i < lowRes.length; i++) {
      const v = lowRes[i]!;
      if (!Number.isFinite(v)) {
        finite = false;
        break;
      }
      if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
    }
    this.finite = finite;
    this.bounded = finite && maxAbs <= 1e37;
  }

  /** The whole map, exactly `lowResToOriginal` (cached). */
  full(): Float32Array {
    this.literal ??= lowResToOriginal(this.lowRes, 1, this.inputSize, [this.height, this.width]);
    return this.literal;
  }

  /**
   * For a caller that reads rows in increasing order (`fusionRows`): forget the cached intermediate
   * rows that row `y` and the rows after it do not read, keeping their buffers for the next ones, so
   * that a pass over the whole plane holds a handful of `W`-value rows instead of up to 256 (and
   * does not page-fault megabytes of fresh memory). Only a matter of speed: a forgotten row that is
   * asked for again is recomputed, with the same values.
   */
  discardBefore(y: number): void {
    if (this.verticalFirst || this.literal) return;
    const { index, weight } = this.rows;
    let lo = SIDE;
    for (let t = y * 4; t < y * 4 + 4; t++) if (weight[t]! > 0 && index[t]! < lo) lo = index[t]!;
    // Row 0 stays: the unused (zero-weight) taps of every output row read it.
    for (let r = Math.max(1, this.discardFrom); r < lo; r++) {
      const row = this.tmp[r];
      if (row) {
        this.spare.push(row);
        this.tmp[r] = undefined;
      }
    }
    if (lo > this.discardFrom) this.discardFrom = lo;
  }

  /** Values of row `y`, columns `[x0, x1)`, into `dst[0 .. x1 − x0)`. */
  rowInto(y: number, x0: number, x1: number, dst: Float32Array): void {
    if (this.literal) {
      dst.set(this.literal.subarray(y * this.width + x0, y * this.width + x1));
      return;
    }
    if (this.verticalFirst) {
      const tv = this.vRow(y);
      const { index, weight } = this.cols;
      for (let x = x0; x < x1; x++) {
        let acc = 0;
        for (let t = x * 4, end = t + 4; t < end; t++) acc += weight[t]! * tv[index[t]!]!;
        dst[x - x0] = acc;
      }
      return;
    }
    const { index, weight } = this.rows;
    const t = y * 4;
    const w0 = weight[t]!;
    const w1 = weight[t + 1]!;
    const w2 = weight[t + 2]!;
    const w3 = weight[t + 3]!;
    const r0 = this.hRow(index[t]!);
    const r1 = this.hRow(index[t + 1]!);
    // A composed row has 2 or 3 distinct low-res taps; the unused slots weigh 0 (and read row 0).
    // With bounded values such a trailing term is ±0, which leaves a non-zero partial sum unchanged
    // bit for bit, so it is skipped (about 40 % fewer multiply-adds at 12 MP). A partial sum of ±0,
    // where the sign of the zero could change, gets the literal remaining terms: in fact the sum
    // of the leading taps is never −0 here (the first weight is > 0 and no intermediate is −0),
    // so this only keeps the identity independent of that argument.
    if (this.bounded && w2 === 0 && w3 === 0) {
      const i2 = index[t + 2]!;
      const i3 = index[t + 3]!;
      for (let x = x0; x < x1; x++) {
        let v = w0 * r0[x]! + w1 * r1[x]!;
        if (v === 0) v = v + w2 * this.hAt(i2, x) + w3 * this.hAt(i3, x);
        dst[x - x0] = v;
      }
      return;
    }
    const r2 = this.hRow(index[t + 2]!);
    if (this.bounded && w3 === 0) {
      const i3 = index[t + 3]!;
      for (let x = x0; x < x1; x++) {
        let v = w0 * r0[x]! + w1 * r1[x]! + w2 * r2[x]!;
        if (v === 0) v = v + w3 * this.hAt(i3, x);
        dst[x - x0] = v;
      }
      return;
    }
    const r3 = this.hRow(index[t + 3]!);
    for (let x = x0; x < x1; x++) dst[x - x0] = w0 * r0[x]! + w1 * r1[x]! + w2 * r2[x]! + w3 * r3[x]!;
  }

  /** Values at `rows × cols` (row-major, `rows.length × cols.length`). */
  sample(rows: ArrayLike<number>, cols: ArrayLike<number>): Float32Array {
    const out = new Float32Array(rows.length * cols.length);
    const nc = cols.length;
    if (this.literal || this.verticalFirst) {
      const w = this.width;
      for (let i = 0; i < rows.length; i++) {
        const y = rows[i]!;
        if (this.literal) {
          for (let j = 0; j < nc; j++) out[i * nc + j] = this.literal[y * w + cols[j]!]!;
          continue;
        }
        const tv = this.vRow(y);
        const { index, weight } = this.cols;
        for (let j = 0; j < nc; j++) {
          const x = cols[j]!;
          let acc = 0;
          for (let t = x * 4, end = t + 4; t < end; t++) acc += weight[t]! * tv[index[t]!]!;
          out[i * nc + j] = acc;
        }
      }
      return out;
    }
    const { index, weight } = this.rows;
    for (let i = 0; i < rows.length; i++) {
      const t = rows[i]! * 4;
      for (let j = 0; j < nc; j++) {
        const x = cols[j]!;
        out[i * nc + j] =
          weight[t]! * this.hAt(index[t]!, x) +
          weight[t + 1]! * this.hAt(index[t + 1]!, x) +
          weight[t + 2]! * this.hAt(index[t + 2]!, x) +
          weight[t + 3]! * this.hAt(index[t + 3]!, x);
      }
    }
    return out;
  }

  /**
   * Threshold `> 0` (`thresholdMask`), with the mask's area and box (`maskArea`, `maskBox`):
   * identical results. Blocks whose taps are all ≤ 0 are skipped, blocks whose taps are all > 0
   * filled, and only the rest evaluated pixel by pixel.
   */
  threshold(): RegionMask {
    const { width, height } = this;
    const mask = new Uint8Array(width * height);
    if (!this.finite) {
      const full = this.full();
      let area = 0;
      let box: [number, number, number, number] | undefined;
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          if (full[y * width + x]! > 0) {
            mask[y * width + x] = 1;
            area++;
            box = extend(box, x, y);
          }
        }
      }
      return { mask, area, box };
    }
    const rg = this.rowGroups();
    const seg = this.segments();
    let area = 0;
    let xMin = width;
    let xMax = -1;
    let yMin = height;
    let yMax = -1;
    // The sure segments of a row group, as one row copied into each of its rows.
    const template = new Uint8Array(width);
    for (let g = 0; g < rg.count; g++) {
      const s0 = seg.start[g]!;
      const s1 = seg.start[g + 1]!;
      if (s0 === s1) continue;
      template.fill(0);
      let sureCount = 0;
      let sureFirst = width;
      let sureLast = -1;
      for (let s = s0; s < s1; s++) {
        if (seg.sure[s] !== 1) continue;
        template.fill(1, seg.x0[s]!, seg.x1[s]!);
        sureCount += seg.x1[s]! - seg.x0[s]!;
        if (sureFirst === width) sureFirst = seg.x0[s]!;
        sureLast = seg.x1[s]! - 1;
      }
      for (let y = rg.start[g]!; y < rg.end[g]!; y++) {
        const off = y * width;
        let first = sureFirst;
        let last = sureLast;
        if (sureCount > 0) {
          mask.set(template, off);
          area += sureCount;
        }
        for (let s = s0; s < s1; s++) {
          if (seg.sure[s] === 1) continue;
          const n = this.markRow(y, seg.x0[s]!, seg.x1[s]!, mask, off);
          if (n > 0) {
            area += n;
            if (this.runFirst < first) first = this.runFirst;
            if (this.runLast > last) last = this.runLast;
          }
        }
        if (last < 0) continue;
        if (y < yMin) yMin = y;
        yMax = y;
        if (first < xMin) xMin = first;
        if (last > xMax) xMax = last;
      }
    }
    return { mask, area, box: yMax < 0 ? undefined : [xMin, yMin, xMax, yMax] };
  }

  /**
   * The box of {@link threshold}'s mask alone (`maskBox`, inclusive extents; undefined when empty),
   * without the mask: the first and last positive rows, then in the rows between only the pixels
   * left of the leftmost and right of the rightmost positive found so far.
   */
  box(): Box | undefined {
    if (!this.finite) return this.threshold().box;
    const { width, height } = this;
    const rowGroup = new Int32Array(height);
    const rg = this.rowGroups();
    for (let g = 0; g < rg.count; g++) rowGroup.fill(g, rg.start[g]!, rg.end[g]!);
    // Leftmost positive of row y in [0, limit), or −1; rightmost in [limit, W), or −1.
    const leftmost = (y: number, limit: number): number => {
      const seg = this.segments();
      const g = rowGroup[y]!;
      for (let s = seg.start[g]!; s < seg.start[g + 1]!; s++) {
        const x0 = seg.x0[s]!;
        if (x0 >= limit) return -1;
        const x1 = Math.min(seg.x1[s]!, limit);
        if (seg.sure[s] === 1) return x0;
        const x = this.scanRow(y, x0, x1, 1);
        if (x >= 0) return x;
      }
      return -1;
    };
    const rightmost = (y: number, limit: number): number => {
      const seg = this.segments();
      const g = rowGroup[y]!;
      for (let s = seg.start[g + 1]! - 1; s >= seg.start[g]!; s--) {
        const x1 = seg.x1[s]!;
        if (x1 <= limit) return -1;
        const x0 = Math.max(seg.x0[s]!, limit);
        if (seg.sure[s] === 1) return x1 - 1;
        const x = this.scanRow(y, x0, x1, -1);
        if (x >= 0) return x;
      }
      return -1;
    };
    let yMin = 0;
    let xMin = -1;
    for (; yMin < height; yMin++) {
      xMin = leftmost(yMin, width);
      if (xMin >= 0) break;
    }
    if (xMin < 0) return undefined;
    let xMax = rightmost(yMin, 0);
    let yMax = height - 1;
    for (; yMax > yMin; yMax--) {
      const l = leftmost(yMax, width);
      if (l < 0) continue;
      if (l < xMin) xMin = l;
      const r = rightmost(yMax, 0);
      if (r > xMax) xMax = r;
      break;
    }
    for (let y = yMin + 1; y < yMax; y++) {
      if (xMin > 0) {
        const l = leftmost(y, xMin);
        if (l >= 0) xMin = l;
      }
      if (xMax < width - 1) {
        const r = rightmost(y, xMax + 1);
        if (r >= 0) xMax = r;
      }
    }
    return [xMin, yMin, xMax, yMax];
  }

  /**
   * Global max and min with their row-major indices, first index on ties: what a scan of `full()`
   * finds. Branch and bound: a block of pixels sharing the same taps is evaluated only when the
   * bound of its taps can reach the best value found so far.
   */
  extremes(): FieldExtremes {
    if (!this.finite) {
      const full = this.full();
      let maxIndex = -1;
      let minIndex = -1;
      let maxValue = Number.NEGATIVE_INFINITY;
      let minValue = Number.POSITIVE_INFINITY;
      for (let j = 0; j < full.length; j++) {
        const v = full[j]!;
        if (v > maxValue || (maxIndex < 0 && v === maxValue)) {
          maxValue = v;
          maxIndex = j;
        }
        if (v < minValue || (minIndex < 0 && v === minValue)) {
          minValue = v;
          minIndex = j;
        }
      }
      return { maxIndex, maxValue, minIndex, minValue };
    }
    const max = this.bestOf(1);
    const min = this.bestOf(-1);
    return { maxIndex: max.index, maxValue: max.value, minIndex: min.index, minValue: min.value };
  }

  /**
   * `Σ v` and `Σ v²` over the whole map, in float64, from the low-res plane: `uᵀ X v` and
   * `tr(Xᵀ (RᵀR) X (CᵀC))` with the banded Gram matrices of the two axis operators. Equal to the
   * sums over `full()` up to its float32 rounding (relative ~1e-7 per pixel).
   */
  moments(): { sum: number; sumSquares: number } {
    if (!this.finite) {
      const full = this.full();
      let sum = 0;
      let sumSquares = 0;
      for (let i = 0; i < full.length; i++) {
        sum += full[i]!;
        sumSquares += full[i]! * full[i]!;
      }
      return { sum, sumSquares };
    }
    const X = this.lowRes;
    const r = gram(this.rows, this.height);
    const c = gram(this.cols, this.width);
    let sum = 0;
    for (let a = 0; a < SIDE; a++) {
      const ua = r.colSum[a]!;
      if (ua === 0) continue;
      let s = 0;
      for (let b = 0; b < SIDE; b++) s += X[a * SIDE + b]! * c.colSum[b]!;
      sum += ua * s;
    }
    // XG = X · G_C, then Σ_{a,b} G_R[a,b] · ⟨XG[a,:], X[b,:]⟩ over the band |a − b| ≤ bandwidth.
    const cb = c.bandwidth;
    const xg = new Float64Array(SIDE * SIDE);
    for (let a = 0; a < SIDE; a++) {
      if (r.gram[a * SIDE + a] === 0) continue;
      for (let d = 0; d < SIDE; d++) {
        let s = 0;
        const lo = Math.max(0, d - cb);
        const hi = Math.min(SIDE - 1, d + cb);
        for (let e = lo; e <= hi; e++) s += X[a * SIDE + e]! * c.gram[e * SIDE + d]!;
        xg[a * SIDE + d] = s;
      }
    }
    let sumSquares = 0;
    const rb = r.bandwidth;
    for (let a = 0; a < SIDE; a++) {
      if (r.gram[a * SIDE + a] === 0) continue;
      for (let b = Math.max(0, a - rb); b <= Math.min(SIDE - 1, a + rb); b++) {
        const gab = r.gram[a * SIDE + b]!;
        if (gab === 0) continue;
        let s = 0;
        for (let d = 0; d < SIDE; d++) s += xg[a * SIDE + d]! * X[b * SIDE + d]!;
        sumSquares += gab * s;
      }
    }
    return { sum, sumSquares };
  }

  // ---- internals -------------------------------------------------------------------------------

  private rowGroups(): TapGroups {
    this.rowGroupsCache ??= tapGroups(this.rows, this.height);
    return this.rowGroupsCache;
  }

  private colGroups(): TapGroups {
    this.colGroupsCache ??= tapGroups(this.cols, this.width);
    return this.colGroupsCache;
  }

  /**
   * Per row group, the column segments whose taps are not all ≤ 0: `sure` when all are
   * ≥ SURE_POSITIVE (every pixel > 0), else undecided; neighbours of one kind merged.
   */
  private segments(): Segments {
    if (this.segmentsCache) return this.segmentsCache;
    const L = this.lowRes;
    const rg = this.rowGroups();
    const cg = this.colGroups();
    const cLo = cg.lo[0]!;
    const cHi = cg.hi[cg.count - 1]!;
    const colMax = new Float32Array(SIDE);
    const colMin = new Float32Array(SIDE);
    const start = new Int32Array(rg.count + 1);
    let x0: Int32Array = new Int32Array(Math.max(16, cg.count));
    let x1: Int32Array = new Int32Array(x0.length);
    let sure: Uint8Array = new Uint8Array(x0.length);
    let n = 0;
    for (let g = 0; g < rg.count; g++) {
      start[g] = n;
      columnExtremes(L, rg.lo[g]!, rg.hi[g]!, cLo, cHi, colMax, colMin);
      let lastClass = 0;
      for (let k = 0; k < cg.count; k++) {
        let bMax = Number.NEGATIVE_INFINITY;
        let bMin = Number.POSITIVE_INFINITY;
        for (let c = cg.lo[k]!; c <= cg.hi[k]!; c++) {
          if (colMax[c]! > bMax) bMax = colMax[c]!;
          if (colMin[c]! < bMin) bMin = colMin[c]!;
        }
        const cls = bMax <= 0 ? 0 : bMin >= SURE_POSITIVE ? 2 : 1;
        if (cls !== 0 && cls === lastClass) {
          x1[n - 1] = cg.end[k]!;
        } else if (cls !== 0) {
          if (n === x0.length) {
            x0 = grown(x0, x0.length * 2);
            x1 = grown(x1, x1.length * 2);
            sure = grown(sure, sure.length * 2);
          }
          x0[n] = cg.start[k]!;
          x1[n] = cg.end[k]!;
          sure[n] = cls === 2 ? 1 : 0;
          n++;
        }
        lastClass = cls;
      }
    }
    start[rg.count] = n;
    this.segmentsCache = { start, x0, x1, sure };
    return this.segmentsCache;
  }

  /**
   * Set `mask[off + x] = 1` where the value at `(y, x)`, `x0 ≤ x < x1`, is > 0; return how many,
   * with the first and last in `runFirst` / `runLast`. A float32 value is > 0 exactly when the
   * float64 sum it is rounded from exceeds 2⁻¹⁵⁰, so no float32 is stored.
   */
  private markRow(y: number, x0: number, x1: number, mask: Uint8Array, off: number): number {
    let n = 0;
    let first = -1;
    let last = -1;
    if (this.verticalFirst) {
      const tv = this.vRow(y);
      const { index, weight } = this.cols;
      for (let x = x0; x < x1; x++) {
        let acc = 0;
        for (let t = x * 4, end = t + 4; t < end; t++) acc += weight[t]! * tv[index[t]!]!;
        if (acc > F32_POSITIVE) {
          mask[off + x] = 1;
          n++;
          if (first < 0) first = x;
          last = x;
        }
      }
    } else {
      const { index, weight } = this.rows;
      const t = y * 4;
      const r0 = this.hRow(index[t]!);
      const r1 = this.hRow(index[t + 1]!);
      const r2 = this.hRow(index[t + 2]!);
      const r3 = this.hRow(index[t + 3]!);
      const w0 = weight[t]!;
      const w1 = weight[t + 1]!;
      const w2 = weight[t + 2]!;
      const w3 = weight[t + 3]!;
      for (let x = x0; x < x1; x++) {
        if (w0 * r0[x]! + w1 * r1[x]! + w2 * r2[x]! + w3 * r3[x]! > F32_POSITIVE) {
          mask[off + x] = 1;
          n++;
          if (first < 0) first = x;
          last = x;
        }
      }
    }
    this.runFirst = first;
    this.runLast = last;
    return n;
  }

  /** First `x` in `[x0, x1)` with a value > 0, scanning left to right (dir 1) or right to left (−1); −1 if none. */
  private scanRow(y: number, x0: number, x1: number, dir: 1 | -1): number {
    const from = dir === 1 ? x0 : x1 - 1;
    const to = dir === 1 ? x1 : x0 - 1;
    if (this.verticalFirst) {
      const tv = this.vRow(y);
      const { index, weight } = this.cols;
      for (let x = from; x !== to; x += dir) {
        let acc = 0;
        for (let t = x * 4, end = t + 4; t < end; t++) acc += weight[t]! * tv[index[t]!]!;
        if (acc > F32_POSITIVE) return x;
      }
      return -1;
    }
    const { index, weight } = this.rows;
    const t = y * 4;
    const r0 = this.hRow(index[t]!);
    const r1 = this.hRow(index[t + 1]!);
    const r2 = this.hRow(index[t + 2]!);
    const r3 = this.hRow(index[t + 3]!);
    const w0 = weight[t]!;
    const w1 = weight[t + 1]!;
    const w2 = weight[t + 2]!;
    const w3 = weight[t + 3]!;
    for (let x = from; x !== to; x += dir) {
      if (w0 * r0[x]! + w1 * r1[x]! + w2 * r2[x]! + w3 * r3[x]! > F32_POSITIVE) return x;
    }
    return -1;
  }

  /** Horizontal-first intermediate: low-res row `r` resampled to W columns (float32). */
  private hRow(r: number): Float32Array {
    let row = this.tmp[r];
    if (row) return row;
    // Every value is written below, so a spare buffer's old contents do not matter.
    row = this.spare.pop() ?? new Float32Array(this.width);
    const { index, weight } = this.cols;
    const L = this.lowRes;
    const s = r * SIDE;
    for (let x = 0; x < this.width; x++) {
      let acc = 0;
      for (let t = x * 4, end = t + 4; t < end; t++) acc += weight[t]! * L[s + index[t]!]!;
      row[x] = acc;
    }
    this.tmp[r] = row;
    return row;
  }

  /** One value of {@link hRow} without building the row. */
  private hAt(r: number, x: number): number {
    const row = this.tmp[r];
    if (row) return row[x]!;
    const { index, weight } = this.cols;
    const L = this.lowRes;
    const s = r * SIDE;
    let acc = 0;
    for (let t = x * 4, end = t + 4; t < end; t++) acc += weight[t]! * L[s + index[t]!]!;
    return Math.fround(acc);
  }

  /** Vertical-first intermediate: output row `y` over the 256 low-res columns (float32). */
  private vRow(y: number): Float32Array {
    let row = this.tmp[y];
    if (row) return row;
    row = new Float32Array(SIDE);
    const { index, weight } = this.rows;
    const L = this.lowRes;
    const t = y * 4;
    const s0 = index[t]! * SIDE;
    const s1 = index[t + 1]! * SIDE;
    const s2 = index[t + 2]! * SIDE;
    const s3 = index[t + 3]! * SIDE;
    const w0 = weight[t]!;
    const w1 = weight[t + 1]!;
    const w2 = weight[t + 2]!;
    const w3 = weight[t + 3]!;
    for (let c = 0; c < SIDE; c++) {
      row[c] = w0 * L[s0 + c]! + w1 * L[s1 + c]! + w2 * L[s2 + c]! + w3 * L[s3 + c]!;
    }
    this.tmp[y] = row;
    return row;
  }

  /** Max of `sign · value` (sign 1: max, −1: min), first row-major index on ties. */
  private bestOf(sign: 1 | -1): { index: number; value: number } {
    const L = this.lowRes;
    const { width } = this;
    const rg = this.rowGroups();
    const cg = this.colGroups();
    const cLo = cg.lo[0]!;
    const cHi = cg.hi[cg.count - 1]!;
    // Bound of each row group: the extreme of its low-res rows over the columns in use.
    const rowKey = new Float64Array(SIDE).fill(Number.NEGATIVE_INFINITY);
    for (let r = 0; r < SIDE; r++) {
      let m = Number.NEGATIVE_INFINITY;
      for (let c = cLo; c <= cHi; c++) {
        const v = sign * L[r * SIDE + c]!;
        if (v > m) m = v;
      }
      rowKey[r] = m;
    }
    const groupKey = new Float64Array(rg.count);
    for (let g = 0; g < rg.count; g++) {
      let m = Number.NEGATIVE_INFINITY;
      for (let r = rg.lo[g]!; r <= rg.hi[g]!; r++) if (rowKey[r]! > m) m = rowKey[r]!;
      groupKey[g] = upper(m);
    }
    const order = Array.from({ length: rg.count }, (_, g) => g).sort(
      (a, b) => groupKey[b]! - groupKey[a]! || a - b,
    );
    const colMax = new Float32Array(SIDE);
    const colMin = new Float32Array(SIDE);
    const blockKey = new Float64Array(cg.count);
    const buf = new Float32Array(width);
    let best = Number.NEGATIVE_INFINITY;
    let bestIndex = -1;
    let bestValue = Number.NaN;
    for (const g of order) {
      if (groupKey[g]! < best) break;
      columnExtremes(L, rg.lo[g]!, rg.hi[g]!, cLo, cHi, colMax, colMin);
      const ext = sign === 1 ? colMax : colMin;
      for (let k = 0; k < cg.count; k++) {
        let m = Number.NEGATIVE_INFINITY;
        for (let c = cg.lo[k]!; c <= cg.hi[k]!; c++) {
          const v = sign * ext[c]!;
          if (v > m) m = v;
        }
        blockKey[k] = upper(m);
      }
      for (let y = rg.start[g]!; y < rg.end[g]!; y++) {
        let k = 0;
        while (k < cg.count) {
          if (blockKey[k]! < best) {
            k++;
            continue;
          }
          // A run of blocks that can still reach `best`.
          let k1 = k + 1;
          while (k1 < cg.count && blockKey[k1]! >= best) k1++;
          const x0 = cg.start[k]!;
          const x1 = cg.end[k1 - 1]!;
          this.rowInto(y, x0, x1, buf);
          for (let x = x0; x < x1; x++) {
            const v = buf[x - x0]!;
            const key = sign * v;
            const idx = y * width + x;
            if (key > best || (key === best && idx < bestIndex)) {
              best = key;
              bestIndex = idx;
              bestValue = v;
            }
          }
          k = k1;
        }
      }
    }
    return { index: bestIndex, value: bestValue };
  }
}

/** Column-wise max and min of low-res rows `lo..hi` over columns `cLo..cHi`. */
function columnExtremes(
  L: Float32Array,
  lo: number,
  hi: number,
  cLo: number,
  cHi: number,
  colMax: Float32Array,
  colMin: Float32Array,
): void {
  for (let c = cLo; c <= cHi; c++) {
    const v = L[lo * SIDE + c]!;
    colMax[c] = v;
    colMin[c] = v;
  }
  for (let r = lo + 1; r <= hi; r++) {
    const s = r * SIDE;
    for (let c = cLo; c <= cHi; c++) {
      const v = L[s + c]!;
      if (v > colMax[c]!) colMax[c] = v;
      if (v < colMin[c]!) colMin[c] = v;
    }
  }
}

function extend(
  box: [number, number, number, number] | undefined,
  x: number,
  y: number,
): [number, number, number, number] {
  if (!box) return [x, y, x, y];
  if (x < box[0]) box[0] = x;
  if (y < box[1]) box[1] = y;
  if (x > box[2]) box[2] = x;
  if (y > box[3]) box[3] = y;
  return box;
}

/** Column sums `Aᵀ1` and the Gram matrix `AᵀA` (dense 256², banded) of an axis operator `A`. */
function gram(
  axis: SparseAxis,
  outSize: number,
): { colSum: Float64Array; gram: Float64Array; bandwidth: number } {
  const { k, index, weight } = axis;
  const colSum = new Float64Array(SIDE);
  const g = new Float64Array(SIDE * SIDE);
  let bandwidth = 0;
  for (let o = 0; o < outSize; o++) {
    for (let t = o * k; t < o * k + k; t++) {
      const wt = weight[t]!;
      if (wt === 0) continue;
      const it = index[t]!;
      colSum[it]! += wt;
      for (let u = o * k; u < o * k + k; u++) {
        const wu = weight[u]!;
        if (wu === 0) continue;
        const iu = index[u]!;
        g[it * SIDE + iu]! += wt * wu;
        bandwidth = Math.max(bandwidth, Math.abs(it - iu));
      }
    }
  }
  return { colSum, gram: g, bandwidth };
}

/**
 * `bilinearResize(src, 1, inH, inW, outH, outW)` at output rows `outRows` × columns `outCols` only
 * (default: all), bit for bit: the source is read through `at(rows, cols)` (row-major
 * `rows.length × cols.length` values) at just the rows and columns the taps touch, and combined in
 * the literal order (rows first when the height shrinks, float32 intermediate).
 */
export function bilinearResizeSampled(
  at: (rows: Int32Array, cols: Int32Array) => Float32Array,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
  outRows: Int32Array = iota(outH),
  outCols: Int32Array = iota(outW),
): Float32Array {
  const rt = toSparse(torchBilinearTaps(inH, outH), 2);
  const ct = toSparse(torchBilinearTaps(inW, outW), 2);
  const srcRows = usedTaps(rt, outRows, inH);
  const srcCols = usedTaps(ct, outCols, inW);
  const src = at(srcRows.list, srcCols.list);
  const nr = outRows.length;
  const nc = outCols.length;
  const sw = srcCols.list.length;
  const out = new Float32Array(nr * nc);
  if (outH < inH) {
    const tmp = new Float32Array(nr * sw);
    for (let i = 0; i < nr; i++) {
      const t = outRows[i]! * 2;
      const p0 = srcRows.pos[rt.index[t]!]! * sw;
      const p1 = srcRows.pos[rt.index[t + 1]!]! * sw;
      const w0 = rt.weight[t]!;
      const w1 = rt.weight[t + 1]!;
      for (let c = 0; c < sw; c++) tmp[i * sw + c] = w0 * src[p0 + c]! + w1 * src[p1 + c]!;
    }
    for (let i = 0; i < nr; i++) {
      for (let j = 0; j < nc; j++) {
        const t = outCols[j]! * 2;
        let acc = 0;
        acc += ct.weight[t]! * tmp[i * sw + srcCols.pos[ct.index[t]!]!]!;
        acc += ct.weight[t + 1]! * tmp[i * sw + srcCols.pos[ct.index[t + 1]!]!]!;
        out[i * nc + j] = acc;
      }
    }
    return out;
  }
  const sh = srcRows.list.length;
  const tmp = new Float32Array(sh * nc);
  for (let r = 0; r < sh; r++) {
    for (let j = 0; j < nc; j++) {
      const t = outCols[j]! * 2;
      let acc = 0;
      acc += ct.weight[t]! * src[r * sw + srcCols.pos[ct.index[t]!]!]!;
      acc += ct.weight[t + 1]! * src[r * sw + srcCols.pos[ct.index[t + 1]!]!]!;
      tmp[r * nc + j] = acc;
    }
  }
  for (let i = 0; i < nr; i++) {
    const t = outRows[i]! * 2;
    const p0 = srcRows.pos[rt.index[t]!]! * nc;
    const p1 = srcRows.pos[rt.index[t + 1]!]! * nc;
    const w0 = rt.weight[t]!;
    const w1 = rt.weight[t + 1]!;
    for (let j = 0; j < nc; j++) out[i * nc + j] = w0 * tmp[p0 + j]! + w1 * tmp[p1 + j]!;
  }
  return out;
}

/** `0, 1, …, n − 1`. */
export function iota(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/** Sorted distinct source indices the 2-tap operator reads for `outs`, and their positions. */
function usedTaps(axis: SparseAxis, outs: Int32Array, inSize: number): { list: Int32Array; pos: Int32Array } {
  const used = new Uint8Array(inSize);
  for (let i = 0; i < outs.length; i++) {
    used[axis.index[outs[i]! * 2]!] = 1;
    used[axis.index[outs[i]! * 2 + 1]!] = 1;
  }
  const pos = new Int32Array(inSize).fill(-1);
  const list: number[] = [];
  for (let s = 0; s < inSize; s++) {
    if (used[s]) {
      pos[s] = list.length;
      list.push(s);
    }
  }
  return { list: Int32Array.from(list), pos };
}
