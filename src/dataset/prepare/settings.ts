// Stage 1 of `prepare`: the run's settings, checked all at once before any work (trainer presets,
// resolution, crop, background, caption), the input and output folders, and the model's identity.

import { stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { UserError } from "../../errors.js";
import {
  type DiffusersPreset,
  type KohyaPreset,
  loadPrepareDefaults,
  loadPreset,
  type OneTrainerPreset,
  type Preset,
} from "../../export/presets.js";
import type { ReferenceMode } from "../../segment/persam/reference-source.js";
import { encoderFingerprint } from "../../segment/sam/embedding-cache.js";
import type { SamModel } from "../../segment/sam/sam-model.js";
import { looksLikeHubToken } from "../../util/hub-token.js";
import { type Background, DEFAULT_BACKGROUND, parseBackground } from "../background.js";
import { DEFAULT_TOKEN, caption as makeCaption, requireClassFromFolder } from "../captions.js";
import type { CropMode } from "../crop.js";
import { checkPrepareInput, isInside } from "../scan.js";
import { DEFAULT_BG_WEIGHT, DEFAULT_FEATHER } from "../weight-map.js";
import { DEFAULT_PRESETS, type DecodeMode, type PrepareParams, type TrainerChoice } from "./types.js";
import { DEFAULT_FPS, DEFAULT_FRAMES } from "./video-stage.js";

/** A model's identity for the state: registry label, encoder fingerprint and decoder file. */
export async function modelKeyOf(files: SamModel["files"]): Promise<string> {
  const decoder = await stat(files.decoderPath);
  return `${await encoderFingerprint(files.encoderPath, files.label)}|${files.decoderPath}|${decoder.size}|${Math.round(decoder.mtimeMs)}`;
}

/**
 * The default output folder: the sibling `<dir>.persam` of a folder, `<name>.persam` beside a video
 * (`cat.mp4` → `cat.persam`).
 */
export function defaultOutDir(inputDir: string, isFile = false): string {
  const path = resolve(inputDir);
  return `${isFile ? path.replace(/\.[^./\\]*$/, "") : path}.persam`;
}

/** The input and output folders of a run, absolute and checked. */
export interface RunFolders {
  /** The folder scanned (a video's folder when the input is one video). */
  readonly inputDir: string;
  /** Set when the input is one video: its file name inside `inputDir`. */
  readonly only?: string;
  readonly outDir: string;
  /** One line when the output folder lies inside the photo folder (the scan skips it). */
  readonly notice?: string;
}

/**
 * The photo folder must exist and be a folder; the output folder must not contain it.
 * @throws UserError naming the folder.
 */
export async function resolveFolders(
  params: Pick<PrepareParams, "inputDir" | "outDir">,
): Promise<RunFolders> {
  const input = resolve(params.inputDir);
  const video = await checkPrepareInput(input, params.inputDir);
  const inputDir = video ? dirname(input) : input;
  const only = video ? basename(input) : undefined;
  const outDir = params.outDir === undefined ? defaultOutDir(input, video) : resolve(params.outDir);
  if (only !== undefined) {
    if (outDir === inputDir || isInside(inputDir, outDir)) {
      throw new UserError(`The output folder ${outDir} would contain the video ${input}`, {
        hint: "choose an output folder outside the video's folder (the default is <NAME>.persam beside it)",
      });
    }
    return { inputDir, outDir, only };
  }
  if (outDir === inputDir || isInside(inputDir, outDir)) {
    throw new UserError(`The output folder ${outDir} would contain the photo folder ${inputDir}`, {
      hint: "choose an output folder outside the photos (the default is the sibling <DIR>.persam)",
    });
  }
  if (isInside(outDir, inputDir)) {
    return {
      inputDir,
      outDir,
      notice: `the output folder ${outDir} lies inside the photo folder; the scan skips it`,
    };
  }
  return { inputDir, outDir };
}

/** The path the class noun is read from: the folder, or a video's name without its extension. */
export function classSource(folders: RunFolders): string {
  return folders.only === undefined
    ? folders.inputDir
    : `${folders.inputDir}/${folders.only.replace(/\.[^.]*$/, "")}`;
}

/**
 * Photos processed at once.
 * @throws UserError outside 1…64.
 */
export function resolveJobs(value: number | undefined): number {
  const jobs = value ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
    throw new UserError(`Expected an integer from 1 to 64 for jobs but received ${jobs}`);
  }
  return jobs;
}

/** How `prepare` decodes photos unless told otherwise (see `PrepareParams.decode`). */
export const DEFAULT_DECODE: DecodeMode = "full";

/** The run's settings, every default applied and every value checked. */
export interface Settings {
  readonly mode: ReferenceMode;
  readonly resolution: number;
  readonly crop: CropMode;
  readonly aspect: number;
  readonly margin: number;
  readonly background: Background;
  readonly bgWeight: number;
  readonly feather: number;
  /** The rare word the model learns (`{token}` in captions). */
  readonly identifier: string;
  readonly className: string;
  readonly caption: string;
  readonly keepDoubtful: boolean;
  readonly decode: DecodeMode;
  /** Video samples per second. */
  readonly fps: number;
  /** Frames chosen per video. */
  readonly frames: number;
  /** Leave out the photos curation flags. */
  readonly curate: boolean;
  readonly trainer: TrainerChoice;
  readonly presets: {
    readonly diffusers?: DiffusersPreset;
    readonly kohya?: KohyaPreset;
    readonly onetrainer?: OneTrainerPreset;
  };
}

