// The model registry (models/registry.json): which Hub repos, commits and files make each SAM
// checkpoint persam-db can download, validated with zod and every problem reported with its path.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { UserError } from "../../errors.js";

/**
 * The model used when none is named: SlimSAM-77. Its encoder is 23 MB (fp32), far smaller and
 * cheaper on a CPU than SAM ViT-B's (bench/README.md, case `encoder`), it keeps SAM's decoder
 * architecture (so PerSAM and PerSAM-F apply unchanged), it is Apache-2.0, and its encoder is
 * pinned to a verified commit (hub.md §1.5). Use `sam-vit-base` when quality matters more than
 * time.
 */
export const DEFAULT_MODEL_ID = "slimsam-77";

/** Encoder variants a registry entry may offer. */
export const MODEL_VARIANTS = ["fp32", "fp16", "quantized"] as const;
export type ModelVariant = (typeof MODEL_VARIANTS)[number];

const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** True for a 40-hex commit SHA (an immutable revision). */
export function isCommitSha(revision: string): boolean {
  return COMMIT.test(revision);
}

const repoName = z
  .string()
  .regex(/^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/, { message: "expected 'namespace/name'" });
const filePath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith("/") && !p.split("/").some((s) => s === ".." || s === "." || s === ""), {
    message: "expected a relative path inside the repo without '..'",
  });
/** Where a pinned value came from: one line. */
const source = z
  .string()
  .min(1)
  .refine((s) => !s.includes("\n"), { message: "expected one line" });

const fileSpec = {
  path: filePath,
  /** Exact size in bytes at the pinned commit (verified after download). */
  size: z.number().int().positive().optional(),
  /** sha256 of the content at the pinned commit (verified after download). */
  sha256: z.string().regex(SHA256, { message: "expected 64 lowercase hex digits" }).optional(),
  /** Display-only size from the Hub pages (not verified). */
  approxBytes: z.number().int().positive().optional(),
  /** Where `size` and `sha256` came from. */
  source: source.optional(),
};

const fileSchema = z.strictObject(fileSpec);
const variantSchema = z.strictObject({
  ...fileSpec,
  /**
   * External-data files the graph names. Files the graph names but the registry does not list are
   * found by reading the graph after download.
   */
  externalData: z.array(fileSchema).optional(),
});

/** `revision` is a commit SHA, or a branch with an explicit `pinned: false`. */
function revisionChecked<T extends { revision: string; pinned?: boolean | undefined }>(
  value: T,
  ctx: z.RefinementCtx,
): void {
  const sha = COMMIT.test(value.revision);
  if (!sha && value.pinned !== false) {
    ctx.addIssue({
      code: "custom",
      path: ["pinned"],
      message: `revision '${value.revision}' is not a 40-hex commit: mark it "pinned": false (it is then resolved to a commit on first download)`,
    });
  }
  if (sha && value.pinned === false) {
    ctx.addIssue({
      code: "custom",
      path: ["pinned"],
      message: "a 40-hex revision is pinned; drop 'pinned: false'",
    });
  }
}

const encoderSchema = z
  .strictObject({
    repo: repoName,
    revision: z.string().min(1),
    pinned: z.boolean().optional(),
    /** Where the revision came from. */
    source: source.optional(),
    variants: z.strictObject({
      fp32: variantSchema,
      fp16: variantSchema.optional(),
      quantized: variantSchema.optional(),
    }),
  })
  .superRefine(revisionChecked);

const decoderSchema = z
  .strictObject({
    repo: repoName,
    revision: z.string().min(1),
    pinned: z.boolean().optional(),
    ...fileSpec,
    /** Where the revision, size and sha256 came from. */
    source: source.optional(),
  })
  .superRefine(revisionChecked)
  .refine((d) => d.path.endsWith(".safetensors"), {
    message: "expected a .safetensors file",
    path: ["path"],
  });

const modelSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, { message: "expected a lowercase id (a-z, 0-9, '-', '.')" }),
  description: z
    .string()
    .min(1)
    .refine((s) => !s.includes("\n"), { message: "expected one line" }),
  licence: z.string().min(1),
  quality: z.string().min(1),
  encoder: encoderSchema,
  decoder: decoderSchema,
});

const registrySchema = z
  .strictObject({
    $comment: z.string().optional(),
    default: z.string(),
    models: z.array(modelSchema).min(1),
  })
  .superRefine((r, ctx) => {
    const seen = new Set<string>();
    r.models.forEach((m, i) => {
      if (seen.has(m.id))
        ctx.addIssue({ code: "custom", path: ["models", i, "id"], message: `duplicate id ${m.id}` });
      seen.add(m.id);
    });
    if (!seen.has(r.default)) {
      ctx.addIssue({
        code: "custom",
        path: ["default"],
        message: `default '${r.default}' is not a model id`,
      });
    }
  });

