import { describe, expect, it } from "vitest";
import {
  backgroundColor,
  DEFAULT_BACKGROUND,
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

  it("feathers the edge: just outside the mask is a blend of photo and fill", () => {
    const out = suppressBackground({ image, mask, background: "white", feather: 6 });
    // (56, 30) is one pixel outside the disc (radius 15 around x = 40).
    const i = 30 * W + 56;
    expect(mask[i]).toBe(0);
    const r = out.data[3 * i]!;
    expect(r).toBeGreaterThan(image.data[3 * i]!);
    expect(r).toBeLessThan(255);
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

  it("rejects a mask of the wrong size", () => {
    expect(() => suppressBackground({ image, mask: new Uint8Array(10) })).toThrow(
      `Expected ${W * H} mask values (${W}×${H}) for featherAlpha but received 10`,
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
