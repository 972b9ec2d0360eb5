// Hub failures phrased for the user: the transport errors the Hub fetch raises (time limits, retries
// given up, answers that are not the Hub's API) and the one-line HubUserError every Hub call throws,
// which never contains the token.

import { DEFAULT_HUB_ENDPOINT, redact } from "../config.js";
import { errorCodes, UserError } from "../errors.js";

/** What kind of Hub failure a {@link HubUserError} is. */
export type HubFailureKind =
  | "network"
  | "interrupted"
  | "timeout"
  | "auth"
  | "forbidden"
  | "not-found"
  | "conflict"
  | "rate-limited"
  | "server"
  | "bad-response"
  | "offline"
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

/** Why the Hub fetch gave up on a request (see src/hub/hub-fetch.ts). */
export type HubTransportFailure =
  /** No byte arrived for the idle limit. */
  | "idle-timeout"
  /** The request as a whole took longer than its bound (a trickle). */
  | "total-timeout"
  /** 5xx or 429 on every try. */
  | "retries-exhausted"
  /** A 429 asked to wait longer than the client waits. */
  | "retry-after-too-long"
  /** The reply is not the Hub's API: not JSON, the wrong shape, HTML, 511. */
  | "not-hub-api"
  /** Offline mode forbids any request. */
  | "offline";

/**
 * A failure found by the Hub fetch itself, before the Hub library or our code reads the reply. It is
 * not yet a user message: {@link toHubUserError} phrases it with what was being done.
 */
export class HubTransportError extends Error {
  override readonly name = "HubTransportError";
  readonly failure: HubTransportFailure;
  /** The last HTTP status seen, if any. */
  readonly status: number | undefined;
  /** Requests sent for this call, the first included. */
  readonly tries: number;
  /** A short explanation: the limit in seconds, the schema problem, the Retry-After value. */
  readonly detail: string;

  constructor(params: {
    failure: HubTransportFailure;
    detail: string;
    status?: number | undefined;
    tries?: number;
    cause?: unknown;
  }) {
    super(
      `${params.failure}: ${params.detail}`,
      params.cause === undefined ? undefined : { cause: params.cause },
    );
    this.failure = params.failure;
    this.detail = params.detail;
    this.status = params.status;
    this.tries = params.tries ?? 1;
  }
}

const HF_TOKEN_HINT =
  "set HF_TOKEN to a token from https://huggingface.co/settings/tokens (or run 'huggingface-cli login')";

/** The one line for an answer that does not come from the Hub's API. */
export const NOT_HUB_API = "the Hub answered with something that is not its API — a proxy or captive portal?";

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
 * The fields of an HTTP status failure read here: @huggingface/hub's HubApiError (whose class only
 * src/hub/hub-api.ts may import) and our own {@link HubStatusError} both carry them.
 */
interface ApiErrorLike {
  readonly statusCode: number;
  readonly data?: unknown;
}

function isApiError(error: unknown): error is Error & ApiErrorLike {
  return error instanceof Error && typeof (error as { statusCode?: unknown }).statusCode === "number";
}

/** A non-2xx answer to one of our own Hub requests (the ranged downloads). */
export class HubStatusError extends Error {
  override readonly name = "HubStatusError";
  readonly statusCode: number;
  readonly url: string;
  readonly data: unknown;

  constructor(params: { statusCode: number; url: string; data?: unknown }) {
    super(`HTTP ${params.statusCode} from ${params.url}`);
    this.statusCode = params.statusCode;
    this.url = params.url;
    this.data = params.data;
  }

  /** Read the error body of `res` (JSON `{error}` or text) into a HubStatusError. */
  static async from(res: Response): Promise<HubStatusError> {
    const text = await res.text().catch(() => "");
    let data: unknown = { message: text };
    try {
      data = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return new HubStatusError({ statusCode: res.status, url: res.url, data });
  }
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
  if (error instanceof HubTransportError) return fromTransport(error, what, r(endpoint));
  if (isApiError(error)) return fromStatus(error, what, context.token, r);
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
    return new HubUserError(`${what}: ${NOT_HUB_API} (${r(message)})`, {
      kind: "bad-response",
      hint: `check HF_ENDPOINT (${r(endpoint)}) and the network's login page`,
      cause: error,
    });
  }
  return error instanceof Error ? error : new Error(String(error));
}

function tries(n: number): string {
  return n > 1 ? ` (gave up after ${n} tries)` : "";
}

function fromTransport(error: HubTransportError, what: string, endpoint: string): HubUserError {
  switch (error.failure) {
    case "idle-timeout":
    case "total-timeout":
      return new HubUserError(`${what}: the Hub at ${endpoint} ${error.detail}${tries(error.tries)}`, {
        kind: "timeout",
        hint: "check the network and run again (HF_HUB_DOWNLOAD_TIMEOUT sets the wait for each byte, in seconds)",
        cause: error,
      });
    case "retries-exhausted":
      if (error.status === 429) {
        return new HubUserError(`${what}: rate-limited by the Hub (429)${tries(error.tries)}`, {
          kind: "rate-limited",
          status: 429,
          hint: "wait a few minutes and run again (a token raises the limit)",
          cause: error,
        });
      }
      return new HubUserError(`${what}: the Hub had a server error (${error.status})${tries(error.tries)}`, {
        kind: "server",
        status: error.status,
        hint: "try again in a few minutes (see https://status.huggingface.co)",
        cause: error,
      });
    case "retry-after-too-long":
      return new HubUserError(`${what}: rate-limited by the Hub (429), which asks to wait ${error.detail}`, {
        kind: "rate-limited",
        status: 429,
        hint: "run again after that time (a token raises the limit)",
        cause: error,
      });
    case "not-hub-api":
      return new HubUserError(`${what}: ${NOT_HUB_API} (${error.detail})`, {
        kind: "bad-response",
        status: error.status,
        hint: `check HF_ENDPOINT (${endpoint}) and the network's login page`,
        cause: error,
      });
    case "offline":
      return new HubUserError(`${what}: ${error.detail}`, {
        kind: "offline",
        hint: "unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE to reach the Hub",
        cause: error,
      });
  }
}

function fromStatus(
  error: Error & ApiErrorLike,
  what: string,
  token: string | undefined,
  r: (text: string) => string,
): HubUserError {
  const status = error.statusCode;
  const serverText = r(serverMessage(error));
  const detail = serverText ? `: ${serverText}` : "";
  if (status === 401) {
    const hint =
      token === undefined
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

/** The server's own short explanation, without the library's "URL: …" trailer. */
function serverMessage(error: ApiErrorLike): string {
  const data = error.data as { error?: unknown; message?: unknown } | undefined;
  const text =
    typeof data?.error === "string" ? data.error : typeof data?.message === "string" ? data.message : "";
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > 160 ? `${oneLine.slice(0, 157)}...` : oneLine;
}
