// Property (fast-check, fixed seed): every command, given each of its options twice with arbitrary
// values, ends as a usage line, a user error or a finished run — never exit 70 ("a bug"). The options
// are read from each command's own yargs builder, so a new option is covered without listing it here.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import yargs, { type Argv } from "yargs";
import { commands } from "../src/cli/commands.js";
import { ExitCode } from "../src/errors.js";
import { runCli } from "./support/cli.js";

const SEED = 0x7717_0014;
const GLOBAL_BOOLEANS = ["json", "verbose", "quiet"];

interface OptionSpec {
  readonly key: string;
  readonly boolean: boolean;
  readonly repeatable: boolean;
  readonly choices: readonly string[];
}

interface CommandSpec {
  readonly name: string;
  /** How many required positionals the command string has (`prepare <dir>` → 1). */
  readonly positionals: number;
  readonly options: readonly OptionSpec[];
}

interface OptionTable {
  readonly key: Record<string, unknown>;
  readonly alias: Record<string, string[]>;
  readonly array: string[];
  readonly boolean: string[];
  readonly choices: Record<string, unknown[]>;
}

// Every command's module, loaded as running the command loads it.
const definitions = await Promise.all(
  commands.map(async (entry) => ({ command: entry.command, builder: (await entry.load()).builder })),
);

function commandSpecs(): CommandSpec[] {
  return definitions.map((definition) => {
    const built = definition.builder(yargs([]) as never) as unknown as Argv;
    const table = (built as unknown as { getOptions(): OptionTable }).getOptions();
    const aliases = new Set(Object.values(table.alias).flat());
    // `<inputs..>` (a variadic positional) names the key `inputs`.
    const positionalNames = (String(definition.command).match(/[<[][^>\]]+[>\]]/g) ?? []).map((p) =>
      p.slice(1, -1).replace(/\.\.$/, ""),
    );
    const keys = Object.keys(table.key).filter(
      (k) => !aliases.has(k) && !positionalNames.includes(k) && k !== "help" && k !== "version",
    );
    const options = [...keys, ...GLOBAL_BOOLEANS].map((key) => ({
      key,
      boolean: GLOBAL_BOOLEANS.includes(key) || table.boolean.includes(key),
      repeatable: table.array.includes(key),
      choices: (table.choices[key] ?? []).map(String),
    }));
    const name = String(definition.command).split(" ")[0]!;
    const positionals = (String(definition.command).match(/<[^>]+>/g) ?? []).length;
    return { name, positionals, options };
  });
}

/** Values that are never read as an option themselves (they never start with "-"). */
const value = (choices: readonly string[]) =>
  fc.oneof(
    ...(choices.length > 0 ? [fc.constantFrom(...choices)] : []),
    fc.stringMatching(/^[a-z0-9.,:/_ ]{0,8}$/),
    fc.integer({ min: 0, max: 5000 }).map(String),
    fc.constantFrom("", "0", "1,2", "1,2,3,4", "a/b", "nan", "1e9"),
  );

let root: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-cli-options-"));
  // Offline, own caches, no token: a command that does run touches nothing outside `root`.
  env = {
    PATH: process.env.PATH,
    HOME: root,
    HF_HUB_OFFLINE: "1",
    HF_HOME: join(root, "hf"),
    PERSAM_DB_CACHE: join(root, "persam"),
  };
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("every option of every command given twice", () => {
  const specs = commandSpecs();

  it("covers every command and finds their options", () => {
    expect(specs.map((s) => s.name).sort()).toEqual(
      ["cache", "doctor", "eval", "mask", "models", "prepare", "push", "review", "segment"].sort(),
    );
    const prepare = specs.find((s) => s.name === "prepare")!;
    expect(prepare.options.map((o) => o.key)).toEqual(
      expect.arrayContaining(["class", "output", "ref-point"]),
    );
  });

  for (const spec of specs) {
    it(`${spec.name}: never exit 70; a single-value option given twice is one usage line`, async () => {
      // Positionals name paths that do not exist: a run that gets past its options stops there.
      const positionals = Array.from({ length: spec.positionals }, (_, i) => join(root, `missing-${i}`));
      for (const option of spec.options) {
        await fc.assert(
          fc.asyncProperty(value(option.choices), value(option.choices), async (a, b) => {
            const flag = `--${option.key}`;
            const argv = option.boolean
              ? [spec.name, ...positionals, flag, flag]
              : [spec.name, ...positionals, flag, a, flag, b];
            const run = await runCli(argv, { env, cwd: root });
            expect(run.code, `${argv.join(" ")}\n${run.stderr}`).not.toBe(ExitCode.bug);
            expect(run.stderr).not.toContain("a bug");
            if (!option.boolean && !option.repeatable) {
              expect(run.code).toBe(ExitCode.userError);
              expect(run.stderr).toContain(`${flag} was given twice`);
            }
          }),
          { seed: SEED, numRuns: 4 },
        );
      }
    });
  }
});
