// What a video file holds, from ffprobe: its picture size as shown (phone rotation and non-square
// pixels applied), duration, frame rate, bit depth and HDR transfer, or one line saying why it cannot
// be read (truncated, audio only, no frames). Also how a file's first bytes say "video".

import { z } from "zod";
import { firstLine, UserError } from "../errors.js";
import { ftypBrands } from "../image/iso-bmff.js";
import { runTool, type VideoTools } from "./video-tools.js";

/** A readable video stream, as frames will come out of ffmpeg. */
export interface VideoInfo {
  /** Size of the displayed picture: rotation applied, pixels made square. */
  readonly width: number;
  readonly height: number;
  /** Size as stored in the stream (before rotation). */
  readonly codedWidth: number;
  readonly codedHeight: number;
  /** Clockwise degrees the player turns the stored picture (0, 90, 180, 270). */
  readonly rotation: 0 | 90 | 180 | 270;
  /** Seconds. */
  readonly duration: number;
  /** Average frames per second (0 when unknown). */
  readonly frameRate: number;
  /** True when the average and the nominal frame rate differ (a phone's variable frame rate). */
  readonly variableFrameRate: boolean;
  readonly codec: string;
  readonly pixelFormat: string;
  /** Bits per sample (8 for most clips, 10 for HDR phone clips). */
  readonly bitDepth: number;
  /** `pq` or `hlg` for HDR clips. */
  readonly hdr: "pq" | "hlg" | undefined;
  /** The container's format names, as ffprobe gives them (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`). */
  readonly container: string;
}

const streamSchema = z.looseObject({
  index: z.number(),
  codec_type: z.string().optional(),
  codec_name: z.string().optional(),
  width: z.number().optional(),
  height: z.number().optional(),
  sample_aspect_ratio: z.string().optional(),
  pix_fmt: z.string().optional(),
  bits_per_raw_sample: z.string().optional(),
  color_transfer: z.string().optional(),
  r_frame_rate: z.string().optional(),
  avg_frame_rate: z.string().optional(),
  duration: z.string().optional(),
  nb_frames: z.string().optional(),
  disposition: z.looseObject({ attached_pic: z.number().optional() }).optional(),
  tags: z.record(z.string(), z.string()).optional(),
  side_data_list: z.array(z.looseObject({ rotation: z.number().optional() })).optional(),
});
const probeSchema = z.looseObject({
  streams: z.array(streamSchema).optional(),
  format: z.looseObject({ format_name: z.string().optional(), duration: z.string().optional() }).optional(),
});

