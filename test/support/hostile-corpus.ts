// A hostile input corpus, generated into a temporary folder (never committed): broken, odd and
// dangerous files next to good ones, each with the outcome persam-db must produce for it.
// Everything is generated with sharp, zlib and hand-written PNG chunks; the decompression bomb is a
// valid 30000×30000 PNG of about 1 MB whose 900 MP are never allocated here.

import { chmod, mkdir, mkdtemp, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { constants, deflateRawSync } from "node:zlib";
import sharp, { type Sharp } from "sharp";
import type { SkipKind } from "../../src/dataset/scan.js";
import { PNG_SIGNATURE, pngChunk } from "../../src/image/mask-png.js";
import { storedForOrientation } from "./photos.js";

/** What a stage must do with an input: process it, or refuse it with one line containing `line`. */
export type Outcome = { readonly ok: true } | { readonly ok: false; readonly line: string };

/** What `scanPhotos` (recursive) must report for an input. */
export type ScanOutcome =
  | { readonly as: "photo" }
  /** A `<stem>.mask.png` collected for the photo of that relPath stem. */
  | { readonly as: "mask"; readonly of: string }
  | { readonly as: "skipped"; readonly kind: SkipKind; readonly line: string };

/** An upright 2×2 quadrant pattern: colours in reading order (TL, TR, BL, BR). */
export interface QuadrantPattern {
  readonly width: number;
  readonly height: number;
  readonly quadrants: readonly (readonly [number, number, number])[];
  /** Largest per-channel difference accepted at a quadrant centre. */
  readonly tolerance: number;
}

/** One file of the corpus and the outcome expected at each stage. */
export interface HostileCase {
  /** Short id, unique in the corpus. */
  readonly id: string;
  /** What makes it hostile. */
  readonly description: string;
  /** Absolute path. */
  readonly path: string;
  /** Path relative to the corpus folder, `/`-separated. */
  readonly relPath: string;
  /** `photo`: goes through probeImage + loadRgb; `mask`: through loadMaskRed. */
  readonly role: "photo" | "mask";
  readonly scan: ScanOutcome;
  /** probeImage (photos and masks). */
  readonly probe: Outcome;
  /** loadRgb for photos, loadMaskRed for masks. */
  readonly load: Outcome;
  /**
   * `prepare` over the whole folder: for photos whether training outputs appear, for masks whether
   * the mask is usable as the reference of its photo (wrong size: refused naming both files).
   */
  readonly prepare: Outcome;
  /** Pixels loadRgb must return (upright, first frame). */
  readonly pattern?: QuadrantPattern;
  /** Frame count probeImage must report. */
  readonly pages?: number;
}

/** The generated corpus. */
export interface HostileCorpus {
  /** Temporary parent: `corpus/` and `outside/` lie in it; remove it when done. */
  readonly root: string;
  /** The input folder. */
  readonly dir: string;
  /** A file outside `dir` that a link inside points to. */
  readonly outsideFile: string;
  /** The subfolder with mode 000. */
  readonly lockedDir: string;
  /**
   * True when mode 000 really blocks reading here (false when running as root or with
   * CAP_DAC_OVERRIDE, where permissions do not apply).
   */
  readonly permissionsEnforced: boolean;
  readonly cases: readonly HostileCase[];
}

type Rgb = readonly [number, number, number];

const RED: Rgb = [230, 30, 30];
const GREEN: Rgb = [30, 200, 40];
const BLUE: Rgb = [30, 50, 220];
const YELLOW: Rgb = [240, 220, 30];

/** A raw RGB image of 2×2 coloured quadrants. */
function quadrants(width: number, height: number, colours: readonly Rgb[]): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = (y < height / 2 ? 0 : 2) + (x < width / 2 ? 0 : 1);
      data.set(colours[q]!, (y * width + x) * 3);
    }
  }
  return data;
}

function raw(data: Uint8Array, width: number, height: number, channels: 1 | 3 | 4 = 3): Sharp {
  return sharp(data, { raw: { width, height, channels } });
}

