// onnxruntime's profiler output (a Chrome-trace JSON: one event per operator run) summed by
// operator type: where an encode's kernel time goes.

import { readdir, readFile, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Kernel time per operator type, per session run. */
export interface OperatorProfile {
  /** Session runs in the trace. */
  readonly runs: number;
  /** Kernel ms per run, all operators. */
  readonly kernelMs: number;
  /** By operator type, largest first: ms per run, share of kernel time, nodes of that type. */
  readonly byOp: readonly {
    readonly op: string;
    readonly ms: number;
    readonly share: number;
    readonly nodes: number;
  }[];
}

interface TraceEvent {
  readonly cat?: string;
  readonly name?: string;
  readonly dur?: number;
  readonly args?: { readonly op_name?: string };
}

/**
 * Read (and remove) the newest trace written with `prefix` and sum its kernel times by operator
 * type. `skipRuns` first session runs (warm-up) are left out.
 */
export async function readOperatorProfile(prefix: string, skipRuns = 0): Promise<OperatorProfile> {
  const dir = dirname(prefix);
  const files = (await readdir(dir))
    .filter((f) => f.startsWith(basename(prefix)) && f.endsWith(".json"))
    .sort();
  const file = files.at(-1);
  if (file === undefined) throw new Error(`Expected an onnxruntime profile ${prefix}*.json but found none`);
  const events = JSON.parse(await readFile(join(dir, file), "utf8")) as TraceEvent[];
  await rm(join(dir, file), { force: true });
  let run = -1;
  const byOp = new Map<string, { us: number; nodes: Set<string> }>();
  let total = 0;
  for (const e of events) {
    if (e.cat === "Session" && e.name === "model_run") run++;
    if (e.cat !== "Node" || !e.name?.endsWith("_kernel_time") || e.dur === undefined) continue;
    // Kernel events come before their run's model_run event closes: count by the run in progress.
    if (run + 1 < skipRuns) continue;
    const op = e.args?.op_name ?? "?";
    const entry = byOp.get(op) ?? { us: 0, nodes: new Set<string>() };
    entry.us += e.dur;
    entry.nodes.add(e.name);
    byOp.set(op, entry);
    total += e.dur;
  }
  const runs = Math.max(
    1,
    events.filter((e) => e.cat === "Session" && e.name === "model_run").length - skipRuns,
  );
  return {
    runs,
    kernelMs: total / 1000 / runs,
    byOp: [...byOp]
      .map(([op, v]) => ({ op, ms: v.us / 1000 / runs, share: v.us / total, nodes: v.nodes.size }))
      .sort((a, b) => b.ms - a.ms),
  };
}
