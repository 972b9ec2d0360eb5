// The library face of persam-db: the supported API. Everything else under dist/ is internal and may
// change between versions; import from "persam-db" only.

export {
  type PrepareEvent,
  type PrepareParams,
  type PreparePlan,
  type PrepareResult,
  planPrepare,
  prepare,
  runPrepare,
} from "./dataset/prepare.js";
export {
  type SegmentFolderParams,
  type SegmentFolderResult,
  type SegmentFolderScan,
  scanSegmentFolder,
  segmentFolder,
} from "./dataset/segment-folder.js";
export { type DoctorCheck, runDoctor } from "./doctor.js";
export { ExitCode, isUserError, UserError } from "./errors.js";
export { type EvaluatePerSegParams, evaluatePerSeg, type PerSegEvaluation } from "./eval/perseg-eval.js";
export { type PushDatasetParams, type PushResult, pushDataset } from "./hub/dataset-push.js";
export { HubUserError } from "./hub/hub-api.js";
export type { RebuildEvent, ReviewApi } from "./review/review-api.js";
export {
  type ReviewServer,
  type StartReviewServerParams,
  startReviewServer,
} from "./review/review-server.js";
export { type OpenReviewSetParams, type ReviewPhoto, ReviewSet } from "./review/review-set.js";
export {
  DEFAULT_MODEL_ID,
  loadModelRegistry,
  type ModelRegistry,
  type ModelVariant,
} from "./segment/models/model-registry.js";
export {
  type ModelFiles,
  type ResolveModelFilesParams,
  resolveModelFiles,
} from "./segment/models/model-store.js";
export { type TinyModelFiles, type TinyModelParams, writeTinyModel } from "./segment/models/tiny-model.js";
export type { ReferenceMode, ReferenceSpec } from "./segment/persam/reference-source.js";
export {
  type EncodedPhoto,
  SamModel,
  type SamModelFiles,
  type SamModelOptions,
} from "./segment/sam/sam-model.js";
export { type FindVideoToolsParams, findVideoTools, type VideoTools } from "./video/video-tools.js";
