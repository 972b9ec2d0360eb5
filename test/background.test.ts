import { describe, expect, it } from "vitest";
import {
  backgroundColor,
  DEFAULT_BACKGROUND,
  edgeAlpha,
  parseBackground,
  suppressBackground,
} from "../src/dataset/background.js";
import { UserError } from "../src/errors.js";
import type { RgbImage } from "../src/image/image-io.js";

const W = 80;
const H = 60;

/** A textured photo (every pixel different) and a disc mask in its middle. */
function scene(): { image: RgbImage; mask: Uint8Array } {
  const data = new Uint8Array(W * H * 3);
  const mask = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      data[3 * i] = (x * 3) & 255;
      data[3 * i + 1] = (y * 4) & 255;
      data[3 * i + 2] = ((x + y) * 5) & 255;
      if ((x - 40) ** 2 + (y - 30) ** 2 <= 15 ** 2) mask[i] = 1;
    }
  }
  return { image: { data, width: W, height: H, channels: 3 }, mask };
}

/** Pixels more than `far` pixels from the disc edge, outside it. */
function farBackground(i: number, far: number): boolean {
  const x = i % W;
  const y = Math.floor(i / W);
  return Math.hypot(x - 40, y - 30) > 15 + far;
}

describe("suppressBackground", () => {
  const { image, mask } = scene();

  it.each([
    ["white", [255, 255, 255]],
    ["gray", [128, 128, 128]],
    ["color:#102030", [16, 32, 48]],
  ] as const)("%s fills the far background and leaves the subject's pixels untouched", (background, rgb) => {
    const out = suppressBackground({ image, mask, background, feather: 4 });
    expect(out.channels).toBe(3);
    expect([out.width, out.height]).toEqual([W, H]);
    let far = 0;
    for (let i = 0; i < W * H; i++) {
      const px = Array.from(out.data.subarray(3 * i, 3 * i + 3));
      if (mask[i]) expect(px).toEqual(Array.from(image.data.subarray(3 * i, 3 * i + 3)));
      else if (farBackground(i, 5)) {
        expect(px).toEqual(rgb);
        far++;
      }
    }
    expect(far).toBeGreaterThan(1000);
  });

  it.each(["white", "gray", "color:#102030", "noise", "blur", "transparent"] as const)(
    "%s: the feather never reaches images/ — one pixel outside the mask is pure background",
    (background) => {
      const pure = suppressBackground({ image, mask, background, feather: 6, edge: new Float32Array(W * H) });
      const out = suppressBackground({ image, mask, background, feather: 6 });
      const c = out.channels;
      for (let i = 0; i < W * H; i++) {
        const px = Array.from(out.data.subarray(c * i, c * i + c));
        if (mask[i]) {
          expect(px.slice(0, 3)).toEqual(Array.from(image.data.subarray(3 * i, 3 * i + 3)));
          if (c === 4) expect(px[3]).toBe(255);
        } else {
          expect(px).toEqual(Array.from(pure.data.subarray(c * i, c * i + c)));
        }
      }
    },
  );

  it("blends only where the edge alpha is between 0 and 1", () => {
    const edge = Float32Array.from(mask, (v) => (v ? 1 : 0));
    const i = 30 * W + 56; // one pixel outside the disc (radius 15 around x = 40)
    expect(mask[i]).toBe(0);
    edge[i] = 0.5;
    const out = suppressBackground({ image, mask, background: "white", edge });
    expect(out.data[3 * i]).toBe(Math.round(0.5 * image.data[3 * i]! + 0.5 * 255));
    expect(out.data[3 * (i + 1)]).toBe(255);
  });

  it("transparent gives RGBA: alpha 255 on the subject, 0 far away, RGB on white", () => {
    const out = suppressBackground({ image, mask, background: "transparent", feather: 4 });
    expect(out.channels).toBe(4);
    for (let i = 0; i < W * H; i++) {
      const a = out.data[4 * i + 3];
      if (mask[i]) expect(a).toBe(255);
      else if (farBackground(i, 5)) {
        expect(a).toBe(0);
        expect(Array.from(out.data.subarray(4 * i, 4 * i + 3))).toEqual([255, 255, 255]);
      }
    }
  });

  it("noise is reproducible by seed and differs between seeds", () => {
    const a = suppressBackground({ image, mask, background: "noise", seed: 1 });
    const b = suppressBackground({ image, mask, background: "noise", seed: 1 });
    const c = suppressBackground({ image, mask, background: "noise", seed: 2 });
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    expect(Buffer.from(a.data).equals(Buffer.from(c.data))).toBe(false);
    for (let i = 0; i < W * H; i++) if (mask[i]) expect(a.data[3 * i]).toBe(image.data[3 * i]);
  });

  it("blur smooths the background without bleeding the subject into it", () => {
    // Background uniform 200 grey with one bright subject: the blurred background must stay 200.
    const data = new Uint8Array(W * H * 3).fill(200);
    for (let i = 0; i < W * H; i++) if (mask[i]) data.fill(0, 3 * i, 3 * i + 3);
    const out = suppressBackground({
      image: { data, width: W, height: H, channels: 3 },
      mask,
      background: "blur",
    });
    for (let i = 0; i < W * H; i++) {
      if (farBackground(i, 9)) expect(Math.abs(out.data[3 * i]! - 200)).toBeLessThanOrEqual(1);
      if (mask[i]) expect(out.data[3 * i]).toBe(0);
    }
    // And it does blur: a high-frequency background (a checkerboard) loses most of its contrast.
    const checker = new Uint8Array(W * H * 3);
    for (let i = 0; i < W * H; i++)
      checker.fill(((i % W) + Math.floor(i / W)) % 2 ? 255 : 0, 3 * i, 3 * i + 3);
    const board: RgbImage = { data: checker, width: W, height: H, channels: 3 };
    const textured = suppressBackground({ image: board, mask, background: "blur" });
    const spread = (d: Uint8Array): number => {
      let s = 0;
      for (let x = 1; x < 20; x++) s += Math.abs(d[3 * (5 * W + x)]! - d[3 * (5 * W + x - 1)]!);
      return s;
    };
    expect(spread(textured.data)).toBeLessThan(spread(board.data) / 10);
  });

  it("keep returns the photo unchanged", () => {
    const out = suppressBackground({ image, mask, background: "keep" });
    expect(Buffer.from(out.data).equals(Buffer.from(image.data))).toBe(true);
  });

  it("defaults to white, a neutral uniform fill (diffusers has no masked loss)", () => {
    expect(DEFAULT_BACKGROUND).toBe("white");
    const out = suppressBackground({ image, mask });
    expect(Array.from(out.data.subarray(0, 3))).toEqual([255, 255, 255]);
  });

  it("rejects a mask or edge of the wrong size", () => {
    expect(() => suppressBackground({ image, mask: new Uint8Array(10) })).toThrow(
      `Expected ${W * H} values (${W}×${H}) for mask but received 10`,
    );
    expect(() => suppressBackground({ image, mask, edge: new Float32Array(10) })).toThrow(
      `Expected ${W * H} values (${W}×${H}) for edge but received 10`,
    );
  });
});

