// Generators of test photos for the prepare tests: small synthetic scenes (a coloured disc on a
// textured background) in every encoding a phone or a download folder produces, plus broken files.
// Everything is generated here with sharp; nothing is downloaded.

import { createHash } from "node:crypto";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import sharp, { type Sharp } from "sharp";

/** Interleaved 8-bit RGB pixels. */
export interface Pixels {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** Parameters of {@link scene}. */
export interface SceneParams {
  readonly width?: number;
  readonly height?: number;
  /** Disc centre as fractions of the size. @default [0.5, 0.5] */
  readonly at?: readonly [number, number];
  /** Disc radius as a fraction of the shorter side. @default 0.25 */
  readonly radius?: number;
  /** Disc colour. @default [220, 40, 40] */
  readonly color?: readonly [number, number, number];
  /** Changes the background texture. @default 0 */
  readonly seed?: number;
}

/** A disc (the "subject") on a striped, seeded background. */
export function scene(params: SceneParams = {}): Pixels {
  const width = params.width ?? 96;
  const height = params.height ?? 72;
  const [fx, fy] = params.at ?? [0.5, 0.5];
  const r = (params.radius ?? 0.25) * Math.min(width, height);
  const [cr, cg, cb] = params.color ?? [220, 40, 40];
  const seed = params.seed ?? 0;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inside = (x - fx * width) ** 2 + (y - fy * height) ** 2 <= r * r;
      if (inside) {
        data[i] = cr;
        data[i + 1] = cg;
        data[i + 2] = cb;
      } else {
        const stripe = ((x + y + seed * 7) >> 3) & 1;
        data[i] = 40 + stripe * 30 + ((seed * 13) & 31);
        data[i + 1] = 90 + stripe * 40;
        data[i + 2] = 150 + ((x * 3 + seed) & 63);
      }
    }
  }
  return { data, width, height };
}

/**
 * An asymmetric upright pattern: quadrants red (top-left), green (top-right), blue (bottom-left)
 * and white (bottom-right), so any rotation or mirror is visible.
 */
export function quadrants(width = 80, height = 60): Pixels {
  const colours = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 255],
  ] as const;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = (y < height / 2 ? 0 : 2) + (x < width / 2 ? 0 : 1);
      data.set(colours[q]!, (y * width + x) * 3);
    }
  }
  return { data, width, height };
}

/** Which quadrant colour a pixel is closest to (0 red, 1 green, 2 blue, 3 white). */
export function quadrantOf(r: number, g: number, b: number): number {
  const colours = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 255],
  ];
  let best = 0;
  let bestD = Number.POSITIVE_INFINITY;
  colours.forEach(([cr, cg, cb], q) => {
    const d = (r - cr!) ** 2 + (g - cg!) ** 2 + (b - cb!) ** 2;
    if (d < bestD) {
      bestD = d;
      best = q;
    }
  });
  return best;
}

/**
 * The stored pixels that a viewer shows as `upright` once EXIF orientation `orientation` (1–8) is
 * applied — computed by hand from the EXIF definitions, independently of sharp's `rotate()`.
 */
export function storedForOrientation(upright: Pixels, orientation: number): Pixels {
  const { width: W, height: H } = upright;
  const swap = orientation >= 5;
  const sw = swap ? H : W;
  const sh = swap ? W : H;
  const data = new Uint8Array(sw * sh * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      // display (x, y) comes from stored (sx, sy)
      let sx: number;
      let sy: number;
      switch (orientation) {
        case 2:
          [sx, sy] = [sw - 1 - x, y];
          break;
        case 3:
          [sx, sy] = [sw - 1 - x, sh - 1 - y];
          break;
        case 4:
          [sx, sy] = [x, sh - 1 - y];
          break;
        case 5:
          [sx, sy] = [y, x];
          break;
        case 6:
          [sx, sy] = [y, sh - 1 - x];
          break;
        case 7:
          [sx, sy] = [sw - 1 - y, sh - 1 - x];
          break;
        case 8:
          [sx, sy] = [sw - 1 - y, x];
          break;
        default:
          [sx, sy] = [x, y];
      }
      data.set(upright.data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3), (sy * sw + sx) * 3);
    }
  }
  return { data, width: sw, height: sh };
}

