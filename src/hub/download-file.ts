// Files read from the Hub with our own range requests through the Hub fetch: a file opened for
// ranged reads (the resolve URL, then the storage URL it redirects to, resolved again once when a
// signed URL expires), and a verified, resumable download of a whole file into the HF cache.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { UserError } from "../errors.js";
import { type ExpectedFile, rememberVerified } from "./hf-cache.js";
import {
  connectionFetch,
  endpointOf,
  type HubConnection,
  type HubRepo,
  normalizeEtag,
  repoPath,
  shortRev,
} from "./hub-connection.js";
import { HubStatusError, HubUserError, NOT_HUB_API, toHubUserError } from "./hub-errors.js";

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

/** A file on the Hub opened for ranged reads: one probe request, then one request per read. */
export interface HubFile {
  readonly size: number;
  /** ETag without quotes: sha256 for LFS files, git oid otherwise. */
  readonly etag: string;
  /** Bytes `[start, end)`; one HTTP range request (two when a signed URL expired). */
  read(start: number, end: number): Promise<Uint8Array>;
}

/** Statuses with which a storage server refuses a signed URL that has expired. */
const EXPIRED = new Set([401, 403, 410]);

function parseContentRange(value: string | null): { start: number; end: number; size: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(value?.trim() ?? "");
  return m ? { start: Number(m[1]), end: Number(m[2]), size: Number(m[3]) } : undefined;
}

/**
 * Open a file of a repo at a revision for ranged reads over plain HTTP (never Xet). The probe asks
 * the endpoint's `resolve/` URL for byte 0, following its redirect to storage; later reads go
 * straight to the storage URL it landed on. When storage refuses that URL (401/403/410: a signed URL
 * that expired during a long download), the read asks the endpoint once more and carries on from the
 * same offset; a refusal right after that is an error.
 * @throws HubUserError kind "not-found" when the file does not exist; other Hub failures as one line
 */
export async function openHubFile(
  params: HubConnection & { repo: HubRepo; revision: string; path: string },
): Promise<HubFile> {
  const what = `download of ${params.repo.name}/${params.path}@${shortRev(params.revision)}`;
  const endpoint = endpointOf(params);
  const hubFetch = connectionFetch(params);
  const resolveUrl = `${endpoint}/${repoPath(params.repo)}/resolve/${encodeURIComponent(params.revision)}/${params.path
    .split("/")
    .map(encodeURIComponent)
    .join("/")}`;
  const headers = (range: string): Record<string, string> => ({
    Range: range,
    Accept: "*/*",
    ...(params.token ? { Authorization: `Bearer ${params.token}` } : {}),
  });
  const fail = (error: unknown) => toHubUserError(error, { what, endpoint, token: params.token });

  const endpointOrigin = new URL(endpoint).origin;

  /**
   * Ask the endpoint where the file is: follow redirects that stay on the endpoint, stop at one that
   * leaves it (storage: its URL is signed and carries no credentials). The endpoint's own reply
   * names the content (X-Linked-Etag / X-Linked-Size), as huggingface_hub reads it; storage's ETag
   * is its own.
   */
  const locate = async (
    range: string,
  ): Promise<{
    res: Response;
    storage: string | undefined;
    etag: string | null;
    size: number | undefined;
  }> => {
    let url = resolveUrl;
    for (let hop = 0; hop < 10; hop++) {
      const res = await hubFetch(url, { headers: headers(range), redirect: "manual" });
      const location = res.headers.get("location");
      const etag = res.headers.get("x-linked-etag") ?? res.headers.get("etag");
      const linkedSize = Number(res.headers.get("x-linked-size") ?? Number.NaN);
      if (res.status >= 300 && res.status < 400 && location !== null) {
        const next = new URL(location, url);
        if (next.origin !== endpointOrigin) {
          return {
            res,
            storage: next.href,
            etag,
            size: Number.isFinite(linkedSize) ? linkedSize : undefined,
          };
        }
        url = next.href;
        continue;
      }
      return { res, storage: undefined, etag, size: undefined };
    }
    throw new HubUserError(`${what}: too many redirects on the Hub`, { kind: "bad-response" });
  };

  let located: Awaited<ReturnType<typeof locate>>;
  try {
    located = await locate("bytes=0-0");
  } catch (error) {
    throw fail(error);
  }
  const probe = located.res;
  if (probe.status === 404 && probe.headers.get("x-error-code") === "EntryNotFound") {
    throw new HubUserError(`${what}: not found on the Hub (404: no such file at this revision)`, {
      kind: "not-found",
      status: 404,
      hint: "check the file path and revision in the model registry",
    });
  }
  if (located.storage === undefined && !probe.ok) throw fail(await HubStatusError.from(probe));
  const range = parseContentRange(probe.headers.get("content-range"));
  const size = located.storage !== undefined ? located.size : probe.status === 206 ? range?.size : undefined;
  if (size === undefined || located.etag === null) {
    throw new HubUserError(`${what}: ${NOT_HUB_API} (no file size or ETag in the answer)`, {
      kind: "bad-response",
      hint: `check HF_ENDPOINT (${endpoint}) and the network's login page`,
    });
  }
  const etag = normalizeEtag(located.etag);
  // Later reads go straight to storage (one request each); a file the endpoint serves itself is
  // asked for at the endpoint each time.
  let current = located.storage ?? resolveUrl;
  let freshlyResolved = true;

  const readOnce = async (url: string, start: number, end: number): Promise<Response> =>
    hubFetch(url, { headers: headers(`bytes=${start}-${end - 1}`) });

  return {
    size,
    etag,
    async read(start: number, end: number): Promise<Uint8Array> {
      if (start < 0 || end > size || end < start) {
        throw new RangeError(`Expected a range inside [0, ${size}] but received [${start}, ${end})`);
      }
      if (end === start) return new Uint8Array(0);
      let res: Response;
      try {
        res = await readOnce(current, start, end);
        if (EXPIRED.has(res.status) && current !== resolveUrl && !freshlyResolved) {
          // The signed URL expired: ask the endpoint once more, and read on from the same offset.
          const again = await locate(`bytes=${start}-${end - 1}`);
          current = again.storage ?? resolveUrl;
          freshlyResolved = true;
          res = again.storage === undefined ? again.res : await readOnce(current, start, end);
        }
      } catch (error) {
        throw fail(error);
      }
      if (!res.ok) {
        if (EXPIRED.has(res.status) && current !== resolveUrl) {
          throw new HubUserError(
            `${what}: the storage server refused the download link (${res.status}) even after it was renewed`,
            {
              kind: "forbidden",
              status: res.status,
              hint: "run again; if it persists, check the system clock",
            },
          );
        }
        throw fail(await HubStatusError.from(res));
      }
      freshlyResolved = false;
      const bytes = new Uint8Array(await res.arrayBuffer());
      const got = parseContentRange(res.headers.get("content-range"));
      const whole = res.status === 200 && start === 0 && end === size;
      if (!whole && (res.status !== 206 || got === undefined || got.start !== start || got.end !== end - 1)) {
        throw new HubUserError(`${what}: the server ignored the byte range ${start}-${end - 1}`, {
          kind: "bad-response",
          hint: "run again; if it persists, check HF_ENDPOINT or the proxy in between",
        });
      }
      if (bytes.length !== end - start) {
        throw new HubUserError(`${what}: expected ${end - start} bytes but received ${bytes.length}`, {
          kind: "interrupted",
          hint: "run again; the server may have cut the transfer",
        });
      }
      return bytes;
    },
  };
}

