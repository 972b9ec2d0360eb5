// The loopback Hub server spoken to through src/hub/hub-api.ts (@huggingface/hub): downloads, revision
// lookups, repo creation, LFS + regular uploads, parent-commit checks, PRs, auth and faults.

import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openHubFile } from "../src/hub/download-file.js";
import {
  commitToHub,
  createHubBranch,
  createHubRepo,
  getPathsInfo,
  HubUserError,
  hubRepoExists,
  hubSafetensorsHeader,
  hubWhoAmI,
  listHubFiles,
  resolveRevision,
  uploadHubFiles,
} from "../src/hub/hub-api.js";
import { closedPortUrl, type HubServer, LFS_THRESHOLD_BYTES, startHubServer } from "./support/hub-server.js";

const TOKEN = "hf_testtoken1234567890";
/** One try per request: these tests look at single failures (retries: test/hub-fetch.test.ts). */
const ONE_TRY = { tries: 1 };
let server: HubServer;

beforeAll(async () => {
  server = await startHubServer();
});
afterAll(async () => {
  await server.stop();
});

function conn(token: string | undefined = TOKEN) {
  return { endpoint: server.url, token, http: ONE_TRY };
}

function anonymous() {
  return { endpoint: server.url, http: ONE_TRY };
}

async function failure(p: Promise<unknown>): Promise<HubUserError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HubUserError);
  return error as HubUserError;
}

describe("download side", () => {
  const big = randomBytes(LFS_THRESHOLD_BYTES + 10);
  let sha: string;
  beforeAll(() => {
    sha = server.addRepo({ name: "acme/model", files: { "config.json": '{"a":1}', "onnx/big.onnx": big } });
  });

  it("resolves main and HEAD to the head commit, and rejects unknown repos with a 404 line", async () => {
    expect(await resolveRevision({ ...conn(), repo: { type: "model", name: "acme/model" } })).toBe(sha);
    const e = await failure(resolveRevision({ ...conn(), repo: { type: "model", name: "acme/nope" } }));
    expect(e.kind).toBe("not-found");
    expect(e.toLine()).toMatch(/acme\/nope.*404/);
  });

  it("paths-info reports the LFS sha256 for big files and the git oid for small ones", async () => {
    const info = await getPathsInfo({
      ...anonymous(),
      repo: { type: "model", name: "acme/model" },
      revision: sha,
      paths: ["config.json", "onnx/big.onnx", "missing.bin"],
    });
    expect(info.map((i) => i.path).sort()).toEqual(["config.json", "onnx/big.onnx"]);
    const bigInfo = info.find((i) => i.path === "onnx/big.onnx")!;
    expect(bigInfo.lfsSha256).toBe(server.file({ name: "acme/model", path: "onnx/big.onnx" })!.sha256);
    expect(bigInfo.etag).toBe(bigInfo.lfsSha256);
    const small = info.find((i) => i.path === "config.json")!;
    expect(small.lfsSha256).toBeUndefined();
    expect(small.etag).toMatch(/^[0-9a-f]{40}$/);
  });

  it("serves byte ranges with 206 and the sha256 ETag", async () => {
    server.clearRequests();
    const f = await openHubFile({
      ...conn(),
      repo: { type: "model", name: "acme/model" },
      revision: sha,
      path: "onnx/big.onnx",
    });
    expect(f.size).toBe(big.length);
    expect(f.etag).toBe(server.file({ name: "acme/model", path: "onnx/big.onnx" })!.sha256);
    const bytes = await f.read(100, 1100);
    expect(Buffer.from(bytes).equals(big.subarray(100, 1100))).toBe(true);
    const ranges = server.requests.map((r) => `${r.status} ${r.range}`);
    expect(ranges).toEqual(["206 bytes=0-0", "206 bytes=100-1099"]);
    expect(server.requests.every((r) => r.hasAuth && r.headers.authorization === "Bearer <present>")).toBe(
      true,
    );
  });

  it("a missing file is a not-found UserError naming it", async () => {
    const e = await failure(
      openHubFile({
        ...conn(),
        repo: { type: "model", name: "acme/model" },
        revision: sha,
        path: "nope.onnx",
      }),
    );
    expect(e.toLine()).toContain("acme/model/nope.onnx");
    expect(e.kind).toBe("not-found");
  });

  it("reads a safetensors header through parseSafetensorsMetadata", async () => {
    const header = JSON.stringify({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } });
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    server.addRepo({
      name: "acme/st",
      files: { "model.safetensors": Buffer.concat([prefix, Buffer.from(header), Buffer.alloc(8)]) },
    });
    const h = await hubSafetensorsHeader({
      ...conn(),
      repo: { type: "model", name: "acme/st" },
      revision: "main",
      path: "model.safetensors",
    });
    expect(h.a).toEqual({ dtype: "F32", shape: [2], data_offsets: [0, 8] });
  });

  it("maps 500, 401 and dropped connections to single lines without the token", async () => {
    const repo = { type: "model" as const, name: "acme/model" };
    server.failNext({ route: /revision/, status: 500 });
    const e500 = await failure(resolveRevision({ ...conn(), repo }));
    expect([e500.kind, e500.status]).toEqual(["server", 500]);

    server.rejectToken("hf_revokedtoken000000");
    const e401 = await failure(resolveRevision({ ...conn("hf_revokedtoken000000"), repo }));
    expect(e401.kind).toBe("auth");
    expect(e401.toLine()).not.toContain("hf_revokedtoken000000");
    expect(e401.toLine()).toMatch(/invalid or expired/);

    const f = await openHubFile({ ...conn(), repo, revision: sha, path: "onnx/big.onnx" });
    server.failNext({ route: /big\.onnx/, drop: true });
    const dropped = await failure(f.read(0, big.length));
    expect(dropped.kind).toBe("interrupted");
  });

  it("a private repo answers 401 without a token and says how to set HF_TOKEN", async () => {
    server.addRepo({ name: "acme/private", private: true, files: { "a.txt": "x" } });
    const e = await failure(
      resolveRevision({ ...anonymous(), repo: { type: "model", name: "acme/private" } }),
    );
    expect(e.toLine()).toMatch(/401.*HF_TOKEN/);
    expect(await resolveRevision({ ...conn(), repo: { type: "model", name: "acme/private" } })).toMatch(
      /^[0-9a-f]{40}$/,
    );
  });

  it("no server at all is an offline error", async () => {
    const e = await failure(
      resolveRevision({
        endpoint: await closedPortUrl(),
        token: TOKEN,
        http: ONE_TRY,
        repo: { type: "model", name: "a/b" },
      }),
    );
    expect(e.kind).toBe("network");
    expect(e.toLine()).toMatch(/ECONNREFUSED.*offline.*HF_HUB_OFFLINE/);
  });
});

