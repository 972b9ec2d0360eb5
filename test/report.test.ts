import { describe, expect, it } from "vitest";
import {
  escapeHtml,
  FLAG_LEGEND,
  type PhotoReport,
  type PrepareReport,
  renderReportHtml,
  summaryTable,
  timingName,
} from "../src/dataset/report.js";
import { terminalSafe } from "../src/util/terminal-text.js";

const hostile = `"><script>alert('x')</script> & <img src=x onerror=alert(1)> 猫🐈.jpg`;

function photo(over: Partial<PhotoReport> & Pick<PhotoReport, "stem" | "file" | "status">): PhotoReport {
  return { flags: [], points: [], timingsMs: {}, ...over };
}

function report(): PrepareReport {
  return {
    version: 1,
    createdAt: "2025-01-02T03:04:05.000Z",
    tool: "persam-db 0.1.0",
    input: "./my <cat>",
    output: "./my <cat>.persam",
    settings: {
      model: "slimsam-77",
      resolution: 512,
      background: "white",
      token: 'sks"<',
      persamF: false,
      seed: null,
    },
    reference: { stem: "a", file: "a.jpg", method: "auto", score: 0.8765, width: 400, height: 300 },
    photos: [
      photo({
        stem: "a",
        file: "a.jpg",
        status: "ok",
        width: 400,
        height: 300,
        confidence: 0.93,
        area: 0.21,
        points: [
          { x: 120, y: 80, label: 1 },
          { x: 10, y: 10, label: 0 },
        ],
        box: [60, 40, 220, 200],
        crop: { left: 40, top: 20, width: 200, height: 200 },
        timingsMs: { encode: 812.4, segment: 95.2 },
      }),
      photo({
        stem: "we-ird",
        file: hostile,
        status: "doubtful",
        width: 300,
        height: 400,
        confidence: 0.31,
        area: 0.02,
        flags: ["low-confidence", "<flag>"],
      }),
      photo({
        stem: "broken",
        file: "broken.jpg",
        status: "skipped",
        reason: "Cannot decode JPEG image broken.jpg: <truncated>",
      }),
    ],
    skippedFiles: [{ path: "notes.jpg", reason: "notes.jpg is not an image & never was" }],
    timingsMs: { total: 4321 },
  };
}

/** Every `<` in the page starts a tag we write ourselves (no injected element or attribute). */
function tagNames(html: string): Set<string> {
  return new Set([...html.matchAll(/<\/?([a-zA-Z][a-zA-Z0-9]*)/g)].map((m) => m[1]!.toLowerCase()));
}

