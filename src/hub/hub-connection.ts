// How a Hub call reaches the Hub: the endpoint, the token, the HTTP discipline (src/hub/hub-fetch.ts)
// and the caller's hooks, shared by the library calls (hub-api.ts) and our own downloads.

import { DEFAULT_HUB_ENDPOINT } from "../config.js";
import { createHubFetch, type HubFetchParams, type HubHttpOptions } from "./hub-fetch.js";

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
  /** The fetch that does the I/O, under the Hub fetch (tests, proxies). @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
  /** Aborts every request of the call. @default undefined */
  readonly signal?: AbortSignal | undefined;
  /** Silence the library's `console.debug` lines (set for --json runs). @default false */
  readonly quiet?: boolean | undefined;
  /** Time limits and retries. @default DEFAULT_HUB_HTTP */
  readonly http?: HubHttpOptions | undefined;
  /** Refuse every request (HF_HUB_OFFLINE). @default false */
  readonly offline?: boolean | undefined;
  /** Observers of the requests (retries, starts, final answers). @default undefined */
  readonly hooks?: Pick<HubFetchParams, "onRetry" | "onStart" | "onDone"> | undefined;
}

/** The endpoint without trailing slashes. */
export function endpointOf(c: { readonly endpoint?: string | undefined }): string {
  return (c.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
}

/** The Hub fetch of a connection. */
export function connectionFetch(c: HubConnection): typeof fetch {
  return createHubFetch({
    endpoint: endpointOf(c),
    base: c.fetch,
    signal: c.signal,
    offline: c.offline,
    ...c.http,
    ...c.hooks,
  });
}

/** `datasets/ns/name` or `ns/name`: the repo's path on the endpoint (not under /api). */
export function repoPath(repo: HubRepo): string {
  return `${repo.type === "dataset" ? "datasets/" : ""}${repo.name}`;
}

/** Strip `W/` and quotes from an ETag header value. */
export function normalizeEtag(etag: string): string {
  return etag.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

/** A revision for messages: a commit id shortened to 7 digits, a branch as it is. */
export function shortRev(revision: string): string {
  return /^[0-9a-f]{40}$/.test(revision) ? revision.slice(0, 7) : revision;
}
