// Session options of ort.ts that change how onnxruntime holds a model, not what it computes.

import { describe, expect, it } from "vitest";
import { buildVitBlockTestGraph } from "../bench/models/vit-encoder.js";
import { createSession, fromOrt, ortFloat32, type SessionOptions } from "../src/segment/sam/ort.js";

async function runBlock(bytes: Uint8Array, x: Float32Array, options: SessionOptions): Promise<Float32Array> {
  const session = await createSession(bytes, { threads: 1, ...options });
  try {
    const out = await session.run({ x: ortFloat32(x, [1, 6, 6, 16]) });
    return fromOrt(out.y!).data;
  } finally {
    await session.release();
  }
}

describe("createSession: prepackWeights", () => {
  it("gives the same block output with and without weight pre-packing (float rounding apart)", async () => {
    const { bytes } = buildVitBlockTestGraph({ grid: 6, dim: 16, heads: 2, mlpDim: 32, window: 0 }, 5);
    const x = new Float32Array(6 * 6 * 16).map((_, i) => Math.sin(i * 0.37));
    const packed = await runBlock(bytes, x, {});
    const unpacked = await runBlock(bytes, x, { prepackWeights: false });
    const again = await runBlock(bytes, x, { prepackWeights: true });
    expect(again).toEqual(packed);
    expect(unpacked.length).toBe(packed.length);
    let max = 0;
    for (let i = 0; i < packed.length; i++) max = Math.max(max, Math.abs(packed[i]! - unpacked[i]!));
    expect(max).toBeLessThan(1e-5);
  });
});
