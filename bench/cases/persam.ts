// Case `persam`: per-photo time of PerSAM and PerSAM-F on a 12 MP photo, excluding the image
// encoder (a random embedding stands in for it): similarity map, location prior, attn_sim, three
// decoder passes at width 256, and the full-resolution masks; each also with literalFullResolution
// (the H × W maps built in full) and with the decoder's answers replayed (the TypeScript work alone).

import { randomDecoderWeights, randomEmbedding } from "../../src/segment/models/random-weights.js";
import type { EncodedImage } from "../../src/segment/persam/persam.js";
import { type PerSamResult, runPerSam } from "../../src/segment/persam/persam.js";
import { runPerSamF } from "../../src/segment/persam/persam-f.js";
import { computeReferenceTarget } from "../../src/segment/persam/target-embedding.js";
import { SamDecoder } from "../../src/segment/sam/decoder-session.js";
import type { DecoderInputs, DecoderOutputs, MaskDecoder } from "../../src/segment/sam/decoder-types.js";
import { preprocessShape } from "../../src/segment/sam/preprocess.js";
import { type BenchCase, type Measurement, runsOf, stageMedians, timeIt, warmupOf } from "../harness.js";
import { PHOTO_12MP, syntheticGrid } from "../synthetic.js";

/** λ of a typical PerSAM-F adaptation (any fixed values do for timing). */
const LAMBDAS = [0.2, 0.5, 0.3] as const;

export const persamCase: BenchCase = {
  name: "persam",
  summary: "per-photo runPerSam / runPerSamF at 12 MP without the encoder (decoder width 256)",
  async run(ctx) {
    const { width, height } = PHOTO_12MP;
    const inputSize = preprocessShape(height, width);
    const image: EncodedImage = {
      embedding: randomEmbedding(256, 21),
      originalSize: [height, width],
      inputSize,
    };
    const grid = syntheticGrid(inputSize);
    const reference = { embedding: randomEmbedding(256, 22), grid };
    const decoder = await SamDecoder.create({
      weights: randomDecoderWeights({ embedDim: 256, seed: 1 }),
      threads: ctx.threads,
    });
    const results: Measurement[] = [];
    try {
      const runs = runsOf(ctx, 10);
      const warmup = warmupOf(ctx, 2);
      // The real decoder's answers, recorded once and replayed at no cost: the `-replay` variants
      // time only the TypeScript work outside encoder and decoder (CPU time free of onnxruntime's
      // spinning threads).
      const persamTarget = computeReferenceTarget({ references: [reference], variant: "persam" });
      const replay = new ReplayDecoder(decoder);
      await runPerSam({ decoder: replay, target: persamTarget, image });
      replay.recording = false;
      const persamFTarget = computeReferenceTarget({ references: [reference], variant: "persam-f" });
      const replayF = new ReplayDecoder(decoder);
      await runPerSamF({ decoder: replayF, target: persamFTarget, lambdas: LAMBDAS, image });
      replayF.recording = false;
      const variants = [
        {
          name: "persam",
          description: "runPerSam: similarity + prior + attn_sim, 3 decoder passes, 12 MP masks",
          target: computeReferenceTarget({ references: [reference], variant: "persam" }),
          run: (target: ReturnType<typeof computeReferenceTarget>) => runPerSam({ decoder, target, image }),
        },
        {
          name: "persam-literal",
          description: "runPerSam with literalFullResolution: the 12 MP maps built in full (the old path)",
          target: computeReferenceTarget({ references: [reference], variant: "persam" }),
          run: (target: ReturnType<typeof computeReferenceTarget>) =>
            runPerSam({ decoder, target, image, options: { literalFullResolution: true } }),
        },
        {
          name: "persam-replay",
          description:
            "runPerSam with the decoder's outputs replayed: everything outside encoder and decoder",
          target: persamTarget,
          run: (target: ReturnType<typeof computeReferenceTarget>) =>
            runPerSam({ decoder: replay.rewind(), target, image }),
        },
        {
          name: "persam-literal-replay",
          description: "the same with literalFullResolution (the former path)",
          target: persamTarget,
          run: (target: ReturnType<typeof computeReferenceTarget>) =>
            runPerSam({ decoder: replay.rewind(), target, image, options: { literalFullResolution: true } }),
        },
        {
          name: "persam-f",
          description:
            "runPerSamF: similarity + prior, 3 decoder passes with λ-fused first pass, 12 MP masks",
          target: computeReferenceTarget({ references: [reference], variant: "persam-f" }),
          run: (target: ReturnType<typeof computeReferenceTarget>) =>
            runPerSamF({ decoder, target, lambdas: LAMBDAS, image }),
        },
        {
          name: "persam-f-literal",
          description: "runPerSamF with literalFullResolution: the 12 MP maps built in full",
          target: persamFTarget,
          run: (target: ReturnType<typeof computeReferenceTarget>) =>
            runPerSamF({
              decoder,
              target,
              lambdas: LAMBDAS,
              image,
              options: { literalFullResolution: true },
            }),
        },
        {
          name: "persam-f-replay",
          description:
            "runPerSamF with the decoder's outputs replayed: everything outside encoder and decoder",
          target: persamFTarget,
          run: (target: ReturnType<typeof computeReferenceTarget>) =>
            runPerSamF({ decoder: replayF.rewind(), target, lambdas: LAMBDAS, image }),
        },
        {
          name: "persam-f-literal-replay",
          description: "the same with literalFullResolution",
          target: persamFTarget,
          run: (target: ReturnType<typeof computeReferenceTarget>) =>
            runPerSamF({
              decoder: replayF.rewind(),
              target,
              lambdas: LAMBDAS,
              image,
              options: { literalFullResolution: true },
            }),
        },
      ];
      for (const v of variants) {
        ctx.log(`persam/${v.name} (${ctx.threads} threads)`);
        const records: PerSamResult[] = [];
        const timing = await timeIt(
          async () => {
            records.push(await v.run(v.target));
          },
          { runs, warmup },
        );
        const timed = records.slice(warmup);
        const lastRun = timed[timed.length - 1]!;
        results.push({
          name: `persam/${v.name}`,
          description: v.description,
          stats: timing.stats,
          cpu: timing.cpu,
          threads: ctx.threads,
          details: {
            width,
            height,
            decoderPasses: lastRun.steps.length,
            flags: lastRun.flags.join(",") || "none",
            ...stageMedians(timed.map((r) => r.timings)),
          },
        });
      }
    } finally {
      await decoder.dispose();
    }
    return results;
  },
};

/** Records a decoder's outputs, then answers the same calls in order with them. */
class ReplayDecoder implements MaskDecoder {
  recording = true;
  private readonly outputs: DecoderOutputs[] = [];
  private next = 0;
  constructor(private readonly inner: MaskDecoder) {}
  get embedDim(): number {
    return this.inner.embedDim;
  }
  rewind(): this {
    this.next = 0;
    return this;
  }
  async run(inputs: DecoderInputs): Promise<DecoderOutputs> {
    if (this.recording) {
      const out = await this.inner.run(inputs);
      this.outputs.push(out);
      return out;
    }
    const out = this.outputs[this.next++];
    if (!out) throw new Error(`Expected at most ${this.outputs.length} decoder calls to replay`);
    return out;
  }
}
