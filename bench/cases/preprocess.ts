// Case `preprocess`: the image side of SAM for a 12 MP JPEG: decode (sharp, via image-io), the
// bit-exact PIL bilinear resize to 1024 on the long side (SIMD kernels, and the TypeScript fallback
// alone), normalise + pad to [1, 3, 1024, 1024].

import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeJpeg, loadRgb, type RgbImage } from "../../src/image/image-io.js";
import {
  normalizeAndPad,
  pilResizeBilinear,
  pilResizeBilinearScalar,
  preprocessShape,
  samPreprocess,
} from "../../src/segment/sam/preprocess.js";
import { type BenchCase, type BenchContext, type Measurement, runsOf, timeIt, warmupOf } from "../harness.js";
import { PHOTO_12MP, syntheticPhoto } from "../synthetic.js";

/**
 * Path of the generated 12 MP JPEG (quality 92, 4:4:4, from syntheticPhoto), written once under
 * `cacheDir` and reused by later runs.
 */
export async function photo12mpJpeg(cacheDir: string, ctx: BenchContext): Promise<string> {
  const path = join(cacheDir, `photo-${PHOTO_12MP.width}x${PHOTO_12MP.height}.jpg`);
  if (existsSync(path)) return path;
  ctx.log(`preprocess: generating ${path}`);
  const { width, height } = PHOTO_12MP;
  const image: RgbImage = { data: syntheticPhoto(width, height), width, height, channels: 3 };
  await mkdir(cacheDir, { recursive: true });
  await writeFile(path, await encodeJpeg(image, 92));
  return path;
}

/** The `preprocess` case, with generated files kept in `cacheDir`. */
export function preprocessCase(cacheDir: string): BenchCase {
  return {
    name: "preprocess",
    summary: "12 MP JPEG: decode (sharp), PIL bilinear resize to 1024 long side, normalise + pad",
    async run(ctx) {
      const path = await photo12mpJpeg(cacheDir, ctx);
      const runs = runsOf(ctx, 10);
      const warmup = warmupOf(ctx, 2);
      const { width, height } = PHOTO_12MP;
      const [hIn, wIn] = preprocessShape(height, width);
      const details = { width, height, resizedWidth: wIn, resizedHeight: hIn };
      const results: Measurement[] = [];

      ctx.log("preprocess/decode");
      let image: RgbImage | undefined;
      const decode = await timeIt(
        async () => {
          image = await loadRgb(path);
        },
        { runs, warmup },
      );
      results.push({
        name: "preprocess/decode",
        description: "loadRgb: probe header + decode JPEG to upright sRGB RGB8 (sharp/libvips)",
        stats: decode.stats,
        cpu: decode.cpu,
        details,
      });
      const rgb = image!;

      ctx.log("preprocess/resize");
      let resized: Uint8Array | undefined;
      const resize = await timeIt(
        () => {
          resized = pilResizeBilinear(rgb.data, width, height, 3, wIn, hIn);
        },
        { runs, warmup },
      );
      results.push({
        name: "preprocess/resize",
        description: `bit-exact PIL BILINEAR resize ${width}×${height} → ${wIn}×${hIn} (WebAssembly SIMD kernels)`,
        stats: resize.stats,
        cpu: resize.cpu,
        details,
      });

      ctx.log("preprocess/resize-ts");
      const resizeTs = await timeIt(
        () => {
          pilResizeBilinearScalar(rgb.data, width, height, 3, wIn, hIn);
        },
        { runs, warmup },
      );
      results.push({
        name: "preprocess/resize-ts",
        description: "the same resize on the TypeScript kernels only (the fallback without WebAssembly SIMD)",
        stats: resizeTs.stats,
        cpu: resizeTs.cpu,
        details,
      });

      ctx.log("preprocess/normalise-pad");
      const small = resized!;
      const norm = await timeIt(() => normalizeAndPad(small, wIn, hIn), { runs, warmup });
      results.push({
        name: "preprocess/normalise-pad",
        description: "normalise with SAM's mean/std and zero-pad to [1,3,1024,1024] float32",
        stats: norm.stats,
        cpu: norm.cpu,
        details,
      });

      // prepare --decode scaled: the same photo decoded at 1/2 (DCT scaling), resized to the same
      // encoder input. The input difference says how far the scaled path moves from the reference.
      ctx.log("preprocess/decode-scaled");
      let half: RgbImage | undefined;
      const decodeScaled = await timeIt(
        async () => {
          half = await loadRgb(path, { shrink: 2 });
        },
        { runs, warmup },
      );
      const exact = samPreprocess(rgb.data, width, height).pixelValues.data;
      const scaled = samPreprocess(half!.data, half!.width, half!.height, [height, width]).pixelValues.data;
      let sum = 0;
      let max = 0;
      for (let i = 0; i < exact.length; i++) {
        const d = Math.abs(exact[i]! - scaled[i]!);
        sum += d;
        if (d > max) max = d;
      }
      results.push({
        name: "preprocess/decode-scaled",
        description:
          "loadRgb with shrink 2: the JPEG decoded at half size by DCT scaling (prepare --decode scaled)",
        stats: decodeScaled.stats,
        cpu: decodeScaled.cpu,
        details: {
          ...details,
          decodedWidth: half!.width,
          decodedHeight: half!.height,
          // Over the [1,3,1024,1024] normalised encoder input (pad included), in units of σ.
          inputMeanAbsDiff: Math.round((sum / exact.length) * 1e5) / 1e5,
          inputMaxAbsDiff: Math.round(max * 1e4) / 1e4,
        },
      });

      ctx.log("preprocess/total-scaled");
      const totalScaled = await timeIt(
        async () => {
          const img = await loadRgb(path, { shrink: 2 });
          samPreprocess(img.data, img.width, img.height, [height, width]);
        },
        { runs, warmup },
      );
      results.push({
        name: "preprocess/total-scaled",
        description: "the same with the scaled decode: photo file → encoder input (prepare --decode scaled)",
        stats: totalScaled.stats,
        cpu: totalScaled.cpu,
        details,
      });

      ctx.log("preprocess/total");
      const total = await timeIt(
        async () => {
          const img = await loadRgb(path);
          samPreprocess(img.data, img.width, img.height);
        },
        { runs, warmup },
      );
      results.push({
        name: "preprocess/total",
        description: "decode + samPreprocess (resize + normalise + pad): photo file → encoder input",
        stats: total.stats,
        cpu: total.cpu,
        details,
      });
      return results;
    },
  };
}
