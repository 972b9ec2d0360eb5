// The one module that imports @huggingface/hub: revision and file lookups, ranged downloads,
// repo creation and commits (plain HTTP + git-LFS, never Xet), with Hub failures mapped to one-line
// UserErrors that never contain the token.

import {
  commit,
  createBranch,
  createRepo,
  datasetInfo,
  downloadFile,
  fileDownloadInfo,
  HubApiError,
  listFiles,
  modelInfo,
  parseSafetensorsMetadata,
  pathsInfo,
  repoExists,
  uploadFiles,
  whoAmI,
} from "@huggingface/hub";
import { DEFAULT_HUB_ENDPOINT, redact } from "../config.js";
import { errorCodes, UserError } from "../errors.js";

/** A repository on the Hub. */
export interface HubRepo {
  readonly type: "model" | "dataset";
  /** `namespace/name`. */
  readonly name: string;
}

/** How to reach the Hub. */
export interface HubConnection {
  /**
   * Base URL, no trailing slash.
   * @default "https://huggingface.co"
   */
  readonly endpoint?: string | undefined;
  /** Access token (must start with `hf_`, a rule of @huggingface/hub). @default undefined (anonymous) */
  readonly token?: string | undefined;
  /** A fetch to use instead of the global one (tests, proxies). @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
  /** Aborts every request of the call. @default undefined */
  readonly signal?: AbortSignal | undefined;
  /** Silence the library's `console.debug` lines (set for --json runs). @default false */
  readonly quiet?: boolean | undefined;
}

/** What kind of Hub failure a {@link HubUserError} is. */
export type HubFailureKind =
  | "network"
  | "interrupted"
  | "auth"
  | "forbidden"
  | "not-found"
  | "conflict"
  | "rate-limited"
  | "server"
  | "bad-response"
  | "other";

/** A Hub failure, already phrased for the user (one line, no token). */
export class HubUserError extends UserError {
  readonly kind: HubFailureKind;
  readonly status: number | undefined;

