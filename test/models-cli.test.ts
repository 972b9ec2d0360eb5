// `persam-db models list|pull|verify|path` against the loopback Hub serving the bundled registry's
// slimsam-50 repos (fake bytes on their main branch: slimsam-77's pinned sha256 would refuse fake
// bytes), through the CLI's main() in-process (test/support/cli.ts), and the handler functions directly.

import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listModels, modelPaths, pullModel } from "../src/cli/models-command.js";
import { ExitCode } from "../src/errors.js";
import { loadModelRegistry } from "../src/segment/models/model-registry.js";
import { runCli } from "./support/cli.js";
import { type HubServer, startHubServer } from "./support/hub-server.js";

const TOKEN = "hf_clitesttoken000001";
let server: HubServer;
let work: string;
let env: Record<string, string>;

function checkpoint(): Buffer {
  const header = JSON.stringify({
    "mask_decoder.iou_token.weight": { dtype: "F32", shape: [1, 2], data_offsets: [0, 8] },
    "vision_encoder.w": { dtype: "F32", shape: [1000], data_offsets: [8, 4008] },
  });
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([prefix, Buffer.from(header), randomBytes(4008)]);
}

beforeAll(async () => {
  server = await startHubServer();
  const slim = loadModelRegistry().models.find((m) => m.id === "slimsam-50")!;
  server.addRepo({ name: slim.encoder.repo, files: { "onnx/vision_encoder.onnx": randomBytes(50_000) } });
  server.addRepo({ name: slim.decoder.repo, files: { "model.safetensors": checkpoint() } });
  work = await mkdtemp(join(tmpdir(), "persam-cli-"));
  env = {
    HF_ENDPOINT: `${server.url}/`,
    HF_HUB_CACHE: join(work, "hub"),
    PERSAM_DB_CACHE: join(work, "persam"),
    HF_HOME: join(work, "hf-home"),
    HF_TOKEN: TOKEN,
  };
});
afterAll(async () => {
  await server.stop();
  await rm(work, { recursive: true, force: true });
});

/** Run `persam-db <argv>` in-process in the work folder with the loopback Hub's environment. */
const run = (argv: string[], extraEnv: Record<string, string> = {}) =>
  runCli(argv, { env: { ...env, ...extraEnv }, cwd: work });

describe("persam-db models", () => {
  it("list marks the default and shows nothing cached at first", async () => {
    const r = await run(["models", "list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\* slimsam-77 +- +Apache-2\.0 +encoder 23\.3 MB, checkpoint 38\.9 MB/m);
    expect(r.stdout.split("\n").filter((l) => l.startsWith("*"))).toHaveLength(1);
  });

  it("pull downloads into the HF cache, prints the paths, and --json prints one document", async () => {
    const r = await run(["models", "pull", "slimsam-50", "--json"]);
    expect(r.stderr).toBe("");
    const doc = JSON.parse(r.stdout) as { encoderPath: string; decoderPath: string; pinned: boolean };
    expect(doc.encoderPath).toContain(join("models--Xenova--slimsam-50-uniform", "snapshots"));
    expect(doc.decoderPath).toContain(join("persam", "decoders", "nielsr--slimsam-50-uniform"));
    expect(doc.pinned).toBe(false);
    expect(server.requests.every((q) => q.url.startsWith("/") && !q.url.startsWith("//"))).toBe(true);

    const list = await run(["models", "--json"]);
    const rows = JSON.parse(list.stdout).models as Array<{ id: string; cached: boolean }>;
    expect(rows.find((x) => x.id === "slimsam-50")!.cached).toBe(true);
    expect(rows.find((x) => x.id === "sam-vit-base")!.cached).toBe(false);
  });

  it("path and verify work offline; a damaged file makes verify fail with one line", async () => {
    const offline = { HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:1" };
    const before = server.requests.length;
    const p = await run(["models", "path", "slimsam-50"], offline);
    expect(p.stdout).toMatch(/^encoder .*vision_encoder\.onnx\ndecoder .*decoder\.safetensors\n$/);
    const v = await run(["models", "verify"], offline);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^ok +slimsam-50 encoder/m);
    expect(server.requests.length).toBe(before);

    const { encoderPath } = await modelPaths({ env, id: "slimsam-50", variant: "fp32" });
    await writeFile(encoderPath, "tampered");
    const bad = await run(["models", "verify", "slimsam-50"], offline);
    expect(bad.code).toBe(ExitCode.userError);
    expect(bad.stdout).toMatch(/^damaged slimsam-50 encoder .*\(sha256 [0-9a-f]{12}…, expected/m);
    expect(bad.stderr).toMatch(
      /^persam-db: error: damaged model files: slimsam-50 encoder — run 'persam-db models pull slimsam-50'/,
    );
  });

  it("verify fails when files are missing, or when there is nothing to verify", async () => {
    const offline = { HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:1" };
    const missing = await run(["models", "verify", "sam-vit-base"], offline);
    expect(missing.code).toBe(ExitCode.userError);
    expect(missing.stdout).toMatch(/^missing sam-vit-base encoder/m);
    expect(missing.stderr).toMatch(
      /^persam-db: error: missing model files: sam-vit-base encoder, sam-vit-base decoder.* — run 'persam-db models pull sam-vit-base'/,
    );
    const empty = await run(["models", "verify"], {
      ...offline,
      HF_HUB_CACHE: join(work, "empty-hub"),
      PERSAM_DB_CACHE: join(work, "empty-persam"),
    });
    expect(empty.code).toBe(ExitCode.userError);
    expect(empty.stderr).toContain("no model files in the cache to verify");
  });

  it("usage errors are single lines: missing id, unknown model, not downloaded", async () => {
    expect((await run(["models", "pull"])).stderr).toMatch(/'models pull' needs a model id/);
    expect((await run(["models", "pull", "nope"])).stderr).toMatch(
      /Unknown model 'nope' — choose one of slimsam-77, /,
    );
    const p = await run(["models", "path", "sam-vit-base"]);
    expect(p.stderr).toMatch(
      /model 'sam-vit-base' \(fp32\) is not downloaded completely .* run 'persam-db models pull sam-vit-base'/,
    );
  });

  it("the handler functions work without the CLI", async () => {
    const rows = await listModels({ env, variant: "quantized" });
    expect(rows.find((r) => r.id === "slimsam-77")).toMatchObject({ encoderBytes: 8882165, cached: false });
    await expect(
      pullModel({ env: { ...env, HF_HUB_OFFLINE: "1" }, id: "sam-vit-huge", variant: "fp16" }),
    ).rejects.toThrow(/no fp16 encoder/);
  });
});
