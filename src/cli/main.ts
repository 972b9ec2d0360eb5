// The CLI entry: parses argv with yargs, runs one command, maps errors to exit codes. It never
// exits the process (bin.ts does), so tests call `main(argv, io)` in-process.

import yargs, { type Argv } from "yargs";
import { ExitCode, isUserError } from "../errors.js";
import { terminalSafe } from "../util/terminal-text.js";
import type { CommandContext, CommandDefinition, GlobalOptions } from "./command.js";
import { commands } from "./commands.js";
import { type CliIo, processIo, Reporter } from "./io.js";

/** Run the CLI with `argv` (without `node` and the script path); resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const context: CommandContext = {
    io,
    reporter: (options: GlobalOptions) => new Reporter(io, options.json, options.quiet),
    setExitCode(code: number) {
      exitCode = Math.max(exitCode, code);
    },
  };
  const verbose = argv.includes("--verbose");
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
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .epilogue("Docs: see README.md. Every command has --help with examples.")
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new UsageError(message);
    });

  for (const definition of commands) {
    parser = register(parser, definition as CommandDefinition<unknown>, context);
  }

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
    if (error instanceof UsageError) {
      out.stderr.write(`persam-db: ${error.message}\nRun 'persam-db --help' for usage.\n`);
      return ExitCode.userError;
    }
    if (isUserError(error)) {
      // File names can hold line breaks or terminal escapes: the error stays one inert line.
      out.stderr.write(`persam-db: error: ${terminalSafe(error.toLine())}\n`);
      if (showStack && error.cause instanceof Error) out.stderr.write(`${error.cause.stack ?? ""}\n`);
      return error.exitCode;
    }
    if (error instanceof Error && error.name === "AbortError") {
      out.stderr.write("persam-db: interrupted\n");
      return ExitCode.interrupted;
    }
    const text =
      error instanceof Error ? (showStack ? (error.stack ?? error.message) : error.message) : String(error);
    out.stderr.write(
      `persam-db: unexpected error (a bug): ${text}\n${showStack ? "" : "Run again with --verbose for the stack trace, and please report it.\n"}`,
    );
    return ExitCode.bug;
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

function register(parser: Argv, definition: CommandDefinition<unknown>, context: CommandContext): Argv {
  return parser.command({
    command: definition.command,
    describe: definition.describe,
    builder: (y: Argv) => definition.builder(y as Argv<GlobalOptions>) as unknown as Argv,
    handler: async (options) => {
      await definition.handler(options as unknown as GlobalOptions, context);
    },
  });
}
