// The per-photo diagnostics of `prepare`: the PrepareReport data (written as report.json), a
// report.html to act on (banners, next steps, overlays beside the training images, a flag legend),
// and a short text table for the terminal.

import { CONFIDENCE_CALIBRATION, DOUBTFUL_THRESHOLD } from "../segment/persam/confidence.js";
import type { Box } from "../util/tensor.js";
import { terminalSafe } from "../util/terminal-text.js";
import type { CropRect } from "./crop.js";
import { CURATION_LIMITS } from "./curation.js";
import type { FrameVerdict } from "./frame-choice.js";

/** A prior point in original photo pixels: label 1 = positive (+), 0 = negative (−). */
export interface ReportPoint {
  readonly x: number;
  readonly y: number;
  readonly label: 0 | 1;
}

/** How the reference mask was obtained. */
export type ReferenceMethod = "auto" | "mask-file" | "point" | "box" | "click";

/** The reference photo and how it was chosen. */
export interface ReportReference {
  /** Output stem of the reference photo (also the key of its thumbnail). */
  readonly stem: string;
  /** Path of the photo relative to the input folder. */
  readonly file: string;
  readonly method: ReferenceMethod;
  /** `auto`: the selection score in [0, 1]. */
  readonly score?: number;
  /** `mask-file`: the mask file, relative to the input folder. */
  readonly maskFile?: string;
  /** `point`/`click`: the prompt points, original photo pixels. */
  readonly points?: readonly ReportPoint[];
  /** `box`: the prompt box, inclusive, original photo pixels. */
  readonly box?: Box;
  /** Reference photo size. */
  readonly width: number;
  readonly height: number;
}

/** Outcome of one photo: written, written but doubtful, or skipped. */
export type PhotoStatus = "ok" | "doubtful" | "skipped";

/** Output files of one photo, relative to the output folder. */
export interface ReportOutputs {
  readonly image: string;
  readonly mask: string;
  readonly weight: string;
  readonly rgba: string;
  readonly caption: string;
}

/** Diagnostics of one photo. Geometry is in original photo pixels. */
export interface PhotoReport {
  readonly stem: string;
  /** Path relative to the input folder. */
  readonly file: string;
  readonly status: PhotoStatus;
  /** Why the photo was skipped or is doubtful. */
  readonly reason?: string;
  /** Photo size (absent when the photo could not be read). */
  readonly width?: number;
  readonly height?: number;
  /** PerSAM's confidence in [0, 1]. */
  readonly confidence?: number;
  /** Mask area as a fraction of the photo. */
  readonly area?: number;
  /** Flags such as `low-confidence`, `cuts-subject`, `margin-reduced`, `upscaled`. */
  readonly flags: readonly string[];
  /** Location-prior points PerSAM used. */
  readonly points: readonly ReportPoint[];
  /** Subject box, inclusive. */
  readonly box?: Box;
  /** The training crop. */
  readonly crop?: CropRect;
  readonly outputs?: ReportOutputs;
  /** Stage timings in milliseconds (load, encode, segment, write, …). */
  readonly timingsMs: Readonly<Record<string, number>>;
  /** Curation flags with the values that raised them (their names are also in `flags`). */
  readonly curation?: readonly CurationNote[];
  /** For a frame chosen from a video: the video and the time. */
  readonly frameOf?: { readonly video: string; readonly time: number };
}

/** A curation flag of a photo with the measured value (see dataset/curation.ts). */
export interface CurationNote {
  readonly flag: string;
  readonly value: number;
  readonly detail: string;
}

/** What became of one sampled frame of a video: the frame choice's verdict, with its photo stem. */
export interface VideoCandidateReport extends FrameVerdict {
  /** The photo stem of a chosen frame. */
  readonly stem?: string | undefined;
}

/** A video of the input: what it holds and which frames were chosen, and why the rest were not. */
export interface VideoReport {
  /** Path relative to the input folder. */
  readonly file: string;
  readonly duration: number;
  /** Shown size (rotation applied). */
  readonly width: number;
  readonly height: number;
  readonly rotation: number;
  readonly frameRate: number;
  readonly codec: string;
  readonly hdr?: string;
  /** Samples per second. */
  readonly fps: number;
  /** Frames wanted. */
  readonly wanted: number;
  readonly candidates: readonly VideoCandidateReport[];
  readonly timingsMs: Readonly<Record<string, number>>;
}

