// The measured peak that encoder figures are compared with: one 2048 × 2048 × 2048 fp32 MatMul
// (17.2 GFLOP) in onnxruntime on the same threads as the encoder, the right-hand matrix a constant
// (pre-packed, like a weight). What the CPU really reaches at its current clock and with this
// onnxruntime, beside the theoretical figure of flops.ts (which boost clocks exceed).

import { GraphBuilder } from "../src/segment/onnx/graph-builder.js";
import { createSession, ortFloat32 } from "../src/segment/sam/ort.js";
import { summarize } from "./stats.js";
import { uniformArray } from "./synthetic.js";

/** Side of the square matrices. */
export const PEAK_SIDE = 2048;

/** What {@link measureMatMulPeak} found. */
export interface MatMulPeak {
  /** Median GFLOP/s over the timed runs. */
  readonly gflopPerS: number;
  /** Best run's GFLOP/s. */
  readonly bestGflopPerS: number;
  /** Wall ms of each timed run. */
  readonly wallMs: readonly number[];
  readonly threads: number;
}

/**
 * Time one `[2048,2048] × [2048,2048]` MatMul `runs` times (after 2 untimed runs) in a session with
 * `threads` intra-op threads and persam-db's session defaults.
 */
export async function measureMatMulPeak(threads: number, runs = 7): Promise<MatMulPeak> {
  const n = PEAK_SIDE;
  const g = new GraphBuilder("matmul_peak");
  const a = g.input("a", "float", [n, n]);
  const b = g.initFloat("b", uniformArray(n * n, 3, -1, 1), [n, n]);
  g.output(g.op("MatMul", [a, b]), "y", "float", [n, n]);
  const session = await createSession(g.toModel(), { threads });
  try {
    const feeds = { a: ortFloat32(uniformArray(n * n, 5, -1, 1), [n, n]) };
    const wallMs: number[] = [];
    for (let i = 0; i < runs + 2; i++) {
      const t = performance.now();
      await session.run(feeds);
      if (i >= 2) wallMs.push(performance.now() - t);
    }
    const flop = 2 * n * n * n;
    const median = summarize(wallMs).median;
    return {
      gflopPerS: flop / (median / 1000) / 1e9,
      bestGflopPerS: flop / (Math.min(...wallMs) / 1000) / 1e9,
      wallMs,
      threads,
    };
  } finally {
    await session.release();
  }
}
