// Graph parity: the ONNX decoder graph (decoder-graph.ts via SamDecoder) against the plain
// TypeScript ReferenceDecoder on the same random test weights, at a tiny width and at SAM's 256.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomDecoderWeights, randomEmbedding } from "../src/segment/models/random-weights.js";
import { SamDecoder } from "../src/segment/sam/decoder-session.js";
import type { DecoderInputs, DecoderOutputs } from "../src/segment/sam/decoder-types.js";
import type { Tensor } from "../src/util/tensor.js";
import { ReferenceDecoder } from "./support/reference-decoder.js";

/** |a − b| ≤ TOL·max(1, |b|) for every output value (b = reference). */
const TOL = 1e-4;

interface Errors {
  maxAbs: number;
  maxRel: number;
  worst: string;
  /** Largest |reference| value, to read the errors against. */
  scale: number;
}

function compare(name: string, graph: ArrayLike<number>, ref: ArrayLike<number>, into: Errors): void {
  expect(graph.length).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const a = graph[i]!;
    const b = ref[i]!;
    const abs = Math.abs(a - b);
    into.scale = Math.max(into.scale, Math.abs(b));
    const rel = abs / Math.max(1, Math.abs(b));
    if (!(abs <= into.maxAbs)) into.maxAbs = Number.isNaN(abs) ? Number.POSITIVE_INFINITY : abs;
    if (!(rel <= into.maxRel)) {
      into.maxRel = Number.isNaN(rel) ? Number.POSITIVE_INFINITY : rel;
      into.worst = `${name}[${i}] graph ${a} vs reference ${b}`;
    }
  }
}

function checkParity(label: string, graph: DecoderOutputs, ref: DecoderOutputs): void {
  expect(graph.lowResMasks.dims).toEqual([1, 4, 256, 256]);
  expect(graph.iouScores.length).toBe(4);
  const e: Errors = { maxAbs: 0, maxRel: 0, worst: "", scale: 0 };
  compare("low_res_masks", graph.lowResMasks.data, ref.lowResMasks.data, e);
  compare("iou_predictions", graph.iouScores, ref.iouScores, e);
  console.log(
    `${label}: max abs error ${e.maxAbs.toExponential(2)}, max rel error ${e.maxRel.toExponential(2)}, ` +
      `max |reference| ${e.scale.toPrecision(3)} (worst ${e.worst})`,
  );
  expect(e.maxRel, `${label}: ${e.worst}`).toBeLessThanOrEqual(TOL);
  // The random-weight logits are small (|b| < 1), where the bound above is absolute: also require
  // the error to be small against the outputs' own scale.
  expect(e.maxAbs, `${label}: error against the output scale`).toBeLessThanOrEqual(1e-3 * e.scale);
}