/** Everything report.json and report.html show; plain data only. */
export interface PrepareReport {
  readonly version: 1;
  /** ISO 8601 time the run finished. */
  readonly createdAt: string;
  /** For example "persam-db 0.1.0". */
  readonly tool: string;
  /**
   * The names of the input and output folders, never their paths: the report is published with the
   * set, and a path would give away the user's home folder and name. Every other path in the
   * report is relative to the input folder (photos, reference) or to the output folder (outputs).
   */
  readonly input: string;
  readonly output: string;
  /** The settings that shaped the outputs (model, resolution, background, …). */
  readonly settings: Readonly<Record<string, string | number | boolean | null>>;
  readonly reference: ReportReference;
  readonly photos: readonly PhotoReport[];
  /** Files of the input folder that were not photos, with the reason (from the scan). */
  readonly skippedFiles: readonly { readonly path: string; readonly reason: string }[];
  /** The videos of the input and their frames. */
  readonly videos?: readonly VideoReport[];
  /**
   * Images in the training set that are neither blurry nor a duplicate of another, against the
   * 5–20 DreamBooth wants.
   */
  readonly varied?: { readonly count: number; readonly curated: boolean };
  /** Total timings in milliseconds. */
  readonly timingsMs: Readonly<Record<string, number>>;
}

/** Encoded bytes of a small image, embedded as a data: URI. */
export interface ReportImage {
  readonly bytes: Uint8Array;
  readonly mime: "image/jpeg" | "image/png";
}

/** Thumbnails of one photo: the photo itself and, optionally, its mask (grey, white = subject). */
export interface ReportThumbnail {
  readonly photo: ReportImage;
  readonly mask?: ReportImage;
}

/** Parameters of {@link renderReportHtml}. */
export interface RenderReportHtmlParams {
  readonly report: PrepareReport;
  /** Thumbnails by photo stem (the reference's too); photos without one show their overlays only. */
  readonly thumbnails?: ReadonlyMap<string, ReportThumbnail>;
}

/** Escape text for HTML content and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function num(value: number | undefined, digits = 2): string {
  return value !== undefined && Number.isFinite(value) ? value.toFixed(digits) : "—";
}

/** A finite number for an SVG attribute (never text from outside). */
function coord(value: number): string {
  return Number.isFinite(value) ? String(Math.round(value * 100) / 100) : "0";
}

function dataUri(image: ReportImage): string {
  if (image.mime !== "image/jpeg" && image.mime !== "image/png") {
    throw new RangeError(
      `Expected image/jpeg or image/png for thumbnail mime but received ${String(image.mime)}`,
    );
  }
  return `data:${image.mime};base64,${Buffer.from(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength).toString("base64")}`;
}

interface Overlay {
  readonly id: string;
  readonly width: number;
  readonly height: number;
  readonly thumbnail: ReportThumbnail | undefined;
  readonly points: readonly ReportPoint[];
  readonly box: Box | undefined;
  readonly crop: CropRect | undefined;
  readonly label: string;
}

