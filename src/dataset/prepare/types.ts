// The vocabulary of `prepare`: its parameters, events, plan entries and results, shared by the stages
// (settings, scan, plan, reference, per photo, exports, report, state) and by the library's callers.

import type { FusionTrainerOptions } from "../../segment/persam/persam-f.js";
import type { ReferenceMode, ReferenceSpec } from "../../segment/persam/reference-source.js";
import type { EmbeddingStore } from "../../segment/sam/embedding-cache.js";
import type { SamModel } from "../../segment/sam/sam-model.js";
import type { VideoTools } from "../../video/video-tools.js";
import type { Background } from "../background.js";
import type { CropMode } from "../crop.js";
import type { PrepareReport } from "../report.js";

/** Which trainer files to write. */
export type TrainerChoice = "diffusers" | "kohya" | "onetrainer" | "all";

/** Default preset of each trainer (configs/). */
export const DEFAULT_PRESETS = {
  diffusers: "diffusers-sd15-lora",
  kohya: "kohya-sd15-lora",
  onetrainer: "onetrainer-sd15-lora",
} as const;

/** How `prepare` decodes photos (see `PrepareParams.decode`). */
export type DecodeMode = "full" | "scaled";

/** What happens to a photo in this run. */
export type PhotoAction = "skip" | "outputs" | "segment" | "exclude" | "fail";

/** One line of the plan. */
export interface PlanEntry {
  readonly stem: string;
  /** Path relative to the input folder. */
  readonly file: string;
  readonly action: PhotoAction;
  /** Why, in a few words. */
  readonly reason: string;
}

/** Outcome of one photo. */
export interface PhotoResult {
  readonly stem: string;
  readonly file: string;
  /**
   * `ok`: in the training set; `doubtful`: in it with --keep-doubtful; `excluded`: doubtful and left
   * out; `failed`: could not be processed.
   */
  readonly status: "ok" | "doubtful" | "excluded" | "failed";
  readonly action: PhotoAction;
  readonly reason?: string;
  readonly confidence?: number;
  readonly flags: readonly string[];
  /** Output files relative to the output folder (photos in the training set). */
  readonly outputs?: Readonly<Record<string, string>>;
}

/** Progress and diagnostics, in the order they happen. */
export type PrepareEvent =
  | { readonly type: "scan"; readonly photos: number; readonly problems: readonly string[] }
  | { readonly type: "plan"; readonly entries: readonly PlanEntry[] }
  | { readonly type: "reference"; readonly reused: boolean; readonly description: string }
  /** The image encoder ran on a photo (an embedding-cache miss). */
  | { readonly type: "encode"; readonly photoSha256: string }
  /** A photo was decoded at full resolution (at most once per photo and step, see design §6). */
  | { readonly type: "decode"; readonly path: string }
  | { readonly type: "photo-start"; readonly stem: string; readonly action: PhotoAction }
  | { readonly type: "photo"; readonly result: PhotoResult; readonly done: number; readonly total: number }
  | { readonly type: "warning"; readonly message: string }
  /** A video's frames were chosen: sampled candidates, chosen frames. */
  | { readonly type: "video"; readonly file: string; readonly candidates: number; readonly chosen: number }
  | { readonly type: "exports"; readonly files: readonly string[] };

