// ISO base media files (MP4, MOV, HEIC, AVIF) share one box format. Whether such a file is a
// video, a HEIC photo or an AVIF photo is written in the brands of its leading `ftyp` box.

/**
 * The brands of the `ftyp` box that starts `head`: the major brand first, then the compatible
 * brands that lie inside both the box and `head`; undefined when `head` does not start with an
 * `ftyp` box. A box size of 0 means "to the end of the file", 1 a 64-bit size after the type.
 */
export function ftypBrands(head: Uint8Array): string[] | undefined {
  const ascii = (from: number, to: number): string => String.fromCharCode(...head.subarray(from, to));
  if (head.length < 12 || ascii(4, 8) !== "ftyp") return undefined;
  const size = uint32(head, 0);
  let start = 8;
  let end = size === 0 ? head.length : size;
  if (size === 1) {
    if (head.length < 20) return undefined;
    start = 16;
    end = uint32(head, 8) * 2 ** 32 + uint32(head, 12);
  }
  end = Math.min(end, head.length);
  if (start + 4 > end) return undefined;
  const brands = [ascii(start, start + 4)];
  // The major brand is followed by a 4-byte minor version, then the compatible brands.
  for (let i = start + 8; i + 4 <= end; i += 4) brands.push(ascii(i, i + 4));
  return brands;
}

function uint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}
