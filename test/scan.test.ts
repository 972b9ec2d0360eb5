import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRoutineSkip, isSidecarName, naturalCompare, scanPhotos } from "../src/dataset/scan.js";
import { UserError } from "../src/errors.js";
import { encodeJpeg, encodePng } from "../src/image/image-io.js";

/** A small distinct image: `shade` makes the bytes (and hash) differ. */
function pixels(shade: number, width = 8, height = 6) {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + shade) & 255;
  return { data, width, height, channels: 3 as const };
}

let work: string;
let dir: string;
let outside: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "persam-scan-"));
  dir = join(work, "photos");
  outside = join(work, "elsewhere");
  await mkdir(dir);
  await mkdir(outside);
  await writeFile(join(dir, "img10.jpg"), await encodeJpeg(pixels(1)));
  await writeFile(join(dir, "img2.jpg"), await encodeJpeg(pixels(2)));
  await writeFile(join(dir, "png-named.jpg"), await encodePng(pixels(3))); // PNG bytes, .jpg name
  await writeFile(join(dir, "notes.jpg"), "this is text, not a JPEG\n");
  await writeFile(join(dir, "empty.png"), new Uint8Array(0));
  await writeFile(join(dir, ".DS_Store"), "junk");
  await writeFile(join(dir, "cat.jpg"), await encodeJpeg(pixels(4)));
  await writeFile(join(dir, "cat.png"), await encodePng(pixels(5)));
  await writeFile(
    join(dir, "cat.mask.png"),
    await encodePng({ data: new Uint8Array(48).fill(255), width: 8, height: 6, channels: 1 }),
  );
  await writeFile(join(dir, "dog.mask.jpg"), await encodeJpeg(pixels(6)));
  await writeFile(join(dir, "ghost.mask.png"), await encodePng(pixels(7)));
  await writeFile(join(dir, "copy of img2.jpg"), await encodeJpeg(pixels(2))); // same bytes as img2.jpg
  await writeFile(join(dir, 'we"ird <name>.png'), await encodePng(pixels(8)));
  await writeFile(join(outside, "secret.png"), await encodePng(pixels(9)));
  await symlink(join(outside, "secret.png"), join(dir, "link-out.png"));
  await symlink(join(dir, "cat.png"), join(dir, "link-in.png"));
  await mkdir(join(dir, "sub"));
  await writeFile(join(dir, "sub", "deep.png"), await encodePng(pixels(10)));
  await mkdir(join(dir, "out", ".persam"), { recursive: true });
  await writeFile(join(dir, "out", "x.png"), await encodePng(pixels(11)));
  await mkdir(join(dir, "custom-out"));
  await writeFile(join(dir, "custom-out", "y.png"), await encodePng(pixels(12)));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("scanPhotos", () => {
  it("recognises photos by content, in natural order, with unique stems", async () => {
    const scan = await scanPhotos({ dir, outputDir: join(dir, "custom-out") });
    expect(scan.photos.map((p) => p.relPath)).toEqual([
      "cat.jpg",
      "cat.png",
      "copy of img2.jpg",
      "img10.jpg",
      "png-named.jpg",
      'we"ird <name>.png',
    ]);
    expect(scan.photos.map((p) => p.stem)).toEqual([
      "cat",
      "cat-png",
      "copy-of-img2",
      "img10",
      "png-named",
      "we-ird-name",
    ]);
    const png = scan.photos.find((p) => p.relPath === "png-named.jpg")!;
    expect(png.format).toBe("png");
    expect([png.width, png.height]).toEqual([8, 6]);
    expect(png.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(png.path).toBe(join(dir, "png-named.jpg"));
  });

  it("skips non-images, empty, hidden, outside links, subfolders and output folders with a reason each", async () => {
    const scan = await scanPhotos({ dir, outputDir: join(dir, "custom-out") });
    const why = new Map(scan.skipped.map((s) => [s.relPath, s]));
    expect(why.get("notes.jpg")?.kind).toBe("not-a-photo");
    expect(why.get("notes.jpg")?.reason).toContain("is not an image persam-db can read");
    expect(why.get("empty.png")).toMatchObject({
      kind: "empty",
      reason: "empty.png: empty file (0 bytes), ignored",
    });
    expect(why.get(".DS_Store")?.kind).toBe("hidden");
    expect(why.get("link-out.png")).toMatchObject({
      kind: "link",
      reason: "link-out.png: link to a file outside the photo folder, ignored",
    });
    expect(why.get("sub")?.kind).toBe("folder");
    expect(why.get("out")?.kind).toBe("output-folder");
    expect(why.get("custom-out")?.kind).toBe("output-folder");
    expect(why.get("dog.mask.jpg")?.kind).toBe("mask");
    expect(why.get("ghost.mask.png")?.reason).toBe(
      "ghost.mask.png: no photo named ghost.* beside this mask, ignored",
    );
    // Nothing is both a photo and skipped, and every reason is one line.
    const photos = new Set(scan.photos.map((p) => p.relPath));
    for (const s of scan.skipped) {
      expect(photos.has(s.relPath)).toBe(false);
      expect(s.reason).not.toMatch(/\n/);
    }
  });

  it("skips notes, metadata sidecars and file-browser caches quietly, but reads an image by content", async () => {
    const folder = join(work, "with-sidecars");
    await mkdir(folder);
    await writeFile(join(folder, "IMG_0001.jpg"), await encodeJpeg(pixels(20)));
    await writeFile(join(folder, "notes.txt"), "the cat is called Mochi\n");
    await writeFile(join(folder, "empty.txt"), "");
    await writeFile(join(folder, "IMG_0001.xmp"), "<x:xmpmeta/>");
    await writeFile(join(folder, "IMG_0001.AAE"), "<plist/>");
    await writeFile(join(folder, "export.json"), "{}");
    await writeFile(join(folder, "Thumbs.db"), new Uint8Array([0xd0, 0xcf, 0x11, 0xe0]));
    await writeFile(join(folder, "really-a-png.txt"), await encodePng(pixels(21)));
    await writeFile(join(folder, "movie.mov"), "not a photo either");
    const scan = await scanPhotos({ dir: folder });
    expect(scan.photos.map((p) => p.relPath)).toEqual(["IMG_0001.jpg", "really-a-png.txt"]);
    const kinds = Object.fromEntries(scan.skipped.map((s) => [s.relPath, s.kind]));
    expect(kinds).toEqual({
      "empty.txt": "sidecar",
      "export.json": "sidecar",
      "IMG_0001.AAE": "sidecar",
      "IMG_0001.xmp": "sidecar",
      "movie.mov": "not-a-photo",
      "notes.txt": "sidecar",
      "Thumbs.db": "sidecar",
    });
    for (const s of scan.skipped) expect(isRoutineSkip(s), s.relPath).toBe(s.kind === "sidecar");
    expect(isSidecarName(".DS_Store")).toBe(true);
    expect(isSidecarName("cat.jpg")).toBe(false);
  });

  it("collects <stem>.mask.png for every photo of that name and reports duplicates by hash", async () => {
    const scan = await scanPhotos({ dir });
    expect(scan.maskFiles.get("cat")).toBe(join(dir, "cat.mask.png"));
    expect(scan.maskFiles.get("cat-png")).toBe(join(dir, "cat.mask.png"));
    expect(scan.photos.find((p) => p.stem === "cat")?.maskPath).toBe(join(dir, "cat.mask.png"));
    expect(scan.photos.some((p) => p.relPath.endsWith(".mask.png"))).toBe(false);
    expect(scan.duplicates).toEqual([
      { path: join(dir, "img2.jpg"), relPath: "img2.jpg", duplicateOf: "copy of img2.jpg" },
      { path: join(dir, "link-in.png"), relPath: "link-in.png", duplicateOf: "cat.png" },
    ]);
  });

  it("descends into subfolders when recursive, but never into output folders", async () => {
    const scan = await scanPhotos({ dir, recursive: true });
    const rels = scan.photos.map((p) => p.relPath);
    expect(rels).toContain("sub/deep.png");
    expect(scan.photos.find((p) => p.relPath === "sub/deep.png")?.stem).toBe("sub_deep");
    expect(rels.some((r) => r.startsWith("out/"))).toBe(false);
  });

  it("refuses a missing folder with a UserError", async () => {
    await expect(scanPhotos({ dir: join(work, "nope") })).rejects.toThrow(UserError);
    await expect(scanPhotos({ dir: join(work, "nope") })).rejects.toThrow(
      /Cannot read the photo folder .*nope: not found/,
    );
  });

  it("applies the pixel limit before decoding", async () => {
    const scan = await scanPhotos({ dir, maxPixels: 10 });
    expect(scan.photos).toEqual([]);
    expect(scan.skipped.find((s) => s.relPath === "cat.jpg")?.reason).toContain("more than the limit");
  });
});

describe("naturalCompare", () => {
  it("orders digit runs by value and is locale-independent", () => {
    expect(["img10", "IMG2", "img1", "img02", "a"].sort(naturalCompare)).toEqual([
      "a",
      "img1",
      "IMG2",
      "img02",
      "img10",
    ]);
  });
});
