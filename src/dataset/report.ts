// The per-photo diagnostics of `prepare`: the PrepareReport data (written as report.json), a
// self-contained report.html with SVG overlays, and a short text table for the terminal.

import type { Box } from "../util/tensor.js";
import type { CropRect } from "./crop.js";

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

function timingsText(timings: Readonly<Record<string, number>>): string {
  return Object.entries(timings)
    .map(([k, v]) => `${k} ${Number.isFinite(v) ? Math.round(v) : "—"} ms`)
    .join(" · ");
}

const CSS = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d2127;--card:#fff;--mute:#69707d;--ok:#1f9d55;--warn:#c77700;--bad:#c62828}
@media (prefers-color-scheme:dark){:root{--bg:#15171b;--fg:#e6e8eb;--card:#1f2228;--mute:#9aa1ad}}
*{box-sizing:border-box}body{margin:0;padding:24px;font:14px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}.mute{color:var(--mute)}
header{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.reference{width:320px;background:var(--card);padding:8px;border-radius:8px}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:16px}
figure{margin:0;background:var(--card);border-radius:8px;padding:8px;border-top:4px solid var(--ok)}
figure.doubtful{border-top-color:var(--warn)}figure.skipped{border-top-color:var(--bad)}
svg.overlay{width:100%;height:auto;display:block;border-radius:4px}
figcaption{margin-top:6px;overflow-wrap:anywhere}
.noimg{aspect-ratio:4/3;display:flex;align-items:center;justify-content:center;border-radius:4px;background:repeating-linear-gradient(135deg,#30343b 0 10px,#383c44 10px 20px);color:#c9ced6;font-size:13px}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;color:#fff;background:var(--ok)}
.doubtful .badge{background:var(--warn)}.skipped .badge{background:var(--bad)}
.flags{font-size:12px;color:var(--warn)}.reason{color:var(--bad)}.timings{font-size:12px;color:var(--mute)}
.tint{fill:#ff2d6f;fill-opacity:.35}.outside{fill:#000;fill-opacity:.35}
.crop{fill:none;stroke:#00d5ff;stroke-width:2;stroke-dasharray:6 4;vector-effect:non-scaling-stroke}
.box{fill:none;stroke:#ffd60a;stroke-width:1;stroke-dasharray:2 3;vector-effect:non-scaling-stroke}
.pos circle{fill:#1f9d55}.neg circle{fill:#c62828}
.pos circle,.neg circle{stroke:#fff;stroke-width:1.5;vector-effect:non-scaling-stroke}
.pos path,.neg path{stroke:#fff;stroke-width:2;vector-effect:non-scaling-stroke}
`;

/**
 * A single self-contained HTML page (inline CSS, thumbnails as data: URIs, no scripts, no network)
 * with a header (reference photo and how it was chosen, settings, totals) and one `<figure>` per
 * photo: thumbnail with mask tint and outline, crop rectangle, subject box and prior points, then
 * confidence, flags or skip reason and timings. Every string from the report is HTML-escaped.
 * @throws RangeError when a thumbnail has a mime type other than image/jpeg or image/png.
 */
export function renderReportHtml(params: RenderReportHtmlParams): string {
  const { report } = params;
  const thumbs = params.thumbnails ?? new Map<string, ReportThumbnail>();
  const ref = report.reference;
  const counts = countStatuses(report);
  const out: string[] = [];
  out.push(
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    `<title>persam-db report — ${escapeHtml(report.input)}</title>`,
    `<style>${CSS}</style></head><body>`,
    "<header><div>",
    `<h1>persam-db report — ${escapeHtml(report.input)}</h1>`,
    `<p class="mute">${escapeHtml(report.tool)} · ${escapeHtml(report.createdAt)} · output ${escapeHtml(report.output)}</p>`,
    `<p>${plural(counts.total, "photo")}: ${counts.ok} ok, ${counts.doubtful} doubtful, ${counts.skipped} skipped` +
      (report.skippedFiles.length > 0
        ? ` · ${plural(report.skippedFiles.length, "other file")} ignored`
        : "") +
      "</p>",
    '<table class="settings"><tbody>',
  );
  for (const [k, v] of Object.entries(report.settings)) {
    out.push(`<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v === null ? "—" : String(v))}</td></tr>`);
  }
  out.push("</tbody></table>");
  if (Object.keys(report.timingsMs).length > 0) {
    out.push(`<p class="timings">${escapeHtml(timingsText(report.timingsMs))}</p>`);
  }
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
    "<h2>Photos</h2>",
    '<div class="grid">',
  );
  report.photos.forEach((photo, i) => {
    out.push(`<figure class="photo ${photo.status}">`);
    if (photo.width !== undefined && photo.height !== undefined) {
      out.push(
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
      );
    } else {
      out.push('<div class="noimg">not read</div>');
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
    if (Object.keys(photo.timingsMs).length > 0) {
      out.push(`<br><span class="timings">${escapeHtml(timingsText(photo.timingsMs))}</span>`);
    }
    out.push("</figcaption></figure>");
  });
  out.push("</div>");
  if (report.skippedFiles.length > 0) {
    out.push("<h2>Other files</h2><ul>");
    for (const f of report.skippedFiles) {
      out.push(`<li>${escapeHtml(f.path)} — <span class="mute">${escapeHtml(f.reason)}</span></li>`);
    }
    out.push("</ul>");
  }
  out.push("</body></html>\n");
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

/**
 * Make text safe for a terminal and for line-based logs: control characters (ANSI escapes and line
 * breaks included), U+2028/U+2029 and bidirectional overrides become `?`, so a hostile file name
 * cannot move the cursor, split the line or reorder it.
 */
export function terminalSafe(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, "?");
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
    const notes = [p.reason, p.flags.join(", ")].filter((s) => s && s.length > 0).join("; ");
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
  return `${lines.join("\n")}\n`;
}
