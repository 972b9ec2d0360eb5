// CLI tests of `persam-db prepare` in-process on the tiny random model with generated photos.

import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../src/errors.js";
import { type TinyModelFiles, writeTinyModel } from "../src/segment/models/tiny-model.js";
import { runCli } from "./support/cli.js";
import { lockChildren } from "./support/lock-child.js";
import { hashTree, scene, writeEmptyFile, writeJpeg, writeSceneMask } from "./support/photos.js";

let root: string;
let model: TinyModelFiles;
let dir: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-prepare-cli-"));
  model = await writeTinyModel({ dir: join(root, "model") });
  dir = join(root, "my-cat");
  await mkdir(dir);
  for (let i = 0; i < 3; i++)
    await writeJpeg(join(dir, `cat-${i + 1}.jpg`), scene({ at: [0.4 + 0.1 * i, 0.5], seed: i }));
  await writeSceneMask(join(dir, "cat-1.mask.png"), { at: [0.4, 0.5] });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const modelArgs = () => ["--encoder", model.encoderPath, "--decoder", model.decoderPath, "--threads", "1"];

describe("persam-db prepare", () => {
  it("--help shows examples, the offline case included", async () => {
    const run = await runCli(["prepare", "--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("prepare <inputs..>");
    expect(run.stdout).toMatch(/offline.*local model files/);
    expect(run.stdout).toContain("--keep-doubtful");
  });

  it("prepares a folder, prints a summary table, and a dry run afterwards plans nothing", async () => {
    const before = await hashTree(dir);
    const run = await runCli(["prepare", dir, ...modelArgs(), "--resolution", "64", "--keep-doubtful"]);
    expect(run.code, run.stderr).toBe(ExitCode.ok);
    expect(run.stdout).toMatch(/photo\s+status\s+conf/);
    expect(run.stdout).toContain("3 photos in the training set");
    expect(run.stderr).toContain("RANDOM TEST WEIGHTS");
    expect(run.stderr).toMatch(/photos 3\/3/);
    expect(await hashTree(dir)).toEqual(before);
    const out = `${dir}.persam`;
    const rows = (await readFile(join(out, "metadata.jsonl"), "utf8")).trim().split("\n");
    expect(rows.map((r) => JSON.parse(r).text)).toEqual(Array(3).fill("a photo of sks cat"));

    const state = await hashTree(out);
    const dry = await runCli([
      "prepare",
      dir,
      ...modelArgs(),
      "--resolution",
      "64",
      "--keep-doubtful",
      "--dry-run",
    ]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/skip\s+cat-1\.jpg/);
    expect(dry.stdout).toContain("0 to segment");
    expect(await hashTree(out)).toEqual(state);
  });

  it("--json prints one document and nothing on stderr; a bad file gives exit code 2", async () => {
    const bad = join(root, "with-bad");
    await mkdir(bad);
    await writeJpeg(join(bad, "good.jpg"), scene());
    await writeEmptyFile(join(bad, "broken.jpg"));
    const out = join(root, "with-bad-out");
    const run = await runCli([
      "prepare",
      bad,
      "-o",
      out,
      ...modelArgs(),
      "--resolution",
      "64",
      "--keep-doubtful",
      "--json",
    ]);
    expect(run.code).toBe(ExitCode.partial);
    const doc = JSON.parse(run.stdout);
    expect(doc.exitCode).toBe(2);
    expect(doc.counts.kept).toBe(1);
    expect(doc.warnings.filter((w: string) => w.includes("broken.jpg"))).toHaveLength(1);
    expect(doc.photos[0].outputs.images).toBe("images/good.png");
    expect(run.stderr.replace(/warning: .*RANDOM TEST WEIGHTS.*\n/, "")).toBe("");
    expect((await stat(join(out, "report.html"))).isFile()).toBe(true);
  });

  it("an empty folder is one error line with exit code 1", async () => {
    const empty = join(root, "empty");
    await mkdir(empty);
    const run = await runCli(["prepare", empty, ...modelArgs()]);
    expect(run.code).toBe(ExitCode.userError);
    expect(run.stderr).toMatch(/^persam-db: error: No photos found in .*empty/m);
  });

  it("says in one line which class noun it took from the folder name", async () => {
    const run = await runCli([
      "prepare",
      dir,
      ...modelArgs(),
      "--resolution",
      "64",
      "--keep-doubtful",
      "--dry-run",
    ]);
    expect(run.code, run.stderr).toBe(ExitCode.ok);
    const lines = run.stderr.split("\n").filter((l) => l.startsWith("class:"));
    expect(lines).toEqual(['class: "cat", taken from the folder name "my-cat" (pass --class to change it)']);
    const given = await runCli(["prepare", dir, ...modelArgs(), "--dry-run", "--class", "kitten"]);
    expect(given.stderr).not.toContain("class:");
  });

  it.each(["Photos 2024", "DCIM_100", "2024-05-01", "IMG_1234"])(
    "refuses the generic folder name %s with one line asking for --class, before the model",
    async (name) => {
      const generic = join(root, name);
      await mkdir(generic, { recursive: true });
      await writeJpeg(join(generic, "a.jpg"), scene());
      // No model files and no network: the class must be refused before the model is looked for.
      const run = await runCli(["prepare", generic]);
      expect(run.code).toBe(ExitCode.userError);
      expect(run.stderr).toBe(
        `persam-db: error: The folder name "${name}" does not say what the subject is — pass its class noun with --class (for example --class cat or --class backpack)\n`,
      );
      const named = await runCli(["prepare", generic, "--class", "cat", ...modelArgs(), "--dry-run"]);
      expect(named.code, named.stderr).toBe(ExitCode.ok);
    },
  );

  it("complains about a missing photo folder before the model", async () => {
    const run = await runCli(["prepare", join(root, "nonexistent")]);
    expect(run.code).toBe(ExitCode.userError);
    expect(run.stderr).toBe(
      `persam-db: error: The photo folder ${join(root, "nonexistent")} does not exist — check the path\n`,
    );
  });

  it("skips notes.txt, Thumbs.db and metadata quietly: exit 0, counted as other files", async () => {
    const folder = join(root, "toy-with-notes");
    await mkdir(folder);
    await writeJpeg(join(folder, "toy.jpg"), scene({ at: [0.5, 0.5] }));
    await writeSceneMask(join(folder, "toy.mask.png"), { at: [0.5, 0.5] });
    await writeFile(join(folder, "notes.txt"), "photographed on the balcony\n");
    await writeFile(join(folder, "Thumbs.db"), new Uint8Array([0xd0, 0xcf, 0x11, 0xe0]));
    await writeFile(join(folder, "toy.xmp"), "<x:xmpmeta/>");
    const run = await runCli(["prepare", folder, ...modelArgs(), "--resolution", "64"]);
    expect(run.code, run.stderr).toBe(ExitCode.ok);
    expect(run.stderr).not.toMatch(/notes\.txt|Thumbs\.db|toy\.xmp/);
    expect(run.stdout).toContain("1 photo: 1 ok, 0 doubtful, 0 skipped · 3 other files ignored");
  });

  it("rejects a malformed --aspect before loading anything", async () => {
    const run = await runCli(["prepare", dir, ...modelArgs(), "--aspect", "wide"]);
    expect(run.code).toBe(ExitCode.userError);
    expect(run.stderr).toContain("Expected W:H (for example 1:1 or 3:4) for --aspect but received 'wide'");
  });

  it("prepare after segment on the same photos runs no encoder: embeddings are shared by every command", async () => {
    const photos = join(root, "shared-embeddings");
    await mkdir(photos);
    for (let i = 0; i < 2; i++) {
      await writeJpeg(join(photos, `toy-${i + 1}.jpg`), scene({ at: [0.45, 0.5], seed: 40 + i }));
    }
    await writeSceneMask(join(photos, "toy-1.mask.png"), { at: [0.45, 0.5] });
    const cache = await mkdtemp(join(root, "cache-"));
    const env = { ...process.env, HF_HUB_OFFLINE: "1", PERSAM_DB_CACHE: cache };
    const segmented = await runCli(
      ["segment", photos, "-o", join(root, "shared-masks"), ...modelArgs(), "--json"],
      {
        env,
      },
    );
    expect(segmented.code, segmented.stderr).not.toBe(ExitCode.bug);
    const prepared = await runCli(
      ["prepare", photos, ...modelArgs(), "--resolution", "64", "--keep-doubtful", "--json"],
      { env },
    );
    expect(prepared.code, prepared.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(prepared.stdout).counts).toMatchObject({ segmented: 2, encoded: 0 });

    // With the cache turned off, prepare encodes again.
    const off = await runCli(
      [
        "prepare",
        photos,
        "-o",
        join(root, "no-cache"),
        ...modelArgs(),
        "--resolution",
        "64",
        "--keep-doubtful",
      ].concat(["--embedding-cache", "0", "--json"]),
      { env },
    );
    expect(JSON.parse(off.stdout).counts).toMatchObject({ segmented: 2, encoded: 2 });
    const info = await runCli(["cache", "info", "--json"], { env });
    expect(JSON.parse(info.stdout).embeddings).toMatchObject({ entries: 2 });
    const cleared = await runCli(["cache", "clear"], { env });
    expect(cleared.stdout).toMatch(/cleared .*: 2 embeddings/);
  });

  it("refuses an output folder that another running command holds, naming it, and writes nothing", async () => {
    const children = await lockChildren();
    try {
      const out = join(root, "held.persam");
      const holder = children.start(out, "prepare");
      expect(await holder.firstLine).toBe("locked null");
      const run = await runCli(["prepare", dir, "-o", out, ...modelArgs(), "--resolution", "64"]);
      expect(run.code).toBe(ExitCode.userError);
      expect(run.stderr).toMatch(
        new RegExp(
          `^persam-db: error: ${out} is in use by persam-db prepare \\(pid ${holder.process.pid}`,
          "m",
        ),
      );
      expect((await readdir(out)).sort()).toEqual([".persam"]);
      holder.process.stdin!.end();
      await holder.exited;
      const after = await runCli([
        "prepare",
        dir,
        "-o",
        out,
        ...modelArgs(),
        "--resolution",
        "64",
        "--keep-doubtful",
      ]);
      expect(after.code, after.stderr).toBe(ExitCode.ok);
    } finally {
      await children.dispose();
    }
  });
});
