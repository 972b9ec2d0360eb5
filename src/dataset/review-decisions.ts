// What a person decided in `persam-db review`, kept in OUT/.persam/review/ and honoured by every later
// `prepare`: a mask override per photo (a 1-bit PNG, content-addressed, plus its record), an exclude or
// include decision per photo, and a reference photo + mask. Every decision names the photo's sha256;
// one whose photo changed since is ignored with a note. decisions.json is the one commit point: mask
// files are written before it and only files it names are ever read.

import { createHash } from "node:crypto";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { decodeMaskPng, encodeMaskPng } from "../image/mask-png.js";
import type { ReferenceSpec } from "../segment/persam/reference-source.js";
import { maskArea } from "../segment/sam/postprocess.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { STATE_DIR, settingsHash } from "./prepare-state.js";
import type { ScannedPhoto } from "./scan.js";

/** The review folder, relative to the output folder (never published: it is under `.persam/`). */
export const REVIEW_DIR = `${STATE_DIR}/review`;
/** The decisions, relative to the output folder. */
export const REVIEW_DECISIONS_FILE = `${REVIEW_DIR}/decisions.json`;
/** Mask files of overrides and of the reference, relative to {@link REVIEW_DIR}. */
const MASKS_SUBDIR = "masks";

/** A mask file name inside the review folder: `masks/<name>.png`, nothing else (no path reaches out). */
const maskFileName = z.string().regex(/^masks\/[A-Za-z0-9._-]+\.png$/);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

const promptSchema = z.strictObject({
  clicks: z
    .array(
      z.strictObject({
        x: z.number(),
        y: z.number(),
        label: z.union([z.literal(0), z.literal(1)]),
      }),
    )
    .max(256),
  box: z.tuple([z.number(), z.number(), z.number(), z.number()]).optional(),
  /** Which of SAM's outputs was taken (0 single-mask token, 1..3 multimask). */
  token: z.number().int().min(0).max(3),
});
/** The SAM prompt a mask was drawn from, in photo pixels. */
export type ReviewPrompt = z.infer<typeof promptSchema>;

const maskRecordSchema = z.strictObject({
  /** `masks/<stem>.<hash>.png`, relative to {@link REVIEW_DIR}. */
  file: maskFileName,
  sha256: sha256Hex,
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  /** Subject pixels. */
  area: z.number().int().nonnegative(),
  /** How the mask was drawn (absent: PerSAM's mask taken as it was). */
  prompt: promptSchema.optional(),
  /** ISO time of the decision. */
  at: z.string(),
});
/** A stored mask: the file, its hash and size, and how it was drawn. */
export type ReviewMaskRecord = z.infer<typeof maskRecordSchema>;

/** `include`: in the training set even when doubtful; `exclude`: never in it. */
export type PhotoDecision = "include" | "exclude";

const photoReviewSchema = z.strictObject({
  /** sha256 of the photo the decisions were made on. */
  photoSha256: sha256Hex,
  /** The photo's path relative to the photo folder, for people reading the file. */
  file: z.string(),
  override: maskRecordSchema.optional(),
  decision: z.enum(["include", "exclude"]).optional(),
});
/** The decisions about one photo. */
export type PhotoReview = z.infer<typeof photoReviewSchema>;

const decisionsSchema = z.strictObject({
  version: z.literal(1),
  /** By output stem. */
  photos: z.record(z.string(), photoReviewSchema),
  /** The photo and mask to take as PerSAM's reference. */
  reference: z
    .strictObject({ stem: z.string(), photoSha256: sha256Hex, file: z.string(), mask: maskRecordSchema })
    .optional(),
});
/** OUT/.persam/review/decisions.json. */
export type ReviewDecisions = z.infer<typeof decisionsSchema>;

/** No decisions yet. */
export function emptyDecisions(): ReviewDecisions {
  return { version: 1, photos: {} };
}

/**
 * Read the decisions of a set. A missing file means none; an unreadable or invalid one also gives
 * none, plus a one-line problem (nothing the review decided is then applied).
 */
