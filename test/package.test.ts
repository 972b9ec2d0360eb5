// The package as its users get it: `npm pack` of a fresh build, unpacked where a consumer project's
// node_modules would hold it, then imported by name from JavaScript (a real prepare on the tiny
// model) and type-checked from TypeScript through the package's "exports" and declarations.

import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "./support/built-cli.js";
import { scene, writeJpeg } from "./support/photos.js";

const run = promisify(execFile);
const TSC = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");

let root: string;
let consumer: string;
let packed: string[];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-package-"));
  // A copy of the package's files with a fresh build (what `npm pack`'s prepack would make).
  const pkg = join(root, "pkg");
  await mkdir(pkg);
  await run(process.execPath, [
    TSC,
    "-p",
    join(REPO_ROOT, "tsconfig.build.json"),
    "--outDir",
    join(pkg, "dist"),
  ]);
  // The build's second step, as `npm run build` runs it: the CLI bundled in place.
  await run(process.execPath, [join(REPO_ROOT, "scripts", "bundle-cli.mjs"), join(pkg, "dist")], {
    cwd: REPO_ROOT,
  });
  for (const f of ["package.json", "README.md", "LICENSE"]) {
    await readFile(join(REPO_ROOT, f))
      .then((b) => writeFile(join(pkg, f), b))
      .catch(() => undefined);
  }
  await run("cp", ["-r", join(REPO_ROOT, "models"), join(REPO_ROOT, "configs"), pkg]);
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", root], {
    cwd: pkg,
    env: { ...process.env, npm_config_loglevel: "error" },
  });
  const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  packed = info.files.map((f) => f.path);

  // The consumer: its node_modules holds the unpacked tarball and the dependencies (linked).
  consumer = join(root, "consumer");
  const modules = join(consumer, "node_modules");
  await mkdir(join(modules, "persam-db"), { recursive: true });
  await run("tar", [
    "xzf",
    join(root, info.filename),
    "-C",
    join(modules, "persam-db"),
    "--strip-components=1",
  ]);
  for (const dep of await readdir(join(REPO_ROOT, "node_modules"))) {
    if (dep === "persam-db" || dep.startsWith(".")) continue;
    await symlink(join(REPO_ROOT, "node_modules", dep), join(modules, dep));
  }
  await writeFile(
    join(consumer, "package.json"),
    '{ "name": "consumer", "private": true, "type": "module" }\n',
  );
}, 180_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe("the packed package", () => {
  it("ships the build, the model registry and the presets, and no tests or sources", () => {
    expect(packed).toContain("dist/index.js");
    expect(packed).toContain("dist/index.d.ts");
    expect(packed).toContain("dist/cli/bin.js");
    expect(packed).toContain("models/registry.json");
    expect(packed).toContain("configs/prepare-defaults.json");
    expect(packed.filter((f) => /^(src|test|bench)\//.test(f) || f.endsWith(".test.js"))).toEqual([]);
  });

  it("runs its command-line program, bundled, as an installed package does", async () => {
    const bin = join(consumer, "node_modules", "persam-db", "dist", "cli", "bin.js");
    // The bundle: the entry loads its own chunks, not the one-file-per-module build.
    expect(packed.some((f) => /^dist\/cli\/bundle-.*\.js$/.test(f))).toBe(true);
    expect(await readFile(bin, "utf8")).not.toMatch(/from "\.\/main\.js"/);
    const version = await run(process.execPath, [bin, "--version"], { cwd: consumer });
    expect(version.stdout.trim()).toBe(
      JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")).version,
    );
    // yargs' own messages, from the bundle, as the unbundled program prints them.
    const usage = await run(process.execPath, [bin, "segment"], { cwd: consumer }).catch(
      (error: { stderr?: string; code?: number }) => error,
    );
    expect(usage).toMatchObject({ code: 1 });
    expect((usage as { stderr: string }).stderr).toContain(
      "Not enough non-option arguments: got 0, need at least 1",
    );
    // A real run: the tiny model's files, a photo folder, masks and the run's JSON out.
    const photos = join(consumer, "cli-photos");
    await mkdir(photos);
    for (let i = 1; i <= 2; i++) await writeJpeg(join(photos, `ball-${i}.jpg`), scene({ seed: i }));
    await writeFile(
      join(consumer, "tiny.mjs"),
      `import { writeTinyModel } from "persam-db";\nconsole.log(JSON.stringify(await writeTinyModel({ dir: "cli-tiny" })));\n`,
    );
    const tiny = JSON.parse((await run(process.execPath, ["tiny.mjs"], { cwd: consumer })).stdout) as {
      encoderPath: string;
      decoderPath: string;
    };
    // prepare reads the trainer presets (configs/) from the bundle's chunks' location.
    const prepared = await run(
      process.execPath,
      [
        bin,
        "prepare",
        "cli-photos",
        "-o",
        "cli-set",
        "--class",
        "ball",
        "--keep-doubtful",
        "--resolution",
        "64",
        "--encoder",
        tiny.encoderPath,
        "--decoder",
        tiny.decoderPath,
        "--json",
      ],
      {
        cwd: consumer,
        env: { ...process.env, PERSAM_DB_CACHE: join(root, "cli-cache"), HF_HUB_OFFLINE: "1" },
      },
    ).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`prepare failed: ${error.stderr ?? ""}${error.stdout ?? ""}`);
    });
    const document = JSON.parse(prepared.stdout) as { counts: { kept: number } };
    expect(document.counts.kept).toBe(2);
    expect((await readdir(join(consumer, "cli-set", "images"))).sort()).toEqual(["ball-1.png", "ball-2.png"]);
  }, 120_000);

  it("is imported by name and prepares a folder with the tiny test model", async () => {
    const photos = join(consumer, "photos");
    await mkdir(photos);
    for (let i = 1; i <= 2; i++) await writeJpeg(join(photos, `ball-${i}.jpg`), scene({ seed: i }));
    await writeFile(
      join(consumer, "use.mjs"),
      `import { prepare, SamModel, writeTinyModel, UserError } from "persam-db";
const tiny = await writeTinyModel({ dir: "tiny" });
const model = await SamModel.load({ files: { encoderPath: tiny.encoderPath, decoderPath: tiny.decoderPath, label: "tiny" } });
try {
  const result = await prepare({ inputDir: "photos", model, className: "ball", keepDoubtful: true, resolution: 64 });
  console.log(JSON.stringify({ kept: result.counts.kept, test: model.isTestModel, userError: typeof UserError }));
} finally {
  await model.dispose();
}
`,
    );
    const { stdout } = await run(process.execPath, ["use.mjs"], { cwd: consumer });
    expect(JSON.parse(stdout)).toEqual({ kept: 2, test: true, userError: "function" });
  }, 120_000);

  it("type-checks a TypeScript consumer against the package's declarations", async () => {
    await writeFile(
      join(consumer, "use.ts"),
      `import { type PrepareParams, type PrepareResult, planPrepare, UserError } from "persam-db";
const params: PrepareParams = { inputDir: "photos", dryRun: true, className: "ball" };
const plan = await planPrepare(params);
const needs: boolean = plan.needsModel;
const result: PrepareResult | undefined = undefined;
export { needs, result, UserError };
`,
    );
    await writeFile(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          strict: true,
          noEmit: true,
          types: ["node"],
        },
        files: ["use.ts"],
      }),
    );
    const checked = await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: consumer }).then(
      () => "ok",
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(checked).toBe("ok");
  }, 120_000);
});