describe("renderReportHtml", () => {
  const png = { bytes: new Uint8Array([137, 80, 78, 71, 1, 2, 3]), mime: "image/png" as const };

  it("renders one figure per photo with overlays, confidence, flags and reasons", () => {
    const html = renderReportHtml({
      report: report(),
      thumbnails: new Map([
        ["a", { photo: { bytes: new Uint8Array([255, 216, 255]), mime: "image/jpeg" }, mask: png }],
      ]),
    });
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html.match(/<figure\b/g)).toHaveLength(3);
    expect(html).toContain('<figure class="photo ok">');
    expect(html).toContain('<figure class="photo doubtful">');
    expect(html).toContain('<figure class="photo skipped">');
    // Thumbnails embedded as data URIs (no external reference of any kind).
    expect(html).toContain(`data:image/jpeg;base64,${Buffer.from([255, 216, 255]).toString("base64")}`);
    expect(html).toContain(`data:image/png;base64,${Buffer.from(png.bytes).toString("base64")}`);
    expect(html).not.toMatch(/(src|href)="(https?:|\/\/)/);
    expect(html).not.toContain("<script");
    // Overlays: crop rectangle, subject box, one positive and one negative point, mask tint.
    expect(html).toContain('<rect class="crop" x="40" y="20" width="200" height="200"/>');
    expect(html).toContain('<rect class="box" x="60" y="40" width="161" height="161"/>');
    expect(html.match(/<g class="pos">/g)).toHaveLength(1);
    expect(html.match(/<g class="neg">/g)).toHaveLength(1);
    expect(html).toContain('mask="url(#p0-m)"');
    // Numbers and reference method.
    expect(html).toContain("confidence 0.93");
    expect(html).toContain("chosen automatically (score 0.88)");
    expect(html).toContain("<tr><th>encode</th><td>812 ms</td></tr>");
    expect(html).toContain("low-confidence, &#60;flag&#62;");
  });

  it("escapes every string from the report: names with quotes, <, & and unicode", () => {
    const html = renderReportHtml({ report: report() });
    expect(html).not.toContain("<script>alert");
    expect(html).not.toContain("<img src=x");
    expect(html).not.toContain("<cat>");
    expect(html).not.toContain("<truncated>");
    expect(html).toContain(escapeHtml(hostile));
    expect(html).toContain("猫🐈.jpg");
    expect(html).toContain("./my &#60;cat&#62;");
    expect(html).toContain("sks&#34;&#60;");
    expect(html).toContain("is not an image &#38; never was");
    expect([...tagNames(html)].sort()).toEqual(
      [
        "body",
        "br",
        "circle",
        "code",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "g",
        "h1",
        "h2",
        "head",
        "header",
        "html",
        "li",
        "meta",
        "ol",
        "p",
        "path",
        "rect",
        "section",
        "span",
        "strong",
        "style",
        "summary",
        "svg",
        "table",
        "tbody",
        "td",
        "th",
        "title",
        "tr",
        "ul",
      ].sort(),
    );
  });

  it("warns about the test model and doubtful photos in banners, and shows the class", () => {
    const base = report();
    const html = renderReportHtml({
      report: {
        ...base,
        settings: { ...base.settings, testModel: true, class: "cat", caption: "a photo of sks cat" },
      },
    });
    expect(html).toMatch(
      /<p class="banner test-model" role="alert"><strong>Test model\.<\/strong> These masks come from persam-db's tiny random test model/,
    );
    expect(html).toContain(
      '<p class="banner doubtful-photos" role="status"><strong>1 doubtful photo.</strong>',
    );
    expect(html).toContain('Class: <strong class="class">cat</strong> · caption “a photo of sks cat”');
    const clean = renderReportHtml({
      report: { ...base, settings: { ...base.settings, testModel: false }, photos: [base.photos[0]!] },
    });
    expect(clean).not.toContain('class="banner');
  });

  it("shows each photo's training image beside its overlay, linked relative to the report", () => {
    const base = report();
    const outputs = {
      image: "images/a.png",
      mask: "masks/a.png",
      weight: "weights/a.png",
      rgba: "rgba/a.png",
      caption: "captions/a.txt",
    };
    const html = renderReportHtml({
      report: {
        ...base,
        photos: [
          { ...base.photos[0]!, outputs },
          { ...base.photos[1]!, outputs: { ...outputs, image: "../../etc/passwd" } },
          { ...base.photos[0]!, stem: "b", outputs: { ...outputs, image: "/home/someone/x.png" } },
          { ...base.photos[0]!, stem: "c", outputs: { ...outputs, image: "images/ü #1.png" } },
        ],
      },
    });
    expect(html).toContain(
      '<img class="trained" src="images/a.png" alt="training image of a.jpg" loading="lazy">',
    );
    expect(html).toContain('src="images/%C3%BC%20%231.png"');
    // A path that leaves the set, or an absolute one, is never linked.
    expect(html).not.toContain("passwd");
    expect(html).not.toContain("/home/someone");
    expect(html.match(/<img /g)).toHaveLength(2);
    expect(html.match(/not in the training set/g)).toHaveLength(2);
  });

  it("says what to do next: the scripts of the chosen trainers, how to fix a doubtful photo", () => {
    const base = report();
    const outputs = { image: "images/a.png", mask: "m", weight: "w", rgba: "r", caption: "c" };
    const withSet = { ...base, photos: [{ ...base.photos[0]!, outputs }, base.photos[1]!] };
    const all = renderReportHtml({ report: { ...withSet, settings: { ...base.settings, trainer: "all" } } });
    for (const text of [
      "bash train.sh",
      "bash train_kohya.sh",
      "onetrainer/train-config.json",
      "--ref-point X,Y",
      "--ref-mask MASK.png",
      "--keep-doubtful",
    ])
      expect(all).toContain(text);
    const kohya = renderReportHtml({
      report: { ...withSet, settings: { ...base.settings, trainer: "kohya" } },
    });
    expect(kohya).toContain("bash train_kohya.sh");
    expect(kohya).not.toContain("bash train.sh");
    const none = renderReportHtml({ report: { ...base, photos: [base.photos[2]!] } });
    expect(none).toContain("No photo is in the training set yet");
    expect(none).not.toContain("bash train");
  });

  it("explains every flag the code can raise, and folds timings away under readable names", () => {
    const html = renderReportHtml({ report: report() });
    for (const flag of [
      "doubtful",
      "reference",
      "empty-mask",
      "empty-mask-fallback",
      "tiny-mask",
      "mask-covers-photo",
      "fragmented-mask",
      "low-similarity",
      "low-iou",
      "cuts-subject",
      "margin-reduced",
      "upscaled",
    ]) {
      expect(FLAG_LEGEND[flag], flag).toBeTruthy();
      expect(html).toContain(`>${flag}</dt><dd>`);
    }
    // A flag without a description still appears in the legend.
    expect(html).toContain('<dt class="used">&#60;flag&#62;</dt><dd>no description</dd>');
    expect(html).toMatch(/<details class="timings"><summary>timings<\/summary>/);
    expect(timingName("attnSimMs")).toBe("attention bias");
    expect(timingName("stateMs")).toBe("saving the resume state");
    expect(timingName("someNewStageMs")).toBe("some new stage");
    expect(html).not.toMatch(/\b[a-z]+Ms\b/);
  });

  it("refuses a thumbnail that is not JPEG or PNG", () => {
    const bad = { photo: { bytes: new Uint8Array(1), mime: "image/svg+xml" as "image/png" } };
    expect(() => renderReportHtml({ report: report(), thumbnails: new Map([["a", bad]]) })).toThrow(
      "Expected image/jpeg or image/png for thumbnail mime but received image/svg+xml",
    );
  });

  it("describes each way of choosing the reference", () => {
    const base = report();
    const text = (reference: PrepareReport["reference"]) =>
      renderReportHtml({ report: { ...base, reference } });
    expect(text({ ...base.reference, method: "mask-file", maskFile: "a.mask.png" })).toContain(
      "from the mask file a.mask.png",
    );
    expect(text({ ...base.reference, method: "click", points: [{ x: 5, y: 6, label: 1 }] })).toContain(
      "from points clicked by the user",
    );
    expect(text({ ...base.reference, method: "box", box: [1, 2, 30, 40] })).toContain("from the given box");
  });
});

describe("summaryTable", () => {
  it("lists every photo with status, confidence and notes, then the totals", () => {
    const table = summaryTable(report());
    const lines = table.trimEnd().split("\n");
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^photo\s+status\s+conf\s+area\s+notes$/);
    expect(lines[1]).toMatch(/^a\.jpg\s+ok\s+0\.93\s+21\.0%$/);
    expect(lines[3]).toContain("skipped");
    expect(lines[3]).toContain("Cannot decode JPEG image broken.jpg");
    expect(lines[4]).toBe("3 photos: 1 ok, 1 doubtful, 1 skipped · 1 other file ignored");
  });

  it("neutralises terminal escapes and bidi overrides in file names", () => {
    expect(terminalSafe("a\u001b[2Jb\u202ec\nd")).toBe("a?[2Jb?c?d");
    const r = report();
    const table = summaryTable({
      ...r,
      photos: [photo({ stem: "x", file: "evil\u001b]0;pwned\u0007.jpg", status: "ok" })],
    });
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
  });
});
