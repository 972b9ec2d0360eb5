// OneTrainer export: the concept folder plan names files the way OneTrainer's loader expects, and the JSON uses its config names.

import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { ONETRAINER_SOURCE, onetrainerPlan, writeOneTrainerFiles } from "../src/export/onetrainer.js";
import { loadPreset, type OneTrainerPreset, type PreparedDataset } from "../src/export/presets.js";

const dataset: PreparedDataset = {
  token: "sks",
  className: "cat",
  instancePrompt: "a photo of sks cat",
  resolution: 512,
  model: "slimsam-77",
  mode: "persam",
  reference: "box",
  stems: ["IMG_0001", "garden shot"],
};

async function preset(): Promise<OneTrainerPreset> {
  const p = await loadPreset({ name: "onetrainer-sd15-lora" });
  if (p.trainer !== "onetrainer") throw new Error("onetrainer-sd15-lora is not a OneTrainer preset");
  return p;
}

describe("onetrainerPlan", () => {
  it("copies image, weight map as <stem>-masklabel.png, and caption into onetrainer/", async () => {
    const plan = onetrainerPlan({ dataset, preset: await preset(), outputDir: "/data/my-cat.persam" });
    expect(plan.copies).toEqual([
      { from: "images/IMG_0001.png", to: "onetrainer/IMG_0001.png" },
      { from: "weights/IMG_0001.png", to: "onetrainer/IMG_0001-masklabel.png" },
      { from: "captions/IMG_0001.txt", to: "onetrainer/IMG_0001.txt" },
      { from: "images/garden shot.png", to: "onetrainer/garden shot.png" },
      { from: "weights/garden shot.png", to: "onetrainer/garden shot-masklabel.png" },
      { from: "captions/garden shot.txt", to: "onetrainer/garden shot.txt" },
    ]);
  });

  it("turns masked training on with OneTrainer's own setting names and the preset's values", async () => {
    const p = await preset();
    const { trainConfig, concepts } = onetrainerPlan({ dataset, preset: p, outputDir: "/data/set" });
    expect(trainConfig).toMatchObject({
      __version: 11,
      model_type: "STABLE_DIFFUSION_15",
      training_method: "LORA",
      base_model_name: p.pretrainedModel,
      resolution: "512",
      masked_training: true,
      unmasked_probability: p.onetrainer.unmaskedProbability,
      unmasked_weight: p.onetrainer.unmaskedWeight,
      normalize_masked_area_loss: p.onetrainer.normalizeMaskedAreaLoss,
      masked_prior_preservation_weight: p.onetrainer.maskedPriorPreservationWeight,
      // Relative to the set, never the paths of the machine that made it.
      concept_file_name: "onetrainer/concepts.json",
      output_model_destination: "model-onetrainer/sks_cat.safetensors",
      lora_rank: p.onetrainer.loraRank,
    });
    expect(concepts).toHaveLength(1);
    expect(concepts[0]).toMatchObject({
      __version: 2,
      path: "onetrainer",
      type: "STANDARD",
      text: { prompt_source: "sample" },
    });
    expect(JSON.parse(JSON.stringify({ trainConfig, concepts }))).toEqual({ trainConfig, concepts });
  });

  it("uses only TrainConfig and ConceptConfig keys that exist at the pinned OneTrainer commit", async () => {
    const lines = readFileSync(
      join(import.meta.dirname, "..", "src", "export", "diffusers-args", "onetrainer_config_keys.txt"),
      "utf8",
    ).split("\n");
    expect(lines.find((l) => l.startsWith("# commit:"))).toContain(ONETRAINER_SOURCE.commit);
    const known = new Set(lines.filter((l) => l !== "" && !l.startsWith("#")));
    const { trainConfig, concepts } = onetrainerPlan({ dataset, preset: await preset(), outputDir: "/d" });
    const used = [
      ...Object.keys(trainConfig).map((k) => `train.${k}`),
      ...concepts.flatMap((c) => Object.keys(c).map((k) => `concept.${k}`)),
    ].filter((k) => !k.endsWith(".__version"));
    expect(used.length).toBeGreaterThan(20);
    expect(used.filter((k) => !known.has(k))).toEqual([]);
  });

  it("refuses stems OneTrainer would skip as label files, and unsafe stems", async () => {
    const p = await preset();
    const bad = { ...dataset, stems: ["ok", "cat-masklabel", "x-condlabel"] };
    expect(() => onetrainerPlan({ dataset: bad, preset: p, outputDir: "/d" })).toThrow(
      /-masklabel or -condlabel: "cat-masklabel", "x-condlabel"/,
    );
    expect(() =>
      onetrainerPlan({ dataset: { ...dataset, stems: ["a/b"] }, preset: p, outputDir: "/d" }),
    ).toThrow(UserError);
    expect(() => onetrainerPlan({ dataset: { ...dataset, stems: [] }, preset: p, outputDir: "/d" })).toThrow(
      /No photos/,
    );
  });

  it("keeps no absolute path; train_onetrainer.sh fills them in from where the set lies on the training machine", async (ctx) => {
    if (spawnSync("python3", ["--version"]).status !== 0) {
      ctx.skip("python3 is not installed: the script's JSON step cannot run here");
    }
    const work = await mkdtemp(join(tmpdir(), "persam-onetrainer-"));
    try {
      // The set as written on one machine…
      const made = join(work, "made-here", "cat.persam");
      const plan = onetrainerPlan({ dataset, preset: await preset(), outputDir: made });
      const written = await writeOneTrainerFiles({ outputDir: made, plan });
      expect(written).toEqual([
        "onetrainer/concepts.json",
        "onetrainer/train-config.json",
        "train_onetrainer.sh",
      ]);
      for (const f of written) expect(await readFile(join(made, f), "utf8")).not.toContain(work);
      expect((await stat(join(made, "train_onetrainer.sh"))).mode & 0o111).not.toBe(0);
      // …downloaded elsewhere, next to a stand-in for OneTrainer's run-cmd.sh that records what it got.
      const there = join(work, "training box", "sets", "cat.persam");
      await mkdir(join(there, "onetrainer"), { recursive: true });
      for (const f of written) await writeFile(join(there, f), await readFile(join(made, f)));
      await chmod(join(there, "train_onetrainer.sh"), 0o755);
      const ot = join(work, "OneTrainer");
      await mkdir(ot);
      await writeFile(
        join(ot, "run-cmd.sh"),
        '#!/usr/bin/env bash\ncfg="$3"\ncp "$cfg" "$OUT/train-config.json"\ncp "$(python3 -c \'import json,sys; print(json.load(open(sys.argv[1]))["concept_file_name"])\' "$cfg")" "$OUT/concepts.json"\nprintf "%s\\n" "$@" > "$OUT/args"\n',
      );
      await chmod(join(ot, "run-cmd.sh"), 0o755);
      execFileSync(join(there, "train_onetrainer.sh"), ["--config-value", "epochs=3"], {
        cwd: work,
        env: { ...process.env, ONETRAINER_DIR: ot, OUT: work },
      });
      const config = JSON.parse(await readFile(join(work, "train-config.json"), "utf8"));
      const concepts = JSON.parse(await readFile(join(work, "concepts.json"), "utf8"));
      expect(config.output_model_destination).toBe(join(there, "model-onetrainer", "sks_cat.safetensors"));
      expect(concepts[0].path).toBe(join(there, "onetrainer"));
      expect((await readFile(join(work, "args"), "utf8")).split("\n").slice(0, 2)).toEqual([
        "train",
        "--config-path",
      ]);
      expect(await readFile(join(work, "args"), "utf8")).toContain("--config-value\nepochs=3\n");
      // Without ONETRAINER_DIR: one line, exit 2.
      const missing = spawnSync(join(there, "train_onetrainer.sh"), [], {
        env: { PATH: process.env.PATH ?? "" },
      });
      expect(missing.status).toBe(2);
      expect(String(missing.stderr)).toMatch(/^ONETRAINER_DIR is not set/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
