// report.html in a real browser (Debian's Chromium via playwright-core): a report of four photos
// (real JPEG thumbnails and PNG masks made with sharp, training images beside it in images/, one
// doubtful photo, one skipped photo with a hostile name) opened from disk. Every image must decode,
// every overlay must have a size, the banners and doubtful/skipped marks must be visible, nothing may
// log an error, the hostile name must show as text without running, and at 1280 and 390 px no
// element may reach past the window's width. Full-page screenshots at both widths are kept in
// $PERSAM_ARTIFACTS (or a temp folder).

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type PhotoReport,
  type PrepareReport,
  type ReportThumbnail,
  renderReportHtml,
} from "../../src/dataset/report.js";
import { encodeJpeg, encodePng } from "../../src/image/image-io.js";
import { CHROMIUM_PATH, chromiumAvailable, launchChromium } from "../support/chromium.js";

const HOSTILE = `"><script>window.pwned=1</script><img src=x onerror="window.pwned=2"> it's 'odd' 猫🐈 Ünïcödé.heic`;
const HOSTILE_OTHER = `<svg onload="window.pwned=3">notes "draft".txt`;

/**
 * The few browser globals the page functions below use (tsconfig has no "dom" lib). Those functions
 * are serialised and run in the page, so each one casts `globalThis` itself.
 */
interface PageNode {
  readonly textContent: string | null;
  readonly firstChild: PageNode | null;
  getAttribute(name: string): string | null;
}
interface PageWindow {
  readonly document: {
    querySelectorAll(selector: string): Iterable<PageNode>;
    querySelector(selector: string): PageNode | null;
    readonly images: Iterable<{ readonly src: string; readonly naturalWidth: number }>;
    readonly scripts: { readonly length: number };
  };
  readonly Image: new () => {
    src: string;
    readonly naturalWidth: number;
    readonly naturalHeight: number;
    decode(): Promise<void>;
  };
  getComputedStyle(element: unknown): { readonly color: string; readonly backgroundColor: string };
  readonly pwned?: unknown;
}

const available = chromiumAvailable();
if (!available) {
  console.warn(
    `report-browser: SKIPPED — ${CHROMIUM_PATH} is missing; run .ci/install-chromium to install Debian's chromium`,
  );
}

/** A subject (an ellipse in `color`) on a gradient with stripes; its mask (255 = subject). */
function scene(params: {
  width: number;
  height: number;
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  color: readonly [number, number, number];
}): { rgb: Uint8Array; mask: Uint8Array } {
  const { width, height, cx, cy, rx, ry, color } = params;
  const rgb = new Uint8Array(width * height * 3);
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
      const stripe = Math.floor((x + y) / 12) % 2 === 0 ? 18 : 0;
      const bg: [number, number, number] = [
        90 + Math.round((110 * x) / width) + stripe,
        130 + Math.round((70 * y) / height),
        160 - stripe,
      ];
      const shade = inside ? 0.75 + 0.25 * (1 - (y - cy + ry) / (2 * ry)) : 1;
      const c = inside ? color.map((v) => Math.round(v * shade)) : bg;
      rgb[3 * i] = c[0]!;
      rgb[3 * i + 1] = c[1]!;
      rgb[3 * i + 2] = c[2]!;
      mask[i] = inside ? 255 : 0;
    }
  }
  return { rgb, mask };
}

/** Thumbnails at 1/4 of the photo size, as `prepare` embeds them. */
async function thumbnail(
  photoW: number,
  photoH: number,
  subject: { cx: number; cy: number; rx: number; ry: number; color: readonly [number, number, number] },
): Promise<ReportThumbnail> {
  const width = Math.round(photoW / 4);
  const height = Math.round(photoH / 4);
  const s = scene({
    width,
    height,
    cx: subject.cx / 4,
    cy: subject.cy / 4,
    rx: subject.rx / 4,
    ry: subject.ry / 4,
    color: subject.color,
  });
  return {
    photo: { bytes: await encodeJpeg({ data: s.rgb, width, height, channels: 3 }, 80), mime: "image/jpeg" },
    mask: { bytes: await encodePng({ data: s.mask, width, height, channels: 1 }), mime: "image/png" },
  };
}

