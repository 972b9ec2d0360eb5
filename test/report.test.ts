import { describe, expect, it } from "vitest";
import {
  escapeHtml,
  type PhotoReport,
  type PrepareReport,
  renderReportHtml,
  summaryTable,
  terminalSafe,
} from "../src/dataset/report.js";

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
    expect(html).toContain("encode 812 ms");
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
        "div",
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
        "p",
        "path",
        "rect",
        "span",
        "strong",
        "style",
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
