#!/usr/bin/env node
// The executable: runs main() and is the only place that exits the process.

import { ExitCode } from "../errors.js";
import { processIo } from "./io.js";
import { main } from "./main.js";

const controller = new AbortController();
let interrupts = 0;
process.on("SIGINT", () => {
  interrupts += 1;
  if (interrupts > 1) process.exit(ExitCode.interrupted);
  process.stderr.write("\npersam-db: stopping after the current step (Ctrl-C again to quit now)\n");
  controller.abort();
});

const code = await main(process.argv.slice(2), processIo(controller.signal));
process.exitCode = code;
