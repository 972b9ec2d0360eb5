// Image I/O, the only module that imports sharp: probe and decode photos to upright sRGB RGB8, read
// reference masks the way PerSAM does, encode, resize and blur (design §1, §6; persam-spec §7.1, §9.18).

import { open } from "node:fs/promises";
import sharp, { type Metadata, type OutputInfo, type Sharp, type SharpOptions } from "sharp";
import { firstLine, UserError } from "../errors.js";
import { ftypBrands } from "./iso-bmff.js";

/** The versions of sharp and of the libvips it runs on. */
export function sharpVersions(): { readonly sharp: string; readonly libvips: string } {
  const v = sharp.versions as { sharp?: string; vips?: string };
  return { sharp: v.sharp ?? "unknown", libvips: v.vips ?? "unknown" };
}

/** Interleaved 8-bit pixels, row-major: RGB or RGBA. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3 | 4;
  /**
   * Set when the pixels were decoded at a reduced scale (JPEG DCT scaling, see
   * `LoadImageOptions.shrink`): the photo's own upright size and the factor. Pixel (x, y) here covers
   * the photo's pixels [x·factor, (x+1)·factor) × [y·factor, (y+1)·factor) (fewer at the right and
   * bottom edges when the size is not a multiple of the factor).
   */
  scaledFrom?: { readonly width: number; readonly height: number; readonly factor: number };
}

/** The upright size of the photo an image was decoded from (its own size unless scaled). */
export function photoSize(image: RgbImage): { width: number; height: number } {
  const { width, height } = image.scaledFrom ?? image;
  return { width, height };
}

/** Single-channel 8-bit pixels, row-major (masks, loss-weight maps). */
export interface GreyImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1;
}

/** What {@link probeImage} learns from a file's header, without decoding its pixels. */
export interface ImageProbe {
  /** Format detected from the content (never the file name): jpeg, png, webp, gif, tiff, avif, … */
  format: string;
  /** Width after applying the EXIF orientation. */
  width: number;
  /** Height after applying the EXIF orientation. */
  height: number;
  /** EXIF orientation 1–8 (1 when absent). */
  orientation: number;
  /** Frames or pages (1 for a still image). Only the first is ever used. */
  pages: number;
  /** libvips colour space interpretation: srgb, b-w, cmyk, rgb16, grey16, … */
  space: string;
  /** Sample format: uchar (8-bit), ushort (16-bit), … */
  depth: string;
  hasAlpha: boolean;
  /** True when an ICC profile is embedded (it is honoured when decoding). */
  hasIcc: boolean;
}

/** Options shared by the loaders. */
export interface LoadImageOptions {
  /**
   * Refuse images with more pixels than this, checked from the header before any decoding
   * (decompression bombs).
   * @default DEFAULT_MAX_PIXELS (100 MP)
   */
  maxPixels?: number;
  /**
   * Decode a JPEG at 1/shrink of its size with libjpeg's DCT scaling (sharp's shrink-on-load): the
   * pixels differ from a full decode resized, so this is for callers that document the deviation.
   * Other formats are decoded in full. @default 1
   */
  shrink?: 1 | 2 | 4 | 8;
}

/** Default pixel limit: 100 MP, above any current phone or DSLR photo. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** Formats accepted as photos or masks; anything else sharp can read (SVG, PDF, …) is refused. */
const ACCEPTED_FORMATS: ReadonlySet<string> = new Set([
  "jpeg",
  "png",
  "webp",
  "gif",
  "tiff",
  "avif",
  "jp2k",
  "jxl",
]);

/** ISO-BMFF brands of HEIC/HEIF photos (HEVC-coded), which sharp's prebuilt libvips cannot decode. */
const HEIC_BRANDS: ReadonlySet<string> = new Set([
  "heic",
  "heix",
  "heim",
  "heis",
  "hevc",
  "hevx",
  "hevm",
  "hevs",
  "mif1",
  "msf1",
]);

