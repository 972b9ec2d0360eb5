// The standard Hugging Face cache as huggingface_hub lays it out and reads it: `models--ns--name/`
// with `blobs/<etag>`, `snapshots/<commit>/<path>` links and `refs/<revision>`; lookups that follow
// refs to snapshots; and file checks by size and hash (sha256 remembered per size and mtime).

import { createHash } from "node:crypto";
import { copyFile, lstat, mkdir, readdir, readFile, readlink, rm, stat, symlink } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { writeFileAtomic } from "../util/atomic-write.js";
import { hashFile } from "../util/hash-file.js";
import type { HubRepo } from "./hub-connection.js";

const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** A repo given as `ns/name` (a model) or as a {@link HubRepo}. */
export type CacheRepo = string | HubRepo;

function asRepo(repo: CacheRepo): HubRepo {
  return typeof repo === "string" ? { type: "model", name: repo } : repo;
}

/** `models--ns--name` (or `datasets--ns--name`) folder of a repo in the HF cache. */
export function hfRepoFolder(cacheDir: string, repo: CacheRepo): string {
  const r = asRepo(repo);
  return join(cacheDir, `${r.type}s--${r.name.split("/").join("--")}`);
}

/** Where a file of a repo at a commit lives: `<repo folder>/snapshots/<sha>/<path>`. */
export function snapshotPath(params: {
  cacheDir: string;
  repo: CacheRepo;
  sha: string;
  path: string;
}): string {
  return join(hfRepoFolder(params.cacheDir, params.repo), "snapshots", params.sha, ...params.path.split("/"));
}

/** Where the content of a file lives: `<repo folder>/blobs/<etag>`. */
export function blobPath(params: { cacheDir: string; repo: CacheRepo; etag: string }): string {
  return join(hfRepoFolder(params.cacheDir, params.repo), "blobs", params.etag);
}

/** The commit recorded in `refsDir/<ref>`, if it is a 40-hex commit id. */
export async function readRefFile(refsDir: string, ref: string): Promise<string | undefined> {
  const text = await readFile(join(refsDir, ...ref.split("/")), "utf8").catch(() => undefined);
  const sha = text?.trim();
  return sha !== undefined && COMMIT.test(sha) ? sha : undefined;
}

/** The commit a revision of a repo points at in the cache (`refs/<revision>`), if recorded. */
export function readRef(params: {
  cacheDir: string;
  repo: CacheRepo;
  ref: string;
}): Promise<string | undefined> {
  return readRefFile(join(hfRepoFolder(params.cacheDir, params.repo), "refs"), params.ref);
}

/** Record `refsDir/<ref>` = `sha` (atomically, as huggingface_hub writes it: the id, no newline). */
export async function writeRefFile(refsDir: string, ref: string, sha: string): Promise<void> {
  const path = join(refsDir, ...ref.split("/"));
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, sha);
}

/** Every ref recorded for a repo (`main`, other branches, `refs/pr/1` as `pr/1`), `main` first. */
export async function listRefs(params: {
  cacheDir: string;
  repo: CacheRepo;
}): Promise<Array<{ ref: string; sha: string }>> {
  const root = join(hfRepoFolder(params.cacheDir, params.repo), "refs");
  const out: Array<{ ref: string; sha: string }> = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const ref = prefix === "" ? e.name : `${prefix}/${e.name}`;
      if (e.isDirectory()) await walk(join(dir, e.name), ref);
      else {
        const sha = await readRefFile(root, ref);
        if (sha !== undefined) out.push({ ref, sha });
      }
    }
  };
  await walk(root, "");
  return out.sort((a, b) => (a.ref === "main" ? -1 : b.ref === "main" ? 1 : 0));
}

/** Link `snap` to `blob` (a relative symbolic link as huggingface_hub makes; a copy where links fail). */
export async function linkSnapshot(blob: string, snap: string): Promise<void> {
  await mkdir(dirname(snap), { recursive: true });
  await rm(snap, { force: true });
  try {
    await symlink(relative(dirname(snap), blob), snap);
  } catch {
    await copyFile(blob, snap);
  }
}

/** The blob a snapshot entry links to: its name is the etag (sha256 for LFS files, git oid otherwise). */
export async function linkedEtag(snapshotFile: string): Promise<string | undefined> {
  const l = await lstat(snapshotFile).catch(() => undefined);
  if (!l?.isSymbolicLink()) return undefined;
  const target = await readlink(snapshotFile).catch(() => undefined);
  return target === undefined ? undefined : basename(target);
}

/** Expected identity of a file. */
export interface ExpectedFile {
  readonly size?: number | undefined;
  readonly sha256?: string | undefined;
  /** Git blob id, for files the Hub does not store in LFS. */
  readonly gitOid?: string | undefined;
}

/** The identity an etag proves: a 64-hex etag is a sha256, a 40-hex one a git oid. */
export function expectedFromEtag(etag: string | undefined): ExpectedFile {
  return {
    sha256: etag !== undefined && SHA256.test(etag) ? etag : undefined,
    gitOid: etag !== undefined && COMMIT.test(etag) ? etag : undefined,
  };
}

/** What is known about a local file after checking it. */
export interface FileCheck {
  readonly ok: boolean;
  /** Why it failed: `missing`, `size 10 bytes, expected 12`, `sha256 …, expected …`. */
  readonly problem: string | undefined;
  /** True when a hash was compared (not only the size). */
  readonly hashed: boolean;
}

