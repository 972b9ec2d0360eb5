// The mask overlay the review page lays over a photo: a 1-bit palette PNG whose subject pixels are one
// translucent colour and whose other pixels are transparent, so the browser composites it over the
// photo as it is (no canvas work per click). Built from the 1-bit mask PNG: same rows, a palette.

import { encodeMaskPng, PNG_SIGNATURE, pngChunk } from "../image/mask-png.js";

/** An RGBA colour, 0–255 each. */
export type Rgba = readonly [number, number, number, number];

/**
 * The default overlay colour: a pink that stands out from skin, fur, sky and grass, at about 45 %.
 */
export const OVERLAY_COLOR: Rgba = [255, 45, 111, 115];

/** Length of the signature plus the IHDR chunk of a PNG. */
const HEADER_BYTES = 8 + 12 + 13;

/**
 * Encode a binary mask (non-zero = subject) as a 1-bit palette PNG: index 1 (subject) in `color`,
 * index 0 fully transparent.
 * @default color OVERLAY_COLOR
 * @throws RangeError when the mask length does not match the size, or a colour value is not 0–255.
 */
export function encodeOverlayPng(
  mask: Uint8Array,
  width: number,
  height: number,
  color: Rgba = OVERLAY_COLOR,
): Buffer {
  for (const v of color) {
    if (!Number.isInteger(v) || v < 0 || v > 255) {
      throw new RangeError(
        `Expected integers from 0 to 255 for the overlay colour but received ${color.join(",")}`,
      );
    }
  }
  const grey = encodeMaskPng(mask, width, height);
  // A 1-bit greyscale image and a 1-bit palette image pack their rows alike: only the colour type
  // in IHDR changes, and the palette (PLTE) and its alpha (tRNS) come before the image data.
  const ihdr = Buffer.from(grey.subarray(16, 29));
  ihdr[9] = 3; // colour type: palette
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", ihdr),
    pngChunk("PLTE", Uint8Array.of(0, 0, 0, color[0], color[1], color[2])),
    pngChunk("tRNS", Uint8Array.of(0, color[3])),
    grey.subarray(HEADER_BYTES),
  ]);
}
