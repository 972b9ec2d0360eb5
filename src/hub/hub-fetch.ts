// The one fetch every Hub request goes through (handed to @huggingface/hub and used for our own
// ranged downloads): a time limit without progress and an overall bound per request, bounded retries
// with backoff on 5xx, 429 and dropped connections, redirects followed here so that Authorization is
// never sent to an origin other than the endpoint's, and API answers checked before anyone reads them.

import { hubAnswerProblem } from "./hub-answers.js";
import { HubTransportError } from "./hub-errors.js";

/** Time limits and retries of Hub requests. */
export interface HubHttpOptions {
  /** Longest wait for the next byte of a reply (its headers, then each part of its body). @default 30000 */
  readonly idleTimeoutMs?: number | undefined;
  /**
   * Longest time one request may take from sending it to the last byte of its reply, for a small
   * transfer; a request that moves N bytes (sent or received) gets `N / minBytesPerSecond` more.
   * @default 300000
   */
  readonly requestTimeoutMs?: number | undefined;
  /** The slowest transfer accepted, in bytes per second (see `requestTimeoutMs`). @default 16384 */
  readonly minBytesPerSecond?: number | undefined;
  /** Attempts per request, the first included. @default 4 */
  readonly tries?: number | undefined;
  /** Wait before retry k (k = 0, 1, …) is `baseDelayMs · 2^k`, at most `maxDelayMs`. @default 500 */
  readonly baseDelayMs?: number | undefined;
  /** Upper bound of one backoff wait. @default 30000 */
  readonly maxDelayMs?: number | undefined;
  /**
   * Longest Retry-After a 429 answer may ask for and still be waited out; a longer one ends the call
   * at once with one line. @default 60000
   */
  readonly maxRetryAfterMs?: number | undefined;
}

/** Defaults of {@link HubHttpOptions}. */
export const DEFAULT_HUB_HTTP = {
  idleTimeoutMs: 30_000,
  requestTimeoutMs: 300_000,
  minBytesPerSecond: 16 * 1024,
  tries: 4,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 60_000,
} as const satisfies Required<HubHttpOptions>;

/** A retry about to happen. */
export interface HubRetryEvent {
  /** The attempt that failed (1 = the first). */
  readonly attempt: number;
  readonly waitMs: number;
  /** `HTTP 503`, `HTTP 429`, `connection dropped`, `no answer for 30 s`. */
  readonly reason: string;
  readonly method: string;
  readonly url: string;
}

/** A request that got its final answer (after retries). */
export interface HubRequestDone {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  /** The request body, as given. */
  readonly body: unknown;
  /** The init object the caller passed (the library attaches its own fields, e.g. `progressHint`). */
  readonly init: RequestInit | undefined;
}

/** Parameters of {@link createHubFetch}. */
export interface HubFetchParams extends HubHttpOptions {
  /** The Hub endpoint; Authorization goes only to its origin. */
  readonly endpoint: string;
  /** The fetch that does the I/O. @default globalThis.fetch */
  readonly base?: typeof fetch | undefined;
  /** Aborts every request (no retry after it). @default undefined */
  readonly signal?: AbortSignal | undefined;
  /** Refuse every request at once (HF_HUB_OFFLINE). @default false */
  readonly offline?: boolean | undefined;
  /** Called before each retry wait. @default undefined */
  readonly onRetry?: ((event: HubRetryEvent) => void) | undefined;
  /** Called when a request is about to be sent for the first time. @default undefined */
  readonly onStart?: ((request: { method: string; url: string; body: unknown }) => void) | undefined;
  /** Called when a request got its final answer. @default undefined */
  readonly onDone?: ((request: HubRequestDone) => void) | undefined;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const DROPPED_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ETIMEDOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** The code strings of an error and its causes (undici hides them one or two levels deep). */
function codes(error: unknown, depth = 0): string[] {
  if (depth > 6 || typeof error !== "object" || error === null) return [];
  const code = (error as { code?: unknown }).code;
  const own = typeof code === "string" ? [code] : [];
  const inner = error instanceof AggregateError ? error.errors.flatMap((e) => codes(e, depth + 1)) : [];
  return [...own, ...inner, ...codes((error as { cause?: unknown }).cause, depth + 1)];
}

/** A connection that broke mid-request or mid-reply (not "nothing listens": that is not transient). */
function isDropped(error: unknown): boolean {
  if (error instanceof HubTransportError) {
    return error.failure === "idle-timeout" || error.failure === "total-timeout";
  }
  if (error instanceof Error && error.name === "AbortError") return false;
  if (codes(error).some((c) => DROPPED_CODES.has(c))) return true;
  const messages: string[] = [];
  for (let e: unknown = error, d = 0; e instanceof Error && d < 6; e = e.cause, d++) messages.push(e.message);
  return messages.some((m) => /terminated|other side closed|socket hang up/i.test(m));
}

function replayable(body: unknown): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === "string" ||
    body instanceof Blob ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams
  );
}

