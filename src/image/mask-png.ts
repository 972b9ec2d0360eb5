// The full-resolution masks of the state folder (.persam/masks) as 1-bit greyscale PNGs, written and
// read without sharp: several times cheaper to write than sharp's 8-bit PNG of the same mask, and to
// read back than sharp plus loadMaskRed (bench/README.md, case `prepare`). The files stay standard
// PNGs (any viewer, sharp and loadMaskRed read them as grey 0/255).

import { deflateSync, inflateSync } from "node:zlib";

/** The eight bytes every PNG file starts with. */
export const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** CRC-32 (ISO 3309, as PNG chunks use it); node:zlib's crc32 needs Node ≥ 20.15. */
const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** One PNG chunk: length, type, data and the CRC of type + data. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function checkSize(mask: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new RangeError(
      `Expected positive integer width and height for mask but received ${width}×${height}`,
    );
  }
  if (mask.length !== width * height) {
    throw new RangeError(
      `Expected ${width * height} mask values (${width}×${height}) for mask but received ${mask.length}`,
    );
  }
}

/**
 * Encode a binary mask (non-zero = subject) as a 1-bit greyscale PNG: white (255 when read as 8-bit)
 * on the subject, black elsewhere; filter "none" on every row and zlib level 1. A higher level
 * gives a somewhat smaller file for several times the time; the state folder is not shipped, so
 * the time matters more than the size.
 * @throws RangeError when the mask length does not match the size.
 */
export function encodeMaskPng(mask: Uint8Array, width: number, height: number): Buffer {
  checkSize(mask, width, height);
  const stride = 1 + ((width + 7) >> 3);
  const raw = new Uint8Array(stride * height); // filter byte 0 (none) leads each row
  const whole = width & ~7;
  for (let y = 0, i = 0; y < height; y++) {
    let o = y * stride + 1;
    const end = i + whole;
    for (; i < end; i += 8) {
      raw[o++] =
        (mask[i] ? 0x80 : 0) |
        (mask[i + 1] ? 0x40 : 0) |
        (mask[i + 2] ? 0x20 : 0) |
        (mask[i + 3] ? 0x10 : 0) |
        (mask[i + 4] ? 0x08 : 0) |
        (mask[i + 5] ? 0x04 : 0) |
        (mask[i + 6] ? 0x02 : 0) |
        (mask[i + 7] ? 0x01 : 0);
    }
    let last = 0;
    for (let bit = 0x80; i < (y + 1) * width; i++, bit >>= 1) if (mask[i]) last |= bit;
    if (whole < width) raw[o] = last;
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 1; // bit depth
  header[9] = 0; // greyscale; compression, filter and interlace methods stay 0
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(raw, { level: 1 })),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}

/**
 * Decode a PNG written by {@link encodeMaskPng} to 0/1 bytes, or return undefined when the file is not
 * one (another bit depth or colour type, interlaced, a row filter other than "none": a mask written by
 * an older persam-db with sharp, or edited by hand), so that the caller falls back to a general
 * decoder. Chunk CRCs are checked.
 * @throws Error when the data is a PNG of this kind but truncated or corrupt.
 */
export function decodeMaskPng(
  png: Uint8Array,
): { mask: Uint8Array; width: number; height: number } | undefined {
  if (png.length < 8 + 25 || !PNG_SIGNATURE.every((b, i) => png[i] === b)) return undefined;
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0;
  let height = 0;
  const idat: Uint8Array[] = [];
  let ended = false;
  for (let at = 8; at + 12 <= png.length; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(png[at + 4]!, png[at + 5]!, png[at + 6]!, png[at + 7]!);
    if (at + 12 + length > png.length) throw new Error(`Truncated PNG chunk ${type}`);
    const body = png.subarray(at + 8, at + 8 + length);
    if (crc32(png.subarray(at + 4, at + 8 + length)) !== view.getUint32(at + 8 + length)) {
      throw new Error(`Bad CRC in PNG chunk ${type}`);
    }
    if (type === "IHDR") {
      if (length !== 13) throw new Error("Bad PNG IHDR chunk");
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      // Bit depth 1, greyscale, deflate, adaptive filtering, not interlaced: anything else is not ours.
      if (body[8] !== 1 || body[9] !== 0 || body[10] !== 0 || body[11] !== 0 || body[12] !== 0)
        return undefined;
    } else if (type === "IDAT") {
      idat.push(body);
    } else if (type === "IEND") {
      ended = true;
      break;
    } else if ((png[at + 4]! & 0x20) === 0) {
      return undefined; // a critical chunk we do not know (PLTE would be odd here)
    }
    at += 12 + length;
  }
  if (!ended || width < 1 || height < 1 || idat.length === 0) throw new Error("Truncated or invalid PNG");
  const stride = 1 + ((width + 7) >> 3);
  const raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat));
  if (raw.length !== stride * height)
    throw new Error(`Expected ${stride * height} bytes of PNG rows but found ${raw.length}`);
  const mask = unpackRows(raw, width, height, stride);
  if (mask === undefined) return undefined;
  return { mask, width, height };
}

/**
 * Unpack filter-"none" 1-bit rows to 0/1 bytes, or undefined when a row has another filter. Written
 * to run fast from its first call (once per photo, before the JIT has warmed up): no read past the
 * rows (an out-of-bounds read de-optimises the loop, which then runs many times slower).
 */
function unpackRows(raw: Uint8Array, width: number, height: number, stride: number): Uint8Array | undefined {
  const mask = new Uint8Array(width * height);
  const whole = width >> 3;
  const rest = width & 7;
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    if (raw[row] !== 0) return undefined;
    let i = y * width;
    for (let k = row + 1, end = row + 1 + whole; k < end; k++, i += 8) {
      const b = raw[k]!;
      if (b === 0) continue; // the array starts at 0
      // Unrolled: several times faster than a loop over the bits or a fill() per byte.
      mask[i] = b >> 7;
      mask[i + 1] = (b >> 6) & 1;
      mask[i + 2] = (b >> 5) & 1;
      mask[i + 3] = (b >> 4) & 1;
      mask[i + 4] = (b >> 3) & 1;
      mask[i + 5] = (b >> 2) & 1;
      mask[i + 6] = (b >> 1) & 1;
      mask[i + 7] = b & 1;
    }
    if (rest > 0) {
      const b = raw[row + 1 + whole]!;
      for (let bit = 0; bit < rest; bit++) mask[i + bit] = (b >> (7 - bit)) & 1;
    }
  }
  return mask;
}