/** The photo with mask tint + outline, crop rectangle (outside dimmed), subject box and points. */
function overlaySvg(o: Overlay): string {
  const { id, width: W, height: H, thumbnail } = o;
  const s = Math.max(W, H);
  const parts: string[] = [];
  parts.push(
    `<svg class="overlay" viewBox="0 0 ${coord(W)} ${coord(H)}" role="img" aria-label="${escapeHtml(o.label)}" xmlns="http://www.w3.org/2000/svg">`,
  );
  if (thumbnail) {
    parts.push(
      `<image href="${dataUri(thumbnail.photo)}" x="0" y="0" width="${coord(W)}" height="${coord(H)}" preserveAspectRatio="none"/>`,
    );
  } else {
    parts.push(`<rect width="${coord(W)}" height="${coord(H)}" fill="#30343b"/>`);
  }
  if (thumbnail?.mask) {
    const maskHref = dataUri(thumbnail.mask);
    parts.push(
      `<defs><mask id="${id}-m" maskUnits="userSpaceOnUse" x="0" y="0" width="${coord(W)}" height="${coord(H)}">` +
        `<image href="${maskHref}" x="0" y="0" width="${coord(W)}" height="${coord(H)}" preserveAspectRatio="none"/></mask>` +
        `<filter id="${id}-e" x="0" y="0" width="100%" height="100%" color-interpolation-filters="sRGB">` +
        `<feColorMatrix type="luminanceToAlpha" in="SourceGraphic" result="a"/>` +
        `<feMorphology operator="dilate" radius="${coord(s / 250 + 0.5)}" in="a" result="d"/>` +
        `<feComposite operator="out" in="d" in2="a" result="ring"/>` +
        `<feFlood flood-color="#ffd60a"/><feComposite operator="in" in2="ring"/></filter></defs>`,
      `<rect class="tint" width="${coord(W)}" height="${coord(H)}" mask="url(#${id}-m)"/>`,
      `<image href="${maskHref}" x="0" y="0" width="${coord(W)}" height="${coord(H)}" preserveAspectRatio="none" filter="url(#${id}-e)"/>`,
    );
  }
  if (o.crop) {
    const { left, top, width, height } = o.crop;
    parts.push(
      `<path class="outside" fill-rule="evenodd" d="M0 0H${coord(W)}V${coord(H)}H0Z M${coord(left)} ${coord(top)}h${coord(width)}v${coord(height)}h${coord(-width)}Z"/>`,
      `<rect class="crop" x="${coord(left)}" y="${coord(top)}" width="${coord(width)}" height="${coord(height)}"/>`,
    );
  }
  if (o.box) {
    const [x0, y0, x1, y1] = o.box;
    parts.push(
      `<rect class="box" x="${coord(x0)}" y="${coord(y0)}" width="${coord(x1 - x0 + 1)}" height="${coord(y1 - y0 + 1)}"/>`,
    );
  }
  const r = s * 0.024;
  for (const p of o.points) {
    const pos = p.label === 1;
    const x = p.x;
    const y = p.y;
    const bar = `M${coord(x - r * 0.55)} ${coord(y)}h${coord(r * 1.1)}`;
    const vbar = pos ? `M${coord(x)} ${coord(y - r * 0.55)}v${coord(r * 1.1)}` : "";
    parts.push(
      `<g class="${pos ? "pos" : "neg"}"><title>${pos ? "positive" : "negative"} point (${coord(x)}, ${coord(y)})</title>` +
        `<circle cx="${coord(x)}" cy="${coord(y)}" r="${coord(r)}"/><path d="${bar}${vbar}"/></g>`,
    );
  }
  parts.push("</svg>");
  return parts.join("");
}

function referenceText(ref: ReportReference): string {
  switch (ref.method) {
    case "auto":
      return `chosen automatically (score ${num(ref.score)})`;
    case "mask-file":
      return `from the mask file ${ref.maskFile ?? "(unnamed)"}`;
    case "click":
      return "from points clicked by the user";
    case "point":
      return "from the given points";
    case "box":
      return "from the given box";
  }
}

/**
 * Readable names of the stage timings (PhotoReport.timingsMs keys); a key not listed here is shown
 * with `Ms` dropped and its words split (`fooBarMs` → "foo bar").
 */
export const TIMING_NAMES: Readonly<Record<string, string>> = {
  loadMs: "reading the photo",
  decodeMs: "decoding the photo",
  encodeMs: "image encoder",
  similarityMs: "similarity map",
  attnSimMs: "attention bias",
  decoderMs: "mask decoder",
  upsampleMs: "mask upsampling",
  maskWriteMs: "saving the mask",
  maskLoadMs: "reading the saved mask",
  writeMs: "training files",
  thumbsMs: "report thumbnails",
  stateMs: "saving the resume state",
  totalMs: "total",
};

/** The readable name of a timing key (see {@link TIMING_NAMES}). */
export function timingName(key: string): string {
  return (
    TIMING_NAMES[key] ??
    key
      .replace(/Ms$/, "")
      .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
      .toLowerCase()
  );
}

const pct = (fraction: number): string => `${Math.round(fraction * 1000) / 10}%`;

/**
 * What each flag of a photo means, for the report's legend: the flags of the confidence check
 * (segment/persam/confidence.ts), of PerSAM's cascade (persam.ts), of the training crop (prepare)
 * and the two statuses a photo's metadata row can carry.
 */