  constructor(
    message: string,
    options: { kind: HubFailureKind; status?: number | undefined; hint?: string; cause?: unknown },
  ) {
    super(message, {
      ...(options.hint === undefined ? {} : { hint: options.hint }),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.kind = options.kind;
    this.status = options.status;
  }
}

/** Information about one file at a revision (from `paths-info`). */
export interface HubPathInfo {
  readonly path: string;
  readonly type: string;
  /** Size in bytes of the file's content (the LFS object for LFS files). */
  readonly size: number;
  /** Git blob id (sha1). */
  readonly oid: string | undefined;
  /** sha256 of the content, for LFS files. */
  readonly lfsSha256: string | undefined;
  /** The id the Hub serves as ETag: the LFS sha256, else the git oid (the cache's blob name). */
  readonly etag: string | undefined;
}

/** A file on the Hub opened for ranged reads (one probe request, then one request per read). */
export interface HubFile {
  readonly size: number;
  /** ETag without quotes: sha256 for LFS files, git oid otherwise. */
  readonly etag: string;
  /** Bytes `[start, end)`; one HTTP range request. */
  read(start: number, end: number): Promise<Uint8Array>;
}

/** One entry of a repo tree listing. */
export interface HubTreeEntry {
  readonly path: string;
  readonly type: "file" | "directory" | "unknown";
  readonly size: number;
  readonly oid: string | undefined;
  /** sha256 of the content, for LFS files. */
  readonly lfsSha256: string | undefined;
}

/** One change of a commit. */
export type HubCommitOperation =
  | { readonly operation: "add"; readonly path: string; readonly content: Blob | URL }
  | { readonly operation: "delete"; readonly path: string };

/** What a commit produced. */
export interface HubCommitResult {
  readonly commitOid: string;
  readonly commitUrl: string;
  readonly pullRequestUrl: string | undefined;
}

/** The account a token belongs to. */
export interface HubIdentity {
  readonly name: string;
  readonly type: string;
  readonly orgs: readonly string[];
}

const HF_TOKEN_HINT =
  "set HF_TOKEN to a token from https://huggingface.co/settings/tokens (or run 'huggingface-cli login')";

function endpointOf(c: HubConnection): string {
  return (c.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
}

/** Let one macrotask pass (every pending microtask runs first). */
function settle(): Promise<void> {
  return new Promise((done) => setImmediate(done));
}

/**
 * The fetch handed to @huggingface/hub:
 * - it carries the caller's abort signal, combined with the one the library passes (the library
 *   aborts its own controller, e.g. the rest of an upload batch, and the caller can stop it all);
 * - it lets one macrotask pass before passing a failure on (a thrown error or a non-2xx answer).
 *   The library's upload queue (2.17.5, `eventToGenerator`) loses an error that arrives in the same
 *   microtask run as a progress event its consumer has not taken yet, then throws "Logic error in
 *   eventGenerator, promises should never be empty" and leaves an unhandled rejection. A network
 *   failure normally takes that long anyway; an instant one (a refused or failed LFS PUT, a test
 *   fetch) must be made to.
 */
function hubFetch(base: typeof fetch, signal: AbortSignal | undefined): typeof fetch {
  return async (input, init) => {
    const own = init?.signal ?? undefined;
    const combined = signal === undefined ? own : own === undefined ? signal : AbortSignal.any([own, signal]);
    let res: Response;
    try {
      res = await base(input, combined === undefined ? init : { ...init, signal: combined });
    } catch (error) {
      await settle();
      throw error;
    }
    if (!res.ok) await settle();
    return res;
  };
}

/** Options every library call takes: hub URL, token, fetch (see {@link hubFetch}). */
function common(c: HubConnection): { hubUrl: string; accessToken?: string; fetch: typeof fetch } {
  const wrapped = hubFetch(c.fetch ?? globalThis.fetch, c.signal);
  return {
    hubUrl: endpointOf(c),
    ...(c.token === undefined || c.token === "" ? {} : { accessToken: c.token }),
    fetch: wrapped,
  };
}

function repoPath(repo: HubRepo): string {
  return `${repo.type === "dataset" ? "datasets/" : ""}${repo.name}`;
}

function designation(repo: HubRepo): { type: "model" | "dataset"; name: string } {
  return { type: repo.type, name: repo.name };
}

/** Strip `W/` and quotes from an ETag header value. */
export function normalizeEtag(etag: string): string {
  return etag.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

/**
 * Run `fn` with `console.debug` silenced when `quiet` (the library prints "Downloading …" lines on
 * stdout, which would corrupt a --json document).
 */
export async function withQuietHubLogs<T>(quiet: boolean | undefined, fn: () => Promise<T>): Promise<T> {
  if (!quiet) return fn();
  const original = console.debug;
  console.debug = () => {};
  try {
    return await fn();
  } finally {
    console.debug = original;
  }
}

const OFFLINE_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "ETIMEDOUT",
  "UND_ERR_CONNECT_TIMEOUT",
]);
const INTERRUPTED_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_BODY_TIMEOUT"]);

/** Context used to phrase an error. */
export interface HubErrorContext {
  /** What was being done, e.g. `download of Xenova/slimsam-77-uniform/onnx/vision_encoder.onnx`. */
  readonly what: string;
  readonly endpoint?: string | undefined;
  readonly token?: string | undefined;
}

/**
 * Turn any failure of a Hub call into one clear line (a {@link HubUserError}); abort errors and
 * UserErrors pass through unchanged. The token never appears in the result.
 */
export function toHubUserError(error: unknown, context: HubErrorContext): Error {
  if (error instanceof UserError) return error;
  if (error instanceof Error && error.name === "AbortError") return error;
  const endpoint = context.endpoint ?? DEFAULT_HUB_ENDPOINT;
  const r = (text: string) => redact(text, context.token);
  const what = r(context.what);
  if (error instanceof HubApiError) {
    const status = error.statusCode;
    const serverText = r(serverMessage(error));
    const detail = serverText ? `: ${serverText}` : "";
    if (status === 401) {
      const hint =
        context.token === undefined
          ? `the repo may be private or gated, or may not exist — ${HF_TOKEN_HINT}`
          : "the token (HF_TOKEN or the saved login) is invalid or expired — create a new one at https://huggingface.co/settings/tokens";
      return new HubUserError(`${what}: the Hub answered 401 Unauthorized${detail}`, {
        kind: "auth",
        status,
        hint,
        cause: error,
      });
    }
    if (status === 403) {
      return new HubUserError(`${what}: access denied (403)${detail}`, {
        kind: "forbidden",
        status,
        hint: "for a gated model accept its terms on its Hub page; for uploads use a token with write access",
        cause: error,
      });
    }
    if (status === 404) {
      return new HubUserError(`${what}: not found on the Hub (404)${detail}`, {
        kind: "not-found",
        status,
        hint: "check the repo name, revision and file path (a private repo also needs HF_TOKEN)",
        cause: error,
      });
    }
    if (status === 409 || status === 412) {
      return new HubUserError(`${what}: conflict (${status})${detail}`, {
        kind: "conflict",
        status,
        hint: "the repo or branch changed meanwhile — run again",
        cause: error,
      });
    }
    if (status === 429) {
      return new HubUserError(`${what}: rate-limited by the Hub (429)`, {
        kind: "rate-limited",
        status,
        hint: "wait a few minutes and run again (a token raises the limit)",
        cause: error,
      });
    }
    if (status >= 500) {
      return new HubUserError(`${what}: the Hub had a server error (${status})`, {
        kind: "server",
        status,
        hint: "try again in a few minutes (see https://status.huggingface.co)",
        cause: error,
      });
    }
    return new HubUserError(`${what}: the Hub answered ${status}${detail}`, {
      kind: "other",
      status,
      cause: error,
    });
  }
  if (error instanceof TypeError && /must start with 'hf_'/.test(error.message)) {
    return new HubUserError(`${what}: the Hugging Face token does not start with 'hf_'`, {
      kind: "auth",
      hint: `check HF_TOKEN — ${HF_TOKEN_HINT}`,
      cause: error,
    });
  }
  const codes = errorCodes(error);
  const offline = codes.find((c) => OFFLINE_CODES.has(c));
  if (offline !== undefined) {
    return new HubUserError(
      `${what}: cannot reach the Hub at ${r(endpoint)} (${offline}) — you seem to be offline`,
      {
        kind: "network",
        hint: "connect to the network (or set HF_ENDPOINT to a reachable mirror), or set HF_HUB_OFFLINE=1 to use only files already in the cache",
        cause: error,
      },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  if (
    codes.some((c) => INTERRUPTED_CODES.has(c)) ||
    /terminated|other side closed|socket hang up/i.test(message)
  ) {
    return new HubUserError(`${what}: the connection to the Hub was lost before the transfer finished`, {
      kind: "interrupted",
      hint: "run again; nothing half-written is kept as complete",
      cause: error,
    });
  }
  if (error instanceof TypeError && /fetch failed/i.test(message)) {
    return new HubUserError(`${what}: cannot reach the Hub at ${r(endpoint)} (${r(message)})`, {
      kind: "network",
      hint: "check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only cached files",
      cause: error,
    });
  }
  if (error instanceof Error && error.constructor.name === "InvalidApiResponseFormatError") {
    return new HubUserError(`${what}: unexpected answer from ${r(endpoint)} (${r(message)})`, {
      kind: "bad-response",
      hint: "check HF_ENDPOINT points at a Hugging Face Hub",
      cause: error,
    });
  }
  return error instanceof Error ? error : new Error(String(error));
}

/** The server's own short explanation, without the library's "URL: …" trailer. */
function serverMessage(error: HubApiError): string {
  const data = error.data as { error?: unknown; message?: unknown } | undefined;
  const text =
    typeof data?.error === "string" ? data.error : typeof data?.message === "string" ? data.message : "";
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > 160 ? `${oneLine.slice(0, 157)}...` : oneLine;
}

async function guarded<T>(c: HubConnection, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await withQuietHubLogs(c.quiet, fn);
  } catch (error) {
    throw toHubUserError(error, { what, endpoint: endpointOf(c), token: c.token });
  }
}

/**
 * The commit SHA a revision (branch, tag or SHA) of a repo points at.
 * @throws HubUserError (not found, auth, offline…)
 */
export async function resolveRevision(
  params: HubConnection & {
    repo: HubRepo;
    /** @default "main" */
    revision?: string;
  },
): Promise<string> {
  const revision = params.revision ?? "main";
  const what = `looking up ${params.repo.name}@${revision}`;
  const sha = await guarded(params, what, async () => {
    if (params.repo.type === "dataset") {
      const info = await datasetInfo({
        ...common(params),
        name: params.repo.name,
        revision,
        additionalFields: ["sha"],
      });
      return (info as { sha?: unknown }).sha;
    }
    const info = await modelInfo({
      ...common(params),
      name: params.repo.name,
      revision,
      additionalFields: ["sha"],
    });
    return (info as { sha?: unknown }).sha;
  });
  if (typeof sha !== "string" || !/^[0-9a-f]{40}$/.test(sha)) {
    throw new HubUserError(`${what}: the Hub did not return a commit SHA`, { kind: "bad-response" });
  }
  return sha;
}

/**
 * Size, git oid and LFS sha256 of files at a revision (one `paths-info` request). Paths that do
 * not exist are simply absent from the result.
 * @throws HubUserError
 */
export async function getPathsInfo(
  params: HubConnection & { repo: HubRepo; revision: string; paths: readonly string[] },
): Promise<HubPathInfo[]> {
  const list = await guarded(params, `listing files of ${params.repo.name}@${params.revision}`, () =>
    pathsInfo({
      ...common(params),
      repo: designation(params.repo),
      revision: params.revision,
      paths: [...params.paths],
    }),
  );
  return list.map((p) => ({
    path: p.path,
    type: p.type,
    size: p.size,
    oid: p.oid,
    lfsSha256: p.lfs?.oid,
    etag: p.lfs?.oid ?? p.oid,
  }));
}

/**
 * Open a file for ranged reads at a revision over plain HTTP (Xet disabled).
 * @throws HubUserError kind "not-found" when the file does not exist
 */
export async function openHubFile(
  params: HubConnection & { repo: HubRepo; revision: string; path: string },
): Promise<HubFile> {
  const what = `download of ${params.repo.name}/${params.path}@${shortRev(params.revision)}`;
  const opts = common(params);
  const { blob, etag } = await guarded(params, what, async () => {
    const info = await fileDownloadInfo({
      ...opts,
      repo: designation(params.repo),
      path: params.path,
      revision: params.revision,
    });
    if (!info) return { blob: null, etag: "" };
    const b = await downloadFile({
      ...opts,
      repo: designation(params.repo),
      path: params.path,
      revision: params.revision,
      xet: false,
      // Drop any Xet info so the blob is read over plain HTTP ranges.
      downloadInfo: { size: info.size, etag: info.etag, url: info.url },
    });
    return { blob: b, etag: normalizeEtag(info.etag) };
  });
  if (!blob) {
    throw new HubUserError(`${what}: not found on the Hub (404: no such file at this revision)`, {
      kind: "not-found",
      status: 404,
      hint: "check the file path and revision in the model registry",
    });
  }
  return {
    size: blob.size,
    etag,
    async read(start: number, end: number): Promise<Uint8Array> {
      if (start < 0 || end > blob.size || end < start) {
        throw new RangeError(`Expected a range inside [0, ${blob.size}] but received [${start}, ${end})`);
      }
      if (end === start) return new Uint8Array(0);
      const bytes = await guarded(
        params,
        what,
        async () => new Uint8Array(await blob.slice(start, end).arrayBuffer()),
      );
      if (bytes.length !== end - start) {
        throw new HubUserError(`${what}: expected ${end - start} bytes but received ${bytes.length}`, {
          kind: "interrupted",
          hint: "run again; the server may have ignored the byte range or cut the transfer",
        });
      }
      return bytes;
    },
  };
}

function shortRev(revision: string): string {
  return /^[0-9a-f]{40}$/.test(revision) ? revision.slice(0, 7) : revision;
}

/** One tensor entry of a safetensors header. */
export interface HubTensorInfo {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data_offsets: readonly [number, number];
}

/**
 * The header of a safetensors file of a model repo, read with two range requests by the library's
 * `parseSafetensorsMetadata` (offsets are relative to the data section).
 * @throws HubUserError
 */
export async function hubSafetensorsHeader(
  params: HubConnection & { repo: HubRepo; revision: string; path: string },
): Promise<Record<string, HubTensorInfo>> {
  const parsed = await guarded(params, `reading the header of ${params.repo.name}/${params.path}`, () =>
    parseSafetensorsMetadata({
      ...common(params),
      repo: designation(params.repo),
      revision: params.revision,
      path: params.path,
    }),
  );
  if (parsed.sharded) {
    throw new HubUserError(`${params.repo.name}/${params.path} is a sharded checkpoint`, {
      kind: "bad-response",
    });
  }
  const out: Record<string, HubTensorInfo> = {};
  for (const [name, info] of Object.entries(parsed.header)) {
    if (name === "__metadata__") continue;
    const t = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
    out[name] = { dtype: t.dtype, shape: t.shape, data_offsets: t.data_offsets };
  }
  return out;
}

function requireToken(c: HubConnection, what: string): void {
  if (c.token === undefined || c.token === "") {
    throw new HubUserError(`${what}: this needs a Hugging Face token with write access`, {
      kind: "auth",
      hint: HF_TOKEN_HINT,
    });
  }
}

/**
 * Create a repo; an existing repo (409) is reused.
 * @throws HubUserError (no token, 401, 403…)
 */
export async function createHubRepo(
  params: HubConnection & {
    repo: HubRepo;
    /** @default undefined (the namespace's default, usually public) */
    visibility?: "public" | "private";
    /** @default undefined */
    license?: string;
  },
): Promise<{ url: string; created: boolean }> {
  const what = `creating ${params.repo.type} repo ${params.repo.name}`;
  requireToken(params, what);
  const url = `${endpointOf(params)}/${repoPath(params.repo)}`;
  try {
    const out = await withQuietHubLogs(params.quiet, () =>
      createRepo({
        ...common(params),
        accessToken: params.token as string,
        repo: designation(params.repo),
        ...(params.visibility === undefined ? {} : { visibility: params.visibility }),
        ...(params.license === undefined ? {} : { license: params.license }),
      }),
    );
    return { url: out.repoUrl || url, created: true };
  } catch (error) {
    if (error instanceof HubApiError && error.statusCode === 409) return { url, created: false };
    throw toHubUserError(error, { what, endpoint: endpointOf(params), token: params.token });
  }
}

/**
 * Whether a repo exists and is visible with this token.
 * @throws HubUserError (offline, 5xx)
 */
export async function hubRepoExists(params: HubConnection & { repo: HubRepo }): Promise<boolean> {
  return guarded(params, `checking ${params.repo.name}`, () => {
    const { accessToken, ...rest } = common(params);
    return repoExists({ ...rest, ...(accessToken ? { accessToken } : {}), repo: designation(params.repo) });
  });
}

/**
 * All files of a repo at a revision (recursive), with their git oid and LFS sha256 so a caller can
 * tell what is already uploaded.
 * @throws HubUserError
 */
export async function listHubFiles(
  params: HubConnection & {
    repo: HubRepo;
    /** @default "main" */
    revision?: string;
    /** Folder to list. @default "" (whole repo) */
    path?: string;
    /** @default true */
    recursive?: boolean;
  },
): Promise<HubTreeEntry[]> {
  const revision = params.revision ?? "main";
  return guarded(params, `listing ${params.repo.name}@${revision}`, async () => {
    const out: HubTreeEntry[] = [];
    for await (const entry of listFiles({
      ...common(params),
      repo: designation(params.repo),
      revision,
      recursive: params.recursive ?? true,
      ...(params.path ? { path: params.path } : {}),
    })) {
      out.push({
        path: entry.path,
        type: entry.type,
        size: entry.size,
        oid: entry.oid,
        lfsSha256: entry.lfs?.oid,
      });
    }
    return out;
  });
}

/** Commit options shared by {@link commitToHub} and {@link uploadHubFiles}. */
export interface HubCommitOptions {
  repo: HubRepo;
  /** Commit title. */
  title: string;
  /** @default undefined */
  description?: string;
  /** @default "main" */
  branch?: string;
  /** Fail (409/412) if the branch head is no longer this commit. @default undefined */
  parentCommit?: string;
  /** Open a pull request instead of committing to the branch. @default false */
  isPullRequest?: boolean;
}

function commitOptions(p: HubCommitOptions): {
  title: string;
  description?: string;
  branch?: string;
  parentCommit?: string;
  isPullRequest?: boolean;
} {
  return {
    title: p.title,
    ...(p.description === undefined ? {} : { description: p.description }),
    ...(p.branch === undefined ? {} : { branch: p.branch }),
    ...(p.parentCommit === undefined ? {} : { parentCommit: p.parentCommit }),
    ...(p.isPullRequest === undefined ? {} : { isPullRequest: p.isPullRequest }),
  };
}

/**
 * One commit of additions and deletions, large files through git-LFS basic transfer (no Xet).
 * @throws HubUserError (no token, 401/403, 404, 409/412 when `parentCommit` is stale…)
 */
export async function commitToHub(
  params: HubConnection & HubCommitOptions & { operations: readonly HubCommitOperation[] },
): Promise<HubCommitResult> {
  const what = `commit to ${params.repo.name}`;
  requireToken(params, what);
  const out = await guarded(params, what, () =>
    commit({
      ...common(params),
      ...commitOptions(params),
      repo: designation(params.repo),
      useXet: false,
      ...(params.signal === undefined ? {} : { abortSignal: params.signal }),
      operations: params.operations.map((op) =>
        op.operation === "add"
          ? { operation: "addOrUpdate" as const, path: op.path, content: op.content }
          : { operation: "delete" as const, path: op.path },
      ),
    }),
  );
  if (!out) throw new HubUserError(`${what}: the Hub returned no commit`, { kind: "bad-response" });
  return {
    commitOid: out.commit.oid,
    commitUrl: out.commit.url,
    pullRequestUrl: out.pullRequestUrl,
  };
}

/**
 * Upload files in one commit (`uploadFiles` with Xet off). `content` may be a `file:` URL (read
 * lazily from disk) or a Blob.
 * @throws HubUserError
 */
export async function uploadHubFiles(
  params: HubConnection &
    Omit<HubCommitOptions, "title"> & {
      /** @default "Upload N files" */
      title?: string;
      files: readonly { path: string; content: Blob | URL }[];
    },
): Promise<HubCommitResult | undefined> {
  const what = `upload to ${params.repo.name}`;
  requireToken(params, what);
  const out = await guarded(params, what, () =>
    uploadFiles({
      ...common(params),
      repo: designation(params.repo),
      files: params.files.map((f) => ({ path: f.path, content: f.content })),
      commitTitle: params.title ?? `Upload ${params.files.length} files`,
      ...(params.description === undefined ? {} : { commitDescription: params.description }),
      ...(params.branch === undefined ? {} : { branch: params.branch }),
      ...(params.parentCommit === undefined ? {} : { parentCommit: params.parentCommit }),
      ...(params.isPullRequest === undefined ? {} : { isPullRequest: params.isPullRequest }),
      ...(params.signal === undefined ? {} : { abortSignal: params.signal }),
      useXet: false,
    }),
  );
  if (!out) return undefined;
  return { commitOid: out.commit.oid, commitUrl: out.commit.url, pullRequestUrl: out.pullRequestUrl };
}

/**
 * Create a branch at `startingPoint` (a branch name or commit SHA; default: the head of the default
 * branch). An existing branch is never moved.
 * @returns `true` when the branch was created, `false` when it already existed (409)
 * @throws HubUserError (no token, 401/403, 404 repo or starting point…)
 */
export async function createHubBranch(
  params: HubConnection & {
    repo: HubRepo;
    branch: string;
    /** @default undefined (the default branch's head) */
    startingPoint?: string;
  },
): Promise<boolean> {
  const what = `creating branch '${params.branch}' of ${params.repo.name}`;
  requireToken(params, what);
  try {
    await withQuietHubLogs(params.quiet, () =>
      createBranch({
        ...common(params),
        accessToken: params.token as string,
        repo: designation(params.repo),
        branch: params.branch,
        ...(params.startingPoint === undefined ? {} : { revision: params.startingPoint }),
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof HubApiError && error.statusCode === 409) return false;
    throw toHubUserError(error, { what, endpoint: endpointOf(params), token: params.token });
  }
}

/**
 * The account of the token.
 * @throws HubUserError (no token, 401)
 */
export async function hubWhoAmI(params: HubConnection): Promise<HubIdentity> {
  const what = "checking the Hugging Face token";
  requireToken(params, what);
  const me = await guarded(params, what, () =>
    whoAmI({ ...common(params), accessToken: params.token as string }),
  );
  const orgs = "orgs" in me && Array.isArray(me.orgs) ? me.orgs.map((o) => o.name) : [];
  return { name: me.name, type: me.type, orgs };
}

/** Browser URL of a repo on the endpoint. */
export function hubRepoUrl(params: { repo: HubRepo; endpoint?: string }): string {
  return `${endpointOf(params)}/${repoPath(params.repo)}`;
}
