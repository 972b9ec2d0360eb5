// diffusers export and the presets: options exist in the pinned scripts, train.sh passes bash -n and hands accelerate exactly the intended argv.

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import {
  DIFFUSERS_SOURCE,
  diffusersConfig,
  diffusersTrainScript,
  writeDiffusersFiles,
} from "../src/export/diffusers.js";
import {
  type DiffusersPreset,
  listPresets,
  loadPrepareDefaults,
  loadPreset,
  type PreparedDataset,
  parsePreset,
} from "../src/export/presets.js";

const argsDir = join(import.meta.dirname, "..", "src", "export", "diffusers-args");

/** Option names of one pinned script list, and the commit its header names. */
function pinned(file: string): { names: Set<string>; commit: string | undefined } {
  const lines = readFileSync(join(argsDir, file), "utf8").split("\n");
  const commit = lines.find((l) => l.startsWith("# commit:"))?.split(/\s+/)[2];
  return { names: new Set(lines.filter((l) => l !== "" && !l.startsWith("#"))), commit };
}

const HOSTILE_PROMPT = 'a photo of $(touch pwned) `touch pwned` it\'s "quoted" \\ cat\nsecond line; rm -rf ~';

const dataset: PreparedDataset = {
  token: "sks",
  className: "cat",
  instancePrompt: "a photo of sks cat",
  resolution: 512,
  model: "slimsam-77",
  mode: "persam",
  reference: "mask ref.png",
  stems: ["IMG_0001", "IMG_0002"],
};

