// Background suppression of training images: what the pixels outside the subject mask become, and the
// clean-edge rule for compositing them (pure TypeScript, no sharp). images/ is composited through the
// subject mask with an anti-aliased edge at most one pixel wide on each side of its outline
// (edgeAlpha), never through the loss-weight feather: a background pixel never reaches a training image.

import { UserError } from "../errors.js";
import type { RgbImage } from "../image/image-io.js";
import { DEFAULT_FEATHER, featherAlpha } from "./weight-map.js";

/**
 * What replaces the background: a uniform fill (`white`, `gray` = 128, `color:#rrggbb`), a strong blur
 * of the background alone (`blur`), seeded uniform RGB noise (`noise`), white RGB plus an alpha channel
 * (`transparent`), or the photo unchanged (`keep`).
 */
export type Background = "white" | "gray" | "blur" | "noise" | "transparent" | "keep" | `color:#${string}`;

/**
 * The default background: `white`.
 *
 * diffusers' DreamBooth scripts have no masked loss, so every pixel of `images/` is learned as part of
 * "sks cat"; the only protection against learning the sofa is in these pixels. With `keep`, the few
 * photos of a person's cat, all taken at home, teach the model that the token means "cat on that
 * sofa". A uniform fill carries no information to learn, and white is the neutral background the base
 * model already knows best (product and studio shots, "on a white background"), so it attributes it to
 * the photo style rather than to the token and prompts override it easily. `gray` is as neutral for the
 * VAE but rarer in real photos; `keep` is right only when the photos' settings already vary.
 * Trainers with a masked loss (kohya `alpha_mask`, OneTrainer masks) read `rgba/`/`weights/` instead.
 */
export const DEFAULT_BACKGROUND: Background = "white";

const NAMED = ["white", "gray", "blur", "noise", "transparent", "keep"] as const;
const EXPECTED = "one of white, gray, color:#rrggbb, blur, noise, transparent, keep";

/**
 * Parse a background name as typed by the user: case-insensitive, `grey` accepted for `gray`,
 * `color:#RRGGBB` normalised to lower case.
 * @throws UserError naming the accepted values when `text` is none of them.
 */