function bodySize(body: unknown): number {
  if (typeof body === "string") return Buffer.byteLength(body);
  if (body instanceof Blob) return body.size;
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  return 0;
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), if it is readable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolvePromise();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Let one macrotask pass (every pending microtask runs first). */
function settle(): Promise<void> {
  return new Promise((done) => setImmediate(done));
}

function seconds(ms: number): string {
  const s = ms / 1000;
  return `${s < 10 ? Number(s.toFixed(1)) : Math.round(s)} s`;
}

/**
 * The time limits of one attempt: an idle timer reset by every byte and an overall deadline. Either
 * one aborts the attempt's controller with a {@link HubTransportError} and rejects `expired`.
 */
class AttemptClock {
  readonly controller = new AbortController();
  readonly expired: Promise<never>;
  private fail: (error: HubTransportError) => void = () => {};
  private idleTimer: NodeJS.Timeout | undefined;
  private totalTimer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();

  constructor(
    private readonly idleMs: number,
    private readonly totalMs: number,
    firstByteMs: number,
  ) {
    this.expired = new Promise<never>((_, reject) => {
      this.fail = (error) => {
        this.clear();
        reject(error);
        this.controller.abort(error);
      };
    });
    this.expired.catch(() => {});
    this.arm(firstByteMs);
    this.totalTimer = setTimeout(
      () =>
        this.fail(
          new HubTransportError({
            failure: "total-timeout",
            detail: `did not finish one request within ${seconds(this.totalMs)} (a reply that trickles in)`,
          }),
        ),
      totalMs,
    );
  }

  /** A byte arrived: wait `idleMs` for the next. */
  touch(): void {
    this.arm(this.idleMs);
  }

  /** The reply announced its size: the overall bound grows by its transfer time at the slowest rate. */
  extend(extraMs: number): void {
    if (extraMs <= 0 || this.totalTimer === undefined) return;
    clearTimeout(this.totalTimer);
    const left = this.totalMs + extraMs - (Date.now() - this.started);
    this.totalTimer = setTimeout(
      () =>
        this.fail(
          new HubTransportError({
            failure: "total-timeout",
            detail: `did not finish one request within ${seconds(this.totalMs + extraMs)} (a reply that trickles in)`,
          }),
        ),
      Math.max(0, left),
    );
  }

  clear(): void {
    clearTimeout(this.idleTimer);
    clearTimeout(this.totalTimer);
    this.idleTimer = undefined;
    this.totalTimer = undefined;
  }

  private arm(ms: number): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(
      () =>
        this.fail(
          new HubTransportError({ failure: "idle-timeout", detail: `sent nothing for ${seconds(ms)}` }),
        ),
      ms,
    );
  }
}

/** A Response whose body is in memory, with the URL it came from. */
function rebuilt(res: Response, body: Uint8Array | null, url: string, redirected: boolean): Response {
  const nullBody = [101, 103, 204, 205, 304].includes(res.status);
  const copy = new Response(nullBody ? null : body, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
  Object.defineProperty(copy, "url", { value: url });
  Object.defineProperty(copy, "redirected", { value: redirected });
  return copy;
}

/** Read a body to its end, touching the clock for every part and racing its expiry. */
async function readAll(res: Response, clock: AttemptClock): Promise<Uint8Array | null> {
  if (res.body === null) return null;
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let length = 0;
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), clock.expired]);
      if (done) break;
      clock.touch();
      parts.push(value);
      length += value.byteLength;
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    throw error;
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function urlOf(input: string | URL | Request): string {
  return typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
}

