// A loopback stand-in for the Hugging Face Hub (hub.md §4) on plain node:http: model and dataset
// repos with commits and branches, resolve/raw downloads with ranges, revision/paths-info/tree
// APIs, repo creation, preupload + LFS batch + NDJSON commits, auth checks, fault injection and a
// request log (with a digest of every request body). Tests point @huggingface/hub at it with `hubUrl: server.url`.

import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type RepoType = "model" | "dataset";

/** Files of this size or larger are stored in LFS (and preupload answers "lfs"). */
export const LFS_THRESHOLD_BYTES = 1_000_000;

/** One file as the server stores it. */
export interface ServedFile {
  readonly content: Buffer;
  readonly lfs: boolean;
  /** sha256 of the content (the LFS oid). */
  readonly sha256: string;
  /** Git blob id: of the content for regular files, of the LFS pointer for LFS files. */
  readonly gitOid: string;
}

interface Commit {
  readonly sha: string;
  readonly parent: string | undefined;
  readonly title: string;
  readonly description: string;
  readonly date: string;
  readonly files: Map<string, ServedFile>;
}

interface Repo {
  readonly type: RepoType;
  readonly name: string;
  private: boolean;
  requireAuth: boolean;
  readonly branches: Map<string, string>;
  readonly commits: Map<string, Commit>;
  prCount: number;
}

/** One request as the server saw it (the Authorization value is never kept). */
export interface RecordedRequest {
  readonly method: string;
  /** Path and query string, as sent. */
  readonly url: string;
  /** Decoded path without the query string. */
  readonly path: string;
  /** Request headers, with `authorization` replaced by `Bearer <present>`. */
  readonly headers: Readonly<Record<string, string>>;
  readonly hasAuth: boolean;
  /** The Range header, if any. */
  readonly range: string | undefined;
  /** The request body as received: its size, sha256, and for JSON / NDJSON requests its parsed value. */
  body: RecordedBody;
  /** Status sent (set when the reply starts; stays undefined when the connection was cut first). */
  status: number | undefined;
  /** Reply body bytes actually written. */
  bodyBytes: number;
  /** Whether a fault cut the connection (before the headers, or mid-body). */
  dropped: boolean;
}

/** A digest of a request body (the bytes themselves are not kept). */
export interface RecordedBody {
  readonly size: number;
  /** sha256 (hex) of the body bytes. */
  readonly sha256: string;
  /**
   * The parsed body of a JSON request (`Content-Type` …json), or the array of parsed lines of an
   * NDJSON one (…ndjson, e.g. a commit); undefined otherwise or when it does not parse.
   */
  readonly json?: unknown;
}

/** A fault to inject into the next matching request(s). */
export interface FailRule {
  /** Matched against `METHOD /path?query`, followed by ` [bytes=a-b]` when a Range header is sent. */
  readonly route: RegExp;
  /** Answer this status with a JSON error instead of the normal reply. */
  readonly status?: 401 | 403 | 404 | 409 | 429 | 500 | 503;
  /**
   * Handle the request (its effects happen), then lose the reply: send the headers and half of the
   * body, then destroy the socket; a reply without a body (an LFS PUT, a HEAD) is cut before its
   * headers.
   */
  readonly drop?: boolean;
  /**
   * Like `drop`, but send the first n bytes of the body (headers announce the full length); with no
   * body to cut, the socket is destroyed before the headers.
   */
  readonly truncate?: number;
  /**
   * Do not handle the request at all: read it, then destroy the socket without answering (a
   * connection broken during an upload: nothing is stored).
   */
  readonly reset?: boolean;
  /** How many matching requests to affect. @default 1 */
  readonly times?: number;
  /** Read the request, then never answer (the socket stays open until the client gives up). */
  readonly hang?: boolean;
  /** Send the headers of the normal reply, then one body byte every `trickleMs` milliseconds. */
  readonly trickleMs?: number;
  /** Answer this body instead of the normal reply (a proxy, a captive portal, a look-alike server). */
  readonly body?: { readonly status?: number; readonly contentType: string; readonly text: string };
  /** With `status`: a Retry-After header value. */
  readonly retryAfter?: string;
}

/** How downloads of LFS files are redirected to a second loopback host (a CDN with signed URLs). */
export interface CdnOptions {
  /** Loopback address of the storage host. @default "127.0.0.2" */
  readonly host?: string;
  /** The X-Cache header the storage host sends (CloudFront says `Hit from cloudfront`). @default undefined */
  readonly xCache?: string;
  /** Requests a signed URL serves before it answers 403 as expired. @default Infinity */
  readonly expireAfter?: number;
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorCode?: string,
  ) {
    super(message);
  }
}

const ZERO_OID = "0".repeat(40);

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function gitBlobOid(data: Uint8Array): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}

