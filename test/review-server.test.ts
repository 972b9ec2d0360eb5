// The review server with real HTTP requests on a set prepared with the tiny random model: who may ask
// (token, Host, Origin, Sec-Fetch-Site), bounded bodies, photos only by stem, SAM's masks for a
// prompt, decisions stored under .persam/review/ and used by the next prepare and by a rebuild from
// the page (with its progress as server-sent events), the set's lock held while the server runs.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readState } from "../src/dataset/prepare-state.js";
import { loadReviewMask, readReviewDecisions } from "../src/dataset/review-decisions.js";
import { decodeMaskPng } from "../src/image/mask-png.js";
import type { PagePrediction, PageSet } from "../src/review/review-api.js";
import { MAX_BODY_BYTES, type ReviewServer, startReviewServer } from "../src/review/review-server.js";
import { ReviewSet } from "../src/review/review-set.js";
import { readRunLock } from "../src/util/run-lock.js";
import { runCli } from "./support/cli.js";
import { scene, writeJpeg } from "./support/photos.js";
import {
  get,
  http,
  post,
  preparedForReview,
  type ReviewFixture,
  trainingMaskDifference,
} from "./support/review-helpers.js";

let root: string;
let fixture: ReviewFixture;
let set: ReviewSet;
let server: ReviewServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-review-server-"));
  fixture = await preparedForReview({ root, name: "balls" });
  set = await ReviewSet.open({ outDir: fixture.outDir });
  server = await startReviewServer({ set, model: fixture.model, embeddingCache: fixture.cache });
});

afterAll(async () => {
  await server?.close();
  await set?.close();
  await fixture?.model.dispose();
  await rm(root, { recursive: true, force: true });
});

/**
 * Listen to the server's events: `ready` once the stream is open (the server said hello), `done`
 * with the rebuild events up to the first whose phase is in `until`.
 */
function rebuildEvents(
  port: number,
  token: string,
  until: readonly string[],
): { ready: Promise<void>; done: Promise<Record<string, unknown>[]> } {
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  const done = new Promise<Record<string, unknown>[]>((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path: `/api/events?token=${token}`, headers: { host: `127.0.0.1:${port}` } },
      (res) => {
        let text = "";
        const events: Record<string, unknown>[] = [];
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
          for (let at = text.indexOf("\n\n"); at >= 0; at = text.indexOf("\n\n")) {
            const block = text.slice(0, at);
            text = text.slice(at + 2);
            if (block.startsWith("event: hello\n")) onReady();
            if (!block.startsWith("event: rebuild\n")) continue;
            const event = JSON.parse(block.slice(block.indexOf("data: ") + 6)) as Record<string, unknown>;
            events.push(event);
            if (until.includes(event.phase as string)) {
              req.destroy();
              resolve(events);
            }
          }
        });
      },
    );
    req.on("error", (e) => (e.message === "socket hang up" ? undefined : reject(e)));
    req.end();
  });
  return { ready, done };
}

async function summary(): Promise<PageSet> {
  const answer = await get(server.port, server.token, "/api/set");
  expect(answer.status).toBe(200);
  return answer.json() as PageSet;
}