/** One file of a model (a Hub path with optional verified size and sha256). */
export interface RegistryFile {
  readonly path: string;
  readonly size?: number | undefined;
  readonly sha256?: string | undefined;
  readonly approxBytes?: number | undefined;
  /** Where `size` and `sha256` came from. */
  readonly source?: string | undefined;
}

/**
 * One encoder variant; `externalData` lists the weight files a large ONNX graph keeps beside it
 * (empty when the registry declares none; the graph itself may still name some).
 */
export interface RegistryVariant extends RegistryFile {
  readonly externalData: readonly RegistryFile[];
}

/** A repo at a revision; `pinned` is false when the revision is a branch. */
export interface RegistryRepoRef {
  readonly repo: string;
  readonly revision: string;
  readonly pinned: boolean;
  /** Where the revision came from. */
  readonly source?: string | undefined;
}

/** One model of the registry. */
export interface ModelEntry {
  readonly id: string;
  readonly description: string;
  readonly licence: string;
  readonly quality: string;
  readonly encoder: RegistryRepoRef & {
    readonly variants: {
      readonly fp32: RegistryVariant;
      readonly fp16?: RegistryVariant | undefined;
      readonly quantized?: RegistryVariant | undefined;
    };
  };
  readonly decoder: RegistryRepoRef & RegistryFile;
}

/** The parsed registry. */
export interface ModelRegistry {
  readonly defaultId: string;
  readonly models: readonly ModelEntry[];
}

/**
 * Validate registry JSON.
 * @param params.json the parsed JSON document
 * @param params.source file name used in the error message. @default "models/registry.json"
 * @throws {UserError} listing every problem with its path (e.g. `models[2].encoder.revision`)
 */
export function parseModelRegistry(params: { json: unknown; source?: string }): ModelRegistry {
  const result = registrySchema.safeParse(params.json);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
    throw new UserError(
      `${params.source ?? "models/registry.json"} has ${problems.length} problem${problems.length === 1 ? "" : "s"}: ${problems.join("; ")}`,
      { hint: "fix the registry file" },
    );
  }
  const r = result.data;
  const variant = (v: z.infer<typeof variantSchema>): RegistryVariant => ({
    ...v,
    externalData:
      v.externalData === undefined ? [] : Array.isArray(v.externalData) ? v.externalData : [v.externalData],
  });
  return {
    defaultId: r.default,
    models: r.models.map((m) => ({
      ...m,
      encoder: {
        ...m.encoder,
        pinned: COMMIT.test(m.encoder.revision),
        variants: {
          fp32: variant(m.encoder.variants.fp32),
          ...(m.encoder.variants.fp16 ? { fp16: variant(m.encoder.variants.fp16) } : {}),
          ...(m.encoder.variants.quantized ? { quantized: variant(m.encoder.variants.quantized) } : {}),
        },
      },
      decoder: { ...m.decoder, pinned: COMMIT.test(m.decoder.revision) },
    })),
  };
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "(root)" : out;
}

/** The bundled registry file: walks up from this module to the package's `models/` folder. */
export function bundledRegistryPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "models", "registry.json");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error("models/registry.json not found next to the persam-db package");
}

let bundled: ModelRegistry | undefined;

/**
 * Load and validate a registry file.
 * @param params.path registry JSON file. @default the bundled models/registry.json (cached)
 * @throws {UserError} when the file is missing, not JSON, or invalid
 */
export function loadModelRegistry(params: { path?: string } = {}): ModelRegistry {
  if (params.path === undefined && bundled !== undefined) return bundled;
  const path = params.path ?? bundledRegistryPath();
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    throw new UserError(`Cannot read the model registry ${path}`, {
      hint: "check that it is valid JSON",
      cause,
    });
  }
  const registry = parseModelRegistry({ json, source: path });
  if (params.path === undefined) bundled = registry;
  return registry;
}

/**
 * The entry of a model id.
 * @throws {UserError} naming the known ids when `id` is unknown
 */
export function findModel(params: { registry: ModelRegistry; id: string }): ModelEntry {
  const entry = params.registry.models.find((m) => m.id === params.id);
  if (!entry) {
    throw new UserError(`Unknown model '${params.id}'`, {
      hint: `choose one of ${params.registry.models.map((m) => m.id).join(", ")} ('persam-db models list')`,
    });
  }
  return entry;
}

/**
 * The encoder file of a variant.
 * @throws {UserError} when the model has no such variant
 */
export function encoderVariant(params: { entry: ModelEntry; variant: ModelVariant }): RegistryVariant {
  const v = params.entry.encoder.variants[params.variant];
  if (!v) {
    const offered = MODEL_VARIANTS.filter((k) => params.entry.encoder.variants[k] !== undefined);
    throw new UserError(`Model '${params.entry.id}' has no ${params.variant} encoder`, {
      hint: `use --variant ${offered.join(" or ")}`,
    });
  }
  return v;
}
