// One run at a time per output folder: a lock file (OUT/.persam/lock) naming the process that holds
// it, created atomically, refused with one line while its holder lives, taken over when its holder
// is gone, and released on every way out of the process.

import { randomBytes } from "node:crypto";
import { readFileSync, unlinkSync } from "node:fs";
import { link, mkdir, open, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { UserError } from "../errors.js";

/** The lock file, relative to the output folder. */
export const LOCK_FILE = ".persam/lock";

/** What a lock file says. */
export interface RunLockInfo {
  readonly pid: number;
  readonly hostname: string;
  /** The command that holds it, e.g. `prepare` or `push`. */
  readonly command: string;
  /** ISO time the lock was taken. */
  readonly startedAt: string;
  /** A random id of this holding, so a holder never removes a lock that is no longer its own. */
  readonly id: string;
}

/** A held lock. */
export interface RunLock {
  /** Absolute path of the lock file. */
  readonly path: string;
  readonly info: RunLockInfo;
  /** The lock this one replaced because its process was gone, if any. */
  readonly tookOver: RunLockInfo | undefined;
  /** Remove the lock file (only if it is still this holding's). Safe to call twice. */
  release(): Promise<void>;
}

/** Whether the holder of a lock is running: true, false, or undefined when it is on another host. */
export function lockHolderAlive(info: Pick<RunLockInfo, "pid" | "hostname">): boolean | undefined {
  if (info.hostname !== hostname()) return undefined;
  if (info.pid === process.pid) return true;
  try {
    process.kill(info.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function parse(text: string): RunLockInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<RunLockInfo>;
    if (
      typeof v.pid === "number" &&
      Number.isInteger(v.pid) &&
      v.pid > 0 &&
      typeof v.hostname === "string" &&
      typeof v.command === "string" &&
      typeof v.startedAt === "string" &&
      typeof v.id === "string"
    ) {
      return { pid: v.pid, hostname: v.hostname, command: v.command, startedAt: v.startedAt, id: v.id };
    }
  } catch {
    // Not JSON: not a lock this program wrote.
  }
  return undefined;
}

/**
 * The lock of an output folder, if there is one.
 * @returns the holder, `"unreadable"` for a lock file that is not one of ours, or undefined
 */
export async function readRunLock(outDir: string): Promise<RunLockInfo | "unreadable" | undefined> {
  let text: string;
  try {
    text = await readFile(join(outDir, LOCK_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  return parse(text) ?? "unreadable";
}

/** One line saying who holds a lock. */
export function describeHolder(info: RunLockInfo): string {
  const where = info.hostname === hostname() ? "" : ` on ${info.hostname}`;
  return `persam-db ${info.command} (pid ${info.pid}${where}, since ${info.startedAt})`;
}

/** Write `content` as a new file at `path`, failing with EEXIST when one is there (never half-written). */
async function createExclusive(path: string, content: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(temp, "wx", 0o644);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  try {
    // link() appears atomically with its full content, and fails if the name exists.
    await link(temp, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw error;
    // A file system without hard links: exclusive create, then write.
    const h = await open(path, "wx", 0o644);
    try {
      await h.writeFile(content);
    } finally {
      await h.close();
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** How long a run waits for other processes taking over the same stale lock. */
const TAKEOVER_WAIT_MS = 10_000;
const TAKEOVER_POLL_MS = 20;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Take the takeover lock (`<lock>.takeover`); false when another process holds it. A takeover lock
 * whose process is gone (killed in the middle of a takeover) is removed, then false (try again).
 */
async function takeTakeover(path: string, content: string): Promise<boolean> {
  try {
    await createExclusive(path, content);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const holder = parse(await readFile(path, "utf8").catch(() => ""));
  if (holder !== undefined && lockHolderAlive(holder) === false) {
    // Remove it only if it still is that dead holder's (rename aside, then check what was moved).
    const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
    if (
      await rename(path, aside).then(
        () => true,
        () => false,
      )
    ) {
      const moved = parse(await readFile(aside, "utf8").catch(() => ""));
      if (moved !== undefined && !same(holder, moved)) await link(aside, path).catch(() => undefined);
      await unlink(aside).catch(() => undefined);
    }
  }
  return false;
}

function same(a: RunLockInfo, b: RunLockInfo | undefined): boolean {
  return b !== undefined && a.id === b.id && a.pid === b.pid && a.hostname === b.hostname;
}

/**
 * Take the lock of an output folder (`OUT/.persam/lock`, a JSON file naming pid, host, command and
 * start time). A lock whose process is gone (same host, pid no longer running) is taken over; any
 * other lock is refused. The lock is released by `release()` and, should the process exit first,
 * by an exit handler.
 * @param params.outDir the output folder (its `.persam/` folder is created if missing)
 * @param params.command what this run is, e.g. `prepare` or `push`
 * @throws {UserError} naming the process that holds the lock (a live one on this host, or any on
 *   another host, which cannot be checked)
 */
export async function acquireRunLock(params: { outDir: string; command: string }): Promise<RunLock> {
  const path = join(params.outDir, LOCK_FILE);
  await mkdir(join(params.outDir, ".persam"), { recursive: true });
  const info: RunLockInfo = {
    pid: process.pid,
    hostname: hostname(),
    command: params.command,
    startedAt: new Date().toISOString(),
    id: randomBytes(8).toString("hex"),
  };
  const content = `${JSON.stringify(info)}\n`;
  const takeoverPath = `${path}.takeover`;
  let tookOver: RunLockInfo | undefined;
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  for (;;) {
    try {
      await createExclusive(path, content);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = await readRunLock(params.outDir);
    if (holder === undefined) continue; // released meanwhile
    if (holder === "unreadable") {
      throw new UserError(`${params.outDir} is locked by a file persam-db cannot read (${path})`, {
        hint: "if no persam-db command is running on this folder, delete that file and run again",
      });
    }
    const alive = lockHolderAlive(holder);
    if (alive !== false) {
      throw new UserError(`${params.outDir} is in use by ${describeHolder(holder)}`, {
        hint:
          alive === undefined
            ? `wait for it to finish; if that run is over, delete ${path}`
            : "wait for it to finish (one run at a time per output folder), or stop it",
      });
    }
    if (Date.now() > deadline) {
      throw new UserError(`cannot take over the stale lock ${path}`, {
        hint: "if no persam-db command is running on this folder, delete that file and run again",
      });
    }
    // Its process is gone. Takeovers are serialised by a second lock file, and the stale lock is
    // replaced (an atomic rename over it, no moment without a lock) only while it still is that
    // stale lock. Nothing else removes or replaces a lock file, so it cannot change between the
    // check and the rename; the other racers then find a live holder and refuse.
    if (!(await takeTakeover(takeoverPath, content))) {
      await sleep(TAKEOVER_POLL_MS);
      continue;
    }
    try {
      const current = await readRunLock(params.outDir);
      if (current !== undefined && current !== "unreadable" && same(holder, current)) {
        const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
        await writeFile(temp, content, { flag: "wx", mode: 0o644 });
        await rename(temp, path);
        tookOver = holder;
        break;
      }
    } finally {
      await unlink(takeoverPath).catch(() => undefined);
    }
  }

  let released = false;
  const releaseSync = (): void => {
    if (released) return;
    released = true;
    try {
      if (same(info, parse(readFileSync(path, "utf8")))) unlinkSync(path);
    } catch {
      // Already gone.
    }
  };
  process.once("exit", releaseSync);
  return {
    path,
    info,
    tookOver,
    async release() {
      if (released) return;
      process.removeListener("exit", releaseSync);
      released = true;
      const current = parse(await readFile(path, "utf8").catch(() => ""));
      if (same(info, current)) await unlink(path).catch(() => undefined);
    },
  };
}
