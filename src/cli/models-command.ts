// `persam-db models list|pull|verify|path`: the registry models and their state in the Hugging Face
// cache. The work is done by src/segment/models/model-store.ts; this module parses, calls and prints.

import type { Argv } from "yargs";
import { hubConfig, persamCacheDir } from "../config.js";
import { UserError } from "../errors.js";
import {
  encoderVariant,
  loadModelRegistry,
  MODEL_VARIANTS,
  type ModelRegistry,
  type ModelVariant,
} from "../segment/models/model-registry.js";
import {
  type DownloadProgress,
  type ModelCacheStatus,
  type ModelFiles,
  modelCacheStatus,
  resolveModelFiles,
} from "../segment/models/model-store.js";
import { defineCommand, type GlobalOptions } from "./command.js";
import { byteProgress, formatBytes } from "./progress.js";

export const MODELS_ACTIONS = ["list", "pull", "verify", "path"] as const;
export type ModelsAction = (typeof MODELS_ACTIONS)[number];

/** Options of `persam-db models`. */
export interface ModelsOptions {
  action: ModelsAction;
  id?: string | undefined;
  variant: ModelVariant;
}

/** One row of `models list`. */
export interface ModelListRow {
  readonly id: string;
  readonly default: boolean;
  readonly description: string;
  readonly licence: string;
  readonly variant: ModelVariant;
  /** Encoder (+ external data) bytes of the variant, exact when known, else the Hub page figure. */
  readonly encoderBytes: number | undefined;
  /** Bytes of the whole checkpoint the decoder comes from (only its decoder tensors are fetched). */
  readonly checkpointBytes: number | undefined;
  readonly pinned: boolean;
  readonly cached: boolean;
}

/** Where models are and how to reach the Hub, from an environment. */
interface ModelsContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly registry?: ModelRegistry;
  readonly fetch?: typeof fetch;
  readonly signal?: AbortSignal | undefined;
  readonly quiet?: boolean;
  readonly onProgress?: (p: DownloadProgress) => void;
}

function locations(ctx: ModelsContext) {
  const hub = hubConfig(ctx.env);
  return { hub, cacheDir: hub.cacheDir, persamCacheDir: persamCacheDir(ctx.env) };
}

/**
 * Every registry model with its sizes and whether the variant is cached (no network).
 * @default params.variant "fp32"
 */
export async function listModels(
  params: ModelsContext & { variant?: ModelVariant },
): Promise<ModelListRow[]> {
  const registry = params.registry ?? loadModelRegistry();
  const { cacheDir, persamCacheDir: persamDir } = locations(params);
  const variant = params.variant ?? "fp32";
  const rows: ModelListRow[] = [];
  for (const m of registry.models) {
    const spec = m.encoder.variants[variant];
    const size = (f: { size?: number | undefined; approxBytes?: number | undefined } | undefined) =>
      f === undefined ? undefined : (f.size ?? f.approxBytes);
    const enc = size(spec);
    const extSizes = (spec?.externalData ?? []).map(size);
    const ext = extSizes.includes(undefined) ? undefined : extSizes.reduce<number>((n, b) => n + (b ?? 0), 0);
    const status = spec
      ? await modelCacheStatus({ modelId: m.id, variant, registry, cacheDir, persamCacheDir: persamDir })
      : undefined;
    rows.push({
      id: m.id,
      default: m.id === registry.defaultId,
      description: m.description,
      licence: m.licence,
      variant,
      encoderBytes: enc === undefined || ext === undefined ? undefined : enc + ext,
      checkpointBytes: size(m.decoder),
      pinned: m.encoder.pinned && m.decoder.pinned,
      cached: status?.cached ?? false,
    });
  }
  return rows;
}

/**
 * Download a model (encoder variant + decoder tensors) into the caches, or confirm it is there.
 * @throws {UserError} unknown model/variant, Hub errors, offline with nothing cached
 */
