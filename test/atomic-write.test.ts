// writeFileAtomic: final content appears in one rename, temporaries never stay behind.

import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { writeFileAtomic } from "../src/util/atomic-write.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "persam-atomic-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeFileAtomic", () => {
  it("writes bytes and strings, replacing an existing file, leaving only the target", async () => {
    const path = join(dir, "a.bin");
    await writeFile(path, "old content that is longer");
    await writeFileAtomic(path, Uint8Array.from([1, 2, 3]));
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    await writeFileAtomic(path, "héllo", { fsync: false });
    expect(await readFile(path, "utf8")).toBe("héllo");
    expect(await readdir(dir)).toEqual(["a.bin"]);
  });

  it("lets concurrent writers of one file finish with one complete version", async () => {
    const path = join(dir, "race.txt");
    const versions = Array.from({ length: 8 }, (_, i) => String(i).repeat(10_000));
    await Promise.all(versions.map((v) => writeFileAtomic(path, v)));
    expect(versions).toContain(await readFile(path, "utf8"));
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("fails with one line naming the missing folder and leaves nothing", async () => {
    const error = await writeFileAtomic(join(dir, "missing", "x.txt"), "x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toBe(
      `cannot write ${join(dir, "missing", "x.txt")}: the folder ${join(dir, "missing")} does not exist`,
    );
    expect(((error as UserError).cause as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("removes its temporary file when the rename fails", async () => {
    const target = join(dir, "is-a-folder");
    await mkdir(target);
    await writeFile(join(target, "keep"), "x"); // a non-empty folder cannot be replaced by a file
    await expect(writeFileAtomic(target, "data")).rejects.toThrow();
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
