// "Rebuild the set" from the review page: `prepare` again on the set's own photo folder with the
// settings it was made with, under the lock the review already holds, so that the review's decisions
// (overrides, include / exclude, reference) take effect. Only what changed is redone (plan.ts).

import { recordedParams } from "../dataset/prepare/run-record.js";
import { type PrepareEvent, type PrepareResult, planPrepare, runPrepare } from "../dataset/prepare.js";
import type { EmbeddingStore } from "../segment/sam/embedding-cache.js";
import type { SamModel } from "../segment/sam/sam-model.js";
import type { ReviewSet } from "./review-set.js";

/** Parameters of {@link rebuildSet}. */
export interface RebuildSetParams {
  readonly set: ReviewSet;
  /** The model the review runs (its files identify the model in the settings hashes). */
  readonly model: SamModel;
  /** @default the user's cache */
  readonly embeddingCache?: EmbeddingStore | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: PrepareEvent) => void) | undefined;
}

/**
 * Plan and run `prepare` for the set under review, then read the set again.
 * @throws UserError as `prepare` does (the photo folder gone, no usable photo, an unusable
 *   reference); AbortError when `signal` aborts (every file written so far is complete).
 */
export async function rebuildSet(params: RebuildSetParams): Promise<PrepareResult> {
  const { set, model } = params;
  const recorded = recordedParams(set.record);
  // Decisions being saved are part of this rebuild.
  await set.idle();
  try {
    const plan = await planPrepare({
      ...recorded,
      // A reference chosen in review replaces the one the set was made with (prepare takes the
      // review's reference when it is given none).
      references: set.decisions.reference ? [] : recorded.references,
      inputDir: set.inputDir,
      outDir: set.outDir,
      modelFiles: model.files,
      embeddingCache: params.embeddingCache,
      tool: "persam-db",
      signal: params.signal,
      onEvent: params.onEvent,
    });
    return await runPrepare({ plan, model, lock: set.lock });
  } finally {
    await set.reload();
  }
}