// libvips' operation cache (by default up to 100 operations and 50 MB) only pays off when the same
// operation runs twice on the same input, which never happens here: every photo is decoded and
// resized once. Off, nothing of a finished photo stays referenced by the cache, so less memory stays
// resident between photos, with the same peak and time.
sharp.cache(false);

/** Stop decoding on truncated or corrupt data instead of returning a partly grey image. */
const FAIL_ON: SharpOptions["failOn"] = "error";

const CONVERT_HINT = "convert it to JPEG or PNG (e.g. export it from your OS's photo app)";

/**
 * Read an image's header: format (by content), size after EXIF orientation, frames, colour space.
 * Nothing is decoded, so the pixel limit is enforced before any large allocation.
 * @throws UserError naming the file when it is missing or unreadable, empty, not an image, in an
 * unsupported format (HEIC/HEIF, SVG, PDF, …), or larger than `maxPixels`.
 */
export async function probeImage(path: string, options: LoadImageOptions = {}): Promise<ImageProbe> {
  const maxPixels = checkMaxPixels(options.maxPixels);
  const head = await readHead(path);
  let meta: Metadata;
  try {
    meta = await sharp(path, { limitInputPixels: false, failOn: FAIL_ON }).metadata();
  } catch (error) {
    if (isHeic(head)) throw heicError(path, error);
    throw new UserError(`${path} is not an image persam-db can read (${firstLine(error)})`, {
      hint: "use JPEG, PNG, WebP, TIFF, GIF or AVIF photos",
      cause: error,
    });
  }
  let format: string = meta.format;
  if (format === "heif") {
    if (meta.compression !== "av1") throw heicError(path, undefined);
    format = "avif";
  }
  if (!ACCEPTED_FORMATS.has(format)) {
    throw new UserError(`${path} is a ${format.toUpperCase()} file, not a photo format persam-db accepts`, {
      hint: CONVERT_HINT,
    });
  }
  const orientation =
    meta.orientation !== undefined && meta.orientation >= 1 && meta.orientation <= 8 ? meta.orientation : 1;
  const swap = orientation >= 5;
  const width = swap ? meta.height : meta.width;
  const height = swap ? meta.width : meta.height;
  if (width * height > maxPixels) {
    throw new UserError(
      `${path} has ${width}×${height} = ${megapixels(width * height)} MP, more than the limit of ${megapixels(maxPixels)} MP`,
      { hint: "downscale the photo, or raise the pixel limit if it is genuine" },
    );
  }
  return {
    format,
    width,
    height,
    orientation,
    pages: meta.pages ?? 1,
    space: meta.space,
    depth: meta.depth,
    hasAlpha: meta.hasAlpha,
    hasIcc: meta.hasProfile,
  };
}

/**
 * Decode a photo to upright sRGB 8-bit RGB: EXIF orientation baked into the pixels, first frame only,
 * CMYK / 16-bit / grey / palette converted, embedded ICC profile honoured, alpha dropped (SAM sees
 * RGB; pixels under transparency keep their stored colour).
 * @throws UserError naming the file for everything {@link probeImage} refuses, and when the pixel
 * data is truncated or corrupt.
 */
