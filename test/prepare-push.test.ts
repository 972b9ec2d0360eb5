// `persam-db prepare DIR --push ns/name`: prepare, then publish the set through the loopback Hub.

import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TinyModelFiles, writeTinyModel } from "../src/segment/models/tiny-model.js";
import { runCli } from "./support/cli.js";
import { type HubServer, startHubServer } from "./support/hub-server.js";
import { scene, writeJpeg, writeSceneMask } from "./support/photos.js";

const TOKEN = "hf_preparepushtoken0000000001";
let server: HubServer;
let root: string;
let dir: string;
let model: TinyModelFiles;

beforeAll(async () => {
  server = await startHubServer();
  root = await mkdtemp(join(tmpdir(), "persam-prepare-push-"));
  model = await writeTinyModel({ dir: join(root, "model") });
  dir = join(root, "my-toy");
  await mkdir(dir);
  for (let i = 0; i < 2; i++)
    await writeJpeg(join(dir, `toy-${i + 1}.jpg`), scene({ at: [0.45 + 0.1 * i, 0.5], seed: i }));
  await writeSceneMask(join(dir, "toy-1.mask.png"), { at: [0.45, 0.5] });
});

afterAll(async () => {
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("persam-db prepare --push", () => {
  it("publishes the finished set as a dataset, and the JSON document carries the push result", async () => {
    const env = { ...process.env, HF_HUB_OFFLINE: "1", HF_TOKEN: TOKEN, HF_ENDPOINT: server.url };
    const run = await runCli(
      [
        "prepare",
        dir,
        "--encoder",
        model.encoderPath,
        "--decoder",
        model.decoderPath,
        "--threads",
        "1",
        "--keep-doubtful",
        "--resolution",
        "64",
        "--push",
        "me/my-toy",
        "--json",
      ],
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).not.toContain(TOKEN);
    expect(run.stderr).not.toContain(TOKEN);
    const doc = JSON.parse(run.stdout);
    expect(doc.push.repo).toBe("me/my-toy");
    expect(doc.push.upToDate).toBe(false);
    const out = join(root, "my-toy.persam");
    for (const path of ["metadata.jsonl", "README.md", "images/toy-1.png", "masks/toy-2.png", "train.sh"]) {
      const served = server.file({ type: "dataset", name: "me/my-toy", path });
      expect(served, path).toBeDefined();
      expect(sha256(served!.content)).toBe(sha256(await readFile(join(out, path))));
    }
    expect(server.file({ type: "dataset", name: "me/my-toy", path: ".persam/state.json" })).toBeUndefined();
  });

  it("pushes nothing from a dry run", async () => {
    const env = { ...process.env, HF_HUB_OFFLINE: "1", HF_TOKEN: TOKEN, HF_ENDPOINT: server.url };
    server.clearRequests();
    const run = await runCli(
      [
        "prepare",
        dir,
        "--encoder",
        model.encoderPath,
        "--decoder",
        model.decoderPath,
        "--keep-doubtful",
        "--resolution",
        "64",
        "--dry-run",
        "--push",
        "me/other",
      ],
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(server.requestsTo(/./)).toEqual([]);
  });
});