export const FLAG_LEGEND: Readonly<Record<string, string>> = {
  doubtful: `the mask looks wrong: confidence below ${DOUBTFUL_THRESHOLD} or one of the flags below; the photo is left out of the training set unless --keep-doubtful`,
  reference: "the reference photo: its mask is the one you gave, used as it is",
  override: "the mask was drawn in persam-db review and is used as it is (confidence 1)",
  "override-outdated":
    "a mask drawn in persam-db review for this photo was ignored because the photo changed since: review it again",
  "empty-mask": "no subject pixel was found in this photo",
  "empty-mask-fallback": "a refinement step of PerSAM had an empty mask to start from and was skipped",
  "tiny-mask": `the mask covers less than ${pct(CONFIDENCE_CALIBRATION.minArea)} of the photo`,
  "mask-covers-photo": `the mask covers more than ${pct(CONFIDENCE_CALIBRATION.maxArea)} of the photo: probably the background, not the subject`,
  "fragmented-mask": `the mask is in pieces: its largest part is less than ${pct(CONFIDENCE_CALIBRATION.minLargestShare)} of it`,
  "low-similarity": `the subject's features are hardly found in this photo (peak similarity below ${CONFIDENCE_CALIBRATION.minSimilarity})`,
  "low-iou": `SAM itself doubts the mask (predicted IoU below ${CONFIDENCE_CALIBRATION.minIou})`,
  "cuts-subject": "the training crop could not hold the whole subject at this aspect ratio",
  "margin-reduced": "the crop keeps less space around the subject than asked (photo edge or aspect ratio)",
  upscaled: "the crop is smaller than the training resolution and was enlarged: it may look soft",
  blurry: `the subject is blurred: its sharpness (the Laplacian against the gradient over its box: how wide its edges are) is below ${CURATION_LIMITS.blurryRelative * 100}% of the set's sharpest; --curate leaves it out`,
  duplicate: `the same picture as another photo of the set (a re-save: at most ${CURATION_LIMITS.duplicateBits} of 64 perceptual-hash bits differ); --curate leaves it out`,
  "near-duplicate": `the subject in the same pose as in a sharper photo (subject features at least ${CURATION_LIMITS.nearDuplicateFeature} alike): it adds nothing new; --curate leaves it out`,
  "subject-small": `the subject's box covers less than ${CURATION_LIMITS.smallArea * 100}% of the picture; --curate leaves it out`,
  "subject-at-edge":
    "the subject touches the picture's edge: part of it is probably cut off; --curate leaves it out",
  "low-resolution":
    "the picture's shorter side is below the training resolution: the training image is enlarged; --curate leaves it out",
};

/** What DreamBooth wants: 5–20 sharp, varied images of the subject. */
export const DREAMBOOTH_IMAGES = { min: 5, max: 20 } as const;

/** One line on how many varied images the set has against the 5–20 DreamBooth wants. */
export function variedLine(varied: { readonly count: number; readonly curated: boolean }): string {
  const { min, max } = DREAMBOOTH_IMAGES;
  const base = `${plural(varied.count, "varied image")} in the training set (DreamBooth wants ${min}–${max})`;
  if (varied.count < min)
    return `${base}: too few — add photos of the subject from other angles, or a longer video`;
  if (varied.count > max) return `${base}: more than needed — fine, or pass --curate to keep the best`;
  return `${base}: enough`;
}

function timingsDetails(timings: Readonly<Record<string, number>>): string {
  const rows = Object.entries(timings)
    .map(
      ([k, v]) =>
        `<tr><th>${escapeHtml(timingName(k))}</th><td>${Number.isFinite(v) ? Math.round(v) : "—"} ms</td></tr>`,
    )
    .join("");
  return `<details class="timings"><summary>timings</summary><table><tbody>${rows}</tbody></table></details>`;
}

/** A path from the report as a relative URL, or undefined when it is not a plain path inside the set. */
function relativeUrl(path: string | undefined): string | undefined {
  if (path === undefined || path === "" || path.startsWith("/") || /[\\:]/.test(path)) return undefined;
  const parts = path.split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) return undefined;
  return parts.map(encodeURIComponent).join("/");
}

