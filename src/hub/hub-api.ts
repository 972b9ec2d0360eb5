// The one module that imports @huggingface/hub: revision and file lookups, repo creation and
// commits (plain HTTP + git-LFS, never Xet), every request through the Hub fetch, with Hub failures
// mapped to one-line UserErrors that never contain the token.

import type * as HubClient from "@huggingface/hub";
import { connectionFetch, endpointOf, type HubConnection, type HubRepo, repoPath } from "./hub-connection.js";
import { HubUserError, NOT_HUB_API, toHubUserError } from "./hub-errors.js";

// Loaded on first use: most commands never talk to the Hub, and the client's modules cost every
// process their start-up time.
let client: Promise<typeof HubClient> | undefined;
function hubClient(): Promise<typeof HubClient> {
  client ??= import("@huggingface/hub");
  return client;
}

export type { HubConnection, HubRepo } from "./hub-connection.js";
export { normalizeEtag } from "./hub-connection.js";
export { type HubErrorContext, type HubFailureKind, HubUserError, toHubUserError } from "./hub-errors.js";

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

/** Options every library call takes: hub URL, token, and the Hub fetch (src/hub/hub-fetch.ts). */
function common(c: HubConnection): { hubUrl: string; accessToken?: string; fetch: typeof fetch } {
  return {
    hubUrl: endpointOf(c),
    ...(c.token === undefined || c.token === "" ? {} : { accessToken: c.token }),
    fetch: connectionFetch(c),
  };
}

function designation(repo: HubRepo): { type: "model" | "dataset"; name: string } {
  return { type: repo.type, name: repo.name };
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
  const hub = await hubClient();
  const revision = params.revision ?? "main";
  const what = `looking up ${params.repo.name}@${revision}`;
  const sha = await guarded(params, what, async () => {
    if (params.repo.type === "dataset") {
      const info = await hub.datasetInfo({
        ...common(params),
        name: params.repo.name,
        revision,
        additionalFields: ["sha"],
      });
      return (info as { sha?: unknown }).sha;
    }
    const info = await hub.modelInfo({
      ...common(params),
      name: params.repo.name,
      revision,
      additionalFields: ["sha"],
    });
    return (info as { sha?: unknown }).sha;
  });
  if (typeof sha !== "string" || !/^[0-9a-f]{40}$/.test(sha)) {
    throw new HubUserError(`${what}: ${NOT_HUB_API} (no commit id in the answer)`, { kind: "bad-response" });
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
  const hub = await hubClient();
  const list = await guarded(params, `listing files of ${params.repo.name}@${params.revision}`, () =>
    hub.pathsInfo({
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
  const hub = await hubClient();
  const parsed = await guarded(params, `reading the header of ${params.repo.name}/${params.path}`, () =>
    hub.parseSafetensorsMetadata({
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
  const hub = await hubClient();
  const what = `creating ${params.repo.type} repo ${params.repo.name}`;
  requireToken(params, what);
  const url = `${endpointOf(params)}/${repoPath(params.repo)}`;
  try {
    const out = await withQuietHubLogs(params.quiet, () =>
      hub.createRepo({
        ...common(params),
        accessToken: params.token as string,
        repo: designation(params.repo),
        ...(params.visibility === undefined ? {} : { visibility: params.visibility }),
        ...(params.license === undefined ? {} : { license: params.license }),
      }),
    );
    return { url: out.repoUrl || url, created: true };
  } catch (error) {
    if (error instanceof hub.HubApiError && error.statusCode === 409) return { url, created: false };
    throw toHubUserError(error, { what, endpoint: endpointOf(params), token: params.token });
  }
}

/**
 * Whether a repo exists and is visible with this token.
 * @throws HubUserError (offline, 5xx)
 */
export async function hubRepoExists(params: HubConnection & { repo: HubRepo }): Promise<boolean> {
  const hub = await hubClient();
  return guarded(params, `checking ${params.repo.name}`, () => {
    const { accessToken, ...rest } = common(params);
    return hub.repoExists({
      ...rest,
      ...(accessToken ? { accessToken } : {}),
      repo: designation(params.repo),
    });
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
  const hub = await hubClient();
  const revision = params.revision ?? "main";
  return guarded(params, `listing ${params.repo.name}@${revision}`, async () => {
    const out: HubTreeEntry[] = [];
    for await (const entry of hub.listFiles({
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
  const hub = await hubClient();
  const what = `commit to ${params.repo.name}`;
  requireToken(params, what);
  const out = await guarded(params, what, () =>
    hub.commit({
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
  const hub = await hubClient();
  const what = `upload to ${params.repo.name}`;
  requireToken(params, what);
  const out = await guarded(params, what, () =>
    hub.uploadFiles({
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
  const hub = await hubClient();
  const what = `creating branch '${params.branch}' of ${params.repo.name}`;
  requireToken(params, what);
  try {
    await withQuietHubLogs(params.quiet, () =>
      hub.createBranch({
        ...common(params),
        accessToken: params.token as string,
        repo: designation(params.repo),
        branch: params.branch,
        ...(params.startingPoint === undefined ? {} : { revision: params.startingPoint }),
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof hub.HubApiError && error.statusCode === 409) return false;
    throw toHubUserError(error, { what, endpoint: endpointOf(params), token: params.token });
  }
}

/**
 * The account of the token.
 * @throws HubUserError (no token, 401)
 */
export async function hubWhoAmI(params: HubConnection): Promise<HubIdentity> {
  const hub = await hubClient();
  const what = "checking the Hugging Face token";
  requireToken(params, what);
  const me = await guarded(params, what, () =>
    hub.whoAmI({ ...common(params), accessToken: params.token as string }),
  );
  const orgs = "orgs" in me && Array.isArray(me.orgs) ? me.orgs.map((o) => o.name) : [];
  return { name: me.name, type: me.type, orgs };
}

/** Browser URL of a repo on the endpoint. */
export function hubRepoUrl(params: { repo: HubRepo; endpoint?: string }): string {
  return `${endpointOf(params)}/${repoPath(params.repo)}`;
}
