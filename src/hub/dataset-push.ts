// Publishing a set of files as a Hugging Face dataset: plan (the given file list, or a walk of the
// folder that never leaves it; hashes), create the repo, compare with the branch head, upload only
// new or changed files in one atomic commit. Every request goes through the Hub fetch (time limits,
// retries, credentials only to the endpoint); the token never reaches a message, a log line or a file.

import type { Stats } from "node:fs";
import { lstat, readdir, readFile, realpath } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { redact } from "../config.js";
import { UserError } from "../errors.js";
import { hashFile } from "../util/hash-file.js";
import { metadataFileNames } from "../util/metadata-lines.js";
import {
  commitToHub,
  createHubBranch,
  createHubRepo,
  type HubCommitOperation,
  type HubConnection,
  type HubRepo,
  HubUserError,
  hubRepoExists,
  hubRepoUrl,
  listHubFiles,
  resolveRevision,
} from "./hub-api.js";
import { DEFAULT_HUB_HTTP, type HubHttpOptions } from "./hub-fetch.js";

/** How transient failures (5xx, 429, dropped connections) are retried, per HTTP request. */
export interface PushRetryOptions {
  /** Attempts per request, the first included. @default 4 */
  readonly tries?: number;
  /** Wait before retry k (k = 0, 1, …) is `baseDelayMs · 2^k`. @default 500 */
  readonly baseDelayMs?: number;
  /** Upper bound of one backoff wait. @default 30000 */
  readonly maxDelayMs?: number;
}

/** Progress events of {@link pushDataset}. */
export type PushProgress =
  | { readonly phase: "hash"; readonly done: number; readonly total: number; readonly path: string }
  | {
      readonly phase: "plan";
      readonly upload: number;
      readonly uploadBytes: number;
      readonly unchanged: number;
    }
  /** One large (LFS) file finished uploading; small files travel inside the commit. */
  | { readonly phase: "upload"; readonly path: string; readonly bytes: number }
  | { readonly phase: "retry"; readonly attempt: number; readonly waitMs: number; readonly reason: string }
  | { readonly phase: "commit"; readonly files: number };

/** Parameters of {@link pushDataset}. */
export interface PushDatasetParams {
  /** The output folder of `persam-db prepare`. */
  readonly outDir: string;
  /** Dataset repo id, `namespace/name`. */
  readonly repo: string;
  /** Create the repo as private (an existing repo keeps its visibility). @default false */
  readonly private?: boolean | undefined;
  /**
   * Branch to compare with and commit to; a missing branch is created from the head of main (not
   * with `pr`: a pull request needs an existing branch). @default "main"
   */
  readonly branch?: string | undefined;
  /** Open a pull request instead of committing to the branch. @default false */
  readonly pr?: boolean | undefined;
  /** Commit title. @default a summary of report.json (model, mode, photo count) */
  readonly message?: string | undefined;
  /** Also delete files on the Hub that are not in `outDir` (`.gitattributes` is kept). @default false */
  readonly prune?: boolean | undefined;
  /** Only plan: read the Hub, write nothing. @default false */
  readonly dryRun?: boolean | undefined;
  /**
   * Exactly the files to publish, relative to `outDir` with `/` separators (a finished set's
   * manifest, see src/dataset/set-check.ts); each must be a regular file inside `outDir`.
   * @default undefined (every regular file of `outDir` except state, temporary files and links)
   */
  readonly files?: readonly string[] | undefined;
  /**
   * Hashes already taken of some of those files, by path, as the set check gives them; a file
   * listed again with the same size and version is not read again to hash it.
   */
  readonly hashes?: ReadonlyMap<string, KnownFileHashes> | undefined;
  /** Offline mode (HF_HUB_OFFLINE): refuse at once, before any request. @default false */
  readonly offline?: boolean | undefined;
  /** Time limits and retries of every Hub request. @default DEFAULT_HUB_HTTP */
  readonly http?: HubHttpOptions | undefined;
  /** Token with write access (optional for a dry run). */
  readonly token: string | undefined;
  /** Hub base URL. @default "https://huggingface.co" */
  readonly endpoint?: string | undefined;
  /** A fetch to use instead of the global one. @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
  /** @default undefined */
  readonly onProgress?: ((event: PushProgress) => void) | undefined;
  /** @default undefined */
  readonly signal?: AbortSignal | undefined;
  /** Retries (the same fields of `http`, which it overrides). @default { tries: 4, baseDelayMs: 500, maxDelayMs: 30000 } */
  readonly retry?: PushRetryOptions | undefined;
  /** Silence the Hub library's console.debug lines (for --json). @default false */
  readonly quiet?: boolean | undefined;
}

