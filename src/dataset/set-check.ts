// Whether an output folder holds a finished, consistent set that may be published: a `prepare`
// output whose last run finished (its manifest), not held by a running command, whose files are
// exactly the manifest's, unchanged since, and whose metadata.jsonl names only those files.

import { lstat, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { type KnownFileHashes, listLocalFiles } from "../hub/dataset-push.js";
import { hashFile } from "../util/hash-file.js";
import { metadataFileNames } from "../util/metadata-lines.js";
import { describeHolder, LOCK_FILE, lockHolderAlive, readRunLock } from "../util/run-lock.js";
import { readState, type SetManifest, STATE_FILE } from "./prepare-state.js";

/** What is wrong with a set. */
export type SetProblemKind =
  /** No `.persam/state.json`: not written by `prepare`. */
  | "not-prepare-output"
  /** The last run did not finish (or was a dry run, or an older persam-db): no manifest. */
  | "unfinished"
  /** A running command holds the folder's lock. */
  | "locked"
  /** A manifest file is not in the folder. */
  | "missing"
  /** A manifest file differs from what prepare wrote. */
  | "changed"
  /** A file of the folder that the manifest does not list. */
  | "extra"
  /** metadata.jsonl names a file outside the set, or a set image no row names. */
  | "metadata";

/** One problem, with the file it is about. */
export interface SetProblem {
  readonly kind: SetProblemKind;
  /** Path relative to the output folder, when the problem is about one file. */
  readonly path: string | undefined;
  readonly detail: string;
}

/** What {@link checkSetForPublish} found. */
export interface SetCheck {
  /** The output folder, absolute. */
  readonly outDir: string;
  /** True when the set may be published as it is. */
  readonly ok: boolean;
  /** The files to publish (the manifest's, sorted); empty without a manifest. */
  readonly files: readonly string[];
  /** Every problem found (the lock and the missing state stop the check early). */
  readonly problems: readonly SetProblem[];
  /** The manifest, if the folder has one. */
  readonly manifest: SetManifest | undefined;
  /**
   * sha256 and git blob id of each set file the check read and found as recorded, by path, so that
   * publishing does not read the set a second time to hash it.
   */
  readonly hashes: ReadonlyMap<string, KnownFileHashes>;
}

/** Folders whose PNG files are rows' images (`file_name`, `*_file_name`). */
const IMAGE_FOLDERS = ["images/", "masks/", "weights/", "rgba/"];

/**
 * Check an output folder before publishing (no network, nothing written): it must be a `prepare`
 * output (`.persam/state.json`) whose last run finished (the manifest in the state), no live
 * process may hold its lock, every manifest file must be there with its recorded size and sha256,
 * no other file may be there (state, temporary files of an interrupted write, `.git/` aside), and
 * every metadata.jsonl row must name set files only, every set image being named by a row.
 * @param params.lock whether a held lock is a problem (false when the caller holds it). @default true
 * @throws {UserError} when `outDir` is not a readable folder
 */
export async function checkSetForPublish(params: {
  outDir: string;
  lock?: boolean;
  signal?: AbortSignal | undefined;
}): Promise<SetCheck> {
  const outDir = resolve(params.outDir);
  const problems: SetProblem[] = [];
  const hashes = new Map<string, KnownFileHashes>();
  const done = (manifest: SetManifest | undefined): SetCheck => ({
    outDir,
    ok: problems.length === 0,
    files: manifest ? Object.keys(manifest.files).sort() : [],
    problems,
    manifest,
    hashes,
  });
  const info = await lstat(outDir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new UserError(info ? `${outDir} is not a folder` : `output folder ${outDir} does not exist`, {
      hint: "give the output folder of 'persam-db prepare' (for example my-cat.persam)",
    });
  }

  if (params.lock !== false) {
    const holder = await readRunLock(outDir);
    if (holder !== undefined && (holder === "unreadable" || lockHolderAlive(holder) !== false)) {
      problems.push({
        kind: "locked",
        path: LOCK_FILE,
        detail:
          holder === "unreadable"
            ? `it is locked by a file persam-db cannot read (${LOCK_FILE})`
            : `it is in use by ${describeHolder(holder)}`,
      });
      return done(undefined);
    }
  }

  const stateFile = await lstat(join(outDir, STATE_FILE)).catch(() => undefined);
  if (!stateFile?.isFile()) {
    problems.push({
      kind: "not-prepare-output",
      path: undefined,
      detail: `it is not an output folder of persam-db prepare (no ${STATE_FILE})`,
    });
    return done(undefined);
  }
  const { state, problem } = await readState(outDir);
  const manifest = problem === undefined ? state.manifest : undefined;
  if (manifest === undefined) {
    problems.push({
      kind: "unfinished",
      path: STATE_FILE,
      detail:
        problem === undefined
          ? "it holds no finished set (the last prepare run did not finish, or was a dry run)"
          : `its state cannot be read (${problem})`,
    });
    return done(undefined);
  }

  const { found, skipped } = await listLocalFiles({ outDir, signal: params.signal });
  const listed = new Set(Object.keys(manifest.files));
  const present = new Map(found.map((f) => [f.path, f]));
  for (const path of [...listed].sort()) {
    const expected = manifest.files[path]!;
    const file = present.get(path);
    if (!file) {
      problems.push({ kind: "missing", path, detail: `${path} is missing` });
      continue;
    }
    params.signal?.throwIfAborted();
    // The git blob id comes in the same pass, for the push that follows a good check.
    const { sha256, gitOid, size } =
      file.size === expected.size
        ? await hashFile(file.absPath, file.size)
        : { sha256: "", gitOid: undefined, size: file.size };
    if (size !== expected.size || sha256 !== expected.sha256) {
      problems.push({ kind: "changed", path, detail: `${path} changed since prepare wrote it` });
    } else if (gitOid !== undefined) hashes.set(path, { sha256, gitOid, size, version: file.version });
  }
  for (const f of found) {
    if (!listed.has(f.path))
      problems.push({ kind: "extra", path: f.path, detail: `${f.path} is not part of the set` });
  }
  for (const s of skipped) {
    if (s.kind === "link" || s.kind === "special" || s.kind === "name") {
      problems.push({
        kind: "extra",
        path: s.path,
        detail: `${s.path} is not part of the set (${s.reason})`,
      });
    }
  }
  if (listed.has("metadata.jsonl") && present.has("metadata.jsonl")) {
    problems.push(...(await metadataProblems(join(outDir, "metadata.jsonl"), listed)));
  }
  return done(manifest);
}

/** Rows naming files outside the set, rows that do not parse, and set images no row names. */
async function metadataProblems(path: string, listed: ReadonlySet<string>): Promise<SetProblem[]> {
  const problems: SetProblem[] = [];
  const named = new Set<string>();
  for (const { line, key, value } of metadataFileNames(await readFile(path, "utf8"))) {
    if (key === undefined) {
      problems.push({
        kind: "metadata",
        path: "metadata.jsonl",
        detail: `metadata.jsonl line ${line} is not JSON`,
      });
    } else if (typeof value !== "string" || !listed.has(value)) {
      problems.push({
        kind: "metadata",
        path: "metadata.jsonl",
        detail: `metadata.jsonl line ${line}: ${key} ${JSON.stringify(value)} is not a file of the set`,
      });
    } else named.add(value);
  }
  for (const file of listed) {
    if (IMAGE_FOLDERS.some((d) => file.startsWith(d)) && file.endsWith(".png") && !named.has(file)) {
      problems.push({
        kind: "metadata",
        path: file,
        detail: `${file} is in the set but no metadata.jsonl row names it`,
      });
    }
  }
  return problems;
}

/**
 * The one-line refusal for a set that failed the check: what is wrong (the first problem and how
 * many files are affected) and what to do.
 */
export function setCheckError(check: SetCheck): UserError {
  const first = check.problems[0];
  if (first === undefined)
    throw new RangeError("Expected a failed set check but received one without problems");
  const others = check.problems.length - 1;
  const more = others > 0 ? ` (and ${others} more problem${others === 1 ? "" : "s"})` : "";
  const hint =
    first.kind === "locked"
      ? "wait for that run to finish; --force publishes anyway"
      : first.kind === "not-prepare-output"
        ? "run 'persam-db prepare PHOTOS' and push the folder it writes (PHOTOS.persam); --force publishes this folder as it is"
        : "run 'persam-db prepare' again on the same photos to finish the set, then push; --force publishes the folder as it is";
  return new UserError(`${check.outDir} cannot be published: ${first.detail}${more}`, { hint });
}