/** A deterministic pseudo-random stream for the test inputs. */
function stream(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Logits a previous pass could have produced: a smooth blob, positive inside, some noise. */
function maskLogits(seed: number): Tensor {
  const next = stream(seed);
  const data = new Float32Array(256 * 256);
  for (let r = 0; r < 256; r++)
    for (let c = 0; c < 256; c++) {
      const d = Math.hypot(r - 100, c - 140) / 40;
      data[r * 256 + c] = 6 * (1 - d) + (next() - 0.5);
    }
  return { data, dims: [1, 1, 256, 256] };
}

/** PerSAM-like attention map in (0, 1): sigmoid of a standardised smooth map. */
function attnSim(seed: number): Float32Array {
  const next = stream(seed);
  const out = new Float32Array(4096);
  for (let i = 0; i < 4096; i++) {
    const r = Math.floor(i / 64);
    const c = i % 64;
    const z = 2 * Math.sin(r / 9) * Math.cos(c / 7) + 0.3 * (next() - 0.5);
    out[i] = 1 / (1 + Math.exp(-z));
  }
  return out;
}

function targetEmbedding(c: number, seed: number): Float32Array {
  const next = stream(seed);
  return Float32Array.from({ length: c }, () => 2 * next() - 1);
}

const POINTS_WITH_PADDING = {
  pointCoords: new Float32Array([412.5, 300, 700, 655.25, 0, 0]),
  pointLabels: new Float32Array([1, 0, -1]),
};
const POINTS_AND_BOX = {
  pointCoords: new Float32Array([512, 400, 300, 250.5, 800, 700]),
  pointLabels: new Float32Array([1, 2, 3]),
};

function cases(c: number): [string, Omit<DecoderInputs, "imageEmbeddings">][] {
  return [
    ["points + padding", POINTS_WITH_PADDING],
    ["points + box", POINTS_AND_BOX],
    ["no prompt (N = 0)", { pointCoords: new Float32Array(0), pointLabels: new Float32Array(0) }],
    ["mask input", { ...POINTS_WITH_PADDING, maskInput: maskLogits(3) }],
    ["attn_sim", { ...POINTS_WITH_PADDING, attnSim: attnSim(4) }],
    ["target embedding", { ...POINTS_WITH_PADDING, targetEmbedding: targetEmbedding(c, 5) }],
    [
      "attn_sim + target (PerSAM)",
      { ...POINTS_WITH_PADDING, attnSim: attnSim(6), targetEmbedding: targetEmbedding(c, 7) },
    ],
    [
      "box + mask + attn_sim + target",
      {
        ...POINTS_AND_BOX,
        maskInput: maskLogits(8),
        attnSim: attnSim(9),
        targetEmbedding: targetEmbedding(c, 10),
      },
    ],
  ];
}

describe.each([
  { c: 32, seed: 11, caseNames: null as readonly string[] | null },
  // The reference needs a few seconds per pass at C = 256: the two extremes only.
  {
    c: 256,
    seed: 12,
    caseNames: ["points + padding", "box + mask + attn_sim + target"] as readonly string[],
  },
])("decoder graph vs reference at C = $c", ({ c, seed, caseNames }) => {
  const weights = randomDecoderWeights({ embedDim: c, seed });
  const imageEmbeddings = randomEmbedding(c, seed + 1);
  const reference = new ReferenceDecoder(weights);
  let decoder: SamDecoder;

  beforeAll(async () => {
    decoder = await SamDecoder.create({ weights });
  });
  afterAll(async () => {
    await decoder?.dispose();
  });

  const selected = cases(c).filter(([name]) => caseNames === null || caseNames.includes(name));
  it.each(selected)("%s", async (name, prompt) => {
    const inputs: DecoderInputs = { imageEmbeddings, ...prompt };
    const graph = await decoder.run(inputs);
    const ref = reference.runSync(inputs);
    checkParity(`C=${c} ${name}`, graph, ref);
  });

  it("the mask input and the PerSAM inputs change the outputs (they are wired)", async () => {
    const plain = await decoder.run({ imageEmbeddings, ...POINTS_WITH_PADDING });
    const withMask = await decoder.run({ imageEmbeddings, ...POINTS_WITH_PADDING, maskInput: maskLogits(3) });
    const withSim = await decoder.run({ imageEmbeddings, ...POINTS_WITH_PADDING, attnSim: attnSim(4) });
    const withTarget = await decoder.run({
      imageEmbeddings,
      ...POINTS_WITH_PADDING,
      targetEmbedding: targetEmbedding(c, 5),
    });
    const differs = (a: DecoderOutputs) =>
      a.lowResMasks.data.some((v, i) => Math.abs(v - plain.lowResMasks.data[i]!) > 1e-3);
    expect(differs(withMask)).toBe(true);
    expect(differs(withSim)).toBe(true);
    expect(differs(withTarget)).toBe(true);
  });

  it("a zero target embedding is plain SAM", async () => {
    const plain = await decoder.run({ imageEmbeddings, ...POINTS_WITH_PADDING });
    const zero = await decoder.run({
      imageEmbeddings,
      ...POINTS_WITH_PADDING,
      targetEmbedding: new Float32Array(c),
    });
    expect(zero.lowResMasks.data.every((v, i) => Object.is(v, plain.lowResMasks.data[i]))).toBe(true);
    expect(zero.iouScores).toEqual(plain.iouScores);
  });

  it("matches with the transformer LayerNorm eps set to 1e-6 on both sides", async () => {
    if (c !== 32) return; // one width is enough for an option that only changes a constant
    const hf = await SamDecoder.create({ weights, transformerLayerNormEps: 1e-6 });
    try {
      const inputs: DecoderInputs = {
        imageEmbeddings,
        ...POINTS_WITH_PADDING,
        targetEmbedding: targetEmbedding(c, 5),
      };
      const ref = new ReferenceDecoder(weights, { layerNormEps: 1e-6 }).runSync(inputs);
      checkParity(`C=${c} eps 1e-6`, await hf.run(inputs), ref);
    } finally {
      await hf.dispose();
    }
  });

  it("times a decoder pass", async () => {
    const inputs: DecoderInputs = {
      imageEmbeddings,
      ...POINTS_WITH_PADDING,
      attnSim: attnSim(4),
      targetEmbedding: targetEmbedding(c, 5),
    };
    await decoder.run(inputs);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await decoder.run(inputs);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(
      `C=${c}: decoder pass median ${times[2]!.toFixed(1)} ms, min ${times[0]!.toFixed(1)} ms (5 runs, N=3)`,
    );
    expect(times[0]!).toBeGreaterThan(0);
  });
});
