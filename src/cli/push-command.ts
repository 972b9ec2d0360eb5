// `persam-db push OUT --repo ns/name`: publish an output folder as a Hugging Face dataset. The work
// is done by src/hub/dataset-push.ts; this module resolves the token and endpoint, parses, calls and
// prints. The token is never printed.

import { resolve } from "node:path";
import type { Argv } from "yargs";
import { hubConfig, redact } from "../config.js";
import { ExitCode, UserError } from "../errors.js";
import { type PushProgress, type PushResult, pushDataset } from "../hub/dataset-push.js";
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
        "Files are compared with the branch head by content (sha256 / git blob id); a rerun with nothing changed makes no commit, and an interrupted push completes when run again. The .persam/ state folder, temporary files and symbolic links are never uploaded.",
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
  token?: string | undefined;
  endpoint?: string | undefined;
  json: boolean;
}

/**
 * Resolve the token and endpoint, push with progress, warn about what needs it, and set the exit
 * code when something was skipped. Printing the result is the caller's (one JSON document per run).
 * @throws UserError without a token (unless a dry run), for a bad endpoint, and for Hub failures.
 */
export async function runPush(
  options: RunPushOptions,
  context: CommandContext,
  reporter: Reporter,
): Promise<PushResult> {
  const config = hubConfig(context.io.env);
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
  const view = progressView(reporter);
  let result: PushResult;
  try {
    result = await pushDataset({
      outDir: options.out,
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