export async function readReviewDecisions(
  outDir: string,
): Promise<{ decisions: ReviewDecisions; problem?: string }> {
  const path = join(outDir, REVIEW_DECISIONS_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    // No file, or no folder for it (an output path that is a file is reported by the state's reader).
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { decisions: emptyDecisions() };
    return {
      decisions: emptyDecisions(),
      problem: `cannot read ${path}; the review's decisions are ignored`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return {
      decisions: emptyDecisions(),
      problem: `${path} is not valid JSON; the review's decisions are ignored`,
    };
  }
  const parsed = decisionsSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return {
      decisions: emptyDecisions(),
      problem: `${path} is not a decisions file of this persam-db version (${first ? `${first.path.join(".")}: ${first.message}` : "invalid"}); the review's decisions are ignored`,
    };
  }
  return { decisions: parsed.data };
}

/**
 * Save the decisions atomically, then remove mask files they no longer name (left by replaced
 * overrides or by a write that was interrupted before its decisions were saved).
 */
export async function writeReviewDecisions(outDir: string, decisions: ReviewDecisions): Promise<void> {
  const checked = decisionsSchema.parse(decisions);
  await writeFileAtomic(join(outDir, REVIEW_DECISIONS_FILE), `${JSON.stringify(checked, null, 1)}\n`, {
    mkdir: true,
  });
  const named = new Set<string>();
  for (const p of Object.values(checked.photos)) if (p.override) named.add(p.override.file);
  if (checked.reference) named.add(checked.reference.mask.file);
  const dir = join(outDir, REVIEW_DIR, MASKS_SUBDIR);
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const name of entries) {
    // Hidden names are temporary files of writes in progress.
    if (!name.startsWith(".") && !named.has(`${MASKS_SUBDIR}/${name}`)) {
      await rm(join(dir, name), { force: true });
    }
  }
}

/** Parameters of {@link storeReviewMask}. */
export interface StoreReviewMaskParams {
  readonly outDir: string;
  /** A name for the file (the photo's stem, or `reference`); only letters, digits, `.`, `_`, `-`. */
  readonly name: string;
  /** Binary mask, `width × height`, non-zero = subject. */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly prompt?: ReviewPrompt | undefined;
}

/**
 * Write a mask as a 1-bit PNG under a name made of its content hash (so a file, once named by the
 * decisions, never changes) and return its record. Nothing refers to it until the decisions that
 * name it are saved.
 * @throws RangeError for a name with other characters, or a mask whose length does not match.
 */
export async function storeReviewMask(params: StoreReviewMaskParams): Promise<ReviewMaskRecord> {
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(params.name)) {
    throw new RangeError(
      `Expected letters, digits, '.', '_' or '-' for a mask name but received ${params.name}`,
    );
  }
  const png = encodeMaskPng(params.mask, params.width, params.height);
  const sha256 = createHash("sha256").update(png).digest("hex");
  const file = `${MASKS_SUBDIR}/${params.name}.${sha256.slice(0, 12)}.png`;
  await writeFileAtomic(join(params.outDir, REVIEW_DIR, file), png, { mkdir: true });
  const area = maskArea(params.mask);
  return {
    file,
    sha256,
    width: params.width,
    height: params.height,
    area,
    ...(params.prompt ? { prompt: params.prompt } : {}),
    at: new Date().toISOString(),
  };
}

/** Absolute path of a stored mask. */
export function reviewMaskPath(outDir: string, record: Pick<ReviewMaskRecord, "file">): string {
  return join(outDir, REVIEW_DIR, record.file);
}

/**
 * Read a stored mask back (0/1), checking its hash and size against the record.
 * @throws Error when the file is missing, changed or not the recorded size (callers that can go on
 *   without it check it first with {@link applicableReview}).
 */
export async function loadReviewMask(outDir: string, record: ReviewMaskRecord): Promise<Uint8Array> {
  const path = reviewMaskPath(outDir, record);
  const bytes = await readFile(path);
  if (createHash("sha256").update(bytes).digest("hex") !== record.sha256) {
    throw new Error(`${path} is not the mask the review stored (its content changed)`);
  }
  const decoded = decodeMaskPng(bytes);
  if (!decoded || decoded.width !== record.width || decoded.height !== record.height) {
    throw new Error(`Expected a ${record.width}×${record.height} 1-bit mask in ${path}`);
  }
  return decoded.mask;
}

