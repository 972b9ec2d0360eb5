// Failures that are the user's to fix end as one line and exit 1, never as "unexpected error (a bug)":
// operating-system errors on outputs (each code mapped, and the real ones this machine can make), a
// repeated or value-less option, and with --json one `{"error": …}` document, interruptions included.

import { execFileSync } from "node:child_process";
import { EventEmitter } from "node:events";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeFailure } from "../src/cli/main.js";
import { installStopSignals } from "../src/cli/stop-signals.js";
import { ExitCode, SYSTEM_ERROR_CODES, systemUserError, UserError } from "../src/errors.js";
import { type TinyModelFiles, writeTinyModel } from "../src/segment/models/tiny-model.js";
import { writeFileAtomic } from "../src/util/atomic-write.js";
import { runCli } from "./support/cli.js";
import { scene, writeJpeg, writeSceneMask } from "./support/photos.js";

let root: string;
let model: TinyModelFiles;
let photos: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-cli-errors-"));
  model = await writeTinyModel({ dir: join(root, "model") });
  photos = join(root, "my-toy");
  await mkdir(photos);
  for (let i = 0; i < 2; i++)
    await writeJpeg(join(photos, `toy-${i + 1}.jpg`), scene({ at: [0.4 + 0.2 * i, 0.5], seed: i }));
  await writeSceneMask(join(photos, "toy-1.mask.png"), { at: [0.4, 0.5] });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const modelArgs = () => ["--encoder", model.encoderPath, "--decoder", model.decoderPath, "--threads", "1"];
const prepareArgs = (out: string) => [
  "prepare",
  photos,
  "-o",
  out,
  ...modelArgs(),
  "--resolution",
  "64",
  "--keep-doubtful",
];

/** The one error line of a run (stderr without the test model's warning). */
function errorLines(stderr: string): string[] {
  return stderr
    .split("\n")
    .filter((l) => l !== "" && !l.includes("RANDOM TEST WEIGHTS") && !l.startsWith("class:"));
}

/** Mount a tmpfs at `dir` (root only); false, with a visible message, where that is not possible. */
function mountTmpfs(dir: string, options: string, what: string): boolean {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { stdio: "ignore" });
    return true;
  } catch {
    console.warn(`[skip] ${what}: cannot mount a tmpfs here (needs root); the mapping test covers the code`);
    return false;
  }
}