/** Parameters of `prepare` (and of its first half, `planPrepare`). */
export interface PrepareParams {
  /** The folder of photos and videos, or one video file (never modified). */
  readonly inputDir: string;
  /**
   * The output folder.
   * @default the sibling `<inputDir>.persam`
   */
  readonly outDir?: string | undefined;
  /**
   * The SAM model's files: identify the model in the settings hashes, so that a rerun knows what to
   * redo. Required unless `dryRun` (where `modelKey` may identify it instead).
   */
  readonly modelFiles?: SamModel["files"] | undefined;
  /** Identity of the model for a dry run without model files (see `modelKeyOf`). */
  readonly modelKey?: string | undefined;
  /**
   * The user's references; empty → the `<stem>.mask.png` beside photos, else an automatic choice.
   * @default []
   */
  readonly references?: readonly ReferenceSpec[] | undefined;
  /** @default "persam" */
  readonly mode?: ReferenceMode | undefined;
  /** PerSAM-F optimiser settings (defaults: the reference implementation's). */
  readonly fusionTrainer?: FusionTrainerOptions | undefined;
  /** Shorter side of the training images. @default the preset's, else 512 */
  readonly resolution?: number | undefined;
  /** @default "subject" */
  readonly crop?: CropMode | undefined;
  /** Crop aspect, width / height. @default 1 */
  readonly aspect?: number | undefined;
  /** Context around the subject, fraction of its box. @default 0.1 */
  readonly margin?: number | undefined;
  /** @default "white" */
  readonly background?: Background | string | undefined;
  /** Loss-weight floor of the background. @default 0.1 */
  readonly bgWeight?: number | undefined;
  /** Soft edge of the loss weights, in output pixels. @default 8 */
  readonly feather?: number | undefined;
  /**
   * The rare word the model learns for the subject (DreamBooth's identifier; `{token}` in the
   * caption template). Never a Hub token: a value that looks like one is refused.
   * @default "sks"
   */
  readonly identifier?: string | undefined;
  /** The subject's class noun. @default from the folder name (captions.ts, classFromFolder) */
  readonly className?: string | undefined;
  /** @default "a photo of {token} {class}" */
  readonly captionTemplate?: string | undefined;
  /** Keep doubtful photos in the training set. @default false */
  readonly keepDoubtful?: boolean | undefined;
  /** @default "all" */
  readonly trainer?: TrainerChoice | undefined;
  /** A preset name from configs/ (its trainer's default preset is replaced). */
  readonly preset?: string | undefined;
  /** Folder of presets. @default the package's configs/ */
  readonly configsDir?: string | undefined;
  /** Redo everything (state and embedding cache ignored). @default false */
  readonly force?: boolean | undefined;
  /** Plan only; write nothing. @default false */
  readonly dryRun?: boolean | undefined;
  /** Photos processed at once. @default 1 */
  readonly jobs?: number | undefined;
  /** Scan subfolders. @default false */
  readonly recursive?: boolean | undefined;
  /**
   * Where photo embeddings are cached across runs and commands.
   * @default the user's cache (`defaultEmbeddingCache`)
   */
  readonly embeddingCache?: EmbeddingStore | undefined;
  /**
   * How photos are decoded: `full` gives the encoder the reference's pixels (a PIL resize of the
   * whole photo); `scaled` decodes JPEGs at the smallest DCT scale that still holds the encoder's
   * 1024 pixels and the training resolution (faster, a documented deviation: README, "How PerSAM is
   * reproduced"). Masks and coordinates are at the photo's size either way.
   * @default "full"
   */
  readonly decode?: DecodeMode | undefined;
  /** Pixel limit per photo (and per video frame). @default DEFAULT_MAX_PIXELS */
  readonly maxPixels?: number | undefined;
  /** Video samples per second. @default 2 */
  readonly fps?: number | undefined;
  /** Frames chosen per video. @default 12 */
  readonly frames?: number | undefined;
  /**
   * Leave out photos that curation flags (blurry, duplicate, near-duplicate, subject small or at the
   * edge, low resolution); without it they are only flagged in the report.
   * @default false
   */
  readonly curate?: boolean | undefined;
  /**
   * ffmpeg and ffprobe for videos; `null`: none (videos are then left out with one line each).
   * @default found on PATH or in the optional npm packages (findVideoTools), when the input has videos
   */
  readonly videoTools?: VideoTools | null | undefined;
  /** Tool name for the report. @default "persam-db" */
  readonly tool?: string | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: PrepareEvent) => void) | undefined;
}

/** What `prepare` did (or, with `dryRun`, would do). */
export interface PrepareResult {
  readonly inputDir: string;
  readonly outDir: string;
  readonly dryRun: boolean;
  readonly plan: readonly PlanEntry[];
  /** Per photo, in scan order (failed ones included). */
  readonly photos: readonly PhotoResult[];
  /** One line per skipped input file, duplicate or other problem. */
  readonly warnings: readonly string[];
  readonly counts: {
    readonly found: number;
    readonly kept: number;
    readonly doubtfulKept: number;
    readonly excluded: number;
    readonly failed: number;
    readonly skippedFiles: number;
    readonly duplicates: number;
    readonly segmented: number;
    readonly outputsWritten: number;
    readonly unchanged: number;
    readonly encoded: number;
    /** Videos read (their chosen frames count in `found`). */
    readonly videos: number;
  };
  /** 0 when everything went in, 2 (ExitCode.partial) when anything was skipped or excluded. */
  readonly exitCode: 0 | 2;
  /** The report data (absent in a dry run). */
  readonly report?: PrepareReport;
  /** The terminal summary table (absent in a dry run). */
  readonly summary?: string;
  /** Files written at the top of the output folder (exports, metadata, report). */
  readonly files: readonly string[];
}
