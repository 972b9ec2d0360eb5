// Start-up of the built CLI: `--help` and `--version` load no command module and none of the heavy
// libraries (onnxruntime, sharp, the Hub client, zod); a command loads its own module when named.
// Evidence, not timing: every module the process resolves is recorded by a resolve hook
// (node's module.register) that the child loads with --import. The CLI under test is either the
// bundle `npm run build` makes (a fresh ./dist: command modules are chunks named
// bundle-<command>-command-<hash>.js, zod and the CLI's folders are inside the chunks) or a
// file-per-module build (test/support/built-cli.ts); both must load lazily.

import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commands } from "../src/cli/commands.js";
import { type BuiltCli, builtCli } from "./support/built-cli.js";

const run = promisify(execFile);

/** Packages that a command may need but `--help` and `--version` must not load. */
const HEAVY_PACKAGES = ["onnxruntime-node", "onnxruntime-common", "sharp", "@huggingface/hub", "zod"];
/** Folders of the compiled CLI below the CLI's own floor: a command's work, not its parsing. */
const WORK_FOLDERS = ["segment", "image", "hub", "dataset", "export", "eval"];

let root: string;
let cli: BuiltCli;
let register: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-cli-startup-"));
  cli = await builtCli();
  // The hook appends every resolved URL to the file named by PERSAM_TEST_IMPORTS.
  await writeFile(
    join(root, "hooks.mjs"),
    [
      'import { appendFileSync } from "node:fs";',
      "export async function resolve(specifier, context, next) {",
      "  const result = await next(specifier, context);",
      '  appendFileSync(process.env.PERSAM_TEST_IMPORTS, result.url + "\\n");',
      "  return result;",
      "}",
      "",
    ].join("\n"),
  );
  register = join(root, "register.mjs");
  await writeFile(
    register,
    `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(join(root, "hooks.mjs")).href)});\n`,
  );
}, 120_000);

afterAll(async () => {
  await cli?.dispose();
  if (root) await rm(root, { recursive: true, force: true });
});

/** Run the built CLI with `argv` and return the URLs of every module it resolved. */
async function importsOf(argv: readonly string[]): Promise<{ urls: string[]; stdout: string }> {
  const list = join(root, `imports-${argv.join("-").replace(/[^a-z-]/g, "")}.txt`);
  await writeFile(list, "");
  const { stdout } = await run(process.execPath, ["--import", register, cli.binPath, ...argv], {
    env: { ...process.env, PERSAM_TEST_IMPORTS: list },
  });
  const urls = (await readFile(list, "utf8")).split("\n").filter((u) => u !== "");
  return { urls, stdout };
}

/** The command whose module `url` is, in either build, or undefined. */
function commandOf(url: string): string | undefined {
  return /\/cli\/(?:bundle-)?([a-z]+)-command(?:-[A-Za-z0-9]+)?\.js$/.exec(url)?.[1];
}

function heavyIn(urls: readonly string[]): string[] {
  return urls.filter(
    (u) =>
      HEAVY_PACKAGES.some((p) => u.includes(`/node_modules/${p}/`)) ||
      WORK_FOLDERS.some((f) => u.includes(`/dist/${f}/`)) ||
      commandOf(u) !== undefined,
  );
}

describe("persam-db start-up", () => {
  it("--version loads no command module and no heavy library", async () => {
    const { urls, stdout } = await importsOf(["--version"]);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(urls.some((u) => /\/cli\/(main|bin)\.js$/.test(u))).toBe(true);
    expect(heavyIn(urls)).toEqual([]);
  }, 60_000);

  it("--help loads no command module and no heavy library, and still lists every command", async () => {
    const { urls, stdout } = await importsOf(["--help"]);
    for (const entry of commands) expect(stdout).toContain(`persam-db ${entry.command.split(" ")[0]}`);
    expect(heavyIn(urls)).toEqual([]);
  }, 60_000);

  it("a named command loads its module and what it needs (here onnxruntime), and no other command's", async () => {
    const { urls, stdout } = await importsOf(["mask", "--help"]);
    expect(stdout).toContain("persam-db mask <image>");
    expect(urls.some((u) => commandOf(u) === "mask")).toBe(true);
    expect(urls.some((u) => u.includes("/node_modules/onnxruntime-node/"))).toBe(true);
    expect(urls.filter((u) => commandOf(u) !== undefined && commandOf(u) !== "mask")).toEqual([]);
  }, 60_000);
});

describe("the command list", () => {
  it("names and describes each command as its module does", async () => {
    for (const entry of commands) {
      const definition = (await entry.load()) as unknown as { command: string; describe: string };
      expect({ command: entry.command, describe: entry.describe }).toEqual({
        command: definition.command,
        describe: definition.describe,
      });
    }
  });
});
