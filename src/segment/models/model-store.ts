// Model files on disk: registry models downloaded from the Hub into the standard Hugging Face cache
// (blobs/<etag>, snapshots/<sha>/<path> links, refs/main) at pinned commits and verified by size
// and sha256; the decoder cut out of a checkpoint with one range request into persam-db's cache;
// offline use; and the encoder/decoder checkpoint-match check.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  copyFile,
  lstat,
  mkdir,
  open,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  unlink,
} from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { persamCacheDir as defaultPersamCacheDir, hubConfig } from "../../config.js";
import { UserError } from "../../errors.js";
import {
  getPathsInfo,
  type HubConnection,
  HubUserError,
  openHubFile,
  resolveRevision,
} from "../../hub/hub-api.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { hashFile } from "../../util/hash-file.js";
import {
  decoderByteRange,
  isDecoderTensor,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  type SafetensorsHeader,
  safetensorsHeaderLength,
} from "../sam/safetensors.js";
import {
  encoderVariant,
  findModel,
  isCommitSha,
  loadModelRegistry,
  type ModelEntry,
  type ModelRegistry,
  type ModelVariant,
  type RegistryFile,
} from "./model-registry.js";

/** Progress of one file transfer. */
export interface DownloadProgress {
  /** `repo/path` being fetched. */
  readonly file: string;
  /** Bytes received so far (including a resumed part). */
  readonly loaded: number;
  /** Bytes expected, when known. */
  readonly total: number | undefined;
  /** Average speed of this transfer. */
  readonly bytesPerSecond: number;
  /** True on the last call for this file. */
  readonly done: boolean;
}

/** Where to look for and put model files, and how to reach the Hub. */
export interface ModelStoreOptions {
  /** Never touch the network (HF_HUB_OFFLINE). @default hubConfig().offline */
  offline?: boolean;
  /** Hugging Face hub cache folder. @default hubConfig().cacheDir */
  cacheDir?: string;
  /** persam-db's cache (extracted decoders, verification marks). @default persamCacheDir() */
  persamCacheDir?: string;
  /** Hub endpoint. @default hubConfig().endpoint */
  endpoint?: string;
  /** Hub token. @default hubConfig().token */
  token?: string;
  /** fetch to use (tests). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Aborts downloads. @default undefined */
  signal?: AbortSignal;
  /** Silence the Hub library's console output (--json). @default false */
  quiet?: boolean;
  /** The registry. @default the bundled models/registry.json */
  registry?: ModelRegistry;
  /** Called as bytes arrive. @default undefined */
  onProgress?: (progress: DownloadProgress) => void;
  /** Bytes per range request when downloading whole files. @default 8 MiB */
  chunkBytes?: number;
}

/** Parameters of {@link resolveModelFiles}. */
export interface ResolveModelFilesParams extends ModelStoreOptions {
  /** A registry model id (or give both local paths instead). */
  modelId?: string;
  /** A local encoder .onnx (with `decoderPath`). */
  encoderPath?: string;
  /** A local .safetensors holding the same checkpoint's decoder tensors (with `encoderPath`). */
  decoderPath?: string;
  /** Encoder variant of a registry model. @default "fp32" */
  variant?: ModelVariant;
}

/** Local paths of a model's files. */
export interface ModelFiles {
  readonly encoderPath: string;
  readonly decoderPath: string;
  /** The registry id, or undefined for local files. */
  readonly modelId: string | undefined;
  readonly variant: ModelVariant | undefined;
  /** Commits the files come from (undefined for local files). */
  readonly revision: { readonly encoder: string; readonly decoder: string } | undefined;
  /** True when both repos are pinned in the registry (false: resolved from a branch). */
  readonly pinned: boolean;
  /** Bytes downloaded by this call. */
  readonly downloadedBytes: number;
}

interface Store {
  readonly offline: boolean;
  readonly cacheDir: string;
  readonly persamDir: string;
  readonly conn: HubConnection;
  readonly onProgress: ((p: DownloadProgress) => void) | undefined;
  readonly chunkBytes: number;
  downloaded: number;
}

