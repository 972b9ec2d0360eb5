// The CLI entry: parses argv with yargs, runs one command, maps errors to exit codes. It never
// exits the process (bin.ts does), so tests call `main(argv, io)` in-process.

import yargs, { type Arguments, type Argv } from "yargs";
import { timingTracePath } from "../config.js";
import { ExitCode, isUserError, systemUserError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { packageVersion } from "../util/package-version.js";
import { terminalSafe } from "../util/terminal-text.js";
import { onTimingSpan, type TimingSpan, timeSpan } from "../util/timing-trace.js";
import type { CommandContext, CommandDefinition, GlobalOptions } from "./command.js";
import { type CommandEntry, commands } from "./commands.js";
import { type CliIo, processIo, Reporter } from "./io.js";

/**
 * Run the CLI with `argv` (without `node` and the script path); resolves to the exit code. Every
 * failure ends as one line on stderr and, with --json, as one `{"error": …}` document on stdout
 * (unless the command already printed its document).
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const tracePath = timingTracePath(io.env);
  if (tracePath === undefined) return runMain(argv, io);
  // Before the command's work: the process's start and the CLI's own imports end here.
  const enteredMs = performance.now();
  const spans: TimingSpan[] = [
    {
      name: "cli.start",
      startMs: 0,
      endMs: enteredMs,
      detail: { nodeBootstrapMs: Math.round(performance.nodeTiming.bootstrapComplete * 100) / 100 },
    },
  ];
  const stop = onTimingSpan((span) => spans.push(span));
  let exitCode: number = ExitCode.bug;
  try {
    exitCode = await runMain(argv, io);
    return exitCode;
  } finally {
    stop();
    await writeTimingTrace(tracePath, { argv: [...argv], exitCode, spans }, io);
  }
}

/**
 * The timing trace (PERSAM_DB_TIMINGS): one JSON document of the run's spans, times in ms since the
 * process started. A trace that cannot be written costs a warning, never the run.
 */
async function writeTimingTrace(
  path: string,
  trace: { argv: string[]; exitCode: number; spans: readonly TimingSpan[] },
  io: CliIo,
): Promise<void> {
  const round = (x: number) => Math.round(x * 100) / 100;
  const document = {
    format: 1,
    argv: trace.argv,
    exitCode: trace.exitCode,
    endMs: round(performance.now()),
    spans: trace.spans.map((s) => ({ ...s, startMs: round(s.startMs), endMs: round(s.endMs) })),
  };
  try {
    await writeFileAtomic(path, `${JSON.stringify(document, null, 2)}\n`);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    io.stderr.write(
      `persam-db: warning: cannot write the timing trace ${terminalSafe(path)}: ${terminalSafe(why)}\n`,
    );
  }
}

async function runMain(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.ok;
  let jsonWritten = false;
  const context: CommandContext = {
    io,
    reporter: (options: GlobalOptions) =>
      new Reporter(io, options.json, options.quiet, () => {
        jsonWritten = true;
      }),
    setExitCode(code: number) {
      exitCode = Math.max(exitCode, code);
    },
  };
  const verbose = argv.includes("--verbose");
  const json = argv.includes("--json");
  // A bare `persam-db` shows the overview rather than an error.
  argv = argv.length === 0 ? ["--help"] : positionalsAfterDoubleDash(argv);

  let parser: Argv = yargs([...argv])
    .scriptName("persam-db")
    .usage(
      "persam-db — DreamBooth training data from a few photos of one subject, masked with PerSAM\n\nUsage: $0 <command> [options]",
    )
    .option("json", {
      type: "boolean",
      default: false,
      describe: "Print one JSON document on stdout, nothing else",
    })
    .option("verbose", {
      type: "boolean",
      default: false,
      describe: "Show stack traces of unexpected errors",
    })
    .option("quiet", { type: "boolean", default: false, describe: "Print only warnings, errors and results" })
    .strict()
    .demandCommand(1, "Name a command (see the list above).")
    .recommendCommands()
    .help()
    .alias("h", "help")
    .version("version", "Show the persam-db version", packageVersion())
    // Before validation, so a repeated option is named before a command trips over an array.
    .middleware(refuseRepeatedOptions as never, true)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .epilogue("Docs: see README.md. Every command has --help with examples.")
    .exitProcess(false)
    .fail((message, error) => {
      // yargs' own complaints (a missing value, an unknown option) come as YError or as a message.
      if (error === undefined || error === null || error.name === "YError")
        throw new UsageError(message ?? error?.message ?? "bad command line");
      throw error;
    });

  skipHelpPrerender(parser);
  for (const entry of commands) parser = register(parser, entry, context);

  try {
    let helpText = "";
    await parser.parseAsync([...argv], {}, (_err, _parsed, output) => {
      helpText = output;
    });
    if (helpText) io.stdout.write(`${helpText}\n`);
    return exitCode;
  } catch (error) {
    return report(error, io, verbose);
  }

  function report(error: unknown, out: CliIo, showStack: boolean): number {
    const failure = describeFailure(error);
    if (json && !jsonWritten) {
      out.stdout.write(`${JSON.stringify({ error: failure }, null, 2)}\n`);
      jsonWritten = true;
    }
    switch (failure.kind) {
      case "usage":
        out.stderr.write(`persam-db: ${terminalSafe(failure.message)}\nRun 'persam-db --help' for usage.\n`);
        break;
      case "user": {
        // File names can hold line breaks or terminal escapes: the error stays one inert line.
        out.stderr.write(`persam-db: error: ${terminalSafe(failure.line)}\n`);
        const cause = (systemUserError(error) ?? error) as { cause?: unknown };
        if (showStack && cause.cause instanceof Error) out.stderr.write(`${cause.cause.stack ?? ""}\n`);
        break;
      }
      case "interrupted":
        out.stderr.write("persam-db: interrupted\n");
        break;
      case "bug": {
        const text =
          error instanceof Error
            ? showStack
              ? (error.stack ?? error.message)
              : error.message
            : String(error);
        out.stderr.write(
          `persam-db: unexpected error (a bug): ${text}\n${showStack ? "" : "Run again with --verbose for the stack trace, and please report it.\n"}`,
        );
        break;
      }
    }
    return failure.exitCode;
  }
}

/** A failed run as the `error` of the --json document. */
export interface FailureDocument {
  /** `usage`: bad command line; `user`: the user's to fix; `interrupted`: Ctrl-C or SIGTERM; `bug`. */
  readonly kind: "usage" | "user" | "interrupted" | "bug";
  /** What happened, one line. */
  readonly message: string;
  /** What to do, when known. */
  readonly hint?: string;
  /** `message — hint`, as printed on stderr. */
  readonly line: string;
  readonly exitCode: number;
}

/**
 * How a failure is reported: usage errors, UserErrors and operating-system errors on paths (no
 * permission, a file for a folder, a full or read-only disk, too many open files: see
 * systemUserError) are the user's, exit 1; an abort is an interruption, exit 130; anything else
 * is a bug, exit 70.
 */
export function describeFailure(error: unknown): FailureDocument {
  // yargs' own complaints reach here as YError when they come after an async command builder.
  if (error instanceof UsageError || (error instanceof Error && error.name === "YError")) {
    return { kind: "usage", message: error.message, line: error.message, exitCode: ExitCode.userError };
  }
  const user = isUserError(error) ? error : systemUserError(error);
  if (user) {
    return {
      kind: "user",
      message: user.message,
      ...(user.hint === undefined ? {} : { hint: user.hint }),
      line: user.toLine(),
      exitCode: user.exitCode,
    };
  }
  if (error instanceof Error && error.name === "AbortError") {
    const message = "interrupted; run again to finish (every file written so far is complete)";
    return { kind: "interrupted", message, line: message, exitCode: ExitCode.interrupted };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { kind: "bug", message, line: message, exitCode: ExitCode.bug };
}

/** The parts of yargs' option table that {@link refuseRepeatedOptions} and `register` read. */
interface OptionTable {
  readonly key: Readonly<Record<string, unknown>>;
  readonly alias: Readonly<Record<string, readonly string[]>>;
  readonly array: readonly string[];
  readonly string: readonly string[];
  readonly number: readonly string[];
}

function optionTable(parser: Argv): OptionTable {
  return (parser as unknown as { getOptions(): OptionTable }).getOptions();
}

/**
 * An option that takes one value but was given several times (`--class a --class b`, `-o a -o b`)
 * is one usage line, for every command: yargs would hand the command an array.
 */
function refuseRepeatedOptions(argv: Arguments, parser: Argv): void {
  const table = optionTable(parser);
  const aliases = new Set(Object.values(table.alias).flat());
  for (const key of Object.keys(table.key)) {
    if (aliases.has(key) || table.array.includes(key)) continue;
    const value = argv[key];
    if (Array.isArray(value)) {
      throw new UsageError(
        `--${key} was given ${value.length === 2 ? "twice" : `${value.length} times`}; give it once`,
      );
    }
  }
}

/**
 * yargs leaves arguments after `--` out of the positionals (`mask -- -photo.jpg` would fail with
 * "not enough arguments"), so `--` is dropped here and a following argument that starts with `-`
 * becomes `./-…`: the same file, no longer readable as an option.
 */
export function positionalsAfterDoubleDash(argv: readonly string[]): readonly string[] {
  const at = argv.indexOf("--");
  if (at < 0) return argv;
  const rest = argv.slice(at + 1).map((a) => (a.startsWith("-") ? `./${a}` : a));
  return [...argv.slice(0, at), ...rest];
}

/** A command-line usage problem found by yargs (unknown option, missing argument). */
class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * Register one command. Its module is imported only when yargs runs the command's builder, that is
 * when the command is named (to run it or show its --help): the top-level --help and --version
 * load no command module.
 */
function register(parser: Argv, entry: CommandEntry, context: CommandContext): Argv {
  let loaded: Promise<CommandDefinition<unknown>> | undefined;
  const load = () => {
    loaded ??= timeSpan(
      "cli.command-load",
      () => entry.load() as Promise<CommandDefinition<unknown>>,
      () => ({ command: entry.command.split(" ")[0]! }),
    );
    return loaded;
  };
  return parser.command({
    command: entry.command,
    describe: entry.describe,
    builder: async (y: Argv) => {
      const definition = await load();
      const built = definition.builder(y as Argv<GlobalOptions>) as unknown as Argv;
      // A value option without its value (`doctor --timeout`) is refused rather than defaulted.
      const table = optionTable(built);
      const valued = [...table.string, ...table.number].filter(
        (k) => k in table.key && !table.array.includes(k),
      );
      return valued.length > 0 ? built.requiresArg(valued) : built;
    },
    handler: async (options) => {
      await (await load()).handler(options as unknown as GlobalOptions, context);
    },
  });
}

/**
 * yargs renders a command's whole help text as soon as the command's handler starts, to have it at
 * hand should the handler fail and ask for help. persam-db never shows help after a handler has
 * started (its failures are one line, see describeFailure), so every run would pay for a rendering
 * that is never printed: it is switched off. `--help` renders as before. Where yargs lacks the
 * internal hook (another version), nothing changes.
 */
function skipHelpPrerender(parser: Argv): void {
  type Usage = { cacheHelpMessage?: unknown };
  const internals = parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => Usage } };
  const usage = internals.getInternalMethods?.().getUsageInstance?.();
  if (usage !== undefined && typeof usage.cacheHelpMessage === "function") usage.cacheHelpMessage = () => {};
}
