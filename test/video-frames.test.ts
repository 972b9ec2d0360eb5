// The video floor with a real ffmpeg: containers recognised by their first bytes, ffprobe's answer
// (rotation, size, bad files as one line), frames streamed upright at the asked size, chosen samples
// again at full size, and ffmpeg killed on abort. Skips visibly without ffmpeg.

import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { probeVideo, videoContainerOf } from "../src/video/probe-video.js";
import { sampleFrames } from "../src/video/read-frames.js";
import {
  FFMPEG_INSTALL_HINT,
  ffmpegVersion,
  findVideoTools,
  requireVideoTools,
} from "../src/video/video-tools.js";
import { quadrantOf, quadrants } from "./support/photos.js";
import { ffmpeg, videoToolsOrSkip, writeVideo } from "./support/videos.js";

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const box = (type: string, ...brands: string[]): Uint8Array => {
  const body = ascii(`${type}${brands[0]}\0\0\0\0${brands.slice(1).join("")}`);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, out.length);
  out.set(body, 4);
  return out;
};

describe("videoContainerOf", () => {
  it("recognises MP4, MOV and Matroska/WebM by content and leaves HEIC, AVIF and photos alone", () => {
    expect(videoContainerOf(box("ftyp", "isom", "iso2", "avc1", "mp41"))).toBe("mp4");
    expect(videoContainerOf(box("ftyp", "qt  ", "qt  "))).toBe("mp4");
    expect(videoContainerOf(box("ftyp", "M4A ", "M4A ", "mp42"))).toBe("mp4");
    expect(videoContainerOf(Uint8Array.of(0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81))).toBe("matroska");
    expect(videoContainerOf(box("ftyp", "heic", "mif1", "heic"))).toBeUndefined();
    expect(videoContainerOf(box("ftyp", "avif", "avif", "mif1", "miaf"))).toBeUndefined();
    expect(videoContainerOf(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46))).toBeUndefined();
    expect(videoContainerOf(ascii("\x89PNG\r\n\x1a\n"))).toBeUndefined();
  });
});

describe("findVideoTools", () => {
  it("finds nothing on an empty PATH without the npm packages, and says how to install ffmpeg", async () => {
    const config = { ffmpeg: undefined, path: [join(tmpdir(), "no-such-folder")] };
    expect(await findVideoTools({ config, packages: false })).toBeUndefined();
    const error = await requireVideoTools("cat.mp4", { config, packages: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).toLine()).toBe(
      `cat.mp4 is a video, and reading videos needs ffmpeg, which was not found — ${FFMPEG_INSTALL_HINT}`,
    );
  });

  it("falls back to the optional npm packages' static builds when PATH has no ffmpeg", async () => {
    const tools = await findVideoTools({ config: { ffmpeg: undefined, path: [] } });
    if (!tools) {
      console.warn(
        "[skip] npm ffmpeg fallback: the optional @ffmpeg-installer/@ffprobe-installer builds are not installed",
      );
      return;
    }
    expect(tools.source).toBe("npm package");
    expect(tools.ffmpeg).toContain("@ffmpeg-installer");
    expect(tools.ffprobe).toContain("@ffprobe-installer");
    expect(await ffmpegVersion(tools)).toMatch(/^ffmpeg version /);
  });

  it("refuses a PERSAM_DB_FFMPEG that is not a program, in one line", async () => {
    const config = { ffmpeg: join(tmpdir(), "not-ffmpeg"), path: [] };
    await expect(findVideoTools({ config, packages: false })).rejects.toThrow(
      /PERSAM_DB_FFMPEG=.* is not a program/,
    );
  });
});

const tools = await videoToolsOrSkip("video frames");