const DEFAULT_CHUNK = 8 * 1024 * 1024;
const SHA256_RE = /^[0-9a-f]{64}$/;
const GIT_OID_RE = /^[0-9a-f]{40}$/;

function makeStore(o: ModelStoreOptions): Store {
  const needsEnv =
    o.offline === undefined || o.cacheDir === undefined || o.endpoint === undefined || o.token === undefined;
  const env = needsEnv ? hubConfig() : undefined;
  const token = o.token ?? env?.token;
  return {
    offline: o.offline ?? env?.offline ?? false,
    cacheDir: o.cacheDir ?? env!.cacheDir,
    persamDir: o.persamCacheDir ?? defaultPersamCacheDir(),
    conn: {
      endpoint: o.endpoint ?? env?.endpoint,
      ...(token === undefined ? {} : { token }),
      ...(o.fetch === undefined ? {} : { fetch: o.fetch }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      quiet: o.quiet ?? false,
    },
    onProgress: o.onProgress,
    chunkBytes: o.chunkBytes ?? DEFAULT_CHUNK,
    downloaded: 0,
  };
}

/** `models--ns--name` folder of a model repo in the HF cache. */
export function hfRepoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split("/").join("--")}`);
}

/** persam-db's folder for decoders extracted from `repo`. */
function decoderFolder(persamDir: string, repo: string): string {
  return join(persamDir, "decoders", repo.split("/").join("--"));
}

/**
 * Local paths of a model's encoder and decoder weights: the two given files, or a registry model
 * found in (or downloaded into) the Hugging Face cache at its pinned commit. A branch revision
 * (`pinned: false`) is resolved to a commit with the Hub and recorded as `refs/<branch>`; offline,
 * the recorded commit is used. Downloads are verified (size, sha256 or git oid) before use, go to
 * `<blob>.incomplete` first (resumed on the next run, never trusted until verified), and cached
 * files whose size or hash no longer match are fetched again.
 * @throws {UserError} unknown model or variant; missing local file; model not cached while offline
 *   or the Hub is unreachable; Hub errors (401/403/404/5xx, interrupted transfers) as one line
 */
export async function resolveModelFiles(params: ResolveModelFilesParams): Promise<ModelFiles> {
  if (params.encoderPath !== undefined || params.decoderPath !== undefined) {
    if (params.encoderPath === undefined || params.decoderPath === undefined) {
      throw new UserError("An encoder and a decoder file must be given together", {
        hint: "pass --encoder FILE.onnx --decoder FILE.safetensors, or --model ID",
      });
    }
    for (const [flag, path] of [
      ["--encoder", params.encoderPath],
      ["--decoder", params.decoderPath],
    ] as const) {
      const s = await stat(path).catch(() => undefined);
      if (!s?.isFile())
        throw new UserError(`${flag} file ${path} does not exist`, { hint: "check the path" });
    }
    return {
      encoderPath: resolve(params.encoderPath),
      decoderPath: resolve(params.decoderPath),
      modelId: undefined,
      variant: undefined,
      revision: undefined,
      pinned: true,
      downloadedBytes: 0,
    };
  }
  const registry = params.registry ?? loadModelRegistry();
  const entry = findModel({ registry, id: params.modelId ?? registry.defaultId });
  const variant = params.variant ?? "fp32";
  const spec = encoderVariant({ entry, variant });
  const store = makeStore(params);
  const encFolder = hfRepoFolder(store.cacheDir, entry.encoder.repo);
  const encFiles: RegistryFile[] = [spec, ...(spec.externalData ? [spec.externalData] : [])];

  const encSha = await resolveSha(store, entry, {
    repo: entry.encoder.repo,
    revision: entry.encoder.revision,
    refsDir: join(encFolder, "refs"),
  });
  const encPaths: string[] = [];
  for (const file of encFiles) {
    encPaths.push(
      await ensureRepoFile(store, entry, { repo: entry.encoder.repo, folder: encFolder, sha: encSha, file }),
    );
  }
  const decSha = await resolveSha(store, entry, {
    repo: entry.decoder.repo,
    revision: entry.decoder.revision,
    refsDir: join(decoderFolder(store.persamDir, entry.decoder.repo), "refs"),
    // A checkpoint downloaded by Python records its branch head in the HF cache.
    otherRefsDirs: [join(hfRepoFolder(store.cacheDir, entry.decoder.repo), "refs")],
  });
  const decoderPath = await ensureDecoder(store, entry, decSha);
  return {
    encoderPath: encPaths[0]!,
    decoderPath,
    modelId: entry.id,
    variant,
    revision: { encoder: encSha, decoder: decSha },
    pinned: entry.encoder.pinned && entry.decoder.pinned,
    downloadedBytes: store.downloaded,
  };
}

function notCached(store: Store, entry: ModelEntry, cause?: unknown): UserError {
  const why = store.offline ? "HF_HUB_OFFLINE is set" : "the Hub is unreachable";
  return new UserError(
    `model '${entry.id}' is not in the Hugging Face cache (${store.cacheDir}) and ${why}`,
    {
      hint: `run 'persam-db models pull ${entry.id}' on a connected machine (or copy its cache folder here), or pass --encoder FILE.onnx --decoder FILE.safetensors`,
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

function isUnreachable(error: unknown): boolean {
  return error instanceof HubUserError && error.kind === "network";
}

async function readRef(refsDir: string, ref: string): Promise<string | undefined> {
  const text = await readFile(join(refsDir, ref), "utf8").catch(() => undefined);
  const sha = text?.trim();
  return sha !== undefined && isCommitSha(sha) ? sha : undefined;
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, data);
}

/** The commit of a registry repo reference: pinned, or resolved from its branch (and recorded). */
async function resolveSha(
  store: Store,
  entry: ModelEntry,
  ref: { repo: string; revision: string; refsDir: string; otherRefsDirs?: readonly string[] },
): Promise<string> {
  if (isCommitSha(ref.revision)) return ref.revision;
  let recorded = await readRef(ref.refsDir, ref.revision);
  for (const dir of ref.otherRefsDirs ?? []) recorded ??= await readRef(dir, ref.revision);
  if (store.offline) {
    if (recorded) return recorded;
    throw notCached(store, entry);
  }
  try {
    const sha = await resolveRevision({
      ...store.conn,
      repo: { type: "model", name: ref.repo },
      revision: ref.revision,
    });
    if (sha !== recorded) await writeAtomic(join(ref.refsDir, ref.revision), sha);
    return sha;
  } catch (error) {
    if (isUnreachable(error)) {
      if (recorded) return recorded;
      throw notCached(store, entry, error);
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Verification

/** Expected identity of a file. */
interface Expected {
  size?: number | undefined;
  sha256?: string | undefined;
  gitOid?: string | undefined;
}

/** What is known about a local file after checking it. */
export interface FileCheck {
  readonly ok: boolean;
  /** Why it failed ("size 10 != 12", "sha256 …"). */
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

function markPath(store: { persamDir: string }, file: string): string {
  return join(
    store.persamDir,
    "verified",
    `${createHash("sha256").update(resolve(file)).digest("hex").slice(0, 32)}.json`,
  );
}

/**
 * Check a local file against its expected size and hash. A sha256 already verified for the same
 * size and modification time (recorded in persam-db's cache) is trusted unless `full`.
 */
async function checkFile(
  store: { persamDir: string },
  path: string,
  expected: Expected,
  full: boolean,
): Promise<FileCheck> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile()) return { ok: false, problem: "missing", hashed: false };
  if (expected.size !== undefined && s.size !== expected.size) {
    return { ok: false, problem: `size ${s.size} bytes, expected ${expected.size}`, hashed: false };
  }
  if (expected.sha256 !== undefined) {
    const mark = markPath(store, path);
    if (!full) {
      const m = JSON.parse(await readFile(mark, "utf8").catch(() => "null")) as VerifiedMark | null;
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
    const mark2: VerifiedMark = { path: resolve(path), size: s.size, mtimeMs: s.mtimeMs, sha256 };
    await writeAtomic(mark, JSON.stringify(mark2)).catch(() => undefined);
    return { ok: true, problem: undefined, hashed: true };
  }
  if (expected.gitOid !== undefined) {
    const { gitOid } = await hashFile(path, s.size);
    if (gitOid !== expected.gitOid)
      return { ok: false, problem: `git oid differs from ${expected.gitOid}`, hashed: true };
    return { ok: true, problem: undefined, hashed: true };
  }
  return { ok: true, problem: undefined, hashed: false };
}

/** The blob a snapshot entry links to (its name is the etag: sha256 for LFS files, git oid otherwise). */
async function linkedEtag(snapshotFile: string): Promise<string | undefined> {
  const l = await lstat(snapshotFile).catch(() => undefined);
  if (!l?.isSymbolicLink()) return undefined;
  const target = await readlink(snapshotFile).catch(() => undefined);
  return target === undefined ? undefined : basename(target);
}

function expectedFrom(file: RegistryFile, etag: string | undefined): Expected {
  return {
    size: file.size,
    sha256: file.sha256 ?? (etag !== undefined && SHA256_RE.test(etag) ? etag : undefined),
    gitOid: file.sha256 === undefined && etag !== undefined && GIT_OID_RE.test(etag) ? etag : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Whole files into the HF cache

/** Make sure `file` of `repo` at `sha` is in the HF cache and valid; returns its snapshot path. */
async function ensureRepoFile(
  store: Store,
  entry: ModelEntry,
  target: { repo: string; folder: string; sha: string; file: RegistryFile },
): Promise<string> {
  const { repo, folder, sha, file } = target;
  const snap = join(folder, "snapshots", sha, ...file.path.split("/"));
  const cached = await checkFile(store, snap, expectedFrom(file, await linkedEtag(snap)), false);
  if (cached.ok) return snap;
  if (store.offline) {
    if (cached.problem === "missing") throw notCached(store, entry);
    throw new UserError(
      `cached ${repo}/${file.path} is damaged (${cached.problem}) and HF_HUB_OFFLINE is set`,
      {
        hint: `unset HF_HUB_OFFLINE and run 'persam-db models pull ${entry.id}' to fetch it again`,
      },
    );
  }
  let info: Awaited<ReturnType<typeof getPathsInfo>>[number] | undefined;
  try {
    [info] = await getPathsInfo({
      ...store.conn,
      repo: { type: "model", name: repo },
      revision: sha,
      paths: [file.path],
    });
  } catch (error) {
    if (isUnreachable(error) && cached.problem === "missing") throw notCached(store, entry, error);
    throw error;
  }
  if (info?.type !== "file" || info.etag === undefined) {
    throw new UserError(`${repo} has no file ${file.path} at commit ${sha.slice(0, 7)}`, {
      hint: "the model registry entry is wrong; report it",
    });
  }
  if (
    (file.size !== undefined && file.size !== info.size) ||
    (file.sha256 !== undefined && info.lfsSha256 !== undefined && file.sha256 !== info.lfsSha256)
  ) {
    throw new UserError(
      `${repo}/${file.path}@${sha.slice(0, 7)} differs from the model registry (size or sha256)`,
      {
        hint: "the Hub file does not match the recorded one; report it",
      },
    );
  }
  const expected: Expected = {
    size: info.size,
    sha256: info.lfsSha256 ?? file.sha256,
    gitOid: info.lfsSha256 === undefined ? info.oid : undefined,
  };
  const blob = join(folder, "blobs", info.etag);
  const blobCheck = await checkFile(store, blob, expected, false);
  if (!blobCheck.ok) {
    await rm(blob, { force: true });
    await downloadBlob(store, { repo, sha, path: file.path, blob, expected });
  }
  await linkSnapshot(blob, snap);
  return snap;
}

/** Link `snap` to `blob` (relative symlink as huggingface_hub does; a copy where links fail). */
async function linkSnapshot(blob: string, snap: string): Promise<void> {
  await mkdir(dirname(snap), { recursive: true });
  await rm(snap, { force: true });
  try {
    await symlink(relative(dirname(snap), blob), snap);
  } catch {
    await copyFile(blob, snap);
  }
}

/**
 * Download a whole file with range requests into `<blob>.incomplete` (resuming a previous partial
 * file), verify size and hash, then rename to `blob`.
 */
async function downloadBlob(
  store: Store,
  t: { repo: string; sha: string; path: string; blob: string; expected: Expected },
): Promise<void> {
  const label = `${t.repo}/${t.path}`;
  const hubFile = await openHubFile({
    ...store.conn,
    repo: { type: "model", name: t.repo },
    revision: t.sha,
    path: t.path,
  });
  const total = hubFile.size;
  if (t.expected.size !== undefined && total !== t.expected.size) {
    throw new UserError(`${label}: the Hub serves ${total} bytes but paths-info said ${t.expected.size}`, {
      hint: "run again; if it persists, check HF_ENDPOINT",
    });
  }
  const incomplete = `${t.blob}.incomplete`;
  await mkdir(dirname(t.blob), { recursive: true });
  const sha = createHash("sha256");
  const git = t.expected.gitOid !== undefined ? createHash("sha1").update(`blob ${total}\0`) : undefined;
  let offset = 0;
  const partial = await stat(incomplete).catch(() => undefined);
  if (partial && partial.size > 0 && partial.size <= total) {
    // Resume: hash what is there; the final hash check covers the whole file.
    for await (const chunk of createReadStream(incomplete)) {
      sha.update(chunk as Buffer);
      git?.update(chunk as Buffer);
    }
    offset = partial.size;
  }
  const fh = await open(incomplete, offset > 0 ? "a" : "w");
  const started = Date.now();
  const resumedFrom = offset;
  const report = (done: boolean) => {
    const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
    store.onProgress?.({
      file: label,
      loaded: offset,
      total,
      bytesPerSecond: (offset - resumedFrom) / seconds,
      done,
    });
  };
  try {
    report(false);
    while (offset < total) {
      const end = Math.min(total, offset + store.chunkBytes);
      const bytes = await hubFile.read(offset, end);
      await fh.write(bytes, 0, bytes.length);
      sha.update(bytes);
      git?.update(bytes);
      offset = end;
      store.downloaded += bytes.length;
      report(offset >= total);
    }
    if (total === 0) report(true);
  } finally {
    await fh.close();
  }
  const digest = sha.digest("hex");
  const gitOid = git?.digest("hex");
  const bad =
    (t.expected.sha256 !== undefined && digest !== t.expected.sha256) ||
    (t.expected.gitOid !== undefined && gitOid !== t.expected.gitOid);
  if (bad) {
    await unlink(incomplete).catch(() => undefined);
    throw new UserError(
      `${label}: the downloaded bytes do not match the Hub's hash (sha256 ${digest.slice(0, 12)}…)`,
      {
        hint: "run again; the partial file was deleted",
      },
    );
  }
  await rename(incomplete, t.blob);
  if (t.expected.sha256 !== undefined) {
    const s = await stat(t.blob);
    const mark: VerifiedMark = { path: resolve(t.blob), size: s.size, mtimeMs: s.mtimeMs, sha256: digest };
    await writeAtomic(markPath(store, t.blob), JSON.stringify(mark)).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoder tensors out of a checkpoint

/** The JSON sidecar written beside an extracted decoder. */
export interface DecoderSidecar {
  readonly sourceRepo: string;
  readonly revision: string;
  readonly path: string;
  /** ETag of the source file (its sha256 for LFS files). */
  readonly etag: string;
  readonly fileSize: number;
  readonly headerLength: number;
  /** Absolute byte ranges `[begin, end)` fetched from the source file. */
  readonly byteRanges: ReadonlyArray<readonly [number, number]>;
  readonly tensors: number;
  /** sha256 of decoder.safetensors. */
  readonly sha256: string;
  readonly createdAt: string;
}

/** Paths of the decoder extracted from `repo` at `sha`. */
export function extractedDecoderPaths(params: { persamCacheDir: string; repo: string; sha: string }): {
  file: string;
  sidecar: string;
} {
  const dir = join(decoderFolder(params.persamCacheDir, params.repo), params.sha);
  return { file: join(dir, "decoder.safetensors"), sidecar: join(dir, "decoder.json") };
}

/** Check an extracted decoder against its sidecar (sha256, header, tensor count). */
async function checkExtracted(file: string, sidecarPath: string): Promise<FileCheck> {
  const sidecar = JSON.parse(
    await readFile(sidecarPath, "utf8").catch(() => "null"),
  ) as DecoderSidecar | null;
  if (!sidecar) return { ok: false, problem: "missing", hashed: false };
  const s = await stat(file).catch(() => undefined);
  if (!s?.isFile()) return { ok: false, problem: "missing", hashed: false };
  const { sha256 } = await hashFile(file);
  if (sha256 !== sidecar.sha256)
    return { ok: false, problem: "sha256 differs from decoder.json", hashed: true };
  try {
    const header = await readSafetensorsHeader(file);
    if (header.tensors.size !== sidecar.tensors)
      return { ok: false, problem: "tensor count differs", hashed: true };
  } catch (error) {
    return { ok: false, problem: error instanceof Error ? error.message : String(error), hashed: true };
  }
  return { ok: true, problem: undefined, hashed: true };
}

/**
 * The decoder weights of the model: the full checkpoint if it is already in the HF cache (for
 * example downloaded by Python), else a decoder-only safetensors in persam-db's cache, extracted
 * with one range request (per contiguous run of decoder tensors) from the Hub.
 */
async function ensureDecoder(store: Store, entry: ModelEntry, sha: string): Promise<string> {
  const d = entry.decoder;
  const folder = hfRepoFolder(store.cacheDir, d.repo);
  const snap = join(folder, "snapshots", sha, ...d.path.split("/"));
  if ((await lstat(snap).catch(() => undefined)) !== undefined) {
    const check = await checkFile(store, snap, expectedFrom(d, await linkedEtag(snap)), false);
    if (check.ok) return snap;
  }
  const { file, sidecar } = extractedDecoderPaths({ persamCacheDir: store.persamDir, repo: d.repo, sha });
  const existing = await checkExtracted(file, sidecar);
  if (existing.ok) return file;
  if (store.offline) throw notCached(store, entry);
  try {
    await extractDecoder(store, {
      repo: d.repo,
      sha,
      path: d.path,
      size: d.size,
      sha256: d.sha256,
      file,
      sidecar,
    });
  } catch (error) {
    if (isUnreachable(error)) throw notCached(store, entry, error);
    throw error;
  }
  return file;
}

interface TensorSlice {
  name: string;
  dtype: string;
  shape: readonly number[];
  /** Absolute offsets in the source file. */
  begin: number;
  end: number;
}

async function extractDecoder(
  store: Store,
  t: {
    repo: string;
    sha: string;
    path: string;
    size: number | undefined;
    sha256: string | undefined;
    file: string;
    sidecar: string;
  },
): Promise<void> {
  const label = `${t.repo}/${t.path}`;
  const hubFile = await openHubFile({
    ...store.conn,
    repo: { type: "model", name: t.repo },
    revision: t.sha,
    path: t.path,
  });
  if (t.size !== undefined && hubFile.size !== t.size) {
    throw new UserError(
      `${label}@${t.sha.slice(0, 7)} is ${hubFile.size} bytes, the registry says ${t.size}`,
      {
        hint: "the registry entry is wrong; report it",
      },
    );
  }
  if (t.sha256 !== undefined && SHA256_RE.test(hubFile.etag) && hubFile.etag !== t.sha256) {
    throw new UserError(
      `${label}@${t.sha.slice(0, 7)} has sha256 ${hubFile.etag.slice(0, 12)}…, not the registry's`,
      {
        hint: "the registry entry is wrong; report it",
      },
    );
  }
  const prefix = await hubFile.read(0, Math.min(8, hubFile.size));
  const headerLength = safetensorsHeaderLength(prefix, label);
  if (8 + headerLength > hubFile.size) {
    throw new UserError(`${label}: the safetensors header runs past the end of the file`, {
      hint: "the checkpoint is not a valid safetensors file",
    });
  }
  const headerBytes = await hubFile.read(8, 8 + headerLength);
  const all = new Uint8Array(8 + headerLength);
  all.set(prefix, 0);
  all.set(headerBytes, 8);
  const header: SafetensorsHeader = parseSafetensorsHeader(all, { source: label, fileSize: hubFile.size });
  const range = decoderByteRange(header, label);
  const slices: TensorSlice[] = [...header.tensors]
    .filter(([name]) => isDecoderTensor(name))
    .map(([name, e]) => ({
      name,
      dtype: e.dtype,
      shape: e.shape,
      begin: header.dataStart + e.begin,
      end: header.dataStart + e.end,
    }))
    .sort((a, b) => a.begin - b.begin);
  // One request for the whole span, or one per run between foreign tensors (checked, not assumed).
  const runs: Array<[number, number]> = [];
  let cursor = range.begin;
  for (const gap of range.gaps) {
    if (gap.begin > cursor) runs.push([cursor, gap.begin]);
    cursor = Math.max(cursor, gap.end);
  }
  if (cursor < range.end) runs.push([cursor, range.end]);
  const wanted = runs.reduce((n, [b, e]) => n + (e - b), 0);
  const chunks: Array<{ begin: number; bytes: Uint8Array }> = [];
  let loaded = 0;
  const started = Date.now();
  for (const [b, e] of runs) {
    const bytes = await hubFile.read(b, e);
    chunks.push({ begin: b, bytes });
    loaded += bytes.length;
    store.downloaded += bytes.length;
    const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
    store.onProgress?.({
      file: label,
      loaded,
      total: wanted,
      bytesPerSecond: loaded / seconds,
      done: loaded >= wanted,
    });
  }
  const bytesOf = (s: TensorSlice): Uint8Array => {
    const c = chunks.find((x) => s.begin >= x.begin && s.end <= x.begin + x.bytes.length);
    if (!c) throw new Error(`tensor ${s.name} is not inside the fetched ranges`);
    return c.bytes.subarray(s.begin - c.begin, s.end - c.begin);
  };
  const out = buildSafetensors(
    slices.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, bytes: bytesOf(s) })),
    { format: "pt", source: `${t.repo}@${t.sha}/${t.path}` },
  );
  await writeAtomic(t.file, out);
  // Verify what was written by reading it back as a safetensors file.
  const back = await readSafetensorsHeader(t.file);
  if (back.tensors.size !== slices.length) {
    await rm(t.file, { force: true });
    throw new Error(
      `extracted decoder ${t.file} has ${back.tensors.size} tensors, expected ${slices.length}`,
    );
  }
  const sidecar: DecoderSidecar = {
    sourceRepo: t.repo,
    revision: t.sha,
    path: t.path,
    etag: hubFile.etag,
    fileSize: hubFile.size,
    headerLength,
    byteRanges: runs,
    tensors: slices.length,
    sha256: createHash("sha256").update(out).digest("hex"),
    createdAt: new Date().toISOString(),
  };
  await writeAtomic(t.sidecar, `${JSON.stringify(sidecar, null, 2)}\n`);
}

