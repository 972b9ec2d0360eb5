// The resumable state of a `prepare` output folder (OUT/.persam/state.json): settings hashes split by
// stage and, per photo, the input hash plus what segmentation and the outputs produced, so a rerun
// redoes only what a changed setting or a missing file affects (design §5).

import { createHash } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { systemUserError, UserError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { hashFile } from "../util/hash-file.js";

/** Folder of the state inside the output folder. */
export const STATE_DIR = ".persam";
/** The state file, relative to the output folder. */
export const STATE_FILE = `${STATE_DIR}/state.json`;
/** Full-resolution masks (one grey 0/255 PNG per photo), relative to the output folder. */
export const MASKS_DIR = `${STATE_DIR}/masks`;
/** Report thumbnails, relative to the output folder. */
export const THUMBS_DIR = `${STATE_DIR}/thumbs`;
/** Full-resolution frames chosen from videos (the photos of the set that videos give). */
export const FRAMES_DIR = `${STATE_DIR}/frames`;
/** Sampled video frames, by video content and sampling settings (video-stage.ts). */
export const CANDIDATES_DIR = `${STATE_DIR}/candidates`;
/** Embedding cache, relative to the output folder. */
export const EMBEDDINGS_DIR = `${STATE_DIR}/embeddings`;

const fileRecord = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
});
/** Hash and size of a written file. */
export type FileRecord = z.infer<typeof fileRecord>;

const point = z.tuple([z.number(), z.number()]);
const box = z.tuple([z.number(), z.number(), z.number(), z.number()]);

const segmentationRecord = z.strictObject({
  /** Segmentation settings hash this result belongs to. */
  key: z.string(),
  /** `.persam/masks/<stem>.png`. */
  maskFile: z.string(),
  mask: fileRecord,
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  area: z.number().int().nonnegative(),
  confidence: z.number().min(0).max(1),
  doubtful: z.boolean(),
  flags: z.array(z.string()),
  iouScore: z.number(),
  positive: point.optional(),
  negative: point.optional(),
  /** Set for a reference photo whose mask the user gave. */
  reference: z.boolean().optional(),
  timingsMs: z.record(z.string(), z.number()),
});
/** What segmentation produced for one photo. */
export type SegmentationRecord = z.infer<typeof segmentationRecord>;

