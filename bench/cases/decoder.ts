// Case `decoder`: one pass of our ONNX prompt-encoder + mask-decoder graph at SAM's width 256 with
// random weights, for the three kinds of pass PerSAM makes. Target: ≤ 40 ms median with 2 threads.

import { randomDecoderWeights, randomEmbedding } from "../../src/segment/models/random-weights.js";
import { SamDecoder } from "../../src/segment/sam/decoder-session.js";
import type { DecoderInputs } from "../../src/segment/sam/decoder-types.js";
import { GRID_TOKENS, LOW_RES_SIDE } from "../../src/segment/sam/sam-constants.js";
import { type BenchCase, type Measurement, round, runsOf, timeIt, warmupOf } from "../harness.js";
import { summarize } from "../stats.js";
import { uniformArray } from "../synthetic.js";

const EMBED_DIM = 256;
const TARGET_MS = 40;

export const decoderCase: BenchCase = {
  name: "decoder",
  summary: "one SamDecoder pass at width 256 (points; points+box+mask; attn_sim+target embedding)",
  async run(ctx) {
    const threads = ctx.threads;
    ctx.log(`decoder: building random width-${EMBED_DIM} weights and the graph (${threads} threads)`);
    const weights = randomDecoderWeights({ embedDim: EMBED_DIM, seed: 1 });
    const t0 = performance.now();
    const decoder = await SamDecoder.create({ weights, threads });
    const createMs = performance.now() - t0;
    const results: Measurement[] = [
      {
        name: "decoder/create",
        description: "build the graph from weights in memory (no cache) and open the session, once",
        stats: summarize([createMs]),
        threads,
      },
    ];
    try {
      const embedding = randomEmbedding(EMBED_DIM, 3);
      // Two clicks in the 1024 frame, as PerSAM's location prior gives.
      const clicks = [412.3, 300.8, 97.1, 640.2];
      const variants: { name: string; description: string; inputs: DecoderInputs }[] = [
        {
          name: "points",
          description: "positive + negative click + padding point, no mask input, no PerSAM hooks",
          inputs: {
            imageEmbeddings: embedding,
            pointCoords: Float32Array.of(...clicks, 0, 0),
            pointLabels: Float32Array.of(1, 0, -1),
          },
        },
        {
          name: "points-box-mask",
          description: "2 clicks + box corners + 256×256 mask input (PerSAM's refinement 2)",
          inputs: {
            imageEmbeddings: embedding,
            pointCoords: Float32Array.of(...clicks, 200.5, 150.25, 700.75, 690),
            pointLabels: Float32Array.of(1, 0, 2, 3),
            maskInput: {
              data: uniformArray(LOW_RES_SIDE * LOW_RES_SIDE, 4, -10, 10),
              dims: [1, 1, LOW_RES_SIDE, LOW_RES_SIDE],
            },
          },
        },
        {
          name: "persam-hooks",
          description: "2 clicks + padding point with attn_sim and target embedding (PerSAM's first pass)",
          inputs: {
            imageEmbeddings: embedding,
            pointCoords: Float32Array.of(...clicks, 0, 0),
            pointLabels: Float32Array.of(1, 0, -1),
            attnSim: uniformArray(GRID_TOKENS, 5),
            targetEmbedding: uniformArray(EMBED_DIM, 6, -1, 1),
          },
        },
      ];
      for (const v of variants) {
        ctx.log(`decoder/${v.name}`);
        const timing = await timeIt(() => decoder.run(v.inputs), {
          runs: runsOf(ctx, 20),
          warmup: warmupOf(ctx, 3),
        });
        results.push({
          name: `decoder/${v.name}`,
          description: v.description,
          stats: timing.stats,
          cpu: timing.cpu,
          targetMs: TARGET_MS,
          threads,
          details: { embedDim: EMBED_DIM, createMs: round(createMs) },
        });
      }
    } finally {
      await decoder.dispose();
    }
    return results;
  },
};