/**
 * Resolve and check the settings: the trainer presets (configs/), the resolution (the preset's
 * base model when not given), crop, background, loss weights, caption.
 * @throws UserError for the first bad value, naming it and the accepted range.
 */
export async function resolveSettings(params: PrepareParams, inputDir: string): Promise<Settings> {
  const trainer = params.trainer ?? "all";
  if (!["diffusers", "kohya", "onetrainer", "all"].includes(trainer)) {
    throw new UserError(
      `Expected diffusers, kohya, onetrainer or all for trainer but received ${JSON.stringify(trainer)}`,
    );
  }
  const configs = params.configsDir === undefined ? {} : { configsDir: params.configsDir };
  const chosen: Preset | undefined =
    params.preset === undefined ? undefined : await loadPreset({ name: params.preset, ...configs });
  if (chosen && trainer !== "all" && chosen.trainer !== trainer) {
    throw new UserError(`The preset ${params.preset} is for ${chosen.trainer}, not ${trainer}`, {
      hint: `pass --trainer ${chosen.trainer} or --trainer all, or another preset`,
    });
  }
  const wanted = (["diffusers", "kohya", "onetrainer"] as const).filter(
    (t) => trainer === "all" || trainer === t,
  );
  const presets: { diffusers?: DiffusersPreset; kohya?: KohyaPreset; onetrainer?: OneTrainerPreset } = {};
  for (const t of wanted) {
    const p = chosen?.trainer === t ? chosen : await loadPreset({ name: DEFAULT_PRESETS[t], ...configs });
    if (p.trainer === "diffusers") presets.diffusers = p;
    else if (p.trainer === "kohya") presets.kohya = p;
    else presets.onetrainer = p;
  }
  const defaults = await loadPrepareDefaults(configs);
  const resolution = params.resolution ?? chosen?.resolution ?? defaults.resolution[defaults.baseModel];
  if (!Number.isInteger(resolution) || resolution < 64 || resolution > 4096) {
    throw new UserError(`Expected an integer from 64 to 4096 for resolution but received ${resolution}`, {
      hint: "512 for SD 1.5, 1024 for SDXL and Flux",
    });
  }
  const aspect = params.aspect ?? 1;
  if (!Number.isFinite(aspect) || aspect <= 0 || aspect > 10 || aspect < 0.1) {
    throw new UserError(`Expected an aspect ratio between 1:10 and 10:1 but received ${aspect}`);
  }
  const bgWeight = params.bgWeight ?? DEFAULT_BG_WEIGHT;
  if (!(bgWeight >= 0 && bgWeight <= 1)) {
    throw new UserError(`Expected a number from 0 to 1 for the background weight but received ${bgWeight}`);
  }
  const feather = params.feather ?? DEFAULT_FEATHER;
  if (!(feather >= 0 && feather <= 256)) {
    throw new UserError(`Expected a number of pixels from 0 to 256 for feather but received ${feather}`);
  }
  const crop = params.crop ?? "subject";
  if (!["subject", "center", "none"].includes(crop)) {
    throw new UserError(`Expected subject, center or none for crop but received ${JSON.stringify(crop)}`);
  }
  const mode = params.mode ?? "persam";
  if (mode !== "persam" && mode !== "persam-f") {
    throw new UserError(`Expected persam or persam-f for mode but received ${JSON.stringify(mode)}`);
  }
  const fps = params.fps ?? DEFAULT_FPS;
  if (!(fps > 0 && fps <= 30)) {
    throw new UserError(`Expected a number above 0 and at most 30 for fps but received ${fps}`, {
      hint: "2 samples per second suits a phone clip; 0.5 a long one",
    });
  }
  const frames = params.frames ?? DEFAULT_FRAMES;
  if (!Number.isInteger(frames) || frames < 1 || frames > 200) {
    throw new UserError(`Expected an integer from 1 to 200 for frames but received ${frames}`, {
      hint: "DreamBooth wants 5–20 images in all",
    });
  }
  const margin = params.margin ?? 0.1;
  const decode = params.decode ?? DEFAULT_DECODE;
  if (decode !== "full" && decode !== "scaled") {
    throw new UserError(`Expected full or scaled for decode but received ${JSON.stringify(decode)}`);
  }
  const identifier = params.identifier ?? defaults.token ?? DEFAULT_TOKEN;
  const className = params.className ?? requireClassFromFolder(inputDir);
  const template = params.captionTemplate ?? defaults.instancePrompt;
  // Every one of these is written into captions, scripts and the card of a set that may be published.
  for (const [what, value] of [
    ["identifier", identifier],
    ["class", className],
    ["caption template", template],
  ] as const) {
    if (looksLikeHubToken(value)) {
      throw new UserError(
        `The ${what} looks like a Hugging Face token (hf_…): it would be written into the set`,
        {
          hint: "the Hub token goes in --token or HF_TOKEN; the rare word the model learns is --identifier",
        },
      );
    }
  }
  return {
    mode,
    resolution,
    crop,
    aspect,
    margin,
    background: parseBackground(params.background ?? DEFAULT_BACKGROUND),
    bgWeight,
    feather,
    identifier,
    className,
    caption: makeCaption({ token: identifier, className, template }),
    keepDoubtful: params.keepDoubtful ?? false,
    decode,
    fps,
    frames,
    curate: params.curate ?? false,
    trainer,
    presets,
  };
}
