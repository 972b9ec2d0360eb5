// Property tests (fast-check) of the pure parts: coordinate transforms, crops, weight maps, text
// escaping (captions, JSONL, HTML, shell) and config validation. Every property runs a bounded number
// of cases from a fixed seed; a failure prints the seed and the counterexample path to replay it.

import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { caption } from "../src/dataset/captions.js";
import { contains, subjectCrop } from "../src/dataset/crop.js";
import { metadataRow, toJsonl } from "../src/dataset/metadata.js";
import { escapeHtml } from "../src/dataset/report.js";
import { lossWeightMap } from "../src/dataset/weight-map.js";
import { isUserError } from "../src/errors.js";
import { parsePreset } from "../src/export/presets.js";
import { launchScript, shellOption, shellQuote } from "../src/export/shell-quote.js";
import { parseModelRegistry } from "../src/segment/models/model-registry.js";
import { preprocessShape, transformPoints } from "../src/segment/sam/preprocess.js";
import { terminalSafe } from "../src/util/terminal-text.js";

const SEED = 0x5eed_2024;

/** Run a property from the fixed seed; fast-check's failure message carries the seed and path. */
function check<Ts>(property: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(property, { seed: SEED, numRuns });
}

/** Characters that break lines or JSON: line separators, controls, quotes, lone surrogates, emoji. */
const nastyChar = fc.oneof(
  fc.constantFrom(
    "\n",
    "\r",
    "\u2028",
    "\u2029",
    "\u0085",
    "\v",
    "\f",
    "\t",
    "\u0000",
    "\u001b",
    '"',
    "'",
    "\\",
    "{",
    "}",
    "$&",
    "<",
    "&",
    " ",
    "\uD800",
    "\uDFFF",
    "😀",
    "\u202e",
  ),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.string({ maxLength: 3 }),
);
const nastyString = fc.array(nastyChar, { maxLength: 24 }).map((parts) => parts.join(""));