function photo(over: Partial<PhotoReport> & Pick<PhotoReport, "stem" | "file" | "status">): PhotoReport {
  return { flags: [], points: [], timingsMs: {}, ...over };
}

async function fixture(): Promise<{ report: PrepareReport; thumbnails: Map<string, ReportThumbnail> }> {
  const thumbnails = new Map<string, ReportThumbnail>();
  thumbnails.set(
    "cat-01",
    await thumbnail(1280, 960, { cx: 620, cy: 520, rx: 260, ry: 300, color: [214, 120, 40] }),
  );
  thumbnails.set(
    "cat-02",
    await thumbnail(960, 1280, { cx: 470, cy: 700, rx: 300, ry: 380, color: [200, 110, 50] }),
  );
  thumbnails.set(
    "cat-03-blurry",
    await thumbnail(1280, 960, { cx: 1150, cy: 480, rx: 200, ry: 260, color: [190, 100, 60] }),
  );
  const report: PrepareReport = {
    version: 1,
    createdAt: "2025-06-01T10:20:30.000Z",
    tool: "persam-db 0.1.0",
    // Long names without a space, as phones and exports make them: they must wrap on a phone.
    input: "Mochi_the_cat_on_the_balcony_2025-06-01_all_photos",
    output: "Mochi_the_cat_on_the_balcony_2025-06-01_all_photos.persam",
    settings: {
      class: "cat",
      caption: "a photo of sks cat with a rather long caption that must wrap on a phone screen",
      testModel: true,
      trainer: "all",
      model: "slimsam-77",
      resolution: 512,
      background: "white",
      token: "sks",
      persamF: true,
      seed: null,
    },
    reference: {
      stem: "cat-01",
      file: "cat-01.jpg",
      method: "point",
      points: [
        { x: 620, y: 520, label: 1 },
        { x: 120, y: 100, label: 0 },
      ],
      width: 1280,
      height: 960,
    },
    photos: [
      photo({
        stem: "cat-01",
        file: "cat-01.jpg",
        status: "ok",
        width: 1280,
        height: 960,
        confidence: 0.97,
        area: 0.2,
        points: [{ x: 620, y: 520, label: 1 }],
        box: [360, 220, 880, 820],
        crop: { left: 260, top: 160, width: 720, height: 720 },
        outputs: {
          image: "images/cat-01.png",
          mask: "masks/cat-01.png",
          weight: "weights/cat-01.png",
          rgba: "rgba/cat-01.png",
          caption: "images/cat-01.txt",
        },
        timingsMs: { load: 31, encode: 812.4, segment: 95.2, write: 40 },
      }),
      photo({
        stem: "cat-02",
        file: "cat-02.jpg",
        status: "ok",
        width: 960,
        height: 1280,
        confidence: 0.91,
        area: 0.29,
        points: [
          { x: 470, y: 700, label: 1 },
          { x: 80, y: 90, label: 0 },
        ],
        box: [170, 320, 770, 1080],
        crop: { left: 90, top: 310, width: 780, height: 780 },
        outputs: {
          image: "images/cat-02.png",
          mask: "masks/cat-02.png",
          weight: "weights/cat-02.png",
          rgba: "rgba/cat-02.png",
          caption: "captions/cat-02.txt",
        },
        timingsMs: { loadMs: 28, encodeMs: 790, attnSimMs: 12, decoderMs: 88 },
      }),
      photo({
        stem: "cat-03-blurry",
        file: "cat-03 blurry.jpg",
        status: "doubtful",
        reason: "confidence 0.31 is below 0.5",
        width: 1280,
        height: 960,
        confidence: 0.31,
        area: 0.13,
        flags: ["low-confidence", "cuts-subject", "margin-reduced"],
        points: [{ x: 1150, y: 480, label: 1 }],
        box: [950, 220, 1279, 740],
        crop: { left: 760, top: 200, width: 520, height: 520 },
        timingsMs: { load: 30, encode: 801, segment: 90 },
      }),
      photo({
        stem: "photo-4",
        file: HOSTILE,
        status: "skipped",
        reason: "HEIC/HEIF photos are not supported — convert it to JPEG or PNG",
        flags: [],
        timingsMs: { load: 2 },
      }),
    ],
    skippedFiles: [{ path: HOSTILE_OTHER, reason: "not an image" }],
    // A phone clip's frame table: the longest reasons the choice gives, on a 390 px screen too.
    videos: [
      {
        file: "VID_20240611_181502_with_a_long_name.mp4",
        duration: 21.4,
        width: 1080,
        height: 1920,
        rotation: 90,
        frameRate: 29.97,
        codec: "hevc",
        hdr: "hlg",
        fps: 2,
        wanted: 12,
        candidates: [
          {
            index: 0,
            time: 0,
            chosen: true,
            reason: "chosen: best frame",
            score: 0.91,
            similarity: 0.88,
            confidence: 0.9,
            sharpness: 1,
            stem: "VID_20240611_181502_with_a_long_name-t000.0",
          },
          {
            index: 1,
            time: 0.5,
            chosen: false,
            reason: "within 0.9 s of the chosen frame at 0.0 s",
            score: 0.8,
            similarity: 0.87,
            confidence: 0.8,
            sharpness: 0.9,
          },
          {
            index: 2,
            time: 1,
            chosen: false,
            reason: "no subject: similarity 0.31, below 0.75",
            score: 0.2,
            similarity: 0.31,
            confidence: 0.1,
            sharpness: 0.4,
          },
          {
            index: 3,
            time: 1.5,
            chosen: false,
            reason: "blurry: sharpness 12% of the sharpest frame",
            score: 0.3,
            similarity: 0.86,
            confidence: 0.7,
            sharpness: 0.12,
          },
          {
            index: 4,
            time: 2,
            chosen: true,
            reason: "chosen to fill up (subject at the edge)",
            score: 0.6,
            similarity: 0.85,
            confidence: 0.6,
            sharpness: 0.8,
            stem: "VID_20240611_181502_with_a_long_name-t002.0",
          },
        ],
        timingsMs: { chooseMs: 5000, fullFramesMs: 900 },
      },
    ],
    varied: { count: 3, curated: false },
    timingsMs: { total: 4123, model: 950 },
  };
  return { report, thumbnails };
}

