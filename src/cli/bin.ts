#!/usr/bin/env node
// The executable: runs main() and is the only place that exits the process.

import { processIo } from "./io.js";
import { main } from "./main.js";
import { installStopSignals } from "./stop-signals.js";

const controller = new AbortController();
installStopSignals({
  source: process,
  controller,
  write: (text) => process.stderr.write(text),
  exit: (code) => process.exit(code),
});

const code = await main(process.argv.slice(2), processIo(controller.signal));
process.exitCode = code;