function lfsPointer(oid: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size}\n`);
}

/** The server's LFS rule (hub.md §4.4): non-UTF-8 first 512 bytes, or size ≥ 1 MB. */
export function isLfsContent(size: number, sample: Uint8Array): boolean {
  if (size >= LFS_THRESHOLD_BYTES) return true;
  try {
    // stream: true tolerates a multi-byte character cut at the end of the sample.
    new TextDecoder("utf-8", { fatal: true }).decode(sample.subarray(0, 512), { stream: true });
    return false;
  } catch {
    return true;
  }
}

function servedFile(content: Uint8Array | string): ServedFile {
  const buf = typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
  const lfs = isLfsContent(buf.length, buf.subarray(0, 512));
  const hash = sha256(buf);
  return {
    content: buf,
    lfs,
    sha256: hash,
    gitOid: gitBlobOid(lfs ? lfsPointer(hash, buf.length) : buf),
  };
}

function json(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return {
    status,
    headers: { "Content-Type": "application/json", ...headers },
    body: Buffer.from(JSON.stringify(value)),
  };
}

/** A loopback Hub. `start()` binds 127.0.0.1 on a random port; `stop()` closes every socket. */
export class HubServer {
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  /** The user name whoami-v2 reports. */
  userName = "test-user";
  private readonly repos = new Map<string, Repo>();
  private readonly lfs = new Map<string, Buffer>();
  private readonly pendingLfs = new Map<string, number>();
  private readonly rejected = new Set<string>();
  private readonly faults: Array<FailRule & { remaining: number }> = [];
  private server: Server | undefined;
  private base: string | undefined;
  private commitCounter = 0;
  /** Every request the storage host received (see {@link startCdn}). */
  readonly cdnRequests: RecordedRequest[] = [];
  private cdn: { server: Server; url: string; options: CdnOptions } | undefined;
  private readonly signatures = new Map<string, { oid: string; used: number }>();
  private signatureCounter = 0;
  private readonly hanging = new Set<ServerResponse>();

  /** Base URL (`http://127.0.0.1:<port>`), once started. */
  get url(): string {
    if (this.base === undefined) throw new Error("HubServer is not started");
    return this.base;
  }

  /** LFS objects uploaded so far, by sha256. */
  get lfsObjects(): ReadonlyMap<string, Buffer> {
    return this.lfs;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { "Content-Type": "application/json" });
          res.end(JSON.stringify({ error: String(error) }));
        } else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  async stop(): Promise<void> {
    await this.stopCdn();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Serve LFS files from a second loopback host: `resolve/` of an LFS file answers 302 to a signed
   * URL there (with X-Linked-Etag and X-Linked-Size, as the Hub does), and each signature serves
   * `expireAfter` requests, then answers 403. The storage host records its requests in
   * {@link cdnRequests} and never checks a token.
   * @returns the storage host's base URL
   */
  async startCdn(options: CdnOptions = {}): Promise<string> {
    await this.stopCdn();
    const host = options.host ?? "127.0.0.2";
    const server = createServer((req, res) => {
      this.handleCdn(req, res).catch(() => res.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, () => resolve());
    });
    const url = `http://${host}:${(server.address() as AddressInfo).port}`;
    this.cdn = { server, url, options };
    return url;
  }

  /** Change how many requests each signature serves from now on (signatures already minted too). */
  setCdnExpiry(expireAfter: number): void {
    if (!this.cdn) throw new Error("the storage host is not started");
    this.cdn = { ...this.cdn, options: { ...this.cdn.options, expireAfter } };
  }

  /** Stop redirecting to the storage host. */
  async stopCdn(): Promise<void> {
    const cdn = this.cdn;
    if (!cdn) return;
    this.cdn = undefined;
    cdn.server.closeAllConnections();
    await new Promise<void>((resolve) => cdn.server.close(() => resolve()));
  }

  private async handleCdn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? "/";
    const url = new URL(rawUrl, "http://127.0.0.2");
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      headers[k] = k === "authorization" ? "Bearer <present>" : Array.isArray(v) ? v.join(", ") : v;
    }
    const record: RecordedRequest = {
      method: req.method ?? "GET",
      url: rawUrl,
      path: decodeURIComponent(url.pathname),
      headers,
      hasAuth: req.headers.authorization !== undefined,
      range: req.headers.range,
      body: recordBody(await readBody(req), undefined),
      status: undefined,
      bodyBytes: 0,
      dropped: false,
    };
    this.cdnRequests.push(record);
    const signature = this.signatures.get(url.searchParams.get("sig") ?? "");
    const limit = this.cdn?.options.expireAfter ?? Number.POSITIVE_INFINITY;
    const xCache = this.cdn?.options.xCache;
    const extra: Record<string, string> = xCache === undefined ? {} : { "X-Cache": xCache };
    if (!signature || signature.used >= limit) {
      const body = Buffer.from(
        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
      );
      record.status = 403;
      record.bodyBytes = body.length;
      res.writeHead(403, {
        "Content-Type": "application/xml",
        "Content-Length": String(body.length),
        ...extra,
      });
      res.end(body);
      return;
    }
    signature.used += 1;
    const content = this.lfs.get(signature.oid) ?? this.findLfsContent(signature.oid);
    if (!content) {
      record.status = 404;
      res.writeHead(404, { "Content-Length": "0" });
      res.end();
      return;
    }
    // Storage's own ETag is not the sha256: only the Hub's X-Linked-Etag names the content.
    const reply = rangeReply(content, req.headers.range, {
      "Content-Type": "application/octet-stream",
      "Accept-Ranges": "bytes",
      ETag: `"${createHash("md5").update(content).digest("hex")}"`,
      ...extra,
    });
    record.status = reply.status;
    record.bodyBytes = reply.body.length;
    res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(reply.body.length) });
    res.end(req.method === "HEAD" ? undefined : reply.body);
  }

  private findLfsContent(oid: string): Buffer | undefined {
    for (const repo of this.repos.values()) {
      for (const commit of repo.commits.values()) {
        for (const file of commit.files.values()) if (file.lfs && file.sha256 === oid) return file.content;
      }
    }
    return undefined;
  }

  /** Forget the recorded requests (of both hosts). */
  clearRequests(): void {
    this.requests.length = 0;
    this.cdnRequests.length = 0;
  }

  /** Requests whose `METHOD path` matches. */
  requestsTo(route: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => route.test(`${r.method} ${r.url}`));
  }

  /** Inject a fault into the next matching request(s). */
  failNext(rule: FailRule): void {
    this.faults.push({ ...rule, remaining: rule.times ?? 1 });
  }

  /** Answer 401 to every request carrying this token. */
  rejectToken(token: string): void {
    this.rejected.add(token);
  }

  /** Make a repo answer 401 to requests without a (non-rejected) token. */
  requireAuth(params: { type?: RepoType; name: string; on?: boolean }): void {
    this.repo(params.type ?? "model", params.name).requireAuth = params.on ?? true;
  }

  /**
   * Create a repo with one commit holding `files` on `main`.
   * @returns the commit SHA (`sha` when given, else a fresh 40-hex id)
   */
  addRepo(params: {
    type?: RepoType;
    name: string;
    files?: Readonly<Record<string, Uint8Array | string>>;
    sha?: string;
    private?: boolean;
    title?: string;
  }): string {
    const type = params.type ?? "model";
    const key = `${type}/${params.name}`;
    if (this.repos.has(key)) throw new Error(`repo ${key} exists`);
    this.repos.set(key, {
      type,
      name: params.name,
      private: params.private ?? false,
      requireAuth: params.private ?? false,
      branches: new Map(),
      commits: new Map(),
      prCount: 0,
    });
    return this.commitFiles({
      type,
      name: params.name,
      files: { ".gitattributes": "*.onnx filter=lfs diff=lfs merge=lfs -text\n", ...params.files },
      title: params.title ?? "initial commit",
      ...(params.sha === undefined ? {} : { sha: params.sha }),
    });
  }

  /**
   * Add a commit on a branch (created from `main` if missing).
   * @returns the new commit SHA
   */
  commitFiles(params: {
    type?: RepoType;
    name: string;
    files?: Readonly<Record<string, Uint8Array | string>>;
    deletions?: readonly string[];
    branch?: string;
    sha?: string;
    title?: string;
  }): string {
    const repo = this.repo(params.type ?? "model", params.name);
    const branch = params.branch ?? "main";
    const parentSha = repo.branches.get(branch) ?? repo.branches.get("main");
    const files = new Map(parentSha ? repo.commits.get(parentSha)!.files : []);
    for (const [path, content] of Object.entries(params.files ?? {})) files.set(path, servedFile(content));
    for (const path of params.deletions ?? []) files.delete(path);
    const commit = this.newCommit(parentSha, params.title ?? "update", "", files, params.sha);
    repo.commits.set(commit.sha, commit);
    repo.branches.set(branch, commit.sha);
    return commit.sha;
  }

  /** Head commit of a branch. */
  head(params: { type?: RepoType; name: string; branch?: string }): string | undefined {
    return this.repos.get(`${params.type ?? "model"}/${params.name}`)?.branches.get(params.branch ?? "main");
  }

  /** Branch names of a repo. */
  branches(params: { type?: RepoType; name: string }): string[] {
    return [...this.repo(params.type ?? "model", params.name).branches.keys()];
  }

  /** A file at a revision (branch or SHA). */
  file(params: { type?: RepoType; name: string; revision?: string; path: string }): ServedFile | undefined {
    const repo = this.repos.get(`${params.type ?? "model"}/${params.name}`);
    const sha = repo && this.resolve(repo, params.revision ?? "main");
    return sha ? repo.commits.get(sha)?.files.get(params.path) : undefined;
  }

  /** Commit title and description of a commit. */
  commitInfo(params: {
    type?: RepoType;
    name: string;
    sha: string;
  }): { title: string; description: string; parent: string | undefined } | undefined {
    const c = this.repos.get(`${params.type ?? "model"}/${params.name}`)?.commits.get(params.sha);
    return c && { title: c.title, description: c.description, parent: c.parent };
  }

  private newCommit(
    parent: string | undefined,
    title: string,
    description: string,
    files: Map<string, ServedFile>,
    sha?: string,
  ): Commit {
    this.commitCounter += 1;
    const id =
      sha ??
      createHash("sha1")
        .update(`${parent ?? ""}\n${title}\n${this.commitCounter}\n${randomBytes(8).toString("hex")}`)
        .digest("hex");
    if (!/^[0-9a-f]{40}$/.test(id)) throw new Error(`commit sha must be 40 hex digits: ${id}`);
    return { sha: id, parent, title, description, date: new Date().toISOString(), files };
  }

  private repo(type: RepoType, name: string): Repo {
    const repo = this.repos.get(`${type}/${name}`);
    if (!repo) throw new Error(`no repo ${type}/${name}`);
    return repo;
  }

  private resolve(repo: Repo, revision: string): string | undefined {
    const rev = revision === "HEAD" ? "main" : revision;
    if (repo.branches.has(rev)) return repo.branches.get(rev);
    if (repo.commits.has(rev)) return rev;
    return undefined;
  }

  // ------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const rawUrl = req.url ?? "/";
    const url = new URL(rawUrl, "http://127.0.0.1");
    const auth = req.headers.authorization;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      headers[k] = k === "authorization" ? "Bearer <present>" : Array.isArray(v) ? v.join(", ") : v;
    }
    const record: RecordedRequest = {
      method,
      url: rawUrl,
      path: decodeURIComponent(url.pathname),
      headers,
      hasAuth: auth !== undefined,
      range: req.headers.range,
      body: { size: 0, sha256: sha256(new Uint8Array(0)) },
      status: undefined,
      bodyBytes: 0,
      dropped: false,
    };
    this.requests.push(record);
    const body = await readBody(req);
    record.body = recordBody(body, req.headers["content-type"]);

    const target = `${method} ${rawUrl}${record.range === undefined ? "" : ` [${record.range}]`}`;
    const faultIndex = this.faults.findIndex((f) => f.route.test(target));
    const fault = faultIndex >= 0 ? this.faults[faultIndex] : undefined;
    if (fault) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.faults.splice(faultIndex, 1);
    }
    if (fault?.reset) {
      record.dropped = true;
      res.destroy();
      return;
    }
    if (fault?.hang) {
      // Never answer; stop() closes the socket.
      this.hanging.add(res);
      res.on("close", () => this.hanging.delete(res));
      return;
    }
    let reply: Reply;
    if (fault?.body !== undefined) {
      reply = {
        status: fault.body.status ?? 200,
        headers: { "Content-Type": fault.body.contentType },
        body: Buffer.from(fault.body.text),
      };
    } else if (fault?.status !== undefined) {
      reply = json(
        fault.status,
        { error: `injected failure ${fault.status}` },
        {
          ...(fault.status === 404 ? { "X-Error-Code": "EntryNotFound" } : {}),
          ...(fault.retryAfter === undefined ? {} : { "Retry-After": fault.retryAfter }),
        },
      );
    } else {
      try {
        const token = auth?.startsWith("Bearer ") ? auth.slice(7) : undefined;
        reply = await this.route(method, url, req, body, token);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        reply = json(
          error.status,
          { error: error.message },
          error.errorCode ? { "X-Error-Code": error.errorCode } : {},
        );
      }
    }
    this.send(res, method, reply, record, fault);
  }

  private send(
    res: ServerResponse,
    method: string,
    reply: Reply,
    record: RecordedRequest,
    fault?: FailRule,
  ): void {
    if (fault?.trickleMs !== undefined && method !== "HEAD" && reply.body.length > 0) {
      record.status = reply.status;
      res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(reply.body.length) });
      let at = 0;
      const timer = setInterval(() => {
        if (res.destroyed || at >= reply.body.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(reply.body.subarray(at, at + 1));
        at += 1;
        record.bodyBytes = at;
      }, fault.trickleMs);
      res.on("close", () => clearInterval(timer));
      return;
    }
    const cutting = fault?.truncate !== undefined || fault?.drop === true;
    if (cutting && (method === "HEAD" || reply.body.length === 0)) {
      // Nothing to cut mid-body: the reply is lost before its status line.
      record.dropped = true;
      res.destroy();
      return;
    }
    record.status = reply.status;
    const headers = { ...reply.headers };
    if (headers["Content-Length"] === undefined) headers["Content-Length"] = String(reply.body.length);
    res.writeHead(reply.status, headers);
    if (method === "HEAD") {
      res.end();
      return;
    }
    const cut =
      fault?.truncate !== undefined
        ? fault.truncate
        : fault?.drop
          ? Math.floor(reply.body.length / 2)
          : undefined;
    if (cut !== undefined && cut < reply.body.length) {
      const part = reply.body.subarray(0, cut);
      record.bodyBytes = part.length;
      record.dropped = true;
      res.write(part, () => {
        // Give the bytes a moment to leave, then cut the connection mid-body.
        setTimeout(() => res.destroy(), 5);
      });
      return;
    }
    record.bodyBytes = reply.body.length;
    res.end(reply.body);
  }

  /** Check the token: rejected tokens get 401; `write` and protected repos need one. */
  private checkAuth(
    token: string | undefined,
    options: { write?: boolean; repo?: Repo | undefined } = {},
  ): void {
    if (token !== undefined && (this.rejected.has(token) || !token.startsWith("hf_"))) {
      throw new HttpError(401, "Invalid credentials in Authorization header");
    }
    if (token === undefined && (options.write || options.repo?.requireAuth)) {
      throw new HttpError(401, "Invalid username or password.");
    }
  }

  private findRepo(type: RepoType, name: string, token: string | undefined): Repo {
    const repo = this.repos.get(`${type}/${name}`);
    this.checkAuth(token, { repo });
    if (!repo) throw new HttpError(404, "Repository not found", "RepoNotFound");
    return repo;
  }

  private async route(
    method: string,
    url: URL,
    req: IncomingMessage,
    body: Buffer,
    token: string | undefined,
  ): Promise<Reply> {
    // Raw segments: revisions may be URL-encoded ("refs%2Fpr%2F1") and must be split before decoding.
    const segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
    const [first, second] = segments;

    if (method === "PUT" && first === "__lfs" && second !== undefined) return this.lfsPut(second, body);
    if (first === "api") {
      if (second === "whoami-v2" && method === "GET") return this.whoami(token);
      if (second === "repos" && segments[2] === "create" && method === "POST")
        return this.createRepo(body, token);
      if ((second === "models" || second === "datasets") && segments.length >= 5) {
        const type: RepoType = second === "models" ? "model" : "dataset";
        const name = `${segments[2]}/${segments[3]}`;
        return this.api(method, type, name, segments.slice(4), url, body, token);
      }
      if ((second === "models" || second === "datasets") && segments.length === 4 && method === "GET") {
        const repo = this.findRepo(
          second === "models" ? "model" : "dataset",
          `${segments[2]}/${segments[3]}`,
          token,
        );
        return json(200, { id: repo.name, private: repo.private, likes: 0 });
      }
      throw new HttpError(404, `no route ${method} ${url.pathname}`);
    }

    // Non-API routes: /{P}{ns}/{name}.git/info/lfs/objects/batch and /{P}{ns}/{name}/resolve|raw/{rev}/{path}
    const type: RepoType = first === "datasets" ? "dataset" : "model";
    const rest = type === "dataset" ? segments.slice(1) : segments;
    const [ns, repoPart, kind, rev, ...pathParts] = rest;
    if (ns === undefined || repoPart === undefined)
      throw new HttpError(404, `no route ${method} ${url.pathname}`);
    if (repoPart.endsWith(".git") && kind === "info" && method === "POST") {
      return this.lfsBatch(type, `${ns}/${repoPart.slice(0, -4)}`, body, token);
    }
    if (
      (kind === "resolve" || kind === "raw") &&
      rev !== undefined &&
      (method === "GET" || method === "HEAD")
    ) {
      return this.download(type, `${ns}/${repoPart}`, kind, rev, pathParts.join("/"), req, token);
    }
    throw new HttpError(404, `no route ${method} ${url.pathname}`);
  }

  private download(
    type: RepoType,
    name: string,
    kind: "resolve" | "raw",
    rev: string,
    path: string,
    req: IncomingMessage,
    token: string | undefined,
  ): Reply {
    const repo = this.findRepo(type, name, token);
    const sha = this.resolve(repo, rev);
    if (!sha) throw new HttpError(404, `Revision not found: ${rev}`, "RevisionNotFound");
    const file = repo.commits.get(sha)!.files.get(path);
    if (!file) throw new HttpError(404, `Entry not found: ${path}`, "EntryNotFound");
    const content = kind === "raw" && file.lfs ? lfsPointer(file.sha256, file.content.length) : file.content;
    const etag = file.lfs && kind === "resolve" ? file.sha256 : gitBlobOid(content);
    const headers: Record<string, string> = {
      "Content-Type": "application/octet-stream",
      "Accept-Ranges": "bytes",
      ETag: `"${etag}"`,
      "X-Repo-Commit": sha,
    };
    if (file.lfs && kind === "resolve") {
      headers["X-Linked-Etag"] = `"${file.sha256}"`;
      headers["X-Linked-Size"] = String(file.content.length);
    }
    if (this.cdn && file.lfs && kind === "resolve") {
      this.signatureCounter += 1;
      const sig = createHash("sha1").update(`${file.sha256}/${this.signatureCounter}`).digest("hex");
      this.signatures.set(sig, { oid: file.sha256, used: 0 });
      return {
        status: 302,
        headers: {
          ...headers,
          Location: `${this.cdn.url}/cdn/${file.sha256}?sig=${sig}`,
          "Content-Length": "0",
        },
        body: Buffer.alloc(0),
      };
    }
    return rangeReply(content, req.headers.range, headers);
  }

  private api(
    method: string,
    type: RepoType,
    name: string,
    rest: string[],
    url: URL,
    body: Buffer,
    token: string | undefined,
  ): Reply {
    const [op, rev = "main", ...pathParts] = rest;
    const write = op === "preupload" || op === "commit" || op === "branch";
    if (write) this.checkAuth(token, { write: true });
    const repo = this.findRepo(type, name, token);
    const createPr = url.searchParams.get("create_pr") === "1";
    if (op === "commit" && method === "POST") return this.commit(repo, rev, body, createPr);
    if (op === "preupload" && method === "POST") return this.preupload(repo, rev, body, createPr);
    if (op === "branch" && method === "POST" && rest.length === 2) return this.createBranch(repo, rev, body);
    const sha = this.resolve(repo, rev);
    if (!sha) throw new HttpError(404, `Revision not found: ${rev}`, "RevisionNotFound");
    const commit = repo.commits.get(sha)!;
    if (op === "revision" && method === "GET") {
      return json(200, {
        _id: createHash("sha1").update(`${type}/${name}`).digest("hex").slice(0, 24),
        id: repo.name,
        private: repo.private,
        sha,
        lastModified: commit.date,
        downloads: 0,
        likes: 0,
        gated: false,
        siblings: [...commit.files.keys()].map((rfilename) => ({ rfilename })),
      });
    }
    if (op === "paths-info" && method === "POST") {
      const request = JSON.parse(body.toString("utf8")) as { paths?: string[]; expand?: boolean };
      const out: unknown[] = [];
      for (const path of request.paths ?? []) {
        const file = commit.files.get(path);
        if (file) out.push(this.treeEntry(path, file, request.expand ? commit : undefined));
        else if ([...commit.files.keys()].some((p) => p.startsWith(`${path}/`))) {
          out.push({ type: "directory", path, oid: ZERO_OID, size: 0 });
        }
      }
      return json(200, out);
    }
    if (op === "tree" && method === "GET") {
      const prefix = pathParts.join("/");
      const recursive = url.searchParams.get("recursive") === "true";
      const entries: unknown[] = [];
      const dirs = new Set<string>();
      for (const [path, file] of [...commit.files].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
        if (prefix && !path.startsWith(`${prefix}/`)) continue;
        const rel = prefix ? path.slice(prefix.length + 1) : path;
        const parts = rel.split("/");
        for (let i = 1; i < parts.length; i++) {
          const dir = [prefix, ...parts.slice(0, i)].filter(Boolean).join("/");
          if (!recursive && i > 1) break;
          if (!dirs.has(dir)) {
            dirs.add(dir);
            entries.push({ type: "directory", path: dir, oid: ZERO_OID, size: 0 });
          }
        }
        if (!recursive && parts.length > 1) continue;
        entries.push(this.treeEntry(path, file, undefined));
      }
      return json(200, entries);
    }
    throw new HttpError(404, `no route ${method} /api/${type}s/${name}/${rest.join("/")}`);
  }

  private treeEntry(path: string, file: ServedFile, commit: Commit | undefined): Record<string, unknown> {
    return {
      type: "file",
      path,
      oid: file.gitOid,
      size: file.content.length,
      ...(file.lfs
        ? {
            lfs: {
              oid: file.sha256,
              size: file.content.length,
              pointerSize: lfsPointer(file.sha256, file.content.length).length,
            },
          }
        : {}),
      ...(commit ? { lastCommit: { id: commit.sha, title: commit.title, date: commit.date } } : {}),
    };
  }

  private whoami(token: string | undefined): Reply {
    this.checkAuth(token);
    if (token === undefined) throw new HttpError(401, "Invalid username or password.");
    return json(200, {
      type: "user",
      id: "0123456789abcdef01234567",
      name: this.userName,
      fullname: "Test User",
      email: "test@example.invalid",
      orgs: [],
      auth: {
        type: "access_token",
        accessToken: { displayName: "test", role: "write", createdAt: new Date().toISOString() },
      },
    });
  }

  private createRepo(body: Buffer, token: string | undefined): Reply {
    this.checkAuth(token, { write: true });
    const request = JSON.parse(body.toString("utf8")) as {
      name?: string;
      organization?: string;
      type?: string;
      visibility?: string;
      private?: boolean;
    };
    const type: RepoType = request.type === "dataset" ? "dataset" : "model";
    const name = `${request.organization ?? this.userName}/${request.name ?? ""}`;
    const prefix = type === "dataset" ? "datasets/" : "";
    if (this.repos.has(`${type}/${name}`)) {
      return json(409, {
        error: `You already created this ${type} repo`,
        url: `${this.url}/${prefix}${name}`,
      });
    }
    const isPrivate = request.visibility === "private" || request.private === true;
    this.addRepo({ type, name, private: isPrivate });
    return json(200, { url: `${this.url}/${prefix}${name}`, name, id: randomBytes(12).toString("hex") });
  }

  /**
   * `POST /api/{t}s/{R}/branch/{branch}` with `{startingPoint?, overwrite?, emptyBranch?}`: a new
   * branch at `startingPoint` (a branch or commit; default the head of main). An existing branch is
   * a 409 unless `overwrite` (which, without a starting point, leaves it as it is).
   */
  private createBranch(repo: Repo, branch: string, body: Buffer): Reply {
    const request = (body.length === 0 ? {} : JSON.parse(body.toString("utf8"))) as {
      startingPoint?: unknown;
      overwrite?: unknown;
      emptyBranch?: unknown;
    };
    if (branch === "" || branch.startsWith("refs/") || /[\s~^:?*[\\]|\.\./.test(branch)) {
      throw new HttpError(400, `Invalid branch name: ${branch}`);
    }
    if (request.emptyBranch === true) throw new HttpError(400, "emptyBranch is not supported here");
    const exists = repo.branches.has(branch);
    if (exists && request.overwrite !== true) {
      throw new HttpError(409, `Reference already exists: refs/heads/${branch}`);
    }
    const start = typeof request.startingPoint === "string" ? request.startingPoint : undefined;
    if (exists && start === undefined) return json(200, {});
    const sha = this.resolve(repo, start ?? "main");
    if (!sha) throw new HttpError(404, `Invalid rev id: ${start ?? "main"}`, "RevisionNotFound");
    repo.branches.set(branch, sha);
    return json(200, {});
  }

  private preupload(repo: Repo, rev: string, body: Buffer, createPr: boolean): Reply {
    if (!createPr && !repo.branches.has(rev))
      throw new HttpError(404, `Revision not found: ${rev}`, "RevisionNotFound");
    const request = JSON.parse(body.toString("utf8")) as {
      files?: { path: string; size: number; sample: string }[];
    };
    return json(200, {
      files: (request.files ?? []).map((f) => ({
        path: f.path,
        uploadMode: isLfsContent(f.size, Buffer.from(f.sample, "base64")) ? "lfs" : "regular",
        shouldIgnore: false,
      })),
    });
  }

  private lfsBatch(type: RepoType, name: string, body: Buffer, token: string | undefined): Reply {
    this.checkAuth(token, { write: true });
    this.findRepo(type, name, token);
    const request = JSON.parse(body.toString("utf8")) as {
      operation?: string;
      transfers?: string[];
      objects?: { oid: string; size: number }[];
    };
    if (request.operation !== "upload") throw new HttpError(400, "only upload is supported");
    if (!(request.transfers ?? []).includes("basic")) throw new HttpError(400, "basic transfer required");
    const objects = (request.objects ?? []).map((o) => {
      if (this.lfs.has(o.oid)) return { oid: o.oid, size: o.size, authenticated: true };
      this.pendingLfs.set(o.oid, o.size);
      return {
        oid: o.oid,
        size: o.size,
        authenticated: true,
        actions: { upload: { href: `${this.url}/__lfs/${o.oid}`, expires_in: 3600 } },
      };
    });
    return {
      status: 200,
      headers: {
        "Content-Type": "application/vnd.git-lfs+json",
        "X-Request-Id": randomBytes(8).toString("hex"),
      },
      body: Buffer.from(JSON.stringify({ transfer: "basic", objects })),
    };
  }

  private lfsPut(oid: string, body: Buffer): Reply {
    const stored = this.lfs.get(oid);
    // A repeated PUT of an object already stored (its first reply was lost) succeeds, as on S3.
    if (stored !== undefined && body.length === stored.length && sha256(body) === oid) {
      return { status: 200, headers: {}, body: Buffer.alloc(0) };
    }
    const expected = this.pendingLfs.get(oid);
    if (expected === undefined) throw new HttpError(404, `no pending upload for ${oid}`);
    if (body.length !== expected)
      throw new HttpError(400, `size mismatch: expected ${expected}, got ${body.length}`);
    if (sha256(body) !== oid) throw new HttpError(400, "sha256 mismatch");
    this.pendingLfs.delete(oid);
    this.lfs.set(oid, body);
    return { status: 200, headers: {}, body: Buffer.alloc(0) };
  }

  private commit(repo: Repo, rev: string, body: Buffer, createPr: boolean): Reply {
    const lines = body
      .toString("utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { key: string; value: Record<string, unknown> });
    const header = lines.find((l) => l.key === "header")?.value;
    if (!header || typeof header.summary !== "string") throw new HttpError(400, "missing commit header");
    const parentCommit = typeof header.parentCommit === "string" ? header.parentCommit : undefined;
    let branch = rev;
    let base: string | undefined;
    let prNumber: number | undefined;
    if (createPr) {
      base = parentCommit ?? repo.branches.get(rev);
      if (!base || !repo.commits.has(base))
        throw new HttpError(404, `Revision not found: ${rev}`, "RevisionNotFound");
      repo.prCount += 1;
      prNumber = repo.prCount;
      branch = `refs/pr/${prNumber}`;
    } else {
      base = repo.branches.get(rev);
      if (!base) throw new HttpError(404, `Revision not found: ${rev}`, "RevisionNotFound");
      if (parentCommit !== undefined && parentCommit !== base) {
        throw new HttpError(412, "A commit has happened since. Please refresh and try again.");
      }
    }
    const files = new Map(repo.commits.get(base)!.files);
    for (const { key, value } of lines) {
      const path = String(value.path ?? "");
      if (key === "file") {
        if (value.encoding !== "base64") throw new HttpError(400, `unsupported encoding for ${path}`);
        files.set(path, servedFile(Buffer.from(String(value.content), "base64")));
      } else if (key === "lfsFile") {
        const oid = String(value.oid);
        const object = this.lfs.get(oid);
        if (!object || object.length !== Number(value.size)) {
          throw new HttpError(422, `LFS object ${oid} of ${path} was never uploaded`);
        }
        files.set(path, {
          content: object,
          lfs: true,
          sha256: oid,
          gitOid: gitBlobOid(lfsPointer(oid, object.length)),
        });
      } else if (key === "deletedFile") {
        if (!files.delete(path)) throw new HttpError(404, `Entry not found: ${path}`, "EntryNotFound");
      } else if (key === "deletedFolder") {
        for (const p of [...files.keys()]) if (p.startsWith(`${path}/`)) files.delete(p);
      } else if (key !== "header") {
        throw new HttpError(400, `unknown commit line ${key}`);
      }
    }
    const description = typeof header.description === "string" ? header.description : "";
    const commit = this.newCommit(base, header.summary, description, files);
    repo.commits.set(commit.sha, commit);
    repo.branches.set(branch, commit.sha);
    const prefix = repo.type === "dataset" ? "datasets/" : "";
    return json(200, {
      success: true,
      commitOid: commit.sha,
      commitUrl: `${this.url}/${prefix}${repo.name}/commit/${commit.sha}`,
      hookOutput: "",
      ...(prNumber === undefined
        ? {}
        : { pullRequestUrl: `${this.url}/${prefix}${repo.name}/discussions/${prNumber}` }),
    });
  }
}

/** The reply to a GET with an optional Range header: 200, 206 with Content-Range, or 416. */
function rangeReply(content: Buffer, range: string | undefined, headers: Record<string, string>): Reply {
  if (range === undefined) return { status: 200, headers, body: content };
  const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
  const size = content.length;
  let start: number | undefined;
  let end: number | undefined;
  if (m && (m[1] !== "" || m[2] !== "")) {
    if (m[1] === "") {
      const n = Number(m[2]);
      start = Math.max(0, size - n);
      end = size - 1;
    } else {
      start = Number(m[1]);
      end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
  }
  if (start === undefined || end === undefined || start > end || start >= size) {
    return {
      status: 416,
      headers: { ...headers, "Content-Range": `bytes */${size}` },
      body: Buffer.alloc(0),
    };
  }
  return {
    status: 206,
    headers: { ...headers, "Content-Range": `bytes ${start}-${end}/${size}` },
    body: content.subarray(start, end + 1),
  };
}

function recordBody(body: Buffer, contentType: string | undefined): RecordedBody {
  const digest = { size: body.length, sha256: sha256(body) };
  const type = (contentType ?? "").toLowerCase();
  if (body.length === 0 || !type.includes("json")) return digest;
  try {
    const text = body.toString("utf8");
    const json = type.includes("ndjson")
      ? text
          .split("\n")
          .filter((l) => l.trim() !== "")
          .map((l) => JSON.parse(l) as unknown)
      : (JSON.parse(text) as unknown);
    return { ...digest, json };
  } catch {
    return digest;
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A loopback URL where nothing listens (a port just released), for "no server" tests. */
export async function closedPortUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Create and start a loopback Hub. */
export async function startHubServer(): Promise<HubServer> {
  const server = new HubServer();
  await server.start();
  return server;
}
