// Dataset card: the YAML front matter round-trips through a real YAML parser (hostile strings included), declares the imagefolder config explicitly, and the body cannot be broken by user strings.

import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  datasetCard,
  datasetCardMetadata,
  mdCode,
  mdText,
  toYaml,
  type YamlValue,
  yamlString,
} from "../src/export/dataset-card.js";
import type { PreparedDataset } from "../src/export/presets.js";

const HOSTILE = [
  "quote \" and ' and \\ backslash",
  "colon: value # not a comment",
  "- not a list",
  "---",
  "line one\nline two\r\n\ttab",
  "yes",
  "No",
  "null",
  "~",
  "1.5",
  "0x1F",
  "2024-01-01",
  "@at `tick` {brace} [bracket] *star &anchor !tag %pct |pipe >fold",
  "ünïcødé 猫 🐈 \u00a0\u0085\u2028\u2029\ufeff\u007f\u0000\u001b",
  "",
  " padded ",
];

const dataset: PreparedDataset = {
  token: "sks",
  className: "cat",
  instancePrompt: "a photo of sks cat",
  resolution: 512,
  model: "slimsam-77",
  mode: "persam-f",
  reference: "mask ref.png",
  stems: ["a", "b", "c"],
  settings: { feather: 8, bgWeight: 0.1, suppress: true },
};

const hasYaml = spawnSync("python3", ["-c", "import yaml"]).status === 0;
if (!hasYaml)
  console.warn("[skip] YAML round-trip checks: python3 with PyYAML is not available; structural checks only");

/** Parses YAML with PyYAML's safe loader and returns it through JSON. */
function parseYaml(text: string): unknown {
  const result = spawnSync(
    "python3",
    ["-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))"],
    { input: text, encoding: "utf8" },
  );
  if (result.status !== 0) throw new Error(`PyYAML rejected the document: ${result.stderr}\n${text}`);
  return JSON.parse(result.stdout);
}

function frontMatter(card: string): string {
  const match = /^---\n([\s\S]*?\n)---\n/.exec(card);
  if (!match?.[1]) throw new Error("no front matter");
  return match[1];
}

describe("YAML emitter", () => {
  it("quotes every string a YAML reader would not read back as that string", () => {
    for (const value of HOSTILE) expect(yamlString(value)).toMatch(/^".*"$/s);
    expect(yamlString("text-to-image")).toBe("text-to-image");
    expect(yamlString("metadata.jsonl")).toBe("metadata.jsonl");
    expect(yamlString("line\nbreak")).toBe('"line\\nbreak"');
    for (const value of HOSTILE) expect(yamlString(value)).not.toMatch(/[\n\r\u0085\u2028\u2029]/);
  });

  it.skipIf(!hasYaml)("round-trips hostile strings, keys and nesting through PyYAML", () => {
    const doc: { [key: string]: YamlValue } = {
      strings: HOSTILE,
      "odd key: # yes": { nested: [{ a: "x", b: [1, 2.5, 5e-7, -3, true, false, null] }, [], {}] },
      empty: "",
    };
    const expected = JSON.parse(JSON.stringify(doc));
    expect(parseYaml(toYaml(doc))).toEqual(expected);
  });

  it.skipIf(!hasYaml)("round-trips arbitrary values (property)", () => {
    const scalar = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 8 }),
      fc.constantFrom(...HOSTILE),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? 0 : d)),
      fc.boolean(),
      fc.constant(null),
    );
    const key = fc.oneof(
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 6 }),
      fc.constantFrom("yes", "a b", "-"),
    );
    const { tree } = fc.letrec<{ tree: YamlValue }>((tie) => ({
      tree: fc.oneof(
        { depthSize: "small" },
        scalar,
        fc.array(tie("tree"), { maxLength: 3 }),
        fc.dictionary(key, tie("tree"), { maxKeys: 3 }),
      ),
    }));
    const cases = fc.sample(tree, { numRuns: 150, seed: 7 });
    expect(parseYaml(toYaml({ cases }))).toEqual(JSON.parse(JSON.stringify({ cases })));
  });
});

