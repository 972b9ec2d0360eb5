// The list of CLI commands, in the order --help shows them.

import type { CommandDefinition } from "./command.js";

export const commands: readonly CommandDefinition<never>[] = [];
