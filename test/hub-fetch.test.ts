// The Hub fetch (src/hub/hub-fetch.ts) against a loopback Hub on 127.0.0.1 that redirects file
// downloads to a storage host on 127.0.0.2: a server that hangs or trickles, answers that are not the
// Hub's API, redirects with and without CloudFront's X-Cache (the storage host must never see the
// token), a 429 with a long Retry-After, and a signed URL that expires in the middle of a download.
// Time limits are short here so the tests stay fast; each limit is far from the server's own pace.

import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { downloadToCache, openHubFile } from "../src/hub/download-file.js";
import { getPathsInfo, HubUserError, hubSafetensorsHeader, resolveRevision } from "../src/hub/hub-api.js";
import { NOT_HUB_API } from "../src/hub/hub-errors.js";
import { createHubFetch } from "../src/hub/hub-fetch.js";
import { runCli } from "./support/cli.js";
import { type HubServer, LFS_THRESHOLD_BYTES, startHubServer } from "./support/hub-server.js";

const TOKEN = "hf_hubfetchtesttoken000000001";
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
let server: HubServer;
let work: string;
let sha: string;
const big = randomBytes(LFS_THRESHOLD_BYTES + 100_000);
const repo = { type: "model" as const, name: "acme/files" };

/** A safetensors file big enough to be stored in LFS (so it is served from the storage host). */
function safetensors(): Buffer {
  const header = JSON.stringify({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } });
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([prefix, Buffer.from(header), randomBytes(LFS_THRESHOLD_BYTES)]);
}

beforeAll(async () => {
  server = await startHubServer();
  sha = server.addRepo({
    name: repo.name,
    files: { "big.bin": big, "config.json": '{"a":1}', "model.safetensors": safetensors() },
  });
  work = await mkdtemp(join(tmpdir(), "persam-hub-fetch-"));
});
afterAll(async () => {
  await server.stop();
  await rm(work, { recursive: true, force: true });
});
afterEach(async () => {
  await server.stopCdn();
  server.clearRequests();
});

function conn(http: Record<string, number> = {}) {
  return { endpoint: server.url, token: TOKEN, http: { tries: 1, ...http } };
}

async function failure(p: Promise<unknown>): Promise<HubUserError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HubUserError);
  const line = (error as HubUserError).toLine();
  expect(line).not.toContain("\n");
  expect(line).not.toContain(TOKEN);
  return error as HubUserError;
}