export function parseBackground(text: string): Background {
  const t = text.trim().toLowerCase();
  if (t === "grey") return "gray";
  if ((NAMED as readonly string[]).includes(t)) return t as Background;
  if (t.startsWith("color:") || t.startsWith("colour:")) {
    const hex = t.slice(t.indexOf(":") + 1);
    if (/^#[0-9a-f]{6}$/.test(hex)) return `color:${hex}` as Background;
    throw new UserError(
      `Expected a colour as #rrggbb (six hex digits) for background but received ${JSON.stringify(text)}`,
      {
        hint: "for example color:#f0f0f0",
      },
    );
  }
  throw new UserError(`Expected ${EXPECTED} for background but received ${JSON.stringify(text)}`);
}

type Rgb = readonly [number, number, number];

/** The fill colour of a uniform background, or undefined for blur/noise/keep. */
export function backgroundColor(background: Background): Rgb | undefined {
  const b = parseBackground(background);
  if (b === "white" || b === "transparent") return [255, 255, 255];
  if (b === "gray") return [128, 128, 128];
  if (b.startsWith("color:#")) {
    const n = Number.parseInt(b.slice(7), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  return undefined;
}

/** Parameters of {@link edgeAlpha}. */
export interface EdgeAlphaParams {
  /** Binary subject mask at output size (`width × height`, non-zero = subject): the masks/ file. */
  readonly mask: Uint8Array;
  /**
   * Fraction of each output pixel covered by the full-resolution mask, in [0, 1] (crop.ts,
   * maskCoverage); the anti-aliasing of the outline.
   */
  readonly coverage: Float32Array;
  readonly width: number;
  readonly height: number;
}

/**
 * The compositing alpha of images/: the subject mask with an anti-aliased edge at most one pixel
 * wide on each side of its outline. A pixel whose 3×3 neighbourhood (inside the image) is all mask
 * is 1; one whose neighbourhood holds no mask pixel is 0; only the pixels the outline runs between
 * take their area coverage. So every pixel farther than one pixel from the mask is pure background,
 * every pixel deeper than one pixel inside it is the photo's, and a hair of the full-resolution mask
 * too thin to reach the output mask is dropped with it. The loss-weight feather (weight-map.ts) is a
 * different thing and never used here: blending through it would paint the real background around
 * the subject into the one image diffusers learns from.
 * @throws RangeError when the plane lengths do not match the size.
 */
export function edgeAlpha(params: EdgeAlphaParams): Float32Array {
  const { mask, coverage, width, height } = params;
  const n = width * height;
  checkPlaneLength("mask", mask.length, width, height);
  checkPlaneLength("coverage", coverage.length, width, height);
  const alpha = new Float32Array(n);
  for (let y = 0; y < height; y++) {
    const y0 = Math.max(0, y - 1);
    const y1 = Math.min(height - 1, y + 1);
    for (let x = 0; x < width; x++) {
      const x0 = Math.max(0, x - 1);
      const x1 = Math.min(width - 1, x + 1);
      let inside = 0;
      for (let yy = y0; yy <= y1; yy++) for (let xx = x0; xx <= x1; xx++) if (mask[yy * width + xx]) inside++;
      const i = y * width + x;
      if (inside === (y1 - y0 + 1) * (x1 - x0 + 1)) alpha[i] = 1;
      else if (inside > 0) alpha[i] = Math.min(1, Math.max(0, coverage[i]!));
    }
  }
  return alpha;
}

function checkPlaneLength(name: string, length: number, width: number, height: number): void {
  if (length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} values (${width}×${height}) for ${name} but received ${length}`,
    );
  }
}

/** Parameters of {@link suppressBackground}. */
export interface SuppressBackgroundParams {
  /** The (cropped, resized) training image; a 4th channel, if any, is ignored. */
  readonly image: RgbImage;
  /** Binary subject mask aligned with `image` (`width × height`, non-zero = subject). */
  readonly mask: Uint8Array;
  /** @default DEFAULT_BACKGROUND ("white") */
  readonly background?: Background;
  /**
   * The compositing alpha in [0, 1] (see {@link edgeAlpha}): 1 keeps the photo's pixel, 0 gives
   * the background, between is the anti-aliased outline.
   * @default the mask itself: a hard edge
   */
  readonly edge?: Float32Array;
  /**
   * Width in pixels of the band around the subject that `blur` leaves out of the blurred background
   * (see featherAlpha), so the subject's colours do not smear into it. Nothing else uses it.
   * @default 8
   */
  readonly feather?: number;
  /** Seed of the `noise` background (same seed, same pixels). @default 0 */
  readonly seed?: number;
  /**
   * The featherAlpha of `mask` and `feather` when the caller already has it (the loss-weight map
   * uses the same one), so the distance transform runs once; only `blur` reads it.
   * @default computed from `mask` and `feather` when needed
   */
  readonly alpha?: Float32Array;
}

/**
 * Replace the background of `image` outside `mask`, compositing through `edge` (the clean edge of
 * {@link edgeAlpha}, or the mask's hard edge). Returns a new RGB image, or RGBA for `transparent`
 * (alpha = the edge, RGB composited on white, so a loader that drops alpha — PIL's `convert("RGB")`
 * in diffusers — still sees a white background).
 * @throws UserError for an unknown background; RangeError when the mask, edge or alpha do not match
 * the image.
 */
export function suppressBackground(params: SuppressBackgroundParams): RgbImage {
  const { image, mask } = params;
  const background = parseBackground(params.background ?? DEFAULT_BACKGROUND);
  const { width, height, channels } = image;
  const n = width * height;
  if (image.data.length !== n * channels) {
    throw new RangeError(
      `Expected ${n * channels} bytes (${width}×${height}×${channels}) for image but received ${image.data.length}`,
    );
  }
  checkPlaneLength("mask", mask.length, width, height);
  const edge = params.edge ?? Float32Array.from(mask, (v) => (v ? 1 : 0));
  checkPlaneLength("edge", edge.length, width, height);
  const src = image.data;

  if (background === "keep") {
    const out = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      out[3 * i] = src[channels * i]!;
      out[3 * i + 1] = src[channels * i + 1]!;
      out[3 * i + 2] = src[channels * i + 2]!;
    }
    return { data: out, width, height, channels: 3 };
  }

  const bg = backgroundPixels(background, image, params.seed ?? 0, () => {
    const alpha =
      params.alpha ?? featherAlpha({ mask, width, height, feather: params.feather ?? DEFAULT_FEATHER });
    checkPlaneLength("alpha", alpha.length, width, height);
    return alpha;
  });
  const outChannels = background === "transparent" ? 4 : 3;
  const out = new Uint8Array(n * outChannels);
  for (let i = 0; i < n; i++) {
    const a = edge[i]!;
    for (let c = 0; c < 3; c++) {
      // Exactly the photo at 1 and exactly the background at 0: no rounding of a blend.
      out[outChannels * i + c] =
        a >= 1
          ? src[channels * i + c]!
          : a <= 0
            ? bg(i, c)
            : Math.round(a * src[channels * i + c]! + (1 - a) * bg(i, c));
    }
    if (outChannels === 4) out[4 * i + 3] = Math.round(Math.min(1, Math.max(0, a)) * 255);
  }
  return { data: out, width, height, channels: outChannels };
}

/** Background value at pixel i, channel c (an integer 0–255). */
function backgroundPixels(
  background: Background,
  image: RgbImage,
  seed: number,
  subjectBand: () => Float32Array,
): (i: number, c: number) => number {
  const color = backgroundColor(background);
  if (color) return (_i, c) => color[c]!;
  if (background === "noise") return noisePixels(image.width * image.height, seed);
  return maskedBlur(image, subjectBand());
}

/**
 * The `noise` seed of a photo: FNV-1a of its output stem, so each photo gets its own noise and a rerun
 * gets the same.
 */
export function noiseSeed(stem: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < stem.length; i++) h = Math.imul(h ^ stem.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Seeded noise plane: mulberry32, three bytes per pixel. */
function noisePixels(n: number, seed: number): (i: number, c: number) => number {
  const plane = new Uint8Array(n * 3);
  let a = seed >>> 0;
  for (let i = 0; i < plane.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    plane[i] = ((t ^ (t >>> 14)) >>> 0) >>> 24;
  }
  return (i, c) => plane[3 * i + c]!;
}

/**
 * Blur of the background alone (normalised convolution with weight 1 − alpha), so the subject's
 * colours do not bleed into the blurred background. Three box passes ≈ Gaussian with σ ≈ radius,
 * radius = short side / 32.
 */
function maskedBlur(image: RgbImage, alpha: Float32Array): (i: number, c: number) => number {
  const { width, height, channels, data } = image;
  const n = width * height;
  const radius = Math.max(1, Math.round(Math.min(width, height) / 32));
  const scratch = new Float32Array(n);
  const weight = new Float32Array(n);
  for (let i = 0; i < n; i++) weight[i] = 1 - alpha[i]!;
  let totalWeight = 0;
  const mean = new Float64Array(3);
  for (let i = 0; i < n; i++) {
    const w = weight[i]!;
    totalWeight += w;
    for (let c = 0; c < 3; c++) mean[c] = mean[c]! + w * data[channels * i + c]!;
  }
  for (let c = 0; c < 3; c++) mean[c] = totalWeight > 0 ? mean[c]! / totalWeight : 128;
  const planes = [0, 1, 2].map((c) => {
    const p = new Float32Array(n);
    for (let i = 0; i < n; i++) p[i] = weight[i]! * data[channels * i + c]!;
    return p;
  });
  for (const p of [weight, ...planes]) for (let k = 0; k < 3; k++) boxBlur(p, width, height, radius, scratch);
  return (i, c) => {
    const w = weight[i]!;
    return Math.round(w > 1e-4 ? planes[c]![i]! / w : mean[c]!);
  };
}

/** In-place box blur (edge-replicating) of a float plane, horizontal then vertical. */
function boxBlur(plane: Float32Array, width: number, height: number, r: number, tmp: Float32Array): void {
  const size = 2 * r + 1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let sum = 0;
    for (let k = -r; k <= r; k++) sum += plane[row + clamp(k, width)]!;
    for (let x = 0; x < width; x++) {
      tmp[row + x] = sum / size;
      sum += plane[row + clamp(x + r + 1, width)]! - plane[row + clamp(x - r, width)]!;
    }
  }
  for (let x = 0; x < width; x++) {
    let sum = 0;
    for (let k = -r; k <= r; k++) sum += tmp[clamp(k, height) * width + x]!;
    for (let y = 0; y < height; y++) {
      plane[y * width + x] = sum / size;
      sum += tmp[clamp(y + r + 1, height) * width + x]! - tmp[clamp(y - r, height) * width + x]!;
    }
  }
}

function clamp(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}
