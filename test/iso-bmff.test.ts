// The brands of a leading `ftyp` box, by which HEIC and AVIF photos are told from MP4 videos:
// boxes as other tools write them (sharp's AVIF) and the size forms of the box format.

import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { ftypBrands } from "../src/image/iso-bmff.js";
import { videoContainerOf } from "../src/video/probe-video.js";

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** An `ftyp` box: size field, type, major brand, minor version 0, compatible brands. */
function ftyp(brands: readonly string[], size?: number): Uint8Array {
  const body = ascii(`ftyp${brands[0]}\0\0\0\0${brands.slice(1).join("")}`);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, size ?? out.length);
  out.set(body, 4);
  return out;
}

const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));

describe("ftypBrands", () => {
  it("reads the brands of an AVIF that sharp writes, which is then no video", async () => {
    const avif = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#3080c0" } })
      .avif()
      .toBuffer();
    const brands = ftypBrands(new Uint8Array(avif.subarray(0, 64)));
    expect(brands?.[0]).toBe("avif");
    expect(brands).toContain("mif1");
    expect(videoContainerOf(new Uint8Array(avif.subarray(0, 64)))).toBeUndefined();
  });

  it("gives the major brand first, then the compatible brands inside the box only", () => {
    const box = ftyp(["heic", "mif1", "heic"]);
    expect(ftypBrands(box)).toEqual(["heic", "mif1", "heic"]);
    // What follows the box (the next box's size and type) is no brand.
    expect(ftypBrands(concat(box, ascii("\0\0\0\x10meta")))).toEqual(["heic", "mif1", "heic"]);
  });

  it("reads a box of size 0 to the end of the head and a 64-bit size after the type", () => {
    expect(ftypBrands(ftyp(["isom", "iso2", "mp41"], 0))).toEqual(["isom", "iso2", "mp41"]);
    const large = concat(
      ascii("\0\0\0\x01ftyp\0\0\0\0\0\0\0\x20"),
      ascii("avif\0\0\0\0mif1miaf"),
      ascii("junk"),
    );
    expect(ftypBrands(large)).toEqual(["avif", "mif1", "miaf"]);
  });

  it("takes a size of 2³¹ or more as the unsigned size it is", () => {
    expect(ftypBrands(ftyp(["mif1", "heic"], 0x8000_0000))).toEqual(["mif1", "heic"]);
  });

  it("reads only what the head holds, and nothing from a file that starts otherwise", () => {
    expect(ftypBrands(ftyp(["heic", "mif1", "heic"]).subarray(0, 22))).toEqual(["heic", "mif1"]);
    expect(ftypBrands(ascii("\0\0\0\x18ftyphe"))).toBeUndefined();
    expect(ftypBrands(ascii("\0\0\0\x08ftyp"))).toBeUndefined();
    expect(ftypBrands(ascii("\0\0\0\x18moovheicheicheic"))).toBeUndefined();
    expect(
      ftypBrands(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1)),
    ).toBeUndefined();
  });
});
