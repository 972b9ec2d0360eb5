// Run the CLI in-process with captured output streams.

import { Writable } from "node:stream";
import type { CliIo } from "../../src/cli/io.js";
import { main } from "../../src/cli/main.js";

/** What one in-process CLI run printed and returned. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

/** Run `persam-db ...argv` in-process. */
export async function runCli(
  argv: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; signal?: AbortSignal } = {},
): Promise<CliRun> {
  const out = collector();
  const err = collector();
  const io: CliIo = {
    stdout: out.stream,
    stderr: err.stream,
    env: options.env ?? { ...process.env, HF_HUB_OFFLINE: "1" },
    cwd: options.cwd ?? process.cwd(),
    isTty: false,
    signal: options.signal,
  };
  const code = await main(argv, io);
  return { code, stdout: out.text(), stderr: err.text() };
}
