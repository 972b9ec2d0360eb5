// pushDataset against the loopback Hub: a fake output folder (images, masks, metadata.jsonl, card,
// report, script, a .persam/ state folder, a temp file and a symlink pointing outside) is published,
// re-pushed as a no-op, interrupted in several ways and completed on rerun; errors are one line and
// the token appears nowhere.

import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isUserError, type UserError } from "../src/errors.js";
import {
  type KnownFileHashes,
  listLocalFiles,
  type PushDatasetParams,
  type PushProgress,
  type PushResult,
  pushDataset,
} from "../src/hub/dataset-push.js";
import { HubUserError } from "../src/hub/hub-api.js";
import { hashFile } from "../src/util/hash-file.js";
import { type HubServer, startHubServer } from "./support/hub-server.js";

const TOKEN = "hf_pushsecrettoken0123456789";
const FAST = { tries: 3, baseDelayMs: 1, maxDelayMs: 5 };
let server: HubServer;
let work: string;
/** Every message, hint and result JSON produced by the tests, grepped for the token at the end. */
const captured: string[] = [];

const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

/** A PNG-looking binary (the server stores it in LFS: its sample is not UTF-8). */
function fakePng(seed: number): Buffer {
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    randomBytes(2000 + seed * 17),
  ]);
}

/** A small output folder in the layout `persam-db prepare` writes, plus things that must not go up. */
async function makeOutDir(name: string, stems = ["cat-1", "cat-2", "cat-3"]): Promise<string> {
  const dir = join(work, name);
  await mkdir(join(dir, "images"), { recursive: true });
  await mkdir(join(dir, "masks"), { recursive: true });
  await mkdir(join(dir, ".persam", "embeddings"), { recursive: true });
  const rows: string[] = [];
  for (const [i, stem] of stems.entries()) {
    await writeFile(join(dir, "images", `${stem}.png`), fakePng(i));
    await writeFile(join(dir, "masks", `${stem}.png`), fakePng(i + 10));
    rows.push(
      JSON.stringify({
        file_name: `images/${stem}.png`,
        mask_file_name: `masks/${stem}.png`,
        text: "a photo of sks cat",
        confidence: 0.9,
      }),
    );
  }
  await writeFile(join(dir, "metadata.jsonl"), `${rows.join("\n")}\n`);
  await writeFile(join(dir, "README.md"), "---\nlicense: cc-by-4.0\n---\n# my cat\n");
  await writeFile(
    join(dir, "report.json"),
    JSON.stringify({
      version: 1,
      tool: "persam-db 0.1.0",
      settings: { model: "slimsam-77", mode: "persam-f", resolution: 512 },
      photos: [...stems.map((s) => ({ stem: s, status: "ok" })), { stem: "blurry", status: "skipped" }],
    }),
  );
  await writeFile(join(dir, "train.sh"), "#!/bin/sh\naccelerate launch train_dreambooth.py\n");
  await writeFile(join(dir, ".persam", "state.json"), '{"settingsHash":"abc"}');
  await writeFile(join(dir, ".persam", "embeddings", "e.bin"), randomBytes(300));
  await writeFile(join(dir, ".metadata.jsonl.1234.abcdef.tmp"), "half a file");
  await writeFile(join(work, `${name}-outside.png`), fakePng(99));
  await symlink(join(work, `${name}-outside.png`), join(dir, "images", "outside.png"));
  return dir;
}

/** The files that must be on the Hub: every regular file except .persam/ and temp files. */
const EXPECTED = (stems = ["cat-1", "cat-2", "cat-3"]) =>
  [
    "README.md",
    "metadata.jsonl",
    "report.json",
    "train.sh",
    ...stems.flatMap((s) => [`images/${s}.png`, `masks/${s}.png`]),
  ].sort();

function params(outDir: string, repo: string, extra: Partial<PushDatasetParams> = {}): PushDatasetParams {
  return { outDir, repo, token: TOKEN, endpoint: server.url, retry: FAST, quiet: true, ...extra };
}

async function push(p: PushDatasetParams): Promise<PushResult> {
  const result = await pushDataset(p);
  captured.push(JSON.stringify(result));
  return result;
}

async function pushError(p: PushDatasetParams): Promise<UserError> {
  const error = await pushDataset(p).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isUserError(error), String(error)).toBe(true);
  const e = error as UserError;
  captured.push(e.message, e.hint ?? "", e.toLine());
  expect(e.toLine()).not.toContain("\n");
  return e;
}

