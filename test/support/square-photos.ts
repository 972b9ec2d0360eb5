// Tiny synthetic photos for the reference and segment tests: a bright square on a deterministic
// textured background (96×64), the three photos a.png, b.png and c.jpg, and rectangle masks.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeJpeg, encodePng } from "../../src/image/image-io.js";

/** Width of the generated photos. */
export const W = 96;
/** Height of the generated photos. */
export const H = 64;

/** A W×H RGB photo with a bright square on a textured background (deterministic). */
export function squarePhoto(seed: number, x0: number, y0: number, side: number): Uint8Array {
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      const inside = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
      data[i] = inside ? 230 : (x * 7 + y * 3 + seed * 11) % 90;
      data[i + 1] = inside ? 60 : (x * 5 + seed * 29) % 120;
      data[i + 2] = inside ? 40 : (y * 9 + seed * 7) % 150;
    }
  }
  return data;
}

/** A 0/255 grey mask of the rectangle [x0, x1) × [y0, y1). */
export function rectMask(
  width: number,
  height: number,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
): Uint8Array {
  const m = new Uint8Array(width * height);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * width + x] = 255;
  return m;
}

/** Write `data` as a PNG at `path` (grey by default); returns the path. */
export async function writePng(
  path: string,
  data: Uint8Array,
  width = W,
  height = H,
  channels: 1 | 3 = 1,
): Promise<string> {
  await writeFile(path, await encodePng({ data, width, height, channels }));
  return path;
}

/**
 * Write the three test photos into `dir`: a.png (square at 20,10 side 40), b.png (40,16 side 36)
 * and c.jpg (10,20 side 30). The square of a.png is `rectMask(W, H, 20, 10, 60, 50)`.
 */
export async function writeSquarePhotos(dir: string): Promise<void> {
  await writePng(join(dir, "a.png"), squarePhoto(1, 20, 10, 40), W, H, 3);
  await writePng(join(dir, "b.png"), squarePhoto(2, 40, 16, 36), W, H, 3);
  await writeFile(
    join(dir, "c.jpg"),
    await encodeJpeg({ data: squarePhoto(3, 10, 20, 30), width: W, height: H, channels: 3 }),
  );
}