describe("upload side", () => {
  const repo = { type: "dataset" as const, name: "test-user/cats" };

  it("creates a dataset repo, and a second create (409) reuses it", async () => {
    expect(await hubRepoExists({ ...conn(), repo })).toBe(false);
    const first = await createHubRepo({ ...conn(), repo, visibility: "private" });
    expect(first.created).toBe(true);
    const second = await createHubRepo({ ...conn(), repo, visibility: "private" });
    expect(second).toEqual({ url: `${server.url}/datasets/test-user/cats`, created: false });
    expect(await hubRepoExists({ ...conn(), repo })).toBe(true);
    expect(await resolveRevision({ ...conn(), repo })).toBe(
      server.head({ type: "dataset", name: repo.name }),
    );
  });

  it("uploads a regular and an LFS file in one commit; already-stored LFS objects are not re-sent", async () => {
    const big = randomBytes(LFS_THRESHOLD_BYTES + 1);
    const parent = server.head({ type: "dataset", name: repo.name })!;
    server.clearRequests();
    const out = await uploadHubFiles({
      ...conn(),
      repo,
      files: [
        { path: "README.md", content: new Blob(["# cats\n"]) },
        { path: "data/train.bin", content: new Blob([big]) },
      ],
      title: "first upload",
      description: "two files",
      parentCommit: parent,
    });
    expect(out?.commitOid).toBe(server.head({ type: "dataset", name: repo.name }));
    expect(server.commitInfo({ type: "dataset", name: repo.name, sha: out!.commitOid })).toEqual({
      title: "first upload",
      description: "two files",
      parent,
    });
    expect(server.requestsTo(/^PUT \/__lfs\//)).toHaveLength(1);
    expect(server.requestsTo(/^PUT /)[0]!.hasAuth).toBe(false);

    const files = await listHubFiles({ ...conn(), repo });
    const bin = files.find((f) => f.path === "data/train.bin")!;
    expect(bin.lfsSha256).toBe(
      server.file({ type: "dataset", name: repo.name, path: "data/train.bin" })!.sha256,
    );
    expect(files.find((f) => f.path === "README.md")!.lfsSha256).toBeUndefined();
    expect(files.some((f) => f.type === "directory" && f.path === "data")).toBe(true);

    server.clearRequests();
    await commitToHub({
      ...conn(),
      repo,
      title: "same bytes, new name",
      operations: [
        { operation: "add", path: "data/copy.bin", content: new Blob([big]) },
        { operation: "delete", path: "README.md" },
      ],
    });
    expect(server.requestsTo(/^PUT /)).toHaveLength(0);
    expect(server.file({ type: "dataset", name: repo.name, path: "README.md" })).toBeUndefined();
  });

  it("rejects a stale parentCommit with a conflict line", async () => {
    const e = await failure(
      uploadHubFiles({
        ...conn(),
        repo,
        files: [{ path: "x.txt", content: new Blob(["x"]) }],
        parentCommit: "0".repeat(40),
      }),
    );
    expect(e.kind).toBe("conflict");
  });

  it("opens a pull request on refs/pr/N without moving main", async () => {
    const main = server.head({ type: "dataset", name: repo.name });
    const out = await uploadHubFiles({
      ...conn(),
      repo,
      files: [{ path: "pr.txt", content: new Blob(["pr"]) }],
      isPullRequest: true,
    });
    expect(out?.pullRequestUrl).toBe(`${server.url}/datasets/${repo.name}/discussions/1`);
    expect(server.head({ type: "dataset", name: repo.name })).toBe(main);
    expect(server.head({ type: "dataset", name: repo.name, branch: "refs/pr/1" })).toBe(out?.commitOid);
  });

  it("commits to another branch", async () => {
    server.commitFiles({ type: "dataset", name: repo.name, branch: "dev", files: {} });
    const out = await uploadHubFiles({
      ...conn(),
      repo,
      branch: "dev",
      files: [{ path: "d.txt", content: new Blob(["d"]) }],
    });
    expect(server.head({ type: "dataset", name: repo.name, branch: "dev" })).toBe(out?.commitOid);
    expect(server.file({ type: "dataset", name: repo.name, path: "d.txt" })).toBeUndefined();
  });

  it("refuses a commit line for an LFS object never uploaded, and a PUT with the wrong bytes", async () => {
    const oid = "a".repeat(64);
    const body = [
      JSON.stringify({ key: "header", value: { summary: "bad" } }),
      JSON.stringify({ key: "lfsFile", value: { path: "x.bin", algo: "sha256", size: 5, oid } }),
    ].join("\n");
    const res = await fetch(`${server.url}/api/datasets/${repo.name}/commit/main`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/x-ndjson" },
      body,
    });
    expect(res.status).toBe(422);
    const batch = await fetch(`${server.url}/datasets/${repo.name}.git/info/lfs/objects/batch`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ operation: "upload", transfers: ["basic"], objects: [{ oid, size: 5 }] }),
    });
    const { objects } = (await batch.json()) as { objects: { actions: { upload: { href: string } } }[] };
    const put = await fetch(objects[0]!.actions.upload.href, { method: "PUT", body: "hello" });
    expect(put.status).toBe(400);
  });

  it("whoami needs a token; writes without one are refused before any request", async () => {
    expect((await hubWhoAmI(conn())).name).toBe("test-user");
    const e = await failure(
      createHubRepo({ ...anonymous(), repo: { type: "dataset", name: "test-user/x" } }),
    );
    expect(e.toLine()).toMatch(/needs a Hugging Face token.*HF_TOKEN/);
    const badPrefix = await failure(hubWhoAmI(conn("not-a-hf-token")));
    expect(badPrefix.toLine()).toMatch(/does not start with 'hf_'/);
  });
});

