// `persam-db review` in a real browser (Debian's Chromium via playwright-core), on sets prepared with
// the tiny random model: generated photos (always) and the cat photos of ../shared/fixtures (skipped
// with a message when absent). A click on a photo changes the overlay, the keyboard accepts it, the
// page rebuilds the set, and the accepted mask is then in masks/ (cut as prepare cuts every mask) and
// the photo in metadata.jsonl. The page loads nothing from elsewhere, logs no error, fits 390 and
// 1280 px windows (screenshots in $PERSAM_ARTIFACTS), and every control has a name. Click→overlay
// latencies on a 12 MP photo are measured and printed (width-32 and width-256 decoders); they are
// figures for bench/README.md, never asserted.

import { copyFile, cp, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepare } from "../../src/dataset/prepare.js";
import { loadReviewMask, readReviewDecisions } from "../../src/dataset/review-decisions.js";
import { type ReviewServer, startReviewServer } from "../../src/review/review-server.js";
import { ReviewSet } from "../../src/review/review-set.js";
import { writeTinyModel } from "../../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../../src/segment/sam/embedding-cache.js";
import { SamModel } from "../../src/segment/sam/sam-model.js";
import { REPO_ROOT } from "../support/built-cli.js";
import { CHROMIUM_PATH, chromiumAvailable, launchChromium } from "../support/chromium.js";
import { haveSharedFixtures, persegPath } from "../support/fixtures.js";
import { scene, writeJpeg, writeSceneMask } from "../support/photos.js";
import { trainingMaskDifference } from "../support/review-helpers.js";

const available = chromiumAvailable();
if (!available) {
  console.warn(
    `review-browser: SKIPPED — ${CHROMIUM_PATH} is missing; run .ci/install-chromium to install Debian's chromium`,
  );
}

/** What the page keeps for tests (window.persamReview). */
interface PageHooks {
  readonly latencies: number[];
  readonly serverMs: number[];
  readonly predictions: number;
  readonly ready: boolean;
  readonly rebuilds: number;
  readonly errors: string[];
}
const hooks = (page: Page): Promise<PageHooks> =>
  page.evaluate(() => (globalThis as unknown as { persamReview: PageHooks }).persamReview);

/** A set prepared from `photosDir` with a tiny model of width `embedDim`, opened for review. */
interface Served {
  readonly photosDir: string;
  readonly outDir: string;
  readonly model: SamModel;
  readonly set: ReviewSet;
  readonly server: ReviewServer;
  close(): Promise<void>;
}

async function serve(root: string, photosDir: string, className: string, embedDim = 32): Promise<Served> {
  const files = await writeTinyModel({ dir: join(root, `model-${embedDim}`), embedDim });
  const model = await SamModel.load({ files: { ...files, label: "local files" }, threads: 1 });
  const cache = new EmbeddingCache({ dir: join(root, "embeddings") });
  const result = await prepare({
    inputDir: photosDir,
    model,
    className,
    keepDoubtful: true,
    resolution: 128,
    embeddingCache: cache,
  });
  const set = await ReviewSet.open({ outDir: result.outDir });
  const server = await startReviewServer({ set, model, embeddingCache: cache });
  return {
    photosDir,
    outDir: result.outDir,
    model,
    set,
    server,
    async close() {
      await server.close();
      await set.close();
      await model.dispose();
    },
  };
}

/** Open the page in a new tab; collect console errors and every request that leaves the server. */
async function openPage(
  browser: Browser,
  served: Served,
  width = 1280,
): Promise<{ page: Page; errors: string[]; foreign: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const errors: string[] = [];
  const foreign: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith("data:") && !url.startsWith(`http://127.0.0.1:${served.server.port}/`))
      foreign.push(url);
  });
  await page.goto(served.server.url, { waitUntil: "load" });
  await page.waitForFunction(
    () => (globalThis as unknown as { persamReview?: PageHooks }).persamReview?.ready,
  );
  return { page, errors, foreign };
}

/** Show the photo with this file name (by its button in the list). */
async function showPhoto(page: Page, file: string): Promise<void> {
  await page.locator("#photos button", { hasText: file }).click();
  await expect.poll(() => page.locator("#photo-title").textContent()).toContain(file);
  await page.waitForFunction(() => {
    const img = (
      globalThis as unknown as {
        document: { getElementById(id: string): { complete: boolean; naturalWidth: number } };
      }
    ).document.getElementById("photo");
    return img.complete && img.naturalWidth > 0;
  });
}