describe("edgeAlpha", () => {
  /** A square mask (x, y in [2, 6)) in an 8×8 image, and a coverage plane to read the edge from. */
  const w = 8;
  const h = 8;
  const square = Uint8Array.from({ length: w * h }, (_, i) => {
    const x = i % w;
    const y = Math.floor(i / w);
    return x >= 2 && x < 6 && y >= 2 && y < 6 ? 1 : 0;
  });

  it("is 1 deep inside, 0 one pixel away, coverage only on the outline", () => {
    const coverage = new Float32Array(w * h).fill(0.3);
    const alpha = edgeAlpha({ mask: square, coverage, width: w, height: h });
    const at = (x: number, y: number) => alpha[y * w + x]!;
    expect(at(3, 3)).toBe(1); // all 8 neighbours in the mask
    expect(at(4, 4)).toBe(1);
    expect(at(2, 2)).toBeCloseTo(0.3); // mask pixel on the outline
    expect(at(1, 3)).toBeCloseTo(0.3); // outside, touching the mask
    expect(at(0, 3)).toBe(0); // two pixels out: no mask pixel in its 3×3 neighbourhood
    expect(at(7, 7)).toBe(0);
  });

  it("drops coverage far from the mask (a hair thinner than the output mask) and clamps it", () => {
    const coverage = new Float32Array(w * h);
    coverage[0] = 0.4; // a speck of the full-resolution mask two pixels from the output mask
    coverage[2 * w + 1] = 1.5;
    const alpha = edgeAlpha({ mask: square, coverage, width: w, height: h });
    expect(alpha[0]).toBe(0);
    expect(alpha[2 * w + 1]).toBe(1);
  });

  it("treats the image border as neither mask nor background", () => {
    const full = new Uint8Array(w * h).fill(1);
    const alpha = edgeAlpha({ mask: full, coverage: new Float32Array(w * h), width: w, height: h });
    expect(Array.from(alpha).every((a) => a === 1)).toBe(true);
  });

  it("rejects planes of the wrong size", () => {
    expect(() => edgeAlpha({ mask: square, coverage: new Float32Array(3), width: w, height: h })).toThrow(
      `Expected ${w * h} values (${w}×${h}) for coverage but received 3`,
    );
  });
});

describe("parseBackground", () => {
  it("accepts the names case-insensitively, grey, and colours", () => {
    expect(parseBackground(" White ")).toBe("white");
    expect(parseBackground("grey")).toBe("gray");
    expect(parseBackground("color:#A0b0C0")).toBe("color:#a0b0c0");
    expect(backgroundColor("color:#a0b0c0")).toEqual([160, 176, 192]);
  });

  it("rejects unknown names and malformed colours with one clear line", () => {
    expect(() => parseBackground("purple")).toThrow(UserError);
    expect(() => parseBackground("purple")).toThrow(
      'Expected one of white, gray, color:#rrggbb, blur, noise, transparent, keep for background but received "purple"',
    );
    expect(() => parseBackground("color:#12345")).toThrow(
      'Expected a colour as #rrggbb (six hex digits) for background but received "color:#12345"',
    );
  });
});