describe("request log, dropped replies and instant failures", () => {
  const repo = { type: "dataset" as const, name: "test-user/faults" };
  const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  beforeAll(() => {
    server.addRepo({ type: "dataset", name: repo.name, files: { "a.txt": "a" } });
  });

  it("records each request body: size, sha256, and the parsed JSON / NDJSON", async () => {
    const big = randomBytes(3000);
    server.clearRequests();
    await commitToHub({
      ...conn(),
      repo,
      title: "logged",
      operations: [{ operation: "add", path: "b.bin", content: new Blob([big]) }],
    });
    const [put] = server.requestsTo(/^PUT \/__lfs\//);
    expect(put!.body).toEqual({ size: big.length, sha256: sha256(big) });
    const [batch] = server.requestsTo(/lfs\/objects\/batch/);
    expect(batch!.body.json).toMatchObject({ operation: "upload", objects: [{ oid: sha256(big) }] });
    const [commit] = server.requestsTo(/^POST \/api\/datasets\/test-user\/faults\/commit\/main/);
    expect(commit!.body.json).toEqual([
      expect.objectContaining({ key: "header", value: expect.objectContaining({ summary: "logged" }) }),
      expect.objectContaining({ key: "lfsFile", value: expect.objectContaining({ oid: sha256(big) }) }),
    ]);
    expect(server.requests.every((r) => r.dropped === false)).toBe(true);
  });

  it("drop on an LFS PUT (empty reply) cuts the connection before the headers; the object is stored", async () => {
    const big = randomBytes(2500);
    const oid = sha256(big);
    const head = server.head({ type: "dataset", name: repo.name });
    server.clearRequests();
    server.failNext({ route: /^PUT \/__lfs\//, drop: true });
    const e = await failure(
      commitToHub({
        ...conn(),
        repo,
        title: "lost reply",
        operations: [{ operation: "add", path: "c.bin", content: new Blob([big]) }],
      }),
    );
    expect(e.kind).toBe("interrupted");
    expect(e.toLine()).toMatch(/^commit to test-user\/faults: the connection to the Hub was lost/);
    const [put] = server.requestsTo(/^PUT \/__lfs\//);
    expect(put).toMatchObject({ status: undefined, dropped: true, bodyBytes: 0 });
    expect(put!.body.sha256).toBe(oid);
    expect(server.lfsObjects.has(oid)).toBe(true); // handled, only the reply was lost
    expect(server.head({ type: "dataset", name: repo.name })).toBe(head);

    // A PUT again of the stored object succeeds (as on S3).
    const again = await fetch(put!.url.startsWith("http") ? put!.url : `${server.url}${put!.url}`, {
      method: "PUT",
      body: big,
    });
    expect(again.status).toBe(200);

    // truncate with nothing to truncate, and a HEAD, are cut the same way.
    server.failNext({ route: /^HEAD /, truncate: 0 });
    await expect(
      fetch(`${server.url}/datasets/${repo.name}/resolve/main/a.txt`, { method: "HEAD" }),
    ).rejects.toThrow(/fetch failed/);
  });

  it("reset on an LFS PUT answers nothing and stores nothing", async () => {
    const big = randomBytes(2600);
    server.clearRequests();
    server.failNext({ route: new RegExp(`^PUT /__lfs/${sha256(big)}`), reset: true });
    const e = await failure(
      commitToHub({
        ...conn(),
        repo,
        title: "reset",
        operations: [{ operation: "add", path: "d.bin", content: new Blob([big]) }],
      }),
    );
    expect(e.kind).toBe("interrupted");
    expect(server.lfsObjects.has(sha256(big))).toBe(false);
    expect(server.requestsTo(/^PUT /)[0]).toMatchObject({ dropped: true, status: undefined });
  });

  it("an instantly failing LFS PUT is one clear line: no 'Logic error in eventGenerator', no unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const files = Array.from({ length: 6 }, (_, i) => ({
        path: `instant/${i}.bin`,
        content: new Blob([randomBytes(1500 + i)]),
      }));
      // Fails in the same microtask run as the library's "progress 0" event for the file.
      const throwing: typeof fetch = async (input, init) => {
        if ((init?.method ?? "GET") === "PUT")
          throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
        return fetch(input, init);
      };
      const refusing: typeof fetch = async (input, init) =>
        (init?.method ?? "GET") === "PUT"
          ? new Response(JSON.stringify({ error: "denied" }), { status: 403 })
          : fetch(input, init);
      const head = server.head({ type: "dataset", name: repo.name });
      // Without the workaround the library loses the error and the call never settles.
      const settled = <T>(p: Promise<T>) =>
        Promise.race([
          p,
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error("the upload never settled (error lost in the queue)")), 10_000),
          ),
        ]);
      const errors = [
        await failure(
          settled(
            commitToHub({
              ...conn(),
              fetch: throwing,
              repo,
              title: "t",
              operations: files.map((f) => ({ operation: "add" as const, ...f })),
            }),
          ),
        ),
        await failure(settled(uploadHubFiles({ ...conn(), fetch: throwing, repo, files }))),
        await failure(settled(uploadHubFiles({ ...conn(), fetch: refusing, repo, files }))),
      ];
      expect(errors.map((e) => e.kind)).toEqual(["interrupted", "interrupted", "forbidden"]);
      for (const e of errors) {
        expect(e.toLine()).not.toMatch(/Logic error|eventGenerator/);
        expect(e.toLine()).not.toContain("\n");
      }
      expect(errors[0]!.toLine()).toMatch(/^commit to test-user\/faults: the connection to the Hub was lost/);
      expect(errors[2]!.toLine()).toMatch(/^upload to test-user\/faults: access denied \(403\)/);
      expect(server.head({ type: "dataset", name: repo.name })).toBe(head);
      // Let any stray rejection surface before looking.
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("the caller's abort signal stops an upload the library is running", async () => {
    const controller = new AbortController();
    const aborting: typeof fetch = async (input, init) => {
      if ((init?.method ?? "GET") === "PUT") controller.abort();
      return fetch(input, init);
    };
    const head = server.head({ type: "dataset", name: repo.name });
    const error = await commitToHub({
      ...conn(),
      fetch: aborting,
      signal: controller.signal,
      repo,
      title: "aborted",
      operations: [{ operation: "add", path: "e.bin", content: new Blob([randomBytes(1800)]) }],
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as Error).name).toBe("AbortError");
    expect(server.head({ type: "dataset", name: repo.name })).toBe(head);
  });
});

