// A prepared set opened for review: its run lock held for as long as it is open (no `prepare`, `push`
// or second `review` on it meanwhile), how it was made (run record), its photos as the state lists
// them, and the decisions taken so far. Photos are known by their output stem; a stem is looked up
// here and never turned into a path by anyone else.

import { readFile, stat } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import { type RunRecord, readRunRecord } from "../dataset/prepare/run-record.js";
import {
  emptyState,
  type PhotoState,
  type PrepareState,
  readState,
  STATE_FILE,
} from "../dataset/prepare-state.js";
import type { PhotoReport, PrepareReport } from "../dataset/report.js";
import {
  emptyDecisions,
  type ReviewDecisions,
  readReviewDecisions,
  writeReviewDecisions,
} from "../dataset/review-decisions.js";
import { isInside, naturalCompare } from "../dataset/scan.js";
import { UserError } from "../errors.js";
import { hashFile } from "../util/hash-file.js";
import { acquireRunLock, type RunLock } from "../util/run-lock.js";

/** One photo of the set under review. */
export interface ReviewPhoto {
  readonly stem: string;
  /** Path relative to the photo folder, `/`-separated. */
  readonly file: string;
  /** Absolute path of the photo (inside the photo folder: checked when the set is read). */
  readonly path: string;
  /** sha256 of the photo when `prepare` read it. */
  readonly sha256: string;
  readonly width: number;
  readonly height: number;
  /** The photo's state (segmentation, outputs, thumbnails). */
  readonly state: PhotoState;
  /** Its row of report.json, when there is one. */
  readonly report: PhotoReport | undefined;
}

/** Parameters of {@link ReviewSet.open}. */
export interface OpenReviewSetParams {
  /** The output folder of `prepare`. */
  readonly outDir: string;
  /**
   * The command named in the lock.
   * @default "review"
   */
  readonly command?: string;
}