interface VerifiedMark {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

function markPath(marksDir: string, file: string): string {
  return join(marksDir, `${createHash("sha256").update(resolve(file)).digest("hex").slice(0, 32)}.json`);
}

/**
 * Remember that `file` (at its current size and modification time) has this sha256, so the next
 * check need not read it again. Failures to write the mark are ignored: it only saves time.
 */
export async function rememberVerified(
  marksDir: string | undefined,
  file: string,
  sha256: string,
): Promise<void> {
  if (marksDir === undefined) return;
  const s = await stat(file).catch(() => undefined);
  if (!s) return;
  const mark: VerifiedMark = { path: resolve(file), size: s.size, mtimeMs: s.mtimeMs, sha256 };
  const path = markPath(marksDir, file);
  await mkdir(dirname(path), { recursive: true })
    .then(() => writeFileAtomic(path, JSON.stringify(mark)))
    .catch(() => undefined);
}

/**
 * Check a local file against its expected size and hash. A sha256 already verified for the same
 * size and modification time (a mark in `marksDir`) is trusted unless `full`.
 * @param params.marksDir where verification marks live. @default undefined (always hash)
 * @param params.full re-hash even when a mark says the file was verified. @default false
 */
export async function checkFile(params: {
  path: string;
  expected: ExpectedFile;
  marksDir?: string | undefined;
  full?: boolean | undefined;
}): Promise<FileCheck> {
  const { path, expected } = params;
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile()) return { ok: false, problem: "missing", hashed: false };
  if (expected.size !== undefined && s.size !== expected.size) {
    return { ok: false, problem: `size ${s.size} bytes, expected ${expected.size}`, hashed: false };
  }
  if (expected.sha256 !== undefined) {
    if (!params.full && params.marksDir !== undefined) {
      const m = JSON.parse(
        await readFile(markPath(params.marksDir, path), "utf8").catch(() => "null"),
      ) as VerifiedMark | null;
      if (m && m.size === s.size && m.mtimeMs === s.mtimeMs && m.sha256 === expected.sha256) {
        return { ok: true, problem: undefined, hashed: true };
      }
    }
    const { sha256 } = await hashFile(path);
    if (sha256 !== expected.sha256) {
      return {
        ok: false,
        problem: `sha256 ${sha256.slice(0, 12)}…, expected ${expected.sha256.slice(0, 12)}…`,
        hashed: true,
      };
    }
    await rememberVerified(params.marksDir, path, sha256);
    return { ok: true, problem: undefined, hashed: true };
  }
  if (expected.gitOid !== undefined) {
    const { gitOid } = await hashFile(path, s.size);
    if (gitOid !== expected.gitOid) {
      return { ok: false, problem: `git oid differs from ${expected.gitOid}`, hashed: true };
    }
    return { ok: true, problem: undefined, hashed: true };
  }
  return { ok: true, problem: undefined, hashed: false };
}

/** A file found in the cache by {@link findCachedFile}. */
export interface CachedFile {
  /** The snapshot path (what a caller opens). */
  readonly path: string;
  /** The commit of the snapshot it was found in. */
  readonly sha: string;
  /** The ref that led there, or undefined when it was the commit asked for. */
  readonly viaRef: string | undefined;
}

/**
 * Find a file of a repo in the cache: in `snapshots/<sha>` first, then in the snapshot of each
 * recorded ref (`refs/main` first) — a file Python's huggingface_hub fetched under a branch. A file
 * counts only when it verifies: against `expected` (size and sha256 or git oid), and where no hash is
 * expected, against the etag its link names. A file at another commit is accepted only with an
 * expected sha256 or git oid (the same bytes, whatever commit they were fetched at).
 * @param params.sha the commit wanted; undefined looks only through the refs
 * @param params.refs follow refs at all. @default true
 */
export async function findCachedFile(params: {
  cacheDir: string;
  repo: CacheRepo;
  sha: string | undefined;
  path: string;
  expected: ExpectedFile;
  marksDir?: string | undefined;
  refs?: boolean | undefined;
}): Promise<CachedFile | undefined> {
  const candidates: Array<{ sha: string; viaRef: string | undefined }> = [];
  if (params.sha !== undefined) candidates.push({ sha: params.sha, viaRef: undefined });
  const pinnedIdentity = params.expected.sha256 !== undefined || params.expected.gitOid !== undefined;
  if (params.refs !== false && (params.sha === undefined || pinnedIdentity)) {
    for (const { ref, sha } of await listRefs(params)) {
      if (!candidates.some((c) => c.sha === sha)) candidates.push({ sha, viaRef: ref });
    }
  }
  for (const c of candidates) {
    const snap = snapshotPath({ ...params, sha: c.sha });
    if ((await lstat(snap).catch(() => undefined)) === undefined) continue;
    const etag = expectedFromEtag(await linkedEtag(snap));
    const expected: ExpectedFile = {
      size: params.expected.size,
      sha256: params.expected.sha256 ?? (params.expected.gitOid === undefined ? etag.sha256 : undefined),
      gitOid: params.expected.gitOid ?? (params.expected.sha256 === undefined ? etag.gitOid : undefined),
    };
    const check = await checkFile({ path: snap, expected, marksDir: params.marksDir });
    if (check.ok) return { path: snap, sha: c.sha, viaRef: c.viaRef };
  }
  return undefined;
}
