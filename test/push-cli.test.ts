// `persam-db push` in-process against the loopback Hub, through a yargs instance registered the way
// src/cli/main.ts registers commands and with captured streams: token sources, output modes, --help,
// error lines, exit codes, and the token absent from every byte of output and of the folder.

import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import yargs, { type Argv } from "yargs";
import type { CommandContext, GlobalOptions } from "../src/cli/command.js";
import { type CliIo, Reporter } from "../src/cli/io.js";
import { pushCommand } from "../src/cli/push-command.js";
import { ExitCode, isUserError } from "../src/errors.js";
import type { PushResult } from "../src/hub/dataset-push.js";
import { type HubServer, startHubServer } from "./support/hub-server.js";

const TOKEN = "hf_clipushsecret00000000001";
const FILE_TOKEN = "hf_fromthetokenfile000000001";
const FLAG_TOKEN = "hf_fromtheflag00000000000001";
let server: HubServer;
let work: string;
let outDir: string;
let env: Record<string, string>;
const outputs: string[] = [];

beforeAll(async () => {
  server = await startHubServer();
  work = await mkdtemp(join(tmpdir(), "persam-push-cli-"));
  outDir = join(work, "cat.persam");
  await mkdir(join(outDir, "images"), { recursive: true });
  await mkdir(join(outDir, ".persam"), { recursive: true });
  const png = () => Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), randomBytes(1500)]);
  await writeFile(join(outDir, "images", "a.png"), png());
  await writeFile(join(outDir, "images", "b.png"), png());
  await writeFile(
    join(outDir, "metadata.jsonl"),
    '{"file_name":"images/a.png","text":"sks cat"}\n{"file_name":"images/b.png","text":"sks cat"}\n',
  );
  await writeFile(join(outDir, "README.md"), "# cat\n");
  await writeFile(join(outDir, ".persam", "state.json"), "{}");
  await mkdir(join(work, "hf-home"), { recursive: true });
  env = { HF_ENDPOINT: `${server.url}/`, HF_TOKEN: TOKEN, HF_HOME: join(work, "hf-home") };
});

afterAll(async () => {
  await server.stop();
  for (const text of outputs) {
    for (const t of [TOKEN, FILE_TOKEN, FLAG_TOKEN]) expect(text).not.toContain(t);
  }
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && p !== join(work, "hf-home", "token")) {
        const bytes = await readFile(p);
        for (const t of [TOKEN, FILE_TOKEN, FLAG_TOKEN]) expect(bytes.includes(t), p).toBe(false);
      }
    }
  };
  await walk(work);
  await rm(work, { recursive: true, force: true });
});

/** Run `persam-db <argv>` with only the push command registered. */
async function run(argv: string[], runEnv: Record<string, string> = env, isTty = false) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d) => (out += d));
  stderr.on("data", (d) => (err += d));
  const io: CliIo = { stdout, stderr, env: runEnv, cwd: work, isTty };
  let code: number = ExitCode.ok;
  const context: CommandContext = {
    io,
    reporter: (o: GlobalOptions) => new Reporter(io, o.json, o.quiet),
    setExitCode: (c) => {
      code = Math.max(code, c);
    },
  };
  const parser = (yargs(argv) as Argv)
    .option("json", { type: "boolean", default: false })
    .option("verbose", { type: "boolean", default: false })
    .option("quiet", { type: "boolean", default: false })
    .strict()
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new Error(message);
    })
    .command({
      command: pushCommand.command,
      describe: pushCommand.describe,
      builder: (y: Argv) => pushCommand.builder(y as Argv<GlobalOptions>) as unknown as Argv,
      handler: async (o) => pushCommand.handler(o as never, context),
    });
  try {
    await parser.parseAsync(argv, {}, (_e, _p, output) => {
      if (output) out += output;
    });
  } catch (error) {
    if (!isUserError(error)) throw error;
    err += `persam-db: error: ${error.toLine()}\n`;
    code = error.exitCode;
  }
  outputs.push(out, err);
  return { code, out, err };
}

