// How the CLI stops on Ctrl-C (SIGINT) and on `kill` (SIGTERM): the first signal aborts the run after
// its current step (every file written so far is complete), a second one quits at once.

import { ExitCode } from "../errors.js";

/** Where the signals come from and what stopping does (the process in bin.ts, fakes in tests). */
export interface StopSignalsParams {
  /** Emits "SIGINT" and "SIGTERM" (`process`). */
  readonly source: { on(event: "SIGINT" | "SIGTERM", listener: () => void): unknown };
  /** Aborted on the first signal; commands check its signal between steps. */
  readonly controller: AbortController;
  /** Writes one line for the user (stderr). */
  readonly write: (text: string) => void;
  /** Quits at once with an exit code (`process.exit`). */
  readonly exit: (code: number) => void;
}

/**
 * Install the handlers: SIGINT and SIGTERM both abort `controller` once with a line saying so (the
 * command then ends with exit code 130, and with --json still prints its one JSON document); the
 * next signal of either kind exits with 130 at once.
 */
export function installStopSignals(params: StopSignalsParams): void {
  let signals = 0;
  const stop = (name: "SIGINT" | "SIGTERM"): void => {
    signals += 1;
    if (signals > 1) {
      params.exit(ExitCode.interrupted);
      return;
    }
    const again = name === "SIGINT" ? "Ctrl-C again" : "a second signal";
    params.write(`\npersam-db: stopping after the current step (${again} to quit now)\n`);
    params.controller.abort();
  };
  params.source.on("SIGINT", () => stop("SIGINT"));
  params.source.on("SIGTERM", () => stop("SIGTERM"));
}
