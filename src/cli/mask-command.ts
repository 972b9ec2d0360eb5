// `persam-db mask IMAGE --point x,y [--box …]`: plain SAM on one photo — the first way to see a
// model work, and the way a user draws a reference mask with one click.

import { extname, resolve } from "node:path";
import { UserError } from "../errors.js";
import { encodePng, loadRgb } from "../image/image-io.js";
import { maskToGrey } from "../segment/sam/postprocess.js";
import { predictMasks } from "../segment/sam/predict.js";
import type { Click } from "../segment/sam/prompt.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { defineCommand } from "./command.js";
import { loadCliModel, type ModelOptions, withModelOptions } from "./model-options.js";
import { asList, parseBox, parsePoint } from "./parse.js";

interface MaskOptions extends ModelOptions {
  image: string;
  point?: string[] | string;
  label?: number[] | number;
  box?: string;
  output: string;
  multimask: boolean;
}

export const maskCommand = defineCommand<MaskOptions>({
  command: "mask <image>",
  describe: "Segment one photo with plain SAM from clicks and/or a box",
  builder: (yargs) =>
    withModelOptions(yargs)
      .positional("image", { type: "string", demandOption: true, describe: "The photo" })
      .option("point", { type: "string", array: true, describe: "A click x,y in photo pixels (repeatable)" })
      .option("label", {
        type: "number",
        array: true,
        describe: "Label of each --point in order: 1 = subject (default), 0 = not subject",
      })
      .option("box", { type: "string", describe: "A box x0,y0,x1,y1 around the subject" })
      .option("output", { alias: "o", type: "string", default: "mask.png", describe: "Mask PNG to write" })
      .option("multimask", {
        type: "boolean",
        default: false,
        describe: "Write all three SAM candidates as <output>-1.png … -3.png instead of only the best",
      })
      .example("$0 mask cat.jpg --point 420,310 -o cat.mask.png", "one click on the cat")
      .example(
        "$0 mask cat.jpg --point 420,310 --point 50,40 --label 1 --label 0",
        "a positive and a negative click",
      )
      .example(
        "$0 mask cat.jpg --box 200,120,680,590 --encoder enc.onnx --decoder sam.safetensors",
        "a box, local model files",
      ) as never,
  handler: async (options, context) => {
    const reporter = context.reporter(options);
    const points = asList(options.point).map((p) => parsePoint("--point", p));
    const labels = asList(options.label).map(Number);
    if (labels.length > points.length) {
      throw new UserError(`${labels.length} --label values for ${points.length} --point values`, {
        hint: "give one --label per --point (or none: all clicks are positive)",
      });
    }
    if (labels.some((l) => l !== 0 && l !== 1)) {
      throw new UserError(`Expected --label 0 or 1 but received ${labels.join(", ")}`, {
        hint: "1 = on the subject, 0 = not on the subject",
      });
    }
    const clicks: Click[] = points.map((point, i) => ({ point, label: (labels[i] ?? 1) as 0 | 1 }));
    const box = options.box === undefined ? undefined : parseBox("--box", options.box);
    if (clicks.length === 0 && box === undefined) {
      throw new UserError("no prompt given", {
        hint: "add --point x,y (a click on the subject) or --box x0,y0,x1,y1",
      });
    }
    const imagePath = resolve(context.io.cwd, options.image);
    const output = resolve(context.io.cwd, options.output);
    const started = performance.now();
    const image = await loadRgb(imagePath);
    for (const c of clicks)
      checkInside(c.point[0], c.point[1], image.width, image.height, "--point", imagePath);
    if (box) checkInside(box[2], box[3], image.width, image.height, "--box", imagePath);

    const model = await loadCliModel(options, context.io, reporter);
    try {
      const t0 = performance.now();
      const encoded = await model.encode(image);
      const t1 = performance.now();
      const prediction = await predictMasks({
        decoder: model.decoder,
        image: encoded,
        prompt: { clicks, box },
        multimask: true,
      });
      const t2 = performance.now();
      const written: { path: string; score: number; area: number; box: number[] | null; best: boolean }[] =
        [];
      const chosen = options.multimask ? prediction.masks.map((_, i) => i) : [prediction.best];
      for (const i of chosen) {
        const m = prediction.masks[i]!;
        const path = options.multimask ? numbered(output, i + 1) : output;
        await writeFileAtomic(
          path,
          await encodePng({
            data: maskToGrey(m.mask),
            width: image.width,
            height: image.height,
            channels: 1,
          }),
        );
        written.push({
          path,
          score: m.score,
          area: m.area / m.mask.length,
          box: m.box ? [...m.box] : null,
          best: i === prediction.best,
        });
      }
      const timings = { encodeMs: t1 - t0, decodeMs: t2 - t1, totalMs: performance.now() - started };
      reporter.emitJson({
        image: imagePath,
        size: { width: image.width, height: image.height },
        model: model.files.label,
        prompt: { clicks, box: box ?? null },
        masks: written,
        timings,
      });
      for (const w of written) {
        reporter.result(
          `${w.path}  IoU prediction ${w.score.toFixed(3)}  area ${(w.area * 100).toFixed(1)}%${w.best && options.multimask ? "  (best)" : ""}`,
        );
      }
      reporter.info(`encoder ${timings.encodeMs.toFixed(0)} ms, decoder ${timings.decodeMs.toFixed(0)} ms`);
    } finally {
      await model.dispose();
    }
  },
});

function checkInside(
  x: number,
  y: number,
  width: number,
  height: number,
  option: string,
  file: string,
): void {
  if (x >= width || y >= height) {
    throw new UserError(`${option} ${x},${y} lies outside ${file} (${width}×${height} pixels)`, {
      hint: "coordinates are x = column, y = row in the photo's upright pixels",
    });
  }
}

function numbered(path: string, n: number): string {
  const ext = extname(path) || ".png";
  const base = extname(path) ? path.slice(0, -ext.length) : path;
  return `${base}-${n}${ext}`;
}