const tmp = mkdtempSync(join(tmpdir(), "persam-diffusers-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A stand-in `accelerate` that writes its argv NUL-separated and its working directory. */
function standIn(): { bin: string; argvFile: string; pwdFile: string } {
  const bin = mkdtempSync(join(tmp, "bin-"));
  const argvFile = join(bin, "argv");
  const pwdFile = join(bin, "pwd");
  writeFileSync(
    join(bin, "accelerate"),
    `#!/usr/bin/env bash\nprintf '%s\\0' "$@" > ${JSON.stringify(argvFile)}\npwd -P > ${JSON.stringify(pwdFile)}\n`,
  );
  chmodSync(join(bin, "accelerate"), 0o755);
  return { bin, argvFile, pwdFile };
}

function runScript(script: string, env: Record<string, string>, extra: string[] = [], cwd = tmp) {
  return spawnSync("bash", [script, ...extra], { cwd, env: { ...process.env, ...env }, encoding: "utf8" });
}

function readArgv(file: string): string[] {
  const parts = readFileSync(file, "utf8").split("\0");
  expect(parts.pop()).toBe("");
  return parts;
}

async function diffusersPresets(): Promise<DiffusersPreset[]> {
  const out: DiffusersPreset[] = [];
  for (const name of await listPresets()) {
    const preset = await loadPreset({ name });
    if (preset.trainer === "diffusers") out.push(preset);
  }
  return out;
}

describe("presets", () => {
  it("lists and validates every preset in configs/, one per trainer at least", async () => {
    const names = await listPresets();
    expect(names).not.toContain("prepare-defaults");
    const trainers = new Set<string>();
    for (const name of names) trainers.add((await loadPreset({ name })).trainer);
    expect([...trainers].sort()).toEqual(["diffusers", "kohya", "onetrainer"]);
    const scripts = (await diffusersPresets()).map((p) => p.diffusers.script).sort();
    expect(scripts).toEqual([
      "train_dreambooth.py",
      "train_dreambooth_lora.py",
      "train_dreambooth_lora_flux.py",
      "train_dreambooth_lora_sdxl.py",
    ]);
  });

  it("loads the prepare defaults with a resolution per base model", async () => {
    const defaults = await loadPrepareDefaults();
    expect(defaults.resolution).toEqual({ sd15: 512, sdxl: 1024, flux: 1024 });
  });

  it("reports every problem of a bad preset with its path", async () => {
    const good = await loadPreset({ name: "diffusers-sd15-lora" });
    const bad = {
      ...good,
      learningRate: -1,
      resolution: 500,
      baseModel: "sdxl",
      diffusers: { ...(good as DiffusersPreset).diffusers, guidanceScale: 1, bogus: 1 },
    };
    let message = "";
    try {
      parsePreset({ json: bad, source: "bad.json" });
    } catch (error) {
      expect(error).toBeInstanceOf(UserError);
      message = (error as Error).message;
    }
    expect(message).toMatch(/^Invalid preset bad\.json: /);
    expect(message).toContain("learningRate:");
    expect(message).toContain("resolution: must be a multiple of 8");
    expect(message).toContain("diffusers:"); // the unknown key
  });

  it("reports cross-field problems (script vs base model, options the script lacks)", async () => {
    const good = (await loadPreset({ name: "diffusers-sd15-lora" })) as DiffusersPreset;
    const bad = { ...good, baseModel: "sdxl", diffusers: { ...good.diffusers, guidanceScale: 1 } };
    expect(() => parsePreset({ json: bad, source: "x" })).toThrow(
      /baseModel: train_dreambooth_lora\.py trains sd15, not sdxl.*diffusers\.guidanceScale: /,
    );
  });

  it("refuses preset names that could leave the configs folder", async () => {
    await expect(loadPreset({ name: "../package" })).rejects.toThrow(UserError);
    await expect(loadPreset({ name: "prepare-defaults" })).rejects.toThrow(/Unknown preset/);
    // The message says which presets there are, not how the code would list them.
    const error = (await loadPreset({ name: "sdxl" }).catch((e: unknown) => e)) as UserError;
    expect(error.toLine()).toBe(`Unknown preset "sdxl" — use one of: ${(await listPresets()).join(", ")}`);
    expect(error.toLine()).not.toContain("listPresets");
    await expect(loadPreset({ name: "no-such-preset" })).rejects.toThrow(/Unknown preset "no-such-preset"/);
  });
});

describe("diffusersConfig", () => {
  it("emits only options the pinned scripts accept, with and without prior preservation", async () => {
    const presets = await diffusersPresets();
    expect(presets).toHaveLength(4);
    for (const preset of presets) {
      const list = pinned(preset.diffusers.script.replace(/\.py$/, ".txt"));
      expect(list.commit).toBe(DIFFUSERS_SOURCE.commit);
      for (const withPriorPreservation of [false, true]) {
        const config = diffusersConfig({ dataset, preset, withPriorPreservation, validationPrompt: "v" });
        expect(config.script).toBe(preset.diffusers.script);
        const names = config.args.map(([name]) => name);
        expect(
          names.filter((n) => !list.names.has(n)),
          preset.diffusers.script,
        ).toEqual([]);
        expect(new Set(names).size).toBe(names.length);
        expect(names.includes("with_prior_preservation")).toBe(withPriorPreservation);
      }
    }
  });

  it("trains on images/ with the dataset's prompt and resolution", async () => {
    const preset = (await loadPreset({ name: "diffusers-sd15" })) as DiffusersPreset;
    const args = new Map(diffusersConfig({ dataset, preset, withPriorPreservation: false }).args);
    expect(args.get("instance_data_dir")).toBe("images");
    expect(args.get("instance_prompt")).toBe("a photo of sks cat");
    expect(args.get("resolution")).toBe("512");
    expect(args.get("learning_rate")).toBe("0.000005");
    expect(args.get("output_dir")).toBe("model");
    expect(args.has("class_prompt")).toBe(false);
  });

  it("refuses output or class folders outside the output folder", async () => {
    const preset = (await loadPreset({ name: "diffusers-sd15" })) as DiffusersPreset;
    expect(() => diffusersConfig({ dataset, preset, outputDir: "../elsewhere" })).toThrow(UserError);
    expect(() => diffusersConfig({ dataset, preset, outputDir: "/abs" })).toThrow(UserError);
    expect(() =>
      diffusersConfig({ dataset, preset, withPriorPreservation: true, classDataDir: "a/../../b" }),
    ).toThrow(/classDataDir/);
  });
});

describe("train.sh", () => {
  it("passes bash -n and hands accelerate exactly the intended arguments, hostile prompt included", async () => {
    const preset = (await loadPreset({ name: "diffusers-sd15" })) as DiffusersPreset;
    const out = join(tmp, "my cat's set $(x)");
    mkdirSync(out);
    const config = diffusersConfig({
      dataset: { ...dataset, instancePrompt: `-${HOSTILE_PROMPT}` },
      preset,
      withPriorPreservation: true,
      classPrompt: HOSTILE_PROMPT,
    });
    const written = await writeDiffusersFiles({ outputDir: out, config, description: preset.description });
    expect(statSync(written.script).mode & 0o111).not.toBe(0);
    expect(spawnSync("bash", ["-n", written.script]).status).toBe(0);

    const { bin, argvFile, pwdFile } = standIn();
    const elsewhere = mkdtempSync(join(tmp, "cwd-"));
    const result = runScript(
      written.script,
      { PATH: `${bin}:${process.env.PATH}`, DIFFUSERS_DREAMBOOTH_DIR: "/opt/diffusers/examples/dreambooth" },
      ["--report_to=wandb"],
      elsewhere,
    );
    expect(result.status, result.stderr).toBe(0);
    const expected = [
      "launch",
      "/opt/diffusers/examples/dreambooth/train_dreambooth.py",
      ...config.args.map(([name, value]) => (value === true ? `--${name}` : `--${name}=${value}`)),
      "--report_to=wandb",
    ];
    expect(readArgv(argvFile)).toEqual(expected);
    expect(expected).toContain(`--class_prompt=${HOSTILE_PROMPT}`);
    expect(expected).toContain(`--instance_prompt=-${HOSTILE_PROMPT}`);
    expect(readFileSync(pwdFile, "utf8").trim()).toBe(out);
    for (const dir of [out, elsewhere, tmp]) expect(existsSync(join(dir, "pwned"))).toBe(false);

    const json = JSON.parse(readFileSync(written.json, "utf8"));
    expect(json.script).toBe("train_dreambooth.py");
    expect(json.source.commit).toBe(DIFFUSERS_SOURCE.commit);
    expect(json.args.class_prompt).toBe(HOSTILE_PROMPT);
    expect(json.args.with_prior_preservation).toBe(true);
    expect(json.argv).toEqual(expected.slice(2, -1));
  });

  it("says which variable to set and exits 2 when the diffusers folder is not given", async () => {
    const preset = (await loadPreset({ name: "diffusers-sd15-lora" })) as DiffusersPreset;
    const out = mkdtempSync(join(tmp, "noenv-"));
    const { script } = await writeDiffusersFiles({
      outputDir: out,
      config: diffusersConfig({ dataset, preset }),
    });
    const { bin, argvFile } = standIn();
    const env: Record<string, string> = { PATH: `${bin}:${process.env.PATH}` };
    const result = spawnSync("bash", [script], {
      env: Object.fromEntries(
        Object.entries({ ...process.env, ...env }).filter(([k]) => k !== "DIFFUSERS_DREAMBOOTH_DIR"),
      ),
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("DIFFUSERS_DREAMBOOTH_DIR is not set");
    expect(existsSync(argvFile)).toBe(false);
  });

  it("notes in the script that diffusers has no masked loss", async () => {
    const preset = (await loadPreset({ name: "diffusers-sdxl-lora" })) as DiffusersPreset;
    const text = diffusersTrainScript({ config: diffusersConfig({ dataset, preset }) });
    expect(text.startsWith("#!/usr/bin/env bash\n")).toBe(true);
    expect(text).toContain("set -euo pipefail");
    expect(text).toMatch(/diffusers has no masked loss/);
    expect(text).toContain(`"\${DIFFUSERS_DREAMBOOTH_DIR}/train_dreambooth_lora_sdxl.py"`);
  });
});
