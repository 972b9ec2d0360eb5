// The decoder of a run's photos: one pixel limit for every decode, and a notice per decode for the
// caller's progress and diagnostics. Passed down to whatever needs pixels (the photo encoder).

import { type LoadImageOptions, loadRgb, type RgbImage } from "./image-io.js";

/** Options of {@link PhotoLoader}. */
export interface PhotoLoaderOptions extends LoadImageOptions {
  /** Told of every full-resolution decode, after it succeeded. */
  readonly onDecode?: ((path: string) => void) | undefined;
}

/** A photo with its pixels, handed from one step of a run to the next so it is decoded once. */
export interface DecodedPhoto {
  /** Absolute path of the file the pixels came from. */
  readonly path: string;
  readonly image: RgbImage;
}

/** Decodes photos to upright sRGB RGB8 with one set of options (see `loadRgb`). */
export class PhotoLoader {
  constructor(private readonly options: PhotoLoaderOptions = {}) {}

  /**
   * The photo's pixels.
   * @throws UserError naming the file when it cannot be read or decoded, or exceeds the pixel limit.
   */
  async load(path: string): Promise<RgbImage> {
    const { onDecode, ...options } = this.options;
    const image = await loadRgb(path, options);
    onDecode?.(path);
    return image;
  }
}