/**
 * Serialize raw tensors (bytes kept as they are, any dtype) as safetensors: contiguous offsets in
 * the given order, JSON header padded with spaces to a multiple of 8 bytes.
 */
function buildSafetensors(
  tensors: ReadonlyArray<{ name: string; dtype: string; shape: readonly number[]; bytes: Uint8Array }>,
  metadata: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded + offset, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  let pos = 8 + padded;
  for (const t of tensors) {
    out.set(t.bytes, pos);
    pos += t.bytes.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cache status (models list / verify / path)

/** State of one model file in the caches. */
export interface CachedFileStatus {
  readonly role: "encoder" | "external-data" | "decoder";
  readonly repo: string;
  readonly path: string;
  /** Where it is (or would be) on disk. */
  readonly localPath: string | undefined;
  readonly state: "ok" | "missing" | "damaged";
  readonly problem: string | undefined;
  readonly size: number | undefined;
}

/** Cache state of a model. */
export interface ModelCacheStatus {
  readonly modelId: string;
  readonly variant: ModelVariant;
  /** True when every file is present and valid. */
  readonly cached: boolean;
  readonly revision: { readonly encoder: string | undefined; readonly decoder: string | undefined };
  readonly files: readonly CachedFileStatus[];
}

/**
 * Which files of a model are in the caches, without any network access. `full` re-hashes every
 * file (`models verify`); otherwise a hash already verified for the same size and time is trusted.
 * @throws {UserError} unknown model or variant
 */
export async function modelCacheStatus(
  params: Pick<ModelStoreOptions, "cacheDir" | "persamCacheDir" | "registry"> & {
    modelId: string;
    /** @default "fp32" */
    variant?: ModelVariant;
    /** @default false */
    full?: boolean;
  },
): Promise<ModelCacheStatus> {
  const registry = params.registry ?? loadModelRegistry();
  const entry = findModel({ registry, id: params.modelId });
  const variant = params.variant ?? "fp32";
  const spec = encoderVariant({ entry, variant });
  const cacheDir = params.cacheDir ?? hubConfig().cacheDir;
  const persamDir = params.persamCacheDir ?? defaultPersamCacheDir();
  const store = { persamDir };
  const full = params.full ?? false;
  const files: CachedFileStatus[] = [];

  const encFolder = hfRepoFolder(cacheDir, entry.encoder.repo);
  const encSha = entry.encoder.pinned
    ? entry.encoder.revision
    : await readRef(join(encFolder, "refs"), entry.encoder.revision);
  const encFiles: Array<[CachedFileStatus["role"], RegistryFile]> = [
    ["encoder", spec],
    ...(spec.externalData
      ? [["external-data", spec.externalData] as [CachedFileStatus["role"], RegistryFile]]
      : []),
  ];
  for (const [role, file] of encFiles) {
    const local =
      encSha === undefined ? undefined : join(encFolder, "snapshots", encSha, ...file.path.split("/"));
    const check = local
      ? await checkFile(store, local, expectedFrom(file, await linkedEtag(local)), full)
      : { ok: false, problem: "missing", hashed: false };
    files.push(fileStatus(role, entry.encoder.repo, file.path, local, check, file.size));
  }

  const d = entry.decoder;
  const decRefs = join(decoderFolder(persamDir, d.repo), "refs");
  const decFolder = hfRepoFolder(cacheDir, d.repo);
  const decSha = d.pinned
    ? d.revision
    : ((await readRef(decRefs, d.revision)) ?? (await readRef(join(decFolder, "refs"), d.revision)));
  let decoder: CachedFileStatus = fileStatus(
    "decoder",
    d.repo,
    d.path,
    undefined,
    { ok: false, problem: "missing", hashed: false },
    d.size,
  );
  if (decSha !== undefined) {
    const snap = join(decFolder, "snapshots", decSha, ...d.path.split("/"));
    const extracted = extractedDecoderPaths({ persamCacheDir: persamDir, repo: d.repo, sha: decSha });
    if ((await lstat(snap).catch(() => undefined)) !== undefined) {
      const check = await checkFile(store, snap, expectedFrom(d, await linkedEtag(snap)), full);
      decoder = fileStatus("decoder", d.repo, d.path, snap, check, d.size);
    }
    if (decoder.state !== "ok") {
      const check = await checkExtracted(extracted.file, extracted.sidecar);
      if (check.ok || decoder.localPath === undefined) {
        decoder = fileStatus("decoder", d.repo, d.path, extracted.file, check, undefined);
      }
    }
  }
  files.push(decoder);
  return {
    modelId: entry.id,
    variant,
    cached: files.every((f) => f.state === "ok"),
    revision: { encoder: encSha, decoder: decSha },
    files,
  };
}

function fileStatus(
  role: CachedFileStatus["role"],
  repo: string,
  path: string,
  localPath: string | undefined,
  check: FileCheck,
  size: number | undefined,
): CachedFileStatus {
  return {
    role,
    repo,
    path,
    localPath,
    state: check.ok ? "ok" : check.problem === "missing" ? "missing" : "damaged",
    problem: check.ok || check.problem === "missing" ? undefined : check.problem,
    size,
  };
}