/** The trainers whose files `prepare` writes for a `trainer` setting, with how to run each. */
function trainSteps(trainer: unknown): string[] {
  const all = trainer === undefined || trainer === null || trainer === "all";
  const steps: string[] = [];
  if (all || trainer === "diffusers") {
    steps.push(
      "<li><strong>diffusers</strong> (trains on <code>images/</code> only): " +
        "<code>DIFFUSERS_DREAMBOOTH_DIR=…/diffusers/examples/dreambooth bash train.sh</code></li>",
    );
  }
  if (all || trainer === "kohya") {
    steps.push(
      "<li><strong>kohya sd-scripts</strong> (masked loss from <code>rgba/</code>): " +
        "<code>SD_SCRIPTS_DIR=…/sd-scripts bash train_kohya.sh</code></li>",
    );
  }
  if (all || trainer === "onetrainer") {
    steps.push(
      "<li><strong>OneTrainer</strong> (masked training from <code>onetrainer/</code>): " +
        "<code>./run-cmd.sh train --config-path …/onetrainer/train-config.json</code></li>",
    );
  }
  return steps;
}

const CSS = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d2127;--card:#fff;--mute:#69707d;--ok:#1f9d55;--warn:#c77700;--bad:#c62828}
@media (prefers-color-scheme:dark){:root{--bg:#15171b;--fg:#e6e8eb;--card:#1f2228;--mute:#9aa1ad}}
*{box-sizing:border-box}body{margin:0;padding:24px;font:14px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg);overflow-wrap:anywhere}
@media (max-width:600px){body{padding:12px}}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}.mute{color:var(--mute)}
header{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}header>div{min-width:0;flex:1 1 300px}
.reference{flex:0 1 320px;max-width:100%;background:var(--card);padding:8px;border-radius:8px}
.banner{border-radius:8px;padding:10px 14px;margin:0 0 12px;color:#fff;background:var(--warn)}
.banner.test-model{background:var(--bad)}
table{border-collapse:collapse;max-width:100%}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
code{font:12px/1.4 ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}
.next,.legend{background:var(--card);border-radius:8px;padding:4px 16px 12px;margin-top:16px}
.next li,.legend dd{margin-bottom:4px}.legend dl{margin:0}.legend dt{font-weight:600}.legend dd{margin-left:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(340px,100%),1fr));gap:16px}
figure{margin:0;background:var(--card);border-radius:8px;padding:8px;border-top:4px solid var(--ok);min-width:0}
figure.doubtful{border-top-color:var(--warn)}figure.skipped{border-top-color:var(--bad)}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:6px;align-items:start}
.pair>div{min-width:0}.pair .label{font-size:11px;color:var(--mute);margin-top:2px}
svg.overlay,img.trained{width:100%;height:auto;display:block;border-radius:4px}
img.trained{background:repeating-conic-gradient(#ccc 0 25%,#fff 0 50%) 0 0/16px 16px}
figcaption{margin-top:6px}
.noimg{aspect-ratio:1;display:flex;align-items:center;justify-content:center;text-align:center;padding:4px;border-radius:4px;background:repeating-linear-gradient(135deg,#30343b 0 10px,#383c44 10px 20px);color:#c9ced6;font-size:12px}
.noimg.unread{aspect-ratio:4/1}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;color:#fff;background:var(--ok)}
.doubtful .badge{background:var(--warn)}.skipped .badge{background:var(--bad)}
.flags,.curation{font-size:12px;color:var(--warn)}
.frames{font-size:12px}.frames td,.frames th{padding:2px 6px 2px 0;white-space:nowrap;overflow-wrap:normal}.frames td:last-child{white-space:normal;overflow-wrap:anywhere}.frames tr.chosen td{font-weight:600}.frames tr.dropped td{color:var(--mute)}.reason{color:var(--bad)}.timings{font-size:12px;color:var(--mute)}
.timings summary{cursor:pointer}.timings th{font-weight:normal}
.tint{fill:#ff2d6f;fill-opacity:.35}.outside{fill:#000;fill-opacity:.35}
.crop{fill:none;stroke:#00d5ff;stroke-width:2;stroke-dasharray:6 4;vector-effect:non-scaling-stroke}
.box{fill:none;stroke:#ffd60a;stroke-width:1;stroke-dasharray:2 3;vector-effect:non-scaling-stroke}
.pos circle{fill:#1f9d55}.neg circle{fill:#c62828}
.pos circle,.neg circle{stroke:#fff;stroke-width:1.5;vector-effect:non-scaling-stroke}
.pos path,.neg path{stroke:#fff;stroke-width:2;vector-effect:non-scaling-stroke}
`;

/**
 * A single HTML page (inline CSS, thumbnails as data: URIs, no scripts, no network) to act on:
 * banners when the masks come from the random test model or photos are doubtful; the class, settings
 * and reference; next steps (which training script to run, how to fix a doubtful photo); one
 * `<figure>` per photo with the overlay (mask tint and outline, crop, subject box, prior points)
 * beside the final training image (`images/<stem>.png`, linked relatively: the page lives in the
 * output folder), confidence, flags and reasons, and its timings folded away with readable names; a
 * legend of every flag. Every string from the report is HTML-escaped; the layout fits a 390 px
 * screen.
 * @throws RangeError when a thumbnail has a mime type other than image/jpeg or image/png.
 */
export function renderReportHtml(params: RenderReportHtmlParams): string {
  const { report } = params;
  const thumbs = params.thumbnails ?? new Map<string, ReportThumbnail>();
  const ref = report.reference;
  const counts = countStatuses(report);
  const inSet = report.photos.filter((p) => p.outputs !== undefined && p.status !== "skipped").length;
  const doubtfulKept = report.photos.filter((p) => p.status === "doubtful" && p.outputs !== undefined).length;
  const doubtfulOut = counts.doubtful - doubtfulKept;
  const className = report.settings.class;
  const out: string[] = [];
  out.push(
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    `<title>persam-db report — ${escapeHtml(report.input)}</title>`,
    `<style>${CSS}</style></head><body>`,
  );
  if (report.settings.testModel === true) {
    out.push(
      '<p class="banner test-model" role="alert"><strong>Test model.</strong> These masks come from persam-db\'s tiny random test model and mean nothing. Run prepare again with a real model (the default, or <code>--model</code>) before training.</p>',
    );
  }
  if (counts.doubtful > 0) {
    out.push(
      `<p class="banner doubtful-photos" role="status"><strong>${plural(counts.doubtful, "doubtful photo")}.</strong> ` +
        `${counts.doubtful === 1 ? "Its mask looks" : "Their masks look"} wrong (see the flags): ` +
        `${doubtfulOut} left out of the training set, ${doubtfulKept} kept. See “Next steps” for how to fix them.</p>`,
    );
  }
  out.push(
    "<header><div>",
    `<h1>persam-db report — ${escapeHtml(report.input)}</h1>`,
    `<p class="mute">${escapeHtml(report.tool)} · ${escapeHtml(report.createdAt)} · output ${escapeHtml(report.output)}</p>`,
    ...(className === undefined || className === null
      ? []
      : [
          `<p>Class: <strong class="class">${escapeHtml(String(className))}</strong>` +
            (typeof report.settings.caption === "string"
              ? ` · caption “${escapeHtml(report.settings.caption)}”`
              : "") +
            "</p>",
        ]),
    `<p>${plural(counts.total, "photo")}: ${counts.ok} ok, ${counts.doubtful} doubtful, ${counts.skipped} skipped` +
      (report.skippedFiles.length > 0
        ? ` · ${plural(report.skippedFiles.length, "other file")} ignored`
        : "") +
      ` · ${plural(inSet, "photo")} in the training set</p>`,
    ...(report.varied ? [`<p class="varied">${escapeHtml(variedLine(report.varied))}</p>`] : []),
    '<details class="settings"><summary>settings</summary><table><tbody>',
  );
  for (const [k, v] of Object.entries(report.settings)) {
    out.push(`<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v === null ? "—" : String(v))}</td></tr>`);
  }
  out.push("</tbody></table></details>");
  if (Object.keys(report.timingsMs).length > 0) out.push(timingsDetails(report.timingsMs));
  out.push(
    "</div>",
    '<div class="reference">',
    overlaySvg({
      id: "ref",
      width: ref.width,
      height: ref.height,
      thumbnail: thumbs.get(ref.stem),
      points: ref.points ?? [],
      box: ref.box,
      crop: undefined,
      label: `reference photo ${ref.file}`,
    }),
    `<p><strong>Reference:</strong> ${escapeHtml(ref.file)}<br>${escapeHtml(referenceText(ref))}</p>`,
    "</div></header>",
  );

  out.push('<section class="next"><h2>Next steps</h2><ol>');
  if (inSet > 0) {
    out.push(
      "<li>Look at each training image (the right-hand picture of every photo below): it is exactly what the model learns, background included.</li>",
      `<li>Train with one of the scripts in this folder:<ul>${trainSteps(report.settings.trainer).join("")}</ul></li>`,
    );
  } else {
    out.push("<li>No photo is in the training set yet, so no training script was written.</li>");
  }
  if (counts.doubtful > 0 || inSet === 0) {
    const input = escapeHtml(report.input);
    out.push(
      "<li>To fix a doubtful photo, tell persam-db which subject you mean and run prepare again (only what changed is redone):<ul>" +
        `<li>one click on the subject in a good photo: <code>persam-db prepare ${input} --ref PHOTO --ref-point X,Y</code></li>` +
        `<li>or a mask you painted (white subject on black, the photo's size): <code>--ref PHOTO --ref-mask MASK.png</code></li>` +
        "<li>or keep doubtful photos in the set as they are: <code>--keep-doubtful</code>; or remove a photo that does not show the subject</li>" +
        "</ul></li>",
    );
  }
  out.push("</ol></section>", "<h2>Photos</h2>", '<div class="grid">');
  report.photos.forEach((photo, i) => {
    out.push(`<figure class="photo ${photo.status}">`);
    if (photo.width !== undefined && photo.height !== undefined) {
      const trained = relativeUrl(photo.outputs?.image);
      out.push(
        '<div class="pair"><div>',
        overlaySvg({
          id: `p${i}`,
          width: photo.width,
          height: photo.height,
          thumbnail: thumbs.get(photo.stem),
          points: photo.points,
          box: photo.box,
          crop: photo.crop,
          label: `${photo.file}: mask, crop and prior points`,
        }),
        '<div class="label">photo, mask and crop</div></div><div>',
        trained === undefined
          ? '<div class="noimg">not in the training set</div>'
          : `<img class="trained" src="${escapeHtml(trained)}" alt="${escapeHtml(`training image of ${photo.file}`)}" loading="lazy">`,
        `<div class="label">${trained === undefined ? "&#160;" : "training image"}</div></div></div>`,
      );
    } else {
      out.push('<div class="noimg unread">not read</div>');
    }
    out.push(
      `<figcaption><span class="badge">${escapeHtml(photo.status)}</span> <strong>${escapeHtml(photo.file)}</strong>`,
    );
    if (photo.stem !== photo.file) out.push(` <span class="mute">→ ${escapeHtml(photo.stem)}</span>`);
    if (photo.confidence !== undefined || photo.area !== undefined) {
      out.push(
        `<br>confidence ${num(photo.confidence)} · area ${photo.area === undefined ? "—" : `${num(photo.area * 100, 1)}%`}`,
      );
    }
    if (photo.reason) out.push(`<br><span class="reason">${escapeHtml(photo.reason)}</span>`);
    if (photo.flags.length > 0)
      out.push(`<br><span class="flags">${escapeHtml(photo.flags.join(", "))}</span>`);
    for (const note of photo.curation ?? [])
      out.push(`<br><span class="curation">${escapeHtml(note.detail)}</span>`);
    if (Object.keys(photo.timingsMs).length > 0) out.push(timingsDetails(photo.timingsMs));
    out.push("</figcaption></figure>");
  });
  out.push("</div>");
  if (report.videos && report.videos.length > 0) out.push(videosHtml(report.videos));
  if (report.skippedFiles.length > 0) {
    out.push('<h2>Other files</h2><ul class="others">');
    for (const f of report.skippedFiles) {
      out.push(`<li>${escapeHtml(f.path)} — <span class="mute">${escapeHtml(f.reason)}</span></li>`);
    }
    out.push("</ul>");
  }
  const used = new Set(report.photos.flatMap((p) => p.flags));
  out.push('<section class="legend"><h2>What the flags mean</h2><dl>');
  for (const [flag, meaning] of Object.entries(FLAG_LEGEND)) {
    out.push(
      `<dt${used.has(flag) ? ' class="used"' : ""}>${escapeHtml(flag)}</dt><dd>${escapeHtml(meaning)}</dd>`,
    );
  }
  for (const flag of [...used].filter((f) => !(f in FLAG_LEGEND)).sort()) {
    out.push(`<dt class="used">${escapeHtml(flag)}</dt><dd>no description</dd>`);
  }
  out.push("</dl></section>", "</body></html>\n");
  return out.join("\n");
}

/** Each video: what it holds, then every sampled frame with its time, scores and verdict. */
function videosHtml(videos: readonly VideoReport[]): string {
  const out = ["<h2>Videos</h2>"];
  for (const v of videos) {
    const chosen = v.candidates.filter((c) => c.chosen).length;
    out.push(
      '<section class="video">',
      `<h3>${escapeHtml(v.file)}</h3>`,
      `<p class="mute">${num(v.duration, 1)} s · ${v.width}×${v.height}${v.rotation ? ` (turned ${v.rotation}°)` : ""} · ${escapeHtml(v.codec)}${v.hdr ? ` · HDR ${escapeHtml(v.hdr.toUpperCase())}` : ""} · sampled ${v.fps}/s: ${plural(v.candidates.length, "frame")}, ${chosen} chosen of ${v.wanted} wanted</p>`,
      '<table class="frames"><thead><tr><th>time</th><th></th><th>score</th><th>sim.</th><th>sharp</th><th>why</th></tr></thead><tbody>',
    );
    for (const c of v.candidates) {
      out.push(
        `<tr class="${c.chosen ? "chosen" : "dropped"}"><td>${num(c.time, 1)} s</td><td>${c.chosen ? "chosen" : "dropped"}</td>` +
          `<td>${num(c.score)}</td><td>${num(c.similarity)}</td><td>${Math.round(c.sharpness * 100)}%</td>` +
          `<td>${escapeHtml(c.reason)}${c.stem ? ` → ${escapeHtml(c.stem)}` : ""}</td></tr>`,
      );
    }
    out.push("</tbody></table></section>");
  }
  return out.join("\n");
}

/** `1 photo`, `3 photos`. */
function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function countStatuses(report: PrepareReport): {
  total: number;
  ok: number;
  doubtful: number;
  skipped: number;
} {
  const c = { total: report.photos.length, ok: 0, doubtful: 0, skipped: 0 };
  for (const p of report.photos) c[p.status]++;
  return c;
}

function padCell(text: string, width: number): string {
  const chars = [...terminalSafe(text)];
  const cut = chars.length > width ? `${chars.slice(0, width - 1).join("")}…` : chars.join("");
  return cut + " ".repeat(Math.max(0, width - [...cut].length));
}

/**
 * A short plain-text table for the terminal: one line per photo (file, status, confidence, area,
 * flags or reason) and a totals line. Names are made terminal-safe and cut to fit.
 */
export function summaryTable(report: PrepareReport): string {
  const nameWidth = Math.min(32, Math.max(5, ...report.photos.map((p) => [...p.file].length)));
  const lines = [
    `${padCell("photo", nameWidth)}  ${padCell("status", 8)}  ${padCell("conf", 5)}  ${padCell("area", 6)}  notes`,
  ];
  for (const p of report.photos) {
    const area = p.area === undefined ? "—" : `${num(p.area * 100, 1)}%`;
    const curated = new Set((p.curation ?? []).map((c) => c.flag));
    // Curation first: the line is cut to fit, and the values are what the user acts on.
    const notes = [
      ...(p.curation ?? []).map((c) => c.detail),
      p.reason,
      p.flags.filter((f) => !curated.has(f)).join(", "),
    ]
      .filter((s) => s && s.length > 0)
      .join("; ");
    lines.push(
      `${padCell(p.file, nameWidth)}  ${padCell(p.status, 8)}  ${padCell(num(p.confidence), 5)}  ${padCell(area, 6)}  ${padCell(notes, 60)}`.trimEnd(),
    );
  }
  const c = countStatuses(report);
  const others = report.skippedFiles.length;
  lines.push(
    `${plural(c.total, "photo")}: ${c.ok} ok, ${c.doubtful} doubtful, ${c.skipped} skipped` +
      (others > 0 ? ` · ${plural(others, "other file")} ignored` : ""),
  );
  for (const v of report.videos ?? []) {
    const chosen = v.candidates.filter((c) => c.chosen).length;
    lines.push(
      terminalSafe(
        `${v.file}: ${plural(v.candidates.length, "sampled frame")}, ${chosen} chosen (${v.candidates
          .filter((c) => c.chosen)
          .map((c) => `${c.time.toFixed(1)} s`)
          .join(", ")})`,
      ),
    );
  }
  if (report.varied) lines.push(variedLine(report.varied));
  return `${lines.join("\n")}\n`;
}
