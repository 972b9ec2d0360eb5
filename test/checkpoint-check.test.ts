// The checkpoint check's tolerance (sam/checkpoint-check.ts): derived from the precision the encoder
// computes its positional output in, so that a float16 or int8 encoder of the decoder's checkpoint
// passes and another checkpoint's does not. The exported encoders themselves are checked end to end
// in export-encoders.test.ts.

import { describe, expect, it } from "vitest";
import { randomDecoderWeights } from "../src/segment/models/random-weights.js";
import type { ValuePrecision } from "../src/segment/onnx/value-precision.js";
import {
  checkCheckpointMatch,
  checkpointTolerance,
  FLOAT32_TOLERANCE,
} from "../src/segment/sam/checkpoint-check.js";
import { densePositionalEncoding } from "../src/segment/sam/positional-encoding.js";
import { POSITIONAL_EMBEDDING_KEY } from "../src/segment/sam/safetensors.js";
import { float16BitsToFloat32, float32ToFloat16Bits } from "../src/util/float16.js";
import type { Tensor } from "../src/util/tensor.js";

const weights = (seed: number) => randomDecoderWeights({ embedDim: 32, seed });
const gOf = (seed: number): Tensor => weights(seed).get(POSITIONAL_EMBEDDING_KEY)!;

describe("checkpointTolerance", () => {
  it("follows the documented bound: 2π·(εo·(S + 2·g·(1 + εo)) + 4·εa·S) + εa, at least 1e-4", () => {
    // S = max(|0.5| + |−1|, |2| + |0.25|) = 2.25, g = 2.
    const g: Tensor = { data: new Float32Array([0.5, 2, -1, 0.25]), dims: [2, 2] };
    const u = 2 ** -11;
    expect(checkpointTolerance({ g, precision: "float16" })).toBeCloseTo(
      2 * Math.PI * (u * (2.25 + 4 * (1 + u)) + 4 * u * 2.25) + u,
      12,
    );
    const q = 1 / 126;
    expect(checkpointTolerance({ g, precision: "int8" })).toBeCloseTo(
      2 * Math.PI * (q * (2.25 + 4 * (1 + q)) + 4 * 2 ** -24 * 2.25) + 2 ** -24,
      12,
    );
    expect(checkpointTolerance({ g, precision: "float32" })).toBe(FLOAT32_TOLERANCE);
  });

  it("grows as the precision drops; an unknown precision gets the lowest's", () => {
    const g = gOf(1);
    const order: ValuePrecision[] = ["float32", "float16", "int8", "bfloat16"];
    const tolerances = order.map((precision) => checkpointTolerance({ g, precision }));
    for (let i = 1; i < tolerances.length; i++) expect(tolerances[i]!).toBeGreaterThan(tolerances[i - 1]!);
    expect(checkpointTolerance({ g })).toBe(tolerances[3]);
  });

  it("refuses a G that is not [2, C/2]", () => {
    expect(() => checkpointTolerance({ g: { data: new Float32Array(6), dims: [3, 2] } })).toThrow(
      "Expected a [2, C/2] Gaussian matrix for G but received [3,2]",
    );
  });
});

describe("checkCheckpointMatch with the encoder's precision", () => {
  /** The dense encoding of G as a float16 export stores it: each value rounded to float16. */
  function storedAsFloat16(g: Tensor): Tensor {
    const pe = densePositionalEncoding(g);
    return { data: float16BitsToFloat32(float32ToFloat16Bits(pe.data)), dims: pe.dims };
  }

  it("accepts a float16 encoder of the same checkpoint, which the float32 tolerance refuses", () => {
    const encoderPositional = storedAsFloat16(gOf(1));
    const decoderWeights = weights(1);
    const found = checkCheckpointMatch({ encoderPositional, decoderWeights, precision: "float16" });
    expect(found.maxAbsDiff).toBeGreaterThan(FLOAT32_TOLERANCE);
    expect(found.maxAbsDiff).toBeLessThanOrEqual(2 ** -12);
    expect(found.tolerance).toBe(checkpointTolerance({ g: gOf(1), precision: "float16" }));
    expect(() => checkCheckpointMatch({ encoderPositional, decoderWeights, precision: "float32" })).toThrow(
      /come from different SAM checkpoints/,
    );
  });

  it("refuses another checkpoint at every precision, in one line naming both files and the precision", () => {
    const encoderPositional = storedAsFloat16(gOf(2));
    for (const precision of ["float32", "float16", "bfloat16", "int8", undefined] as const) {
      let message = "";
      try {
        checkCheckpointMatch({
          encoderPositional,
          decoderWeights: weights(1),
          encoderPath: "enc.onnx",
          decoderPath: "dec.safetensors",
          precision,
        });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(
        /^enc\.onnx and dec\.safetensors come from different SAM checkpoints \(positional encodings differ by up to [\d.]+e[+-]\d+, more than the [\d.]+e[+-]\d+ /,
      );
      expect(message).toContain(
        precision === undefined ? "an encoder can explain)" : `a ${precision} encoder`,
      );
      expect(message.split("\n")).toHaveLength(1);
    }
  });
});
