// The list of CLI commands, in the order --help shows them.

import { cacheCommand } from "./cache-command.js";
import type { CommandDefinition } from "./command.js";
import { doctorCommand } from "./doctor-command.js";
import { evalCommand } from "./eval-command.js";
import { maskCommand } from "./mask-command.js";
import { modelsCommand } from "./models-command.js";
import { prepareCommand } from "./prepare-command.js";
import { pushCommand } from "./push-command.js";
import { reviewCommand } from "./review-command.js";
import { segmentCommand } from "./segment-command.js";

export const commands: readonly CommandDefinition<never>[] = [
  prepareCommand as CommandDefinition<never>,
  reviewCommand as CommandDefinition<never>,
  segmentCommand as CommandDefinition<never>,
  evalCommand as CommandDefinition<never>,
  maskCommand as CommandDefinition<never>,
  pushCommand as CommandDefinition<never>,
  modelsCommand as CommandDefinition<never>,
  cacheCommand as CommandDefinition<never>,
  doctorCommand as CommandDefinition<never>,
];