const outputsRecord = z.strictObject({
  /** Output settings hash these files belong to. */
  key: z.string(),
  /** Files relative to the output folder. */
  files: z.record(z.string(), fileRecord),
  row: z.record(z.string(), z.unknown()),
  crop: z.strictObject({ left: z.number(), top: z.number(), width: z.number(), height: z.number() }),
  cropFlags: z.array(z.string()),
  box: box.optional(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  timingsMs: z.record(z.string(), z.number()),
});
/** The training files of one photo. */
export type OutputsRecord = z.infer<typeof outputsRecord>;

const photoMeasure = z.strictObject({
  sharpness: z.number(),
  hash: z.string(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  box: box.optional(),
  feature: z.array(z.number()).optional(),
});

const photoState = z.strictObject({
  relPath: z.string(),
  sha256: z.string(),
  segmentation: segmentationRecord.optional(),
  outputs: outputsRecord.optional(),
  /** Curation measures of the photo and its mask (curation.ts); redone with its segmentation. */
  curation: photoMeasure.optional(),
  /** Why --curate left the photo out (its training files were removed). */
  curatedOut: z.string().optional(),
  /** Report thumbnails, relative to the output folder. */
  thumbs: z.strictObject({ photo: z.string(), mask: z.string() }).optional(),
});
/** Everything known about one photo (keyed by its output stem). */
export type PhotoState = z.infer<typeof photoState>;

const videoState = z.strictObject({
  relPath: z.string(),
  sha256: z.string(),
  /** Sampling settings hash (fps, size) of the candidates. */
  sampling: z.string(),
  /** Choice settings hash (sampling, frames wanted, gap, segmentation) of `frames`. */
  choice: z.string(),
  /** The chosen frames, as photos of the set (`.persam/frames/<stem>.png`). */
  frames: z.array(
    z.strictObject({
      stem: z.string(),
      index: z.number().int().nonnegative(),
      time: z.number(),
      file: z.string(),
      record: fileRecord,
      width: z.number().int().positive(),
      height: z.number().int().positive(),
    }),
  ),
  /** The video's report entry (report.ts, VideoReport). */
  report: z.record(z.string(), z.unknown()),
});
/** What the last run chose from one video (keyed by the video's stem). */
export type VideoState = z.infer<typeof videoState>;

const manifestSchema = z.strictObject({
  version: z.literal(1),
  /** ISO time the run that wrote it finished. */
  createdAt: z.string(),
  /** Every file meant for publication, by its path relative to the output folder (`/`-separated; never `.persam/`). */
  files: z.record(z.string(), fileRecord),
});
/**
 * The finished set: written at the very end of a successful prepare that writes, removed at the
 * start of any prepare run that writes (src/dataset/set-check.ts publishes exactly these files).
 */
export type SetManifest = z.infer<typeof manifestSchema>;

const stateSchema = z.strictObject({
  version: z.literal(1),
  /** Settings hash of each stage. */
  settings: z.strictObject({ segmentation: z.string(), outputs: z.string(), exports: z.string() }),
  /** The resolved reference: what it was resolved from, its identity and its report entry. */
  reference: z
    .strictObject({ inputKey: z.string(), identity: z.string(), report: z.record(z.string(), z.unknown()) })
    .optional(),
  photos: z.record(z.string(), photoState),
  /** Videos of the input and the frames chosen from them. */
  videos: z.record(z.string(), videoState).optional(),
  /** Export files written by the last run, relative to the output folder. */
  exportFiles: z.array(z.string()),
  /** The finished set, present only after a successful run (see {@link SetManifest}). */
  manifest: manifestSchema.optional(),
  updatedAt: z.string(),
});
/** OUT/.persam/state.json. */
export type PrepareState = z.infer<typeof stateSchema>;

/** A new, empty state. */
export function emptyState(): PrepareState {
  return {
    version: 1,
    settings: { segmentation: "", outputs: "", exports: "" },
    photos: {},
    exportFiles: [],
    updatedAt: new Date(0).toISOString(),
  };
}

/**
 * A stable short hash of plain JSON data: object keys sorted, so the same settings always give the
 * same key whatever order they were built in.
 */
export function settingsHash(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex").slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (value === undefined) return "null";
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    return `[${Array.from(value as ArrayLike<unknown>, canonicalJson).join(",")}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** sha256 (hex) and size of bytes. */
export function recordOf(bytes: Uint8Array | string): FileRecord {
  const buffer = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
  return { sha256: createHash("sha256").update(buffer).digest("hex"), size: buffer.byteLength };
}

/** The record of a file on disk (read as a stream), or undefined when it is missing or unreadable. */
export async function fileRecordOf(path: string): Promise<FileRecord | undefined> {
  try {
    const { sha256, size } = await hashFile(path);
    return { sha256, size };
  } catch {
    return undefined;
  }
}

/** True when every file exists under `root` with the recorded size and hash. */
export async function filesIntact(
  root: string,
  files: Readonly<Record<string, FileRecord>>,
): Promise<boolean> {
  for (const [rel, expected] of Object.entries(files)) {
    const actual = await fileRecordOf(join(root, rel));
    if (!actual || actual.size !== expected.size || actual.sha256 !== expected.sha256) return false;
  }
  return true;
}

/**
 * Read OUT/.persam/state.json. A missing file gives an empty state; an unreadable or invalid one
 * also gives an empty state plus a one-line problem (everything is then redone, nothing is lost).
 * @throws UserError when the output folder is a file or cannot be read (permission, too many open
 * files): nothing could be written there either.
 */
export async function readState(outDir: string): Promise<{ state: PrepareState; problem?: string }> {
  const path = join(outDir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { state: emptyState() };
    // The output path is a file (or lies under one), or may not be read: nothing can be written
    // there either, so this is the user's to fix now rather than a warning before a failure.
    if (code === "ENOTDIR") {
      const info = await stat(outDir).catch(() => undefined);
      if (info && !info.isDirectory()) {
        throw new UserError(`The output folder ${outDir} is a file`, {
          hint: "choose another output folder (-o DIR), or move the file out of the way",
          cause: error,
        });
      }
    }
    const system = systemUserError(error, code === "ENOTDIR" ? outDir : path);
    if (system) throw system;
    return { state: emptyState(), problem: `cannot read ${path}; everything is redone` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { state: emptyState(), problem: `${path} is not valid JSON; everything is redone` };
  }
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return {
      state: emptyState(),
      problem: `${path} is not a state file of this persam-db version (${first ? `${first.path.join(".")}: ${first.message}` : "invalid"}); everything is redone`,
    };
  }
  return { state: parsed.data };
}

/**
 * The state of one run, saved after every change (atomically, one write at a time), so an
 * interrupted run leaves a state that describes exactly the files that are complete.
 */
export class StateStore {
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly outDir: string,
    readonly state: PrepareState,
  ) {}

  /** Apply `change` to the state and save it. Saves are serialised. */
  update(change: (state: PrepareState) => void): Promise<void> {
    change(this.state);
    const snapshot = JSON.stringify({ ...this.state, updatedAt: new Date().toISOString() }, null, 1);
    const next = this.queue.then(async () => {
      const path = join(this.outDir, STATE_FILE);
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, snapshot, { fsync: false });
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Wait for pending saves. */
  async flush(): Promise<void> {
    await this.queue;
  }
}
