// The compiled CLI for tests that must run `persam-db` as a real child process (crash tests kill it
// with SIGKILL mid-write, which an in-process run cannot survive).
//
// Decision: reuse the repository's ./dist when it is fresh — every src/**/*.ts has its dist/**/*.js
// and none is newer than its output — and otherwise transpile src once into a private temporary
// folder with TypeScript's transpileModule, file by file, without type checking (about 4 s of CPU on
// this repository against about 12 s for `tsc -p tsconfig.build.json`; the type check is
// `npm test`'s own first step). The emit is the one tsc gives: the project compiles with
// verbatimModuleSyntax, so every file transpiles on its own, and ES2022 target and modules are what
// tsconfig.json's ES2022 / NodeNext give for this "type": "module" package. A stale ./dist is never used (others edit src while tests
// run) and never overwritten (a build there would race with `npm run build` and other test files).
//
// The temporary folder mirrors the package layout the compiled code expects: `<tmp>/package.json`
// (a copy of the package's), and symbolic links `node_modules`, `configs` and `models` to the repository's
// (src/export/presets.ts and src/segment/models/model-registry.ts find those folders from their own path).

import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

/** The repository root (this file is test/support/built-cli.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A compiled CLI ready to spawn with `node binPath …`. */
export interface BuiltCli {
  /** Absolute path of the compiled `cli/bin.js`. */
  readonly binPath: string;
  /** True when the repository's ./dist was fresh and is used as it is. */
  readonly reused: boolean;
  /** Wall-clock milliseconds spent checking and transpiling. */
  readonly buildMs: number;
  /** Remove the temporary build (nothing to do when ./dist was reused). */
  dispose(): Promise<void>;
}

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await tsFiles(abs)));
    else if (entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(abs);
  }
  return out;
}

/** True when every src/**\/*.ts has a dist/**\/*.js at least as new as itself. */
export async function distIsFresh(root = REPO_ROOT): Promise<boolean> {
  const src = join(root, "src");
  const dist = join(root, "dist");
  if (!existsSync(join(dist, "cli", "bin.js"))) return false;
  for (const ts of await tsFiles(src)) {
    const js = join(dist, relative(src, ts)).replace(/\.ts$/, ".js");
    const [a, b] = await Promise.all([stat(ts), stat(js).catch(() => undefined)]);
    if (!b || b.mtimeMs < a.mtimeMs) return false;
  }
  return true;
}

/**
 * The CLI compiled from the current src: ./dist when fresh, else a private build in a temporary
 * folder (see the file comment). Call `dispose()` in afterAll.
 * @throws when src has no cli/bin.ts, or a file system error
 */
export async function builtCli(): Promise<BuiltCli> {
  const started = performance.now();
  if (await distIsFresh()) {
    return {
      binPath: join(REPO_ROOT, "dist", "cli", "bin.js"),
      reused: true,
      buildMs: performance.now() - started,
      dispose: async () => {},
    };
  }
  const dir = await mkdtemp(join(tmpdir(), "persam-cli-build-"));
  try {
    // The package's own manifest: "type": "module", and the name and version the CLI reports.
    await writeFile(join(dir, "package.json"), await readFile(join(REPO_ROOT, "package.json")));
    for (const link of ["node_modules", "configs", "models"]) {
      await symlink(join(REPO_ROOT, link), join(dir, link), "dir");
    }
    const src = join(REPO_ROOT, "src");
    for (const file of await tsFiles(src)) {
      const out = join(dir, "dist", relative(src, file)).replace(/\.ts$/, ".js");
      const { outputText } = ts.transpileModule(await readFile(file, "utf8"), {
        fileName: file,
        compilerOptions: {
          module: ts.ModuleKind.ES2022,
          target: ts.ScriptTarget.ES2022,
          verbatimModuleSyntax: true,
          sourceMap: false,
        },
      });
      await mkdir(dirname(out), { recursive: true });
      await writeFile(out, outputText);
    }
    const binPath = join(dir, "dist", "cli", "bin.js");
    if (!existsSync(binPath)) throw new Error(`no src/cli/bin.ts to transpile into ${binPath}`);
    return {
      binPath,
      reused: false,
      buildMs: performance.now() - started,
      dispose: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