/** A JPEG whose stored pixels, once turned by EXIF orientation `o`, show `upright`. */
async function orientedJpeg(o: number, upright: Uint8Array, W: number, H: number): Promise<Buffer> {
  const stored = storedForOrientation({ data: upright, width: W, height: H }, o);
  return raw(stored.data, stored.width, stored.height)
    .jpeg({ quality: 95, chromaSubsampling: "4:4:4" })
    .withMetadata({ orientation: o })
    .toBuffer();
}

/**
 * A valid `side × side` 8-bit greyscale PNG of zeros, written chunk by chunk: one deflate segment of
 * `rowsPerSegment` zero rows (filter byte + pixels), compressed once and repeated, so the file is
 * about 1 MB while its pixels would take side² bytes. Only the small segment is ever allocated.
 */
export function pngBomb(side: number, rowsPerSegment = 100): Buffer {
  if (side % rowsPerSegment !== 0) throw new RangeError("side must be a multiple of rowsPerSegment");
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const rowBytes = side + 1;
  // Non-final blocks ending byte-aligned (sync flush), so copies of the segment can follow each other.
  const segment = deflateRawSync(Buffer.alloc(rowBytes * rowsPerSegment), {
    level: 9,
    strategy: constants.Z_RLE,
    finishFlush: constants.Z_SYNC_FLUSH,
  });
  const segments = side / rowsPerSegment;
  const total = rowBytes * side;
  // Adler-32 of `total` zero bytes: a = 1, b = total · 1.
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((total % 65521) << 16) | 1) >>> 0, 0);
  const finalBlock = Buffer.from([0x03, 0x00]); // an empty final fixed-Huffman block
  const zlibHeader = Buffer.from([0x78, 0xda]);
  const idats: Buffer[] = [pngChunk("IDAT", zlibHeader)];
  for (let i = 0; i < segments; i++) idats.push(pngChunk("IDAT", segment));
  idats.push(pngChunk("IDAT", Buffer.concat([finalBlock, adler])));
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", ihdr),
    ...idats,
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}

/** `png` with the CRC of its first IDAT chunk flipped. */
function breakIdatCrc(png: Buffer): Buffer {
  const out = Buffer.from(png);
  let at = 8;
  while (at < out.length) {
    const length = out.readUInt32BE(at);
    const type = out.toString("latin1", at + 4, at + 8);
    if (type === "IDAT") {
      const crcAt = at + 8 + length;
      out.writeUInt32BE(out.readUInt32BE(crcAt) ^ 0xffffffff, crcAt);
      return out;
    }
    at += 12 + length;
  }
  throw new Error("no IDAT chunk");
}

/** An animated GIF of `frames` solid frames (first frame = first colour). */
async function animatedGif(width: number, height: number, colours: readonly Rgb[]): Promise<Buffer> {
  const frames = await Promise.all(
    colours.map((c) =>
      raw(quadrants(width, height, [c, c, c, c]), width, height)
        .png()
        .toBuffer(),
    ),
  );
  return sharp(frames, { join: { animated: true } })
    .gif({ loop: 0, delay: 100 })
    .toBuffer();
}

/** Upright pattern of the oriented photos: wider than tall, four distinct quadrants. */
const ORIENTED: QuadrantPattern = {
  width: 48,
  height: 32,
  quadrants: [RED, GREEN, BLUE, YELLOW],
  tolerance: 40,
};

/**
 * Generate the corpus in a new temporary folder:
 * `<root>/corpus/` (the input folder) and `<root>/outside/secret.png` (target of a link).
 * Call {@link unlockCorpus} before removing `root`.
 */