/** A prepared set, locked for review. Close it to release the lock. */
export class ReviewSet {
  private photoList: ReviewPhoto[] = [];
  private byStem = new Map<string, ReviewPhoto>();
  private stateValue: PrepareState;
  private reportValue: PrepareReport | undefined;
  private decisionsValue: ReviewDecisions;
  /** Notes about the set (photos that cannot be reviewed, decisions that could not be read). */
  readonly notes: string[] = [];
  /** Photos checked against their recorded sha256: size and mtime when the check passed. */
  private readonly verified = new Map<string, string>();
  private writes: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly outDir: string,
    readonly record: RunRecord,
    readonly lock: RunLock,
    state: PrepareState,
    decisions: ReviewDecisions,
  ) {
    this.stateValue = state;
    this.decisionsValue = decisions;
  }

  /**
   * Open a set for review: check that it is an output folder of `prepare` that knows its photo
   * folder, take its run lock, read its state, report and decisions.
   * @throws UserError for a folder that is not a prepared set (or was made by a persam-db that did
   *   not record its photo folder), and when another command holds the lock.
   */
  static async open(params: OpenReviewSetParams): Promise<ReviewSet> {
    const outDir = resolve(params.outDir);
    const info = await stat(outDir).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new UserError(info ? `${outDir} is not a folder` : `the output folder ${outDir} does not exist`, {
        hint: "give the output folder of 'persam-db prepare' (for example my-cat.persam)",
      });
    }
    if (!(await stat(join(outDir, STATE_FILE)).catch(() => undefined))) {
      throw new UserError(`${outDir} is not an output folder of persam-db prepare (no ${STATE_FILE})`, {
        hint: "run 'persam-db prepare PHOTOS' first, then review its output folder (PHOTOS.persam)",
      });
    }
    const run = await readRunRecord(outDir);
    if (!run.record) {
      throw new UserError(`${outDir} does not say which photo folder it was made from (${run.problem})`, {
        hint: "run 'persam-db prepare' on its photos once more with this version, then review it",
      });
    }
    const lock = await acquireRunLock({ outDir, command: params.command ?? "review" });
    try {
      // reload() reads the state, the decisions and the report.
      const set = new ReviewSet(outDir, run.record, lock, emptyState(), emptyDecisions());
      await set.reload();
      return set;
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  /** The photo folder the set was made from. */
  get inputDir(): string {
    return this.record.inputDir;
  }

  get state(): PrepareState {
    return this.stateValue;
  }

  /** report.json of the last run, when it could be read. */
  get report(): PrepareReport | undefined {
    return this.reportValue;
  }

  get decisions(): ReviewDecisions {
    return this.decisionsValue;
  }

  /** The photos that can be reviewed (segmented by `prepare`), in the report's order. */
  get photos(): readonly ReviewPhoto[] {
    return this.photoList;
  }

  /** The photo with this stem, or undefined (the only way from a request to a photo). */
  photo(stem: string): ReviewPhoto | undefined {
    return this.byStem.get(stem);
  }

  /** Read the state, report and decisions again (after a rebuild). */
  async reload(): Promise<void> {
    const read = await readState(this.outDir);
    this.stateValue = read.state;
    this.notes.length = 0;
    if (read.problem) this.notes.push(read.problem);
    const decisions = await readReviewDecisions(this.outDir);
    this.decisionsValue = decisions.decisions;
    if (decisions.problem) this.notes.push(decisions.problem);
    this.reportValue = await readFile(join(this.outDir, "report.json"), "utf8")
      .then((text) => JSON.parse(text) as PrepareReport)
      .catch(() => undefined);
    const reports = new Map((this.reportValue?.photos ?? []).map((p, i) => [p.stem, { p, i }]));
    const inputDir = this.inputDir;
    const list: ReviewPhoto[] = [];
    for (const [stem, ps] of Object.entries(this.stateValue.photos)) {
      const seg = ps.segmentation;
      if (!seg) continue;
      // Stems become file names in the set (masks, thumbnails): plain names only.
      if (stem === "" || stem === "." || stem === ".." || /[/\\\0]/.test(stem)) {
        this.notes.push(
          `${ps.relPath}: its name in the set is not a plain file name; left out of the review`,
        );
        continue;
      }
      const path = resolve(inputDir, ...ps.relPath.split("/"));
      // The state is ours, but a hand-edited one must not lead outside the photo folder.
      if (ps.relPath.split("/").some((part) => part === ".." || part === "") || !isInside(path, inputDir)) {
        this.notes.push(`${ps.relPath}: not a path inside the photo folder; left out of the review`);
        continue;
      }
      list.push({
        stem,
        file: ps.relPath,
        path,
        sha256: ps.sha256,
        width: seg.width,
        height: seg.height,
        state: ps,
        report: reports.get(stem)?.p,
      });
    }
    const order = (p: ReviewPhoto): number => reports.get(p.stem)?.i ?? Number.MAX_SAFE_INTEGER;
    list.sort((a, b) => order(a) - order(b) || naturalCompare(a.file, b.file));
    this.photoList = list;
    this.byStem = new Map(list.map((p) => [p.stem, p]));
    this.verified.clear();
  }

  /**
   * Check that a photo's file still holds the bytes `prepare` read (its embedding and mask belong to
   * them); checked again only when its size or modification time changes.
   * @throws UserError when it changed or cannot be read
   */
  async verifyPhoto(photo: ReviewPhoto): Promise<void> {
    const info = await stat(photo.path).catch(() => undefined);
    const stamp = info ? `${info.size}|${info.mtimeMs}` : "";
    if (info && this.verified.get(photo.stem) === stamp) return;
    const hash = info ? await hashFile(photo.path).catch(() => undefined) : undefined;
    if (hash?.sha256 !== photo.sha256) {
      throw new UserError(
        hash
          ? `${photo.file} changed since prepare read it`
          : `${photo.file} cannot be read in ${this.inputDir}${sep}`,
        { hint: "rebuild the set first (it reads the photo again)" },
      );
    }
    this.verified.set(photo.stem, stamp);
  }

  /**
   * Change the decisions and save them (atomically: a stopped review leaves the old or the new
   * decisions, never half of them).
   */
  updateDecisions(change: (decisions: ReviewDecisions) => void | Promise<void>): Promise<ReviewDecisions> {
    // One change at a time, each on the decisions the one before saved.
    const next = this.writes.then(async () => {
      const draft: ReviewDecisions = structuredClone(this.decisionsValue);
      await change(draft);
      await writeReviewDecisions(this.outDir, draft);
      this.decisionsValue = draft;
      return draft;
    });
    this.writes = next.catch(() => undefined);
    return next;
  }

  /** Resolves once every change of the decisions asked for so far is saved. */
  async idle(): Promise<void> {
    await this.writes;
  }

  /** Release the lock. Safe to call twice. */
  async close(): Promise<void> {
    await this.lock.release();
  }
}
