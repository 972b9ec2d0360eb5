import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { caption } from "../src/dataset/captions.js";
import { subjectCrop } from "../src/dataset/crop.js";
import { writePhotoOutputs } from "../src/dataset/outputs.js";
import type { RgbImage } from "../src/image/image-io.js";
import { maskBox } from "../src/segment/sam/postprocess.js";

/** Minimal PNG decoder (8-bit, non-interlaced, grey/RGB/RGBA): an independent check of what we wrote. */
function decodePng(bytes: Uint8Array): { width: number; height: number; channels: number; data: Uint8Array } {
  const view = Buffer.from(bytes);
  expect(view.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (pos < view.length) {
    const len = view.readUInt32BE(pos);
    const type = view.toString("latin1", pos + 4, pos + 8);
    const body = view.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      expect(body[8]).toBe(8); // bit depth
      expect(body[12]).toBe(0); // no interlace
      channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[body[9]!]!;
    } else if (type === "IDAT") idat.push(body);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= channels ? data[y * stride + x - channels]! : 0;
      const b = y > 0 ? data[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? data[(y - 1) * stride + x - channels]! : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][filter]!;
      data[y * stride + x] = (v + pred) & 255;
    }
  }
  return { width, height, channels, data };
}

const PW = 400;
const PH = 300;

/** A blue photo with a red disc, the disc as the mask. */
function scene(): { photo: RgbImage; mask: Uint8Array } {
  const data = new Uint8Array(PW * PH * 3);
  const mask = new Uint8Array(PW * PH);
  for (let y = 0; y < PH; y++) {
    for (let x = 0; x < PW; x++) {
      const i = y * PW + x;
      const inside = (x - 250.3) ** 2 + (y - 140.6) ** 2 <= 57 ** 2;
      mask[i] = inside ? 1 : 0;
      data[3 * i] = inside ? 255 : 0;
      data[3 * i + 1] = inside ? 0 : 40;
      data[3 * i + 2] = inside ? 0 : 255;
    }
  }
  return { photo: { data, width: PW, height: PH, channels: 3 }, mask };
}

let outDir: string;
beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), "persam-outputs-"));
});
afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