describe("coordinate transforms (src/segment/sam/preprocess.ts)", () => {
  // Up to a 16384-pixel long side: beyond it the float32 rounding of the 1024 frame (half an ulp,
  // 6.1e-5 near 1024) scaled back exceeds 1e-3 px (1.2e-3 px at 20000).
  const size = fc.integer({ min: 1, max: 16384 });

  it("preprocessShape: long side 1024, each side within rounding of the exact scale", () => {
    check(
      fc.property(size, size, (H, W) => {
        const [hIn, wIn] = preprocessShape(H, W);
        const scale = 1024 / Math.max(H, W);
        expect(Math.max(hIn, wIn)).toBe(1024);
        for (const [inSide, side] of [
          [hIn, H],
          [wIn, W],
        ] as const) {
          expect(Number.isInteger(inSide)).toBe(true);
          expect(inSide).toBeGreaterThanOrEqual(1);
          // Rounded to nearest (a side the scale takes below ½ px is kept at 1).
          expect(Math.abs(inSide - side * scale)).toBeLessThanOrEqual(side * scale < 0.5 ? 1 : 0.5 + 1e-9);
        }
      }),
      500,
    );
  });

  it("transformPoints: scaling to the 1024 frame and back by the inverse ratio is within 1e-3 px", () => {
    check(
      fc.property(
        size,
        size,
        fc.array(
          fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
        (H, W, fractions) => {
          const points = fractions.map(([fx, fy]) => [fx * W, fy * H] as [number, number]);
          const inputSize = preprocessShape(H, W);
          const out = transformPoints(points, [H, W], inputSize);
          expect(out).toHaveLength(points.length * 2);
          points.forEach(([x, y], i) => {
            const backX = out[i * 2]! * (W / inputSize[1]);
            const backY = out[i * 2 + 1]! * (H / inputSize[0]);
            expect(Math.abs(backX - x)).toBeLessThanOrEqual(1e-3);
            expect(Math.abs(backY - y)).toBeLessThanOrEqual(1e-3);
            // Inside the resized image (the prompt encoder adds ½ later).
            expect(out[i * 2]!).toBeLessThanOrEqual(inputSize[1] + 1e-3);
            expect(out[i * 2 + 1]!).toBeLessThanOrEqual(inputSize[0] + 1e-3);
          });
        },
      ),
      500,
    );
  });
});

describe("subject crops (src/dataset/crop.ts)", () => {
  const scene = fc
    .record({
      W: fc.integer({ min: 1, max: 3000 }),
      H: fc.integer({ min: 1, max: 3000 }),
      a: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      b: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      c: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      d: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      margin: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 2, noNaN: true })),
      aspect: fc.oneof(
        fc.constantFrom(1, 3 / 4, 4 / 3, 2 / 3, 16 / 9),
        fc.double({ min: 0.2, max: 5, noNaN: true }),
      ),
    })
    .map(({ W, H, a, b, c, d, margin, aspect }) => {
      const xs = [Math.floor(a * W), Math.floor(b * W)].sort((p, q) => p - q);
      const ys = [Math.floor(c * H), Math.floor(d * H)].sort((p, q) => p - q);
      return {
        W,
        H,
        box: [xs[0]!, ys[0]!, xs[1]!, ys[1]!] as [number, number, number, number],
        margin,
        aspect,
      };
    });

  it("lies inside the photo and contains the subject box whenever a crop of that aspect can", () => {
    check(
      fc.property(scene, ({ W, H, box, margin, aspect }) => {
        const crop = subjectCrop({ width: W, height: H, box, margin, aspect, mode: "subject" });
        expect(Number.isInteger(crop.left) && Number.isInteger(crop.top)).toBe(true);
        expect(crop.width).toBeGreaterThanOrEqual(1);
        expect(crop.height).toBeGreaterThanOrEqual(1);
        expect(crop.left).toBeGreaterThanOrEqual(0);
        expect(crop.top).toBeGreaterThanOrEqual(0);
        expect(crop.left + crop.width).toBeLessThanOrEqual(W);
        expect(crop.top + crop.height).toBeLessThanOrEqual(H);
        // The largest crop of this aspect is the centre crop without a subject.
        const largest = subjectCrop({ width: W, height: H, aspect, mode: "center" });
        const bw = box[2] - box[0] + 1;
        const bh = box[3] - box[1] + 1;
        const possible = bw <= largest.width && bh <= largest.height;
        if (possible) expect(contains(crop, box)).toBe(true);
        // A real cut is always flagged. (The converse fails only where the exact aspect cannot hold the
        // subject but the whole-pixel rounding does, e.g. a 1×1 photo at aspect 0.2: flagged anyway.)
        if (!contains(crop, box)) expect(crop.cutsSubject).toBe(true);
      }),
      1500,
    );
  });
});

describe("loss-weight maps (src/dataset/weight-map.ts)", () => {
  const maskCase = fc
    .record({
      width: fc.integer({ min: 1, max: 24 }),
      height: fc.integer({ min: 1, max: 24 }),
      density: fc.constantFrom(0, 0.05, 0.3, 0.7, 1),
      seed: fc.integer(),
      feather: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 1, max: 30 }),
        fc.double({ min: 0, max: 40, noNaN: true }),
      ),
      bgWeight: fc.oneof(fc.constantFrom(0, 1, 0.1), fc.double({ min: 0, max: 1, noNaN: true })),
    })
    .map((p) => {
      const mask = new Uint8Array(p.width * p.height);
      let s = p.seed >>> 0 || 1;
      for (let i = 0; i < mask.length; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        mask[i] = s / 2 ** 32 < p.density ? 1 + (s % 255) : 0;
      }
      return { ...p, mask };
    });

  it("stays in [round(bgWeight·255), 255], 255 on the subject, two levels without feather", () => {
    check(
      fc.property(maskCase, ({ mask, width, height, feather, bgWeight }) => {
        const map = lossWeightMap({ mask, width, height, feather, bgWeight });
        const bg = Math.round(bgWeight * 255);
        expect(map).toHaveLength(mask.length);
        for (let i = 0; i < map.length; i++) {
          expect(map[i]!).toBeGreaterThanOrEqual(bg);
          expect(map[i]!).toBeLessThanOrEqual(255);
          if (mask[i]) expect(map[i]).toBe(255);
          if (feather === 0 && !mask[i]) expect(map[i]).toBe(bg);
        }
        if (!mask.some((v) => v !== 0)) expect(map.every((v) => v === bg)).toBe(true);
      }),
      250,
    );
  });
});

