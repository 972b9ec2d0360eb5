// The reference options shared by `segment` and `prepare` (--ref, --ref-mask, --ref-point,
// --ref-box), the PerSAM mode options shared with `eval` (--mode, --fusion-steps, --fusion-solver),
// and how they become ReferenceSpecs for resolveReference.

import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Argv } from "yargs";
import { UserError } from "../errors.js";
import type { FusionTrainerOptions } from "../segment/persam/persam-f.js";
import type { ReferenceMode, ReferenceSpec } from "../segment/persam/reference-source.js";
import type { Box, Point } from "../util/tensor.js";
import { asList, parseBox, parsePoint } from "./parse.js";

/** Parsed mode options. */
export interface ModeOptions {
  mode: ReferenceMode;
  fusionSteps: number;
  fusionSolver: "exact" | "binned";
}

/** Parsed reference options (plus the mode options). */
export interface ReferenceOptions extends ModeOptions {
  ref?: string[] | string | undefined;
  refMask?: string[] | string | undefined;
  refPoint?: string[] | string | undefined;
  refBox?: string[] | string | undefined;
}

/** Declare --mode, --fusion-steps and --fusion-solver on a command. */
export function withModeOptions<T>(yargs: Argv<T>): Argv<T & ModeOptions> {
  return yargs
    .option("mode", {
      type: "string",
      choices: ["persam", "persam-f"],
      default: "persam",
      describe:
        "persam: training-free; persam-f: also fit PerSAM-F's 2 fusion weights on the reference (under a second with the binned solver)",
    })
    .option("fusion-steps", {
      type: "number",
      default: 1000,
      describe: "PerSAM-F optimiser steps on the reference (the paper's 1000)",
    })
    .option("fusion-solver", {
      type: "string",
      choices: ["exact", "binned"],
      // A deviation on by default because it was measured better: over a full 1000-step run the
      // binned solver's final loss and λ stay within the float32 level at which the reference
      // agrees with itself (test/persam-f-solver.test.ts), at a small fraction of the CPU
      // (bench/README.md, case persam-f).
      default: "binned",
      describe:
        "PerSAM-F loss summed over moment-corrected pixel bins (same λ within 1e-7, <1 s at 12 MP) or literally over every pixel (exact: the paper's computation, minutes on big photos)",
    }) as unknown as Argv<T & ModeOptions>;
}

/** Declare the reference options (and the mode options) on a command. */
export function withReferenceOptions<T>(yargs: Argv<T>): Argv<T & ReferenceOptions> {
  return withModeOptions(yargs)
    .option("ref", {
      type: "string",
      array: true,
      describe:
        "Reference photo (repeatable: several references are averaged). Default: <photo>.mask.png beside a photo, else automatic",
    })
    .option("ref-mask", {
      type: "string",
      array: true,
      describe:
        "Mask of the reference photo, same size (white or PerSeg red on black). With several --ref: N:mask.png",
    })
    .option("ref-point", {
      type: "string",
      array: true,
      describe: "A click x,y on the subject in the reference photo (repeatable). With several --ref: N:x,y",
    })
    .option("ref-box", {
      type: "string",
      array: true,
      describe:
        "A box x0,y0,x1,y1 around the subject in the reference photo. With several --ref: N:x0,y0,x1,y1",
    }) as unknown as Argv<T & ReferenceOptions>;
}

/** PerSAM-F trainer settings from the mode options. */
export function trainerFromOptions(options: ModeOptions): FusionTrainerOptions {
  if (!Number.isInteger(options.fusionSteps) || options.fusionSteps < 1) {
    throw new UserError(
      `Expected a positive whole number for --fusion-steps but received ${options.fusionSteps}`,
      {
        hint: "the paper trains 1000 steps",
      },
    );
  }
  return { steps: options.fusionSteps, solver: options.fusionSolver };
}

/** Where relative paths are looked up. */
export interface ReferencePathContext {
  /** Working directory (first place for every relative path). */
  readonly cwd: string;
  /** The photo folder: a `--ref` not found from `cwd` is looked up here. */
  readonly photosDir?: string | undefined;
}

interface Indexed {
  /** 0-based reference index, or undefined when the value had no `N:` prefix. */
  readonly ref: number | undefined;
  readonly value: string;
}

/**
 * Turn --ref / --ref-mask / --ref-point / --ref-box into reference specs. With one --ref every
 * mask, click and box belongs to it. With several, each value may name its reference with a 1-based
 * `N:` prefix (`--ref-point 2:120,340`); unprefixed masks pair with the --ref values in order when
 * there is one per reference; unprefixed clicks and boxes are refused as ambiguous. No --ref → an
 * empty list (the caller falls back to masks beside the photos, then the automatic choice).
 * @throws UserError for a missing file, a malformed value, a reference number out of range, a
 *   second box for one reference, or --ref-mask/--ref-point/--ref-box without --ref.
 */
