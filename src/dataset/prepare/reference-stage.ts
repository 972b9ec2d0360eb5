// Stage 4 of `prepare`: the reference resolved into PerSAM's target (the user's references, the masks
// beside photos, or the automatic choice), its identity for the settings hashes and its report entry.
// The last photo it decoded is handed on to the per-photo stage.

import { basename, relative, sep } from "node:path";
import type { DecodedPhoto } from "../../image/photo-loader.js";
import { type ResolvedReference, resolveReference } from "../../segment/persam/reference-source.js";
import type { PhotoEncoder } from "../../segment/sam/photo-encoder.js";
import { recordOf, settingsHash } from "../prepare-state.js";
import type { ReportReference } from "../report.js";
import { isInside, type ScannedPhoto } from "../scan.js";
import type { PreparePlan } from "./plan.js";
import type { ReferenceCandidate } from "./video-stage.js";

/** What the reference stage gives the next stages. */
export interface RunReference {
  readonly reference: ResolvedReference;
  /** Which photos and masks the reference is made of (a rerun with the same identity reuses masks). */
  readonly identity: string;
  readonly report: ReportReference;
  /** Masks the user gave, by photo sha256: those photos keep them instead of a prediction. */
  readonly givenMasks: ReadonlyMap<string, Uint8Array>;
  /** The last photo this stage decoded, for the per-photo stage to take first. */
  readonly lastDecoded?: DecodedPhoto;
}

/** Parameters of {@link resolveRunReference}. */
export interface ResolveRunReferenceParams {
  readonly plan: PreparePlan;
  readonly encoder: PhotoEncoder;
  /** Sampled video frames the automatic choice may also take the reference from. */
  readonly candidates?: readonly ReferenceCandidate[] | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Resolve the run's reference with the encoder (embeddings shared with the per-photo stage).
 * @throws UserError for an unusable reference (see `resolveReference`).
 */
export async function resolveRunReference(params: ResolveRunReferenceParams): Promise<RunReference> {
  const { plan, encoder } = params;
  params.signal?.throwIfAborted();
  const reference = await resolveReference({
    model: encoder.model,
    encoder,
    references: plan.params.references ?? [],
    // Chosen video frames are not references: the video's sampled frames stand for it.
    photos: [
      ...plan.input.good
        .filter((p) => !p.frameOf)
        .map((p) => ({ path: p.path, sha256: p.sha256, ...(p.maskPath ? { maskPath: p.maskPath } : {}) })),
      ...(params.candidates ?? []).map((c) => ({ path: c.path, sha256: c.sha256 })),
    ],
    mode: plan.settings.mode,
    ...(plan.params.fusionTrainer ? { trainer: plan.params.fusionTrainer } : {}),
    signal: params.signal,
  });
  const identity = settingsHash({
    mode: reference.mode,
    refs: reference.references.map((r) => ({ photo: r.sha256, mask: recordOf(r.mask).sha256 })),
  });
  // Photos whose mask the user gave keep that mask (it is better than any prediction of it).
  const givenMasks = new Map<string, Uint8Array>();
  for (const r of reference.references) {
    if (r.source !== "auto") givenMasks.set(r.sha256, r.mask);
  }
  const { lastDecoded, ...rest } = reference;
  return {
    reference: rest,
    identity,
    report: reportReference(
      reference,
      [...plan.input.good, ...(params.candidates ?? []).map(asPhoto)],
      plan.inputDir,
    ),
    givenMasks,
    ...(lastDecoded ? { lastDecoded } : {}),
  };
}

/** A sampled frame named as the report names photos (only its names and size are read). */
function asPhoto(c: ReferenceCandidate): ScannedPhoto {
  return {
    path: c.path,
    relPath: c.file,
    stem: c.stem,
    size: 0,
    sha256: c.sha256,
    format: "png",
    width: 0,
    height: 0,
  };
}

function reportReference(
  reference: ResolvedReference,
  photos: readonly ScannedPhoto[],
  inputDir: string,
): ReportReference {
  const first = reference.references[0]!;
  const scanned = photos.find((p) => p.sha256 === first.sha256);
  const rel = (path: string): string =>
    isInside(path, inputDir) ? relative(inputDir, path).split(sep).join("/") : basename(path);
  const base = {
    stem: scanned?.stem ?? basename(first.photo).replace(/\.[^.]*$/, ""),
    file: scanned?.relPath ?? rel(first.photo),
    width: first.width,
    height: first.height,
  };
  switch (first.source) {
    case "auto":
      return { ...base, method: "auto", score: reference.auto?.score ?? 0 };
    case "mask-file":
    case "mask-beside-photo":
      return { ...base, method: "mask-file", ...(first.maskPath ? { maskFile: rel(first.maskPath) } : {}) };
    case "prompt":
      return first.clicks && first.clicks.length > 0
        ? {
            ...base,
            method: "point",
            points: first.clicks.map((c) => ({ x: c.point[0], y: c.point[1], label: c.label })),
            ...(first.box ? { box: first.box } : {}),
          }
        : { ...base, method: "box", ...(first.box ? { box: first.box } : {}) };
  }
}

/** One line describing the reference (dataset card, report settings, CLI). */
export function referenceText(ref: ReportReference): string {
  switch (ref.method) {
    case "auto":
      return `automatic: ${ref.file} (score ${(ref.score ?? 0).toFixed(2)})`;
    case "mask-file":
      return `mask ${ref.maskFile ?? "(beside the photo)"} on ${ref.file}`;
    case "point":
    case "click":
      return `points ${(ref.points ?? []).map((p) => `${p.x},${p.y}`).join(" ")} on ${ref.file}`;
    case "box":
      return `box ${(ref.box ?? []).join(",")} on ${ref.file}`;
  }
}
