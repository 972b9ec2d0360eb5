// The cache of derived files (util/content-cache.ts) and the photo-embedding cache built on it:
// entries are checked on every read, damaged or stale ones are rebuilt with one warning and never
// used, concurrent writers both succeed, the size limit evicts least recently used entries, and a
// cache that cannot be written never stops the work.

import { execFile } from "node:child_process";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  truncate,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbeddingCache } from "../src/segment/sam/embedding-cache.js";
import type { EncodedPhoto } from "../src/segment/sam/sam-model.js";
import { ContentCache } from "../src/util/content-cache.js";
import { REPO_ROOT } from "./support/built-cli.js";

const run = promisify(execFile);
let root: string;
let counter = 0;
const fresh = async (): Promise<string> => {
  const dir = join(root, `c${counter++}`);
  await mkdir(dir, { recursive: true });
  return dir;
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-content-cache-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const bytes = (n: number, seed = 1): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);

function cache(dir: string, warnings: string[] = [], extra: { version?: string; maxBytes?: number } = {}) {
  return new ContentCache({
    dir,
    version: extra.version ?? "v1",
    ...(extra.maxBytes === undefined ? {} : { maxBytes: extra.maxBytes }),
    onWarning: (m) => {
      warnings.push(m);
    },
  });
}

async function entryFolder(dir: string, key: string): Promise<string> {
  return join(dir, ContentCache.entryName(key));
}

