// What a command may touch of the outside world: its output streams, environment and a few flags.
// Passing it explicitly keeps `main(argv)` testable in-process (tests capture the streams).

import type { Writable } from "node:stream";

/** Streams and environment a command runs with. */
export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
  /** Working directory that relative paths are resolved against. */
  readonly cwd: string;
  /** True when stderr is a terminal (progress bars are drawn only then). */
  readonly isTty: boolean;
  /** Aborted on Ctrl-C; long work checks it between steps. */
  readonly signal?: AbortSignal | undefined;
}

/** The process's own streams and environment. */
export function processIo(signal?: AbortSignal): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    isTty: Boolean(process.stderr.isTTY),
    signal,
  };
}

/**
 * How a command reports: human lines on stderr (progress, notes) and results on stdout; with
 * `--json` only one JSON document goes to stdout and human lines are suppressed.
 */
export class Reporter {
  constructor(
    private readonly io: CliIo,
    readonly json: boolean,
    readonly quiet = false,
    /** Called after the JSON document is written (main then writes no error document). */
    private readonly onJson?: () => void,
  ) {}

  /** A human note on stderr (suppressed with --json or --quiet). */
  info(line: string): void {
    if (!this.json && !this.quiet) this.io.stderr.write(`${line}\n`);
  }

  /** A warning on stderr (kept with --quiet, suppressed with --json: it goes into the JSON). */
  warn(line: string): void {
    if (!this.json) this.io.stderr.write(`warning: ${line}\n`);
  }

  /** A human result on stdout (suppressed with --json). */
  result(line: string): void {
    if (!this.json) this.io.stdout.write(`${line}\n`);
  }

  /** The one JSON document of a --json run. */
  emitJson(value: unknown): void {
    if (!this.json) return;
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    this.onJson?.();
  }

  /**
   * One JSON document on one line of stdout (JSON Lines: commands that report several results, one
   * line each).
   */
  emitJsonLine(value: unknown): void {
    if (!this.json) return;
    this.io.stdout.write(`${JSON.stringify(value)}\n`);
    this.onJson?.();
  }

  /** True when progress bars may be drawn (a terminal, no --json, no --quiet). */
  get canDrawProgress(): boolean {
    return this.io.isTty && !this.json && !this.quiet;
  }

  get stderr(): CliIo["stderr"] {
    return this.io.stderr;
  }
}