describe.skipIf(!available)("report.html in Chromium", () => {
  let browser: Browser;
  let page: Page;
  let work: string;
  const consoleErrors: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "persam-report-browser-"));
    // A folder name with a space and non-ASCII letters, as a user's would be.
    const dir = join(work, "Mochi dataset ü");
    await mkdir(dir);
    const { report, thumbnails } = await fixture();
    const file = join(dir, "report.html");
    await writeFile(file, renderReportHtml({ report, thumbnails }));
    // The training images the report links to, as prepare writes them beside it.
    await mkdir(join(dir, "images"));
    for (const [stem, color] of [
      ["cat-01", [214, 120, 40]],
      ["cat-02", [200, 110, 50]],
    ] as const) {
      const s = scene({ width: 128, height: 128, cx: 64, cy: 64, rx: 40, ry: 50, color });
      for (let i = 0; i < s.mask.length; i++) if (!s.mask[i]) s.rgb.fill(255, 3 * i, 3 * i + 3);
      await writeFile(
        join(dir, "images", `${stem}.png`),
        await encodePng({ data: s.rgb, width: 128, height: 128, channels: 3 }),
      );
    }
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") consoleErrors.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on("request", (r) => {
      if (!r.url().startsWith("data:")) requests.push(r.url());
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  });

  afterAll(async () => {
    await browser?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("loads every image: thumbnails and masks decode, nothing else is requested", async () => {
    const images = await page.evaluate(async () => {
      const { document, Image } = globalThis as unknown as PageWindow;
      const hrefs = [...document.querySelectorAll("svg image")].map((e) => e.getAttribute("href") ?? "");
      const sizes = await Promise.all(
        hrefs.map(async (href) => {
          const img = new Image();
          img.src = href;
          try {
            await img.decode();
          } catch {
            return { prefix: href.slice(0, 22), width: 0, height: 0 };
          }
          return { prefix: href.slice(0, 22), width: img.naturalWidth, height: img.naturalHeight };
        }),
      );
      const imgs = [...document.images].map((i) => ({ src: i.src, width: i.naturalWidth }));
      return { sizes, imgs };
    });
    // 3 photos × (photo + mask drawn as tint source and outline) + the reference (photo + mask × 2).
    expect(images.sizes).toHaveLength(4 * 3);
    for (const s of images.sizes) {
      expect(s.prefix).toMatch(/^data:image\/(jpeg|png);base64/);
      expect(s.width).toBeGreaterThan(0);
      expect(s.height).toBeGreaterThan(0);
    }
    // The two training images, and no other <img>: in particular the one in the hostile name stayed text.
    for (const i of images.imgs) expect(i.width, i.src).toBeGreaterThan(0);
    expect(images.imgs.map((i) => i.src.replace(/^.*\//, ""))).toEqual(["cat-01.png", "cat-02.png"]);
    // Only the page and its training images were fetched, from beside it (no network).
    expect(requests).toHaveLength(3);
    expect(requests[0]).toMatch(/^file:\/\/.*report\.html$/);
    for (const r of requests.slice(1)) expect(r).toMatch(/^file:\/\/.*\/images\/cat-0[12]\.png$/);
  });

  it("draws the SVG overlays with a size, and the photo pixels in them", async () => {
    const boxes = await page.$$eval("svg.overlay", (svgs) =>
      svgs.map((s) => {
        const r = s.getBoundingClientRect();
        return { width: r.width, height: r.height, label: s.getAttribute("aria-label") ?? "" };
      }),
    );
    expect(boxes).toHaveLength(4); // the reference + three photos; the skipped photo has none
    for (const b of boxes) {
      expect(b.width, b.label).toBeGreaterThan(50);
      expect(b.height, b.label).toBeGreaterThan(50);
    }
    // Portrait stays portrait, landscape stays landscape.
    expect(boxes[2]!.height).toBeGreaterThan(boxes[2]!.width);
    expect(boxes[1]!.width).toBeGreaterThan(boxes[1]!.height);
    // Crop rectangles, boxes and points are in the overlays.
    expect(await page.locator("figure svg rect.crop").count()).toBe(3);
    expect(await page.locator("figure svg rect.box").count()).toBe(3);
    expect(await page.locator("svg g.pos").count()).toBe(4);
    expect(await page.locator("svg g.neg").count()).toBe(2);
    for (const sel of ["figure svg rect.crop", "svg g.pos circle"]) {
      const r = await page.locator(sel).first().boundingBox();
      expect(r?.width ?? 0, sel).toBeGreaterThan(0);
      expect(r?.height ?? 0, sel).toBeGreaterThan(0);
    }
    // The photo really is painted: the rendered overlay has many different colours.
    const shot = await page.locator("figure.photo svg.overlay").first().screenshot();
    const { default: sharp } = await import("sharp");
    const { data, info } = await sharp(shot).raw().toBuffer({ resolveWithObject: true });
    const colours = new Set<number>();
    for (let i = 0; i < data.length; i += info.channels) {
      colours.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
    }
    expect(colours.size).toBeGreaterThan(200);
  });

  it("shows the doubtful and skipped photos visibly", async () => {
    const doubtful = page.locator("figure.doubtful");
    await expect.poll(() => doubtful.count()).toBe(1);
    expect(await doubtful.locator(".badge").isVisible()).toBe(true);
    expect(await doubtful.locator(".badge").textContent()).toBe("doubtful");
    expect(await doubtful.locator(".flags").isVisible()).toBe(true);
    expect(await doubtful.locator(".flags").textContent()).toBe(
      "low-confidence, cuts-subject, margin-reduced",
    );
    expect(await doubtful.locator(".reason").textContent()).toBe("confidence 0.31 is below 0.5");

    const skipped = page.locator("figure.skipped");
    expect(await skipped.count()).toBe(1);
    expect(await skipped.locator(".badge").isVisible()).toBe(true);
    expect(await skipped.locator(".badge").textContent()).toBe("skipped");
    expect(await skipped.locator(".reason").isVisible()).toBe(true);
    expect(await skipped.locator(".noimg").isVisible()).toBe(true);
    expect(await skipped.locator(".reason").textContent()).toContain("HEIC/HEIF photos are not supported");
    // Badges stand out from the card: white text on a coloured pill.
    const colours = await skipped.locator(".badge").evaluate((e) => {
      const style = (globalThis as unknown as PageWindow).getComputedStyle(e);
      return [style.color, style.backgroundColor];
    });
    expect(colours[0]).toBe("rgb(255, 255, 255)");
    expect(colours[1]).not.toBe("rgba(0, 0, 0, 0)");
    expect(await page.locator("body").textContent()).toContain(
      "4 photos: 2 ok, 1 doubtful, 1 skipped · 1 other file ignored",
    );
  });

  it("shows hostile file names as text and runs no script", async () => {
    const state = await page.evaluate(() => {
      const w = globalThis as unknown as PageWindow;
      return {
        pwned: w.pwned,
        scripts: w.document.scripts.length,
        skippedName: w.document.querySelector("figure.skipped strong")?.textContent,
        otherFile: w.document.querySelector("ul.others li")?.firstChild?.textContent,
      };
    });
    expect(state.pwned).toBeUndefined();
    expect(state.scripts).toBe(0);
    expect(state.skippedName).toBe(HOSTILE);
    expect(state.otherFile).toBe(`${HOSTILE_OTHER} — `);
    expect(await page.getByText("猫🐈 Ünïcödé.heic").isVisible()).toBe(true);
  });

  it("shows the banners, the class, next steps and a legend of the flags", async () => {
    expect(await page.locator(".banner.test-model").isVisible()).toBe(true);
    expect(await page.locator(".banner.test-model").textContent()).toContain("tiny random test model");
    expect(await page.locator(".banner.doubtful-photos").textContent()).toContain("1 doubtful photo");
    expect(await page.locator("strong.class").textContent()).toBe("cat");
    expect(await page.locator(".next").textContent()).toContain("bash train.sh");
    expect(await page.locator(".next").textContent()).toContain("--ref-point");
    for (const flag of ["cuts-subject", "margin-reduced", "low-confidence"]) {
      expect(await page.locator(".legend dt.used", { hasText: flag }).count(), flag).toBe(1);
    }
    // Timings are folded away, under readable names.
    const timings = page.locator("figure.photo").nth(1).locator("details.timings");
    expect(await timings.locator("table").isVisible()).toBe(false);
    await timings.locator("summary").click();
    expect(await timings.locator("table").textContent()).toContain("attention bias");
    await timings.locator("summary").click();
  });

  it.each([1280, 390])(
    "fits a %i px window: no element reaches past its width; screenshot kept",
    async (width) => {
      await page.setViewportSize({ width, height: 900 });
      const overflow = await page.evaluate(() => {
        const w = globalThis as unknown as {
          innerWidth: number;
          document: {
            documentElement: { scrollWidth: number };
            querySelectorAll(s: string): Iterable<{
              getBoundingClientRect(): { left: number; right: number; width: number };
              closest(s: string): unknown;
              tagName: string;
              className: unknown;
            }>;
          };
        };
        const wide: string[] = [];
        for (const e of w.document.querySelectorAll("body *")) {
          // Inside <defs> (SVG masks and filters) nothing is laid out.
          if (e.closest("defs")) continue;
          const r = e.getBoundingClientRect();
          if (r.width > 0 && (r.right > w.innerWidth + 0.5 || r.left < -0.5))
            wide.push(`${e.tagName}.${String(e.className)} ${Math.round(r.left)}–${Math.round(r.right)}`);
        }
        return { scrollWidth: w.document.documentElement.scrollWidth, innerWidth: w.innerWidth, wide };
      });
      expect(overflow.wide).toEqual([]);
      expect(overflow.scrollWidth).toBeLessThanOrEqual(overflow.innerWidth);
      const dir = process.env.PERSAM_ARTIFACTS ?? (await mkdtemp(join(tmpdir(), "persam-artifacts-")));
      await mkdir(dir, { recursive: true });
      const path = join(dir, `report-${width}.png`);
      await page.screenshot({ path, fullPage: true });
      console.log(`report-browser: screenshot written to ${path}`);
    },
  );

  it("logs no console errors", () => {
    expect(consoleErrors).toEqual([]);
  });
});
