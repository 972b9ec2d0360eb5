// The decoder of a run's photos: one pixel limit and one scale policy for every decode, and a
// notice per decode for the caller's progress and diagnostics. Passed down to whatever needs pixels
// (the photo encoder), so a photo is decoded the same way wherever it is decoded.

import { type LoadImageOptions, loadRgb, probeImage, type RgbImage } from "./image-io.js";

/** The smallest decode a caller can work with: the decoded photo keeps at least these sides. */
export interface DecodeNeed {
  /** Longer side, in pixels (SAM's encoder input: 1024). */
  readonly longSide: number;
  /** Shorter side, in pixels (the training resolution). */
  readonly shortSide: number;
}

/** Options of {@link PhotoLoader}. */
export interface PhotoLoaderOptions extends Omit<LoadImageOptions, "shrink"> {
  /**
   * Decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) that still keeps these sides; other
   * formats, and photos too small to shrink, in full. A deviation from the reference's pixels (see
   * `LoadImageOptions.shrink`). @default undefined (every photo in full)
   */
  readonly scaled?: DecodeNeed | undefined;
  /** Told of every decode, after it succeeded. */
  readonly onDecode?: ((path: string) => void) | undefined;
}

/** A photo with its pixels, handed from one step of a run to the next so it is decoded once. */
export interface DecodedPhoto {
  /** Absolute path of the file the pixels came from. */
  readonly path: string;
  readonly image: RgbImage;
}

/** The largest of 1, 2, 4, 8 that keeps a `width × height` photo at least as large as `need`. */
export function shrinkFactor(width: number, height: number, need: DecodeNeed): 1 | 2 | 4 | 8 {
  for (const f of [8, 4, 2] as const) {
    const long = Math.ceil(Math.max(width, height) / f);
    const short = Math.ceil(Math.min(width, height) / f);
    if (long >= need.longSide && short >= need.shortSide) return f;
  }
  return 1;
}

/** Decodes photos to upright sRGB RGB8 with one set of options (see `loadRgb`). */
export class PhotoLoader {
  /** The photo {@link prefetch} started decoding, until `load` takes it or another prefetch drops it. */
  private ahead: { readonly path: string; readonly image: Promise<RgbImage> } | undefined;

  constructor(private readonly options: PhotoLoaderOptions = {}) {}

  /**
   * The scale a photo is decoded at by {@link load}: 1, or the DCT factor (JPEGs only). Reads the
   * header only.
   * @throws UserError naming the file when it is not an image persam-db reads.
   */
  async factorFor(path: string): Promise<1 | 2 | 4 | 8> {
    const need = this.options.scaled;
    if (need === undefined) return 1;
    const probe = await probeImage(path, this.options);
    return probe.format === "jpeg" ? shrinkFactor(probe.width, probe.height, need) : 1;
  }

  /**
   * The photo's pixels, at the loader's scale.
   * @throws UserError naming the file when it cannot be read or decoded, or exceeds the pixel limit.
   */
  async load(path: string): Promise<RgbImage> {
    const ahead = this.ahead;
    if (ahead?.path === path) {
      this.ahead = undefined;
      return ahead.image;
    }
    return this.decode(path, await this.factorFor(path));
  }

  /**
   * Start decoding a photo that the next {@link load} will ask for. sharp decodes on its own
   * threads, so the decode runs while the caller's thread does other work (a finished photo's masks
   * and files) instead of before the photo's turn. One photo ahead at most: a new prefetch drops
   * the previous one, and nothing is decoded twice when `load` takes it. A failed decode is
   * reported by that `load`, as if it had decoded the photo itself.
   */
  prefetch(path: string): void {
    if (this.ahead?.path === path) return;
    const image = this.factorFor(path).then((factor) => this.decode(path, factor));
    // The error belongs to the later `load`; until then it must not count as unhandled.
    image.catch(() => undefined);
    this.ahead = { path, image };
  }

  /** The photo's pixels at full resolution, whatever the loader's scale. */
  async loadFull(path: string): Promise<RgbImage> {
    return this.decode(path, 1);
  }

  private async decode(path: string, shrink: 1 | 2 | 4 | 8): Promise<RgbImage> {
    const { onDecode, scaled: _scaled, ...options } = this.options;
    const image = await loadRgb(path, { ...options, shrink });
    onDecode?.(path);
    return image;
  }
}
