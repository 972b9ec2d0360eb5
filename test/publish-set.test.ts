// A real set, as `persam-db push` would publish it: `push --dry-run` plans exactly the manifest's files
// (the files the card and metadata.jsonl describe), none of them carries an absolute path, the home
// folder or the user name, and the card and metadata.jsonl follow the rules by which the `datasets`
// library loads an imagefolder set from the Hub.
//
// The rules are read from huggingface/datasets, src/datasets/packaged_modules/folder_based_builder/
// folder_based_builder.py (class FolderBasedBuilder), cited per rule below.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATASETS_MIN_VERSION } from "../src/export/dataset-card.js";
import type { PushResult } from "../src/hub/dataset-push.js";
import { runCli } from "./support/cli.js";
import { type HubServer, startHubServer } from "./support/hub-server.js";
import { type PreparedSet, prepareSet } from "./support/prepared-set.js";

const TOKEN = "hf_publishsettoken000000000001";

let server: HubServer;
let root: string;
let set: PreparedSet;
let plan: PushResult;

beforeAll(async () => {
  server = await startHubServer();
  // A folder name no file of the set has any reason to contain, standing for the user's home.
  root = await mkdtemp(join(tmpdir(), "home-of-persamtestuser-"));
  set = await prepareSet({ root, name: "my-cat" });
  const r = await runCli(["push", set.outDir, "--repo", "me/my-cat", "--dry-run", "--json"], {
    env: { HF_ENDPOINT: server.url, HF_TOKEN: TOKEN, HF_HOME: join(root, "hf-home") },
    cwd: root,
  });
  expect(r.code, r.stderr).toBe(0);
  plan = JSON.parse(r.stdout) as PushResult;
});
afterAll(async () => {
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

/** The card's `configs[0].data_files[0].path` patterns (our own YAML emitter's block style). */
function dataFiles(card: string): string[] {
  const front = /^---\n([\s\S]*?\n)---\n/.exec(card)?.[1] ?? "";
  const lines = front.split("\n");
  const at = lines.findIndex((l) => /^\s+path:$/.test(l));
  const out: string[] = [];
  for (const l of lines.slice(at + 1)) {
    const m = /^\s+- "?([^"]*)"?$/.exec(l);
    if (!m) break;
    out.push(m[1]!);
  }
  return out;
}

/** fsspec-style glob: `*` matches within one path segment. */
function globMatches(pattern: string, path: string): boolean {
  const re = pattern
    .split("*")
    .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]*");
  return new RegExp(`^${re}$`).test(path);
}

