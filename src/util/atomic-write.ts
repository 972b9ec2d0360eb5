// Crash-safe file writes: every output file is written under a temporary name in its own folder,
// flushed, then renamed over the final name, so a reader never sees half a file (design §5).

import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { systemUserError, UserError } from "../errors.js";

/** Options of {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /**
   * Flush the data to disk before the rename, so that a power cut cannot leave an empty file under
   * the final name.
   * @default true
   */
  fsync?: boolean;
  /**
   * Permission bits of the new file (before the umask).
   * @default 0o644
   */
  mode?: number;
  /**
   * Create the file's folder (and its parents) first.
   * @default false
   */
  mkdir?: boolean;
}

/**
 * Write `data` to `path` atomically: a temporary file beside it (same folder, so the rename stays on
 * one file system) is written, optionally flushed, then renamed over `path`. The temporary file is
 * removed when anything fails. Strings are written as UTF-8.
 * @throws UserError when the folder is missing, not writable, full or read-only (one line naming
 * `path`, never the temporary name); other file-system errors as they are.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const { fsync = true, mode = 0o644 } = options;
  if (options.mkdir) await mkdir(dirname(path), { recursive: true });
  // Dot-prefixed so folder scans and globs skip it; pid + random bytes so concurrent writers never
  // share a temporary name.
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", mode);
    try {
      await handle.writeFile(data);
      if (fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    // Under a file or on a read-only disk the temporary name cannot even be looked at: the write's
    // own error is the one to report.
    await rm(temp, { force: true }).catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new UserError(`cannot write ${path}: the folder ${dirname(path)} does not exist`, {
        hint: "create the folder first, or choose another output path",
        cause: error,
      });
    }
    if (code === "EACCES" || code === "EPERM") {
      throw new UserError(`cannot write ${path}: no permission to write in ${dirname(path)}`, {
        hint: "choose an output folder you can write to",
        cause: error,
      });
    }
    // A full or read-only disk, a file where a folder should be: named by the final path (a write
    // on the open temporary file carries no path at all).
    throw systemUserError(error, path) ?? error;
  }
}

/** Temporary names of unfinished writes, with the writer's PID: `.NAME.PID.HEX12.tmp`. */
const ATOMIC_TEMP = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Remove, under `dir` (recursively), the temporary files of writeFileAtomic whose writer process is
 * gone (killed mid-write). Files of live writers are left alone.
 * @returns the removed paths
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const m = ATOMIC_TEMP.exec(e.name);
        if (m && !processAlive(Number(m[1]))) {
          await rm(p, { force: true });
          removed.push(p);
        }
      }
    }
  };
  await walk(dir);
  return removed;
}