export async function makeHostileCorpus(): Promise<HostileCorpus> {
  const root = await mkdtemp(join(tmpdir(), "persam-hostile-"));
  const dir = join(root, "corpus");
  const outside = join(root, "outside");
  await mkdir(dir);
  await mkdir(outside);
  const cases: HostileCase[] = [];
  const ok: Outcome = { ok: true };
  const refused = (line: string): Outcome => ({ ok: false, line });
  let seed = 0;
  /** A distinct, valid PNG photo (every good photo differs, so none is a duplicate). */
  const goodPng = async (width = 40, height = 30): Promise<Buffer> => {
    seed++;
    const tint: Rgb = [(seed * 37) % 200, (seed * 71) % 200, (seed * 113) % 200];
    return raw(quadrants(width, height, [RED, tint, BLUE, YELLOW]), width, height)
      .png()
      .toBuffer();
  };
  const add = async (c: Omit<HostileCase, "path">, bytes: Uint8Array | string): Promise<void> => {
    const path = join(dir, ...c.relPath.split("/"));
    await writeFile(path, bytes);
    cases.push({ ...c, path });
  };
  const photoOk = { role: "photo", scan: { as: "photo" }, probe: ok, load: ok, prepare: ok } as const;

  // --- Broken and disguised files -------------------------------------------------------------
  const jpeg = await raw(quadrants(64, 48, [RED, GREEN, BLUE, YELLOW]), 64, 48)
    .jpeg({ quality: 90 })
    .toBuffer();
  await add(
    {
      id: "truncated-jpeg",
      description: "a JPEG cut at 60 %, in the middle of its scan data",
      relPath: "truncated.jpg",
      role: "photo",
      // sharp's header read already meets the premature end (failOn: "error"), so probing refuses it.
      scan: { as: "skipped", kind: "not-a-photo", line: "premature end of JPEG image" },
      probe: refused("premature end of JPEG image"),
      load: refused("premature end of JPEG image"),
      prepare: refused("truncated.jpg"),
    },
    jpeg.subarray(0, Math.floor(jpeg.length * 0.6)),
  );
  await add(
    {
      id: "truncated-late-jpeg",
      description: "a JPEG missing its last 20 bytes (end of scan data and EOI marker)",
      relPath: "truncated-late.jpg",
      role: "photo",
      scan: { as: "photo" }, // the header is intact: only decoding meets the end
      probe: ok,
      load: refused("Cannot decode JPEG image"),
      prepare: refused("truncated-late.jpg"),
    },
    jpeg.subarray(0, jpeg.length - 20),
  );
  await add(
    {
      id: "header-only-jpeg",
      description: "a JPEG with only its first 100 bytes (header cut)",
      relPath: "header-only.jpg",
      role: "photo",
      scan: { as: "skipped", kind: "not-a-photo", line: "header-only.jpg" },
      probe: refused("header-only.jpg"),
      load: refused("header-only.jpg"),
      prepare: refused("header-only.jpg"),
    },
    jpeg.subarray(0, 100),
  );
  await add(
    {
      id: "zero-byte-jpeg",
      description: "an empty file named .jpg",
      relPath: "empty.jpg",
      role: "photo",
      scan: { as: "skipped", kind: "empty", line: "empty.jpg: empty file (0 bytes)" },
      probe: refused("is empty (0 bytes)"),
      load: refused("is empty (0 bytes)"),
      prepare: refused("empty.jpg"),
    },
    new Uint8Array(0),
  );
  await add(
    {
      id: "text-as-jpeg",
      description: "a text file named .jpg",
      relPath: "notes.jpg",
      role: "photo",
      scan: { as: "skipped", kind: "not-a-photo", line: "is not an image persam-db can read" },
      probe: refused("is not an image persam-db can read"),
      load: refused("is not an image persam-db can read"),
      prepare: refused("notes.jpg"),
    },
    "These are my notes, not a photo.\nSecond line.\n",
  );
  await add(
    {
      id: "png-bad-crc",
      description: "a PNG whose IDAT chunk has a wrong CRC",
      relPath: "bad-crc.png",
      role: "photo",
      scan: { as: "photo" }, // IHDR is intact: probing reads only the header
      probe: ok,
      load: refused("Cannot decode PNG image"),
      prepare: refused("bad-crc.png"),
    },
    breakIdatCrc(await goodPng()),
  );
  await add(
    {
      id: "png-bomb",
      description: "a valid 30000×30000 PNG (900 MP) of about 1 MB: a decompression bomb",
      relPath: "bomb.png",
      role: "photo",
      scan: { as: "skipped", kind: "not-a-photo", line: "more than the limit of 100.0 MP" },
      probe: refused("30000×30000 = 900.0 MP, more than the limit of 100.0 MP"),
      load: refused("more than the limit of 100.0 MP"),
      prepare: refused("bomb.png"),
    },
    pngBomb(30000),
  );

  // --- Unusual but valid encodings --------------------------------------------------------------
  // Muted colours inside the CMYK gamut (a saturated sRGB green is clipped by any press profile).
  const cmykPattern: QuadrantPattern = {
    width: 40,
    height: 30,
    quadrants: [
      [180, 80, 70],
      [90, 140, 90],
      [70, 90, 160],
      [200, 190, 90],
    ],
    tolerance: 40,
  };
  await add(
    { id: "cmyk-jpeg", description: "a CMYK JPEG", relPath: "cmyk.jpg", ...photoOk, pattern: cmykPattern },
    await raw(quadrants(40, 30, cmykPattern.quadrants), 40, 30)
      .toColourspace("cmyk")
      .jpeg({ quality: 95 })
      .toBuffer(),
  );
  const deepPattern: QuadrantPattern = {
    width: 40,
    height: 30,
    quadrants: [RED, GREEN, BLUE, YELLOW],
    tolerance: 1,
  };
  await add(
    {
      id: "png-16bit",
      description: "a 16-bit RGB PNG",
      relPath: "deep.png",
      ...photoOk,
      pattern: deepPattern,
    },
    await raw(quadrants(40, 30, deepPattern.quadrants), 40, 30)
      .toColourspace("rgb16")
      .png()
      .toBuffer(),
  );
  await add(
    {
      id: "animated-gif",
      description: "an animated GIF of 3 frames (only the first, red, is used)",
      relPath: "animated.gif",
      ...photoOk,
      pages: 3,
      pattern: { width: 24, height: 16, quadrants: [RED, RED, RED, RED], tolerance: 30 },
    },
    await animatedGif(24, 16, [RED, GREEN, BLUE]),
  );
  for (let o = 1; o <= 8; o++) {
    await add(
      {
        id: `exif-orientation-${o}`,
        description: `a JPEG with EXIF orientation ${o} (stored turned; upright after applying it)`,
        relPath: `orientation-${o}.jpg`,
        ...photoOk,
        pattern: ORIENTED,
      },
      await orientedJpeg(o, quadrants(ORIENTED.width, ORIENTED.height, ORIENTED.quadrants), 48, 32),
    );
  }

  // --- Hostile file names ---------------------------------------------------------------------
  const names: [string, string][] = [
    ["space-name", "my photo 1.png"],
    ["quote-name", `it's a "quoted" photo.png`],
    ["unicode-name", "ünïcödé 猫 😀 photo.png"],
    ["leading-dash", "-rf --help.png"],
    ["shell-meta-name", "$(touch pwned) `id` ;&|.png"],
  ];
  for (const [id, name] of names) {
    await add(
      { id, description: `a good photo named ${JSON.stringify(name)}`, relPath: name, ...photoOk },
      await goodPng(),
    );
  }
  await add(
    {
      id: "newline-name",
      description: "a text file with a line break in its name",
      relPath: "line\nbreak.jpg",
      role: "photo",
      scan: { as: "skipped", kind: "not-a-photo", line: "is not an image persam-db can read" },
      probe: refused("is not an image persam-db can read"),
      load: refused("is not an image persam-db can read"),
      prepare: refused("break.jpg"),
    },
    "not an image",
  );

  // --- Masks ----------------------------------------------------------------------------------
  await add(
    {
      id: "photo-with-bad-mask",
      description: "a photo whose mask has the wrong size",
      relPath: "subject.png",
      ...photoOk,
      prepare: refused("subject.png: its mask"),
    },
    await goodPng(40, 30),
  );
  const half = new Uint8Array(20 * 20);
  half.fill(255, 0, 200);
  await add(
    {
      id: "mask-wrong-size",
      description: "a 20×20 mask for a 40×30 photo",
      relPath: "subject.mask.png",
      role: "mask",
      scan: { as: "mask", of: "subject" },
      probe: ok,
      load: ok, // a valid mask by itself; only its pairing with the photo is wrong
      prepare: refused("subject.png: its mask subject.mask.png is 20×20 but the photo is 40×30"),
    },
    await raw(half, 20, 20, 1).png().toBuffer(),
  );
  await add(
    {
      id: "photo-with-empty-mask",
      description: "a photo whose mask is all zero",
      relPath: "blank.png",
      ...photoOk,
      prepare: refused("blank.png: its mask"),
    },
    await goodPng(40, 30),
  );
  await add(
    {
      id: "mask-all-zero",
      description: "an all-zero mask of the right size",
      relPath: "blank.mask.png",
      role: "mask",
      scan: { as: "mask", of: "blank" },
      probe: ok,
      load: refused("has no foreground pixels"),
      // The photo is left out with one line, as for a wrong-sized mask (design §6).
      prepare: refused("has no foreground pixels"),
    },
    await raw(new Uint8Array(40 * 30), 40, 30, 1)
      .png()
      .toBuffer(),
  );

  // --- Links and permissions ------------------------------------------------------------------
  const outsideFile = join(outside, "secret.png");
  await writeFile(outsideFile, await goodPng());
  await symlink(outsideFile, join(dir, "link-outside.png"));
  cases.push({
    id: "link-outside",
    description: "a symbolic link to a photo outside the folder",
    path: join(dir, "link-outside.png"),
    relPath: "link-outside.png",
    role: "photo",
    scan: { as: "skipped", kind: "link", line: "link-outside.png: link to a file outside the photo folder" },
    // Given explicitly, a link is followed like any path: the user named it.
    probe: ok,
    load: ok,
    prepare: { ok: false, line: "link-outside.png" },
  });
  const lockedDir = join(dir, "locked");
  await mkdir(lockedDir);
  const inner = join(lockedDir, "inner.png");
  await writeFile(inner, await goodPng());
  await chmod(lockedDir, 0o000);
  const permissionsEnforced = await readdir(lockedDir).then(
    () => false,
    () => true,
  );
  cases.push({
    id: "locked-folder",
    description: permissionsEnforced
      ? "a photo inside a folder with mode 000"
      : "a photo inside a folder with mode 000 (readable anyway: running as root)",
    path: inner,
    relPath: "locked/inner.png",
    role: "photo",
    scan: permissionsEnforced
      ? { as: "skipped", kind: "unreadable", line: "locked/: folder not readable (permission denied)" }
      : { as: "photo" },
    probe: permissionsEnforced ? refused("permission denied") : ok,
    load: permissionsEnforced ? refused("permission denied") : ok,
    // With --recursive.
    prepare: permissionsEnforced ? refused("locked/: folder not readable") : ok,
  });

  return { root, dir, outsideFile, lockedDir, permissionsEnforced, cases };
}

/** Give the locked folder its permissions back so the corpus can be removed. */
export async function unlockCorpus(corpus: HostileCorpus): Promise<void> {
  await chmod(corpus.lockedDir, 0o755).catch(() => undefined);
}

/** sha256 and mtime of every case's file (links: of the link itself and of its target). */
export async function fingerprint(corpus: HostileCorpus): Promise<Map<string, string>> {
  const { createHash } = await import("node:crypto");
  const out = new Map<string, string>();
  const wasLocked = corpus.permissionsEnforced;
  if (wasLocked) await chmod(corpus.lockedDir, 0o755);
  try {
    for (const path of [...corpus.cases.map((c) => c.path), corpus.outsideFile]) {
      const info = await stat(path);
      const hash = createHash("sha256")
        .update(await readFile(path))
        .digest("hex");
      out.set(path, `${hash} ${info.mtimeMs} ${info.mode.toString(8)}`);
    }
  } finally {
    if (wasLocked) await chmod(corpus.lockedDir, 0o000);
  }
  return out;
}