async function rows(): Promise<{ raw: string[]; parsed: Record<string, unknown>[] }> {
  const text = await readFile(join(set.outDir, "metadata.jsonl"), "utf8");
  const raw = text.split("\n").filter((l) => l !== "");
  return { raw, parsed: raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("what push publishes", () => {
  it("push --dry-run plans exactly the manifest's files, and those are what the card and metadata describe", async () => {
    const planned = plan.uploaded.map((f) => f.path).sort();
    expect(planned).toEqual([...set.files]);
    expect(planned.some((p) => p.startsWith(".persam/"))).toBe(false);
    const card = await readFile(join(set.outDir, "README.md"), "utf8");
    const patterns = dataFiles(card);
    const { parsed } = await rows();
    const named = parsed.flatMap((row) =>
      Object.entries(row)
        .filter(([k]) => k === "file_name" || k.endsWith("_file_name"))
        .map(([, v]) => String(v)),
    );
    // Every file a row names, and every file the card's patterns match, is published…
    for (const p of named) expect(planned).toContain(p);
    for (const p of planned.filter((f) => patterns.some((g) => globMatches(g, f))))
      expect(named.concat("metadata.jsonl")).toContain(p);
    // …and every published file is one the card lists (its Files section names each folder and file).
    for (const p of planned) {
      const top = p.includes("/") ? `${p.slice(0, p.indexOf("/") + 1)}` : p;
      expect(card, p).toContain(`\`${top}`);
    }
  });

  it("no published file holds an absolute path, the home folder or the user name", async () => {
    const user = userInfo().username;
    const home = homedir();
    const needles = [root, "persamtestuser", ...(home.length > 1 ? [home] : []), `/${user}/`, `\\${user}\\`];
    const absolute =
      /(^|[\s"'=(,[])(\/(tmp|home|root|Users|var|private|mnt|opt|srv|data)\/|[A-Za-z]:\\\\?[A-Za-z])/m;
    const problems: string[] = [];
    for (const path of plan.uploaded.map((f) => f.path)) {
      const bytes = await readFile(join(set.outDir, path));
      for (const n of needles) if (bytes.includes(n)) problems.push(`${path} contains ${JSON.stringify(n)}`);
      if (!path.endsWith(".png")) {
        const m = absolute.exec(bytes.toString("utf8"));
        if (m) problems.push(`${path} holds an absolute path near ${JSON.stringify(m[0])}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("the set loads as `datasets` loads it", () => {
  it("the card lists metadata.jsonl and every folder a *_file_name column points into, and not onetrainer/", async () => {
    // _split_generators downloads only the files the config's data_files match
    // (`dl_manager.download(files)` after _split_files_and_metadata_and_archives), and
    // _generate_examples joins each image path to the metadata file's folder
    // (`os.path.join(downloaded_metadata_dir, file_relpath)`): an image folder missing from
    // data_files is missing on disk (FileNotFoundError on the first row).
    const patterns = dataFiles(await readFile(join(set.outDir, "README.md"), "utf8"));
    expect(patterns).toEqual([
      "metadata.jsonl",
      "images/*.png",
      "masks/*.png",
      "weights/*.png",
      "rgba/*.png",
    ]);
    const { parsed } = await rows();
    for (const row of parsed) {
      for (const [k, v] of Object.entries(row)) {
        if (!(k === "file_name" || k.endsWith("_file_name"))) continue;
        expect(
          patterns.some((g) => globMatches(g, String(v))),
          `${k} ${String(v)}`,
        ).toBe(true);
        expect(set.files).toContain(v);
      }
    }
    for (const f of set.files.filter((p) => p.startsWith("onetrainer/"))) {
      expect(
        patterns.some((g) => globMatches(g, f)),
        f,
      ).toBe(false);
    }
  });

  it("every row starts with file_name, only image paths end in _file_name, one type per column", async () => {
    const { raw, parsed } = await rows();
    expect(parsed.length).toBe(3);
    const keys = Object.keys(parsed[0]!);
    for (const row of parsed) {
      // _generate_examples, set_feature: each image column takes `item.pop("file_name", None) or
      // item.pop(<column> + "_file_name", None)`, visiting image columns in row order, so the first
      // image column is the one `file_name` must belong to.
      expect(Object.keys(row)[0]).toBe("file_name");
      expect(Object.keys(row)).toEqual(keys);
      // _split_generators, _set_feature: every string column named file_name or *_file_name becomes
      // an Image column (its name without the suffix), so nothing else may end that way.
      for (const [k, v] of Object.entries(row)) {
        if (k === "file_name" || k.endsWith("_file_name")) expect(String(v)).toMatch(/^[a-z]+\/[^/]+\.png$/);
      }
      expect(Array.isArray(row.flags)).toBe(true);
      expect(typeof row.confidence).toBe("number");
    }
    // _read_metadata reads the rows with pyarrow.json.read_json, which infers one type per column
    // from the text: a confidence written `1` is an integer there, so every value carries a point.
    for (const line of raw) expect(line).toMatch(/"confidence":-?\d+(\.\d+|e-?\d+|\.\d+e-?\d+)[,}]/);
  });

  it("the card says which datasets version the image columns need", async () => {
    const card = await readFile(join(set.outDir, "README.md"), "utf8");
    expect(card).toContain(`\`datasets\` >= ${DATASETS_MIN_VERSION}`);
    expect(DATASETS_MIN_VERSION).toBe("3.4");
  });
});