describe("review server: who may ask", () => {
  it("listens on 127.0.0.1 and prints a URL with its token", () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`);
    expect(server.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it("refuses a request without the token, or with a wrong one", async () => {
    const none = await http({ port: server.port, path: "/api/set" });
    expect(none.status).toBe(403);
    expect(none.json()).toEqual({
      error: "missing or wrong access token: open the URL persam-db review printed",
    });
    expect((await http({ port: server.port, path: "/?token=wrong" })).status).toBe(403);
    expect((await http({ port: server.port, path: `/?token=${server.token}x` })).status).toBe(403);
    const page = await http({ port: server.port, path: `/?token=${server.token}` });
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(page.headers["cache-control"]).toBe("no-store");
    // The photos, masks and script need it too.
    expect((await http({ port: server.port, path: "/review.js" })).status).toBe(403);
    expect((await http({ port: server.port, path: "/api/photos/photo-2/image" })).status).toBe(403);
  });

  it("refuses other host names (DNS rebinding) and other sites (Origin, Sec-Fetch-Site)", async () => {
    const path = `/api/set?token=${server.token}`;
    const host = await http({ port: server.port, path, headers: { host: `evil.example:${server.port}` } });
    expect(host.status).toBe(403);
    expect(host.json()).toEqual({ error: "this server answers only to 127.0.0.1 and localhost" });
    expect(
      (await http({ port: server.port, path, headers: { host: `localhost:${server.port}` } })).status,
    ).toBe(200);
    expect(
      (await http({ port: server.port, path, headers: { origin: "https://evil.example" } })).status,
    ).toBe(403);
    expect(
      (await http({ port: server.port, path, headers: { origin: `http://127.0.0.1:${server.port + 1}` } }))
        .status,
    ).toBe(403);
    expect(
      (await http({ port: server.port, path, headers: { origin: `http://127.0.0.1:${server.port}` } }))
        .status,
    ).toBe(200);
    expect(
      (await http({ port: server.port, path, headers: { "sec-fetch-site": "cross-site" } })).status,
    ).toBe(403);
    expect((await http({ port: server.port, path, headers: { "sec-fetch-site": "same-site" } })).status).toBe(
      403,
    );
    expect(
      (await http({ port: server.port, path, headers: { "sec-fetch-site": "same-origin" } })).status,
    ).toBe(200);
  });

  it("takes changes only as JSON with the token in its header (no cross-site form can send one)", async () => {
    const path = "/api/photos/photo-2/exclude";
    const inQuery = await http({
      port: server.port,
      path: `${path}?token=${server.token}`,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(inQuery.status).toBe(403);
    const form = await http({
      port: server.port,
      path,
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-persam-token": server.token },
      body: "a=1",
    });
    expect(form.status).toBe(415);
    const put = await http({
      port: server.port,
      path,
      method: "PUT",
      headers: { "x-persam-token": server.token },
    });
    expect(put.status).toBe(405);
    expect((await readReviewDecisions(fixture.outDir)).decisions.photos).toEqual({});
  });

  it("bounds request bodies, declared or not, and goes on answering", async () => {
    const big = JSON.stringify({ clicks: [], pad: "x".repeat(MAX_BODY_BYTES) });
    const declared = await post(server.port, server.token, "/api/photos/photo-2/predict", JSON.parse(big));
    expect(declared.status).toBe(413);
    // Sent in chunks without a length: cut off once past the limit.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port: server.port,
          path: "/api/photos/photo-2/predict",
          method: "POST",
          headers: {
            host: `127.0.0.1:${server.port}`,
            "content-type": "application/json",
            "x-persam-token": server.token,
            "transfer-encoding": "chunked",
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 20; i++) req.write("x".repeat(8 * 1024));
      req.end();
    });
    expect(chunked).toBe(413);
    expect((await get(server.port, server.token, "/api/set")).status).toBe(200);
  });

  it("knows photos only by the stems of the set: anything else is 404 and never a path", async () => {
    for (const path of [
      "/api/photos/nope/image",
      "/api/photos/..%2F..%2Fetc%2Fpasswd/image",
      "/api/photos/%2Fetc%2Fpasswd/mask",
      "/api/photos/photo-2/../../../etc/passwd",
      "/api/photos/photo-2.jpg/image",
      "/api/photos/%E0%A4%A/image",
      "/api/photos/photo-2/delete",
    ]) {
      const answer = await get(server.port, server.token, path);
      expect(answer.status, path).toBe(404);
    }
    expect((await post(server.port, server.token, "/api/photos/nope/accept", {})).status).toBe(404);
  });
});