export async function referenceSpecsFromOptions(
  options: ReferenceOptions,
  context: ReferencePathContext,
): Promise<ReferenceSpec[]> {
  const refs = asList(options.ref);
  const masks = asList(options.refMask).map((v) => indexed("--ref-mask", v, refs.length));
  const points = asList(options.refPoint).map((v) => indexed("--ref-point", v, refs.length));
  const boxes = asList(options.refBox).map((v) => indexed("--ref-box", v, refs.length));
  if (refs.length === 0) {
    const given = [
      masks.length ? "--ref-mask" : "",
      points.length ? "--ref-point" : "",
      boxes.length ? "--ref-box" : "",
    ]
      .filter(Boolean)
      .join(", ");
    if (given) {
      throw new UserError(`${given} given without --ref`, {
        hint: "name the reference photo with --ref PHOTO",
      });
    }
    return [];
  }

  const assign = (option: string, values: readonly Indexed[], pairInOrder: boolean): string[][] => {
    const out: string[][] = refs.map(() => []);
    const unprefixed = values.filter((v) => v.ref === undefined);
    if (refs.length > 1 && unprefixed.length > 0) {
      if (!pairInOrder || unprefixed.length !== values.length || unprefixed.length !== refs.length) {
        throw new UserError(`With ${refs.length} --ref photos, say which one each ${option} is for`, {
          hint: `prefix it with the reference's number: ${option} 2:${unprefixed[0]!.value}`,
        });
      }
      for (const [i, v] of unprefixed.entries()) out[i]!.push(v.value);
      return out;
    }
    for (const v of values) out[v.ref ?? 0]!.push(v.value);
    return out;
  };
  const maskOf = assign("--ref-mask", masks, true);
  const pointsOf = assign("--ref-point", points, false);
  const boxOf = assign("--ref-box", boxes, false);

  const specs: ReferenceSpec[] = [];
  for (let i = 0; i < refs.length; i++) {
    const photo = await findFile(refs[i]!, [context.cwd, context.photosDir], "reference photo", "--ref");
    const which = refs.length > 1 ? ` for reference ${i + 1}` : "";
    if (maskOf[i]!.length > 1) {
      throw new UserError(`${maskOf[i]!.length} --ref-mask values${which}`, {
        hint: "give one mask per reference photo",
      });
    }
    if (boxOf[i]!.length > 1) {
      throw new UserError(`${boxOf[i]!.length} --ref-box values${which}`, {
        hint: "give one box per reference photo (add --ref-point clicks to refine it)",
      });
    }
    const maskValue = maskOf[i]![0];
    const maskPath =
      maskValue === undefined
        ? undefined
        : await findFile(maskValue, [context.cwd, dirname(photo)], "reference mask", "--ref-mask");
    const clicks = pointsOf[i]!.map((p) => ({
      point: parsePoint("--ref-point", p) as Point,
      label: 1 as const,
    }));
    const boxValue = boxOf[i]![0];
    const box: Box | undefined = boxValue === undefined ? undefined : parseBox("--ref-box", boxValue);
    if (maskPath !== undefined && (clicks.length > 0 || box !== undefined)) {
      throw new UserError(`Both --ref-mask and --ref-point/--ref-box${which}`, {
        hint: "give either a mask or clicks/box for one reference photo",
      });
    }
    specs.push({
      photo,
      ...(maskPath !== undefined ? { maskPath } : {}),
      ...(clicks.length > 0 ? { clicks } : {}),
      ...(box !== undefined ? { box } : {}),
    });
  }
  return specs;
}

function indexed(option: string, value: string, refCount: number): Indexed {
  const m = /^(\d+):(.+)$/.exec(value);
  if (!m) return { ref: undefined, value };
  const n = Number(m[1]);
  if (n < 1 || n > Math.max(refCount, 1)) {
    throw new UserError(
      `${option} ${value} names reference ${n}, but there ${refCount === 1 ? "is 1 --ref" : `are ${refCount} --ref`}`,
      {
        hint: "references are numbered from 1 in the order of the --ref options",
      },
    );
  }
  return { ref: n - 1, value: m[2]! };
}

async function findFile(
  value: string,
  bases: readonly (string | undefined)[],
  what: string,
  option: string,
): Promise<string> {
  for (const base of bases) {
    if (base === undefined) continue;
    const path = resolve(base, value);
    const s = await stat(path).catch(() => undefined);
    if (s?.isFile()) return path;
  }
  throw new UserError(`The ${what} ${value} (${option}) does not exist`, {
    hint: "check the path (relative paths are read from the current folder, then the photo folder)",
  });
}
