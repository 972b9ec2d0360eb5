// The review web server: node:http on 127.0.0.1 only, every request checked (request-guard.ts)
// before it is routed, bodies bounded, photos named by stem and looked up in the set (never a path
// from the request), the page and its script served from this module's strings, and the rebuild's
// progress sent to the page as server-sent events.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { UserError } from "../errors.js";
import type { EmbeddingStore } from "../segment/sam/embedding-cache.js";
import type { SamModel } from "../segment/sam/sam-model.js";
import { checkRequest, newAccessToken, TOKEN_PARAM } from "./request-guard.js";
import { type RebuildEvent, ReviewApi, ReviewApiError } from "./review-api.js";
import { REVIEW_PAGE_CSS, REVIEW_PAGE_SCRIPT, reviewPageHtml } from "./review-page.js";
import type { ReviewSet } from "./review-set.js";

/** Largest request body accepted, in bytes (a prompt of 64 clicks is under 4 KiB). */
export const MAX_BODY_BYTES = 64 * 1024;

/** Parameters of {@link startReviewServer}. */
export interface StartReviewServerParams {
  /** The set, opened (and locked) with `ReviewSet.open`; closing the server leaves it open. */
  readonly set: ReviewSet;
  /** The model to run SAM's decoder (and, for photos not in the cache, the encoder) with. */
  readonly model: SamModel;
  /**
   * Port on 127.0.0.1.
   * @default 0 (a free port)
   */
  readonly port?: number | undefined;
  /** The embedding cache `prepare` filled. @default none (photos are encoded again) */
  readonly embeddingCache?: EmbeddingStore | undefined;
  /** Longer side of the photos and masks sent to the page. @default 1280 */
  readonly displaySide?: number | undefined;
  /** Told of each step of a rebuild (the CLI prints them). */
  readonly onRebuild?: ((event: RebuildEvent) => void) | undefined;
  /** Told of requests that failed with a bug (the page gets a short line). */
  readonly onError?: ((error: unknown) => void) | undefined;
}

/** A running review server. */
export interface ReviewServer {
  /** The page's address, access token included: `http://127.0.0.1:PORT/?token=…`. */
  readonly url: string;
  readonly port: number;
  /** The random access token every request must carry. */
  readonly token: string;
  readonly api: ReviewApi;
  /**
   * Stop: a running rebuild stops after its current step (every file complete), open connections
   * end, the server stops listening. Safe to call twice.
   */
  close(): Promise<void>;
}

/**
 * Start the review server on 127.0.0.1.
 * @throws UserError when the port is taken or may not be used
 */