/** A commit that opens a pull request is never sent twice: the first may have opened it already. */
function neverReplayAfterDrop(method: string, url: URL): boolean {
  return method === "POST" && /\/commit\//.test(url.pathname) && url.searchParams.get("create_pr") === "1";
}

/**
 * A fetch for every Hub request (see the module header). It reads each reply into memory (callers
 * ask for ranges or small API answers), so a connection dropped mid-reply is retried here; a reply
 * that is not the Hub's API, a time limit, a Retry-After beyond `maxRetryAfterMs` and 5xx/429 after
 * the last try throw a {@link HubTransportError} that src/hub/hub-errors.ts phrases for the user.
 * Failures reach the caller only after one macrotask: the upload queue of @huggingface/hub 2.17.5
 * (`eventToGenerator`) loses an error that arrives in the same microtask run as a progress event
 * its consumer has not taken yet.
 */
export function createHubFetch(params: HubFetchParams): typeof fetch {
  const base = params.base ?? globalThis.fetch;
  const o = {
    idleTimeoutMs: params.idleTimeoutMs ?? DEFAULT_HUB_HTTP.idleTimeoutMs,
    requestTimeoutMs: params.requestTimeoutMs ?? DEFAULT_HUB_HTTP.requestTimeoutMs,
    minBytesPerSecond: params.minBytesPerSecond ?? DEFAULT_HUB_HTTP.minBytesPerSecond,
    tries: Math.max(1, params.tries ?? DEFAULT_HUB_HTTP.tries),
    baseDelayMs: params.baseDelayMs ?? DEFAULT_HUB_HTTP.baseDelayMs,
    maxDelayMs: params.maxDelayMs ?? DEFAULT_HUB_HTTP.maxDelayMs,
    maxRetryAfterMs: params.maxRetryAfterMs ?? DEFAULT_HUB_HTTP.maxRetryAfterMs,
  };
  const endpoint = new URL(params.endpoint);

  const hubFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const first = new URL(urlOf(input));
    const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    if (params.offline) {
      throw new HubTransportError({
        failure: "offline",
        detail: "HF_HUB_OFFLINE is set, so no request is sent to the Hub",
      });
    }
    const callerSignals = [init?.signal, params.signal].filter((s): s is AbortSignal => s != null);
    const callerSignal = callerSignals.length === 0 ? undefined : AbortSignal.any(callerSignals);
    const body = init?.body ?? undefined;
    const canReplay = replayable(body);
    const sent = bodySize(body);
    const isApi =
      first.origin === endpoint.origin &&
      (first.pathname.startsWith(`${endpoint.pathname.replace(/\/$/, "")}/api/`) ||
        /\.git\/info\/lfs\/objects\/batch$/.test(first.pathname));
    params.onStart?.({ method, url: first.href, body });

    for (let attempt = 1; ; attempt++) {
      let res: Response;
      let data: Uint8Array | null;
      let finalUrl: URL;
      try {
        ({ res, data, finalUrl } = await attemptOnce());
      } catch (error) {
        if (callerSignal?.aborted) {
          await settle();
          throw callerSignal.reason;
        }
        const again =
          attempt < o.tries && canReplay && isDropped(error) && !neverReplayAfterDrop(method, first);
        if (!again) {
          await settle();
          if (error instanceof HubTransportError) {
            throw new HubTransportError({
              failure: error.failure,
              detail: error.detail,
              status: error.status,
              tries: attempt,
              cause: error.cause,
            });
          }
          throw error;
        }
        const waitMs = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1));
        const reason = error instanceof HubTransportError ? `the Hub ${error.detail}` : "connection dropped";
        params.onRetry?.({ attempt, waitMs, reason, method, url: first.href });
        await sleep(waitMs, callerSignal);
        continue;
      }

      const status = res.status;
      if (status >= 500 || status === 429) {
        if (status === 511) {
          await settle();
          throw new HubTransportError({
            failure: "not-hub-api",
            detail: "511 Network Authentication Required",
            status,
            tries: attempt,
          });
        }
        const asked = status === 429 ? retryAfterMs(res.headers.get("retry-after")) : undefined;
        if (asked !== undefined && asked > o.maxRetryAfterMs) {
          await settle();
          throw new HubTransportError({
            failure: "retry-after-too-long",
            detail: seconds(asked),
            status,
            tries: attempt,
          });
        }
        if (attempt < o.tries && canReplay) {
          const waitMs = asked ?? Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1));
          params.onRetry?.({ attempt, waitMs, reason: `HTTP ${status}`, method, url: first.href });
          await sleep(waitMs, callerSignal);
          continue;
        }
        await settle();
        throw new HubTransportError({
          failure: "retries-exhausted",
          detail: `HTTP ${status}`,
          status,
          tries: attempt,
        });
      }

      if (res.ok) {
        const problem = answerProblem(res, data, finalUrl);
        if (problem !== undefined) {
          await settle();
          throw new HubTransportError({ failure: "not-hub-api", detail: problem, status, tries: attempt });
        }
      } else {
        await settle();
      }
      params.onDone?.({ method, url: first.href, status, body, init });
      return rebuilt(res, data, finalUrl.href, finalUrl.href !== first.href);
    }

    /** One attempt: follow redirects by hand, read the whole reply under the clock. */
    async function attemptOnce(): Promise<{ res: Response; data: Uint8Array | null; finalUrl: URL }> {
      const clock = new AttemptClock(
        o.idleTimeoutMs,
        o.requestTimeoutMs + (sent / o.minBytesPerSecond) * 1000,
        // Before the first byte of the reply the request body has to leave at the slowest rate.
        o.idleTimeoutMs + (sent / o.minBytesPerSecond) * 1000,
      );
      const signal =
        callerSignal === undefined
          ? clock.controller.signal
          : AbortSignal.any([callerSignal, clock.controller.signal]);
      try {
        let url = first;
        let hopMethod = method;
        let hopBody: RequestInit["body"] = body ?? null;
        const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
        for (let hop = 0; ; hop++) {
          // Credentials only ever go to the endpoint, whatever the caller or a redirect asks.
          if (url.origin !== endpoint.origin) headers.delete("authorization");
          const res = await Promise.race([
            base(url.href, {
              ...init,
              method: hopMethod,
              headers,
              body: hopBody,
              signal,
              redirect: "manual",
            }),
            clock.expired,
          ]);
          clock.touch();
          const location = res.headers.get("location");
          if (REDIRECTS.has(res.status) && location !== null && init?.redirect !== "manual") {
            await res.body?.cancel().catch(() => {});
            if (init?.redirect === "error" || hop >= MAX_REDIRECTS) {
              throw new TypeError(`fetch failed: too many redirects or redirect refused (${res.status})`);
            }
            url = new URL(location, url);
            if (res.status === 303 || ((res.status === 301 || res.status === 302) && hopMethod === "POST")) {
              hopMethod = hopMethod === "HEAD" ? "HEAD" : "GET";
              hopBody = null;
              headers.delete("content-type");
              headers.delete("content-length");
            }
            continue;
          }
          const announced = Number(res.headers.get("content-length"));
          if (Number.isFinite(announced) && announced > 0) {
            clock.extend((announced / o.minBytesPerSecond) * 1000);
          }
          const data = hopMethod === "HEAD" ? null : await readAll(res, clock);
          return { res, data, finalUrl: url };
        }
      } finally {
        clock.clear();
      }
    }

    /** Why a 2xx reply cannot be the Hub's, or undefined. */
    function answerProblem(res: Response, data: Uint8Array | null, finalUrl: URL): string | undefined {
      const text = () => (data === null ? "" : Buffer.from(data).toString("utf8"));
      if (isApi) {
        const path = first.pathname.slice(endpoint.pathname.replace(/\/$/, "").length);
        return hubAnswerProblem({ method, path, body: text() });
      }
      // A file download answered with a web page: a login page or a proxy's error page.
      const type = res.headers.get("content-type") ?? "";
      if (
        /\/(resolve|raw)\//.test(first.pathname) &&
        /text\/html/i.test(type) &&
        !/\.html?$/i.test(finalUrl.pathname)
      ) {
        return "a web page instead of the file";
      }
      return undefined;
    }
  };
  return hubFetch as typeof fetch;
}