export async function pullModel(
  params: ModelsContext & { id: string; variant: ModelVariant },
): Promise<ModelFiles> {
  const { hub, cacheDir, persamCacheDir: persamDir } = locations(params);
  return resolveModelFiles({
    modelId: params.id,
    variant: params.variant,
    offline: hub.offline,
    cacheDir,
    persamCacheDir: persamDir,
    endpoint: hub.endpoint,
    http: hub.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: hub.idleTimeoutMs },
    ...(hub.token === undefined ? {} : { token: hub.token }),
    ...(params.registry === undefined ? {} : { registry: params.registry }),
    ...(params.fetch === undefined ? {} : { fetch: params.fetch }),
    ...(params.signal === undefined ? {} : { signal: params.signal }),
    ...(params.onProgress === undefined ? {} : { onProgress: params.onProgress }),
    quiet: params.quiet ?? false,
  });
}

/**
 * Re-hash the cached files of one model (or of every model with something cached).
 * @throws {UserError} unknown model or variant
 */
export async function verifyModels(
  params: ModelsContext & { id?: string | undefined; variant: ModelVariant },
): Promise<ModelCacheStatus[]> {
  const registry = params.registry ?? loadModelRegistry();
  const { cacheDir, persamCacheDir: persamDir } = locations(params);
  const ids = params.id !== undefined ? [params.id] : registry.models.map((m) => m.id);
  const out: ModelCacheStatus[] = [];
  for (const id of ids) {
    const entry = registry.models.find((m) => m.id === id);
    if (params.id === undefined && entry && !entry.encoder.variants[params.variant]) continue;
    const status = await modelCacheStatus({
      modelId: id,
      variant: params.variant,
      registry,
      cacheDir,
      persamCacheDir: persamDir,
      full: true,
    });
    if (params.id !== undefined || status.files.some((f) => f.state !== "missing")) out.push(status);
  }
  return out;
}

/**
 * Local paths of a cached model (no network).
 * @throws {UserError} when the model is not (completely) cached
 */
export async function modelPaths(
  params: ModelsContext & { id: string; variant: ModelVariant },
): Promise<{ encoderPath: string; decoderPath: string; externalDataPaths: string[] }> {
  const registry = params.registry ?? loadModelRegistry();
  const { cacheDir, persamCacheDir: persamDir } = locations(params);
  const entry = registry.models.find((m) => m.id === params.id);
  if (entry) encoderVariant({ entry, variant: params.variant });
  const status = await modelCacheStatus({
    modelId: params.id,
    variant: params.variant,
    registry,
    cacheDir,
    persamCacheDir: persamDir,
  });
  const pathOf = (role: string) => status.files.find((f) => f.role === role && f.state === "ok")?.localPath;
  const encoderPath = pathOf("encoder");
  const decoderPath = pathOf("decoder");
  if (!status.cached || encoderPath === undefined || decoderPath === undefined) {
    throw new UserError(
      `model '${params.id}' (${params.variant}) is not downloaded completely (${cacheDir})`,
      {
        hint: `run 'persam-db models pull ${params.id}${params.variant === "fp32" ? "" : ` --variant ${params.variant}`}'`,
      },
    );
  }
  const externalDataPaths = status.files
    .filter((f) => f.role === "external-data" && f.localPath !== undefined)
    .map((f) => f.localPath as string);
  return { encoderPath, decoderPath, externalDataPaths };
}

function sizeText(bytes: number | undefined): string {
  return bytes === undefined ? "?" : formatBytes(bytes);
}

