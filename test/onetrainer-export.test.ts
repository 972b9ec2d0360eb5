// OneTrainer export: the concept folder plan names files the way OneTrainer's loader expects, and the JSON uses its config names.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { ONETRAINER_SOURCE, onetrainerPlan } from "../src/export/onetrainer.js";
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
      concept_file_name: "/data/set/onetrainer/concepts.json",
      output_model_destination: "/data/set/model-onetrainer/sks_cat.safetensors",
      lora_rank: p.onetrainer.loraRank,
    });
    expect(concepts).toHaveLength(1);
    expect(concepts[0]).toMatchObject({
      __version: 2,
      path: "/data/set/onetrainer",
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
});
