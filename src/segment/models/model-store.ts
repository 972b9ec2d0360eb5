// Registry models on disk: which files make a model (encoder variant, every external-data file its
// graph names, the decoder tensors of the same checkpoint), found in or downloaded into the standard
// Hugging Face cache at pinned commits (src/hub/ owns the cache layout and the downloads), the
// decoder cut out of a checkpoint with range requests into persam-db's cache, offline use, and the
// encoder/decoder checkpoint-match check.

import { createHash } from "node:crypto";
import { lstat, mkdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { persamCacheDir as defaultPersamCacheDir, hubConfig } from "../../config.js";
import { UserError } from "../../errors.js";
import { type DownloadProgress, downloadToCache, openHubFile } from "../../hub/download-file.js";
import {
  blobPath,
  checkFile,
  type ExpectedFile,
  expectedFromEtag,
  type FileCheck,
  findCachedFile,
  hfRepoFolder,
  linkedEtag,
  linkSnapshot,
  readRefFile,
  snapshotPath,
  writeRefFile,
} from "../../hub/hf-cache.js";
import { getPathsInfo, type HubConnection, HubUserError, resolveRevision } from "../../hub/hub-api.js";
import type { HubHttpOptions } from "../../hub/hub-fetch.js";
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
import { externalDataLocations, externalDataRepoPath } from "./external-data.js";
import {
  encoderVariant,
  findModel,
  isCommitSha,
  loadModelRegistry,
  type ModelEntry,
  type ModelRegistry,
  type ModelVariant,
  type RegistryFile,
  type RegistryVariant,
} from "./model-registry.js";

export type { DownloadProgress } from "../../hub/download-file.js";
export type { FileCheck } from "../../hub/hf-cache.js";
export { hfRepoFolder } from "../../hub/hf-cache.js";

/** Where to look for and put model files, and how to reach the Hub. */
export interface ModelStoreOptions {
  /** Never touch the network (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE). @default hubConfig().offline */
  offline?: boolean;
  /** Hugging Face hub cache folder. @default hubConfig().cacheDir */
  cacheDir?: string;
  /** persam-db's cache (extracted decoders, verification marks). @default persamCacheDir() */
  persamCacheDir?: string;
  /** Hub endpoint. @default hubConfig().endpoint */
  endpoint?: string;
  /** Hub token. @default hubConfig().token */
  token?: string;
  /** fetch under the Hub fetch (tests). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Time limits and retries of Hub requests. @default DEFAULT_HUB_HTTP, idle limit from hubConfig() */
  http?: HubHttpOptions;
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
  /** External-data files of the encoder, beside it (empty for a self-contained graph). */
  readonly externalDataPaths: readonly string[];
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
  /** Verification marks (see checkFile). */
  readonly marksDir: string;
  readonly conn: HubConnection;
  readonly onProgress: ((p: DownloadProgress) => void) | undefined;
  readonly chunkBytes: number;
  downloaded: number;
}

const DEFAULT_CHUNK = 8 * 1024 * 1024;
const SHA256_RE = /^[0-9a-f]{64}$/;

function makeStore(o: ModelStoreOptions): Store {
  const needsEnv =
    o.offline === undefined ||
    o.cacheDir === undefined ||
    o.endpoint === undefined ||
    o.token === undefined ||
    o.http === undefined;
  const env = needsEnv ? hubConfig() : undefined;
  const token = o.token ?? env?.token;
  const persamDir = o.persamCacheDir ?? defaultPersamCacheDir();
  const idle = env?.idleTimeoutMs;
  return {
    offline: o.offline ?? env?.offline ?? false,
    cacheDir: o.cacheDir ?? env!.cacheDir,
    persamDir,
    marksDir: join(persamDir, "verified"),
    conn: {
      endpoint: o.endpoint ?? env?.endpoint,
      ...(token === undefined ? {} : { token }),
      ...(o.fetch === undefined ? {} : { fetch: o.fetch }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      http: o.http ?? (idle === undefined ? {} : { idleTimeoutMs: idle }),
      quiet: o.quiet ?? false,
    },
    onProgress: o.onProgress,
    chunkBytes: o.chunkBytes ?? DEFAULT_CHUNK,
    downloaded: 0,
  };
}

/** persam-db's folder for decoders extracted from `repo`. */
function decoderFolder(persamDir: string, repo: string): string {
  return join(persamDir, "decoders", repo.split("/").join("--"));
}

/**
 * Local paths of a model's encoder (with every external-data file its graph names) and decoder
 * weights: the two given files, or a registry model found in (or downloaded into) the Hugging Face
 * cache at its pinned commit. A file another tool fetched at another commit (Python's
 * huggingface_hub under `refs/main`) is used when it has the registry's sha256. A branch revision
 * (`pinned: false`) is resolved to a commit with the Hub and recorded as `refs/<branch>`; offline,
 * the recorded commit is used. Downloads are verified (size, sha256 or git oid) before use, go to
 * `<blob>.incomplete` first (resumed on the next run, never trusted until verified), and cached
 * files whose size or hash no longer match are fetched again.
 * @throws {UserError} unknown model or variant; missing local file or external-data file; model not
 *   cached while offline or the Hub is unreachable; Hub errors (401/403/404/5xx, time limits,
 *   interrupted transfers) as one line
 */
export async function resolveModelFiles(params: ResolveModelFilesParams): Promise<ModelFiles> {
  if (params.encoderPath !== undefined || params.decoderPath !== undefined) {
    return localModelFiles(params);
  }
  const registry = params.registry ?? loadModelRegistry();
  const entry = findModel({ registry, id: params.modelId ?? registry.defaultId });
  const variant = params.variant ?? "fp32";
  const spec = encoderVariant({ entry, variant });
  const store = makeStore(params);
  const encFolder = hfRepoFolder(store.cacheDir, entry.encoder.repo);

  const encSha = await resolveSha(store, entry, {
    repo: entry.encoder.repo,
    revision: entry.encoder.revision,
    refsDir: join(encFolder, "refs"),
  });
  const encoder = await ensureRepoFile(store, entry, { repo: entry.encoder.repo, sha: encSha, file: spec });
  const externalDataPaths = await ensureExternalData(store, entry, {
    sha: encoder.sha,
    spec,
    encoderPath: encoder.path,
  });
  const decSha = await resolveSha(store, entry, {
    repo: entry.decoder.repo,
    revision: entry.decoder.revision,
    refsDir: join(decoderFolder(store.persamDir, entry.decoder.repo), "refs"),
    // A checkpoint downloaded by Python records its branch head in the HF cache.
    otherRefsDirs: [join(hfRepoFolder(store.cacheDir, entry.decoder.repo), "refs")],
  });
  const decoderPath = await ensureDecoder(store, entry, decSha);
  return {
    encoderPath: encoder.path,
    externalDataPaths,
    decoderPath,
    modelId: entry.id,
    variant,
    revision: { encoder: encoder.sha, decoder: decSha },
    pinned: entry.encoder.pinned && entry.decoder.pinned,
    downloadedBytes: store.downloaded,
  };
}

/** The two given files, checked: both exist, and every external-data file the encoder names is beside it. */
async function localModelFiles(params: ResolveModelFilesParams): Promise<ModelFiles> {
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
    if (!s?.isFile()) throw new UserError(`${flag} file ${path} does not exist`, { hint: "check the path" });
  }
  const encoderPath = resolve(params.encoderPath);
  const externalDataPaths: string[] = [];
  for (const location of await graphLocations(encoderPath)) {
    const path = join(dirname(encoderPath), ...location.split("/"));
    const s = await stat(path).catch(() => undefined);
    if (!s?.isFile()) {
      throw new UserError(
        `--encoder file ${encoderPath} keeps weights in the external-data file '${location}', which is not beside it (${path})`,
        { hint: "copy every file the model was exported with into the encoder's folder" },
      );
    }
    externalDataPaths.push(path);
  }
  return {
    encoderPath,
    externalDataPaths,
    decoderPath: resolve(params.decoderPath),
    modelId: undefined,
    variant: undefined,
    revision: undefined,
    pinned: true,
    downloadedBytes: 0,
  };
}

/**
 * The external-data locations a graph names, or none when the file is not an ONNX graph this walk
 * can read (onnxruntime then reports the file itself when it loads it).
 */
async function graphLocations(path: string): Promise<string[]> {
  try {
    return await externalDataLocations(path);
  } catch (error) {
    if (error instanceof UserError) return [];
    throw error;
  }
}

function offlineWhy(store: Store): string {
  return store.offline
    ? "offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)"
    : "the Hub is unreachable";
}

function notCached(store: Store, entry: ModelEntry, cause?: unknown): UserError {
  return new UserError(
    `model '${entry.id}' is not in the Hugging Face cache (${store.cacheDir}) and ${offlineWhy(store)}`,
    {
      hint: `run 'persam-db models pull ${entry.id}' on a connected machine (or copy its cache folder here), or pass --encoder FILE.onnx --decoder FILE.safetensors`,
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

function isUnreachable(error: unknown): boolean {
  return error instanceof HubUserError && (error.kind === "network" || error.kind === "offline");
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
  let recorded = await readRefFile(ref.refsDir, ref.revision);
  for (const dir of ref.otherRefsDirs ?? []) recorded ??= await readRefFile(dir, ref.revision);
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
    if (sha !== recorded) await writeRefFile(ref.refsDir, ref.revision, sha);
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
// Whole files into the HF cache

function expectedFrom(file: RegistryFile, etag: string | undefined): ExpectedFile {
  const fromEtag = expectedFromEtag(etag);
  return {
    size: file.size,
    sha256: file.sha256 ?? fromEtag.sha256,
    gitOid: file.sha256 === undefined ? fromEtag.gitOid : undefined,
  };
}

/** What a file is to the model, for messages. */
interface FileRole {
  /** `external-data file onnx/w2.bin of onnx/graph.onnx`; undefined for the encoder itself. */
  readonly describe?: string | undefined;
  /** Look for the same bytes under other commits (refs) of the cache. @default true */
  readonly refs?: boolean | undefined;
}

/**
 * Make sure `file` of `repo` at `sha` is in the HF cache and valid: in `snapshots/<sha>`, else (with
 * a registry sha256) in the snapshot of any recorded ref, else downloaded.
 * @returns the snapshot path and the commit of the snapshot it is in
 */
async function ensureRepoFile(
  store: Store,
  entry: ModelEntry,
  target: { repo: string; sha: string; file: RegistryFile },
  role: FileRole = {},
): Promise<{ path: string; sha: string }> {
  const { repo, sha, file } = target;
  const what = role.describe ?? `${repo}/${file.path}`;
  const snap = snapshotPath({ cacheDir: store.cacheDir, repo, sha, path: file.path });
  const cached = await checkFile({
    path: snap,
    expected: expectedFrom(file, await linkedEtag(snap)),
    marksDir: store.marksDir,
  });
  if (cached.ok) return { path: snap, sha };
  if (file.sha256 !== undefined && role.refs !== false) {
    // The same bytes fetched by another tool under a branch (Python's huggingface_hub: refs/main).
    const other = await findCachedFile({
      cacheDir: store.cacheDir,
      repo,
      sha: undefined,
      path: file.path,
      expected: { size: file.size, sha256: file.sha256 },
      marksDir: store.marksDir,
    });
    if (other) return { path: other.path, sha: other.sha };
  }
  if (store.offline) {
    if (cached.problem === "missing") {
      if (role.describe === undefined) throw notCached(store, entry);
      throw new UserError(
        `model '${entry.id}': ${what} is not in the Hugging Face cache (${store.cacheDir}) and ${offlineWhy(store)}`,
        {
          hint: `run 'persam-db models pull ${entry.id}' on a connected machine (or copy the file into ${dirname(snap)})`,
        },
      );
    }
    throw new UserError(`cached ${what} is damaged (${cached.problem}) and ${offlineWhy(store)}`, {
      hint: `unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE and run 'persam-db models pull ${entry.id}' to fetch it again`,
    });
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
    if (role.describe !== undefined) {
      throw new UserError(
        `model '${entry.id}' needs ${what}, which ${repo} does not have at commit ${sha.slice(0, 7)}`,
        {
          hint: "the export is incomplete; report it, or pass --encoder with a local copy of every file",
        },
      );
    }
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
  const expected: ExpectedFile = {
    size: info.size,
    sha256: info.lfsSha256 ?? file.sha256,
    gitOid: info.lfsSha256 === undefined && file.sha256 === undefined ? info.oid : undefined,
  };
  const blob = blobPath({ cacheDir: store.cacheDir, repo, etag: info.etag });
  const blobCheck = await checkFile({ path: blob, expected, marksDir: store.marksDir });
  if (!blobCheck.ok) {
    await rm(blob, { force: true });
    store.downloaded += await downloadToCache({
      ...store.conn,
      repo: { type: "model", name: repo },
      revision: sha,
      path: file.path,
      blob,
      expected,
      chunkBytes: store.chunkBytes,
      marksDir: store.marksDir,
      onProgress: store.onProgress,
    });
  }
  await linkSnapshot(blob, snap);
  return { path: snap, sha };
}

/**
 * Every external-data file of the encoder at `encoderPath` (snapshot of `sha`): the ones the registry
 * lists and the ones the graph names, each in the same snapshot folder as the graph (onnxruntime
 * looks for them beside it).
 * @returns their snapshot paths
 */
async function ensureExternalData(
  store: Store,
  entry: ModelEntry,
  target: { sha: string; spec: RegistryVariant; encoderPath: string },
): Promise<string[]> {
  const { spec } = target;
  const named = (await graphLocations(target.encoderPath)).map((location) =>
    externalDataRepoPath({ modelPath: spec.path, location }),
  );
  const paths = [...new Set([...spec.externalData.map((f) => f.path), ...named])];
  const out: string[] = [];
  for (const path of paths) {
    const file = spec.externalData.find((f) => f.path === path) ?? { path };
    const got = await ensureRepoFile(
      store,
      entry,
      { repo: entry.encoder.repo, sha: target.sha, file },
      { describe: `the external-data file ${path} of ${spec.path}`, refs: false },
    );
    out.push(got.path);
  }
  return out;
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
  const snap = snapshotPath({ cacheDir: store.cacheDir, repo: d.repo, sha, path: d.path });
  if ((await lstat(snap).catch(() => undefined)) !== undefined) {
    const check = await checkFile({
      path: snap,
      expected: expectedFrom(d, await linkedEtag(snap)),
      marksDir: store.marksDir,
    });
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
  const marksDir = join(persamDir, "verified");
  const full = params.full ?? false;
  const files: CachedFileStatus[] = [];
  const check = async (path: string | undefined, file: RegistryFile): Promise<FileCheck> =>
    path === undefined
      ? { ok: false, problem: "missing", hashed: false }
      : checkFile({ path, expected: expectedFrom(file, await linkedEtag(path)), marksDir, full });

  // The encoder: at its commit, else the same bytes under another recorded commit (findCachedFile).
  const encRepo = entry.encoder.repo;
  let encSha = entry.encoder.pinned
    ? entry.encoder.revision
    : await readRefFile(join(hfRepoFolder(cacheDir, encRepo), "refs"), entry.encoder.revision);
  let encPath =
    encSha === undefined
      ? undefined
      : snapshotPath({ cacheDir, repo: encRepo, sha: encSha, path: spec.path });
  let encCheck = await check(encPath, spec);
  if (!encCheck.ok && spec.sha256 !== undefined) {
    const other = await findCachedFile({
      cacheDir,
      repo: encRepo,
      sha: undefined,
      path: spec.path,
      expected: { size: spec.size, sha256: spec.sha256 },
      marksDir,
    });
    if (other) {
      encSha = other.sha;
      encPath = other.path;
      encCheck = await check(encPath, spec);
    }
  }
  files.push(fileStatus("encoder", encRepo, spec.path, encPath, encCheck, spec.size));
  const named = encCheck.ok && encPath !== undefined ? await graphLocations(encPath) : [];
  const external = [
    ...new Set([
      ...spec.externalData.map((f) => f.path),
      ...named.map((location) => externalDataRepoPath({ modelPath: spec.path, location })),
    ]),
  ];
  for (const path of external) {
    const file = spec.externalData.find((f) => f.path === path) ?? { path };
    const local =
      encSha === undefined ? undefined : snapshotPath({ cacheDir, repo: encRepo, sha: encSha, path });
    files.push(fileStatus("external-data", encRepo, path, local, await check(local, file), file.size));
  }

  const d = entry.decoder;
  const decRefs = join(decoderFolder(persamDir, d.repo), "refs");
  const decFolder = hfRepoFolder(cacheDir, d.repo);
  const decSha = d.pinned
    ? d.revision
    : ((await readRefFile(decRefs, d.revision)) ?? (await readRefFile(join(decFolder, "refs"), d.revision)));
  let decoder: CachedFileStatus = fileStatus(
    "decoder",
    d.repo,
    d.path,
    undefined,
    { ok: false, problem: "missing", hashed: false },
    d.size,
  );
  if (decSha !== undefined) {
    const snap = snapshotPath({ cacheDir, repo: d.repo, sha: decSha, path: d.path });
    const extracted = extractedDecoderPaths({ persamCacheDir: persamDir, repo: d.repo, sha: decSha });
    if ((await lstat(snap).catch(() => undefined)) !== undefined) {
      decoder = fileStatus("decoder", d.repo, d.path, snap, await check(snap, d), d.size);
    }
    if (decoder.state !== "ok") {
      const extract = await checkExtracted(extracted.file, extracted.sidecar);
      if (extract.ok || decoder.localPath === undefined) {
        decoder = fileStatus("decoder", d.repo, d.path, extracted.file, extract, undefined);
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