describe("time limits", () => {
  it("a server that never answers is given up after the idle limit, each try", async () => {
    server.failNext({ route: /\/revision\//, hang: true, times: 2 });
    const e = await failure(
      resolveRevision({ ...conn({ idleTimeoutMs: 300, tries: 2, baseDelayMs: 1 }), repo }),
    );
    expect(e.kind).toBe("timeout");
    expect(e.toLine()).toMatch(
      /^looking up acme\/files@main: the Hub at http:\/\/127\.0\.0\.1:\d+ sent nothing for 0\.3 s \(gave up after 2 tries\)/,
    );
    expect(server.requestsTo(/\/revision\//)).toHaveLength(2);
  });

  it("a reply that trickles in a byte at a time is cut by the overall bound", async () => {
    server.failNext({ route: /\/revision\//, trickleMs: 100 });
    const e = await failure(
      resolveRevision({ ...conn({ idleTimeoutMs: 5000, requestTimeoutMs: 800 }), repo }),
    );
    expect(e.kind).toBe("timeout");
    expect(e.toLine()).toMatch(/did not finish one request within 0\.8 s \(a reply that trickles in\)/);
    const [req] = server.requestsTo(/\/revision\//);
    expect(req!.bodyBytes).toBeGreaterThan(0);
  });

  it("a download range that trickles is cut too, and a trickle that ends in time is read", async () => {
    const file = await openHubFile({
      ...conn({ idleTimeoutMs: 5000, requestTimeoutMs: 800 }),
      repo,
      revision: sha,
      path: "big.bin",
    });
    server.failNext({ route: /big\.bin \[bytes=0-1999\]/, trickleMs: 100 });
    const e = await failure(file.read(0, 2000));
    expect(e.kind).toBe("timeout");
    server.failNext({ route: /big\.bin \[bytes=0-3\]/, trickleMs: 20 });
    expect(Buffer.from(await file.read(0, 4)).equals(big.subarray(0, 4))).toBe(true);
  });
});

describe("answers that are not the Hub's API", () => {
  it("a web page where JSON is expected is one line, with no retry", async () => {
    server.failNext({
      route: /\/revision\//,
      body: { contentType: "text/html", text: "<html><body>Please log in to the Wi-Fi</body></html>" },
    });
    const e = await failure(resolveRevision({ ...conn({ tries: 3 }), repo }));
    expect(e.kind).toBe("bad-response");
    expect(e.toLine()).toContain(NOT_HUB_API);
    expect(e.toLine()).toMatch(/revision answer is not JSON/);
    expect(server.requestsTo(/\/revision\//)).toHaveLength(1);
  });

  it("JSON of the wrong shape is one line naming what is wrong", async () => {
    server.failNext({ route: /paths-info/, body: { contentType: "application/json", text: '{"files":[]}' } });
    const e = await failure(getPathsInfo({ ...conn(), repo, revision: sha, paths: ["big.bin"] }));
    expect(e.toLine()).toMatch(
      /the Hub answered with something that is not its API — a proxy or captive portal\? \(paths-info answer: Invalid input: expected array/,
    );
    server.failNext({
      route: /\/revision\//,
      body: { contentType: "application/json", text: '{"sha":"not-a-commit","id":"acme/files"}' },
    });
    const e2 = await failure(resolveRevision({ ...conn(), repo }));
    expect(e2.toLine()).toMatch(/revision answer: sha: expected a 40-hex commit id/);
  });

  it("a file download answered with a web page is one line", async () => {
    server.failNext({
      route: /big\.bin \[bytes=0-0\]/,
      body: { status: 200, contentType: "text/html", text: "<html>portal</html>" },
    });
    const e = await failure(openHubFile({ ...conn(), repo, revision: sha, path: "big.bin" }));
    expect(e.toLine()).toContain(NOT_HUB_API);
  });

  it("exits 1 through the CLI, not 70", async () => {
    server.addRepo({ name: "Xenova/sam-vit-base", files: { "onnx/vision_encoder.onnx": randomBytes(2000) } });
    server.failNext({
      route: /\/revision\//,
      body: { contentType: "text/html", text: "<!doctype html><title>Login</title>" },
    });
    const r = await runCli(["models", "pull", "sam-vit-base"], {
      env: {
        HF_ENDPOINT: server.url,
        HF_HUB_CACHE: join(work, "cli-hub"),
        PERSAM_DB_CACHE: join(work, "cli-persam"),
        HF_TOKEN: TOKEN,
      },
      cwd: work,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^persam-db: error: looking up Xenova\/sam-vit-base@main: the Hub answered with something that is not its API — a proxy or captive portal\?/,
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("redirects to another host", () => {
  it("a download redirected to storage sends the token to the endpoint only", async () => {
    await server.startCdn();
    const file = await openHubFile({ ...conn(), repo, revision: sha, path: "big.bin" });
    expect(file.etag).toBe(sha256(big));
    expect(Buffer.from(await file.read(10, 5000)).equals(big.subarray(10, 5000))).toBe(true);
    expect(server.requestsTo(/resolve/).every((r) => r.hasAuth)).toBe(true);
    expect(server.cdnRequests.length).toBeGreaterThan(0);
    expect(server.cdnRequests.some((r) => r.hasAuth)).toBe(false);
  });

  it("with X-Cache: Hit from cloudfront the library reuses the storage URL, and still no token reaches it", async () => {
    // @huggingface/hub (fileDownloadInfo) keeps the storage URL when the reply says cloudfront and
    // sends its Authorization header there; the Hub fetch strips it for any other origin.
    await server.startCdn({ xCache: "Hit from cloudfront" });
    const header = await hubSafetensorsHeader({ ...conn(), repo, revision: sha, path: "model.safetensors" });
    expect(header.w).toEqual({ dtype: "F32", shape: [2], data_offsets: [0, 8] });
    expect(server.cdnRequests.length).toBeGreaterThan(1);
    expect(server.cdnRequests.some((r) => r.hasAuth)).toBe(false);
    expect(server.requestsTo(/resolve/).every((r) => r.hasAuth)).toBe(true);
  });

  it("the same without X-Cache", async () => {
    await server.startCdn();
    await hubSafetensorsHeader({ ...conn(), repo, revision: sha, path: "model.safetensors" });
    expect(server.cdnRequests.length).toBeGreaterThan(0);
    expect(server.cdnRequests.some((r) => r.hasAuth)).toBe(false);
  });

  it("a plain request redirected off the endpoint loses its Authorization header, as does one sent there", async () => {
    const cdn = await server.startCdn();
    const hubFetch = createHubFetch({ endpoint: server.url, tries: 1 });
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const res = await hubFetch(`${server.url}/${repo.name}/resolve/${sha}/big.bin`, {
      headers: { ...auth, Range: "bytes=0-9" },
    });
    expect(res.status).toBe(206);
    expect(res.url.startsWith(cdn)).toBe(true);
    expect(Buffer.from(await res.arrayBuffer()).equals(big.subarray(0, 10))).toBe(true);
    const direct = await hubFetch(`${cdn}/cdn/none?sig=none`, { headers: auth });
    expect(direct.status).toBe(403);
    expect(server.requestsTo(/resolve/).map((r) => r.hasAuth)).toEqual([true]);
    expect(server.cdnRequests.map((r) => r.hasAuth)).toEqual([false, false]);
  });
});

describe("429", () => {
  it("a Retry-After beyond the limit ends the call at once with one line", async () => {
    server.failNext({ route: /\/revision\//, status: 429, retryAfter: "3600" });
    const e = await failure(resolveRevision({ ...conn({ tries: 4, maxRetryAfterMs: 2000 }), repo }));
    expect(e.kind).toBe("rate-limited");
    expect(e.toLine()).toMatch(
      /rate-limited by the Hub \(429\), which asks to wait 3600 s — run again after that time/,
    );
    expect(server.requestsTo(/\/revision\//)).toHaveLength(1);
  });

  it("a short Retry-After is waited out and the call succeeds", async () => {
    server.failNext({ route: /\/revision\//, status: 429, retryAfter: "0" });
    expect(await resolveRevision({ ...conn({ tries: 2 }), repo })).toBe(sha);
    expect(server.requestsTo(/\/revision\//).map((r) => r.status)).toEqual([429, 200]);
  });
});

describe("a signed URL that expires during a long download", () => {
  it("is resolved again once through the endpoint and the download carries on from the same offset", async () => {
    await server.startCdn({ expireAfter: 3 });
    const blob = join(work, "expiry", "blob");
    await downloadToCache({
      ...conn(),
      repo,
      revision: sha,
      path: "big.bin",
      blob,
      expected: { size: big.length, sha256: sha256(big) },
      chunkBytes: 200_000,
    });
    expect((await readFile(blob)).equals(big)).toBe(true);
    const served = server.cdnRequests.filter((r) => r.status === 206).map((r) => r.range);
    // Every range exactly once, in order: nothing fetched twice, nothing skipped.
    const expected: string[] = [];
    for (let at = 0; at < big.length; at += 200_000)
      expected.push(`bytes=${at}-${Math.min(big.length, at + 200_000) - 1}`);
    expect(served).toEqual(expected);
    const refused = server.cdnRequests.filter((r) => r.status === 403);
    expect(refused.length).toBeGreaterThan(0);
    // The probe, then one resolve per expiry.
    expect(server.requestsTo(/big\.bin/)).toHaveLength(1 + refused.length);
    expect(server.cdnRequests.some((r) => r.hasAuth)).toBe(false);
  });

  it("a link refused again right after renewal is one line; the partial file stays and the next run resumes it", async () => {
    await server.startCdn();
    const blob = join(work, "expiry2", "blob");
    const expected = { size: big.length, sha256: sha256(big) };
    const params = { ...conn(), repo, revision: sha, path: "big.bin", blob, expected, chunkBytes: 200_000 };
    const e = await failure(
      downloadToCache({
        ...params,
        onProgress: (p) => {
          if (p.loaded > 0 && !p.done) server.setCdnExpiry(0);
        },
      }),
    );
    expect(e.toLine()).toMatch(
      /the storage server refused the download link \(403\) even after it was renewed/,
    );
    expect(existsSync(blob)).toBe(false);
    expect((await stat(`${blob}.incomplete`)).size).toBe(200_000);

    server.setCdnExpiry(Number.POSITIVE_INFINITY);
    server.clearRequests();
    await downloadToCache(params);
    expect((await readFile(blob)).equals(big)).toBe(true);
    expect(server.cdnRequests.map((r) => r.range)[0]).toBe("bytes=200000-399999");
  });
});
