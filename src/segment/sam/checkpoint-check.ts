// The check that an image encoder and decoder weights come from the same SAM checkpoint: the
// encoder's positional output against the dense encoding computed from the decoder's matrix G,
// within what the precision the encoder computes that output in can explain.

import { UserError } from "../../errors.js";
import type { Tensor } from "../../util/tensor.js";
import type { ValuePrecision } from "../onnx/value-precision.js";
import type { DecoderWeights } from "./decoder-types.js";
import { pointEncoding } from "./positional-encoding.js";
import { POSITIONAL_EMBEDDING_KEY, TIED_POSITIONAL_EMBEDDING_KEY } from "./safetensors.js";

/**
 * The smallest tolerance: float32 arithmetic (and a float32 sine of a phase up to ~40 rad) stays
 * well inside it, and two checkpoints' encodings differ by far more.
 */
export const FLOAT32_TOLERANCE = 1e-4;

/**
 * Error of the operands of the positional path (the grid coordinates and G as the encoder holds
 * them), relative to their largest magnitude: the unit roundoff of a float format; for 8-bit
 * quantization half a step of the coarsest grid quantize_dynamic writes (int8 with reduce_range:
 * the values ±max on [−63, 63], a step of max/63, half a step max/126; uint8, whose grid spans the
 * range from min(0, lo) to max(0, hi), and full-range int8 are finer).
 */
const OPERAND_ERROR: Readonly<Record<ValuePrecision, number>> = {
  float32: 2 ** -24,
  float16: 2 ** -11,
  bfloat16: 2 ** -8,
  int8: 1 / 126,
};

/**
 * Unit roundoff of the arithmetic that follows (the product with G, the 2π scaling, sin/cos and the
 * stored result). Dynamic quantization dequantizes the integer product into float32, so its
 * arithmetic is float32.
 */
const ARITHMETIC_ERROR: Readonly<Record<ValuePrecision, number>> = {
  float32: 2 ** -24,
  float16: 2 ** -11,
  bfloat16: 2 ** -8,
  int8: 2 ** -24,
};

/**
 * Largest difference between an encoder's positional output and the float64 dense encoding of G
 * (persam-spec §2.4) that the precision the encoder computes it in can explain; anything larger
 * means another checkpoint. Each output value is sin θ or cos θ with θ = 2π(a·G[0,k] + b·G[1,k])
 * and grid coordinates |a|, |b| < 1, so an error δ in θ moves it by at most δ. With
 * S = max_k(|G[0,k]| + |G[1,k]|) and g = max|G| (from the decoder's G, which a matching encoder
 * holds), εo and εa as in OPERAND_ERROR and ARITHMETIC_ERROR:
 * - operands: coordinates off by up to εo move a·G[0,k] + b·G[1,k] by ≤ εo·S; G off by up to
 *   εo·g moves it by ≤ 2·εo·g, and by ≤ 2·εo·g·(1 + εo) with the product of both errors;
 * - arithmetic: the two products and their sum (≤ 2·εa·S), 2π and its product with the sum (two
 *   more roundings of a value ≤ 2π·S), and the stored sine or cosine (≤ εa, as |value| ≤ 1);
 * so `δ ≤ 2π·(εo·(S + 2·g·(1 + εo)) + 4·εa·S) + εa`, and never below {@link FLOAT32_TOLERANCE}.
 * An encoder that stores the encoding as a float16 constant (error ≤ 2^-12) is inside its float16
 * bound. Another checkpoint's phases are unrelated to G's, so its encodings differ by up to 2. For
 * G ~ N(0, 1) of SAM's shape [2, 128] (S ≈ 5, g ≈ 3) the bound is ≈ 0.1 for float16, ≈ 0.55 for
 * int8 and ≈ 0.77 for bfloat16; an encoder whose precision is unknown gets the largest bound.
 * @param params.precision what the encoder computes its positional output in
 *   (onnx/value-precision.ts). @default unknown
 * @throws {Error} when `g` is not a `[2, C/2]` matrix.
 */
