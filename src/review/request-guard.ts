// Who may talk to the review server: only the page it served, in a browser on this machine. Every
// request must name the server by its loopback address (a page of another site that points a DNS
// name at 127.0.0.1 sends its own name: DNS rebinding), carry the random access token, and not come
// from another site (Origin, Sec-Fetch-Site). Changes must also carry the token in a header, which
// no cross-site form or image can send without the browser asking first (and the server never
// allows it).

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

/** Header that carries the access token on API calls. */
export const TOKEN_HEADER = "x-persam-token";
/** Query parameter that carries the access token on the page, images and the event stream. */
export const TOKEN_PARAM = "token";

/** A new random access token (192 bits, URL-safe). */
export function newAccessToken(): string {
  return randomBytes(24).toString("base64url");
}

/** Parameters of {@link checkRequest}. */
export interface CheckRequestParams {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** The request's URL, parsed against the server's own origin. */
  readonly url: URL;
  /** The port the server listens on. */
  readonly port: number;
  readonly token: string;
}

/** Why a request is refused: an HTTP status and one line. */
export interface Refusal {
  readonly status: 400 | 403 | 405 | 415;
  readonly message: string;
}

/** Same length digests, compared in constant time. */
function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}

/** The hosts the server answers to (a browser sends the one it was given in the URL). */
export function allowedHosts(port: number): readonly string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

/**
 * Check a request before anything else reads it.
 * @returns undefined when it may go on, else the refusal
 */
export function checkRequest(params: CheckRequestParams): Refusal | undefined {
  const { headers, method, port } = params;
  const hosts = allowedHosts(port);
  if (!hosts.includes(String(headers.host ?? "").toLowerCase())) {
    return { status: 403, message: "this server answers only to 127.0.0.1 and localhost" };
  }
  const origin = headers.origin;
  if (origin !== undefined && !hosts.some((h) => origin.toLowerCase() === `http://${h}`)) {
    return { status: 403, message: "requests from other sites are refused" };
  }
  const site = headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return { status: 403, message: "requests from other sites are refused" };
  }
  const change = method !== "GET" && method !== "HEAD";
  const headerToken = headers[TOKEN_HEADER];
  const given =
    typeof headerToken === "string" ? headerToken : (params.url.searchParams.get(TOKEN_PARAM) ?? undefined);
  if (!sameToken(given, params.token)) {
    return { status: 403, message: "missing or wrong access token: open the URL persam-db review printed" };
  }
  if (change) {
    if (method !== "POST") return { status: 405, message: `${method} is not allowed` };
    if (typeof headerToken !== "string") {
      return { status: 403, message: `changes need the access token in the ${TOKEN_HEADER} header` };
    }
    const type = String(headers["content-type"] ?? "")
      .split(";")[0]!
      .trim()
      .toLowerCase();
    if (type !== "application/json") return { status: 415, message: "send JSON (application/json)" };
  }
  return undefined;
}
