// Frames out of a video, streamed from ffmpeg through a pipe one raw RGB frame at a time (never the
// whole video in memory): a regular sampling at a given size, and chosen samples again at full size.
// ffmpeg turns the picture as the phone recorded it (rotation metadata) and makes pixels square;
// HDR clips are tone-mapped to SDR when this ffmpeg can. A stalled ffmpeg is killed, as is one whose
// caller stops reading or aborts.

import { spawn } from "node:child_process";
import { UserError } from "../errors.js";
import { ffmpegReason, type VideoInfo } from "./probe-video.js";
import { ffmpegFilters, type VideoTools } from "./video-tools.js";

/** One frame: upright sRGB 8-bit RGB pixels (the `RgbImage` of image-io). */
export interface VideoFrame {
  /** Position in the sampling (0, 1, 2, … at `fps` per second). */
  readonly index: number;
  /** Seconds from the start of the video. */
  readonly time: number;
  readonly image: { data: Uint8Array; width: number; height: number; channels: 3 };
}

/** Parameters of {@link sampleFrames}. */
export interface SampleFramesParams {
  readonly tools: VideoTools;
  readonly path: string;
  /** The file as the user should read it in messages. */
  readonly shown: string;
  readonly info: VideoInfo;
  /** Samples per second of video. */
  readonly fps: number;
  /** Size of the frames given back (the shown picture scaled to it). */
  readonly width: number;
  readonly height: number;
  /**
   * Only these sample indices (ascending); ffmpeg stops after the last.
   * @default every sample
   */
  readonly only?: readonly number[] | undefined;
  /**
   * ffmpeg is killed when it gives no frame for this long.
   * @default 120 s
   */
  readonly stallMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Told once when the clip is HDR and this ffmpeg cannot tone-map it. */
  readonly onWarning?: ((message: string) => void) | undefined;
}

/**
 * The video's samples at `fps` per second, each at `width × height`: sample `i` is the frame shown at
 * `i / fps` seconds (ffmpeg's fps filter), so the same settings give the same frames, and `only`
 * picks samples of an earlier pass again (at another size).
 * @throws UserError naming the file when ffmpeg fails or stalls, or gives no frame at all;
 *   AbortError when `signal` aborts (ffmpeg is killed).
 */
export async function* sampleFrames(params: SampleFramesParams): AsyncGenerator<VideoFrame> {
  const { width, height, fps } = params;
  if (!(fps > 0) || !Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Expected a positive fps and size but received ${fps}, ${width}×${height}`);
  }
  const only = params.only;
  if (only !== undefined && only.length === 0) return;
  const filters = [`fps=${fps}`];
  if (only !== undefined) filters.push(`select='${only.map((n) => `eq(n,${n})`).join("+")}'`);
  filters.push(...(await toneMap(params)));
  // Area averaging when shrinking (no aliasing on fine texture), bicubic otherwise; square pixels.
  const shrink = width * height < params.info.width * params.info.height;
  filters.push(`scale=${width}:${height}:flags=${shrink ? "area" : "bicubic"}`, "setsar=1", "format=rgb24");
  const args = [
    "-nostdin",
    "-hide_banner",
    "-loglevel",
    "error",
    "-i",
    params.path,
    "-map",
    "0:v:0",
    "-an",
    "-sn",
    "-dn",
    "-vf",
    filters.join(","),
    ...(only !== undefined ? ["-frames:v", String(only.length)] : []),
    // Each selected frame once, at its own time: no frame repeated to fill the gaps between them
    // (`-vsync` rather than `-fps_mode`: older ffmpeg builds know only the former).
    "-vsync",
    "passthrough",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "pipe:1",
  ];
  params.signal?.throwIfAborted();
  const child = spawn(params.tools.ffmpeg, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-8192);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on("close", (code) => resolve(code));
    child.on("error", () => resolve(-1));
  });
  const stallMs = params.stallMs ?? 120_000;
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      child.kill("SIGKILL");
    }, stallMs);
  };
  const onAbort = (): void => {
    child.kill("SIGKILL");
  };
  params.signal?.addEventListener("abort", onAbort, { once: true });
  const frameBytes = width * height * 3;
  let frame = new Uint8Array(frameBytes);
  let filled = 0;
  let count = 0;
  try {
    arm();
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      arm();
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(frameBytes - filled, chunk.length - offset);
        frame.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === frameBytes) {
          const index = only !== undefined ? only[count]! : count;
          count++;
          yield { index, time: index / fps, image: { data: frame, width, height, channels: 3 } };
          params.signal?.throwIfAborted();
          arm();
          frame = new Uint8Array(frameBytes);
          filled = 0;
        }
      }
    }
    const code = await exited;
    params.signal?.throwIfAborted();
    if (stalled) {
      throw new UserError(
        `ffmpeg gave no frame of ${params.shown} for ${Math.round(stallMs / 1000)} s and was stopped`,
        {
          hint: "the file may be damaged or on a slow drive; copy it to a local disk and try again",
        },
      );
    }
    if (code !== 0 && count === 0) {
      throw new UserError(`Cannot decode the video ${params.shown} (${ffmpegReason(stderr)})`, {
        hint: "the file may be truncated or damaged, or in a codec this ffmpeg lacks: convert it to H.264 MP4",
      });
    }
    if (count === 0) {
      throw new UserError(`No frame could be read from the video ${params.shown}`, {
        hint: "the file may be truncated: copy or export it again",
      });
    }
  } finally {
    clearTimeout(timer);
    params.signal?.removeEventListener("abort", onAbort);
    // The caller stopped early, failed or aborted: ffmpeg must not outlive the read.
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  }
}

/** Filters that bring an HDR clip to SDR, when this ffmpeg has zscale; none otherwise (with a warning). */
async function toneMap(params: SampleFramesParams): Promise<string[]> {
  const { hdr } = params.info;
  if (hdr === undefined) return [];
  const have = await ffmpegFilters(params.tools);
  if (!have.has("zscale") || !have.has("tonemap")) {
    params.onWarning?.(
      `${params.shown} is an HDR video (${hdr.toUpperCase()}) and this ffmpeg cannot tone-map it (no zscale filter): its frames may look washed out`,
    );
    return [];
  }
  return [
    "zscale=t=linear:npl=100",
    "format=gbrpf32le",
    "zscale=p=bt709",
    "tonemap=tonemap=hable:desat=0",
    "zscale=t=bt709:m=bt709:r=tv",
  ];
}
