// `persam-db review OUT` in-process: refuses a folder that is not a prepared set with one line, prints
// the loopback URL with its token, serves the page with the set's own model (the one recorded by
// prepare), refuses a second review of the same set, and stops on Ctrl-C (the abort signal) with the
// lock released.

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliIo } from "../src/cli/io.js";
import { main } from "../src/cli/main.js";
import { readRunLock } from "../src/util/run-lock.js";
import { runCli } from "./support/cli.js";
import { get, preparedForReview, type ReviewFixture } from "./support/review-helpers.js";

let root: string;
let fixture: ReviewFixture;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-review-cli-"));
  fixture = await preparedForReview({ root, name: "toys" });
});

afterAll(async () => {
  await fixture?.model.dispose();
  await rm(root, { recursive: true, force: true });
});

describe("persam-db review", () => {
  it("refuses a folder that is not a prepared set, with one line", async () => {
    const photos = join(root, "not-a-set");
    await mkdir(photos, { recursive: true });
    const run = await runCli(["review", photos]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `persam-db: error: ${photos} is not an output folder of persam-db prepare (no .persam/state.json) — run 'persam-db prepare PHOTOS' first, then review its output folder (PHOTOS.persam)\n`,
    );
    const missing = await runCli(["review", join(root, "nowhere")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("does not exist");
  });

  it("prints its URL, serves the set with the model it was made with, refuses a second review, stops on Ctrl-C", async () => {
    const controller = new AbortController();
    const out = collector();
    const err = collector();
    const io: CliIo = {
      stdout: out.stream,
      stderr: err.stream,
      env: { ...process.env, HF_HUB_OFFLINE: "1" },
      cwd: root,
      isTty: false,
      signal: controller.signal,
    };
    const running = main(["review", fixture.outDir, "--threads", "1"], io);
    let url: URL | undefined;
    for (let i = 0; i < 1200 && url === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const m = /^review: (\S+)$/m.exec(out.text());
      if (m) url = new URL(m[1]!);
    }
    expect(url, err.text()).toBeDefined();
    expect(url!.hostname).toBe("127.0.0.1");
    const token = url!.searchParams.get("token")!;
    const set = await get(Number(url!.port), token, "/api/set");
    expect(set.status).toBe(200);
    expect((set.json() as { photos: unknown[] }).photos).toHaveLength(3);

    const second = await runCli(["review", fixture.outDir]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/is in use by persam-db review \(pid \d+, since /);

    controller.abort();
    expect(await running).toBe(0);
    expect(out.text()).toBe(`review: ${url!.href}\n`);
    // The recorded model (local files) was used: no warning about another model.
    expect(err.text()).not.toContain("the set was made with");
    expect(err.text()).toContain("review stopped; the decisions are kept in .persam/review/");
    expect(await readRunLock(fixture.outDir)).toBeUndefined();
    await expect(get(Number(url!.port), token, "/api/set")).rejects.toThrow();
  });
});

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}
