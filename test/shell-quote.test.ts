// shellQuote/shellOption/launchScript: quoted words reach a real bash unchanged, whatever they hold.

import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { launchScript, shellOption, shellQuote } from "../src/export/shell-quote.js";

const HOSTILE = [
  "",
  " ",
  "plain",
  "it's",
  "'",
  "''",
  "'\\''",
  '"double" "quotes"',
  "$(touch pwned)",
  "`touch pwned`",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, meant literally
  "${HOME}",
  "$HOME",
  "back\\slash\\",
  "new\nline\n",
  "\r\n\t",
  "!history !!",
  "*?[a-z]",
  "; rm -rf / #",
  "a|b&c>d<e",
  "-dash-first",
  "--looks=like-an-option",
  "ünïcødé 猫 🐈 \u2028 \u00a0",
  "~user",
];

/** Runs `printf '%s\0' <words…>` in bash and returns what it printed, split at NUL. */
function bashEcho(words: readonly string[]): string[] {
  const script = `printf '%s\\0' ${words.join(" ")}`;
  const result = spawnSync("bash", ["-c", script], { encoding: "utf8" });
  expect(result.status, result.stderr).toBe(0);
  const out = result.stdout.split("\0");
  expect(out.pop()).toBe("");
  return out;
}

describe("shellQuote", () => {
  it("wraps every value in single quotes, plain words included", () => {
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });

  it("hands hostile strings to bash unchanged and runs nothing", () => {
    const cwd = process.cwd();
    expect(bashEcho(HOSTILE.map(shellQuote))).toEqual(HOSTILE);
    expect(spawnSync("test", ["-e", `${cwd}/pwned`]).status).not.toBe(0);
  });

  it("round-trips arbitrary Unicode strings through bash (property)", () => {
    const special = fc.constantFrom("'", '"', "\\", "$", "`", "\n", "\r", " ", "!", "(", ")", "'\\''");
    const text = fc.array(fc.oneof(special, fc.string({ unit: "grapheme", maxLength: 3 })), {
      maxLength: 12,
    });
    // NUL cannot be an argument (shellQuote refuses it, tested below).
    const words = fc
      .sample(text, { numRuns: 300, seed: 42 })
      .map((parts) => parts.join("").replaceAll("\u0000", ""));
    expect(bashEcho(words.map(shellQuote))).toEqual(words);
  });

  it("refuses NUL, which no argument can carry", () => {
    expect(() => shellQuote("a\u0000b")).toThrow(/without NUL/);
  });
});

describe("shellOption", () => {
  it("writes --name=value with the value quoted, and bare flags", () => {
    expect(shellOption({ name: "class_prompt", value: "-x 'y'" })).toBe("--class_prompt='-x '\\''y'\\'''");
    expect(shellOption({ name: "masked_loss", value: true })).toBe("--masked_loss");
    expect(bashEcho([shellOption({ name: "p", value: "$(id)\n`id`" })])).toEqual(["--p=$(id)\n`id`"]);
  });

  it("rejects option names that would need quoting", () => {
    expect(() => shellOption({ name: "a b", value: "x" })).toThrow(/option name/);
    expect(() => shellOption({ name: "$(x)", value: "x" })).toThrow(/option name/);
    expect(() => shellOption({ name: "", value: "x" })).toThrow(/option name/);
  });
});

describe("launchScript", () => {
  const base = { comments: ["c"], dirVariable: "X_DIR", dirHint: "h", script: "t.py", options: [] } as const;

  it("passes bash -n and flattens line breaks in comments", () => {
    const text = launchScript({ ...base, comments: ["one\nrm -rf /", "two"] });
    expect(text).toContain("# one rm -rf /\n# two\n");
    expect(spawnSync("bash", ["-n"], { input: text }).status).toBe(0);
  });

  it("rejects a bad variable or script name", () => {
    expect(() => launchScript({ ...base, dirVariable: "x; y" })).toThrow(/variable name/);
    expect(() => launchScript({ ...base, script: "../$(x).py" })).toThrow(/script file name/);
  });
});