export function checkpointTolerance(params: { g: Tensor; precision?: ValuePrecision | undefined }): number {
  const { g } = params;
  const half = g.dims[1];
  if (g.dims.length !== 2 || g.dims[0] !== 2 || half === undefined || g.data.length !== 2 * half) {
    throw new Error(`Expected a [2, C/2] Gaussian matrix for G but received [${g.dims.join(",")}]`);
  }
  let s = 0;
  let gmax = 0;
  for (let k = 0; k < half; k++) {
    const x = Math.abs(g.data[k]!);
    const y = Math.abs(g.data[half + k]!);
    s = Math.max(s, x + y);
    gmax = Math.max(gmax, x, y);
  }
  const bound = (precision: ValuePrecision): number => {
    const eo = OPERAND_ERROR[precision];
    const ea = ARITHMETIC_ERROR[precision];
    return 2 * Math.PI * (eo * (s + 2 * gmax * (1 + eo)) + 4 * ea * s) + ea;
  };
  const precisions = params.precision ? [params.precision] : (Object.keys(OPERAND_ERROR) as ValuePrecision[]);
  return Math.max(FLOAT32_TOLERANCE, ...precisions.map(bound));
}

/**
 * Check that an encoder and a decoder come from the same checkpoint (hub.md §1.5): the encoder's
 * `image_positional_embeddings[0]` must equal the dense positional encoding computed from the
 * decoder's Gaussian matrix G (persam-spec §2.4), which differs between checkpoints, to within
 * what the encoder's precision explains ({@link checkpointTolerance}).
 * @param params.precision what the encoder computes its positional output in
 *   (onnx/value-precision.ts). @default unknown: the largest bound
 * @param params.tolerance largest allowed absolute difference. @default checkpointTolerance(G, precision)
 * @returns the largest absolute difference found and the tolerance applied
 * @throws {UserError} naming both files when they do not match
 */
export function checkCheckpointMatch(params: {
  /** `[1, C, S, S]` or `[C, S, S]` positional output of the encoder. */
  encoderPositional: Tensor;
  decoderWeights: DecoderWeights;
  encoderPath?: string;
  decoderPath?: string;
  precision?: ValuePrecision | undefined;
  tolerance?: number;
}): { maxAbsDiff: number; tolerance: number } {
  const enc = params.encoderPositional;
  const dims = enc.dims.length === 4 ? enc.dims.slice(1) : enc.dims;
  const [channels, rows, cols] = dims;
  const encoderName = params.encoderPath ?? "the encoder";
  const decoderName = params.decoderPath ?? "the decoder weights";
  const g =
    params.decoderWeights.get(POSITIONAL_EMBEDDING_KEY) ??
    params.decoderWeights.get(TIED_POSITIONAL_EMBEDDING_KEY);
  if (!g) {
    throw new UserError(`${decoderName} has no ${POSITIONAL_EMBEDDING_KEY}`, {
      hint: "use a complete Hugging Face transformers SAM checkpoint",
    });
  }
  if (
    dims.length !== 3 ||
    channels === undefined ||
    rows === undefined ||
    cols === undefined ||
    rows !== cols
  ) {
    throw new UserError(`${encoderName} gave positional embeddings of shape [${enc.dims.join(",")}]`, {
      hint: "expected [1, C, S, S] from a SAM vision encoder export",
    });
  }
  if (g.dims[1] === undefined || 2 * g.dims[1] !== channels) {
    throw new UserError(
      `${encoderName} (${channels} channels) and ${decoderName} (G [${g.dims.join(",")}]) are not the same SAM checkpoint`,
      { hint: "use the encoder and decoder of one model (persam-db models list)" },
    );
  }
  const side = rows;
  const cells = side * side;
  let maxAbsDiff = 0;
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      const pe = pointEncoding(g, (c + 0.5) / side, (r + 0.5) / side);
      const p = r * side + c;
      for (let k = 0; k < channels; k++) {
        const diff = Math.abs(pe[k]! - enc.data[k * cells + p]!);
        if (!(diff <= maxAbsDiff)) maxAbsDiff = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff;
      }
    }
  }
  const tolerance = params.tolerance ?? checkpointTolerance({ g, precision: params.precision });
  if (maxAbsDiff > tolerance) {
    const what = params.precision === undefined ? "an encoder" : `a ${params.precision} encoder`;
    throw new UserError(
      `${encoderName} and ${decoderName} come from different SAM checkpoints (positional encodings differ by up to ${maxAbsDiff.toExponential(2)}, more than the ${tolerance.toExponential(2)} ${what} can explain)`,
      { hint: "use the encoder and decoder of one model (persam-db models list), never mix checkpoints" },
    );
  }
  return { maxAbsDiff, tolerance };
}