export const modelsCommand = defineCommand<ModelsOptions>({
  command: "models [action] [id]",
  describe: "List, download, verify and locate the SAM models (Hugging Face cache)",
  builder: (yargs) =>
    yargs
      .positional("action", {
        choices: MODELS_ACTIONS,
        default: "list" as const,
        describe: "list | pull ID | verify [ID] | path ID",
      })
      .positional("id", { type: "string", describe: "Model id (see 'persam-db models list')" })
      .option("variant", {
        choices: MODEL_VARIANTS,
        default: "fp32" as const,
        describe: "Encoder variant: fp32, fp16 (half the download) or quantized (int8, smallest)",
      })
      .example("$0 models list", "Models, sizes, licences; * marks the default, 'cached' what is downloaded")
      .example(
        "$0 models pull slimsam-77 --variant quantized",
        "Download a model (HF_TOKEN, HF_ENDPOINT honoured)",
      )
      .example("$0 models verify", "Re-hash every cached model file")
      .example("$0 models path sam-vit-base --json", "Local encoder and decoder paths")
      .epilogue(
        "Files go to the Hugging Face cache (HF_HUB_CACHE, HF_HOME), shared with Python; only the decoder tensors of a checkpoint are downloaded (into ~/.cache/persam-db or PERSAM_DB_CACHE). HF_HUB_OFFLINE=1 uses cached files only.",
      ) as unknown as Argv<ModelsOptions & GlobalOptions>,
  async handler(options, context) {
    const reporter = context.reporter(options);
    const ctx: ModelsContext = { env: context.io.env, signal: context.io.signal, quiet: options.json };
    const needId = (what: string): string => {
      if (options.id === undefined) {
        throw new UserError(`'models ${what}' needs a model id`, {
          hint: `for example: persam-db models ${what} slimsam-77`,
        });
      }
      return options.id;
    };
    switch (options.action) {
      case "list": {
        const rows = await listModels({ ...ctx, variant: options.variant });
        reporter.emitJson({ variant: options.variant, models: rows });
        for (const r of rows) {
          const sizes = `encoder ${sizeText(r.encoderBytes)}, checkpoint ${sizeText(r.checkpointBytes)}`;
          reporter.result(
            `${r.default ? "*" : " "} ${r.id.padEnd(14)} ${(r.cached ? "cached" : "-").padEnd(7)} ${r.licence.padEnd(11)} ${sizes}  ${r.description}`,
          );
        }
        reporter.info(
          `(${options.variant} encoders; * = default; only the decoder tensors of a checkpoint are downloaded)`,
        );
        return;
      }
      case "pull": {
        const id = needId("pull");
        const bar = byteProgress(reporter);
        let files: ModelFiles;
        try {
          files = await pullModel({ ...ctx, id, variant: options.variant, onProgress: (p) => bar.update(p) });
        } finally {
          bar.clear();
        }
        reporter.emitJson(files);
        reporter.info(
          files.downloadedBytes > 0
            ? `downloaded ${formatBytes(files.downloadedBytes)} for ${id} (${options.variant})`
            : `${id} (${options.variant}) is already in the cache`,
        );
        if (!files.pinned)
          reporter.warn(
            `${id} is not pinned to a commit in the registry; using ${files.revision?.encoder.slice(0, 7)}/${files.revision?.decoder.slice(0, 7)}`,
          );
        reporter.result(`encoder ${files.encoderPath}`);
        reporter.result(`decoder ${files.decoderPath}`);
        return;
      }
      case "verify": {
        const statuses = await verifyModels({ ...ctx, id: options.id, variant: options.variant });
        reporter.emitJson({ variant: options.variant, models: statuses });
        if (statuses.length === 0) {
          // Nothing to verify is not a verified model: a script checking the cache must not pass.
          throw new UserError("no model files in the cache to verify", {
            hint: "run 'persam-db models pull slimsam-77' (or another id from 'persam-db models list')",
          });
        }
        const damaged: string[] = [];
        const missing: string[] = [];
        for (const s of statuses) {
          for (const f of s.files) {
            const where = f.localPath ?? `${f.repo}/${f.path}`;
            reporter.result(
              `${f.state.padEnd(7)} ${s.modelId} ${f.role.padEnd(13)} ${where}${f.problem ? ` (${f.problem})` : ""}`,
            );
            if (f.state === "damaged") damaged.push(`${s.modelId} ${f.role}`);
            else if (f.state === "missing") missing.push(`${s.modelId} ${f.role}`);
          }
        }
        if (damaged.length > 0 || missing.length > 0) {
          const ids = [
            ...new Set(statuses.filter((s) => s.files.some((f) => f.state !== "ok")).map((s) => s.modelId)),
          ];
          throw new UserError(
            [
              ...(damaged.length > 0 ? [`damaged model files: ${damaged.join(", ")}`] : []),
              ...(missing.length > 0 ? [`missing model files: ${missing.join(", ")}`] : []),
            ].join("; "),
            { hint: `run ${ids.map((id) => `'persam-db models pull ${id}'`).join(" and ")} to fetch them` },
          );
        }
        return;
      }
      case "path": {
        const id = needId("path");
        const paths = await modelPaths({ ...ctx, id, variant: options.variant });
        reporter.emitJson({ modelId: id, variant: options.variant, ...paths });
        reporter.result(`encoder ${paths.encoderPath}`);
        for (const p of paths.externalDataPaths) reporter.result(`external-data ${p}`);
        reporter.result(`decoder ${paths.decoderPath}`);
        return;
      }
    }
  },
});
