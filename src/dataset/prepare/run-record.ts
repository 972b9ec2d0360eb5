// The record of how a set was made (OUT/.persam/run.json): the photo folder, the model files and the
// settings of the last `prepare` that wrote it, so that `review` can open the same model and rebuild
// the set with the same settings. It holds absolute paths, which is why it lives under `.persam/`
// (never published).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { STATE_DIR } from "../prepare-state.js";
import type { PreparePlan } from "./plan.js";
import type { PrepareParams, TrainerChoice } from "./types.js";

/** The record, relative to the output folder. */
export const RUN_RECORD_FILE = `${STATE_DIR}/run.json`;

const referenceSchema = z.strictObject({
  photo: z.string(),
  maskPath: z.string().optional(),
  clicks: z
    .array(
      z.strictObject({
        point: z.tuple([z.number(), z.number()]),
        label: z.union([z.literal(0), z.literal(1)]),
      }),
    )
    .optional(),
  box: z.tuple([z.number(), z.number(), z.number(), z.number()]).optional(),
});

const paramsSchema = z.strictObject({
  references: z.array(referenceSchema),
  mode: z.enum(["persam", "persam-f"]).optional(),
  fusionTrainer: z.record(z.string(), z.unknown()).optional(),
  resolution: z.number().optional(),
  crop: z.enum(["subject", "center", "none"]).optional(),
  aspect: z.number().optional(),
  margin: z.number().optional(),
  background: z.string().optional(),
  bgWeight: z.number().optional(),
  feather: z.number().optional(),
  identifier: z.string().optional(),
  className: z.string().optional(),
  captionTemplate: z.string().optional(),
  keepDoubtful: z.boolean().optional(),
  trainer: z.enum(["diffusers", "kohya", "onetrainer", "all"]).optional(),
  preset: z.string().optional(),
  configsDir: z.string().optional(),
  recursive: z.boolean().optional(),
  maxPixels: z.number().optional(),
  jobs: z.number().optional(),
});

const runRecordSchema = z.strictObject({
  version: z.literal(1),
  /** The photo folder, absolute. */
  inputDir: z.string(),
  /** The model files the set was segmented with. */
  model: z.strictObject({ encoderPath: z.string(), decoderPath: z.string(), label: z.string() }),
  /** The settings as the caller gave them (defaults are applied again when they are read). */
  params: paramsSchema,
});
/** OUT/.persam/run.json. */
export type RunRecord = z.infer<typeof runRecordSchema>;

/** The settings a run was given that shape the set (no model, signal, cache or callbacks). */
export type RecordedParams = Omit<
  PrepareParams,
  | "inputDir"
  | "outDir"
  | "modelFiles"
  | "modelKey"
  | "force"
  | "dryRun"
  | "embeddingCache"
  | "tool"
  | "signal"
  | "onEvent"
>;

/** The record of a planned run (`userReferences`: the references its caller gave). */
export function runRecordOf(plan: PreparePlan, userReferences: PrepareParams["references"]): RunRecord {
  const p = plan.params;
  const files = p.modelFiles;
  if (files === undefined) throw new Error("runRecordOf: a run without model files");
  const params: Record<string, unknown> = {
    references: (userReferences ?? []).map((r) => ({
      photo: r.photo,
      ...(r.maskPath === undefined ? {} : { maskPath: r.maskPath }),
      ...(r.clicks === undefined
        ? {}
        : { clicks: r.clicks.map((c) => ({ point: [...c.point], label: c.label })) }),
      ...(r.box === undefined ? {} : { box: [...r.box] }),
    })),
    mode: p.mode,
    fusionTrainer: p.fusionTrainer,
    resolution: p.resolution,
    crop: p.crop,
    aspect: p.aspect,
    margin: p.margin,
    background: p.background,
    bgWeight: p.bgWeight,
    feather: p.feather,
    identifier: p.identifier,
    className: p.className,
    captionTemplate: p.captionTemplate,
    keepDoubtful: p.keepDoubtful,
    trainer: p.trainer,
    preset: p.preset,
    configsDir: p.configsDir,
    recursive: p.recursive,
    maxPixels: p.maxPixels,
    jobs: p.jobs,
  };
  for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
  return runRecordSchema.parse({
    version: 1,
    inputDir: plan.inputDir,
    model: { encoderPath: files.encoderPath, decoderPath: files.decoderPath, label: files.label },
    params,
  });
}

/** Save the record atomically. */
export async function writeRunRecord(outDir: string, record: RunRecord): Promise<void> {
  await writeFileAtomic(join(outDir, RUN_RECORD_FILE), `${JSON.stringify(record, null, 1)}\n`, {
    mkdir: true,
    fsync: false,
  });
}

/**
 * Read the record of a set.
 * @returns the record, or undefined (with the reason) when it is missing or not a record of this version
 */
export async function readRunRecord(
  outDir: string,
): Promise<{ record: RunRecord; problem?: undefined } | { record?: undefined; problem: string }> {
  const path = join(outDir, RUN_RECORD_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { problem: code === "ENOENT" ? `${path} is missing` : `cannot read ${path} (${code ?? "error"})` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: `${path} is not valid JSON` };
  }
  const parsed = runRecordSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return {
      problem: `${path} is not a run record of this persam-db version (${first?.path.join(".") ?? ""})`,
    };
  }
  return { record: parsed.data };
}

/** The recorded settings as `prepare` parameters. */
export function recordedParams(record: RunRecord): RecordedParams {
  const p = record.params;
  return {
    ...p,
    references: p.references.map((r) => ({
      photo: r.photo,
      ...(r.maskPath === undefined ? {} : { maskPath: r.maskPath }),
      ...(r.clicks === undefined ? {} : { clicks: r.clicks }),
      ...(r.box === undefined ? {} : { box: r.box }),
    })),
    ...(p.trainer === undefined ? {} : { trainer: p.trainer as TrainerChoice }),
    ...(p.fusionTrainer === undefined
      ? {}
      : { fusionTrainer: p.fusionTrainer as PrepareParams["fusionTrainer"] }),
  };
}
