// Case `decode` (runs only when named): what prepare's `--decode scaled` changes in the masks. Each
// PerSeg fixture object (../shared/fixtures/perseg-mini, photo 00's hand mask as the reference) is
// prepared twice with the SlimSAM-77-size benchmark encoder, once with the reference's pixels and
// once with DCT-scaled decoding, at the photos' own size and enlarged 3× (lanczos3, as a stand-in
// for 12 MP phone photos: the fixtures are 1.3–4 MP). Reported: each photo's mask IoU between the
// two runs, and the decode factor used. The weights are random (no real SAM weights can be
// downloaded here), so the IoU says how sensitive this pipeline is to the decode, not how a real
// model's masks move.

import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type DecodeMode, prepare } from "../../src/dataset/prepare.js";
import { encodeJpeg, encodePng, loadRgb, resizeRgb } from "../../src/image/image-io.js";
import { decodeMaskPng } from "../../src/image/mask-png.js";
import { EmbeddingCache } from "../../src/segment/sam/embedding-cache.js";
import { SamModel } from "../../src/segment/sam/sam-model.js";
import { type BenchCase, type Measurement, round } from "../harness.js";
import { ensureVitEncoderModel } from "../models/vit-encoder.js";
import { summarize } from "../stats.js";
import { benchmarkDecoder } from "./prepare.js";

const FIXTURES = join("..", "shared", "fixtures", "perseg-mini");

/** The `decode` case; generated files under `cacheDir`, outputs under `outDir`. */
export function decodeCase(options: { cacheDir: string; outDir: string }): BenchCase {
  return {
    name: "decode",
    summary:
      "prepare --decode scaled against full on the PerSeg fixtures: mask IoU per photo (runs when named)",
    async run(ctx) {
      if (!existsSync(FIXTURES)) {
        ctx.log(`decode: ${FIXTURES} is absent; nothing to measure`);
        return [];
      }
      const files = {
        encoderPath: ensureVitEncoderModel({ preset: "slimsam-77", seed: 1 }),
        decoderPath: await benchmarkDecoder(options.cacheDir),
        label: "benchmark model (random weights)",
      };
      const model = await SamModel.load({ files, threads: ctx.threads });
      const results: Measurement[] = [];
      try {
        for (const scale of [1, 3]) {
          const ious: number[] = [];
          const details: Record<string, number | string> = {};
          for (const object of (await readdir(join(FIXTURES, "Images"))).sort()) {
            const dir = await fixtureFolder(options.cacheDir, object, scale);
            const run = async (decode: DecodeMode) => {
              const outDir = join(options.outDir, `decode-${object}-x${scale}-${decode}.persam`);
              await rm(outDir, { recursive: true, force: true });
              await prepare({
                inputDir: dir,
                outDir,
                model,
                className: "object",
                keepDoubtful: true,
                decode,
                // The package's trainer presets; the default lookup is relative to dist/, not dist-bench/.
                configsDir: resolve("configs"),
                references: [{ photo: join(dir, "00.jpg"), maskPath: join(dir, "00.mask.png") }],
                embeddingCache: new EmbeddingCache({ dir: `${outDir}.embeddings`, maxBytes: 0 }),
              });
              return outDir;
            };
            ctx.log(`decode: ${object} ×${scale}`);
            const [full, scaled] = [await run("full"), await run("scaled")];
            for (const stem of ["01", "02"]) {
              const a = decodeMaskPng(await readFile(join(full, ".persam", "masks", `${stem}.png`)));
              const b = decodeMaskPng(await readFile(join(scaled, ".persam", "masks", `${stem}.png`)));
              let inter = 0;
              let union = 0;
              for (let i = 0; i < a!.mask.length; i++) {
                if (a!.mask[i] && b!.mask[i]) inter++;
                if (a!.mask[i] || b!.mask[i]) union++;
              }
              const iou = union === 0 ? 1 : inter / union;
              ious.push(iou);
              details[`${object}/${stem}`] = round(iou);
            }
          }
          results.push({
            name: `decode/iou-x${scale}`,
            description: `mask IoU, --decode scaled vs full, fixture photos${scale > 1 ? ` enlarged ${scale}×` : ""} (not a time)`,
            stats: summarize(ious),
            details,
          });
        }
      } finally {
        await model.dispose();
      }
      return results;
    },
  };
}

/** The fixture object's photos (and 00's hand mask as `00.mask.png`), enlarged `scale`× when > 1. */
async function fixtureFolder(cacheDir: string, object: string, scale: number): Promise<string> {
  const dir = join(cacheDir, "decode-fixtures", `${object}-x${scale}`);
  if (existsSync(join(dir, "00.mask.png"))) return dir;
  await mkdir(dir, { recursive: true });
  for (const name of (await readdir(join(FIXTURES, "Images", object))).filter((f) => f.endsWith(".jpg"))) {
    const image = await loadRgb(join(FIXTURES, "Images", object, name));
    const out = scale === 1 ? image : await resizeRgb(image, image.width * scale, image.height * scale);
    await writeFile(join(dir, name), await encodeJpeg(out, 92));
  }
  const mask = await loadRgb(join(FIXTURES, "Annotations", object, "00.png"));
  const big = scale === 1 ? mask : await resizeRgb(mask, mask.width * scale, mask.height * scale);
  // The same hand mask for both runs of an object: its enlarged edge is whatever the resize gives.
  await writeFile(join(dir, "00.mask.png"), await encodePng(big));
  return dir;
}
