// Test videos made at test time with ffmpeg (never shipped): frames from generated or fixture photos,
// a pan and zoom over a photo, blurred, repeated and subject-free frames, a rotation tag. Tests that
// need them skip with a visible line when no ffmpeg is found.

import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import sharp from "sharp";
import { findVideoTools, type VideoTools } from "../../src/video/video-tools.js";
import type { Pixels } from "./photos.js";

/** ffmpeg and ffprobe, or undefined after a visible `[skip]` line naming the suite. */
export async function videoToolsOrSkip(suite: string): Promise<VideoTools | undefined> {
  const tools = await findVideoTools();
  if (!tools) console.warn(`[skip] ${suite}: no ffmpeg (install it: apt-get install ffmpeg)`);
  return tools;
}

/** Parameters of {@link writeVideo}. */
export interface WriteVideoParams {
  readonly tools: VideoTools;
  readonly path: string;
  /** Frames, all of one size. */
  readonly frames: Iterable<Pixels> | AsyncIterable<Pixels>;
  readonly width: number;
  readonly height: number;
  /** @default 10 */
  readonly fps?: number;
  /** @default ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv444p"] */
  readonly codecArgs?: readonly string[];
  /** Clockwise rotation a player applies (a phone's portrait clip). */
  readonly rotate?: 90 | 180 | 270;
}

/** Encode raw frames into a video file with ffmpeg (frames piped in, nothing on disk but the file). */
export async function writeVideo(params: WriteVideoParams): Promise<void> {
  const { tools, width, height } = params;
  const target = params.rotate === undefined ? params.path : `${params.path}.plain.mp4`;
  await ffmpeg(
    tools,
    [
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-s",
      `${width}x${height}`,
      "-r",
      String(params.fps ?? 10),
      "-i",
      "pipe:0",
      ...(params.codecArgs ?? [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "10",
        "-pix_fmt",
        "yuv444p",
      ]),
      target,
    ],
    params.frames,
    width * height * 3,
  );
  if (params.rotate !== undefined) {
    // The rotation as phones store it: a display matrix in the container, the pixels unturned.
    await ffmpeg(tools, [
      "-i",
      target,
      "-c",
      "copy",
      "-metadata:s:v:0",
      `rotate=${params.rotate}`,
      params.path,
    ]);
    await rm(target, { force: true });
  }
}

/** Run ffmpeg (overwriting its output), feeding `frames` to its stdin when given. */
export async function ffmpeg(
  tools: VideoTools,
  args: readonly string[],
  frames?: Iterable<Pixels> | AsyncIterable<Pixels>,
  frameBytes?: number,
): Promise<void> {
  const child = spawn(
    tools.ffmpeg,
    ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", ...args].filter(
      (a) => !(frames && a === "-nostdin"),
    ),
    {
      stdio: [frames ? "pipe" : "ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const done = new Promise<number | null>((resolve) => child.on("close", resolve));
  if (frames) {
    const stdin = child.stdin!;
    for await (const f of frames) {
      if (f.data.length !== frameBytes)
        throw new Error(`frame of ${f.data.length} bytes, expected ${frameBytes}`);
      if (!stdin.write(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength))) {
        await new Promise((resolve) => stdin.once("drain", resolve));
      }
    }
    stdin.end();
  }
  const code = await done;
  if (code !== 0) throw new Error(`ffmpeg ${args.join(" ")} failed (${code}): ${stderr}`);
}

/** A view of `photo`: the rectangle (fractions of its size) resized to `width × height`. */
export async function viewOf(
  photo: string | Pixels,
  rect: { readonly x: number; readonly y: number; readonly w: number; readonly h: number },
  width: number,
  height: number,
  blurSigma = 0,
): Promise<Pixels> {
  const input =
    typeof photo === "string"
      ? sharp(photo).rotate()
      : sharp(photo.data, { raw: { width: photo.width, height: photo.height, channels: 3 } });
  const { width: W, height: H } =
    typeof photo === "string"
      ? await sharp(photo)
          .rotate()
          .toBuffer({ resolveWithObject: true })
          .then((r) => r.info)
      : photo;
  const left = Math.max(0, Math.min(W - 2, Math.round(rect.x * W)));
  const top = Math.max(0, Math.min(H - 2, Math.round(rect.y * H)));
  const w = Math.max(2, Math.min(W - left, Math.round(rect.w * W)));
  const h = Math.max(2, Math.min(H - top, Math.round(rect.h * H)));
  let pipeline = input.extract({ left, top, width: w, height: h }).resize(width, height, { fit: "fill" });
  if (blurSigma > 0)
    pipeline = sharp(await pipeline.removeAlpha().raw().toBuffer(), {
      raw: { width, height, channels: 3 },
    }).blur(blurSigma);
  const data = await pipeline.removeAlpha().raw().toBuffer();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}
