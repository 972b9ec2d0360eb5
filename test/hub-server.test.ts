// The loopback Hub server spoken to through src/hub.ts (@huggingface/hub): downloads, revision
// lookups, repo creation, LFS + regular uploads, parent-commit checks, PRs, auth and faults.

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  commitToHub,
  createHubRepo,
  getPathsInfo,
  HubUserError,
  hubRepoExists,
  hubSafetensorsHeader,
  hubWhoAmI,
  listHubFiles,
  openHubFile,
  resolveRevision,
  uploadHubFiles,
} from "../src/hub.js";
import { closedPortUrl, type HubServer, LFS_THRESHOLD_BYTES, startHubServer } from "./helpers/hub-server.js";

const TOKEN = "hf_testtoken1234567890";
let server: HubServer;

beforeAll(async () => {
  server = await startHubServer();
});
afterAll(async () => {
  await server.stop();
});

function conn(token: string | undefined = TOKEN) {
  return { endpoint: server.url, token };
}

function anonymous() {
  return { endpoint: server.url };
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
