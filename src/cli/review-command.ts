// `persam-db review OUT`: a local web page to correct doubtful masks with a click. Opens the set (its
// lock held until the server stops), the model the set was made with (or the one given), starts the
// server on 127.0.0.1 and prints its address; Ctrl-C stops it.

import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { ExitCode } from "../errors.js";
import type { RebuildEvent } from "../review/review-api.js";
import { type ReviewServer, startReviewServer } from "../review/review-server.js";
import { ReviewSet } from "../review/review-set.js";
import type { SamModel } from "../segment/sam/sam-model.js";
import { terminalSafe } from "../util/terminal-text.js";
import { defineCommand } from "./command.js";
import type { Reporter } from "./io.js";
import {
  cliEmbeddingCache,
  type ModelOptions,
  openCliModel,
  resolveCliModelFiles,
  withModelOptions,
} from "./model-options.js";

interface ReviewOptions extends ModelOptions {
  out: string;
  port?: number | undefined;
  open: boolean;
}

/** Resolves when the signal aborts (never without one). */
function aborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Open a URL in the desktop's browser; a line when that is not possible. */
function openBrowser(url: string, reporter: Reporter): void {
  const [command, args] =
    process.platform === "darwin"
      ? ["open", [url]]
      : process.platform === "win32"
        ? ["cmd", ["/c", "start", '""', url]]
        : ["xdg-open", [url]];
  try {
    const child = spawn(command, args as string[], { stdio: "ignore", detached: true });
    child.on("error", () => reporter.warn(`could not start a browser (${command}); open the address above`));
    child.unref();
  } catch {
    reporter.warn(`could not start a browser (${command}); open the address above`);
  }
}

function printRebuild(reporter: Reporter, event: RebuildEvent): void {
  switch (event.phase) {
    case "start":
      reporter.info("rebuild: started");
      return;
    case "progress":
      reporter.info(`rebuild: ${event.done}/${event.total} ${terminalSafe(event.file)} ${event.status}`);
      return;
    case "note":
      reporter.warn(terminalSafe(event.message));
      return;
    case "done":
      reporter.info(
        `rebuild: done — ${event.kept} photo${event.kept === 1 ? "" : "s"} in the training set (segmented ${event.segmented}, left out ${event.excluded}, failed ${event.failed})`,
      );
      return;
    case "failed":
      reporter.warn(`rebuild failed: ${terminalSafe(event.message)}`);
      return;
  }
}

export const reviewCommand = defineCommand<ReviewOptions>({
  command: "review <out>",
  describe:
    "Review a prepared set in the browser: fix doubtful masks with a click, include or exclude photos",
  builder: (yargs) =>
    withModelOptions(yargs)
      .positional("out", {
        type: "string",
        demandOption: true,
        describe: "Output folder of 'persam-db prepare'",
      })
      .option("port", { type: "number", describe: "Port on 127.0.0.1 (default: a free one)" })
      .option("open", { type: "boolean", default: false, describe: "Open the page in the desktop's browser" })
      .example("$0 review ./my-cat.persam", "prints http://127.0.0.1:PORT/?token=… — open it, Ctrl-C stops")
      .example("$0 review ./my-cat.persam --open", "and open it in the browser")
      .example(
        "$0 review ./my-cat.persam --encoder enc.onnx --decoder dec.safetensors",
        "with local model files (default: the model the set was made with)",
      ) as never,
  handler: async (options, context) => {
    const reporter = context.reporter(options);
    const { io } = context;
    const outDir = resolve(io.cwd, options.out);
    // The set and its lock first: a second review or a running prepare is refused before a model loads.
    const set = await ReviewSet.open({ outDir });
    let model: SamModel | undefined;
    let server: ReviewServer | undefined;
    let rebuildStopped = false;
    try {
      const given =
        options.model !== undefined || options.encoder !== undefined || options.decoder !== undefined;
      const recorded = set.record.model;
      // Given paths are the user's: resolveCliModelFiles resolves them against the command's folder.
      const modelOptions: ModelOptions = given
        ? options
        : recorded.label === "local files"
          ? { ...options, encoder: recorded.encoderPath, decoder: recorded.decoderPath }
          : { ...options, model: recorded.label };
      const files = await resolveCliModelFiles(modelOptions, io, reporter);
      if (files.encoderPath !== recorded.encoderPath || files.decoderPath !== recorded.decoderPath) {
        reporter.warn(
          `the set was made with ${terminalSafe(recorded.label)} (${terminalSafe(recorded.decoderPath)}); review runs ${terminalSafe(files.label)} (${terminalSafe(files.decoderPath)}), and a rebuild segments every photo again`,
        );
      }
      model = await openCliModel(files, modelOptions, io, reporter);
      for (const note of set.notes) reporter.warn(terminalSafe(note));
      server = await startReviewServer({
        set,
        model,
        port: options.port,
        embeddingCache: cliEmbeddingCache(options, io, reporter),
        onRebuild: (event) => printRebuild(reporter, event),
        onError: (error) =>
          reporter.warn(
            `unexpected error (a bug): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
          ),
      });
      reporter.emitJson({ url: server.url, port: server.port, output: outDir });
      reporter.result(`review: ${server.url}`);
      reporter.info(
        `${set.photos.length} photo${set.photos.length === 1 ? "" : "s"} of ${terminalSafe(outDir)}; open the address above in a browser on this machine, Ctrl-C stops`,
      );
      if (options.open) openBrowser(server.url, reporter);
      await aborted(io.signal);
      rebuildStopped = server.api.rebuild !== undefined;
    } finally {
      await server?.close();
      await model?.dispose();
      await set.close();
    }
    if (rebuildStopped) {
      reporter.warn(
        "the rebuild was stopped: every file written so far is complete; review or prepare again finishes it",
      );
      context.setExitCode(ExitCode.interrupted);
    } else {
      reporter.info(
        "review stopped; the decisions are kept in .persam/review/ and used by every later prepare",
      );
    }
  },
});
