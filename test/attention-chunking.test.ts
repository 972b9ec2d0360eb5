// The load-time attention rewrite (onnx/attention-chunking.ts): on our generator's attention, on a
// differently exported one (3-D batch × heads scores, the rel-pos sum materialised, Casts around the
// softmax, as HF transformers' SamVisionAttention exports) and on a torch.onnx.export graph of SAM's
// ViT attention it gives the same outputs to the bit; it leaves graphs without the pattern
// untouched; SamEncoder uses it by default.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  buildVitBlockTestGraph,
  ensureVitEncoderModel,
  type VitConfig,
} from "../bench/models/vit-encoder.js";
import { attentionWarning } from "../src/cli/model-options.js";
import { chunkAttention } from "../src/segment/onnx/attention-chunking.js";
import {
  chunkAttentionFile,
  chunkAttentionFileInWorker,
} from "../src/segment/onnx/attention-chunking-file.js";
import { GraphBuilder } from "../src/segment/onnx/graph-builder.js";
import { readModel } from "../src/segment/onnx/proto-reader.js";
import { SamEncoder } from "../src/segment/sam/encoder-session.js";
import { createSession, fromOrt, ortFloat32 } from "../src/segment/sam/ort.js";

const dir = mkdtempSync(join(tmpdir(), "attention-chunking-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function seeded(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

async function run(bytes: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>) {
  const session = await createSession(bytes, { threads: 2 });
  try {
    const ortFeeds = Object.fromEntries(
      Object.entries(feeds).map(([k, v]) => [k, ortFloat32(v.data, v.dims)] as const),
    );
    const out = await session.run(ortFeeds);
    return fromOrt(out[session.outputNames[0]!]!).data;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const opTypes = (bytes: Uint8Array): string[] => readModel(bytes).graph.nodes.map((n) => n.opType);

/**
 * An attention exported the way HF transformers' SamVisionAttention is: q, k, v `[B·H, N, hd]`,
 * `rel = Reshape(rel_h[..., None] + rel_w[..., None, :])` built whole (as large as the scores),
 * scores `[B·H, N, N]`, Softmax between two Casts, then `[B·H, N, hd]`.
 */
function hfStyleAttention(heads: number, side: number, hd: number): Uint8Array {
  const g = new GraphBuilder("hf_style_attention_TEST");
  const n = side * side;
  const q = g.input("q", "float", [heads, n, hd]);
  const k = g.input("k", "float", [heads, n, hd]);
  const v = g.input("v", "float", [heads, n, hd]);
  const relH = g.input("rel_h", "float", [heads, side, side, side]);
  const relW = g.input("rel_w", "float", [heads, side, side, side]);
  const scaled = g.op("Mul", [q, g.constant(1 / Math.sqrt(hd))]);
  const scores = g.op("MatMul", [scaled, g.op("Transpose", [k], { perm: [0, 2, 1] })]);
  const relSum = g.op("Add", [
    g.op("Unsqueeze", [relH, g.constantInt64([4])]),
    g.op("Unsqueeze", [relW, g.constantInt64([3])]),
  ]); // [B·H, qh, qw, kh, kw]
  const biased = g.op("Add", [scores, g.op("Reshape", [relSum, g.constantInt64([heads, n, n])])]);
  const probs = g.op("Cast", [g.op("Softmax", [g.op("Cast", [biased], { to: 1 })], { axis: -1 })], { to: 1 });
  const out = g.op("MatMul", [probs, v]);
  g.output(out, "out", "float", [heads, n, hd]);
  return g.toModel({ opsetVersion: 17 });
}

describe("chunkAttention", () => {
  it("rewrites our generator's global attention and gives the same block output to the bit", async () => {
    const shape = { grid: 8, dim: 24, heads: 4, mlpDim: 32, window: 0 };
    const { bytes } = buildVitBlockTestGraph(shape, 3);
    const x = { data: seeded(8 * 8 * 24, 11), dims: [1, 8, 8, 24] };
    const expected = await run(bytes, { x });
    for (const chunks of [2, 3, 4, 12]) {
      const r = chunkAttention(bytes, { chunks, minScoreBytes: 0 });
      expect(r.rewritten).toBe(1);
      expect(r.large).toBe(1);
      // Q·Kᵀ, the scale Mul and the Kᵀ Transpose fused into it, 2 Reshapes, 2 rel-pos Adds,
      // Softmax, probabilities·V.
      expect(r.removedNodes).toBe(9);
      const types = opTypes(r.bytes);
      expect(types.filter((t) => t === "Softmax")).toHaveLength(Math.min(chunks, 4));
      expect(types.filter((t) => t === "Concat")).toHaveLength(1);
      expect(maxAbsDiff(await run(r.bytes, { x }), expected)).toBe(0);
    }
  });

  it("recognises an HF-style export structurally and pulls the materialised rel-pos sum in", async () => {
    const heads = 6;
    const side = 6;
    const hd = 5;
    const n = side * side;
    const bytes = hfStyleAttention(heads, side, hd);
    const feeds = {
      q: { data: seeded(heads * n * hd, 1), dims: [heads, n, hd] },
      k: { data: seeded(heads * n * hd, 2), dims: [heads, n, hd] },
      v: { data: seeded(heads * n * hd, 3), dims: [heads, n, hd] },
      rel_h: { data: seeded(heads * side ** 3, 4), dims: [heads, side, side, side] },
      rel_w: { data: seeded(heads * side ** 3, 5), dims: [heads, side, side, side] },
    };
    const expected = await run(bytes, feeds);
    const r = chunkAttention(bytes, { chunks: 4, minScoreBytes: 0 });
    expect(r.rewritten).toBe(1);
    const types = opTypes(r.bytes);
    // The sum of the two rel-pos terms is as large as the scores: it is built per chunk too.
    expect(types.filter((t) => t === "Add")).toHaveLength(2 * 4);
    expect(types.filter((t) => t === "Slice")).toHaveLength(5 * 4); // q, k, v, rel_h, rel_w
    expect(maxAbsDiff(await run(r.bytes, feeds), expected)).toBe(0);
  });

  it("leaves a graph without the pattern untouched and says why", () => {
    const g = new GraphBuilder("softmax_over_rows_TEST");
    const a = g.input("a", "float", [4, 16, 16]);
    const p = g.op("Softmax", [g.op("MatMul", [a, a])], { axis: 1 }); // not the last axis
    g.output(g.op("MatMul", [p, a]), "y", "float", [4, 16, 16]);
    const bytes = g.toModel();
    const r = chunkAttention(bytes, { chunks: 2, minScoreBytes: 0 });
    expect(r.rewritten).toBe(0);
    expect(r.large).toBe(1); // a candidate, left whole
    expect(r.bytes).toBe(bytes);
    expect(r.notes.join(" ")).toMatch(/not the last/);

    const small = chunkAttention(
      buildVitBlockTestGraph({ grid: 4, dim: 8, heads: 2, mlpDim: 8, window: 0 }).bytes,
      {
        chunks: 2,
      },
    );
    expect(small.rewritten).toBe(0); // scores below the default 64 MiB
    expect(small.large).toBe(0);
    expect(small.notes).toEqual(["no attention with a large score tensor found"]);
    expect(() => chunkAttention(bytes, { chunks: 0 })).toThrow(/positive integer/);
    expect(chunkAttention(new Uint8Array([1, 2, 3]), { chunks: 2 }).large).toBe(-1); // not examined
  });

  it("refuses a region whose scores are also used elsewhere", () => {
    const g = new GraphBuilder("scores_escape_TEST");
    const q = g.input("q", "float", [4, 16, 8]);
    const scores = g.op("MatMul", [q, g.op("Transpose", [q], { perm: [0, 2, 1] })]);
    const p = g.op("Softmax", [scores], { axis: -1 });
    g.output(g.op("MatMul", [p, q]), "y", "float", [4, 16, 8]);
    g.output(scores, "scores", "float", [4, 16, 16]);
    const r = chunkAttention(g.toModel(), { chunks: 2, minScoreBytes: 0 });
    expect(r.rewritten).toBe(0);
    expect(r.notes.join(" ")).toMatch(/no Q·Kᵀ MatMul|used outside/);
  });
});

describe("chunkAttention on a torch.onnx.export graph (SAM's ViT attention in miniature)", () => {
  // make-fixtures.py: 8×8 tokens, 4 heads; block 0 attends in 3×3 windows (36 = 4 windows × 4 heads
  // along the batch × heads axis), block 1 globally (4), both with decomposed rel-pos bias (Einsum).
  const fixture = join(import.meta.dirname, "fixtures", "onnx", "torch-attention.onnx");
  const feeds = { pixel_values: { data: seeded(3 * 32 * 32, 21, 2), dims: [1, 3, 32, 32] } };

  it("examines the exported graph and rewrites both attentions with the same output to the bit", async () => {
    const bytes = readFileSync(fixture);
    const expected = await run(bytes, feeds);
    for (const chunks of [2, 4]) {
      const r = chunkAttention(bytes, { chunks, minScoreBytes: 0 });
      expect(r.notes).toEqual([
        `rewrote 2 attention(s) into ≤ ${chunks} chunks along the batch × heads axis`,
      ]);
      expect([r.rewritten, r.large]).toEqual([2, 2]);
      expect(opTypes(r.bytes).filter((t) => t === "Softmax")).toHaveLength(2 * chunks);
      expect(maxAbsDiff(await run(r.bytes, feeds), expected)).toBe(0);
    }
  });

  it("names the external data files of a model it leaves alone", () => {
    const bytes = readFileSync(join(import.meta.dirname, "fixtures", "onnx", "everything.onnx"));
    const r = chunkAttention(bytes, { chunks: 2, minScoreBytes: 0 });
    expect(r.large).toBe(-1);
    expect(r.notes).toEqual([
      "not rewritten: the model keeps weights in external data files (everything-weights-a.bin, everything-weights-b.bin)",
    ]);
  });
});

describe("chunkAttentionFile", () => {
  it("writes the rewritten model as chunkAttention assembles it, and nothing when there is nothing to do", async () => {
    const { bytes } = buildVitBlockTestGraph({ grid: 8, dim: 24, heads: 4, mlpDim: 32, window: 0 }, 3);
    const input = join(dir, "block.onnx");
    writeFileSync(input, bytes);
    const output = join(dir, "block.chunked.onnx");
    // Large scores only (64 MiB): this block's are tiny, so nothing is written.
    const none = await chunkAttentionFileInWorker({ input, output, chunks: 4 });
    expect(none.rewritten).toBe(0);
    expect(existsSync(output)).toBe(false);
    const expected = chunkAttention(bytes, { chunks: 4, minScoreBytes: 0 });
    expect(expected.parts.length).toBeGreaterThan(1);
    expect(Buffer.from(expected.bytes).equals(Buffer.concat(expected.parts))).toBe(true);
    const written = chunkAttentionFile({ input, output, chunks: 4, minScoreBytes: 0 });
    expect(written.rewritten).toBe(1);
    expect(readFileSync(output).equals(Buffer.from(expected.bytes))).toBe(true);
  });
});

describe("SamEncoder attention chunking", () => {
  const TINY: VitConfig = {
    embedDim: 24,
    depth: 2,
    heads: 2,
    mlpDim: 48,
    windowSize: 14,
    globalAttnIndexes: [1],
    outChans: 256,
  };

  it("chunks a real-size global attention by default, with the same embedding as the graph as exported", async () => {
    const path = ensureVitEncoderModel({ preset: TINY, seed: 4 }, dir);
    const pixels = { data: seeded(3 * 1024 * 1024, 5, 2), dims: [1, 3, 1024, 1024] };
    const chunked = await SamEncoder.create({ path, threads: 2 });
    const plain = await SamEncoder.create({ path, threads: 2, attentionChunks: 1 });
    try {
      expect(chunked.loadNotes[0]).toMatch(/rewrote 1 attention/);
      expect(chunked.attentionsKeptWhole).toBe(0);
      expect(plain.loadNotes).toEqual(["attention chunking off"]);
      expect(plain.attentionsKeptWhole).toBe(0); // turned off on purpose: nothing to warn about
      const a = await chunked.encode(pixels);
      const b = await plain.encode(pixels);
      expect(maxAbsDiff(a.embedding.data, b.embedding.data)).toBe(0);
    } finally {
      await chunked.dispose();
      await plain.dispose();
    }
  });
});

describe("attentionWarning (the CLI's line when the encoder's attention is not chunked)", () => {
  const base = {
    path: "/models/encoder.onnx",
    loadNotes: ["Softmax s1: softmax axis 1 is not the last, left alone"],
  };
  it("says nothing when every large attention is chunked, there is none, or chunking is off", () => {
    expect(attentionWarning({ ...base, attentionsKeptWhole: 0 })).toBeUndefined();
  });
  it("names the file, the count and the first reason", () => {
    expect(attentionWarning({ ...base, attentionsKeptWhole: 2 })).toBe(
      "/models/encoder.onnx: 2 large attention(s) run whole (Softmax s1: softmax axis 1 is not the last, left alone); expect up to ~768 MiB more memory per attention while a photo is encoded (SAM's global attention)",
    );
    const partly = {
      path: "/m.onnx",
      attentionsKeptWhole: 1,
      loadNotes: [
        "rewrote 3 attention(s) into ≤ 12 chunks along the batch × heads axis",
        "Softmax s4: input shape unknown, left alone",
      ],
    };
    expect(attentionWarning(partly)).toContain(
      "1 large attention(s) run whole (Softmax s4: input shape unknown",
    );
    expect(
      attentionWarning({
        path: "/m.onnx",
        attentionsKeptWhole: -1,
        loadNotes: ["not rewritten: opset 11 < 13"],
      }),
    ).toContain("its attention could not be examined (not rewritten: opset 11 < 13)");
  });
});
