// One run at a time per output folder (src/util/run-lock.ts), with real child processes: a live
// holder is refused with one line naming it, a holder killed with SIGKILL leaves a lock that is
// taken over, a holder that exits releases it, and processes racing for a stale lock get one winner.

import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { acquireRunLock, LOCK_FILE, readRunLock } from "../src/util/run-lock.js";
import { type LockChildren, lockChildren } from "./support/lock-child.js";

let children: LockChildren;
let work: string;

beforeAll(async () => {
  children = await lockChildren();
  work = await mkdtemp(join(tmpdir(), "persam-lock-"));
});
afterAll(async () => {
  await children.dispose();
  await rm(work, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(UserError);
  expect((e as UserError).toLine()).not.toContain("\n");
  return e as UserError;
}

describe("run lock", () => {
  it("refuses a second holder naming the process; takes over once that process was killed", async () => {
    const out = join(work, "a.persam");
    const holder = children.start(out, "prepare");
    expect(await holder.firstLine).toBe("locked null");
    const lock = await readRunLock(out);
    expect(lock).toMatchObject({ pid: holder.process.pid, hostname: hostname(), command: "prepare" });

    const e = await refusal(acquireRunLock({ outDir: out, command: "push" }));
    expect(e.toLine()).toMatch(
      new RegExp(
        `^${out.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is in use by persam-db prepare \\(pid ${holder.process.pid}, since \\d{4}-`,
      ),
    );

    holder.process.kill("SIGKILL");
    expect(await holder.exited).toBe("SIGKILL");
    expect(existsSync(join(out, LOCK_FILE))).toBe(true); // a killed process cannot clean up
    const taken = await acquireRunLock({ outDir: out, command: "push" });
    expect(taken.tookOver?.pid).toBe(holder.process.pid);
    expect(await readRunLock(out)).toMatchObject({ pid: process.pid, command: "push" });
    await taken.release();
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  });

  it("a holder that exits without releasing leaves no lock behind", async () => {
    const out = join(work, "b.persam");
    const child = children.start(out, "prepare", "exit");
    expect(await child.firstLine).toBe("locked null");
    expect(await child.exited).toBe(0);
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  });

  it("processes racing for a stale lock: exactly one takes it over", async () => {
    const out = join(work, "c.persam");
    const dead = children.start(out, "prepare");
    await dead.firstLine;
    dead.process.kill("SIGKILL");
    await dead.exited;
    const racers = Array.from({ length: 4 }, () => children.start(out, "push"));
    const lines = await Promise.all(racers.map((r) => r.firstLine));
    const winners = lines.filter((l) => l.startsWith("locked"));
    expect(winners).toHaveLength(1);
    expect(JSON.parse(winners[0]!.slice("locked ".length))).toMatchObject({ pid: dead.process.pid });
    for (const l of lines.filter((x) => x.startsWith("refused")))
      expect(l).toMatch(/is in use by persam-db push \(pid \d+/);
    for (const r of racers) r.process.stdin!.end();
    await Promise.all(racers.map((r) => r.exited));
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  });

  it("release never removes a lock that is no longer its own; an unreadable lock is refused", async () => {
    const out = join(work, "d.persam");
    const lock = await acquireRunLock({ outDir: out, command: "push" });
    const other = JSON.stringify({ ...lock.info, id: "someone-else" });
    await writeFile(lock.path, other);
    await lock.release();
    expect(await readFile(lock.path, "utf8")).toBe(other);
    await writeFile(lock.path, "garbage");
    const e = await refusal(acquireRunLock({ outDir: out, command: "push" }));
    expect(e.toLine()).toMatch(/is locked by a file persam-db cannot read .* delete that file/);
  });
});
