// Case `postprocess`: the full-resolution work after a decoder pass on a 12 MP photo: low-res
// logits → original size, threshold, mask box and area; and the similarity-map pipeline PerSAM runs
// before the decoder (cosine grid → 12 MP map → location prior → attn_sim).

import { randomEmbedding } from "../../src/segment/models/random-weights.js";
import { attnSim, attnSimFromField } from "../../src/segment/persam/attn-sim.js";
import { locationPrior, locationPriorFromExtremes } from "../../src/segment/persam/location-prior.js";
import { similarityField, similarityMap } from "../../src/segment/persam/similarity.js";
import { computeReferenceTarget } from "../../src/segment/persam/target-embedding.js";
import { lowResToOriginal, maskArea, maskBox, thresholdMask } from "../../src/segment/sam/postprocess.js";
import { preprocessShape } from "../../src/segment/sam/preprocess.js";
import { LowResField } from "../../src/segment/sam/region-upsample.js";
import type { Size } from "../../src/util/tensor.js";
import { type BenchCase, type Measurement, runsOf, timeIt, warmupOf } from "../harness.js";
import { PHOTO_12MP, syntheticGrid, syntheticLowResLogits } from "../synthetic.js";

export const postprocessCase: BenchCase = {
  name: "postprocess",
  summary:
    "12 MP: lowResToOriginal (1 plane), threshold, maskBox/area; similarity map, prior, attn_sim; their exact region/field shortcuts",
  async run(ctx) {
    const runs = runsOf(ctx, 10);
    const warmup = warmupOf(ctx, 2);
    const { width, height } = PHOTO_12MP;
    const originalSize: Size = [height, width];
    const inputSize = preprocessShape(height, width);
    const details = { width, height };
    const results: Measurement[] = [];
    const lowRes = syntheticLowResLogits(inputSize).slice(0, 256 * 256);

    ctx.log("postprocess/upsample");
    let logits: Float32Array | undefined;
    const up = await timeIt(
      () => {
        logits = lowResToOriginal(lowRes, 1, inputSize, originalSize);
      },
      { runs, warmup },
    );
    results.push({
      name: "postprocess/upsample",
      description: "lowResToOriginal: one 256×256 logit plane → 4032×3024 float32 (§4.1 steps 1–3)",
      stats: up.stats,
      cpu: up.cpu,
      details,
    });

    ctx.log("postprocess/threshold");
    const full = logits!;
    let mask: Uint8Array | undefined;
    const thr = await timeIt(
      () => {
        mask = thresholdMask(full);
      },
      { runs, warmup },
    );
    results.push({
      name: "postprocess/threshold",
      description: "thresholdMask: logits > 0 → Uint8 mask, 12 MP",
      stats: thr.stats,
      cpu: thr.cpu,
      details,
    });

    ctx.log("postprocess/box-area");
    const m = mask!;
    const box = await timeIt(
      () => {
        maskBox(m, width, height);
        maskArea(m);
      },
      { runs, warmup },
    );
    results.push({
      name: "postprocess/box-area",
      description: "maskBox (inclusive extents) + maskArea of a 12 MP mask",
      stats: box.stats,
      cpu: box.cpu,
      details: { ...details, area: maskArea(m) },
    });

    ctx.log("postprocess/upsample-mask");
    const all = await timeIt(() => thresholdMask(lowResToOriginal(lowRes, 1, inputSize, originalSize)), {
      runs,
      warmup,
    });
    results.push({
      name: "postprocess/upsample-mask",
      description:
        "upsample + threshold together: one low-res plane → 12 MP binary mask (PerSAM's upsampleMask)",
      stats: all.stats,
      cpu: all.cpu,
      details,
    });

    // The exact shortcuts PerSAM uses (region-upsample.ts): no 12 MP float map.
    ctx.log("postprocess/mask-region");
    const region = await timeIt(() => new LowResField(lowRes, inputSize, originalSize).threshold(), {
      runs,
      warmup,
    });
    results.push({
      name: "postprocess/mask-region",
      description:
        "LowResField.threshold: the same 12 MP mask + area + box, evaluated only where low-res taps change sign",
      stats: region.stats,
      cpu: region.cpu,
      details,
    });
    ctx.log("postprocess/box-region");
    const boxOnly = await timeIt(() => new LowResField(lowRes, inputSize, originalSize).box(), {
      runs,
      warmup,
    });
    results.push({
      name: "postprocess/box-region",
      description: "LowResField.box: the box alone (PerSAM's refinement 1), no mask array",
      stats: boxOnly.stats,
      cpu: boxOnly.cpu,
      details,
    });

    // Similarity pipeline: the per-photo work PerSAM does before its first decoder pass.
    const embedding = randomEmbedding(256, 7);
    const target = computeReferenceTarget({
      references: [{ embedding: randomEmbedding(256, 8), grid: syntheticGrid(inputSize) }],
    });
    ctx.log("postprocess/similarity-map");
    let sim: Float32Array | undefined;
    const simT = await timeIt(
      () => {
        sim = similarityMap({ embedding, targetFeat: target.targetFeat, originalSize, inputSize }).sim;
      },
      { runs, warmup },
    );
    results.push({
      name: "postprocess/similarity-map",
      description: "similarityMap: cosine on 64×64 (C = 256) → 256² → 12 MP map + its statistics",
      stats: simT.stats,
      cpu: simT.cpu,
      details,
    });

    ctx.log("postprocess/location-prior");
    const s = sim!;
    const prior = await timeIt(() => locationPrior({ sim: s, width, height }), { runs, warmup });
    results.push({
      name: "postprocess/location-prior",
      description: "locationPrior: positive/negative click from the 12 MP similarity map",
      stats: prior.stats,
      cpu: prior.cpu,
      details,
    });

    ctx.log("postprocess/attn-sim");
    const bias = await timeIt(() => attnSim({ sim: s, originalSize, inputSize, aligned: false }), {
      runs,
      warmup,
    });
    results.push({
      name: "postprocess/attn-sim",
      description: "attnSim (reference, stretched grid): standardise the 12 MP map, resize to 64×64, sigmoid",
      stats: bias.stats,
      cpu: bias.cpu,
      details,
    });

    ctx.log("postprocess/similarity-field");
    const params = { embedding, targetFeat: target.targetFeat, originalSize, inputSize };
    let field: ReturnType<typeof similarityField> | undefined;
    const fieldT = await timeIt(
      () => {
        field = similarityField(params);
        locationPriorFromExtremes(field.extremes, width);
      },
      { runs, warmup },
    );
    results.push({
      name: "postprocess/similarity-field",
      description:
        "similarityField + prior: cosine grid, 256², exact max/min by branch and bound, mean/std by Gram matrices",
      stats: fieldT.stats,
      cpu: fieldT.cpu,
      details,
    });

    ctx.log("postprocess/attn-sim-field");
    const f = field!;
    const biasField = await timeIt(
      () =>
        attnSimFromField({
          sample: (r, c) => f.field.sample(r, c),
          sum: f.moments.sum,
          sumSquares: f.moments.sumSquares,
          min: f.extremes.minValue,
          max: f.extremes.maxValue,
          originalSize,
          inputSize,
          aligned: false,
        }),
      { runs, warmup },
    );
    results.push({
      name: "postprocess/attn-sim-field",
      description: "attnSimFromField: the same 64×64 bias from 128 rows × 128 columns of the map",
      stats: biasField.stats,
      cpu: biasField.cpu,
      details,
    });
    return results;
  },
};
