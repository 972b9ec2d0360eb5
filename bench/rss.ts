// Peak resident memory of a piece of work, measured cleanly: the work runs in a child node process
// of its own, which reports `process.resourceUsage().maxRSS` (getrusage's ru_maxrss: the high-water
// mark of the whole process, native onnxruntime and sharp buffers included) when it is done.
// A case module becomes runnable as such a child with `childMain`; the parent calls `runChild`.

import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";

/** Marks the child's one result line on stdout. */
const RESULT_MARK = "@@bench-child-result ";

/** What a child reports besides its task's own value. */
export interface ChildReport<T> {
  readonly value: T;
  /** Peak resident set size of the child process, bytes (ru_maxrss). */
  readonly maxRssBytes: number;
  /** Resident set size when the child started its task (node + loaded modules), bytes. */
  readonly baseRssBytes: number;
  /** Wall time of the whole child process as the parent saw it (node start to exit), ms. */
  readonly processMs: number;
  /** 1-minute load average when the child finished. */
  readonly loadAtEnd: number;
}

/**
 * Run `task` of the case module at `moduleUrl` (its `import.meta.url`, compiled) in a fresh node
 * process with `args` (JSON), and return what its handler returned with the process's peak RSS.
 * The child's stderr is passed through (progress lines).
 * @throws {Error} when the child exits non-zero or reports nothing.
 */
export async function runChild<T>(moduleUrl: string, task: string, args: unknown): Promise<ChildReport<T>> {
  const script = fileURLToPath(moduleUrl);
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    ["--expose-gc", script, "--bench-child", task, JSON.stringify(args)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let stdout = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    stdout += chunk;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c) => resolve(c));
  });
  const processMs = performance.now() - t0;
  const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARK));
  if (code !== 0 || line === undefined) {
    throw new Error(`Expected the bench child '${task}' to exit 0 with a result but it exited ${code}`);
  }
  const report = JSON.parse(line.slice(RESULT_MARK.length)) as Omit<ChildReport<T>, "processMs">;
  return { ...report, processMs };
}

/**
 * When this process was started by {@link runChild} for a task of `handlers`, run it, print its
 * result line and return true; otherwise return false at once (the module was merely imported).
 */
export function childMain(
  moduleUrl: string,
  handlers: Readonly<Record<string, (args: unknown) => Promise<unknown>>>,
): boolean {
  const [script, flag, task, json] = process.argv.slice(1);
  if (flag !== "--bench-child" || script === undefined || fileURLToPath(moduleUrl) !== script) return false;
  const handler = task === undefined ? undefined : handlers[task];
  if (handler === undefined) throw new Error(`Expected a bench child task but received ${task}`);
  const baseRssBytes = process.memoryUsage().rss;
  handler(JSON.parse(json ?? "null") as unknown).then(
    (value) => {
      const report = {
        value,
        maxRssBytes: process.resourceUsage().maxRSS * 1024,
        baseRssBytes,
        loadAtEnd: loadavg()[0],
      };
      // Exit once the line is flushed: a lingering handle must not keep the child alive.
      process.stdout.write(`${RESULT_MARK}${JSON.stringify(report)}\n`, () => process.exit(0));
    },
    (error: unknown) => {
      process.stderr.write(`bench child ${task}: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 1;
    },
  );
  return true;
}

/** Bytes as MiB, 1 decimal, for reports. */
export function mib(bytes: number): number {
  return Math.round((bytes / 2 ** 20) * 10) / 10;
}
