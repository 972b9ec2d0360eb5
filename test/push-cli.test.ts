// `persam-db push` in-process against the loopback Hub, through a yargs instance registered the way
// src/cli/main.ts registers commands and with captured streams, on a set made by the real `prepare`
// (tiny model): token sources, output modes, --help, error lines, exit codes, the token absent from
// every byte of output and of the folder; and what push refuses: a folder that is not a finished,
// consistent set, a folder another process holds, offline mode; --force.

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import yargs, { type Argv } from "yargs";
import type { CommandContext, GlobalOptions } from "../src/cli/command.js";
import { type CliIo, Reporter } from "../src/cli/io.js";
import { pushCommand } from "../src/cli/push-command.js";
import { STATE_FILE } from "../src/dataset/prepare-state.js";
import { ExitCode, isUserError } from "../src/errors.js";
import type { PushResult } from "../src/hub/dataset-push.js";
import { LOCK_FILE } from "../src/util/run-lock.js";
import { type HubServer, startHubServer } from "./support/hub-server.js";
import { type LockChildren, lockChildren } from "./support/lock-child.js";
import { type PreparedSet, prepareSet } from "./support/prepared-set.js";
import { rewriteManifestLikePrepare } from "./support/set-manifest.js";

const TOKEN = "hf_clipushsecret00000000001";
const FILE_TOKEN = "hf_fromthetokenfile000000001";
const FLAG_TOKEN = "hf_fromtheflag00000000000001";
let server: HubServer;
let work: string;
let set: PreparedSet;
let outDir: string;
let env: Record<string, string>;
let children: LockChildren;
const outputs: string[] = [];

beforeAll(async () => {
  server = await startHubServer();
  work = await mkdtemp(join(tmpdir(), "persam-push-cli-"));
  set = await prepareSet({ root: work, name: "cat" });
  outDir = set.outDir;
  await mkdir(join(work, "hf-home"), { recursive: true });
  env = { HF_ENDPOINT: `${server.url}/`, HF_TOKEN: TOKEN, HF_HOME: join(work, "hf-home") };
  children = await lockChildren();
});

