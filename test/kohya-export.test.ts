// kohya export: the dataset TOML parses (python3 tomllib) to exactly the intended tables, options exist in the pinned train_network.py, and train_kohya.sh passes them intact.

import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { KOHYA_SOURCE, kohyaConfig, tomlString, writeKohyaFiles } from "../src/export/kohya.js";
import { type KohyaPreset, loadPreset, type PreparedDataset } from "../src/export/presets.js";

const HOSTILE = "c\"a\\t \n\t\r\u0000\u001f\u007f #[x] = 'y' ünï 猫 🐈 \u2028 $(touch pwned)";

const dataset: PreparedDataset = {
  token: "sks",
  className: "cat",
  instancePrompt: "a photo of sks cat",
  resolution: 512,
  model: "slimsam-77",
  mode: "persam",
  reference: "point",
  stems: ["IMG_0001", "photo 2"],
};

const tmp = mkdtempSync(join(tmpdir(), "persam-kohya-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hasPython = spawnSync("python3", ["-c", "import tomllib"]).status === 0;
if (!hasPython) console.warn("[skip] kohya TOML parse checks: python3 with tomllib (3.11+) is not available");

/** Parses TOML text with Python's tomllib and returns it as JSON. */
function parseToml(text: string): unknown {
  const file = join(mkdtempSync(join(tmp, "toml-")), "x.toml");
  writeFileSync(file, text);
  const result = spawnSync(
    "python3",
    ["-c", "import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],'rb'))))", file],
    { encoding: "utf8" },
  );
  if (result.status !== 0) throw new Error(`tomllib rejected the TOML: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

async function preset(): Promise<KohyaPreset> {
  const p = await loadPreset({ name: "kohya-sd15-lora" });
  if (p.trainer !== "kohya") throw new Error("kohya-sd15-lora is not a kohya preset");
  return p;
}

describe("tomlString", () => {
  it.skipIf(!hasPython)("survives quotes, backslashes, control characters and Unicode", () => {
    const values = [HOSTILE, "", "'", '"""', "\\u0041", "a\\", "\uD800 lone"];
    const text = values.map((v, i) => `k${i} = ${tomlString(v)}`).join("\n");
    const parsed = parseToml(text) as Record<string, string>;
    expect(Object.values(parsed)).toEqual([...values.slice(0, -1), "\uFFFD lone"]);
  });
});

describe("kohyaConfig", () => {
  it.skipIf(!hasPython)(
    "writes a TOML that parses to the intended dataset, hostile token and class included",
    async () => {
      const config = kohyaConfig({
        dataset: { ...dataset, token: "s\"k's", className: HOSTILE },
        preset: await preset(),
        withPriorPreservation: true,
      });
      expect(parseToml(config.toml)).toEqual({
        general: { enable_bucket: false, shuffle_caption: false },
        datasets: [
          {
            resolution: 512,
            batch_size: 1,
            subsets: [
              {
                image_dir: "rgba",
                num_repeats: 10,
                class_tokens: `s"k's ${HOSTILE}`,
                caption_extension: ".txt",
                alpha_mask: true,
              },
              {
                image_dir: "class_images",
                is_reg: true,
                num_repeats: 1,
                class_tokens: HOSTILE,
                caption_extension: ".txt",
              },
            ],
          },
        ],
      });
    },
  );

  it("emits only options train_network.py accepts at the pinned commit, masked loss on", async () => {
    const lines = readFileSync(
      join(import.meta.dirname, "..", "src", "export", "diffusers-args", "kohya_train_network.txt"),
      "utf8",
    ).split("\n");
    expect(lines.find((l) => l.startsWith("# commit:"))).toContain(KOHYA_SOURCE.commit);
    const accepted = new Set(lines.filter((l) => l !== "" && !l.startsWith("#")));
    for (const withPriorPreservation of [false, true]) {
      const { args } = kohyaConfig({ dataset, preset: await preset(), withPriorPreservation });
      const names = args.map(([name]) => name);
      expect(names.filter((n) => !accepted.has(n))).toEqual([]);
      expect(args).toContainEqual(["masked_loss", true]);
      expect(args).toContainEqual(["dataset_config", "kohya.toml"]);
      expect(names.includes("prior_loss_weight")).toBe(withPriorPreservation);
    }
  });

  it("asks the caller to copy each caption next to its RGBA image", async () => {
    const { copies } = kohyaConfig({ dataset, preset: await preset() });
    expect(copies).toEqual([
      { from: "captions/IMG_0001.txt", to: "rgba/IMG_0001.txt" },
      { from: "captions/photo 2.txt", to: "rgba/photo 2.txt" },
    ]);
  });

  it("refuses stems that are not plain file names and class folders outside the output", async () => {
    const p = await preset();
    expect(() => kohyaConfig({ dataset: { ...dataset, stems: ["../x"] }, preset: p })).toThrow(UserError);
    expect(() => kohyaConfig({ dataset: { ...dataset, stems: ["a", "a"] }, preset: p })).toThrow(/"a"/);
    expect(() => kohyaConfig({ dataset, preset: p, classDataDir: "/etc" })).toThrow(UserError);
  });

  it("names the LoRA file safely whatever the class", async () => {
    const { args } = kohyaConfig({
      dataset: { ...dataset, className: "../../etc/x y" },
      preset: await preset(),
    });
    expect(new Map(args).get("output_name")).toBe("sks_etc_x_y");
  });
});

describe("train_kohya.sh", () => {
  it("passes bash -n and hands accelerate exactly the intended arguments", async () => {
    const config = kohyaConfig({
      dataset: { ...dataset, className: HOSTILE.replace("\u0000", "") },
      preset: await preset(),
    });
    const out = mkdtempSync(join(tmp, "out '$(x)'-"));
    const written = await writeKohyaFiles({ outputDir: out, config });
    expect(readFileSync(written.toml, "utf8")).toBe(config.toml);
    expect(spawnSync("bash", ["-n", written.script]).status).toBe(0);

    const bin = mkdtempSync(join(tmp, "bin-"));
    const argvFile = join(bin, "argv");
    writeFileSync(
      join(bin, "accelerate"),
      `#!/usr/bin/env bash\nprintf '%s\\0' "$@" > ${JSON.stringify(argvFile)}\n`,
    );
    chmodSync(join(bin, "accelerate"), 0o755);
    const result = spawnSync("bash", [written.script], {
      cwd: tmp,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, SD_SCRIPTS_DIR: "/opt/sd scripts" },
      encoding: "utf8",
    });
    expect(result.status, result.stderr).toBe(0);
    const argv = readFileSync(argvFile, "utf8").split("\0").slice(0, -1);
    expect(argv).toEqual([
      "launch",
      "/opt/sd scripts/train_network.py",
      ...config.args.map(([name, value]) => (value === true ? `--${name}` : `--${name}=${value}`)),
    ]);
    expect(argv).toContain("--masked_loss");
    expect(existsSync(join(out, "pwned"))).toBe(false);
  });
});
