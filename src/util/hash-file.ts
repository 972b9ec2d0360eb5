// Content hashes of a file on disk, read as a stream (never whole in memory): the sha256 that
// identifies photos and outputs, and optionally the git blob id the Hub lists for non-LFS files.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** What {@link hashFile} read. */
export interface FileHashes {
  /** sha256 of the bytes, hex. */
  readonly sha256: string;
  /** Git blob id (sha1 of `"blob <gitSize>\0" + bytes`), hex; only when `gitSize` was given. */
  readonly gitOid: string | undefined;
  /** Bytes read (differs from `gitSize` when the file changed after it was measured). */
  readonly size: number;
}

/**
 * sha256 of a file, and its git blob id in the same pass when `gitSize` (the size the blob header
 * declares, usually from a stat just before) is given.
 * @default gitSize undefined (no git blob id)
 * @throws the file-system error when the file cannot be opened or read
 */
export async function hashFile(path: string, gitSize?: number): Promise<FileHashes> {
  const sha256 = createHash("sha256");
  const sha1 = gitSize === undefined ? undefined : createHash("sha1").update(`blob ${gitSize}\0`);
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const bytes = chunk as Buffer;
    size += bytes.length;
    sha256.update(bytes);
    sha1?.update(bytes);
  }
  return { sha256: sha256.digest("hex"), gitOid: sha1?.digest("hex"), size };
}
