// `prepare`: a folder of photos → a resumable DreamBooth training set, in two halves. `planPrepare`
// checks the settings, scans the photos and decides each photo's action from the last run's state;
// `runPrepare` carries the plan out (reference → each photo → exports → report). A caller that would
// rather not open the model when nothing needs segmenting looks at `plan.needsModel` in between.
// The stages live in ./prepare/ (design §1, §5, §6).

import type { SamModel } from "../segment/sam/sam-model.js";
import { dryRunResult, planPrepare } from "./prepare/plan.js";
import { runPrepare } from "./prepare/run.js";
import type { PrepareParams, PrepareResult } from "./prepare/types.js";

export { dryRunResult, type PreparePlan, planPrepare } from "./prepare/plan.js";
export { referenceText } from "./prepare/reference-stage.js";
export { runPrepare } from "./prepare/run.js";
export { DEFAULT_DECODE, defaultOutDir, modelKeyOf } from "./prepare/settings.js";
export * from "./prepare/types.js";

/**
 * Turn a folder of photos into a training set (design §5): plan, then run with `model` (a dry run
 * only plans). Inputs are opened read-only; every file is written under a temporary name and
 * renamed; OUT/.persam/state.json makes a rerun redo only what changed (photo content, segmentation
 * settings, output settings, missing or edited files). A photo that cannot be read, decoded or
 * masked is reported with one line and left out; doubtful masks are left out unless `keepDoubtful`;
 * `exitCode` is 2 when anything was left out.
 * @param params.model the loaded SAM (its files identify the model); required unless `dryRun`.
 * @throws UserError for a missing folder, no photos, bad settings, an unusable reference.
 * @throws AbortError when `signal` aborts (every file written so far is complete; rerun to finish).
 */
export async function prepare(params: PrepareParams & { readonly model?: SamModel }): Promise<PrepareResult> {
  const { model, ...rest } = params;
  const plan = await planPrepare({ ...rest, modelFiles: rest.modelFiles ?? model?.files });
  return plan.dryRun ? dryRunResult(plan) : runPrepare({ plan, model });
}