describe("ContentCache", () => {
  it("returns what was stored, with its meta", async () => {
    const dir = await fresh();
    const c = cache(dir);
    expect(await c.get("k")).toBeUndefined();
    expect(await c.put("k", { "a.bin": bytes(100) }, { n: 1 })).toBe(true);
    const got = await c.get<{ n: number }>("k");
    expect(got?.meta).toEqual({ n: 1 });
    expect(new Uint8Array(await readFile(got!.files["a.bin"]!))).toEqual(bytes(100));
  });

  it("never uses a truncated, altered or older-version entry: removed and reported once", async () => {
    const dir = await fresh();
    const warnings: string[] = [];
    const c = cache(dir, warnings);
    await c.put("t", { "a.bin": bytes(100) }, null);
    await truncate(join(await entryFolder(dir, "t"), "a.bin"), 50);
    expect(await c.get("t")).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/a\.bin is truncated; it is rebuilt/);
    expect(await c.get("t")).toBeUndefined(); // gone: a plain miss, no second warning
    expect(warnings).toHaveLength(1);

    await c.put("h", { "a.bin": bytes(100) }, null);
    const altered = bytes(100);
    altered[7] = altered[7]! ^ 1;
    await writeFile(join(await entryFolder(dir, "h"), "a.bin"), altered);
    expect(await c.get("h")).toBeUndefined();
    expect(warnings[1]).toMatch(/does not match its recorded sha256/);

    await c.put("v", { "a.bin": bytes(10) }, null);
    expect(await cache(dir, warnings, { version: "v2" }).get("v")).toBeUndefined();
    expect(warnings[2]).toMatch(/written by version v1/);

    await c.put("m", { "a.bin": bytes(10) }, null);
    await writeFile(join(await entryFolder(dir, "m"), "entry.json"), "{ not json");
    expect(await c.get("m")).toBeUndefined();
    expect(warnings[3]).toMatch(/manifest is unreadable/);
  });

  it("read gives the bytes, checked as read; a truncated or altered entry is removed and reported", async () => {
    const dir = await fresh();
    const warnings: string[] = [];
    const c = cache(dir, warnings);
    await c.put("r", { "a.bin": bytes(100) }, { n: 2 });
    const got = await c.read<{ n: number }>("r");
    expect(got?.meta).toEqual({ n: 2 });
    expect(new Uint8Array(got!.bytes["a.bin"]!)).toEqual(bytes(100));
    expect(warnings).toEqual([]);

    await truncate(join(await entryFolder(dir, "r"), "a.bin"), 50);
    expect(await c.read("r")).toBeUndefined();
    expect(warnings[0]).toMatch(/a\.bin is truncated; it is rebuilt/);
    expect(await c.read("r")).toBeUndefined();
    expect(warnings).toHaveLength(1);

    await c.put("h", { "a.bin": bytes(100) }, null);
    const altered = bytes(100);
    altered[3] = altered[3]! ^ 1;
    await writeFile(join(await entryFolder(dir, "h"), "a.bin"), altered);
    expect(await c.read("h")).toBeUndefined();
    expect(warnings[1]).toMatch(/does not match its recorded sha256/);
  });

  it('with verify "changed", hashes a file again only when it changed since it was written', async () => {
    const dir = await fresh();
    const warnings: string[] = [];
    const c = cache(dir, warnings);
    await c.put("k", { "a.bin": bytes(100) }, null);
    // A wrong sha256 in the manifest of an untouched file: only a full check notices.
    const folder = await entryFolder(dir, "k");
    const manifest = JSON.parse(await readFile(join(folder, "entry.json"), "utf8")) as {
      files: Record<string, { sha256: string }>;
    };
    manifest.files["a.bin"]!.sha256 = "0".repeat(64);
    await writeFile(join(folder, "entry.json"), JSON.stringify(manifest));
    expect(await c.get("k", "changed")).toBeDefined();
    expect(warnings).toEqual([]);
    expect(await c.get("k", true)).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/does not match its recorded sha256/)]);

    // A file written again with other bytes of the same size is hashed, and refused.
    await c.put("j", { "a.bin": bytes(100) }, null);
    await writeFile(join(await entryFolder(dir, "j"), "a.bin"), bytes(100, 2));
    expect(await c.get("j", "changed")).toBeUndefined();
    expect(warnings).toHaveLength(2);
  });

  it("evicts the least recently used entries past its size limit", async () => {
    const dir = await fresh();
    const c = cache(dir, [], { maxBytes: 2500 });
    const old = new Date(Date.now() - 60_000);
    for (const k of ["a", "b"]) {
      await c.put(k, { "x.bin": bytes(1000) }, null);
      await utimes(await entryFolder(dir, k), old, old);
    }
    expect(await c.get("a")).toBeDefined(); // a is now the more recently used
    await c.put("c", { "x.bin": bytes(1000) }, null);
    expect(await c.get("b")).toBeUndefined();
    expect(await c.get("a")).toBeDefined();
    expect(await c.get("c")).toBeDefined();
  });

  it("is off with a size limit of 0", async () => {
    const dir = await fresh();
    const c = cache(dir, [], { maxBytes: 0 });
    expect(await c.put("k", { "a.bin": bytes(10) }, null)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it("goes on without the cache, with one warning, when it cannot be written", async () => {
    const dir = await fresh();
    const blocked = join(dir, "not-a-folder");
    await writeFile(blocked, "a file where the cache folder should be");
    const warnings: string[] = [];
    const c = cache(blocked, warnings);
    expect(await c.put("k", { "a.bin": bytes(10) }, null)).toBe(false);
    expect(await c.put("k2", { "a.bin": bytes(10) }, null)).toBe(false);
    expect(warnings).toEqual([
      expect.stringMatching(/cannot write to the cache .*\(ENOTDIR\); going on without it/),
    ]);
    expect(await c.get("k")).toBeUndefined();
  });

  it("goes on without the cache when the disk is full (a 64 KiB tmpfs)", async (ctx) => {
    const mount = await fresh();
    const mounted = await run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mount]).then(
      () => true,
      () => false,
    );
    if (!mounted) {
      console.warn(
        "[skip] content-cache: cannot mount a tmpfs here (needs root); the ENOTDIR test covers the path",
      );
      ctx.skip();
      return;
    }
    try {
      const warnings: string[] = [];
      const c = cache(join(mount, "cache"), warnings);
      expect(await c.put("big", { "a.bin": bytes(200_000) }, null)).toBe(false);
      expect(warnings).toEqual([expect.stringMatching(/\(ENOSPC\); going on without it/)]);
      // The failed write left nothing behind: a small entry still fits, and nothing more is said.
      expect(await c.put("small", { "a.bin": bytes(100) }, null)).toBe(true);
      expect(warnings).toHaveLength(1);
    } finally {
      await run("umount", [mount]);
    }
  });

  it("two processes filling the same entries at once both succeed and leave valid entries", async () => {
    const dir = await fresh();
    // The module as plain JavaScript for two child processes (TypeScript's transpiler, as
    // test/support/built-cli.ts does for the CLI).
    const js = join(root, "js");
    await mkdir(join(js, "util"), { recursive: true });
    await mkdir(join(js, "node_modules"), { recursive: true });
    await symlink(join(REPO_ROOT, "node_modules", "zod"), join(js, "node_modules", "zod"));
    await writeFile(join(js, "package.json"), '{ "type": "module" }');
    for (const name of ["content-cache", "hash-file"]) {
      const source = await readFile(join(REPO_ROOT, "src", "util", `${name}.ts`), "utf8");
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: {
          module: ts.ModuleKind.ES2022,
          target: ts.ScriptTarget.ES2022,
          verbatimModuleSyntax: true,
        },
      });
      await writeFile(join(js, "util", `${name}.js`), outputText);
    }
    const runner = join(js, "fill.mjs");
    await writeFile(
      runner,
      `import { ContentCache } from "./util/content-cache.js";
const c = new ContentCache({ dir: process.argv[2], version: "v1", onWarning: (m) => { console.error(m); process.exitCode = 3; } });
const data = Uint8Array.from({ length: 300000 }, (_, i) => (i * 7) & 255);
for (let k = 0; k < 20; k++) {
  if (!(await c.get("key" + k)) && !(await c.put("key" + k, { "d.bin": data }, { k }))) process.exitCode = 4;
}
`,
    );
    const exit = (): Promise<number> =>
      run(process.execPath, [runner, dir]).then(
        () => 0,
        (e: { code?: number; stderr?: string }) => {
          console.error(e.stderr);
          return e.code ?? 1;
        },
      );
    expect(await Promise.all([exit(), exit()])).toEqual([0, 0]);
    const check = cache(dir);
    for (let k = 0; k < 20; k++) expect((await check.get<{ k: number }>(`key${k}`))?.meta).toEqual({ k });
  });
});