export async function loadRgb(path: string, options: LoadImageOptions = {}): Promise<RgbImage> {
  const toRgb = (s: Sharp): Sharp => s.toColourspace("srgb").removeAlpha().raw({ depth: "uchar" });
  // A full decode needs nothing from the probe, so it starts at once, beside it: the file is read
  // and decoded on libuv's threads in one go, with no wait for this thread in between (which, busy
  // with other work, would hold it back). The probe still decides: its error comes first, and the
  // decode has its own pixel limit.
  const early = (options.shrink ?? 1) === 1 ? decodeRaw(path, options, toRgb) : undefined;
  early?.catch(() => undefined);
  const probe = await probeImage(path, options);
  const factor = probe.format === "jpeg" ? (options.shrink ?? 1) : 1;
  const width = Math.ceil(probe.width / factor);
  const height = Math.ceil(probe.height / factor);
  const { data, info } =
    early !== undefined
      ? await early.catch((error: unknown) => {
          throw decodeError(path, probe, error);
        })
      : await decode(path, probe, options, (s) =>
          // An exact 1/factor target lets libvips decode with the JPEG's DCT scaling and leaves a
          // nearest-neighbour resize of scale 1, which copies.
          toRgb(factor > 1 ? s.resize(width, height, { fastShrinkOnLoad: true, kernel: "nearest" }) : s),
        );
  if (info.channels !== 3) throw new Error(`Expected 3 channels from ${path} but received ${info.channels}`);
  if (factor > 1 && (info.width !== width || info.height !== height)) {
    throw new Error(
      `Expected ${width}×${height} from ${path} at 1/${factor} but received ${info.width}×${info.height}`,
    );
  }
  return {
    data,
    width: info.width,
    height: info.height,
    channels: 3,
    ...(factor > 1 ? { scaledFrom: { width: probe.width, height: probe.height, factor } } : {}),
  };
}

/** How a mask file encoded its foreground (see {@link loadMaskRed}). */
export type MaskKind = "perseg" | "binary" | "grey" | "alpha";

/** A reference mask as PerSAM reads it: the red channel, foreground 128, background 0. */
export interface MaskRed {
  /** Row-major red values, 128 = foreground, 0 = background. */
  red: Uint8Array;
  width: number;
  height: number;
  kind: MaskKind;
}

/**
 * Read a reference mask as the reference does (the red channel of its RGB rendering, palette PNGs
 * expanded to colour, EXIF orientation applied, ICC ignored) and normalise its encoding
 * (persam-spec §7.1, §9.18). Classification, first match wins:
 * - `alpha`: RGBA whose RGB is constant while alpha varies → foreground = alpha > 127;
 * - `perseg`: red values only 0 and 128 (PerSeg's palette (128,0,0)/(0,0,0)) → returned as is;
 * - `binary`: value = max(R,G,B) takes only 0 and one other level (0/1, 0/255, any two-colour
 *   palette on black) → foreground = value > 0;
 * - `grey`: anything else (anti-aliased, JPEG) → foreground = value > 127.
 * Every kind is returned with foreground red = 128, the PerSeg value, so that the 64×64 rule of
 * §7.1 behaves as in the paper's evaluation (a 0/1 mask would otherwise select no cell at all).
 * @throws UserError naming the file when it cannot be read as an image or has no foreground pixel.
 */
export async function loadMaskRed(path: string, options: LoadImageOptions = {}): Promise<MaskRed> {
  const probe = await probeImage(path, options);
  const grey = probe.space === "b-w" || probe.space === "grey16";
  // ICC ignored on purpose: OpenCV (the reference) ignores it, and a colour transform could move
  // PerSeg's 128 to 127.
  const { data, info } = await decode(
    path,
    probe,
    options,
    (s) => s.toColourspace(grey ? "b-w" : "srgb").raw({ depth: "uchar" }),
    { ignoreIcc: true },
  );
  const { width, height, channels } = info;
  const { red, kind } = classifyMask(data, width * height, channels);
  let area = 0;
  for (let i = 0; i < red.length; i++) if (red[i] !== 0) area++;
  if (area === 0) {
    throw new UserError(`Mask ${path} has no foreground pixels (read as a ${kind} mask)`, {
      hint: "paint the subject in white (or PerSeg red 128,0,0) on black",
    });
  }
  return { red, width, height, kind };
}

/** Foreground red value of a PerSeg mask (palette colour (128, 0, 0)). */
export const PERSEG_FOREGROUND = 128;

/**
 * Classify interleaved 8-bit mask pixels (1–4 channels: grey, grey+alpha, RGB, RGBA) and return
 * the normalised red channel; see {@link loadMaskRed} for the rules.
 */