/** Click at a fraction of the photo and wait for the new overlay to be shown. */
async function clickPhoto(page: Page, fx: number, fy: number, modifiers: "Shift"[] = []): Promise<void> {
  const before = (await hooks(page)).predictions;
  const box = (await page.locator("#stage").boundingBox())!;
  await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy);
  for (const m of modifiers) await page.keyboard.down(m);
  await page.mouse.down();
  await page.mouse.up();
  for (const m of modifiers) await page.keyboard.up(m);
  await page.waitForFunction(
    (n) => (globalThis as unknown as { persamReview: PageHooks }).persamReview.predictions > n,
    before,
  );
}

async function metadataRows(outDir: string): Promise<{ file_name: string; flags: string[] }[]> {
  return (await readFile(join(outDir, "metadata.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

/**
 * The review loop on one photo: click (the overlay changes), accept with the keyboard, rebuild from
 * the page; the accepted mask is then the photo's training mask and the photo is in metadata.jsonl.
 */
async function reviewLoop(page: Page, served: Served, file: string, stem: string): Promise<void> {
  await showPhoto(page, file);
  const overlay = page.locator("#overlay");
  expect(await overlay.getAttribute("src")).toMatch(/\/mask\?token=/);
  const before = await page.locator("#stage").screenshot();
  await clickPhoto(page, 0.5, 0.55);
  expect(await overlay.getAttribute("src")).toMatch(/^data:image\/png;base64,/);
  const after = await page.locator("#stage").screenshot();
  expect(after.equals(before)).toBe(false);
  expect(await page.locator("#stage circle.marks-pos").count()).toBe(1);
  expect(await page.locator("#choices").isDisabled()).toBe(false);

  await page.locator("#stage").focus();
  await page.keyboard.press("a");
  await expect.poll(() => page.locator("#status").textContent()).toContain("Accepted");
  await expect
    .poll(() => page.locator("#photos button", { hasText: file }).textContent())
    .toContain("rebuild to apply");
  const { decisions } = await readReviewDecisions(served.outDir);
  const override = decisions.photos[stem]?.override;
  expect(override?.prompt?.clicks).toHaveLength(1);

  const rebuilds = (await hooks(page)).rebuilds;
  await page.locator("#rebuild").click();
  await page.waitForFunction(
    (n) => (globalThis as unknown as { persamReview: PageHooks }).persamReview.rebuilds > n,
    rebuilds,
    { timeout: 120_000 },
  );
  await expect.poll(() => page.locator("#rebuild-status").textContent()).toContain("Rebuilt:");
  const mask = await loadReviewMask(served.outDir, override!);
  expect(
    await trainingMaskDifference({
      outDir: served.outDir,
      stem,
      photoPath: join(served.photosDir, file),
      fullMask: mask,
    }),
  ).toBe(0);
  const row = (await metadataRows(served.outDir)).find((r) => r.file_name === `images/${stem}.png`);
  expect(row?.flags).toEqual(["override"]);
  await expect
    .poll(() => page.locator("#photos button", { hasText: file }).textContent())
    .not.toContain("rebuild to apply");
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * `clicks` clicks on the photo shown, each waited for: the page's click→overlay times, and the
 * server's share of each (decoder pass, masks at display size, PNGs).
 */
async function measureClicks(page: Page, clicks: number): Promise<{ times: number[]; server: number[] }> {
  const start = (await hooks(page)).latencies.length;
  for (let i = 0; i < clicks; i++) {
    // Clear, then one click somewhere new: every measured click is one decoder pass.
    await page.keyboard.press("r");
    await clickPhoto(
      page,
      0.2 + (0.6 * ((i * 7) % clicks)) / clicks,
      0.25 + (0.5 * ((i * 11) % clicks)) / clicks,
    );
  }
  const h = await hooks(page);
  return { times: h.latencies.slice(start), server: h.serverMs.slice(start) };
}

function describeTimes(what: string, m: { times: number[]; server: number[] }): string {
  const f = (v: number): string => v.toFixed(1);
  return `review-browser: click→overlay, ${what}, ${m.times.length} clicks: p50 ${f(percentile(m.times, 50))} ms, p95 ${f(percentile(m.times, 95))} ms (server: p50 ${f(percentile(m.server, 50))} ms, p95 ${f(percentile(m.server, 95))} ms)`;
}

async function artifactsDir(): Promise<string> {
  const dir = process.env.PERSAM_ARTIFACTS ?? (await mkdtemp(join(tmpdir(), "persam-artifacts-")));
  await mkdir(dir, { recursive: true });
  return dir;
}

describe.skipIf(!available)("review in Chromium: generated photos", () => {
  let root: string;
  let browser: Browser;
  let served: Served;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "persam-review-browser-"));
    const photos = join(root, "red balls");
    await mkdir(photos);
    await writeJpeg(join(photos, "ball-1.jpg"), scene({ width: 640, height: 480, at: [0.4, 0.5], seed: 1 }));
    await writeSceneMask(join(photos, "ball-1.mask.png"), { width: 640, height: 480, at: [0.4, 0.5] });
    await writeJpeg(join(photos, "ball-2.jpg"), scene({ width: 480, height: 640, at: [0.5, 0.6], seed: 2 }));
    // 12 MP, as phones take them: the page gets it at 1280 px, the masks too.
    await writeJpeg(
      join(photos, "ball-3.jpg"),
      scene({ width: 4032, height: 3024, at: [0.55, 0.5], seed: 3 }),
    );
    served = await serve(root, photos, "ball");
    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("click, see the overlay change, accept, rebuild: the mask is in masks/ and the photo in metadata.jsonl", async () => {
    const { page, errors, foreign } = await openPage(browser, served);
    expect(await page.locator("#set-name").textContent()).toBe("— red balls.persam");
    expect(await page.locator("#photos li").count()).toBe(3);
    await reviewLoop(page, served, "ball-2.jpg", "ball-2");
    expect((await hooks(page)).errors).toEqual([]);
    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
    await page.close();
  }, 180_000);

  it("works from the keyboard: next / previous photo, exclude, accept; a box and a point off the subject", async () => {
    const { page, errors } = await openPage(browser, served);
    await showPhoto(page, "ball-1.jpg");
    await page.locator("#stage").focus();
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => page.locator("#photo-title").textContent()).toContain("ball-2.jpg");
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => page.locator("#photo-title").textContent()).toContain("ball-3.jpg");
    await page.keyboard.press("ArrowLeft");
    await expect.poll(() => page.locator("#photo-title").textContent()).toContain("ball-2.jpg");
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("x");
    await expect.poll(() => page.locator("#status").textContent()).toContain("Excluded");
    expect((await readReviewDecisions(served.outDir)).decisions.photos["ball-1"]?.decision).toBe("exclude");
    await page.keyboard.press("a");
    await expect.poll(() => page.locator("#status").textContent()).toContain("Accepted as it is");
    expect((await readReviewDecisions(served.outDir)).decisions.photos["ball-1"]?.decision).toBe("include");

    // A drag draws a box; a shift-click adds a point off the subject; undo takes the last one back.
    const box = (await page.locator("#stage").boundingBox())!;
    const before = (await hooks(page)).predictions;
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5, { steps: 5 });
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.8, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(
      (n) => (globalThis as unknown as { persamReview: PageHooks }).persamReview.predictions > n,
      before,
    );
    expect(await page.locator("#stage rect.marks-box").count()).toBe(1);
    await clickPhoto(page, 0.9, 0.9, ["Shift"]);
    expect(await page.locator("#stage circle.marks-neg").count()).toBe(1);
    await page.keyboard.press("z");
    await expect.poll(() => page.locator("#stage circle.marks-neg").count()).toBe(0);
    await page.keyboard.press("2");
    expect(await page.locator("#choices input:checked").getAttribute("value")).toBe("1");
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it("names every control, fits 390 and 1280 px windows; screenshots kept", async () => {
    const { page, errors } = await openPage(browser, served);
    await showPhoto(page, "ball-3.jpg");
    await clickPhoto(page, 0.55, 0.5);
    const unnamed = await page.evaluate(() => {
      const d = (
        globalThis as unknown as {
          document: {
            querySelectorAll(s: string): Iterable<{
              textContent: string | null;
              getAttribute(n: string): string | null;
              id: string;
              closest(s: string): { textContent: string | null } | null;
            }>;
          };
        }
      ).document;
      const out: string[] = [];
      for (const e of d.querySelectorAll("button, input, [tabindex]")) {
        const name =
          (e.getAttribute("aria-label") ?? "") ||
          (e.closest("label")?.textContent ?? "") ||
          (e.textContent ?? "");
        if (name.trim() === "") out.push(e.id || "?");
      }
      return out;
    });
    expect(unnamed).toEqual([]);
    const dir = await artifactsDir();
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 900 });
      await page.waitForTimeout(100);
      const overflow = await page.evaluate(() => {
        const w = globalThis as unknown as {
          innerWidth: number;
          document: {
            documentElement: { scrollWidth: number };
            querySelectorAll(s: string): Iterable<{
              getBoundingClientRect(): { left: number; right: number; width: number };
              closest(s: string): unknown;
              tagName: string;
              id: string;
            }>;
          };
        };
        const wide: string[] = [];
        for (const e of w.document.querySelectorAll("body *")) {
          if (e.closest("svg") && e.tagName !== "svg") continue;
          const r = e.getBoundingClientRect();
          if (r.width > 0 && (r.right > w.innerWidth + 0.5 || r.left < -0.5))
            wide.push(`${e.tagName}#${e.id} ${Math.round(r.left)}–${Math.round(r.right)}`);
        }
        return { scrollWidth: w.document.documentElement.scrollWidth, innerWidth: w.innerWidth, wide };
      });
      expect(overflow.wide, `${width} px`).toEqual([]);
      expect(overflow.scrollWidth).toBeLessThanOrEqual(overflow.innerWidth);
      // The photo and its controls are on screen at both widths.
      const stage = (await page.locator("#stage").boundingBox())!;
      expect(stage.width).toBeGreaterThan(200);
      expect(await page.locator("#accept").isVisible()).toBe(true);
      const path = join(dir, `review-${width}.png`);
      await page.screenshot({ path, fullPage: width === 390 });
      console.log(`review-browser: screenshot written to ${path}`);
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it("measures click→overlay on a 12 MP photo (width-32 test decoder; printed, not asserted)", async () => {
    const { page } = await openPage(browser, served);
    await showPhoto(page, "ball-3.jpg");
    await clickPhoto(page, 0.5, 0.5); // the first click waits for the embedding
    const measured = await measureClicks(page, 30);
    console.log(describeTimes("12 MP photo, width-32 test decoder", measured));
    expect(measured.times).toHaveLength(30);
    await page.close();
  }, 180_000);
});

describe.skipIf(!available)("review in Chromium: SAM-size decoder", () => {
  let root: string;
  let browser: Browser;
  let served: Served;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "persam-review-latency-"));
    const photos = join(root, "big ball");
    await mkdir(photos);
    await writeJpeg(join(photos, "ball.jpg"), scene({ width: 4032, height: 3024, at: [0.5, 0.5], seed: 4 }));
    // The decoder of every SAM (SlimSAM included) is 256 wide; the tiny encoder only fills the cache.
    served = await serve(root, photos, "ball", 256);
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("measures click→overlay on a 12 MP photo with a width-256 decoder (printed, not asserted)", async () => {
    const { page } = await openPage(browser, served);
    await showPhoto(page, "ball.jpg");
    await clickPhoto(page, 0.5, 0.5);
    const measured = await measureClicks(page, 30);
    console.log(describeTimes("12 MP photo, width-256 (SAM-size) decoder", measured));
    expect(measured.times).toHaveLength(30);
    await page.close();
  }, 240_000);
});