/** Every file of a dataset repo at a branch, as path → sha256. */
function remoteTree(name: string, local: string[], branch = "main"): Map<string, string> {
  const out = new Map<string, string>();
  for (const path of local) {
    const f = server.file({ type: "dataset", name, revision: branch, path });
    if (f) out.set(path, f.sha256);
  }
  return out;
}

async function localTree(dir: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of paths) out.set(p, sha256(await readFile(join(dir, p))));
  return out;
}

const commits = () => server.requestsTo(/^POST \/api\/datasets\/.*\/commit\//);

beforeAll(async () => {
  server = await startHubServer();
  work = await mkdtemp(join(tmpdir(), "persam-push-"));
});

afterAll(async () => {
  await server.stop();
  // The token is in no captured message, result, request log or file anywhere under the work folder.
  for (const text of captured) expect(text).not.toContain(TOKEN);
  expect(JSON.stringify(server.requests)).not.toContain(TOKEN);
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) expect((await readFile(p)).includes(TOKEN), p).toBe(false);
    }
  };
  await walk(work);
  await rm(work, { recursive: true, force: true });
});

describe("pushDataset", () => {
  it("creates the repo and uploads exactly the dataset files in one commit; a rerun is a no-op", async () => {
    const dir = await makeOutDir("full");
    const events: PushProgress[] = [];
    server.clearRequests();
    const result = await push(params(dir, "me/full", { onProgress: (e) => events.push(e) }));

    expect(result.repoCreated).toBe(true);
    expect(result.upToDate).toBe(false);
    expect(result.uploaded.map((f) => f.path).sort()).toEqual(EXPECTED());
    expect(result.unchanged).toEqual([]);
    expect(result.skipped.map((s) => [s.path, s.kind])).toEqual(
      expect.arrayContaining([
        [".persam/", "state"],
        [".metadata.jsonl.1234.abcdef.tmp", "temp"],
        ["images/outside.png", "link"],
      ]),
    );
    expect(result.title).toBe("persam-db dataset: 3 photos, slimsam-77, persam-f, 512 px");
    expect(result.commitOid).toBe(server.head({ type: "dataset", name: "me/full" }));
    expect(commits()).toHaveLength(1);

    // The uploaded tree equals the local one, byte for byte (sha256), and nothing else went up.
    expect(remoteTree("me/full", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
    for (const hidden of [".persam/state.json", ".persam/embeddings/e.bin", "images/outside.png"]) {
      expect(server.file({ type: "dataset", name: "me/full", path: hidden })).toBeUndefined();
    }
    expect(server.file({ type: "dataset", name: "me/full", path: "images/cat-1.png" })!.lfs).toBe(true);
    expect(server.file({ type: "dataset", name: "me/full", path: "train.sh" })!.lfs).toBe(false);

    // Every metadata.jsonl row points at files that are on the Hub.
    const meta = server
      .file({ type: "dataset", name: "me/full", path: "metadata.jsonl" })!
      .content.toString();
    for (const line of meta.trim().split("\n")) {
      const row = JSON.parse(line) as Record<string, unknown>;
      for (const key of ["file_name", "mask_file_name"]) {
        expect(server.file({ type: "dataset", name: "me/full", path: String(row[key]) })).toBeDefined();
      }
    }
    const c = server.commitInfo({ type: "dataset", name: "me/full", sha: result.commitOid! })!;
    expect(c.parent).toBe(result.parentCommit);
    expect(c.description).toContain("model: slimsam-77");
    expect(events.filter((e) => e.phase === "hash")).toHaveLength(EXPECTED().length);
    expect(events.filter((e) => e.phase === "upload").map((e) => (e as { path: string }).path)).toEqual(
      expect.arrayContaining(["images/cat-1.png", "masks/cat-3.png"]),
    );

    server.clearRequests();
    const again = await push(params(dir, "me/full"));
    expect(again.upToDate).toBe(true);
    expect(again.commitOid).toBeUndefined();
    expect(again.uploaded).toEqual([]);
    expect(again.unchanged.map((f) => f.path).sort()).toEqual(EXPECTED());
    expect(commits()).toHaveLength(0);
    expect(server.requestsTo(/preupload|lfs\/objects\/batch|^PUT /)).toHaveLength(0);
  });

  it("uploads only changed files, on top of the head it compared against, with --message", async () => {
    const dir = await makeOutDir("changed");
    await push(params(dir, "me/changed"));
    const before = server.head({ type: "dataset", name: "me/changed" });
    await writeFile(join(dir, "images", "cat-2.png"), fakePng(42));
    await writeFile(join(dir, "train.sh"), "#!/bin/sh\necho changed\n");
    server.clearRequests();
    const result = await push(params(dir, "me/changed", { message: "Retake photo 2" }));
    expect(result.uploaded.map((f) => f.path).sort()).toEqual(["images/cat-2.png", "train.sh"]);
    expect(result.parentCommit).toBe(before);
    expect(server.commitInfo({ type: "dataset", name: "me/changed", sha: result.commitOid! })).toMatchObject({
      title: "Retake photo 2",
      parent: before,
    });
    expect(server.requestsTo(/^PUT /)).toHaveLength(1);
    expect(remoteTree("me/changed", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
  });

  it("takes hashes handed over from an earlier reading only for files not written since", async () => {
    const dir = await makeOutDir("known");
    await push(params(dir, "me/known"));
    // As the set check hands them over: every file hashed when listed.
    const { found } = await listLocalFiles({ outDir: dir });
    const known = new Map<string, KnownFileHashes>();
    for (const f of found) {
      const { sha256, gitOid } = await hashFile(f.absPath, f.size);
      known.set(f.path, { sha256, gitOid: gitOid!, size: f.size, version: f.version });
    }
    // Rewritten in place and replaced by a rename, both with the same size.
    const before = await readFile(join(dir, "images", "cat-2.png"));
    await writeFile(join(dir, "images", "cat-2.png"), fakePng(1));
    expect((await readFile(join(dir, "images", "cat-2.png"))).length).toBe(before.length);
    await writeFile(join(dir, "masks", "cat-1.png.new"), fakePng(10));
    await rename(join(dir, "masks", "cat-1.png.new"), join(dir, "masks", "cat-1.png"));
    server.clearRequests();
    const result = await push(params(dir, "me/known", { hashes: known }));
    expect(result.uploaded.map((f) => f.path).sort()).toEqual(["images/cat-2.png", "masks/cat-1.png"]);
    expect(remoteTree("me/known", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
    // The same stale hashes again: the two files are read again and found on the Hub.
    const again = await push(params(dir, "me/known", { hashes: known }));
    expect(again.upToDate).toBe(true);
  });

  it("--dry-run plans against the Hub without writing anything", async () => {
    const dir = await makeOutDir("dry");
    server.clearRequests();
    const fresh = await push(params(dir, "me/dry", { dryRun: true }));
    expect(fresh.dryRun).toBe(true);
    expect(fresh.repoCreated).toBe(true);
    expect(fresh.uploaded.map((f) => f.path).sort()).toEqual(EXPECTED());
    expect(fresh.uploadedBytes).toBe(fresh.uploaded.reduce((s, f) => s + f.size, 0));
    expect(server.requests.filter((r) => r.method !== "GET")).toEqual([]);
    expect(server.head({ type: "dataset", name: "me/dry" })).toBeUndefined();

    await push(params(dir, "me/dry"));
    await writeFile(join(dir, "README.md"), "# new card\n");
    server.clearRequests();
    const plan = await push(params(dir, "me/dry", { dryRun: true, token: undefined }));
    expect(plan.uploaded.map((f) => f.path)).toEqual(["README.md"]);
    expect(plan.unchanged).toHaveLength(EXPECTED().length - 1);
    expect(server.requests.filter((r) => r.method !== "GET")).toEqual([]);
  });

  it("retries 5xx and 429 answers and succeeds", async () => {
    const dir = await makeOutDir("retry");
    const events: PushProgress[] = [];
    server.failNext({ route: /^POST \/api\/datasets\/me\/retry\/preupload\//, status: 503, times: 2 });
    server.failNext({ route: /^POST \/datasets\/me\/retry\.git\/info\/lfs\/objects\/batch/, status: 429 });
    server.failNext({ route: /^POST \/api\/datasets\/me\/retry\/commit\//, status: 500 });
    const result = await push(params(dir, "me/retry", { onProgress: (e) => events.push(e) }));
    expect(result.commitOid).toBe(server.head({ type: "dataset", name: "me/retry" }));
    expect(events.filter((e) => e.phase === "retry").map((e) => (e as { reason: string }).reason)).toEqual([
      "HTTP 503",
      "HTTP 503",
      "HTTP 429",
      "HTTP 500",
    ]);
    expect(remoteTree("me/retry", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
  });

  it("a connection dropped during the upload fails with one line, commits nothing, and completes on rerun", async () => {
    const dir = await makeOutDir("dropped");
    await push(params(dir, "me/dropped", { dryRun: false, message: "first" }));
    const head = server.head({ type: "dataset", name: "me/dropped" });
    for (const stem of ["cat-1", "cat-2", "cat-3"])
      await writeFile(join(dir, "masks", `${stem}.png`), fakePng(77));
    await writeFile(join(dir, "masks", "cat-1.png"), fakePng(78));

    // The server cuts the LFS batch reply mid-body, on every try.
    server.failNext({ route: /lfs\/objects\/batch/, drop: true, times: FAST.tries });
    const e = await pushError(params(dir, "me/dropped"));
    expect(e).toBeInstanceOf(HubUserError);
    expect((e as HubUserError).kind).toBe("interrupted");
    expect(e.toLine()).toMatch(
      /connection to the Hub was lost.*gave up after 3 tries.*run the same command again/,
    );
    expect(server.head({ type: "dataset", name: "me/dropped" })).toBe(head);

    // An instant failure of every PUT (before the library's queue has consumed its progress
    // events): one line, no "Logic error in eventGenerator".
    const instant: typeof fetch = async (input, init) => {
      if ((init?.method ?? "GET") === "PUT")
        throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
      return fetch(input, init);
    };
    const e1 = await pushError(params(dir, "me/dropped", { fetch: instant, retry: { tries: 1 } }));
    expect((e1 as HubUserError).kind).toBe("interrupted");

    // The server breaks the connection of one file's PUT, on every try, without storing it, while
    // the other files of the batch go up.
    const cat3 = sha256(await readFile(join(dir, "masks", "cat-3.png")));
    server.clearRequests();
    server.failNext({ route: new RegExp(`^PUT /__lfs/${cat3}`), reset: true, times: FAST.tries });
    const e2 = await pushError(params(dir, "me/dropped"));
    expect((e2 as HubUserError).kind).toBe("interrupted");
    expect(e2.toLine()).toMatch(/connection to the Hub was lost.*gave up after 3 tries/);
    const puts = server.requestsTo(/^PUT \/__lfs\//);
    expect(puts.filter((r) => r.dropped).map((r) => r.body.sha256)).toEqual([cat3, cat3, cat3]);
    expect(puts.filter((r) => !r.dropped).map((r) => r.status)).toEqual([200, 200]);
    expect(server.lfsObjects.has(cat3)).toBe(false);
    expect(server.head({ type: "dataset", name: "me/dropped" })).toBe(head);
    const stored = server.lfsObjects.size;

    server.clearRequests();
    const result = await push(params(dir, "me/dropped"));
    expect(result.uploaded.map((f) => f.path).sort()).toEqual([
      "masks/cat-1.png",
      "masks/cat-2.png",
      "masks/cat-3.png",
    ]);
    expect(server.requestsTo(/^PUT /)).toHaveLength(1); // objects stored before the break are skipped
    expect(server.lfsObjects.size).toBe(stored + 1);
    expect(commits()).toHaveLength(1);
    expect(remoteTree("me/dropped", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
  });

  it("a PUT whose reply is lost is sent again and the push completes", async () => {
    const dir = await makeOutDir("putreply");
    const oid = sha256(await readFile(join(dir, "images", "cat-2.png")));
    server.clearRequests();
    server.failNext({ route: new RegExp(`^PUT /__lfs/${oid}`), drop: true });
    const events: PushProgress[] = [];
    const result = await push(params(dir, "me/putreply", { onProgress: (e) => events.push(e) }));
    expect(result.commitOid).toBe(server.head({ type: "dataset", name: "me/putreply" }));
    const puts = server.requestsTo(new RegExp(`^PUT /__lfs/${oid}`));
    expect(puts.map((r) => [r.dropped, r.status, r.body.sha256])).toEqual([
      [true, undefined, oid],
      [false, 200, oid],
    ]);
    expect(events.filter((e) => e.phase === "retry").map((e) => (e as { reason: string }).reason)).toEqual([
      "connection dropped",
    ]);
    expect(remoteTree("me/putreply", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
  });

  it("a commit answered 500 on every try commits nothing; the rerun completes", async () => {
    const dir = await makeOutDir("commit500");
    server.failNext({
      route: /^POST \/api\/datasets\/me\/commit500\/commit\//,
      status: 500,
      times: FAST.tries,
    });
    const e = await pushError(params(dir, "me/commit500"));
    expect(e.toLine()).toMatch(
      /^commit to me\/commit500: the Hub had a server error \(500\) \(gave up after 3 tries\)/,
    );
    expect(server.file({ type: "dataset", name: "me/commit500", path: "metadata.jsonl" })).toBeUndefined();
    const result = await push(params(dir, "me/commit500"));
    expect(result.repoCreated).toBe(false);
    expect(remoteTree("me/commit500", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
  });

  it("a commit whose reply is lost is recognised on the retry (412) instead of failing", async () => {
    const dir = await makeOutDir("lostreply");
    server.failNext({ route: /^POST \/api\/datasets\/me\/lostreply\/commit\//, drop: true });
    const result = await push(params(dir, "me/lostreply"));
    const head = server.head({ type: "dataset", name: "me/lostreply" });
    expect(result.commitOid).toBe(head);
    expect(server.commitInfo({ type: "dataset", name: "me/lostreply", sha: head! })!.parent).toBe(
      result.parentCommit,
    );
    expect(remoteTree("me/lostreply", EXPECTED())).toEqual(await localTree(dir, EXPECTED()));
  });

  it("401 and a missing branch are single clear lines without the token", async () => {
    const dir = await makeOutDir("errors");
    const bad = "hf_revokedtoken9876543210";
    server.rejectToken(bad);
    const e401 = await pushError(params(dir, "me/errors", { token: bad }));
    captured.push(e401.toLine());
    expect(e401.toLine()).not.toContain(bad);
    expect((e401 as HubUserError).kind).toBe("auth");
    expect(e401.toLine()).toMatch(/401 Unauthorized.*token .* is invalid or expired/);

    server.addRepo({ type: "dataset", name: "me/errors-existing" });
    server.clearRequests();
    const ePr = await pushError(params(dir, "me/errors-existing", { branch: "nope", pr: true }));
    expect((ePr as HubUserError).status).toBe(404);
    expect(ePr.toLine()).toMatch(
      /^branch 'nope' does not exist in dataset me\/errors-existing — a pull request needs an existing branch/,
    );
    expect(server.requests.filter((r) => r.method !== "GET")).toEqual([]);
    expect(server.branches({ type: "dataset", name: "me/errors-existing" })).toEqual(["main"]);

    server.failNext({ route: /^POST \/api\/repos\/create/, status: 403 });
    const e403 = await pushError(params(dir, "me/errors"));
    expect(e403.toLine()).toMatch(/access denied \(403\).*write access/);

    const noToken = await pushError(params(dir, "me/errors", { token: undefined }));
    expect(noToken.toLine()).toMatch(/needs a Hugging Face token.*HF_TOKEN/);
    const badRepo = await pushError(params(dir, "not a repo"));
    expect(badRepo.toLine()).toMatch(/Expected a Hub repo id "namespace\/name" for --repo/);
    const noDir = await pushError(params(join(work, "missing"), "me/errors"));
    expect(noDir.toLine()).toMatch(/does not exist/);
  });

  it("refuses a metadata.jsonl row whose file would not be on the Hub", async () => {
    const dir = await makeOutDir("badmeta");
    await writeFile(
      join(dir, "metadata.jsonl"),
      `${JSON.stringify({ file_name: "images/outside.png", mask_file_name: "masks/cat-1.png", text: "x" })}\n`,
    );
    const e = await pushError(params(dir, "me/badmeta"));
    expect(e.toLine()).toMatch(/metadata\.jsonl line 1: file_name 'images\/outside\.png' is not a file/);
    expect(commits().some((r) => r.url.includes("badmeta"))).toBe(false);
  });

  it("--private, --branch and --pr reach the server", async () => {
    const dir = await makeOutDir("options");
    server.clearRequests();
    await push(params(dir, "me/private", { private: true }));
    const anon = await fetch(`${server.url}/api/datasets/me/private`);
    expect(anon.status).toBe(401);
    const info = (await (
      await fetch(`${server.url}/api/datasets/me/private`, { headers: { Authorization: `Bearer ${TOKEN}` } })
    ).json()) as { private: boolean };
    expect(info.private).toBe(true);

    server.addRepo({ type: "dataset", name: "me/branchy" });
    server.commitFiles({ type: "dataset", name: "me/branchy", branch: "dev", title: "branch off" });
    const mainHead = server.head({ type: "dataset", name: "me/branchy" });
    const onDev = await push(params(dir, "me/branchy", { branch: "dev" }));
    expect(onDev.commitOid).toBe(server.head({ type: "dataset", name: "me/branchy", branch: "dev" }));
    expect(server.head({ type: "dataset", name: "me/branchy" })).toBe(mainHead);
    expect(commits().at(-1)!.path).toBe("/api/datasets/me/branchy/commit/dev");

    const viaPr = await push(params(dir, "me/branchy", { pr: true }));
    expect(viaPr.pullRequestUrl).toMatch(/\/datasets\/me\/branchy\/discussions\/1$/);
    expect(commits().at(-1)!.url).toMatch(/\/commit\/main\?create_pr=1$/);
    expect(server.branches({ type: "dataset", name: "me/branchy" })).toContain("refs/pr/1");
    expect(server.head({ type: "dataset", name: "me/branchy" })).toBe(mainHead);
    expect(remoteTree("me/branchy", EXPECTED(), "refs/pr/1")).toEqual(await localTree(dir, EXPECTED()));
  });

  it("--branch that does not exist is created from the head of main, then committed to", async () => {
    const dir = await makeOutDir("newbranch");
    await push(params(dir, "me/newbranch"));
    const mainHead = server.head({ type: "dataset", name: "me/newbranch" })!;
    await writeFile(join(dir, "README.md"), "# my cat, on a branch\n");

    server.clearRequests();
    const plan = await push(params(dir, "me/newbranch", { branch: "feature/card", dryRun: true }));
    expect([plan.branchCreated, plan.parentCommit]).toEqual([true, mainHead]);
    expect(plan.uploaded.map((f) => f.path)).toEqual(["README.md"]);
    expect(server.requests.filter((r) => r.method !== "GET")).toEqual([]);
    expect(server.branches({ type: "dataset", name: "me/newbranch" })).toEqual(["main"]);

    server.clearRequests();
    const result = await push(params(dir, "me/newbranch", { branch: "feature/card" }));
    expect(result.branchCreated).toBe(true);
    expect(result.parentCommit).toBe(mainHead);
    expect(result.uploaded.map((f) => f.path)).toEqual(["README.md"]); // compared against main
    const made = server.requestsTo(/^POST \/api\/datasets\/me\/newbranch\/branch\//);
    expect(made.map((r) => [r.path, r.body.json, r.status])).toEqual([
      ["/api/datasets/me/newbranch/branch/feature/card", { startingPoint: mainHead }, 200],
    ]);
    const branchHead = server.head({ type: "dataset", name: "me/newbranch", branch: "feature/card" });
    expect(result.commitOid).toBe(branchHead);
    expect(server.commitInfo({ type: "dataset", name: "me/newbranch", sha: branchHead! })!.parent).toBe(
      mainHead,
    );
    expect(server.head({ type: "dataset", name: "me/newbranch" })).toBe(mainHead);
    expect(remoteTree("me/newbranch", EXPECTED(), "feature/card")).toEqual(await localTree(dir, EXPECTED()));

    server.clearRequests();
    const again = await push(params(dir, "me/newbranch", { branch: "feature/card" }));
    expect([again.upToDate, again.branchCreated]).toEqual([true, false]);
    expect(server.requests.filter((r) => r.method !== "GET")).toEqual([]);

    // A repo that does not exist yet: created, then the branch from its first commit.
    const fresh = await push(params(dir, "me/newbranch-repo", { branch: "dev" }));
    expect([fresh.repoCreated, fresh.branchCreated]).toEqual([true, true]);
    expect(server.head({ type: "dataset", name: "me/newbranch-repo", branch: "dev" })).toBe(fresh.commitOid);
    expect(server.file({ type: "dataset", name: "me/newbranch-repo", path: "README.md" })).toBeUndefined();
    const dry = await push(params(dir, "me/newbranch-none", { branch: "dev", dryRun: true }));
    expect([dry.repoCreated, dry.branchCreated]).toEqual([true, true]);
  });

  it("--prune deletes files that are on the Hub but no longer in the folder", async () => {
    const dir = await makeOutDir("prune");
    await push(params(dir, "me/prune"));
    server.commitFiles({ type: "dataset", name: "me/prune", files: { "old/notes.txt": "stale" } });
    const kept = await push(params(dir, "me/prune"));
    expect(kept.upToDate).toBe(true);
    expect(kept.remoteOnly).toEqual(["old/notes.txt"]);
    const pruned = await push(params(dir, "me/prune", { prune: true }));
    expect(pruned.deleted).toEqual(["old/notes.txt"]);
    expect(server.file({ type: "dataset", name: "me/prune", path: "old/notes.txt" })).toBeUndefined();
    expect(server.file({ type: "dataset", name: "me/prune", path: ".gitattributes" })).toBeDefined();
  });
});