/** The review's decisions that apply to the photos of a run. */
export interface ApplicableReview {
  /** Valid mask overrides, by stem (same photo bytes, mask file intact, photo's size). */
  readonly overrides: ReadonlyMap<string, ReviewMaskRecord>;
  /** Include / exclude decisions on unchanged photos, by stem. */
  readonly decisions: ReadonlyMap<string, PhotoDecision>;
  /** Stems whose override was ignored because the photo's bytes changed since. */
  readonly outdated: ReadonlySet<string>;
  /** The reference chosen in review (photo path and mask file), when its photo is unchanged. */
  readonly reference: ReferenceSpec | undefined;
  /** One line per ignored decision. */
  readonly notes: readonly string[];
}

/**
 * The decisions that apply to these photos: those made on the same photo bytes (by sha256), with
 * intact mask files of the photo's size. Anything else is ignored with a note.
 */
export async function applicableReview(params: {
  readonly outDir: string;
  readonly photos: readonly ScannedPhoto[];
}): Promise<ApplicableReview> {
  const { outDir } = params;
  const read = await readReviewDecisions(outDir);
  const notes: string[] = read.problem ? [read.problem] : [];
  const byStem = new Map(params.photos.map((p) => [p.stem, p]));
  const overrides = new Map<string, ReviewMaskRecord>();
  const decisions = new Map<string, PhotoDecision>();
  const outdated = new Set<string>();
  const intact = async (record: ReviewMaskRecord, photo: ScannedPhoto): Promise<boolean> => {
    if (record.width !== photo.width || record.height !== photo.height) return false;
    const bytes = await readFile(reviewMaskPath(outDir, record)).catch(() => undefined);
    return bytes !== undefined && createHash("sha256").update(bytes).digest("hex") === record.sha256;
  };
  for (const [stem, review] of Object.entries(read.decisions.photos)) {
    const photo = byStem.get(stem);
    if (!photo) continue; // the photo left the folder: nothing to apply it to
    if (photo.sha256 !== review.photoSha256) {
      if (review.override) {
        outdated.add(stem);
        notes.push(
          `the mask drawn in review for ${photo.relPath} is ignored: the photo changed since (review it again)`,
        );
      }
      if (review.decision) {
        notes.push(
          `the review's "${review.decision}" of ${photo.relPath} is ignored: the photo changed since`,
        );
      }
      continue;
    }
    if (review.decision) decisions.set(stem, review.decision);
    if (review.override) {
      if (await intact(review.override, photo)) {
        overrides.set(stem, review.override);
      } else {
        notes.push(
          `the mask drawn in review for ${photo.relPath} is ignored: its file ${REVIEW_DIR}/${review.override.file} is missing or damaged`,
        );
      }
    }
  }
  let reference: ReferenceSpec | undefined;
  const ref = read.decisions.reference;
  if (ref) {
    const photo = params.photos.find((p) => p.sha256 === ref.photoSha256);
    if (!photo) {
      notes.push(
        `the reference chosen in review (${ref.file}) is ignored: that photo changed or left the folder`,
      );
    } else if (!(await intact(ref.mask, photo))) {
      notes.push(
        `the reference chosen in review (${ref.file}) is ignored: its mask ${REVIEW_DIR}/${ref.mask.file} is missing or damaged`,
      );
    } else {
      reference = { photo: photo.path, maskPath: reviewMaskPath(outDir, ref.mask) };
    }
  }
  return { overrides, decisions, outdated, reference, notes };
}

/**
 * The segmentation key of one photo: the run's key, joined with the override's mask hash when the
 * photo has one, so that an override added, changed or removed redoes exactly that photo.
 */
export function photoSegmentationKey(runKey: string, override: ReviewMaskRecord | undefined): string {
  return override === undefined ? runKey : settingsHash({ run: runKey, override: override.sha256 });
}
