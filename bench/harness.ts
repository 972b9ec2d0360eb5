// The benchmark harness: what a case is, how one quantity is timed (warm-ups, then timed runs), and
// what a case reports. Cases live in bench/cases/, one file per case, registered in run.ts.

import { type Stats, summarize } from "./stats.js";

/** Settings every case receives from the command line. */
export interface BenchContext {
  /** Timed runs per measurement; undefined = the case's own default. */
  readonly runs: number | undefined;
  /** Untimed runs before timing; undefined = the case's own default. */
  readonly warmup: number | undefined;
  /** Intra-op threads for onnxruntime sessions. */
  readonly threads: number;
  /** Progress line on stderr. */
  log(message: string): void;
}

/** One measured quantity of a case. */
export interface Measurement {
  /** `case/quantity`, e.g. `decoder/points`. */
  readonly name: string;
  /** What exactly is inside the timed region. */
  readonly description: string;
  readonly stats: Stats;
  /**
   * CPU time (user + system, all threads of the process) per run. On a machine shared with other
   * work this is steadier than wall time; for single-threaded code it is what wall time would be
   * on an idle machine, for onnxruntime with N threads up to N × wall.
   */
  readonly cpu?: Stats;
  /** The speed target in milliseconds (compared with the median), when there is one. */
  readonly targetMs?: number;
  /** Onnxruntime intra-op threads used, when the quantity runs a session. */
  readonly threads?: number;
  /** Sizes, counts or per-stage medians worth keeping beside the timing. */
  readonly details?: Readonly<Record<string, number | string>>;
}

/** A named benchmark case. */
export interface BenchCase {
  readonly name: string;
  /** One line for `--list`. */
  readonly summary: string;
  run(ctx: BenchContext): Promise<Measurement[]>;
}

/** Options of {@link timeIt}. */
export interface TimeItOptions {
  /** Timed runs. */
  readonly runs: number;
  /** Untimed runs first (JIT, caches, onnxruntime's first-run allocations). */
  readonly warmup: number;
  /** Called before each run, outside the timed region (fresh inputs). */
  readonly setup?: () => void | Promise<void>;
}

/** Samples and their summary. */
export interface Timing {
  /** Wall-clock milliseconds per timed run. */
  readonly samples: readonly number[];
  readonly stats: Stats;
  /** CPU milliseconds (user + system, whole process) per timed run. */
  readonly cpuSamples: readonly number[];
  readonly cpu: Stats;
}

/**
 * Time `fn` `runs` times after `warmup` untimed calls, with `performance.now()` around each call.
 * A garbage collection is forced between runs when node runs with `--expose-gc`, so that one run's
 * garbage is not charged to the next.
 * @throws {Error} when runs is not a positive integer or warmup a non-negative one.
 */
export async function timeIt(fn: () => unknown, options: TimeItOptions): Promise<Timing> {
  const { runs, warmup } = options;
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`Expected a positive integer for runs but received ${runs}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new Error(`Expected a non-negative integer for warmup but received ${warmup}`);
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  const samples: number[] = [];
  const cpuSamples: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    await options.setup?.();
    gc?.();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    const t1 = performance.now();
    const c1 = process.cpuUsage(c0);
    if (i >= warmup) {
      samples.push(t1 - t0);
      cpuSamples.push((c1.user + c1.system) / 1000);
    }
  }
  return { samples, stats: summarize(samples), cpuSamples, cpu: summarize(cpuSamples) };
}

/** The run count for a measurement: the command line's, else the case's default. */
export function runsOf(ctx: BenchContext, caseDefault: number): number {
  return ctx.runs ?? caseDefault;
}

/** The warm-up count for a measurement: the command line's, else the case's default. */
export function warmupOf(ctx: BenchContext, caseDefault: number): number {
  return ctx.warmup ?? caseDefault;
}

/**
 * Median of each named stage over several per-run timing records (e.g. PerSamResult.timings), keyed
 * by the stage name + `suffix`.
 */
export function stageMedians(
  records: readonly Readonly<Record<string, number>>[],
  suffix = "Ms",
): Record<string, number> {
  const names = new Set(records.flatMap((r) => Object.keys(r)));
  const out: Record<string, number> = {};
  for (const name of names) {
    const values = records.map((r) => r[name] ?? 0);
    out[`${name}${suffix}`] = round(summarize(values).median);
  }
  return out;
}

/** Round to 2 decimals for reports. */
export function round(x: number): number {
  return Math.round(x * 100) / 100;
}