describe.skipIf(!available)("review in Chromium: the bundled example (the README's picture)", () => {
  let root: string;
  let browser: Browser;
  let served: Served;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "persam-review-example-"));
    const photos = join(root, "toy-robot");
    await cp(join(REPO_ROOT, "examples", "toy-robot"), photos, { recursive: true });
    served = await serve(root, photos, "robot");
    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("a click on a robot, at 1280 px: examples/review.png is this screenshot", async () => {
    const { page, errors } = await openPage(browser, served);
    await showPhoto(page, "robot-02.jpg");
    await clickPhoto(page, 0.33, 0.55);
    const dir = await artifactsDir();
    const path = join(dir, "review-toy-robot.png");
    await page.screenshot({ path });
    console.log(`review-browser: screenshot written to ${path}`);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});

const fixtures = available && haveSharedFixtures("review-browser");

describe.skipIf(!fixtures)("review in Chromium: the cat photos of the shared fixtures", () => {
  let root: string;
  let browser: Browser;
  let served: Served;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "persam-review-cat-"));
    const photos = join(root, "cat");
    await mkdir(photos);
    for (const index of ["00", "01", "02"])
      await copyFile(persegPath("Images", "cat", index), join(photos, `${index}.jpg`));
    // The annotated mask of 00 (PerSeg's red 128 on black) as its reference mask.
    await copyFile(persegPath("Annotations", "cat", "00"), join(photos, "00.mask.png"));
    served = await serve(root, photos, "cat");
    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("click on a cat photo, accept, rebuild: the mask is in masks/ and the photo in metadata.jsonl", async () => {
    const { page, errors, foreign } = await openPage(browser, served);
    await reviewLoop(page, served, "01.jpg", "01");
    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
    // The reference photo with its annotated mask, at 1280 px: the picture of the README.
    await showPhoto(page, "00.jpg");
    const dir = await artifactsDir();
    const path = join(dir, "review-cat-1280.png");
    await page.screenshot({ path });
    console.log(`review-browser: screenshot written to ${path}`);
    await page.close();
  }, 180_000);
});