describe("writePhotoOutputs", () => {
  // 64: the crop (≈161 px) shrinks; 240: it is enlarged, where sharp is not centre-aligned.
  it.each([64, 240])(
    "writes four aligned PNGs of one size, a caption and the metadata row (resolution %i)",
    async (res) => {
      const { photo, mask } = scene();
      const crop = subjectCrop({ width: PW, height: PH, box: maskBox(mask, PW, PH), margin: 0.2 });
      const text = caption({ className: 'cat "Mimi" 猫' });
      const result = await writePhotoOutputs({
        outDir,
        stem: "disc",
        photo,
        mask,
        crop,
        resolution: res,
        background: "white",
        bgWeight: 0.1,
        feather: 3,
        caption: text,
        confidence: 0.87654,
        flags: ["test"],
      });
      expect(result.files).toEqual({
        image: "images/disc.png",
        mask: "masks/disc.png",
        weight: "weights/disc.png",
        rgba: "rgba/disc.png",
        caption: "captions/disc.txt",
      });
      expect(result.row).toEqual({
        file_name: "images/disc.png",
        mask_file_name: "masks/disc.png",
        weight_file_name: "weights/disc.png",
        rgba_file_name: "rgba/disc.png",
        text,
        confidence: 0.8765,
        flags: ["test"],
      });
      expect(await readFile(join(outDir, "captions/disc.txt"), "utf8")).toBe(text);
      expect(await readdir(join(outDir, "images"))).toEqual(["disc.png"]);

      const img = decodePng(await readFile(join(outDir, result.files.image)));
      const m = decodePng(await readFile(join(outDir, result.files.mask)));
      const w = decodePng(await readFile(join(outDir, result.files.weight)));
      const rgba = decodePng(await readFile(join(outDir, result.files.rgba)));
      for (const png of [img, m, w, rgba]) expect([png.width, png.height]).toEqual([res, res]);
      expect([result.width, result.height]).toEqual([res, res]);
      expect([img.channels, m.channels, w.channels, rgba.channels]).toEqual([3, 1, 1, 4]);

      const n = res * res;
      const bg = Math.round(0.1 * 255);
      let area = 0;
      let mx = 0;
      let my = 0;
      let red = 0;
      let rx = 0;
      let ry = 0;
      for (let i = 0; i < n; i++) {
        const x = i % res;
        const y = Math.floor(i / res);
        const mv = m.data[i]!;
        const wv = w.data[i]!;
        // Plain comparisons in the per-pixel loop, one expect per failure kind (keeps the test fast).
        if (mv !== 0 && mv !== 255) expect.fail(`mask value ${mv} at ${x},${y}`);
        if (wv < bg || wv > 255) expect.fail(`weight ${wv} at ${x},${y}`);
        if (rgba.data[4 * i + 3] !== wv) expect.fail(`rgba alpha ≠ weight at ${x},${y}`);
        if (mv === 255) {
          if (wv !== 255) expect.fail(`weight ${wv} on the subject at ${x},${y}`);
          // The training image keeps the photo's own pixels on the subject, identical to the RGBA's,
          // except on the one-pixel anti-aliased outline (a pixel with a neighbour outside the mask).
          let interior = true;
          for (let dy = -1; dy <= 1; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const xx = x + dx;
              const yy = y + dy;
              if (xx >= 0 && yy >= 0 && xx < res && yy < res && m.data[yy * res + xx] === 0) interior = false;
            }
          for (let c = 0; c < 3; c++) {
            const photo = rgba.data[4 * i + c]!;
            const v = img.data[3 * i + c]!;
            if (interior ? v !== photo : v < Math.min(photo, 255) || v > 255)
              expect.fail(`image ≠ rgba on the subject at ${x},${y}`);
          }
          area++;
          mx += x;
          my += y;
        } else if (wv === bg) {
          if (img.data[3 * i] !== 255 || img.data[3 * i + 1] !== 255 || img.data[3 * i + 2] !== 255) {
            expect.fail(`background not white at ${x},${y}`);
          }
        }
        // The RGBA keeps the original photo everywhere (alpha > 0): measure where the red disc landed.
        const r = rgba.data[4 * i]! / 255;
        red += r;
        rx += r * x;
        ry += r * y;
      }
      expect(result.maskArea).toBeCloseTo(area / n, 10);
      // Image and mask are aligned: the disc's centroid and area agree within a fraction of a pixel.
      expect(Math.abs(mx / area - rx / red)).toBeLessThan(0.25);
      expect(Math.abs(my / area - ry / red)).toBeLessThan(0.25);
      expect(Math.abs(area - red) / red).toBeLessThan(0.03);
    },
  );

  it("writes an RGBA training image for the transparent background, still the same size", async () => {
    const { photo, mask } = scene();
    const crop = { left: 100, top: 0, width: 300, height: 200 };
    const result = await writePhotoOutputs({
      outDir,
      stem: "wide",
      photo,
      mask,
      crop,
      resolution: 40,
      background: "transparent",
      bgWeight: 0,
      caption: "a photo of sks disc",
      confidence: 0.5,
    });
    const img = decodePng(await readFile(join(outDir, result.files.image)));
    const m = decodePng(await readFile(join(outDir, result.files.mask)));
    expect([img.width, img.height, img.channels]).toEqual([60, 40, 4]);
    expect([m.width, m.height]).toEqual([60, 40]);
    expect(img.data[3]).toBe(0); // top-left corner is far background
    expect(img.data.subarray(0, 3)).toEqual(new Uint8Array([255, 255, 255]));
    expect(result.row.flags).toEqual([]);
    // RGBA with a zero background weight: alpha 0 there, and deliberate RGB (the suppressed white).
    const rgba = decodePng(await readFile(join(outDir, result.files.rgba)));
    expect(Array.from(rgba.data.subarray(0, 4))).toEqual([255, 255, 255, 0]);
    const centre = (28 * 60 + 30) * 4; // (30, 28) maps back to (252, 142), the disc centre
    expect(Array.from(rgba.data.subarray(centre, centre + 4))).toEqual([255, 0, 0, 255]);
  });

  it("refuses stems that would leave the folder and masks of the wrong size", async () => {
    const { photo, mask } = scene();
    const base = {
      outDir,
      photo,
      mask,
      crop: { left: 0, top: 0, width: 10, height: 10 },
      resolution: 8,
      caption: "x",
      confidence: 1,
    };
    for (const stem of ["../evil", "a/b", ".hidden", ""]) {
      await expect(writePhotoOutputs({ ...base, stem })).rejects.toThrow(
        `Expected a file stem without separators or leading dot for stem but received ${JSON.stringify(stem)}`,
      );
    }
    await expect(writePhotoOutputs({ ...base, stem: "ok", mask: new Uint8Array(5) })).rejects.toThrow(
      `Expected ${PW * PH} mask values (${PW}×${PH}) for mask but received 5`,
    );
    expect(await readdir(outDir)).not.toContain("evil");
  });
});
