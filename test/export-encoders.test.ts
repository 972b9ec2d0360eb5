// Encoders shaped like the real Hub exports (test/support/export-encoders.ts: the positional output
// as a float16 constant, computed in the graph, int8-quantized, all float16): graph checks and the
// attention rewrite examine each one, SamEncoder finds the precision of its positional output, and
// the checkpoint check accepts the decoder of its checkpoint and refuses the decoder of another,
// with the margin between the two shown on several random checkpoints.

import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkAttention } from "../src/segment/onnx/attention-chunking.js";
import { readModel } from "../src/segment/onnx/proto-reader.js";
import { inferShapes } from "../src/segment/onnx/shape-inference.js";
import { valuePrecision } from "../src/segment/onnx/value-precision.js";
import { checkCheckpointMatch, checkpointTolerance } from "../src/segment/sam/checkpoint-check.js";
import { SamEncoder } from "../src/segment/sam/encoder-session.js";
import { POSITIONAL_EMBEDDING_KEY } from "../src/segment/sam/safetensors.js";
import { mulberry32 } from "../src/util/seeded-random.js";
import type { Tensor } from "../src/util/tensor.js";
import {
  EXPORT_KINDS,
  EXPORT_PRECISION,
  type ExportKind,
  type ExportModelFiles,
  writeExportModel,
} from "./support/export-encoders.js";

let dir: string;
/** Three random checkpoints of width 32 (the tiny model's) and two of SAM's width 256. */
let models: ExportModelFiles[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "persam-export-encoders-"));
  models = [];
  for (const seed of [1, 2, 3]) models.push(await writeExportModel({ dir, embedDim: 32, seed }));
  for (const seed of [4, 5]) models.push(await writeExportModel({ dir, embedDim: 256, seed }));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function pixels(seed: number): Tensor {
  const next = mulberry32(seed);
  const data = new Float32Array(3 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = next() * 4 - 2;
  return { data, dims: [1, 3, 1024, 1024] };
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe.each(EXPORT_KINDS)("the %s export", (kind: ExportKind) => {
  it("has optimum's names, a symbolic batch axis and a positional output of the expected precision", () => {
    const model = readModel(readFileSync(models[0]!.encoders[kind]));
    expect(model.graph.inputs.map((v) => [v.name, v.elemType, v.dims])).toEqual([
      ["pixel_values", 1, ["batch_size", 3, 1024, 1024]],
    ]);
    expect(model.graph.outputs.map((v) => [v.name, v.elemType, v.dims])).toEqual([
      ["image_embeddings", 1, ["batch_size", 32, 64, 64]],
      ["image_positional_embeddings", 1, ["batch_size", 32, 64, 64]],
    ]);
    expect(valuePrecision(model, "image_positional_embeddings")).toBe(EXPORT_PRECISION[kind]);
    const ops = new Set(model.graph.nodes.map((n) => n.opType));
    if (kind === "fp16-constant") expect(ops).not.toContain("CumSum");
    else for (const op of ["ConstantOfShape", "CumSum", "Sin", "Cos", "Tile"]) expect(ops).toContain(op);
    if (kind === "int8")
      for (const op of ["DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"]) expect(ops).toContain(op);
  });

  it("goes through shape inference and the attention rewrite (one large attention, rewritten)", () => {
    const bytes = readFileSync(models[0]!.encoders[kind]);
    const shapes = inferShapes(bytes);
    expect(shapes.get("image_embeddings")).toEqual([1, 32, 64, 64]);
    expect(shapes.get("image_positional_embeddings")).toEqual([1, 32, 64, 64]);
    const softmax = readModel(bytes).graph.nodes.find((n) => n.opType === "Softmax")!;
    expect(shapes.get(softmax.inputs[0]!)).toEqual([1, 2, 4096, 4096]);
    const result = chunkAttention(bytes, { chunks: 12 });
    expect(result.notes).toEqual(["rewrote 1 attention(s) into ≤ 12 chunks along the batch × heads axis"]);
    expect([result.rewritten, result.large]).toEqual([1, 1]);
  });

  it("gives the same outputs to the bit with the attention rewritten and as exported", async () => {
    const path = models[0]!.encoders[kind];
    const chunked = await SamEncoder.create({ path, threads: 2 });
    const whole = await SamEncoder.create({ path, threads: 2, attentionChunks: 1 });
    try {
      expect(chunked.loadNotes[0]).toMatch(/^rewrote 1 attention/);
      expect(chunked.attentionsKeptWhole).toBe(0);
      expect(chunked.positionalPrecision).toBe(EXPORT_PRECISION[kind]);
      expect(whole.positionalPrecision).toBe(EXPORT_PRECISION[kind]);
      const input = pixels(5);
      const a = await chunked.encode(input);
      const b = await whole.encode(input);
      expect(a.embedding.dims).toEqual([1, 32, 64, 64]);
      expect(sameBits(a.embedding.data, b.embedding.data)).toBe(true);
      expect(sameBits(a.positional!.data, b.positional!.data)).toBe(true);
    } finally {
      await chunked.dispose();
      await whole.dispose();
    }
  });
});

describe("the checkpoint check on the exports", () => {
  it("accepts every export with its own decoder and refuses every other checkpoint's, with a wide margin", async () => {
    const input = pixels(6);
    const lines: string[] = [];
    for (const kind of EXPORT_KINDS) {
      let largestCorrect = 0;
      let smallestWrong = Number.POSITIVE_INFINITY;
      let smallestTolerance = Number.POSITIVE_INFINITY;
      let largestTolerance = 0;
      for (const own of models) {
        const encoder = await SamEncoder.create({ path: own.encoders[kind], threads: 2, attentionChunks: 1 });
        const { positional } = await encoder.encode(input).finally(() => encoder.dispose());
        for (const other of models) {
          if (other.positionalMatrix.dims[1] !== own.positionalMatrix.dims[1]) continue;
          const decoderWeights = new Map([[POSITIONAL_EMBEDDING_KEY, other.positionalMatrix]]);
          const precision = encoder.positionalPrecision;
          const tolerance = checkpointTolerance({ g: other.positionalMatrix, precision });
          if (other === own) {
            // Accepted, with the precision SamModel passes.
            const found = checkCheckpointMatch({ encoderPositional: positional!, decoderWeights, precision });
            expect(found.tolerance).toBe(tolerance);
            largestCorrect = Math.max(largestCorrect, found.maxAbsDiff);
            smallestTolerance = Math.min(smallestTolerance, tolerance);
            largestTolerance = Math.max(largestTolerance, tolerance);
          } else {
            expect(() =>
              checkCheckpointMatch({ encoderPositional: positional!, decoderWeights, precision }),
            ).toThrow(/come from different SAM checkpoints/);
            const { maxAbsDiff } = checkCheckpointMatch({
              encoderPositional: positional!,
              decoderWeights,
              tolerance: Number.POSITIVE_INFINITY,
            });
            smallestWrong = Math.min(smallestWrong, maxAbsDiff);
          }
        }
      }
      lines.push(
        `${kind}: largest correct-pair error ${largestCorrect.toExponential(2)} ≤ tolerance ${smallestTolerance.toExponential(2)}…${largestTolerance.toExponential(2)} < smallest wrong-pair error ${smallestWrong.toExponential(2)}`,
      );
      // The margin: a correct pair stays well inside its bound, and another checkpoint several
      // times beyond the largest bound.
      expect(largestCorrect).toBeLessThan(smallestTolerance / 1.5);
      expect(smallestWrong).toBeGreaterThan(3 * largestTolerance);
    }
    console.log(lines.join("\n"));
  });
});