describe("persam-db push", () => {
  it("--help lists the options with examples", async () => {
    const r = await run(["push", "--help"]);
    expect(r.out).toContain("--repo");
    expect(r.out).toContain("--dry-run");
    expect(r.out).toContain("Examples:");
    expect(r.out).toContain("push my-cat.persam --repo");
    expect(r.out).toContain("--pr -m 'Add my cat'");
  });

  it("pushes with HF_TOKEN and HF_ENDPOINT, plain progress lines, then says up to date", async () => {
    const r = await run(["push", "cat.persam", "--repo", "me/cli-cat"]);
    expect(r.code).toBe(ExitCode.ok);
    expect(r.out).toMatch(
      /^pushed 4 files \(.+\) to me\/cli-cat \(new repo\), 0 unchanged — commit [0-9a-f]{7}: /,
    );
    expect(r.err).toContain("hashing 4/4");
    expect(r.err).toMatch(/uploaded \d\/4 images\/[ab]\.png/);
    expect(r.err).toContain("skipped .persam/: persam-db resume state");
    expect(server.file({ type: "dataset", name: "me/cli-cat", path: "images/b.png" })).toBeDefined();

    server.clearRequests();
    const again = await run(["push", "cat.persam", "--repo", "me/cli-cat"]);
    expect(again.out).toMatch(/^me\/cli-cat is up to date \(4 files unchanged, nothing committed\)/);
    expect(server.requestsTo(/\/commit\//)).toHaveLength(0);
  });

  it("draws a bar on a terminal and prints only one JSON document with --json", async () => {
    await writeFile(join(outDir, "README.md"), "# cat, take 2\n");
    const tty = await run(["push", "cat.persam", "--repo", "me/cli-cat", "--dry-run"], env, true);
    expect(tty.err).toContain("\r\x1b[2K");
    expect(tty.out).toMatch(
      /dry run: would upload 1 file \(\d+ B\) to me\/cli-cat; 3 unchanged\n {2}\+ README\.md/,
    );

    const r = await run(["push", "cat.persam", "--repo", "me/cli-cat", "--json", "-m", "New card"]);
    expect(r.err).toBe("");
    const doc = JSON.parse(r.out) as PushResult;
    expect(doc.uploaded.map((f) => f.path)).toEqual(["README.md"]);
    expect(doc.title).toBe("New card");
    expect(doc.commitOid).toBe(server.head({ type: "dataset", name: "me/cli-cat" }));
  });

  it("takes --token over HF_TOKEN, then the token file, and --endpoint over HF_ENDPOINT", async () => {
    server.rejectToken(TOKEN);
    const flag = await run([
      "push",
      "cat.persam",
      "--repo",
      "me/cli-flag",
      "--token",
      FLAG_TOKEN,
      "--private",
    ]);
    expect(flag.code).toBe(ExitCode.ok);
    const tokenFile = join(work, "hf-home", "token");
    await writeFile(tokenFile, `${FILE_TOKEN}\n`);
    const fromFile = await run(["push", "cat.persam", "--repo", "me/cli-file", "--endpoint", server.url], {
      HF_ENDPOINT: "http://127.0.0.1:9",
      HF_HOME: join(work, "hf-home"),
    });
    expect(fromFile.code).toBe(ExitCode.ok);
    await rm(tokenFile);

    const rejected = await run(["push", "cat.persam", "--repo", "me/cli-bad"]);
    expect(rejected.code).toBe(ExitCode.userError);
    expect(rejected.err.trim().split("\n")).toHaveLength(1);
    expect(rejected.err).toMatch(/^persam-db: error: .*401 Unauthorized.*invalid or expired/);
  });

  it("a missing token is one line saying how to get and set one", async () => {
    const r = await run(["push", "cat.persam", "--repo", "me/cli-none"], {
      HF_ENDPOINT: server.url,
      HF_HOME: join(work, "hf-home"),
    });
    expect(r.code).toBe(ExitCode.userError);
    expect(r.err).toBe(
      "persam-db: error: persam-db push needs a Hugging Face token with write access — create a token with the 'write' role at https://huggingface.co/settings/tokens, then set HF_TOKEN=hf_… (or run 'huggingface-cli login', or pass --token)\n",
    );
  });

  it("a missing folder, a bad repo id and --pr to a missing branch are one line each", async () => {
    const missing = await run(["push", "nope.persam", "--repo", "me/x", "--token", FLAG_TOKEN]);
    expect(missing.err).toMatch(
      /^persam-db: error: output folder .*nope\.persam does not exist — run 'persam-db prepare/,
    );
    const badRepo = await run(["push", "cat.persam", "--repo", "just-a-name", "--token", FLAG_TOKEN]);
    expect(badRepo.err).toMatch(
      /Expected a Hub repo id "namespace\/name" for --repo but received 'just-a-name'/,
    );
    const branch = await run([
      "push",
      "cat.persam",
      "--repo",
      "me/cli-flag",
      "--branch",
      "dev",
      "--pr",
      "--token",
      FLAG_TOKEN,
    ]);
    expect(branch.err).toMatch(
      /^persam-db: error: branch 'dev' does not exist in dataset me\/cli-flag — a pull request needs an existing branch/,
    );
    for (const r of [missing, badRepo, branch]) expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  it("--branch that does not exist is created from main", async () => {
    const first = await run(["push", "cat.persam", "--repo", "me/cli-branch", "--token", FLAG_TOKEN]);
    expect(first.code).toBe(ExitCode.ok);
    const dry = await run([
      "push",
      "cat.persam",
      "--repo",
      "me/cli-branch",
      "--branch",
      "dev",
      "--dry-run",
      "--token",
      FLAG_TOKEN,
    ]);
    expect(dry.out).toMatch(/^dry run: would create branch dev from main and would upload 0 files /m);
    const r = await run([
      "push",
      "cat.persam",
      "--repo",
      "me/cli-branch",
      "--branch",
      "dev",
      "--token",
      FLAG_TOKEN,
    ]);
    expect(r.code).toBe(ExitCode.ok);
    expect(r.out).toMatch(/^me\/cli-branch@dev is up to date \(new branch from main\) /m);
    expect(server.branches({ type: "dataset", name: "me/cli-branch" })).toContain("dev");
    const json = await run([
      "push",
      "cat.persam",
      "--repo",
      "me/cli-branch",
      "--branch",
      "dev",
      "--json",
      "--token",
      FLAG_TOKEN,
    ]);
    expect((JSON.parse(json.out) as PushResult).branchCreated).toBe(false);
  });

  it("warns about a skipped symlink and exits 2, --pr opens a pull request", async () => {
    await writeFile(join(work, "elsewhere.png"), "outside");
    await symlink(join(work, "elsewhere.png"), join(outDir, "images", "link.png"));
    await writeFile(join(outDir, "README.md"), "# cat, take 3\n");
    try {
      const r = await run(["push", "cat.persam", "--repo", "me/cli-flag", "--pr", "--token", FLAG_TOKEN]);
      expect(r.code).toBe(ExitCode.partial);
      expect(r.err).toContain("warning: skipped images/link.png: symbolic link");
      expect(r.out).toMatch(
        /^opened a pull request on me\/cli-flag with \d+ files? \(.+\): http.*\/discussions\/1$/m,
      );
    } finally {
      await rm(join(outDir, "images", "link.png"));
    }
  });
});