export async function startReviewServer(params: StartReviewServerParams): Promise<ReviewServer> {
  const token = newAccessToken();
  const events = new Set<ServerResponse>();
  const broadcast = (event: RebuildEvent): void => {
    const data = `event: rebuild\ndata: ${JSON.stringify(event)}\n\n`;
    for (const res of events) res.write(data);
    params.onRebuild?.(event);
  };
  const api = new ReviewApi({
    set: params.set,
    model: params.model,
    embeddingCache: params.embeddingCache,
    displaySide: params.displaySide,
    onRebuild: broadcast,
  });
  let port = 0;
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      params.onError?.(error);
      if (!res.headersSent) sendJson(res, 500, { error: "unexpected error in persam-db review (a bug)" });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", `http://127.0.0.1:${port}`);
    const refusal = checkRequest({ method, headers: req.headers, url, port, token });
    if (refusal) {
      // The body of a refused request is never read: the connection is closed after the answer.
      res.setHeader("Connection", "close");
      sendJson(res, refusal.status, { error: refusal.message });
      req.resume();
      return;
    }
    try {
      await route(method, url, req, res);
    } catch (error) {
      if (error instanceof ReviewApiError) {
        if (error.status === 413) res.setHeader("Connection", "close");
        sendJson(res, error.status, { error: error.message });
      } else if (error instanceof UserError) {
        sendJson(res, 409, { error: error.toLine() });
      } else throw error;
    }
  }

  async function route(method: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = url.pathname;
    if (method === "GET" || method === "HEAD") {
      if (path === "/") return send(res, 200, "text/html; charset=utf-8", reviewPageHtml(token));
      if (path === "/review.js") return send(res, 200, "text/javascript; charset=utf-8", REVIEW_PAGE_SCRIPT);
      if (path === "/review.css") return send(res, 200, "text/css; charset=utf-8", REVIEW_PAGE_CSS);
      if (path === "/api/set") return sendJson(res, 200, api.summary());
      if (path === "/api/events") return openEvents(res);
      const photo = photoRoute(path);
      if (photo?.what === "image") return send(res, 200, "image/jpeg", await api.photoImage(photo.stem));
      if (photo?.what === "mask") return send(res, 200, "image/png", await api.currentMask(photo.stem));
      if (photo?.what === "thumb") {
        const thumb = await api.photoThumbnail(photo.stem);
        if (!thumb) throw new ReviewApiError(404, "no thumbnail");
        return send(res, 200, "image/jpeg", thumb);
      }
      throw new ReviewApiError(404, "not found");
    }
    // POST (checkRequest allows no other method with a body).
    const body = await readJsonBody(req);
    if (path === "/api/rebuild") {
      api.startRebuild();
      return sendJson(res, 202, { started: true });
    }
    if (path === "/api/reference/forget") return sendJson(res, 200, await api.forgetReference());
    const photo = photoRoute(path);
    switch (photo?.what) {
      case "predict":
        return sendJson(res, 200, await api.predict(photo.stem, body));
      case "accept":
        return sendJson(res, 200, await api.accept(photo.stem, body));
      case "exclude":
        return sendJson(res, 200, await api.exclude(photo.stem));
      case "forget":
        return sendJson(res, 200, await api.forget(photo.stem));
      case "reference":
        return sendJson(res, 200, await api.useAsReference(photo.stem, body));
      default:
        throw new ReviewApiError(404, "not found");
    }
  }

  function openEvents(res: ServerResponse): void {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "Content-Type": "text/event-stream; charset=utf-8",
      Connection: "keep-alive",
    });
    res.write(`event: hello\ndata: ${JSON.stringify({ rebuilding: api.rebuild !== undefined })}\n\n`);
    events.add(res);
    res.on("close", () => events.delete(res));
  }

  await new Promise<void>((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException): void => {
      reject(
        error.code === "EADDRINUSE" || error.code === "EACCES"
          ? new UserError(`cannot listen on 127.0.0.1:${params.port ?? 0} (${error.code})`, {
              hint: "choose another --port, or leave it out for a free one",
              cause: error,
            })
          : error,
      );
    };
    server.once("error", fail);
    server.listen(params.port ?? 0, "127.0.0.1", () => {
      server.off("error", fail);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  // Keep-alive sockets of the page would hold close() for their timeout otherwise.
  const heartbeat = setInterval(() => {
    for (const res of events) res.write(": keep-alive\n\n");
  }, 15_000);
  heartbeat.unref();

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/?${TOKEN_PARAM}=${token}`,
    port,
    token,
    api,
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        await api.stop();
        for (const res of events) res.end();
        events.clear();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}

/** Headers on every answer: nothing cached, sniffed, framed, referred or loaded from elsewhere. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array): void {
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "Content-Type": type,
    "Content-Length": String(bytes.byteLength),
  });
  res.end(bytes);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value));
}

/** Photo routes: `/api/photos/<stem>/<what>`, the stem URL-encoded. */
function photoRoute(path: string): { stem: string; what: string } | undefined {
  const m = /^\/api\/photos\/([^/]+)\/([a-z]+)$/.exec(path);
  if (!m) return undefined;
  let stem: string;
  try {
    stem = decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
  return { stem, what: m[2]! };
}

/**
 * The request's JSON body, at most {@link MAX_BODY_BYTES}. Past the limit nothing more is kept (the
 * rest is drained, and the answer closes the connection).
 * @throws ReviewApiError 413 when it is larger, 400 when it is not JSON
 */
function readJsonBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): ReviewApiError =>
      new ReviewApiError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        over = true;
        chunks.length = 0;
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      if (over) return;
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        reject(new ReviewApiError(400, "the request body is not JSON"));
      }
    });
  });
}