describe("text escaping", () => {
  /** Python's str.splitlines() boundaries: a caption or JSONL line must contain none of them. */
  const PY_LINE_BREAK = /[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/;
  const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

  it("caption: any class, token and template is refused with a UserError or gives one clean line", () => {
    check(
      fc.property(
        nastyString,
        fc.oneof(fc.constant(undefined), nastyString),
        fc.oneof(
          fc.constant(undefined),
          nastyString.map((s) => `${s}{token}`),
          nastyString,
        ),
        (className, token, template) => {
          let text: string;
          try {
            text = caption({
              className,
              ...(token === undefined ? {} : { token }),
              ...(template === undefined ? {} : { template }),
            });
          } catch (error) {
            expect(isUserError(error)).toBe(true);
            expect((error as Error).message).not.toMatch(/\n/);
            return;
          }
          expect(text).not.toMatch(PY_LINE_BREAK);
          expect(text).not.toMatch(/[\x00-\x08\x0e-\x1f\x7f\t]/);
          expect(text).not.toMatch(LONE_SURROGATE);
          expect(text).toBe(text.trim());
          // Token and class appear as typed (inner runs of spaces collapsed), never re-substituted.
          expect(text).toContain((token ?? "sks").trim());
          if ((template ?? "{class}").includes("{class}")) {
            expect(text).toContain(className.trim().replace(/ {2,}/g, " "));
          }
        },
      ),
      2000,
    );
  });

  it("a token containing {class} is not substituted again", () => {
    expect(caption({ className: "cat", token: "x{class}" })).toBe("a photo of x{class} cat");
    expect(caption({ className: "{token}", token: "sks" })).toBe("a photo of sks {token}");
  });

  it("metadata.jsonl: every row survives JSON.parse per line, lone surrogates included, one line each", () => {
    // Decision: JSON.stringify writes lone surrogates as \udXXX escapes (well-formed JSON since
    // ES2019), so they round-trip exactly and the file stays valid UTF-8; captions refuse them.
    check(
      fc.property(
        fc.array(
          fc.record({
            text: nastyString,
            confidence: fc.double({ min: 0, max: 1, noNaN: true }),
            flags: fc.array(nastyString, { maxLength: 3 }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        (inputs) => {
          const rows = inputs.map((r, i) =>
            metadataRow({
              file_name: `images/p${i}.png`,
              mask_file_name: `masks/p${i}.png`,
              weight_file_name: `weights/p${i}.png`,
              text: r.text,
              confidence: r.confidence,
              flags: r.flags,
            }),
          );
          const jsonl = toJsonl(rows);
          expect(jsonl.endsWith("\n")).toBe(true);
          const lines = jsonl.slice(0, -1).split("\n");
          expect(lines).toHaveLength(rows.length);
          for (const line of lines) {
            expect(line).not.toMatch(PY_LINE_BREAK);
            expect(line).not.toMatch(LONE_SURROGATE);
          }
          expect(lines.map((l) => JSON.parse(l))).toEqual(rows);
          expect(rows.map((r, i) => r.text === inputs[i]!.text)).not.toContain(false);
          // Valid UTF-8: encoding and decoding change nothing.
          expect(Buffer.from(jsonl, "utf8").toString("utf8")).toBe(jsonl);
        },
      ),
      1000,
    );
  });

  it("escapeHtml leaves no markup character; terminalSafe leaves no control or line break", () => {
    check(
      fc.property(nastyString, (s) => {
        const html = escapeHtml(s);
        expect(html).not.toMatch(/[<>"']/);
        expect(html.replace(/&(amp|lt|gt|quot|#39|#x27|#\d+|#x[0-9a-f]+);/gi, "")).not.toContain("&");
        const safe = terminalSafe(s);
        expect(safe).not.toMatch(PY_LINE_BREAK);
        expect(safe).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
        expect([...safe]).toHaveLength([...s].length);
      }),
      1000,
    );
  });
});

describe("shell quoting (src/export/shell-quote.ts)", () => {
  const dir = mkdtempSync(join(tmpdir(), "persam-shell-prop-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // What bash sees: well-formed strings without NUL (argv cannot carry NUL; a lone surrogate has no
  // UTF-8 form and would reach bash as U+FFFD on both sides anyway).
  const shellString = nastyString.map((s) => s.replace(/\0/g, "").replace(/[\uD800-\uDFFF]/g, "x"));

  it("refuses NUL with a TypeError", () => {
    expect(() => shellQuote("a\0b")).toThrow(TypeError);
  });

  it("bash reads every quoted word back as the original string", () => {
    check(
      fc.property(fc.array(shellString, { minLength: 1, maxLength: 8 }), (values) => {
        // `printf '%s\0' WORDS`: each quoted value must arrive as exactly one argument, unchanged.
        const script = `printf '%s\\0' ${values.map(shellQuote).join(" ")} ${shellOption({ name: "opt_x", value: values[0]! })}`;
        const run = spawnSync("bash", ["--norc", "--noprofile", "-c", script], {
          env: { PATH: process.env.PATH },
        });
        expect(run.status).toBe(0);
        const words = run.stdout.toString("utf8").split("\0").slice(0, -1);
        expect(words).toEqual([...values, `--opt_x=${values[0]}`]);
      }),
      60,
    );
  });

  it("a launch script passes every option value to the trainer unchanged", () => {
    // A stand-in `accelerate` that prints its arguments NUL-separated.
    const bin = join(dir, "bin");
    spawnSync("mkdir", ["-p", bin]);
    writeFileSync(join(bin, "accelerate"), "#!/usr/bin/env bash\nprintf '%s\\0' \"$@\"\n");
    chmodSync(join(bin, "accelerate"), 0o755);
    let n = 0;
    check(
      fc.property(
        fc.array(
          fc.tuple(
            fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/),
            fc.oneof(shellString, fc.constant(true as const)),
          ),
          {
            maxLength: 5,
          },
        ),
        fc.array(shellString, { maxLength: 3 }),
        (options, comments) => {
          const file = join(dir, `train-${n++}.sh`);
          writeFileSync(
            file,
            launchScript({
              comments,
              dirVariable: "TRAINER_DIR",
              dirHint: "set it",
              script: "train.py",
              options,
            }),
          );
          const run = spawnSync("bash", [file, "extra arg"], {
            env: { PATH: `${bin}:${process.env.PATH}`, TRAINER_DIR: "/opt/it's here" },
          });
          expect(run.stderr.toString()).toBe("");
          expect(run.status).toBe(0);
          const args = run.stdout.toString("utf8").split("\0").slice(0, -1);
          expect(args).toEqual([
            "launch",
            "/opt/it's here/train.py",
            ...options.map(([name, value]) => (value === true ? `--${name}` : `--${name}=${value}`)),
            "extra arg",
          ]);
          expect(readFileSync(file, "utf8").split("\n")[0]).toBe("#!/usr/bin/env bash");
        },
      ),
      25,
    );
  });
});

// --- Config validation: random mutations of valid documents -----------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type PathKey = string | number;

/** Every path in a JSON document that names a value (the root excluded). */
function allPaths(value: Json, prefix: PathKey[] = []): PathKey[][] {
  const out: PathKey[][] = [];
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push([...prefix, i], ...allPaths(v, [...prefix, i]));
    });
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) out.push([...prefix, k], ...allPaths(v, [...prefix, k]));
  }
  return out;
}

/** Every object (including the root) in a JSON document, by path. */
function objectPaths(value: Json, prefix: PathKey[] = []): PathKey[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => objectPaths(v, [...prefix, i]));
  if (value !== null && typeof value === "object") {
    return [prefix, ...Object.entries(value).flatMap(([k, v]) => objectPaths(v, [...prefix, k]))];
  }
  return [];
}

function at(doc: Json, path: readonly PathKey[]): Json {
  let v: Json = doc;
  for (const k of path) v = (v as Record<string | number, Json>)[k]!;
  return v;
}

function typeOf(v: Json): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

const REPLACEMENTS: readonly Json[] = [null, true, 42, -1.5, "text", [], [1], {}, { a: 1 }];

type Mutation =
  | { kind: "delete"; path: PathKey[] }
  | { kind: "wrong-type"; path: PathKey[]; value: Json }
  | { kind: "extra-key"; path: PathKey[] };

function mutations(doc: Json): fc.Arbitrary<Mutation> {
  const keyed = allPaths(doc).filter((p) => typeof p[p.length - 1] === "string");
  const typed = allPaths(doc);
  return fc.oneof(
    fc.constantFrom(...keyed).map((path): Mutation => ({ kind: "delete", path })),
    fc
      .tuple(fc.constantFrom(...typed), fc.constantFrom(...REPLACEMENTS))
      .filter(([path, value]) => typeOf(at(doc, path)) !== typeOf(value))
      .map(([path, value]): Mutation => ({ kind: "wrong-type", path, value })),
    fc.constantFrom(...objectPaths(doc)).map((path): Mutation => ({ kind: "extra-key", path })),
  );
}

function apply(doc: Json, m: Mutation): Json {
  const copy = structuredClone(doc);
  if (m.kind === "extra-key") {
    (at(copy, m.path) as Record<string, Json>).zzUnexpected = 1;
    return copy;
  }
  const parent = at(copy, m.path.slice(0, -1)) as Record<string | number, Json>;
  const key = m.path[m.path.length - 1]!;
  if (m.kind === "delete") delete parent[key];
  else parent[key] = m.value;
  return copy;
}

/**
 * Check one mutation: a document that parses must have lost only an optional key; a refused one must
 * be a UserError whose single-line message names the broken field (for an extra key: its object
 * and the key).
 */
function expectPathInError(params: {
  parse: (json: unknown) => unknown;
  doc: Json;
  mutation: Mutation;
  format: (path: readonly PathKey[]) => string;
  optional: ReadonlySet<string>;
}): void {
  const { mutation } = params;
  let error: unknown;
  try {
    params.parse(apply(params.doc, mutation));
  } catch (e) {
    error = e;
  }
  const key = String(mutation.path[mutation.path.length - 1]);
  if (error === undefined) {
    expect(
      mutation.kind === "delete" && params.optional.has(key),
      `accepted: ${JSON.stringify(mutation)}`,
    ).toBe(true);
    return;
  }
  expect(isUserError(error), String(error)).toBe(true);
  const message = (error as Error).message;
  expect(message).not.toMatch(/\n/);
  if (mutation.kind === "extra-key") {
    expect(message).toContain(`${params.format(mutation.path)}: Unrecognized key: "zzUnexpected"`);
  } else {
    expect(message).toContain(`${params.format(mutation.path)}: `);
  }
}

describe("config validation names the broken field", () => {
  const registryPath = join(import.meta.dirname, "..", "models", "registry.json");
  const registry = JSON.parse(readFileSync(registryPath, "utf8")) as Json;
  /** models/registry.json paths: `models[2].encoder.revision`, `(root)` for the document. */
  const registryFormat = (path: readonly PathKey[]): string => {
    let out = "";
    for (const k of path) out += typeof k === "number" ? `[${k}]` : out === "" ? k : `.${k}`;
    return out === "" ? "(root)" : out;
  };

  it("model registry (parseModelRegistry)", () => {
    expect(() => parseModelRegistry({ json: registry })).not.toThrow();
    check(
      fc.property(mutations(registry), (mutation) =>
        expectPathInError({
          parse: (json) => parseModelRegistry({ json }),
          doc: registry,
          mutation,
          format: registryFormat,
          optional: new Set([
            "$comment",
            "size",
            "sha256",
            "approxBytes",
            "source",
            "externalData",
            "fp16",
            "quantized",
          ]),
        }),
      ),
      400,
    );
  });

  const presetDir = join(import.meta.dirname, "..", "configs");
  const presetFiles = [
    "diffusers-sd15.json",
    "diffusers-sdxl-lora.json",
    "diffusers-flux-lora.json",
    "kohya-sd15-lora.json",
    "onetrainer-sd15-lora.json",
  ];
  /** Preset paths are dot-joined: `diffusers.script`, `(root)` for the document. */
  const presetFormat = (path: readonly PathKey[]): string => (path.length === 0 ? "(root)" : path.join("."));

  it.each(presetFiles)("training preset %s (parsePreset)", (file) => {
    const preset = JSON.parse(readFileSync(join(presetDir, file), "utf8")) as Json;
    expect(() => parsePreset({ json: preset, source: file })).not.toThrow();
    check(
      fc.property(mutations(preset), (mutation) =>
        expectPathInError({
          parse: (json) => parsePreset({ json, source: file }),
          doc: preset,
          mutation,
          format: presetFormat,
          optional: new Set(["rank", "pretrainedVae", "optimizer", "guidanceScale"]),
        }),
      ),
      150,
    );
  });
});
