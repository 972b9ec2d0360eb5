// `persam-db push OUT --repo ns/name`: publish a finished set as a Hugging Face dataset. The set is
// checked by src/dataset/set-check.ts and the upload done by src/hub/dataset-push.ts under the
// folder's run lock; this module resolves the token and endpoint, parses, calls and prints. The
// token is never printed.

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Argv } from "yargs";
import { hubConfig, redact } from "../config.js";
import { checkSetForPublish, setCheckError } from "../dataset/set-check.js";
import { ExitCode, UserError } from "../errors.js";
import { type PushProgress, type PushResult, pushDataset } from "../hub/dataset-push.js";
import { acquireRunLock, type RunLock } from "../util/run-lock.js";
import { terminalSafe } from "../util/terminal-text.js";
import { type CommandContext, defineCommand, type GlobalOptions } from "./command.js";
import type { Reporter } from "./io.js";
import { formatBytes, Progress } from "./progress.js";

/** Options of `persam-db push`. */
export interface PushOptions {
  out: string;
  repo: string;
  private: boolean;
  branch: string;
  pr: boolean;
  message?: string | undefined;
  prune: boolean;
  dryRun: boolean;
  force: boolean;
  token?: string | undefined;
  endpoint?: string | undefined;
}

const TOKEN_HINT =
  "create a token with the 'write' role at https://huggingface.co/settings/tokens, then set HF_TOKEN=hf_… (or run 'huggingface-cli login', or pass --token)";

/** Progress display: a bar on a terminal, plain lines otherwise, nothing with --json. */
function progressView(reporter: Reporter): { onProgress(event: PushProgress): void; finish(): void } {
  let hashing: Progress | undefined;
  let uploading: Progress | undefined;
  return {
    onProgress(event) {
      switch (event.phase) {
        case "hash":
          hashing ??= new Progress(reporter, "hashing", event.total);
          hashing.tick(terminalSafe(event.path));
          if (event.done === event.total) hashing.finish();
          return;
        case "plan":
          if (event.upload > 0) {
            reporter.info(
              `${event.upload} file${event.upload === 1 ? "" : "s"} to upload (${formatBytes(event.uploadBytes)}), ${event.unchanged} unchanged`,
            );
            uploading = new Progress(reporter, "uploaded", event.upload);
          }
          return;
        case "upload":
          uploading?.tick(terminalSafe(event.path));
          return;
        case "retry":
          uploading?.finish();
          reporter.info(`${event.reason}; retrying in ${(event.waitMs / 1000).toFixed(1)} s`);
          return;
        case "commit":
          uploading?.finish();
          reporter.info("committing…");
          return;
      }
    },
    finish() {
      hashing?.finish();
      uploading?.finish();
    },
  };
}

function printResult(reporter: Reporter, result: PushResult, out: string): void {
  const target = `${result.repo}${result.branch === "main" ? "" : `@${result.branch}`}`;
  for (const s of result.skipped) {
    if (s.kind === "state" || s.kind === "temp")
      reporter.info(`skipped ${terminalSafe(s.path)}: ${s.reason}`);
    else reporter.warn(`skipped ${terminalSafe(s.path)}: ${s.reason}`);
  }
  if (result.remoteOnly.length > 0) {
    reporter.warn(
      `${result.remoteOnly.length} file${result.remoteOnly.length === 1 ? " is" : "s are"} on the Hub but not in ${out} and ${result.dryRun ? "would be" : "were"} kept (--prune deletes them)`,
    );
  }
  if (result.dryRun) {
    reporter.result(
      `dry run: ${result.repoCreated ? `would create dataset ${result.repo} and ` : ""}${result.branchCreated ? `would create branch ${result.branch} from main and ` : ""}would upload ${result.uploaded.length} file${result.uploaded.length === 1 ? "" : "s"} (${formatBytes(result.uploadedBytes)}) to ${target}; ${result.unchanged.length} unchanged`,
    );
    for (const f of result.uploaded) reporter.result(`  + ${terminalSafe(f.path)}  ${formatBytes(f.size)}`);
    for (const p of result.deleted) reporter.result(`  - ${terminalSafe(p)}`);
    reporter.result(`commit title: ${terminalSafe(result.title)}`);
    return;
  }
  if (result.upToDate) {
    reporter.result(
      `${target} is up to date${result.branchCreated ? " (new branch from main)" : ""} (${result.unchanged.length} files unchanged, nothing committed): ${result.repoUrl}`,
    );
    return;
  }
  const what = `${result.uploaded.length} file${result.uploaded.length === 1 ? "" : "s"} (${formatBytes(result.uploadedBytes)})`;
  const deleted = result.deleted.length > 0 ? `, deleted ${result.deleted.length}` : "";
  if (result.pullRequestUrl !== undefined) {
    reporter.result(`opened a pull request on ${target} with ${what}${deleted}: ${result.pullRequestUrl}`);
  } else {
    reporter.result(
      `pushed ${what}${deleted} to ${target}${result.repoCreated ? " (new repo)" : ""}${result.branchCreated ? ` (new branch from main)` : ""}, ${result.unchanged.length} unchanged — commit ${(result.commitOid ?? "").slice(0, 7)}: ${result.repoUrl}`,
    );
  }
}