afterAll(async () => {
  await server.stop();
  await children.dispose();
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

const N = () => set.files.length;

describe("persam-db push", () => {
  it("--help lists the options with examples", async () => {
    const r = await run(["push", "--help"]);
    expect(r.out).toContain("--repo");
    expect(r.out).toContain("--dry-run");
    expect(r.out).toContain("--force");
    expect(r.out).toContain("Examples:");
    expect(r.out).toContain("push my-cat.persam --repo");
    expect(r.out).toContain("--pr -m 'Add my cat'");
  });

  it("pushes exactly the set with HF_TOKEN and HF_ENDPOINT, plain progress lines, then says up to date", async () => {
    const r = await run(["push", "cat.persam", "--repo", "me/cli-cat"]);
    expect(r.code, r.err).toBe(ExitCode.ok);
    expect(r.out).toMatch(
      new RegExp(
        `^pushed ${N()} files \\(.+\\) to me/cli-cat \\(new repo\\), 0 unchanged — commit [0-9a-f]{7}: `,
      ),
    );
    expect(r.err).toContain(`hashing ${N()}/${N()}`);
    expect(r.err).toMatch(/uploaded \d+\/\d+ \S+\.png/);
    for (const path of set.files) {
      expect(server.file({ type: "dataset", name: "me/cli-cat", path }), path).toBeDefined();
    }
    expect(server.file({ type: "dataset", name: "me/cli-cat", path: STATE_FILE })).toBeUndefined();
    // The lock was held and released.
    expect(existsSync(join(outDir, LOCK_FILE))).toBe(false);

    server.clearRequests();
    const again = await run(["push", "cat.persam", "--repo", "me/cli-cat"]);
    expect(again.out).toMatch(
      new RegExp(`^me/cli-cat is up to date \\(${N()} files unchanged, nothing committed\\)`),
    );
    expect(server.requestsTo(/\/commit\//)).toHaveLength(0);
  });

  it("draws a bar on a terminal and prints only one JSON document with --json", async () => {
    // A card rewritten, recorded as a later prepare run would record it.
    await writeFile(join(outDir, "README.md"), "# cat, take 2\n");
    await rewriteManifestLikePrepare(outDir);
    const tty = await run(["push", "cat.persam", "--repo", "me/cli-cat", "--dry-run"], env, true);
    expect(tty.err).toContain("\r\x1b[2K");
    expect(tty.out).toMatch(
      new RegExp(
        `dry run: would upload 1 file \\(\\d+ B\\) to me/cli-cat; ${N() - 1} unchanged\\n {2}\\+ README\\.md`,
      ),
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
    expect(flag.code, flag.err).toBe(ExitCode.ok);
    const tokenFile = join(work, "hf-home", "token");
    await writeFile(tokenFile, `${FILE_TOKEN}\n`);
    const fromFile = await run(["push", "cat.persam", "--repo", "me/cli-file", "--endpoint", server.url], {
      HF_ENDPOINT: "http://127.0.0.1:9",
      HF_HOME: join(work, "hf-home"),
    });
    expect(fromFile.code, fromFile.err).toBe(ExitCode.ok);
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
      /^persam-db: error: output folder .*nope\.persam does not exist — give the output folder of 'persam-db prepare'/,
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

  it("--pr opens a pull request", async () => {
    await writeFile(join(outDir, "README.md"), "# cat, take 3\n");
    await rewriteManifestLikePrepare(outDir); // as a later prepare run would record the new card
    const r = await run(["push", "cat.persam", "--repo", "me/cli-flag", "--pr", "--token", FLAG_TOKEN]);
    expect(r.code, r.err).toBe(ExitCode.ok);
    expect(r.out).toMatch(
      /^opened a pull request on me\/cli-flag with 1 file \(.+\): http.*\/discussions\/1$/m,
    );
  });
});

describe("what push refuses", () => {
  it("a folder that is not a prepare output: one line; --force publishes it with a warning, writing nothing into it", async () => {
    server.clearRequests();
    const r = await run(["push", "cat", "--repo", "me/raw", "--token", FLAG_TOKEN]);
    expect(r.code).toBe(ExitCode.userError);
    expect(r.err).toMatch(
      /^persam-db: error: .*cat cannot be published: it is not an output folder of persam-db prepare \(no \.persam\/state\.json\) — run 'persam-db prepare PHOTOS' and push the folder it writes/,
    );
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(server.requests).toHaveLength(0);

    const forced = await run([
      "push",
      "cat",
      "--repo",
      "me/raw",
      "--force",
      "--dry-run",
      "--token",
      FLAG_TOKEN,
    ]);
    expect(forced.code, forced.err).toBe(ExitCode.ok);
    expect(forced.err).toMatch(
      /warning: --force: publishing .*cat as it is, though it is not a finished, consistent set: it is not an output folder/,
    );
    expect(forced.out).toContain("+ shot-1.jpg");
    expect(existsSync(join(set.photosDir, ".persam"))).toBe(false);
  });

  it("files that differ from the manifest: missing, extra, changed — one line; --force lists every file", async () => {
    const copy = join(work, "changed.persam");
    await rm(copy, { recursive: true, force: true });
    await cp(outDir, copy, { recursive: true });
    await rm(join(copy, "captions", "shot-2.txt"));
    await writeFile(join(copy, "images", "stale.png"), randomBytes(100));
    await writeFile(join(copy, "captions", "shot-1.txt"), "a photo of zzz dog");
    await symlink(join(work, "cat", "shot-1.jpg"), join(copy, "images", "link.png"));
    server.clearRequests();
    const r = await run(["push", "changed.persam", "--repo", "me/changed", "--token", FLAG_TOKEN]);
    expect(r.code).toBe(ExitCode.userError);
    expect(r.err).toMatch(
      /cannot be published: captions\/shot-1\.txt changed since prepare wrote it \(and \d+ more problems\) — run 'persam-db prepare' again on the same photos/,
    );
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(server.requests).toHaveLength(0);

    const forced = await run([
      "push",
      "changed.persam",
      "--repo",
      "me/changed",
      "--force",
      "--dry-run",
      "--token",
      FLAG_TOKEN,
    ]);
    for (const listed of [
      "captions/shot-1.txt (changed)",
      "captions/shot-2.txt (missing)",
      "images/stale.png (extra)",
      "images/link.png (extra)",
    ]) {
      expect(forced.err).toContain(listed);
    }
    expect(forced.out, forced.err).toContain("+ images/stale.png");
  });

  it("an unfinished set (no manifest: the last prepare did not finish) is one line", async () => {
    const copy = join(work, "unfinished.persam");
    await cp(outDir, copy, { recursive: true });
    const state = JSON.parse(await readFile(join(copy, STATE_FILE), "utf8"));
    delete state.manifest;
    await writeFile(join(copy, STATE_FILE), JSON.stringify(state));
    const r = await run(["push", "unfinished.persam", "--repo", "me/unfinished", "--token", FLAG_TOKEN]);
    expect(r.err).toMatch(
      /cannot be published: it holds no finished set \(the last prepare run did not finish, or was a dry run\)/,
    );
  });

  it("a folder another process holds: one line naming it; once that process is gone its lock is taken over", async () => {
    const holder = children.start(outDir, "prepare");
    expect(await holder.firstLine).toBe("locked null");
    server.clearRequests();
    const r = await run(["push", "cat.persam", "--repo", "me/cli-cat", "--token", FLAG_TOKEN]);
    expect(r.code).toBe(ExitCode.userError);
    expect(r.err).toMatch(
      new RegExp(
        `cat\\.persam is in use by persam-db prepare \\(pid ${holder.process.pid}, since [^)]+\\) — wait for it to finish`,
      ),
    );
    expect(server.requests).toHaveLength(0);
    holder.process.kill("SIGKILL");
    await holder.exited;
    const after = await run([
      "push",
      "cat.persam",
      "--repo",
      "me/cli-cat",
      "--dry-run",
      "--token",
      FLAG_TOKEN,
    ]);
    expect(after.code, after.err).toBe(ExitCode.ok);
    expect(existsSync(join(outDir, LOCK_FILE))).toBe(false);
  });

  it("HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 refuse at once, before any request", async () => {
    server.clearRequests();
    for (const variable of ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]) {
      const r = await run(["push", "cat.persam", "--repo", "me/cli-cat"], { ...env, [variable]: "1" });
      expect(r.code).toBe(ExitCode.userError);
      expect(r.err).toBe(
        `persam-db: error: persam-db push needs the Hub, and ${variable} is set (offline mode) — unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE to publish\n`,
      );
    }
    expect(server.requests).toHaveLength(0);
  });

  it("an answer that is not the Hub's API is one line, exit 1", async () => {
    server.failNext({
      route: /^GET \/api\/datasets\/me\/cli-cat/,
      body: { contentType: "text/html", text: "<html>hotel wifi</html>" },
    });
    const r = await run(["push", "cat.persam", "--repo", "me/cli-cat", "--token", FLAG_TOKEN]);
    expect(r.code).toBe(ExitCode.userError);
    expect(r.err).toMatch(
      /the Hub answered with something that is not its API — a proxy or captive portal\?/,
    );
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});
