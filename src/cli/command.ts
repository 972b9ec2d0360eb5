// The shape of one CLI command module: yargs builder + handler, given the run's context.

import type { Argv } from "yargs";
import type { CliIo, Reporter } from "./io.js";

/** Options every command accepts. */
export interface GlobalOptions {
  json: boolean;
  verbose: boolean;
  quiet: boolean;
}

/** What a command handler receives besides its parsed options. */
export interface CommandContext {
  readonly io: CliIo;
  /** Reporter configured from the global options of this run. */
  reporter(options: GlobalOptions): Reporter;
  /** Set the process exit code (the highest code set wins). */
  setExitCode(code: number): void;
}

/** One command: `persam-db <name> ...`. */
export interface CommandDefinition<O> {
  /** yargs command string, e.g. `mask <image>`. */
  readonly command: string;
  readonly describe: string;
  /** Declare options, positionals and examples. */
  builder(yargs: Argv<GlobalOptions>): Argv<O & GlobalOptions>;
  /** Run the command. Throw UserError for bad input; never call process.exit. */
  handler(options: O & GlobalOptions, context: CommandContext): Promise<void>;
}

/** Identity helper that keeps the option type of a command definition. */
export function defineCommand<O>(definition: CommandDefinition<O>): CommandDefinition<O> {
  return definition;
}