export function classifyMask(
  data: Uint8Array,
  pixels: number,
  channels: number,
): { red: Uint8Array; kind: MaskKind } {
  if (data.length !== pixels * channels || channels < 1 || channels > 4) {
    throw new RangeError(
      `Expected ${pixels}×(1–4) mask bytes but received ${data.length} with ${channels} channels`,
    );
  }
  const colour = channels >= 3;
  const alphaAt = channels === 2 || channels === 4 ? channels - 1 : -1;
  const redLevels = new Uint8Array(256);
  const valueLevels = new Uint8Array(256);
  let rgbConstant = true;
  let alphaVaries = false;
  const r0 = data[0]!;
  const g0 = colour ? data[1]! : r0;
  const b0 = colour ? data[2]! : r0;
  const a0 = alphaAt >= 0 ? data[alphaAt]! : 255;
  const value = new Uint8Array(pixels);
  // One loop per layout, without per-pixel branches on it: this runs over every mask pixel.
  if (colour) {
    for (let p = 0, i = 0; p < pixels; p++, i += channels) {
      const r = data[i]!;
      const g = data[i + 1]!;
      const b = data[i + 2]!;
      const v = Math.max(r, g, b);
      value[p] = v;
      redLevels[r] = 1;
      valueLevels[v] = 1;
      if (r !== r0 || g !== g0 || b !== b0) rgbConstant = false;
    }
  } else {
    for (let p = 0, i = 0; p < pixels; p++, i += channels) {
      const r = data[i]!;
      value[p] = r;
      redLevels[r] = 1;
      if (r !== r0) rgbConstant = false;
    }
    valueLevels.set(redLevels);
  }
  if (alphaAt >= 0) {
    for (let i = alphaAt; i < data.length; i += channels) {
      if (data[i] !== a0) {
        alphaVaries = true;
        break;
      }
    }
  }
  const red = new Uint8Array(pixels);
  if (alphaAt >= 0 && alphaVaries && rgbConstant) {
    for (let p = 0; p < pixels; p++) red[p] = data[p * channels + alphaAt]! > 127 ? PERSEG_FOREGROUND : 0;
    return { red, kind: "alpha" };
  }
  const levels = (table: Uint8Array): number[] => [...table.keys()].filter((k) => table[k] === 1);
  const reds = levels(redLevels);
  if (reds.every((r) => r === 0 || r === PERSEG_FOREGROUND) && reds.includes(PERSEG_FOREGROUND)) {
    for (let p = 0; p < pixels; p++) red[p] = data[p * channels]!;
    return { red, kind: "perseg" };
  }
  const values = levels(valueLevels);
  const twoLevel = values.every((v) => v <= 1) || (values.length === 2 && values[0] === 0);
  const cut = twoLevel ? 0 : 127;
  for (let p = 0; p < pixels; p++) red[p] = value[p]! > cut ? PERSEG_FOREGROUND : 0;
  return { red, kind: twoLevel ? "binary" : "grey" };
}

/**
 * Encode pixels as PNG (RGB, RGBA or grey).
 * @throws Error when the data length does not match the declared size.
 */
export async function encodePng(image: RgbImage | GreyImage): Promise<Buffer> {
  return fromRaw(image).png().toBuffer();
}

/**
 * Encode RGB pixels plus a separate alpha plane as an RGBA PNG, the planes joined by sharp instead of
 * interleaved in JavaScript first (same file, byte for byte, as encodePng of the interleaved pixels).
 * @throws RangeError when the sizes do not match.
 */
