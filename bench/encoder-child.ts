// Child side of the encoder cases (`encoder`, `encoder-variants`): open a SamEncoder and time its
// encodes of a fixed random input, inside the child process that bench/rss.ts's `runChild` starts
// (so the process's peak RSS is this configuration's alone).

import type { EncoderOutput, SamEncoderOptions } from "../src/segment/sam/encoder-session.js";
import { SamEncoder } from "../src/segment/sam/encoder-session.js";
import { ENCODER_SIDE } from "../src/segment/sam/sam-constants.js";
import { type OperatorProfile, readOperatorProfile } from "./profile.js";
import { uniformArray } from "./synthetic.js";

/** What {@link timeEncoder} opens and how often it encodes. */
export interface EncoderTimingArgs {
  readonly modelPath: string;
  /** Session options plus the encoder's load-time attention chunking. */
  readonly options: Omit<SamEncoderOptions, "path">;
  /** Untimed encodes first. */
  readonly warmup: number;
  /** Timed encodes. */
  readonly runs: number;
  /** Profile every operator (onnxruntime's profiler) into files with this prefix. */
  readonly profilePrefix?: string | undefined;
}

/** What {@link timeEncoder} measured. */
export interface EncoderTiming {
  /** `SamEncoder.create`, ms. */
  readonly createMs: number;
  /** Wall time of each timed encode, ms. */
  readonly wallMs: readonly number[];
  /** CPU time (user + system, whole process) of each timed encode, ms. */
  readonly cpuMs: readonly number[];
  /** Resident set size right after create, bytes. */
  readonly rssAfterCreateBytes: number;
  /** The encoder's load notes (what the attention rewrite did). */
  readonly loadNotes: readonly string[];
  /** The encoder's input element type. */
  readonly inputType: "float32" | "float16";
  /** Kernel time by operator type over the timed encodes, when profiled. */
  readonly profile?: OperatorProfile | undefined;
}

/**
 * Open the encoder at `args.modelPath`, encode a fixed random `[1,3,1024,1024]` input
 * `warmup + runs` times (a garbage collection before each when node runs with `--expose-gc`), then
 * dispose of it. `onOutput` sees every encode's output, outside the timed region.
 */
export async function timeEncoder(
  args: EncoderTimingArgs,
  onOutput?: (output: EncoderOutput) => void,
): Promise<EncoderTiming> {
  const t0 = performance.now();
  const encoder = await SamEncoder.create({
    path: args.modelPath,
    ...args.options,
    ...(args.profilePrefix === undefined ? {} : { profileFilePrefix: args.profilePrefix }),
  });
  const createMs = performance.now() - t0;
  const rssAfterCreateBytes = process.memoryUsage().rss;
  const pixels = {
    data: uniformArray(3 * ENCODER_SIDE * ENCODER_SIDE, 7, -2, 2),
    dims: [1, 3, ENCODER_SIDE, ENCODER_SIDE],
  };
  const wallMs: number[] = [];
  const cpuMs: number[] = [];
  const gc = (globalThis as { gc?: () => void }).gc;
  try {
    for (let i = 0; i < args.warmup + args.runs; i++) {
      gc?.();
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      const output = await encoder.encode(pixels);
      const w1 = performance.now();
      const c1 = process.cpuUsage(c0);
      onOutput?.(output);
      if (i >= args.warmup) {
        wallMs.push(w1 - w0);
        cpuMs.push((c1.user + c1.system) / 1000);
      }
      process.stderr.write(
        `·   encode ${i < args.warmup ? "warm-up" : `run ${i - args.warmup + 1}`}: ${(w1 - w0).toFixed(0)} ms\n`,
      );
    }
    if (args.profilePrefix !== undefined) encoder.endProfiling();
  } finally {
    await encoder.dispose();
  }
  const profile =
    args.profilePrefix === undefined ? undefined : await readOperatorProfile(args.profilePrefix, args.warmup);
  return {
    profile,
    createMs,
    wallMs,
    cpuMs,
    rssAfterCreateBytes,
    loadNotes: encoder.loadNotes,
    inputType: encoder.inputType,
  };
}