/** One local file of the plan. */
export interface PushFile {
  /** Path in the repo (relative to `outDir`, `/` separators). */
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/** Why a file or folder of `outDir` is not uploaded. */
export type PushSkipKind = "state" | "temp" | "git" | "link" | "special" | "name";

/** A file or folder left out, and why. */
export interface PushSkipped {
  readonly path: string;
  readonly kind: PushSkipKind;
  readonly reason: string;
}

/** What {@link pushDataset} did (or, for a dry run, would do). */
export interface PushResult {
  /** `namespace/name`. */
  readonly repo: string;
  readonly repoUrl: string;
  readonly branch: string;
  readonly dryRun: boolean;
  /** Whether the repo did not exist (a dry run creates nothing). */
  readonly repoCreated: boolean;
  /** Whether the branch did not exist and was (or, for a dry run, would be) created from main. */
  readonly branchCreated: boolean;
  /** The branch head the comparison was made against (undefined when the repo does not exist yet). */
  readonly parentCommit: string | undefined;
  /** The new commit (absent when nothing was committed). */
  readonly commitOid?: string;
  readonly commitUrl?: string;
  readonly pullRequestUrl?: string;
  /** Commit title used (or that would be used). */
  readonly title: string;
  /** Files sent (or to send): new or changed. */
  readonly uploaded: readonly PushFile[];
  readonly uploadedBytes: number;
  /** Files already on the Hub with the same content. */
  readonly unchanged: readonly PushFile[];
  readonly skipped: readonly PushSkipped[];
  /** Files on the Hub that are not in `outDir` (kept unless `prune`). */
  readonly remoteOnly: readonly string[];
  /** Files deleted on the Hub (`prune`). */
  readonly deleted: readonly string[];
  /** True when the Hub already had exactly these files: no commit was made. */
  readonly upToDate: boolean;
}

/** A local file with its two content ids. */
interface LocalFile extends PushFile {
  readonly absPath: string;
  /** Git blob id: sha1 of `"blob <size>\0" + bytes` (what the Hub lists for non-LFS files). */
  readonly gitOid: string;
}

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const TEMP_NAME = /\.tmp($|[.\-_~])|\.incomplete$|\.partial$|~$/i;
const HASH_CONCURRENCY = 4;

/** A regular file found in `outDir`, not hashed yet. */
export interface FoundFile {
  readonly path: string;
  readonly absPath: string;
  readonly size: number;
  /** Device, inode and change times when listed: a file written or replaced since has another. */
  readonly version: string;
}

/** Hashes taken of a listed file; they hold while the file keeps the size and version it had. */
export interface KnownFileHashes {
  readonly sha256: string;
  readonly gitOid: string;
  readonly size: number;
  readonly version: string;
}

/** {@link FoundFile.version} from a file's lstat. */
function fileVersion(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.mtimeMs}:${st.ctimeMs}`;
}

/**
 * Every regular file inside `outDir`, plus what was left out and why. Symbolic links are never
 * followed (not even to files inside the folder); the `.persam/` state folder, `.git/` and
 * temporary files are skipped. Paths are sorted.
 * @throws {UserError} when `outDir` is not a readable folder
 */
export async function listLocalFiles(params: {
  readonly outDir: string;
  readonly signal?: AbortSignal | undefined;
}): Promise<{ found: FoundFile[]; skipped: PushSkipped[] }> {
  const root = resolve(params.outDir);
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(root);
  } catch (error) {
    throw new UserError(`output folder ${root} does not exist`, {
      hint: "run 'persam-db prepare PHOTOS' first, or give the folder it wrote",
      cause: error,
    });
  }
  if (!info.isDirectory()) {
    throw new UserError(`${root} is not a folder`, {
      hint: "give the output folder of 'persam-db prepare' (for example my-cat.persam)",
    });
  }
  const found: FoundFile[] = [];
  const skipped: PushSkipped[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    params.signal?.throwIfAborted();
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const entry of entries) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      const absPath = join(dir, entry.name);
      // lstat, not the dirent type alone: never follow a link, whatever it points at.
      const st = await lstat(absPath);
      if (st.isSymbolicLink()) {
        skipped.push({
          path,
          kind: "link",
          reason: "symbolic link (links are never followed; copy the file in)",
        });
      } else if (st.isDirectory()) {
        if (rel === "" && entry.name === ".persam") {
          skipped.push({
            path: `${path}/`,
            kind: "state",
            reason: "persam-db resume state, not part of the dataset",
          });
        } else if (entry.name === ".git") {
          skipped.push({ path: `${path}/`, kind: "git", reason: "git folder" });
        } else {
          await walk(absPath, path);
        }
      } else if (!st.isFile()) {
        skipped.push({ path, kind: "special", reason: "not a regular file" });
      } else if (TEMP_NAME.test(entry.name)) {
        skipped.push({ path, kind: "temp", reason: "temporary file of an unfinished write" });
      } else if (/[\\\x00-\x1f\x7f]/.test(entry.name)) {
        skipped.push({ path, kind: "name", reason: "file name with a backslash or control character" });
      } else {
        found.push({ path, absPath, size: st.size, version: fileVersion(st) });
      }
    }
  };
  await walk(root, "");
  return { found, skipped };
}

/**
 * The files of an explicit list, each checked to be a regular file (never a link) inside `outDir`;
 * sorted by path.
 * @throws {UserError} naming the first path that is absolute, leaves the folder, or is not a file
 */
export async function listGivenFiles(outDir: string, files: readonly string[]): Promise<FoundFile[]> {
  const root = resolve(outDir);
  const out: FoundFile[] = [];
  for (const path of [...new Set(files)].sort()) {
    const parts = path.split("/");
    if (path === "" || path.includes("\\") || parts.some((p) => p === "" || p === "." || p === "..")) {
      throw new UserError(`'${path}' is not a path inside the output folder`, {
        hint: "list files relative to the folder, with / separators",
      });
    }
    const absPath = join(root, ...parts);
    if (!absPath.startsWith(root + sep)) {
      throw new UserError(`'${path}' is not a path inside the output folder`, {
        hint: "list files relative to the folder, with / separators",
      });
    }
    const st = await lstat(absPath).catch(() => undefined);
    // A linked folder on the way would lead outside: the real path must stay inside too.
    const real = st?.isFile() ? await realpath(absPath).catch(() => "") : "";
    if (!st?.isFile() || !real.startsWith((await realpath(root)) + sep)) {
      throw new UserError(`${path} is missing from ${root} (or is not a regular file)`, {
        hint: "run 'persam-db prepare' again on the same photos to rewrite the output folder, then push",
      });
    }
    out.push({ path, absPath, size: st.size, version: fileVersion(st) });
  }
  return out;
}

/** sha256 and git blob id of each file, a few at a time, in the order given. */
async function hashLocalFiles(
  found: readonly FoundFile[],
  known: PushDatasetParams["hashes"],
  onProgress: ((event: PushProgress) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<LocalFile[]> {
  const files: LocalFile[] = new Array(found.length);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < found.length) {
      const i = next++;
      const f = found[i]!;
      signal?.throwIfAborted();
      const had = known?.get(f.path);
      files[i] = {
        ...f,
        ...(had !== undefined && had.size === f.size && had.version === f.version
          ? { sha256: had.sha256, gitOid: had.gitOid }
          : await hashListed(f)),
      };
      done += 1;
      onProgress?.({ phase: "hash", done, total: found.length, path: f.path });
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_CONCURRENCY, found.length) }, worker));
  return files;
}

/** sha256 and git blob sha1 of a listed file in one pass; a size change since the listing is refused. */
async function hashListed(f: FoundFile): Promise<{ sha256: string; gitOid: string }> {
  const { sha256, gitOid, size: read } = await hashFile(f.absPath, f.size);
  if (read !== f.size) {
    throw new UserError(
      `${f.path} changed while it was being read (${f.size} bytes expected, ${read} read)`,
      {
        hint: "wait until 'persam-db prepare' has finished, then push again",
      },
    );
  }
  return { sha256, gitOid: gitOid! }; // present: a git size was given
}

/**
 * Rows of `metadata.jsonl` that name a file which is not going to be on the Hub (missing, skipped,
 * outside the folder): such a dataset would not load.
 */
function metadataProblems(text: string, present: ReadonlySet<string>, remote: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const { line, key, value } of metadataFileNames(text)) {
    if (key === undefined) problems.push(`metadata.jsonl line ${line} is not valid JSON`);
    else if (typeof value === "string" && !present.has(value) && !remote.has(value)) {
      problems.push(`metadata.jsonl line ${line}: ${key} '${value}' is not a file of the output folder`);
    }
  }
  return problems;
}

/** A one-line commit title from report.json (model, mode, photos), or a plain default. */
export async function defaultCommitTitle(outDir: string): Promise<{ title: string; description: string }> {
  let report: unknown;
  try {
    report = JSON.parse(await readFile(join(outDir, "report.json"), "utf8"));
  } catch {
    return { title: "Upload persam-db dataset", description: "" };
  }
  const r = (typeof report === "object" && report !== null ? report : {}) as {
    settings?: unknown;
    photos?: unknown;
    tool?: unknown;
  };
  const settings = (typeof r.settings === "object" && r.settings !== null ? r.settings : {}) as Record<
    string,
    unknown
  >;
  const text = (v: unknown): string | undefined =>
    typeof v === "string" || typeof v === "number" || typeof v === "boolean"
      ? String(v)
          .replace(/[\r\n\t]+/g, " ")
          .slice(0, 60)
      : undefined;
  const photos = Array.isArray(r.photos)
    ? r.photos.filter((p) => (p as { status?: unknown })?.status !== "skipped").length
    : undefined;
  const parts = [
    photos === undefined ? undefined : `${photos} photo${photos === 1 ? "" : "s"}`,
    text(settings.model),
    text(settings.mode),
    settings.resolution === undefined ? undefined : `${text(settings.resolution)} px`,
  ].filter((p): p is string => p !== undefined && p !== "");
  const title = parts.length > 0 ? `persam-db dataset: ${parts.join(", ")}` : "Upload persam-db dataset";
  const description = Object.entries(settings)
    .map(([k, v]) => (text(v) === undefined ? undefined : `- ${k}: ${text(v)}`))
    .filter((l): l is string => l !== undefined)
    .join("\n");
  const tool = text(r.tool);
  return { title, description: tool ? `Made with ${tool}.\n\n${description}`.trim() : description };
}

// ---------------------------------------------------------------------------------------------

/** Compare local files with the Hub's: LFS files by sha256, regular files by git blob id. */
function compare(
  local: readonly LocalFile[],
  remote: ReadonlyMap<string, { oid: string | undefined; lfsSha256: string | undefined; size: number }>,
): { upload: LocalFile[]; unchanged: LocalFile[] } {
  const upload: LocalFile[] = [];
  const unchanged: LocalFile[] = [];
  for (const f of local) {
    const r = remote.get(f.path);
    const same =
      r !== undefined &&
      (r.lfsSha256 !== undefined ? r.lfsSha256 === f.sha256 && r.size === f.size : r.oid === f.gitOid);
    (same ? unchanged : upload).push(f);
  }
  return { upload, unchanged };
}

const publicFile = (f: LocalFile): PushFile => ({ path: f.path, size: f.size, sha256: f.sha256 });

/** The token-free copy of a user error (message and hint redacted). */
function scrub(error: unknown, token: string | undefined): unknown {
  if (!(error instanceof UserError)) return error;
  const message = redact(error.message, token);
  const hint = error.hint === undefined ? undefined : redact(error.hint, token);
  if (message === error.message && hint === error.hint) return error;
  const options = { ...(hint === undefined ? {} : { hint }), cause: error.cause };
  return error instanceof HubUserError
    ? new HubUserError(message, { ...options, kind: error.kind, status: error.status })
    : new UserError(message, { ...options, exitCode: error.exitCode });
}

/** Say how many tries were made when a transient failure outlived them, and what to do. */
function afterRetries(error: unknown, tries: number): unknown {
  if (!(error instanceof HubUserError) || tries <= 1) return error;
  if (!["server", "rate-limited", "interrupted", "timeout"].includes(error.kind)) return error;
  const counted = /gave up after \d+ tries/.test(error.message);
  return new HubUserError(counted ? error.message : `${error.message} (gave up after ${tries} tries)`, {
    kind: error.kind,
    status: error.status,
    hint: "run the same command again: files already uploaded are not sent twice, and nothing was committed",
    cause: error,
  });
}

/**
 * Publish an output folder as a Hugging Face dataset repo: create the repo if missing, upload only
 * new or changed files in one commit on top of the branch head that was compared against, or say
 * that the Hub is up to date. Interrupted pushes complete on rerun (the commit is atomic; LFS
 * objects already uploaded are skipped by the Hub).
 * @throws {UserError} bad repo id, missing folder, broken metadata.jsonl rows, no token
 * @throws {HubUserError} Hub failures, one line each (401, 403, 404, 409/412, 429, 5xx, offline)
 */
export async function pushDataset(params: PushDatasetParams): Promise<PushResult> {
  const token = params.token === undefined || params.token === "" ? undefined : params.token;
  try {
    return await push({ ...params, token });
  } catch (error) {
    throw scrub(error, token);
  }
}

async function push(params: PushDatasetParams): Promise<PushResult> {
  const { token } = params;
  if (!REPO_ID.test(params.repo)) {
    throw new UserError(
      `Expected a Hub repo id "namespace/name" for --repo but received '${redact(params.repo, token)}'`,
      {
        hint: "for example --repo my-name/my-cat-dreambooth",
      },
    );
  }
  const branch = params.branch ?? "main";
  if (branch === "" || /[\s~^:?*[\\]|\.\.|^\/|\/$/.test(branch)) {
    throw new UserError(`Expected a branch name for --branch but received '${branch}'`, {
      hint: "for example --branch main",
    });
  }
  const dryRun = params.dryRun ?? false;
  const pr = params.pr ?? false;
  const repo: HubRepo = { type: "dataset", name: params.repo };
  if (!dryRun && token === undefined) {
    throw new HubUserError(`pushing to ${params.repo} needs a Hugging Face token with write access`, {
      kind: "auth",
      hint: "create one at https://huggingface.co/settings/tokens (role: write), then set HF_TOKEN=hf_… or run 'huggingface-cli login'",
    });
  }
  if (params.offline) {
    throw new HubUserError(
      `pushing to ${params.repo} needs the Hub, and offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)`,
      {
        kind: "offline",
        hint: "unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE to publish",
      },
    );
  }
  const http: HubHttpOptions = { ...params.http, ...params.retry };
  const tries = http.tries ?? DEFAULT_HUB_HTTP.tries;
  const outDir = resolve(params.outDir);

  // List first (cheap), reach the Hub next (fast failure on a bad token or branch), hash last.
  const { found, skipped } =
    params.files === undefined
      ? await listLocalFiles({ outDir, signal: params.signal })
      : { found: await listGivenFiles(outDir, params.files), skipped: [] };
  if (found.length === 0) {
    throw new UserError(`${outDir} has no files to upload`, {
      hint: "run 'persam-db prepare PHOTOS' first and push the folder it wrote",
    });
  }

  const onProgress = params.onProgress;
  const connection: HubConnection = {
    endpoint: params.endpoint,
    token,
    signal: params.signal,
    quiet: params.quiet,
    fetch: params.fetch,
    http,
    hooks: {
      onRetry: (e) =>
        onProgress?.({ phase: "retry", attempt: e.attempt, waitMs: e.waitMs, reason: e.reason }),
      onStart: (r) => {
        if (r.method === "POST" && /\/api\/[a-z]+s\/[^?]+\/commit\//.test(r.url)) {
          const files = typeof r.body === "string" ? r.body.split("\n").length - 1 : 0;
          onProgress?.({ phase: "commit", files });
        }
      },
      onDone: (r) => {
        if (r.method !== "PUT" || r.status < 200 || r.status >= 300) return;
        const hint = (r.init as { progressHint?: { path?: unknown } } | undefined)?.progressHint;
        onProgress?.({
          phase: "upload",
          path: typeof hint?.path === "string" ? hint.path : "",
          bytes: r.body instanceof Blob ? r.body.size : 0,
        });
      },
    },
  };
  let repoUrl = hubRepoUrl({ repo, ...(params.endpoint === undefined ? {} : { endpoint: params.endpoint }) });

  let repoCreated = false;
  let exists = true;
  try {
    exists = await hubRepoExists({ ...connection, repo });
    if (!exists && !dryRun) {
      const created = await createHubRepo({
        ...connection,
        repo,
        ...(params.private ? { visibility: "private" as const } : {}),
      });
      repoUrl = created.url || repoUrl;
      exists = true;
      repoCreated = created.created;
    } else {
      repoCreated = !exists;
    }
  } catch (error) {
    throw afterRetries(error, tries);
  }

  /** The head of a branch and its files; undefined when the branch does not exist. */
  const readRemote = async (
    revision: string,
  ): Promise<{ head: string; remote: Map<string, RemoteEntry> } | undefined> => {
    let head: string;
    try {
      head = await resolveRevision({ ...connection, repo, revision });
    } catch (error) {
      // The repo exists (checked or created above): a 404 is the branch.
      if (error instanceof HubUserError && error.kind === "not-found") return undefined;
      throw error;
    }
    const list = await listHubFiles({ ...connection, repo, revision: head });
    const remote = new Map<string, RemoteEntry>();
    for (const e of list) {
      if (e.type === "file") remote.set(e.path, { oid: e.oid, lfsSha256: e.lfsSha256, size: e.size });
    }
    return { head, remote };
  };
  const missingBranch = (name: string, hint: string) =>
    new HubUserError(`branch '${name}' does not exist in dataset ${params.repo}`, {
      kind: "not-found",
      status: 404,
      hint,
    });

  let head: string | undefined;
  let remote = new Map<string, RemoteEntry>();
  // A branch missing on the Hub is created from the head of main, and compared against it.
  let branchCreated = !exists && branch !== "main";
  try {
    const current = exists ? await readRemote(branch) : undefined;
    if (current) {
      ({ head, remote } = current);
    } else if (exists) {
      if (branch === "main") {
        throw missingBranch("main", "check the repo name; the dataset has no main branch to push to");
      }
      if (pr) {
        throw missingBranch(
          branch,
          "a pull request needs an existing branch: leave out --pr to create the branch from main, or pick another --branch",
        );
      }
      const main = await readRemote("main");
      if (!main) {
        throw missingBranch("main", `--branch ${branch} is created from main, which does not exist either`);
      }
      ({ head, remote } = main);
      branchCreated = true;
      if (!dryRun) {
        const made = await createHubBranch({ ...connection, repo, branch, startingPoint: main.head });
        if (!made) {
          // Someone created it meanwhile: compare against what it holds.
          const now = await readRemote(branch);
          if (!now) throw missingBranch(branch, "run again");
          ({ head, remote } = now);
          branchCreated = false;
        }
      }
    }
  } catch (error) {
    throw afterRetries(error, tries);
  }

  const localPaths = new Set(found.map((f) => f.path));
  const metadataFile = found.find((f) => f.path === "metadata.jsonl");
  if (metadataFile) {
    const problems = metadataProblems(
      await readFile(metadataFile.absPath, "utf8"),
      localPaths,
      params.prune ? new Set() : new Set(remote.keys()),
    );
    if (problems.length > 0) {
      throw new UserError(
        `${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more such rows)` : ""} — the dataset would not load`,
        { hint: "run 'persam-db prepare' again on the same photos to rewrite the output folder, then push" },
      );
    }
  }

  const files = await hashLocalFiles(found, params.hashes, params.onProgress, params.signal);
  const plan = (remoteFiles: ReadonlyMap<string, RemoteEntry>) => {
    const { upload, unchanged } = compare(files, remoteFiles);
    const remoteOnly = [...remoteFiles.keys()]
      .filter((p) => !localPaths.has(p) && p !== ".gitattributes")
      .sort();
    return { upload, unchanged, remoteOnly };
  };
  let { upload, unchanged, remoteOnly } = plan(remote);
  const uploadedBytes = upload.reduce((s, f) => s + f.size, 0);
  params.onProgress?.({
    phase: "plan",
    upload: upload.length,
    uploadBytes: uploadedBytes,
    unchanged: unchanged.length,
  });

  const generated = await defaultCommitTitle(outDir);
  const title = params.message?.trim() ? params.message.trim() : generated.title;
  let deletions = params.prune ? remoteOnly : [];
  const base = {
    repo: params.repo,
    repoUrl: redact(repoUrl, token),
    branch,
    dryRun,
    repoCreated,
    branchCreated,
    parentCommit: head,
    title,
    skipped,
  };
  const nothingToDo = upload.length === 0 && deletions.length === 0;
  if (dryRun || nothingToDo) {
    return {
      ...base,
      uploaded: upload.map(publicFile),
      uploadedBytes,
      unchanged: unchanged.map(publicFile),
      remoteOnly,
      deleted: dryRun ? deletions : [],
      upToDate: nothingToDo,
    };
  }

  const description = [
    generated.description,
    `Uploaded with persam-db push: ${upload.length} new or changed file${upload.length === 1 ? "" : "s"}, ${unchanged.length} unchanged${deletions.length ? `, ${deletions.length} deleted` : ""}.`,
  ]
    .filter((s) => s !== "")
    .join("\n\n");

  const commitOnce = (
    parent: string | undefined,
    toUpload: readonly LocalFile[],
    toDelete: readonly string[],
  ) => {
    const operations: HubCommitOperation[] = [
      ...toUpload.map((f) => ({
        operation: "add" as const,
        path: f.path,
        content: pathToFileURL(f.absPath),
      })),
      ...toDelete.map((path) => ({ operation: "delete" as const, path })),
    ];
    return commitToHub({
      ...connection,
      repo,
      title,
      description,
      branch,
      ...(parent === undefined ? {} : { parentCommit: parent }),
      ...(pr ? { isPullRequest: true } : {}),
      operations,
    });
  };

  let commit: Awaited<ReturnType<typeof commitToHub>>;
  try {
    commit = await commitOnce(head, upload, deletions);
  } catch (error) {
    // 409/412: the head moved — perhaps our own commit landed but its reply was lost. Compare again
    // against the new head: done if it already holds everything, else commit once more on top of it.
    if (!(error instanceof HubUserError && error.kind === "conflict") || pr) throw afterRetries(error, tries);
    const again = await readRemote(branch);
    if (!again) throw afterRetries(error, tries);
    const next = plan(again.remote);
    const nextDeletions = params.prune ? next.remoteOnly : [];
    if (next.upload.length === 0 && nextDeletions.length === 0) {
      return {
        ...base,
        parentCommit: head,
        commitOid: again.head,
        commitUrl: redact(`${repoUrl}/commit/${again.head}`, token),
        uploaded: upload.map(publicFile),
        uploadedBytes,
        unchanged: unchanged.map(publicFile),
        remoteOnly: params.prune ? [] : next.remoteOnly,
        deleted: deletions,
        upToDate: false,
      };
    }
    head = again.head;
    ({ upload, unchanged, remoteOnly } = next);
    deletions = nextDeletions;
    try {
      commit = await commitOnce(head, upload, deletions);
    } catch (second) {
      throw afterRetries(second, tries);
    }
  }
  return {
    ...base,
    parentCommit: head,
    commitOid: commit.commitOid,
    commitUrl: redact(commit.commitUrl, token),
    ...(commit.pullRequestUrl === undefined ? {} : { pullRequestUrl: redact(commit.pullRequestUrl, token) }),
    uploaded: upload.map(publicFile),
    uploadedBytes: upload.reduce((s, f) => s + f.size, 0),
    unchanged: unchanged.map(publicFile),
    remoteOnly: params.prune ? [] : remoteOnly,
    deleted: deletions,
    upToDate: false,
  };
}

interface RemoteEntry {
  readonly oid: string | undefined;
  readonly lfsSha256: string | undefined;
  readonly size: number;
}