describe("branches", () => {
  const repo = { type: "dataset" as const, name: "test-user/branchy" };
  let main: string;
  beforeAll(() => {
    main = server.addRepo({ type: "dataset", name: repo.name, files: { "a.txt": "a" } });
    server.commitFiles({ type: "dataset", name: repo.name, files: { "b.txt": "b" } });
  });

  it("creates a branch from the default head or a starting point; an existing one is left alone", async () => {
    const head = server.head({ type: "dataset", name: repo.name })!;
    server.clearRequests();
    expect(await createHubBranch({ ...conn(), repo, branch: "dev" })).toBe(true);
    expect(server.head({ type: "dataset", name: repo.name, branch: "dev" })).toBe(head);
    expect(await createHubBranch({ ...conn(), repo, branch: "feature/old", startingPoint: main })).toBe(true);
    expect(server.head({ type: "dataset", name: repo.name, branch: "feature/old" })).toBe(main);
    const posts = server.requestsTo(/^POST \/api\/datasets\/test-user\/branchy\/branch\//);
    expect(posts.map((r) => [r.path, r.body.json])).toEqual([
      ["/api/datasets/test-user/branchy/branch/dev", {}],
      ["/api/datasets/test-user/branchy/branch/feature/old", { startingPoint: main }],
    ]);
    expect(posts[1]!.url).toContain("feature%2Fold");

    server.commitFiles({ type: "dataset", name: repo.name, branch: "dev", files: { "c.txt": "c" } });
    const dev = server.head({ type: "dataset", name: repo.name, branch: "dev" });
    expect(await createHubBranch({ ...conn(), repo, branch: "dev", startingPoint: main })).toBe(false);
    expect(server.head({ type: "dataset", name: repo.name, branch: "dev" })).toBe(dev);
  });

  it("an unknown starting point, no token and a bad token are one line each", async () => {
    const e404 = await failure(
      createHubBranch({ ...conn(), repo, branch: "x", startingPoint: "f".repeat(40) }),
    );
    expect(e404.kind).toBe("not-found");
    const anon = await failure(createHubBranch({ ...anonymous(), repo, branch: "x" }));
    expect(anon.toLine()).toMatch(/needs a Hugging Face token/);
    server.rejectToken("hf_branchrevoked00000");
    const e401 = await failure(createHubBranch({ ...conn("hf_branchrevoked00000"), repo, branch: "x" }));
    expect(e401.kind).toBe("auth");
    expect(e401.toLine()).not.toContain("hf_branchrevoked00000");
    expect(server.branches({ type: "dataset", name: repo.name })).not.toContain("x");
  });
});