describe("EmbeddingCache", () => {
  const photo: EncodedPhoto = {
    embedding: { data: Float32Array.from({ length: 4 * 4 * 4 }, (_, i) => i / 7), dims: [1, 4, 4, 4] },
    originalSize: [30, 40],
    inputSize: [768, 1024],
  };
  const key = { photoSha256: "a".repeat(64), encoder: "tiny|/x/encoder.onnx|1|2" };

  it("round-trips an embedding to the bit and keys it by photo and encoder", async () => {
    const c = new EmbeddingCache({ dir: await fresh() });
    await c.put(key, photo);
    const got = await c.get(key);
    expect(got?.embedding.dims).toEqual([1, 4, 4, 4]);
    expect(Array.from(got!.embedding.data)).toEqual(Array.from(photo.embedding.data));
    expect(got?.originalSize).toEqual([30, 40]);
    expect(got?.inputSize).toEqual([768, 1024]);
    expect(await c.get({ ...key, encoder: "other" })).toBeUndefined();
    expect(await c.usage()).toMatchObject({ entries: 1 });
    await c.clear();
    expect(await c.get(key)).toBeUndefined();
  });

  it("an entry whose manifest does not describe its file is removed with one warning and rebuilt", async () => {
    const dir = await fresh();
    const warnings: string[] = [];
    const c = new EmbeddingCache({ dir, onWarning: (m) => warnings.push(m) });
    for (const meta of [
      { dims: [1, 4, 4, 5], originalSize: [30, 40], inputSize: [768, 1024] }, // 4 values too many
      { dims: "1x4x4x4", originalSize: [30, 40], inputSize: [768, 1024] },
      { dims: [1, 4, 4, 4], originalSize: [30], inputSize: [768, 1024] },
    ]) {
      warnings.length = 0;
      expect(await c.put(key, photo)).toBe(true);
      const [name] = (await readdir(dir)).filter((n) => !n.startsWith("."));
      const manifestPath = join(dir, name!, "entry.json");
      const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
      await writeFile(manifestPath, JSON.stringify({ ...manifest, meta }));
      expect(await c.get(key)).toBeUndefined();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/does not describe an embedding.*it is rebuilt/);
      // Rebuilt by the next put, and used from then on.
      expect(await c.put(key, photo)).toBe(true);
      expect(Array.from((await c.get(key))!.embedding.data)).toEqual(Array.from(photo.embedding.data));
      expect(warnings).toHaveLength(1);
    }
  });
});
