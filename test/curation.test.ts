// The pure curation measures and the frame choice: sharpness against blur and contrast, the
// perceptual hash of re-saves, the subject feature under a mask, edges, and chooseFrames' verdicts
// (no subject, blurry, duplicate, time gap, count, weak frames only to fill up).

import { describe, expect, it } from "vitest";
import {
  curationFlags,
  differenceHash,
  hashDistance,
  type PhotoMeasure,
  sharpness,
  subjectFeature,
  touchesEdge,
} from "../src/dataset/curation.js";
import { chooseFrames, type FrameCandidate } from "../src/dataset/frame-choice.js";
import { quadrants, scene } from "./support/photos.js";

const rgb = (p: { data: Uint8Array; width: number; height: number }) => ({ ...p, channels: 3 as const });

/** A 3×3 box blur, `passes` times. */
function blurred(p: { data: Uint8Array; width: number; height: number }, passes: number) {
  let data = p.data;
  for (let k = 0; k < passes; k++) {
    const out = new Uint8Array(data.length);
    for (let y = 0; y < p.height; y++) {
      for (let x = 0; x < p.width; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          let n = 0;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const xx = x + dx;
              const yy = y + dy;
              if (xx < 0 || yy < 0 || xx >= p.width || yy >= p.height) continue;
              s += data[(yy * p.width + xx) * 3 + c]!;
              n++;
            }
          }
          out[(y * p.width + x) * 3 + c] = Math.round(s / n);
        }
      }
    }
    data = out;
  }
  return { ...p, data };
}

describe("curation measures", () => {
  it("scores a blurred picture far below the sharp one, whatever its contrast", () => {
    const sharp = scene({ width: 160, height: 120 });
    const soft = blurred(sharp, 4);
    expect(sharpness(rgb(soft)) / sharpness(rgb(sharp))).toBeLessThan(0.35);
    const faded = { ...sharp, data: sharp.data.map((v) => 100 + Math.round(v / 4)) };
    expect(sharpness(rgb(faded)) / sharpness(rgb(sharp))).toBeGreaterThan(0.5);
  });

  it("scores two pictures in focus alike however much texture they have", () => {
    const textured = sharpness(rgb(scene({ width: 160, height: 120 })));
    const plain = sharpness(rgb(quadrants(160, 120)));
    expect(Math.min(textured, plain) / Math.max(textured, plain)).toBeGreaterThan(0.35);
    expect(sharpness(rgb(blurred(quadrants(160, 120), 3))) / plain).toBeLessThan(0.35);
  });

  it("hashes a picture and its slightly changed copy within a few bits, another picture far away", () => {
    const a = scene({ width: 160, height: 120, seed: 1 });
    const noisy = { ...a, data: a.data.map((v, i) => Math.min(255, v + (i % 3))) };
    const b = scene({ width: 160, height: 120, at: [0.2, 0.3], seed: 5 });
    expect(hashDistance(differenceHash(rgb(a)), differenceHash(rgb(noisy)))).toBeLessThanOrEqual(4);
    expect(hashDistance(differenceHash(rgb(a)), differenceHash(rgb(b)))).toBeGreaterThan(10);
  });

  it("averages the embedding under the mask into the subject feature", () => {
    const C = 2;
    const data = new Float32Array(C * 64 * 64);
    // Channel 0 on the left half of the grid, channel 1 on the right.
    for (let r = 0; r < 64; r++) for (let c = 0; c < 64; c++) data[(c < 32 ? 0 : 1) * 4096 + r * 64 + c] = 1;
    const mask = new Uint8Array(100 * 100);
    for (let y = 0; y < 100; y++) for (let x = 60; x < 100; x++) mask[y * 100 + x] = 1;
    const f = subjectFeature({ data, dims: [1, C, 64, 64] }, [1024, 1024], mask, 100, 100)!;
    expect(Array.from(f)).toEqual([0, 1]);
    expect(
      subjectFeature({ data, dims: [1, C, 64, 64] }, [1024, 1024], new Uint8Array(100 * 100), 100, 100),
    ).toBeUndefined();
  });

  it("calls a box on one to three edges cut off, not one inside or on all four", () => {
    expect(touchesEdge([0, 10, 50, 50], 100, 100)).toBe(true);
    expect(touchesEdge([10, 10, 99, 99], 100, 100)).toBe(true);
    expect(touchesEdge([10, 10, 90, 90], 100, 100)).toBe(false);
    expect(touchesEdge([0, 0, 99, 99], 100, 100)).toBe(false);
  });

  it("flags the later of two same pictures, small subjects and low resolution, with values", () => {
    const m = (over: Partial<PhotoMeasure>): PhotoMeasure => ({
      sharpness: 10,
      hash: "00ff00ff00ff00ff",
      width: 400,
      height: 300,
      box: [100, 100, 200, 200],
      ...over,
    });
    const flags = curationFlags(
      [
        { stem: "a", file: "a.jpg", measure: m({}) },
        { stem: "b", file: "b.png", measure: m({ sharpness: 9, hash: "00ff00ff00ff00fe" }) },
        { stem: "c", file: "c.jpg", measure: m({ hash: "ffffffff00000000", box: [10, 10, 20, 20] }) },
        {
          stem: "d",
          file: "d.jpg",
          measure: m({
            hash: "0f0f0f0f0f0f0f0f",
            sharpness: 2,
            width: 60,
            height: 40,
            box: [10, 10, 30, 30],
          }),
        },
      ],
      64,
    );
    expect(flags.get("a")).toEqual([]);
    expect(flags.get("b")!.map((f) => [f.flag, f.value])).toEqual([["duplicate", 1]]);
    expect(flags.get("c")!.map((f) => f.flag)).toEqual(["subject-small"]);
    expect(flags.get("d")!.map((f) => [f.flag, f.value])).toEqual([
      ["blurry", 0.2],
      ["low-resolution", 40],
    ]);
  });
});