export const pushCommand = defineCommand<PushOptions>({
  command: "push <out>",
  describe: "Publish an output folder as a Hugging Face dataset (only new or changed files)",
  builder: (yargs) =>
    yargs
      .positional("out", {
        type: "string",
        demandOption: true,
        describe: "Output folder of 'persam-db prepare' (e.g. my-cat.persam)",
      })
      .option("repo", {
        type: "string",
        demandOption: true,
        describe: "Dataset repo id namespace/name (created if missing)",
      })
      .option("private", {
        type: "boolean",
        default: false,
        describe: "Create the repo as private (an existing repo keeps its visibility)",
      })
      .option("branch", {
        type: "string",
        default: "main",
        describe: "Branch to push to (created from main if missing)",
      })
      .option("pr", {
        type: "boolean",
        default: false,
        describe: "Open a pull request instead of committing",
      })
      .option("message", {
        alias: "m",
        type: "string",
        describe: "Commit title (default: a summary of report.json: photos, model, mode)",
      })
      .option("prune", {
        type: "boolean",
        default: false,
        describe: "Also delete files on the Hub that are not in the folder (.gitattributes kept)",
      })
      .option("dry-run", {
        type: "boolean",
        default: false,
        describe: "Show what would be uploaded and what is unchanged; write nothing",
      })
      .option("force", {
        type: "boolean",
        default: false,
        describe:
          "Publish the folder as it is even when it is not a finished prepare set (a warning lists what is wrong)",
      })
      .option("token", {
        type: "string",
        describe:
          "Hub token (default: HF_TOKEN, else the 'huggingface-cli login' token file); prefer HF_TOKEN",
      })
      .option("endpoint", {
        type: "string",
        describe: "Hub URL (default: HF_ENDPOINT, else https://huggingface.co)",
      })
      .example("$0 push my-cat.persam --repo me/my-cat", "Create the dataset if needed and upload the folder")
      .example("$0 push my-cat.persam --repo me/my-cat --private --dry-run", "See what would be uploaded")
      .example(
        "$0 push my-cat.persam --repo team/cats --pr -m 'Add my cat'",
        "Propose the upload as a pull request",
      )
      .epilogue(
        "Only a finished set is published: exactly the files the last complete 'persam-db prepare' run wrote (listed in .persam/state.json), unchanged since, while no other persam-db command works on the folder. Files are compared with the branch head by content (sha256 / git blob id); a rerun with nothing changed makes no commit, and an interrupted push completes when run again. The .persam/ state folder is never uploaded. HF_HUB_OFFLINE=1 refuses at once.",
      ) as unknown as Argv<PushOptions & GlobalOptions>,
  async handler(options, context) {
    const reporter = context.reporter(options);
    const result = await runPush(
      { ...options, out: resolve(context.io.cwd, options.out) },
      context,
      reporter,
    );
    reporter.emitJson(result);
    printResult(reporter, result, options.out);
  },
});

/** What {@link runPush} needs: the push options of the command line (also `prepare --push`). */
export interface RunPushOptions {
  /** Absolute path of the output folder. */
  out: string;
  repo: string;
  private?: boolean | undefined;
  branch?: string | undefined;
  pr?: boolean | undefined;
  message?: string | undefined;
  prune?: boolean | undefined;
  dryRun?: boolean | undefined;
  /** Publish the folder as it is when the set check fails (with a warning). @default false */
  force?: boolean | undefined;
  token?: string | undefined;
  endpoint?: string | undefined;
  json: boolean;
}