describe("datasetCard", () => {
  it.skipIf(!hasYaml)("front matter round-trips, hostile pretty name and tags included", () => {
    const params = { dataset, repoId: "me/my-cat", prettyName: HOSTILE.join(" | "), tags: HOSTILE };
    const parsed = parseYaml(frontMatter(datasetCard(params)));
    expect(parsed).toEqual(JSON.parse(JSON.stringify(datasetCardMetadata(params))));
    expect((parsed as { pretty_name: string }).pretty_name).toBe(HOSTILE.join(" | "));
  });

  it("declares license, task, tags and one train split of metadata.jsonl and every image folder", () => {
    const meta = datasetCardMetadata({ dataset });
    expect(meta.license).toBe("other");
    expect(meta.task_categories).toEqual(["text-to-image"]);
    expect(meta.tags).toEqual(expect.arrayContaining(["dreambooth", "persam"]));
    expect(meta.configs).toEqual([
      {
        config_name: "default",
        data_files: [
          {
            split: "train",
            path: ["metadata.jsonl", "images/*.png", "masks/*.png", "weights/*.png", "rgba/*.png"],
          },
        ],
      },
    ]);
    const card = datasetCard({ dataset, license: "cc-by-4.0" });
    expect(frontMatter(card)).toContain("license: cc-by-4.0\n");
    expect(frontMatter(card)).toContain(
      '          - metadata.jsonl\n          - "images/*.png"\n          - "masks/*.png"\n          - "weights/*.png"\n          - "rgba/*.png"\n',
    );
  });

  it("rejects a malformed licence or repo id", () => {
    expect(() => datasetCard({ dataset, license: "CC BY" })).toThrow(/licence id/);
    expect(() => datasetCard({ dataset, repoId: "me/x; rm -rf ~" })).toThrow(/repo id/);
  });

  it("describes how the set was made and how to train it with each trainer", () => {
    const card = datasetCard({
      dataset,
      repoId: "me/my-cat",
      diffusersScript: "train_dreambooth_lora_sdxl.py",
    });
    for (const text of [
      "`persam-f`",
      "`slimsam-77`",
      "`mask ref.png`",
      "512 × 512 px",
      "- `feather`: `8`",
      'load_dataset("me/my-cat", split="train")',
      "hf download me/my-cat --repo-type dataset --local-dir my-cat",
      "requirements_sdxl.txt",
      'DIFFUSERS_DREAMBOOTH_DIR="$PWD/diffusers/examples/dreambooth" bash my-cat/train.sh',
      'SD_SCRIPTS_DIR="$PWD/sd-scripts" bash my-cat/train_kohya.sh',
      'ONETRAINER_DIR="$PWD/OneTrainer" bash my-cat/train_onetrainer.sh',
      "no masked loss",
      "need `datasets` >= 3.4",
    ]) {
      expect(card).toContain(text);
    }
  });

  it("shows the class noun in the title and on its own line", () => {
    const card = datasetCard({ dataset: { ...dataset, className: "backpack" } });
    expect(card).toContain("# sks backpack \\(PerSAM DreamBooth set\\)");
    expect(card).toMatch(/^- Class: `backpack` /m);
  });

  it("keeps user strings from starting Markdown blocks or closing code spans", () => {
    const evil = "x`` y\n# Heading\n```\n<script>alert(1)</script>";
    const card = datasetCard({ dataset: { ...dataset, reference: evil, instancePrompt: evil } });
    const body = card.slice(card.indexOf("\n---\n") + 5);
    expect(body).not.toMatch(/^# Heading/m);
    expect(body).not.toMatch(/^```\n<script>/m);
    expect(mdCode("a``b")).toBe("```a``b```");
    expect(mdCode("`x`")).toBe("`` `x` ``");
    expect(mdCode("a\nb")).toBe("`a ⏎ b`");
    expect(mdText("*bold* <b>#")).toBe("\\*bold\\* \\<b\\>\\#");
  });
});