/** Parameters of {@link downloadToCache}. */
export interface DownloadToCacheParams extends HubConnection {
  readonly repo: HubRepo;
  /** A commit id (the content of a branch may change under a long download). */
  readonly revision: string;
  /** Path of the file in the repo. */
  readonly path: string;
  /** The blob to write (`blobs/<etag>` of the HF cache); `<blob>.incomplete` holds a partial download. */
  readonly blob: string;
  /** Size and hash the result must have (from `paths-info` or a registry). */
  readonly expected: ExpectedFile;
  /** Bytes per range request. @default 8 MiB */
  readonly chunkBytes?: number | undefined;
  /** Where to remember the verified sha256 (see checkFile). @default undefined */
  readonly marksDir?: string | undefined;
  /** @default undefined */
  readonly onProgress?: ((progress: DownloadProgress) => void) | undefined;
}

const DEFAULT_CHUNK = 8 * 1024 * 1024;

/**
 * Download a whole file with range requests into `<blob>.incomplete`, resuming what a previous run
 * left there, verify size and hash, then rename it to `blob`. The partial file is never trusted: the
 * final hash covers every byte, and a mismatch deletes it.
 * @returns the bytes transferred by this call
 * @throws UserError when the bytes do not match; HubUserError for Hub failures (the partial file stays)
 */
export async function downloadToCache(params: DownloadToCacheParams): Promise<number> {
  const label = `${params.repo.name}/${params.path}`;
  const hubFile = await openHubFile(params);
  const total = hubFile.size;
  if (params.expected.size !== undefined && total !== params.expected.size) {
    throw new UserError(`${label}: the Hub serves ${total} bytes but ${params.expected.size} were expected`, {
      hint: "run again; if it persists, check HF_ENDPOINT",
    });
  }
  const incomplete = `${params.blob}.incomplete`;
  await mkdir(dirname(params.blob), { recursive: true });
  const sha = createHash("sha256");
  const git = params.expected.gitOid !== undefined ? createHash("sha1").update(`blob ${total}\0`) : undefined;
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
  const chunkBytes = params.chunkBytes ?? DEFAULT_CHUNK;
  const fh = await open(incomplete, offset > 0 ? "a" : "w");
  const started = Date.now();
  const resumedFrom = offset;
  let transferred = 0;
  const report = (done: boolean) => {
    const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
    params.onProgress?.({
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
      const end = Math.min(total, offset + chunkBytes);
      const bytes = await hubFile.read(offset, end);
      await fh.write(bytes, 0, bytes.length);
      sha.update(bytes);
      git?.update(bytes);
      offset = end;
      transferred += bytes.length;
      report(offset >= total);
    }
    if (total === 0) report(true);
  } finally {
    await fh.close();
  }
  const digest = sha.digest("hex");
  const gitOid = git?.digest("hex");
  const bad =
    (params.expected.sha256 !== undefined && digest !== params.expected.sha256) ||
    (params.expected.gitOid !== undefined && gitOid !== params.expected.gitOid);
  if (bad) {
    await unlink(incomplete).catch(() => undefined);
    throw new UserError(
      `${label}: the downloaded bytes do not match the Hub's hash (sha256 ${digest.slice(0, 12)}…)`,
      { hint: "run again; the partial file was deleted" },
    );
  }
  await rename(incomplete, params.blob);
  if (params.expected.sha256 !== undefined) await rememberVerified(params.marksDir, params.blob, digest);
  return transferred;
}