describe("review server: photos, masks and decisions", () => {
  it("lists the set's photos by name only, and serves each photo, its mask and thumbnail", async () => {
    const s = await summary();
    expect(s.name).toBe("balls.persam");
    expect(s.input).toBe("balls");
    expect(JSON.stringify(s)).not.toContain(root);
    expect(s.photos.map((p) => p.stem)).toEqual(["photo-1", "photo-2", "photo-3"]);
    expect(s.photos[0]).toMatchObject({
      width: 96,
      height: 72,
      display: { width: 96, height: 72 },
      inSet: true,
    });
    const image = await get(server.port, server.token, "/api/photos/photo-2/image");
    expect(image.headers["content-type"]).toBe("image/jpeg");
    expect(await sharp(image.body).metadata()).toMatchObject({ width: 96, height: 72, format: "jpeg" });
    const mask = await get(server.port, server.token, "/api/photos/photo-2/mask");
    expect(await sharp(mask.body).metadata()).toMatchObject({
      width: 96,
      height: 72,
      format: "png",
      isPalette: true,
      bitsPerSample: 1,
      hasAlpha: true,
    });
    const thumb = await get(server.port, server.token, "/api/photos/photo-2/thumb");
    expect(thumb.headers["content-type"]).toBe("image/jpeg");
  });

  it("predicts SAM's three masks for a prompt at display size; a prompt off the photo is refused", async () => {
    const answer = await post(server.port, server.token, "/api/photos/photo-2/predict", {
      clicks: [{ x: 40, y: 36, label: 1 }],
    });
    expect(answer.status).toBe(200);
    const prediction = answer.json() as PagePrediction;
    expect(prediction.masks.map((m) => m.token)).toEqual([1, 2, 3]);
    expect(prediction.best).toBeGreaterThanOrEqual(0);
    for (const m of prediction.masks) {
      const { data, info } = await sharp(Buffer.from(m.png, "base64"))
        .ensureAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([96, 72]);
      let covered = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) covered++;
      expect(covered / (96 * 72)).toBeCloseTo(m.area, 6);
    }
    for (const body of [
      { clicks: [{ x: 200, y: 10, label: 1 }] },
      { clicks: [{ x: 10, y: 10, label: 5 }] },
      { box: [50, 10, 20, 30] },
      { clicks: [] },
      { clicks: Array.from({ length: 65 }, () => ({ x: 1, y: 1, label: 1 })) },
    ]) {
      expect(
        (await post(server.port, server.token, "/api/photos/photo-2/predict", body)).status,
        JSON.stringify(body),
      ).toBe(400);
    }
    expect(
      (
        await http({
          port: server.port,
          path: "/api/photos/photo-2/predict",
          method: "POST",
          headers: { "content-type": "application/json", "x-persam-token": server.token },
          body: "{not json",
        })
      ).status,
    ).toBe(400);
  });

  it("accept stores the chosen mask at full size as the photo's override, with its prompt", async () => {
    const prompt = { clicks: [{ x: 40, y: 36, label: 1 }], box: [20, 10, 70, 60], token: 2 };
    const answer = await post(server.port, server.token, "/api/photos/photo-2/accept", prompt);
    expect(answer.status).toBe(200);
    const page = answer.json() as PageSet;
    expect(page.photos[1]).toMatchObject({ stem: "photo-2", override: { applied: false }, pending: true });
    expect(page.pending).toBe(true);
    const { decisions } = await readReviewDecisions(fixture.outDir);
    const review = decisions.photos["photo-2"]!;
    expect(review.photoSha256).toBe((await readState(fixture.outDir)).state.photos["photo-2"]!.sha256);
    expect(review.override!.prompt).toEqual({ clicks: prompt.clicks, box: prompt.box, token: 2 });
    expect(review.override).toMatchObject({ width: 96, height: 72 });
    const mask = await loadReviewMask(fixture.outDir, review.override!);
    expect(mask.length).toBe(96 * 72);
    // The overlay the page shows now is that mask.
    const overlay = await get(server.port, server.token, "/api/photos/photo-2/mask");
    const { data } = await sharp(overlay.body).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    let same = 0;
    for (let i = 0; i < mask.length; i++) if ((data[4 * i + 3]! > 0 ? 1 : 0) === mask[i]) same++;
    expect(same).toBe(mask.length);
  });

  it("rebuilds the set from the page: the decisions apply, progress arrives as events", async () => {
    expect((await post(server.port, server.token, "/api/photos/photo-3/exclude", {})).status).toBe(200);
    const events = rebuildEvents(server.port, server.token, ["done", "failed"]);
    await events.ready;
    const started = await post(server.port, server.token, "/api/rebuild", {});
    expect(started.status).toBe(202);
    const seen = await events.done;
    expect(seen[0]).toEqual({ phase: "start" });
    expect(seen.filter((e) => e.phase === "progress").map((e) => e.file)).toEqual([
      "photo-1.jpg",
      "photo-2.jpg",
      "photo-3.jpg",
    ]);
    expect(seen.at(-1)).toMatchObject({ phase: "done", kept: 2, excluded: 1, segmented: 1 });
    const meta = await readFile(join(fixture.outDir, "metadata.jsonl"), "utf8");
    expect(meta).toContain('"file_name":"images/photo-2.png"');
    expect(meta).not.toContain("photo-3");
    const s = await summary();
    expect(s.photos.map((p) => [p.stem, p.inSet, p.pending])).toEqual([
      ["photo-1", true, false],
      ["photo-2", true, false],
      ["photo-3", false, false],
    ]);
    expect(s.photos[1]!.override).toMatchObject({ applied: true });
    expect(s.pending).toBe(false);
    // The set's mask of photo-2 is the accepted one.
    const { decisions } = await readReviewDecisions(fixture.outDir);
    const stored = decodeMaskPng(await readFile(join(fixture.outDir, ".persam/masks/photo-2.png")))!.mask;
    expect(
      Buffer.from(stored).equals(
        Buffer.from(await loadReviewMask(fixture.outDir, decisions.photos["photo-2"]!.override!)),
      ),
    ).toBe(true);
  });

  it("accept without a token stores the output that predict marks best for the same prompt", async () => {
    for (const prompt of [{ clicks: [{ x: 30, y: 30, label: 1 }] }, { clicks: [], box: [15, 10, 60, 50] }]) {
      const predicted = await post(server.port, server.token, "/api/photos/photo-2/predict", prompt);
      const prediction = predicted.json() as PagePrediction;
      const best = prediction.masks[prediction.best]!.token;
      expect((await post(server.port, server.token, "/api/photos/photo-2/accept", prompt)).status).toBe(200);
      const { decisions } = await readReviewDecisions(fixture.outDir);
      expect(decisions.photos["photo-2"]!.override!.prompt!.token).toBe(best);
      const chosen = await post(server.port, server.token, "/api/photos/photo-2/accept", {
        ...prompt,
        token: best,
      });
      expect(chosen.status).toBe(200);
      const again = await readReviewDecisions(fixture.outDir);
      expect(again.decisions.photos["photo-2"]!.override!.sha256).toBe(
        decisions.photos["photo-2"]!.override!.sha256,
      );
    }
    expect((await post(server.port, server.token, "/api/photos/photo-2/forget", {})).status).toBe(200);
  });

  it("keeps every mask file that the decisions name when changes arrive at once", async () => {
    const answers = await Promise.all([
      post(server.port, server.token, "/api/photos/photo-1/accept", { box: [10, 10, 80, 60] }),
      post(server.port, server.token, "/api/photos/photo-3/forget", {}),
      post(server.port, server.token, "/api/photos/photo-2/accept", { clicks: [{ x: 20, y: 20, label: 1 }] }),
      post(server.port, server.token, "/api/photos/photo-3/exclude", {}),
      post(server.port, server.token, "/api/photos/photo-1/reference", {}),
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    const { decisions } = await readReviewDecisions(fixture.outDir);
    for (const stem of ["photo-1", "photo-2"]) {
      expect((await loadReviewMask(fixture.outDir, decisions.photos[stem]!.override!)).length).toBe(96 * 72);
    }
    expect((await loadReviewMask(fixture.outDir, decisions.reference!.mask)).length).toBe(96 * 72);
    expect(decisions.photos["photo-3"]!.decision).toBe("exclude");
    // Back as before for the tests that follow.
    for (const path of ["/api/photos/photo-1/forget", "/api/reference/forget"]) {
      expect((await post(server.port, server.token, path, {})).status).toBe(200);
    }
  });

  it("holds the set's lock: a second review and a prepare are refused while it runs", async () => {
    await expect(ReviewSet.open({ outDir: fixture.outDir })).rejects.toThrow(
      /is in use by persam-db review \(pid/,
    );
    const model = fixture.model.files;
    const run = await runCli([
      "prepare",
      fixture.photosDir,
      "--encoder",
      model.encoderPath,
      "--decoder",
      model.decoderPath,
      "--class",
      "ball",
      "--resolution",
      "64",
      "--keep-doubtful",
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/is in use by persam-db review/);
  });
});

describe("review decisions outlive the server", () => {
  let root2: string;
  let fx: ReviewFixture;

  beforeAll(async () => {
    root2 = await mkdtemp(join(tmpdir(), "persam-review-after-"));
    fx = await preparedForReview({ root: root2, name: "after" });
  });
  afterAll(async () => {
    await fx?.model.dispose();
    await rm(root2, { recursive: true, force: true });
  });

  it("an override accepted in review is used by the next prepare, and invalidated when the photo changes", async () => {
    const s = await ReviewSet.open({ outDir: fx.outDir });
    const srv = await startReviewServer({ set: s, model: fx.model, embeddingCache: fx.cache });
    const accepted = await post(srv.port, srv.token, "/api/photos/photo-3/accept", {
      box: [5, 5, 60, 50],
      token: 1,
    });
    expect(accepted.status).toBe(200);
    await srv.close();
    await s.close();
    expect(await readRunLock(fx.outDir)).toBeUndefined();

    const files = fx.model.files;
    const args = [
      "prepare",
      fx.photosDir,
      "--encoder",
      files.encoderPath,
      "--decoder",
      files.decoderPath,
      "--class",
      "ball",
      "--resolution",
      "64",
      "--keep-doubtful",
      "--threads",
      "1",
    ];
    const dry = await runCli([...args, "--dry-run"]);
    expect(dry.stdout).toContain("segment  photo-3.jpg  (mask override added in review)");
    const run = await runCli(args);
    expect(run.code, run.stderr).toBe(0);
    const { decisions } = await readReviewDecisions(fx.outDir);
    const override = await loadReviewMask(fx.outDir, decisions.photos["photo-3"]!.override!);
    const stored = decodeMaskPng(await readFile(join(fx.outDir, ".persam/masks/photo-3.png")))!.mask;
    expect(Buffer.from(stored).equals(Buffer.from(override))).toBe(true);
    // The training mask in masks/ is the override, cut and resized as prepare cuts every mask.
    expect(
      await trainingMaskDifference({
        outDir: fx.outDir,
        stem: "photo-3",
        photoPath: join(fx.photosDir, "photo-3.jpg"),
        fullMask: override,
      }),
    ).toBe(0);
    const rows = (await readFile(join(fx.outDir, "metadata.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows.find((r) => r.file_name === "images/photo-3.png")).toMatchObject({
      flags: ["override"],
      confidence: 1,
    });

    // The photo changes: the override no longer applies, with a warning and a flag.
    await writeJpeg(join(fx.photosDir, "photo-3.jpg"), scene({ at: [0.3, 0.3], seed: 7 }));
    const changed = await runCli(args);
    expect(changed.stderr).toContain(
      "warning: the mask drawn in review for photo-3.jpg is ignored: the photo changed since (review it again)",
    );
    const seg = (await readState(fx.outDir)).state.photos["photo-3"]!.segmentation!;
    expect(seg.flags).toContain("override-outdated");
    const report = JSON.parse(await readFile(join(fx.outDir, "report.json"), "utf8"));
    expect(report.photos.find((p: { stem: string }) => p.stem === "photo-3").flags).toContain(
      "override-outdated",
    );
    // Review shows it as changed: its decisions no longer apply.
    const s2 = await ReviewSet.open({ outDir: fx.outDir });
    const srv2 = await startReviewServer({ set: s2, model: fx.model, embeddingCache: fx.cache });
    try {
      const page = (await get(srv2.port, srv2.token, "/api/set")).json() as PageSet;
      expect(page.photos.find((p) => p.stem === "photo-3")!.override).toBeUndefined();
    } finally {
      await srv2.close();
      await s2.close();
    }
  });

  it("a photo changed after prepare cannot be corrected until the set is rebuilt", async () => {
    const s = await ReviewSet.open({ outDir: fx.outDir });
    const srv = await startReviewServer({ set: s, model: fx.model, embeddingCache: fx.cache });
    try {
      await writeFile(
        join(fx.photosDir, "photo-2.jpg"),
        await sharp(join(fx.photosDir, "photo-1.jpg")).flip().jpeg().toBuffer(),
      );
      const answer = await post(srv.port, srv.token, "/api/photos/photo-2/predict", {
        clicks: [{ x: 5, y: 5, label: 1 }],
      });
      expect(answer.status).toBe(409);
      expect(answer.json()).toEqual({
        error: "photo-2.jpg changed since prepare read it — rebuild the set first (it reads the photo again)",
      });
      expect((await post(srv.port, srv.token, "/api/photos/photo-2/accept", {})).status).toBe(409);
    } finally {
      await srv.close();
      await s.close();
    }
  });

  it("use as the reference: stored, then the rebuild segments the others from it", async () => {
    const s = await ReviewSet.open({ outDir: fx.outDir });
    const srv = await startReviewServer({ set: s, model: fx.model, embeddingCache: fx.cache });
    try {
      const answer = await post(srv.port, srv.token, "/api/photos/photo-1/reference", {});
      expect(answer.status).toBe(200);
      expect(answer.json()).toMatchObject({ reviewReference: "photo-1.jpg", pending: true });
      expect((await post(srv.port, srv.token, "/api/rebuild", {})).status).toBe(202);
      expect((await post(srv.port, srv.token, "/api/photos/photo-1/exclude", {})).status).toBe(409);
      const result = await srv.api.rebuild;
      expect(result?.report?.reference).toMatchObject({ stem: "photo-1", method: "mask-file" });
      expect((await get(srv.port, srv.token, "/api/set")).json()).toMatchObject({
        reviewReference: "photo-1.jpg",
        pending: false,
      });
      const { decisions } = await readReviewDecisions(fx.outDir);
      const refMask = await loadReviewMask(fx.outDir, decisions.reference!.mask);
      const stored = decodeMaskPng(await readFile(join(fx.outDir, ".persam/masks/photo-1.png")))!.mask;
      expect(Buffer.from(stored).equals(Buffer.from(refMask))).toBe(true);
    } finally {
      await srv.close();
      await s.close();
    }
  });

  it("stopping the server during a rebuild leaves a set that the next prepare finishes", async () => {
    const s = await ReviewSet.open({ outDir: fx.outDir });
    const srv = await startReviewServer({ set: s, model: fx.model, embeddingCache: fx.cache });
    await post(srv.port, srv.token, "/api/photos/photo-3/exclude", {});
    expect((await post(srv.port, srv.token, "/api/rebuild", {})).status).toBe(202);
    await srv.close();
    await s.close();
    expect(await readRunLock(fx.outDir)).toBeUndefined();
    const { problem } = await readState(fx.outDir);
    expect(problem).toBeUndefined();
    const files = fx.model.files;
    const run = await runCli([
      "prepare",
      fx.photosDir,
      "--encoder",
      files.encoderPath,
      "--decoder",
      files.decoderPath,
      "--class",
      "ball",
      "--resolution",
      "64",
      "--keep-doubtful",
    ]);
    // 2: finished, with a photo left out (the one excluded in review).
    expect(run.code, run.stderr).toBe(2);
    expect(await readFile(join(fx.outDir, "metadata.jsonl"), "utf8")).not.toContain("photo-3");
  });
});