/** Parameters of {@link probeVideo}. */
export interface ProbeVideoParams {
  readonly tools: VideoTools;
  readonly path: string;
  /** The file as the user should read it in messages. @default path */
  readonly shown?: string | undefined;
  /** @default 30 s */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Ask ffprobe what the video holds.
 * @throws UserError naming the file when it is not a video ffmpeg reads (truncated, damaged), holds
 *   no picture (audio only, a cover image only), or has no duration.
 */
export async function probeVideo(params: ProbeVideoParams): Promise<VideoInfo> {
  const shown = params.shown ?? params.path;
  const out = await runTool({
    program: params.tools.ffprobe,
    args: ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", "--", params.path],
    timeoutMs: params.timeoutMs ?? 30_000,
    signal: params.signal,
  });
  let parsed: z.infer<typeof probeSchema> | undefined;
  try {
    parsed = probeSchema.parse(JSON.parse(out.stdout.toString("utf8") || "{}"));
  } catch {
    parsed = undefined;
  }
  const streams = parsed?.streams ?? [];
  if (out.code !== 0 || parsed === undefined || (streams.length === 0 && out.stderr.trim() !== "")) {
    throw new UserError(`Cannot read the video ${shown} (${ffmpegReason(out.stderr)})`, {
      hint: "the file may be truncated or damaged: copy or export it again",
    });
  }
  const video = streams.find((s) => s.codec_type === "video" && s.disposition?.attached_pic !== 1);
  if (video === undefined) {
    const audio = streams.some((s) => s.codec_type === "audio");
    throw new UserError(`${shown} has ${audio ? "sound but no picture (audio only)" : "no video stream"}`, {
      hint: "give a video of the subject, or photos",
    });
  }
  const codedWidth = video.width ?? 0;
  const codedHeight = video.height ?? 0;
  if (codedWidth <= 0 || codedHeight <= 0) {
    throw new UserError(`The video ${shown} has no picture size (${video.codec_name ?? "unknown codec"})`, {
      hint: "the file may be damaged, or its codec is one ffmpeg cannot decode: convert it to H.264 MP4",
    });
  }
  const rotation = rotationOf(video);
  const sar = ratio(video.sample_aspect_ratio);
  const shownWidth =
    sar > 0 && Math.abs(sar - 1) > 1e-3 ? Math.max(1, Math.round(codedWidth * sar)) : codedWidth;
  const swap = rotation === 90 || rotation === 270;
  const duration = Number(video.duration ?? parsed.format?.duration ?? Number.NaN);
  if (!(duration > 0)) {
    throw new UserError(`The video ${shown} has no duration (no frame to read)`, {
      hint: "the file may be truncated: copy or export it again",
    });
  }
  const average = ratio(video.avg_frame_rate);
  const nominal = ratio(video.r_frame_rate);
  const transfer = video.color_transfer;
  const bits = Number(video.bits_per_raw_sample ?? Number.NaN);
  return {
    width: swap ? codedHeight : shownWidth,
    height: swap ? shownWidth : codedHeight,
    codedWidth,
    codedHeight,
    rotation,
    duration,
    frameRate: average > 0 ? average : Math.max(nominal, 0),
    variableFrameRate: average > 0 && nominal > 0 && Math.abs(average - nominal) / nominal > 0.01,
    codec: video.codec_name ?? "unknown",
    pixelFormat: video.pix_fmt ?? "unknown",
    bitDepth:
      Number.isFinite(bits) && bits > 0 ? bits : /1[02]le|1[02]be|p010/.test(video.pix_fmt ?? "") ? 10 : 8,
    hdr: transfer === "smpte2084" ? "pq" : transfer === "arib-std-b67" ? "hlg" : undefined,
    container: parsed.format?.format_name ?? "unknown",
  };
}

/** The clockwise rotation a player applies: the display matrix (ffprobe's `rotation` is counter-clockwise), else the old `rotate` tag. */
function rotationOf(stream: z.infer<typeof streamSchema>): VideoInfo["rotation"] {
  const matrix = stream.side_data_list?.find((d) => d.rotation !== undefined)?.rotation;
  const degrees = matrix !== undefined ? -matrix : Number(stream.tags?.rotate ?? 0);
  const r = (((Math.round(degrees / 90) * 90) % 360) + 360) % 360;
  return r === 90 || r === 180 || r === 270 ? r : 0;
}

function ratio(text: string | undefined): number {
  if (text === undefined) return 0;
  const [a, b] = text.split(/[/:]/).map(Number);
  return a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) ? a / b : 0;
}

/** The useful part of ffmpeg's complaint: its last non-empty line, without the `[mov,mp4 @ 0x…]` prefix. */
export function ffmpegReason(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/, "").trim())
    .filter((l) => l !== "");
  const line = lines.find((l) => /invalid|error|not found|truncat|corrupt|no such|unsupported/i.test(l));
  return firstLine(line ?? lines[lines.length - 1] ?? "ffmpeg gave no reason").slice(0, 200);
}

/** ISO-BMFF brands of still images (HEIC, AVIF and their sequences): not videos. */
const IMAGE_BRANDS: ReadonlySet<string> = new Set([
  "heic",
  "heix",
  "heim",
  "heis",
  "hevc",
  "hevx",
  "mif1",
  "msf1",
  "avif",
  "avis",
  "avio",
  "jpeg",
  "jpgs",
  "crx ",
]);

/**
 * The kind of video container a file's first bytes show: `mp4` for ISO base media files (MP4, MOV,
 * M4V, 3GP, and sound-only M4A, which ffprobe then reports), `mov` for QuickTime files without an
 * `ftyp` box, `matroska` for Matroska and WebM, `avi`; undefined for anything else (photos included:
 * HEIC and AVIF share MP4's box format but name image brands).
 */
export function videoContainerOf(head: Uint8Array): "mp4" | "mov" | "matroska" | "avi" | undefined {
  const text = (from: number, to: number): string =>
    head.length >= to ? String.fromCharCode(...head.subarray(from, to)) : "";
  if (head.length >= 4 && head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) {
    return "matroska";
  }
  if (text(0, 4) === "RIFF" && text(8, 12) === "AVI ") return "avi";
  const brands = ftypBrands(head);
  if (brands !== undefined) return brands.some((b) => IMAGE_BRANDS.has(b)) ? undefined : "mp4";
  const box = text(4, 8);
  // QuickTime files from old cameras start with another top-level box.
  if (["moov", "mdat", "wide", "free", "skip"].includes(box) && head.length >= 8) return "mov";
  return undefined;
}