describe("operating-system errors are user errors", () => {
  it.each(SYSTEM_ERROR_CODES)("%s names the path and says what to do, exit 1", (code) => {
    const error = Object.assign(new Error(`${code}: something, open '/out/x.png'`), {
      code,
      path: "/out/x.png",
    });
    const failure = describeFailure(error);
    expect(failure.kind).toBe("user");
    expect(failure.exitCode).toBe(ExitCode.userError);
    expect(failure.message).toMatch(new RegExp(`^/out/x\\.png: .+ \\(${code}\\)$`));
    expect(failure.hint).toBeTruthy();
    expect(failure.line).not.toContain("\n");
    // Wrapped one cause deep (as fetch and others do), and without a path of its own.
    const wrapped = new Error("write failed", { cause: Object.assign(new Error(code), { code }) });
    expect(systemUserError(wrapped, "/out/y.png")?.message).toMatch(/^\/out\/y\.png: /);
    expect(describeFailure(Object.assign(new Error(code), { code })).kind).toBe("user");
  });

  it("a folder that cannot be created (Node says ENOENT for mkdir) is the user's too", () => {
    const error = Object.assign(new Error("ENOENT: no such file or directory, mkdir '/ro/set'"), {
      code: "ENOENT",
      syscall: "mkdir",
      path: "/ro/set",
    });
    expect(describeFailure(error).line).toBe(
      "/ro/set: cannot create this folder (ENOENT) — check that the disk is writable and that no part of the path is a file",
    );
    // Any other ENOENT (a file we expected to read) stays what it is.
    expect(
      describeFailure(Object.assign(new Error("ENOENT"), { code: "ENOENT", syscall: "open" })).kind,
    ).toBe("bug");
  });

  it("leaves other errors bugs (exit 70) and UserErrors as they are", () => {
    expect(describeFailure(Object.assign(new Error("boom"), { code: "ERR_ASSERTION" })).exitCode).toBe(
      ExitCode.bug,
    );
    expect(describeFailure(new TypeError("x is undefined")).kind).toBe("bug");
    expect(describeFailure(new UserError("bad", { hint: "fix it" })).line).toBe("bad — fix it");
  });

  it("an output path that is a file: one line, exit 1, no misleading state warning", async () => {
    const file = join(root, "out-is-a-file");
    await writeFile(file, "not a folder");
    const run = await runCli(prepareArgs(file));
    expect(run.code, run.stderr).toBe(ExitCode.userError);
    expect(errorLines(run.stderr)).toEqual([
      `persam-db: error: The output folder ${file} is a file — choose another output folder (-o DIR), or move the file out of the way`,
    ]);
    expect(run.stderr).not.toContain("cannot read");
  });

  it("an output path under a file (ENOTDIR) names the path, exit 1", async () => {
    const file = join(root, "a-file");
    await writeFile(file, "x");
    const run = await runCli([
      "mask",
      join(photos, "toy-1.jpg"),
      "--point",
      "30,30",
      "-o",
      join(file, "m.png"),
      ...modelArgs(),
    ]);
    expect(run.code, run.stderr).toBe(ExitCode.userError);
    expect(errorLines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toContain(join(file, "m.png"));
    expect(run.stderr).not.toContain("a bug");
  });

  it("a mask written over a folder (EISDIR) names it, exit 1", async () => {
    const folder = join(root, "a-folder.png");
    await mkdir(folder, { recursive: true });
    const run = await runCli([
      "mask",
      join(photos, "toy-1.jpg"),
      "--point",
      "30,30",
      "-o",
      folder,
      ...modelArgs(),
    ]);
    expect(run.code, run.stderr).toBe(ExitCode.userError);
    expect(errorLines(run.stderr)).toEqual([
      `persam-db: error: ${folder}: this is a folder where a file is expected (EISDIR) — give a file name, or move the folder out of the way`,
    ]);
  });

  describe("a full disk (a 64 KiB tmpfs)", () => {
    const disk = join(tmpdir(), `persam-full-${process.pid}`);
    let mounted = false;
    beforeAll(async () => {
      await mkdir(disk, { recursive: true });
      mounted = mountTmpfs(disk, "size=64k", "ENOSPC on a real disk");
    });
    afterAll(async () => {
      if (mounted) execFileSync("umount", [disk]);
      await rm(disk, { recursive: true, force: true });
    });

    it("prepare stops with one line naming a file on it, exit 1, every time", async (ctx) => {
      if (!mounted) ctx.skip();
      for (let i = 0; i < 3; i++) {
        const out = join(disk, `set-${i}`);
        const run = await runCli(prepareArgs(out));
        expect(run.code, run.stderr).toBe(ExitCode.userError);
        // Progress lines (the reference, the photos done before the disk filled) are not errors.
        const lines = errorLines(run.stderr).filter((l) => !/^(photos|reference:) /.test(l));
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(
          new RegExp(
            `^persam-db: error: ${disk}/set-${i}/\\S+: no space left on the disk \\(ENOSPC\\) — free some space`,
          ),
        );
        await rm(out, { recursive: true, force: true });
      }
    });

    it("writeFileAtomic names the final file, not its temporary name", async (ctx) => {
      if (!mounted) ctx.skip();
      const path = join(disk, "big.bin");
      const error = await writeFileAtomic(path, new Uint8Array(1 << 20)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UserError);
      expect((error as UserError).message).toBe(`${path}: no space left on the disk (ENOSPC)`);
    });
  });

  describe("a read-only disk", () => {
    const disk = join(tmpdir(), `persam-ro-${process.pid}`);
    let mounted = false;
    beforeAll(async () => {
      await mkdir(disk, { recursive: true });
      mounted = mountTmpfs(disk, "size=1m,ro", "EROFS on a real disk");
    });
    afterAll(async () => {
      if (mounted) execFileSync("umount", [disk]);
      await rm(disk, { recursive: true, force: true });
    });

    it("prepare stops with one line, exit 1", async (ctx) => {
      if (!mounted) ctx.skip();
      const run = await runCli(prepareArgs(join(disk, "set")));
      expect(run.code, run.stderr).toBe(ExitCode.userError);
      const lines = errorLines(run.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(join(disk, "set"));
      // Node's recursive mkdir reports a read-only disk as ENOENT; either way the line says what to do.
      expect(lines[0]).toMatch(/\((EROFS|ENOENT)\) — .*(writable|disk)/);
    });
  });

  it("a folder without write permission: one line, exit 1", async (ctx) => {
    if (process.getuid?.() === 0) {
      console.warn(
        "[skip] EACCES on a real folder: root may write anywhere; the mapping test covers the code",
      );
      ctx.skip();
    }
    const locked = join(root, "locked");
    await mkdir(locked);
    await chmod(locked, 0o500);
    try {
      const run = await runCli(prepareArgs(join(locked, "set")));
      expect(run.code, run.stderr).toBe(ExitCode.userError);
      expect(errorLines(run.stderr)).toHaveLength(1);
      expect(run.stderr).toContain(locked);
    } finally {
      await chmod(locked, 0o700);
    }
  });
});

describe("the command line", () => {
  it.each([
    [["prepare", "x", "--class", "a", "--class", "b"], "--class was given twice; give it once"],
    [["prepare", "x", "-o", "a", "-o", "b"], "--output was given twice; give it once"],
    [
      ["prepare", "x", "--resolution", "64", "--resolution", "128", "--resolution", "256"],
      "--resolution was given 3 times; give it once",
    ],
    [["mask", "x.jpg", "--box", "1,2,3,4", "--box", "1,2,3,4"], "--box was given twice; give it once"],
    [["push", "x", "--repo", "a/b", "--repo", "c/d"], "--repo was given twice; give it once"],
    [["doctor", "--timeout"], "Not enough arguments following: timeout"],
    [["eval", "x", "--ref-idx"], "Not enough arguments following: ref-idx"],
  ])("%j is one usage line, exit 1", async (argv, line) => {
    const run = await runCli(argv);
    expect(run.code).toBe(ExitCode.userError);
    expect(run.stderr).toBe(`persam-db: ${line}\nRun 'persam-db --help' for usage.\n`);
  });

  it("repeatable options stay repeatable", async () => {
    const run = await runCli([
      "mask",
      join(photos, "toy-1.jpg"),
      "--point",
      "20,20",
      "--point",
      "40,30",
      "-o",
      join(root, "two-points.png"),
      ...modelArgs(),
    ]);
    expect(run.code, run.stderr).toBe(ExitCode.ok);
  });

  it("--version prints the package's version", async () => {
    const { version } = JSON.parse(
      execFileSync("node", ["-p", "JSON.stringify(require('./package.json'))"], { encoding: "utf8" }),
    );
    const run = await runCli(["--version"]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(version);
  });
});

describe("--json on failure", () => {
  it("prints one error document on stdout for a user error", async () => {
    const run = await runCli(["prepare", join(root, "missing"), "--json"]);
    expect(run.code).toBe(ExitCode.userError);
    const doc = JSON.parse(run.stdout);
    expect(doc).toEqual({
      error: {
        kind: "user",
        message: `The photo folder ${join(root, "missing")} does not exist`,
        hint: "check the path",
        line: `The photo folder ${join(root, "missing")} does not exist — check the path`,
        exitCode: 1,
      },
    });
  });

  it("prints one error document for a usage error", async () => {
    const run = await runCli(["doctor", "--json", "--timeout", "1", "--timeout", "2"]);
    expect(run.code).toBe(ExitCode.userError);
    expect(JSON.parse(run.stdout).error.kind).toBe("usage");
  });

  it("prints one error document when interrupted (exit 130)", async () => {
    const run = await runCli([...prepareArgs(join(root, "interrupted")), "--json"], {
      signal: AbortSignal.abort(),
    });
    expect(run.code).toBe(ExitCode.interrupted);
    const doc = JSON.parse(run.stdout);
    expect(doc.error.kind).toBe("interrupted");
    expect(doc.error.exitCode).toBe(130);
  });
});

describe("stop signals", () => {
  it.each(["SIGINT", "SIGTERM"] as const)(
    "%s stops after the current step, a second one quits at once",
    (first) => {
      const source = new EventEmitter();
      const controller = new AbortController();
      const written: string[] = [];
      const exits: number[] = [];
      installStopSignals({ source, controller, write: (t) => written.push(t), exit: (c) => exits.push(c) });
      source.emit(first);
      expect(controller.signal.aborted).toBe(true);
      expect(written.join("")).toContain("stopping after the current step");
      expect(exits).toEqual([]);
      source.emit(first === "SIGINT" ? "SIGTERM" : "SIGINT");
      expect(exits).toEqual([ExitCode.interrupted]);
    },
  );
});