function raw(p: Pixels, channels: 3 | 4 = 3): Sharp {
  return sharp(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength), {
    raw: { width: p.width, height: p.height, channels },
  });
}

/** Write pixels as an sRGB JPEG, optionally tagged with an EXIF orientation. */
export async function writeJpeg(path: string, p: Pixels, orientation?: number): Promise<void> {
  let s = raw(p);
  if (orientation !== undefined) s = s.withMetadata({ orientation });
  await s.jpeg({ quality: 95, chromaSubsampling: "4:4:4" }).toFile(path);
}

/** Write pixels as an 8-bit RGB PNG. */
export async function writePng(path: string, p: Pixels): Promise<void> {
  await raw(p).png().toFile(path);
}

/** A CMYK JPEG (as print workflows and some scanners write). */
export async function writeCmykJpeg(path: string, p: Pixels): Promise<void> {
  await raw(p).toColourspace("cmyk").jpeg({ quality: 95 }).toFile(path);
}

/** A 16-bit-per-channel RGB PNG. */
export async function write16BitPng(path: string, p: Pixels): Promise<void> {
  await raw(p).toColourspace("rgb16").png().toFile(path);
}

/** A greyscale PNG. */
export async function writeGreyPng(path: string, p: Pixels): Promise<void> {
  await raw(p).toColourspace("b-w").png().toFile(path);
}

/** An RGBA PNG whose alpha fades left to right. */
export async function writeRgbaPng(path: string, p: Pixels): Promise<void> {
  const rgba = new Uint8Array(p.width * p.height * 4);
  for (let i = 0; i < p.width * p.height; i++) {
    rgba.set(p.data.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = 255 - Math.round((127 * (i % p.width)) / Math.max(1, p.width - 1));
  }
  await raw({ data: rgba, width: p.width, height: p.height }, 4).png().toFile(path);
}

/** A binary mask PNG (white = subject) of the disc in a {@link scene} with the same params. */
export async function writeSceneMask(path: string, params: SceneParams = {}): Promise<void> {
  const p = scene({ ...params, color: [255, 255, 255] });
  const grey = new Uint8Array(p.width * p.height);
  for (let i = 0; i < grey.length; i++) {
    const [r, g, b] = [p.data[i * 3]!, p.data[i * 3 + 1]!, p.data[i * 3 + 2]!];
    grey[i] = r === 255 && g === 255 && b === 255 ? 255 : 0;
  }
  await sharp(Buffer.from(grey), { raw: { width: p.width, height: p.height, channels: 1 } })
    .toColourspace("b-w")
    .png()
    .toFile(path);
}

/** A JPEG cut after half its bytes (header intact, pixel data missing). */
export async function writeTruncatedJpeg(path: string, p: Pixels): Promise<void> {
  const bytes = await raw(p).jpeg({ quality: 95 }).toBuffer();
  await writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
}

/** A text file under a photo's name. */
export async function writeFakeJpeg(path: string): Promise<void> {
  await writeFile(path, "this is not a photo, just text in a file named .jpg\n");
}

/** A zero-byte file. */
export async function writeEmptyFile(path: string): Promise<void> {
  await writeFile(path, new Uint8Array(0));
}

/** Decode any image file to upright 8-bit pixels with sharp (the tests' oracle). */
export async function readPixels(path: string): Promise<Pixels & { channels: number }> {
  const { data, info } = await sharp(path)
    .rotate()
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: info.channels };
}

/** Width, height and channels of an image file (without EXIF rotation). */
export async function imageInfo(path: string): Promise<{ width: number; height: number; channels: number }> {
  const m = await sharp(path).metadata();
  return { width: m.width, height: m.height, channels: m.channels };
}

/** sha256 of every file below `dir` (recursively), keyed by `/`-separated relative path. */
export async function hashTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const abs = join(d, entry.name);
      if (entry.isDirectory()) await walk(abs);
      else if (entry.isFile()) {
        out.set(
          relative(dir, abs).split("\\").join("/"),
          createHash("sha256")
            .update(await readFile(abs))
            .digest("hex"),
        );
      }
    }
  };
  if ((await stat(dir).catch(() => undefined))?.isDirectory()) await walk(dir);
  return out;
}
