// Real child processes that take the run lock of an output folder (src/util/run-lock.ts, transpiled
// with its one import into a temporary folder), for tests that need a second process: one that holds
// the lock, one that dies holding it, several racing for it.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import ts from "typescript";
import { REPO_ROOT } from "./built-cli.js";

/** The child program: take the lock, say so, then hold it until stdin ends (or exit at once). */
const CHILD = `import { acquireRunLock } from "./util/run-lock.js";
const [outDir, command, mode] = process.argv.slice(2);
let lock;
try {
  lock = await acquireRunLock({ outDir, command });
} catch (error) {
  process.stdout.write("refused " + error.message + "\\n");
  process.exit(3);
}
process.stdout.write("locked " + JSON.stringify(lock.tookOver ?? null) + "\\n");
if (mode === "exit") process.exit(0);
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
`;

/** A folder holding the compiled lock module and the child program. */
export interface LockChildren {
  /** Start a child taking the lock of `outDir` as `command`; `exit`: leave without releasing. */
  start(outDir: string, command: string, mode?: "hold" | "exit"): LockChild;
  dispose(): Promise<void>;
}

/** One child and what it said first. */
export interface LockChild {
  readonly process: ChildProcess;
  /** `locked …` or `refused …`. */
  readonly firstLine: Promise<string>;
  /** The exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
}

/** Transpile src/util/run-lock.ts and src/errors.ts and write the child program. */
export async function lockChildren(): Promise<LockChildren> {
  const dir = await mkdtemp(join(tmpdir(), "persam-lock-child-"));
  await writeFile(join(dir, "package.json"), '{ "type": "module" }\n');
  for (const rel of ["util/run-lock.ts", "errors.ts"]) {
    const source = await readFile(join(REPO_ROOT, "src", rel), "utf8");
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
    });
    const out = join(dir, rel.replace(/\.ts$/, ".js"));
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, outputText);
  }
  const program = join(dir, "child.mjs");
  await writeFile(program, CHILD);
  return {
    start(outDir, command, mode = "hold") {
      const child = spawn(process.execPath, [program, outDir, command, mode], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      let out = "";
      const firstLine = new Promise<string>((resolve, reject) => {
        child.stdout!.on("data", (d) => {
          out += String(d);
          const nl = out.indexOf("\n");
          if (nl >= 0) resolve(out.slice(0, nl));
        });
        child.once("exit", () =>
          out.includes("\n") ? undefined : reject(new Error(`child said nothing: ${out}`)),
        );
      });
      const exited = new Promise<number | string>((resolve) =>
        child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
      );
      return { process: child, firstLine, exited };
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