/**
 * Resolve the token and endpoint, check the set (src/dataset/set-check.ts), take the folder's run
 * lock, push exactly the set's files with progress, warn about what needs it, and set the exit code
 * when something was skipped. Printing the result is the caller's (one JSON document per run).
 * @throws UserError in offline mode, for a set that is not finished or consistent (unless `force`),
 *   for a folder another command holds, without a token (unless a dry run), for a bad endpoint,
 *   and for Hub failures.
 */
export async function runPush(
  options: RunPushOptions,
  context: CommandContext,
  reporter: Reporter,
): Promise<PushResult> {
  const config = hubConfig(context.io.env);
  if (config.offline) {
    throw new UserError(
      `persam-db push needs the Hub, and ${config.offlineSource ?? "HF_HUB_OFFLINE"} is set (offline mode)`,
      { hint: "unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE to publish" },
    );
  }
  const token =
    options.token !== undefined && options.token.trim() !== "" ? options.token.trim() : config.token;
  const endpoint = (options.endpoint?.trim() || config.endpoint).replace(/\/+$/, "");
  if (token === undefined && !options.dryRun) {
    throw new UserError("persam-db push needs a Hugging Face token with write access", { hint: TOKEN_HINT });
  }
  if (!/^https?:\/\/[^\s/]+/.test(endpoint)) {
    throw new UserError(
      `Expected an http(s) URL for --endpoint/HF_ENDPOINT but received '${redact(endpoint, token)}'`,
      {
        hint: "for example https://huggingface.co",
      },
    );
  }
  // One run at a time per folder: the lock first, so no prepare starts between the check and the
  // upload. A folder that is not a prepare output gets no .persam/ (inputs are never written to);
  // --force past a live holder publishes without the lock.
  let lock: RunLock | undefined;
  let lockProblem: string | undefined;
  if (existsSync(join(options.out, ".persam"))) {
    try {
      lock = await acquireRunLock({ outDir: options.out, command: "push" });
    } catch (error) {
      if (!(error instanceof UserError) || !options.force) throw error;
      lockProblem = error.message;
    }
  }
  try {
    return await pushChecked({ options, context, reporter, config, token, endpoint, lockProblem });
  } finally {
    await lock?.release();
  }
}

/** The set check, then the push itself (runPush holds the lock around it). */
async function pushChecked(params: {
  options: RunPushOptions;
  context: CommandContext;
  reporter: Reporter;
  config: ReturnType<typeof hubConfig>;
  token: string | undefined;
  endpoint: string;
  lockProblem: string | undefined;
}): Promise<PushResult> {
  const { options, context, reporter, config, token, endpoint, lockProblem } = params;
  const check = await checkSetForPublish({ outDir: options.out, lock: false, signal: context.io.signal });
  if (!check.ok && !options.force) throw setCheckError(check);
  if (!check.ok || lockProblem !== undefined) {
    const listed = [
      ...(lockProblem === undefined ? [] : [lockProblem]),
      ...check.problems.map((p) => (p.path === undefined ? p.detail : `${p.path} (${p.kind})`)),
    ];
    reporter.warn(
      terminalSafe(
        `--force: publishing ${options.out} as it is, though it is not a finished, consistent set: ${listed.join(", ")}`,
      ),
    );
  }
  const view = progressView(reporter);
  let result: PushResult;
  try {
    result = await pushDataset({
      outDir: options.out,
      ...(check.ok ? { files: check.files, hashes: check.hashes } : {}),
      http: config.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: config.idleTimeoutMs },
      repo: options.repo,
      private: options.private ?? false,
      branch: options.branch ?? "main",
      pr: options.pr ?? false,
      message: options.message,
      prune: options.prune ?? false,
      dryRun: options.dryRun ?? false,
      token,
      endpoint,
      signal: context.io.signal,
      quiet: options.json,
      onProgress: (event) => view.onProgress(event),
    });
  } finally {
    view.finish();
  }
  if (options.private && !result.repoCreated) {
    reporter.warn(`--private applies only to a new repo: ${result.repo} keeps its current visibility`);
  }
  if (result.skipped.some((s) => s.kind === "link" || s.kind === "special" || s.kind === "name")) {
    context.setExitCode(ExitCode.partial);
  }
  return result;
}

export { printResult as printPushResult };