describe("chooseFrames", () => {
  const frame = (
    index: number,
    over: Partial<FrameCandidate> = {},
    measure: Partial<PhotoMeasure> = {},
  ): FrameCandidate => ({
    index,
    time: index / 2,
    similarity: 0.9,
    confidence: 0.8,
    doubtful: false,
    ...over,
    measure: {
      sharpness: 10,
      hash: index.toString(16).padStart(2, "0").repeat(8),
      width: 400,
      height: 300,
      box: [100 + index * 5, 100, 200 + index * 5, 200],
      feature: [Math.cos(index), Math.sin(index)],
      ...measure,
    },
  });

  it("drops frames without the subject, blurred ones and re-takes, and keeps the time gap and the count", () => {
    const candidates = [
      frame(0),
      frame(1, { similarity: 0.3 }),
      frame(2, {}, { sharpness: 1 }),
      frame(3),
      frame(5),
      frame(6),
      frame(7, { doubtful: true }),
      frame(8),
    ];
    // Frame 4 is frame 3's picture again.
    candidates.splice(4, 0, frame(4, {}, { ...candidates[3]!.measure }));
    const verdicts = chooseFrames({ candidates, count: 3, minGap: 1 });
    const byIndex = new Map(verdicts.map((v) => [v.index, v]));
    expect(byIndex.get(1)!.reason).toMatch(/^no subject/);
    expect(byIndex.get(2)!.reason).toMatch(/^blurry/);
    expect(byIndex.get(4)!.reason).toBe("duplicate of the frame at 1.5 s");
    const chosen = verdicts.filter((v) => v.chosen);
    expect(chosen).toHaveLength(3);
    expect(chosen.map((v) => v.index)).not.toContain(7);
    const times = chosen.map((v) => v.time).sort((a, b) => a - b);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(1);
  });

  it("fills up with weak frames only when the good ones run out", () => {
    const verdicts = chooseFrames({
      candidates: [frame(0), frame(4, { doubtful: true }), frame(8, { doubtful: true })],
      count: 2,
      minGap: 0.5,
    });
    expect(verdicts.filter((v) => v.chosen).map((v) => v.index)).toEqual([0, expect.any(Number)]);
    expect(verdicts.find((v) => v.chosen && v.index !== 0)!.reason).toBe("chosen to fill up (doubtful mask)");
  });
});