describe.skipIf(!tools)("frames through ffmpeg", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "persam-video-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const t = () => tools!;

  it("turns a phone's rotated clip upright and reports the shown size", async () => {
    const path = join(dir, "portrait.mp4");
    const upright = quadrants(64, 48);
    await writeVideo({
      tools: t(),
      path,
      frames: Array(10).fill(upright),
      width: 64,
      height: 48,
      rotate: 90,
    });
    const info = await probeVideo({ tools: t(), path });
    expect([info.rotation === 90 || info.rotation === 270, info.width, info.height]).toEqual([true, 48, 64]);
    const frames = [];
    for await (const f of sampleFrames({
      tools: t(),
      path,
      shown: "portrait.mp4",
      info,
      fps: 2,
      width: 24,
      height: 32,
    })) {
      frames.push(f);
    }
    expect(frames.map((f) => f.time)).toEqual([0, 0.5]);
    const img = frames[0]!.image;
    expect([img.width, img.height]).toEqual([24, 32]);
    const at = (x: number, y: number): number => {
      const i = (y * img.width + x) * 3;
      return quadrantOf(img.data[i]!, img.data[i + 1]!, img.data[i + 2]!);
    };
    // Red (0) was top-left of the stored picture: a quarter turn puts it top-right or bottom-left.
    const corners = [at(3, 3), at(20, 3), at(3, 28), at(20, 28)];
    expect(corners).toEqual(info.rotation === 90 ? [2, 0, 3, 1] : [1, 3, 0, 2]);
  });

  it("gives chosen samples again at full size, the same pictures as the small pass", async () => {
    const path = join(dir, "count.mp4");
    const frames = Array.from({ length: 30 }, (_, i) => {
      const p = quadrants(80, 60);
      // A bar whose position is the frame number: every sample differs.
      for (let y = 0; y < 60; y++)
        for (let x = i * 2; x < i * 2 + 4; x++) p.data.set([0, 0, 0], (y * 80 + x) * 3);
      return p;
    });
    await writeVideo({ tools: t(), path, frames, width: 80, height: 60, fps: 10 });
    const info = await probeVideo({ tools: t(), path });
    expect(info.duration).toBeCloseTo(3, 1);
    const small = [];
    for await (const f of sampleFrames({
      tools: t(),
      path,
      shown: "count.mp4",
      info,
      fps: 4,
      width: 40,
      height: 30,
    })) {
      small.push(f);
    }
    expect(small.map((f) => f.index)).toEqual([...Array(12).keys()]);
    const big = [];
    for await (const f of sampleFrames({
      tools: t(),
      path,
      shown: "count.mp4",
      info,
      fps: 4,
      width: 80,
      height: 60,
      only: [3, 9],
    })) {
      big.push(f);
    }
    expect(big.map((f) => [f.index, f.time, f.image.width])).toEqual([
      [3, 0.75, 80],
      [9, 2.25, 80],
    ]);
    // The bar of sample 9 (video frame 22 or 23) sits where the small pass saw it.
    const barX = (img: { data: Uint8Array; width: number }, row: number): number => {
      for (let x = 0; x < img.width; x++)
        if (Math.max(...img.data.subarray((row * img.width + x) * 3, (row * img.width + x) * 3 + 3)) < 80)
          return x / img.width;
      return -1;
    };
    expect(barX(big[1]!.image, 5)).toBeCloseTo(barX(small[9]!.image, 2), 1);
  });

  it("reads odd sizes, 10-bit and variable frame rate clips", async () => {
    const odd = join(dir, "odd.mkv");
    await writeVideo({
      tools: t(),
      path: odd,
      frames: Array(20).fill(quadrants(33, 25)),
      width: 33,
      height: 25,
    });
    const oddInfo = await probeVideo({ tools: t(), path: odd });
    expect([oddInfo.width, oddInfo.height]).toEqual([33, 25]);
    const ten = join(dir, "ten.mp4");
    await ffmpeg(t(), [
      "-f",
      "lavfi",
      "-i",
      "testsrc=size=64x48:rate=10",
      "-t",
      "1",
      "-c:v",
      "libx264",
      "-pix_fmt",
      "yuv420p10le",
      ten,
    ]);
    const tenInfo = await probeVideo({ tools: t(), path: ten });
    expect(tenInfo.bitDepth).toBe(10);
    const vfr = join(dir, "vfr.mkv");
    // Frames at uneven times, as phones record them.
    await ffmpeg(t(), [
      "-f",
      "lavfi",
      "-i",
      "testsrc=size=64x48:rate=30",
      "-t",
      "2",
      "-vf",
      "select='not(mod(n,3))+eq(n,1)+eq(n,2)*lt(t,1)'",
      "-fps_mode",
      "vfr",
      "-c:v",
      "libx264",
      vfr,
    ]).catch(() =>
      ffmpeg(t(), [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=30",
        "-t",
        "2",
        "-vf",
        "select='not(mod(n,3))+eq(n,1)+eq(n,2)*lt(t,1)'",
        "-vsync",
        "vfr",
        "-c:v",
        "libx264",
        vfr,
      ]),
    );
    for (const [path, info] of [
      [odd, oddInfo],
      [ten, tenInfo],
      [vfr, await probeVideo({ tools: t(), path: vfr })],
    ] as const) {
      let n = 0;
      for await (const f of sampleFrames({
        tools: t(),
        path,
        shown: path,
        info,
        fps: 2,
        width: 16,
        height: 12,
      })) {
        expect(f.image.data.length).toBe(16 * 12 * 3);
        n++;
      }
      expect([path, n >= 2]).toEqual([path, true]);
    }
  });

  it("says in one line that a truncated, audio-only or empty file is not a video it can read", async () => {
    const cut = join(dir, "cut.mp4");
    await writeVideo({
      tools: t(),
      path: cut,
      frames: Array(20).fill(quadrants(64, 48)),
      width: 64,
      height: 48,
    });
    await truncate(cut, 600);
    const cutError = await probeVideo({ tools: t(), path: cut, shown: "cut.mp4" }).catch((e: unknown) => e);
    expect(cutError).toBeInstanceOf(UserError);
    expect((cutError as UserError).toLine()).toMatch(
      /^Cannot read the video cut\.mp4 \(.+\) — the file may be truncated/,
    );
    expect((cutError as UserError).toLine()).not.toContain("\n");
    const audio = join(dir, "sound.m4a");
    await ffmpeg(t(), ["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", audio]);
    await expect(probeVideo({ tools: t(), path: audio, shown: "sound.m4a" })).rejects.toThrow(
      "sound.m4a has sound but no picture (audio only)",
    );
    const empty = join(dir, "empty.mp4");
    await writeFile(empty, "");
    await expect(probeVideo({ tools: t(), path: empty, shown: "empty.mp4" })).rejects.toThrow(
      /^Cannot read the video empty\.mp4/,
    );
  });

  it("kills ffmpeg when the caller aborts or stops reading", async () => {
    const long = join(dir, "long.mp4");
    await ffmpeg(t(), [
      "-f",
      "lavfi",
      "-i",
      "testsrc=size=320x240:rate=25",
      "-t",
      "40",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      long,
    ]);
    const info = await probeVideo({ tools: t(), path: long });
    const controller = new AbortController();
    const read = async (): Promise<number> => {
      let n = 0;
      for await (const _ of sampleFrames({
        tools: t(),
        path: long,
        shown: "long.mp4",
        info,
        fps: 25,
        width: 320,
        height: 240,
        signal: controller.signal,
      })) {
        if (++n === 3) controller.abort();
      }
      return n;
    };
    await expect(read()).rejects.toThrow(/abort/i);
    let n = 0;
    for await (const _ of sampleFrames({
      tools: t(),
      path: long,
      shown: "long.mp4",
      info,
      fps: 25,
      width: 320,
      height: 240,
    })) {
      if (++n === 2) break;
    }
    expect(n).toBe(2);
  });
});