export async function encodePngWithAlpha(image: RgbImage, alpha: Uint8Array): Promise<Buffer> {
  if (image.channels !== 3) {
    throw new RangeError(
      `Expected an RGB image (3 channels) for image but received ${image.channels} channels`,
    );
  }
  const { width, height } = image;
  if (alpha.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} values (${width}×${height}) for alpha but received ${alpha.length}`,
    );
  }
  return fromRaw(image)
    .joinChannel(Buffer.from(alpha.buffer, alpha.byteOffset, alpha.byteLength), {
      raw: { width, height, channels: 1 },
    })
    .png()
    .toBuffer();
}

/**
 * Encode pixels as a baseline JPEG with 4:4:4 chroma (training images keep colour edges sharp);
 * an alpha channel is dropped.
 * @default quality 95
 * @throws RangeError when quality is not an integer in 1–100.
 */
export async function encodeJpeg(image: RgbImage | GreyImage, quality = 95): Promise<Buffer> {
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`Expected an integer between 1 and 100 for quality but received ${quality}`);
  }
  return fromRaw(image).removeAlpha().jpeg({ quality, chromaSubsampling: "4:4:4" }).toBuffer();
}

/**
 * Resize pixels to exactly `width × height` (no aspect-ratio preservation: callers crop first) with
 * sharp's kernels; alpha, when present, is premultiplied during the resize by sharp.
 * @default kernel "lanczos3"
 * @throws RangeError when a size is not a positive integer.
 */
export async function resizeRgb(
  image: RgbImage,
  width: number,
  height: number,
  kernel: ResizeKernel = "lanczos3",
): Promise<RgbImage> {
  checkPositiveInteger("width", width);
  checkPositiveInteger("height", height);
  return toRaw(fromRaw(image).resize(width, height, { fit: "fill", kernel }), image.channels);
}

/** Resampling kernels of {@link resizeRgb} and {@link resizeRegion}. */
export type ResizeKernel = "lanczos3" | "cubic" | "linear";

/** An integer rectangle inside an image, in pixels. */
export interface PixelRect {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/**
 * Resize the rectangle `rect` of an image (RGB, RGBA or grey) to exactly `width × height`, as
 * {@link resizeRgb} of the cropped pixels would, without copying the crop first: sharp reads the
 * region straight from `image.data` (a 12 MP photo's crop would otherwise be a 27 MB copy). The
 * bands are resized independently, so a grey plane comes out as the first band of its RGB rendering.
 * @throws RangeError when a size is not a positive integer or the rectangle is not inside the image.
 */
export async function resizeRegion<T extends RgbImage | GreyImage>(
  image: T,
  rect: PixelRect,
  width: number,
  height: number,
  kernel: ResizeKernel = "lanczos3",
): Promise<T> {
  checkPositiveInteger("width", width);
  checkPositiveInteger("height", height);
  const { left, top } = rect;
  if (
    ![left, top, rect.width, rect.height].every(Number.isInteger) ||
    left < 0 ||
    top < 0 ||
    rect.width < 1 ||
    rect.height < 1 ||
    left + rect.width > image.width ||
    top + rect.height > image.height
  ) {
    throw new RangeError(
      `Expected an integer rectangle inside ${image.width}×${image.height} for rect but received ${left},${top} ${rect.width}×${rect.height}`,
    );
  }
  let pipeline = fromRaw(image);
  // Skipped for the whole image: an extract of everything is a no-op, but keeps sharp's pipeline as
  // resizeRgb's.
  if (rect.width !== image.width || rect.height !== image.height) {
    pipeline = pipeline.extract({ left, top, width: rect.width, height: rect.height });
  }
  const out = await toRaw(pipeline.resize(width, height, { fit: "fill", kernel }), image.channels);
  return out as T;
}

/**
 * Gaussian blur with standard deviation `sigma` pixels. Sigmas below 0.3 (sharp's minimum) change
 * no pixel at 8 bits, so they return a copy.
 * @throws RangeError when sigma is negative or not finite.
 */
export async function blurRgb(image: RgbImage, sigma: number): Promise<RgbImage> {
  if (!Number.isFinite(sigma) || sigma < 0) {
    throw new RangeError(`Expected a non-negative number for sigma but received ${sigma}`);
  }
  if (sigma < 0.3) return { ...image, data: image.data.slice() };
  return toRaw(fromRaw(image).blur(sigma), image.channels);
}

/** Decode with the pixel limit, first page only, EXIF orientation applied; sharp failures → UserError. */
async function decode(
  path: string,
  probe: ImageProbe,
  options: LoadImageOptions,
  finish: (s: Sharp) => Sharp,
  extra: SharpOptions = {},
): Promise<{ data: Uint8Array; info: OutputInfo }> {
  try {
    return await decodeRaw(path, options, finish, extra);
  } catch (error) {
    throw decodeError(path, probe, error);
  }
}

/** {@link decode} without the probe: sharp's own error when it fails. */
async function decodeRaw(
  path: string,
  options: LoadImageOptions,
  finish: (s: Sharp) => Sharp,
  extra: SharpOptions = {},
): Promise<{ data: Uint8Array; info: OutputInfo }> {
  const maxPixels = checkMaxPixels(options.maxPixels);
  const pipeline = sharp(path, {
    ...extra,
    failOn: FAIL_ON,
    // A second guard behind probeImage's check (the file could change in between, or be decoded
    // while it is probed).
    limitInputPixels: Number.isFinite(maxPixels) ? Math.max(1, Math.floor(maxPixels)) : false,
    pages: 1,
    page: 0,
  }).rotate();
  const { data, info } = await finish(pipeline).toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info };
}

function decodeError(path: string, probe: ImageProbe, error: unknown): UserError {
  return new UserError(`Cannot decode ${probe.format.toUpperCase()} image ${path}: ${firstLine(error)}`, {
    hint: "the file may be truncated or corrupt; copy or export it again",
    cause: error,
  });
}

function fromRaw(image: RgbImage | GreyImage): Sharp {
  const { data, width, height, channels } = image;
  checkPositiveInteger("width", width);
  checkPositiveInteger("height", height);
  if (data.length !== width * height * channels) {
    throw new RangeError(
      `Expected ${width * height * channels} bytes for ${width}×${height}×${channels} but received ${data.length}`,
    );
  }
  const pipeline = sharp(data, { raw: { width, height, channels } });
  // sharp reads 1-channel raw as grey but would write it as RGB unless told otherwise.
  return channels === 1 ? pipeline.toColourspace("b-w") : pipeline;
}

async function toRaw(pipeline: Sharp, channels: 3 | 4): Promise<RgbImage>;
async function toRaw(pipeline: Sharp, channels: 1 | 3 | 4): Promise<RgbImage | GreyImage>;
async function toRaw(pipeline: Sharp, channels: 1 | 3 | 4): Promise<RgbImage | GreyImage> {
  const { data, info } = await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  if (info.channels !== channels)
    throw new Error(`Expected ${channels} channels but sharp returned ${info.channels}`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
    channels,
  } as RgbImage | GreyImage;
}

/** The first bytes of the file, turning file-system failures and empty files into UserErrors. */
async function readHead(path: string): Promise<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new UserError(`${path} is a folder, not an image file`);
    if (stat.size === 0) {
      throw new UserError(`Image ${path} is empty (0 bytes)`, { hint: "copy or export the photo again" });
    }
    const head = new Uint8Array(Math.min(64, stat.size));
    await handle.read(head, 0, head.length, 0);
    return head;
  } catch (error) {
    if (error instanceof UserError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? "file not found"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : code === "EISDIR"
            ? "it is a folder"
            : firstLine(error);
    throw new UserError(`Cannot read image ${path}: ${reason}`, { cause: error });
  } finally {
    await handle?.close();
  }
}

/** True for an ISO-BMFF file whose brands name HEIC/HEIF (and not AVIF). */
function isHeic(head: Uint8Array): boolean {
  const brands = ftypBrands(head);
  if (brands === undefined || brands.includes("avif") || brands.includes("avis")) return false;
  return brands.some((b) => HEIC_BRANDS.has(b));
}

function heicError(path: string, cause: unknown): UserError {
  return new UserError(`${path} is a HEIC/HEIF photo, which persam-db cannot decode`, {
    hint: CONVERT_HINT,
    cause,
  });
}

function checkMaxPixels(maxPixels: number | undefined): number {
  const value = maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(value > 0))
    throw new RangeError(`Expected a positive number for maxPixels but received ${maxPixels}`);
  return value;
}

function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  }
}

function megapixels(pixels: number): string {
  return (pixels / 1e6).toFixed(1);
}
