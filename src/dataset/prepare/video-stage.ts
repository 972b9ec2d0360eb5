// The videos of `prepare`: probed when planning (a bad video is one line, the other inputs go on),
// sampled into candidate frames at the encoder's size (cached by the video's content and the sampling
// settings), each candidate segmented with the run's reference and measured, frames chosen
// (frame-choice.ts), and the chosen ones decoded again at full resolution into `.persam/frames/` where
// they become photos of the set (`<video>-t012.5`). A rerun with the same video, settings and
// reference reuses the last choice without ffmpeg.

import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { isUserError } from "../../errors.js";
import { encodePng } from "../../image/image-io.js";
import type { PhotoLoader } from "../../image/photo-loader.js";
import type { ResolvedReference } from "../../segment/persam/reference-source.js";
import { segmentPhoto } from "../../segment/persam/segment-photos.js";
import type { PhotoEncoder } from "../../segment/sam/photo-encoder.js";
import { maskBox } from "../../segment/sam/postprocess.js";
import { preprocessShape } from "../../segment/sam/preprocess.js";
import { ENCODER_SIDE } from "../../segment/sam/sam-constants.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { round3 } from "../../util/numbers.js";
import { probeVideo, type VideoInfo } from "../../video/probe-video.js";
import { sampleFrames } from "../../video/read-frames.js";
import { findVideoTools, noFfmpegError, type VideoTools } from "../../video/video-tools.js";
import { differenceHash, type PhotoMeasure, sharpness, subjectFeature } from "../curation.js";
import { chooseFrames, defaultMinGap, type FrameCandidate, type FrameVerdict } from "../frame-choice.js";
import {
  CANDIDATES_DIR,
  FRAMES_DIR,
  filesIntact,
  type PrepareState,
  recordOf,
  type StateStore,
  settingsHash,
  type VideoState,
} from "../prepare-state.js";
import type { VideoReport } from "../report.js";
import type { ScannedPhoto, ScannedVideo } from "../scan.js";
import type { InputScan } from "./scan-stage.js";

/** Default samples per second of video. */
export const DEFAULT_FPS = 2;
/** Default frames chosen per video. */
export const DEFAULT_FRAMES = 12;
/** Candidates per video that the automatic reference looks at (spread over the video). */
const REFERENCE_CANDIDATES = 6;

/** The video settings of a run. */
export interface VideoSettings {
  readonly fps: number;
  readonly frames: number;
  readonly maxPixels: number;
}

/** A video of the input as planned. */
export interface PlannedVideo {
  readonly video: ScannedVideo;
  readonly info: VideoInfo;
  /** Size of the candidates: the shown picture scaled as the encoder scales it (never enlarged). */
  readonly sampleWidth: number;
  readonly sampleHeight: number;
  readonly samplingKey: string;
  /** The last run's frames, when its choice stands for this run. */
  readonly reused?: readonly ScannedPhoto[] | undefined;
}

/** What planning the videos gave. */
export interface VideoPlan {
  readonly tools: VideoTools | undefined;
  /** Readable videos, in scan order. */
  readonly videos: readonly PlannedVideo[];
  /** Unreadable videos: the one-line reason, by stem. */
  readonly failed: ReadonlyMap<string, string>;
}

/** Parameters of {@link probeVideos}. */
export interface ProbeVideosParams {
  readonly videos: readonly ScannedVideo[];
  readonly settings: VideoSettings;
  /** ffmpeg and ffprobe; `null`: none (each video is then one line); undefined: looked up. */
  readonly tools?: VideoTools | null | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Probe each video with ffprobe. Without ffmpeg, or for a video ffmpeg cannot read, the video is left
 * out with one line; photo folders never look for ffmpeg.
 */
export async function probeVideos(
  params: ProbeVideosParams,
): Promise<Omit<VideoPlan, "videos"> & { videos: PlannedVideo[] }> {
  const failed = new Map<string, string>();
  const videos: PlannedVideo[] = [];
  if (params.videos.length === 0) return { tools: undefined, videos, failed };
  const tools = params.tools === null ? undefined : (params.tools ?? (await findVideoTools()));
  if (tools === undefined) {
    for (const v of params.videos) failed.set(v.stem, noFfmpegError(v.relPath).toLine());
    return { tools, videos, failed };
  }
  for (const video of params.videos) {
    params.signal?.throwIfAborted();
    try {
      const info = await probeVideo({ tools, path: video.path, shown: video.relPath, signal: params.signal });
      if (info.width * info.height > params.settings.maxPixels) {
        failed.set(
          video.stem,
          `${video.relPath}: its frames are ${info.width}×${info.height}, more than the pixel limit — raise --max-pixels`,
        );
        continue;
      }
      const [h, w] =
        Math.max(info.width, info.height) <= ENCODER_SIDE
          ? [info.height, info.width]
          : preprocessShape(info.height, info.width);
      videos.push({
        video,
        info,
        sampleWidth: w,
        sampleHeight: h,
        samplingKey: settingsHash({ v: "sampling-1", fps: params.settings.fps, width: w, height: h }),
      });
    } catch (error) {
      if (!isUserError(error)) throw error;
      failed.set(video.stem, error.toLine());
    }
  }
  return { tools, videos, failed };
}

/** The choice key of a video: its sampling, the frames wanted and the segmentation that judged them. */
export function choiceKey(
  v: PlannedVideo,
  settings: VideoSettings,
  segmentationKey: string | undefined,
): string | undefined {
  if (segmentationKey === undefined) return undefined;
  return settingsHash({
    v: "choice-1",
    sampling: v.samplingKey,
    frames: settings.frames,
    segmentation: segmentationKey,
  });
}

/**
 * The last run's frames of each video whose choice stands (same video, sampling, frames wanted and
 * segmentation; frame files intact). Fills `reused` in place of the plan's videos.
 */
export async function reuseChoices(params: {
  readonly videos: readonly PlannedVideo[];
  readonly state: PrepareState;
  readonly outDir: string;
  readonly settings: VideoSettings;
  readonly segmentationKey: string | undefined;
}): Promise<PlannedVideo[]> {
  const out: PlannedVideo[] = [];
  for (const v of params.videos) {
    const last = params.state.videos?.[v.video.stem];
    const key = choiceKey(v, params.settings, params.segmentationKey);
    const stands =
      last !== undefined &&
      key !== undefined &&
      last.sha256 === v.video.sha256 &&
      last.choice === key &&
      (await filesIntact(params.outDir, Object.fromEntries(last.frames.map((f) => [f.file, f.record]))));
    out.push(stands ? { ...v, reused: framePhotos(v.video, last) } : { ...v, reused: undefined });
  }
  return out;
}

/** The frames of a video state as photos of the set. */
function framePhotos(video: ScannedVideo, state: VideoState): ScannedPhoto[] {
  return state.frames.map((f) => ({
    path: "", // filled by withFrames (needs the output folder)
    relPath: frameRelPath(video.relPath, f.time),
    stem: f.stem,
    size: f.record.size,
    sha256: f.record.sha256,
    format: "png",
    width: f.width,
    height: f.height,
    frameOf: { video: video.relPath, time: f.time, index: f.index },
  }));
}

/** How a frame is named in reports: the video and the time, as a media fragment (`cat.mp4#t=12.5`). */
export function frameRelPath(videoRelPath: string, time: number): string {
  return `${videoRelPath}#t=${Number(time.toFixed(2))}`;
}

/** The input with the frames as photos (their paths in the output folder), in the order videos came. */
export function withFrames(input: InputScan, outDir: string, frames: readonly ScannedPhoto[]): InputScan {
  const placed = frames.map((f) => ({ ...f, path: join(outDir, FRAMES_DIR, `${f.stem}.png`) }));
  const photos = [...input.scan.photos.filter((p) => !p.frameOf), ...placed];
  return {
    ...input,
    scan: { ...input.scan, photos },
    good: [...input.good.filter((p) => !p.frameOf), ...placed],
  };
}

/** A sampled candidate frame, as a PNG in the candidates folder. */
export interface CandidateFrame {
  readonly index: number;
  readonly time: number;
  readonly path: string;
  readonly sha256: string;
}

const candidateIndex = z.strictObject({
  key: z.string(),
  frames: z.array(
    z.strictObject({ index: z.number().int(), time: z.number(), file: z.string(), sha256: z.string() }),
  ),
});

/** The folder of a video's candidates for one sampling. */
function candidatesDir(outDir: string, v: PlannedVideo): string {
  return join(outDir, CANDIDATES_DIR, `${v.video.sha256.slice(0, 16)}-${v.samplingKey}`);
}

/**
 * The video's candidate frames: from the cache when this video was sampled with these settings
 * before, else streamed from ffmpeg and written as PNGs (index written last: an interrupted sampling
 * is redone).
 * @throws UserError when ffmpeg cannot decode the video.
 */
export async function sampleVideo(params: {
  readonly tools: VideoTools;
  readonly video: PlannedVideo;
  readonly outDir: string;
  readonly fps: number;
  readonly signal?: AbortSignal | undefined;
  readonly onWarning?: ((message: string) => void) | undefined;
}): Promise<CandidateFrame[]> {
  const { video: v, outDir } = params;
  const dir = candidatesDir(outDir, v);
  const indexPath = join(dir, "index.json");
  const cached = await readFile(indexPath, "utf8")
    .then((text) => candidateIndex.parse(JSON.parse(text)))
    .catch(() => undefined);
  if (cached && cached.key === v.samplingKey) {
    return cached.frames.map((f) => ({
      index: f.index,
      time: f.time,
      path: join(dir, f.file),
      sha256: f.sha256,
    }));
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const frames: CandidateFrame[] = [];
  for await (const frame of sampleFrames({
    tools: params.tools,
    path: v.video.path,
    shown: v.video.relPath,
    info: v.info,
    fps: params.fps,
    width: v.sampleWidth,
    height: v.sampleHeight,
    signal: params.signal,
    onWarning: params.onWarning,
  })) {
    // PNG (lossless): sharpness and hashes are measured on exactly what ffmpeg decoded.
    const png = await encodePng(frame.image);
    const file = `${String(frame.index).padStart(5, "0")}.png`;
    await writeFileAtomic(join(dir, file), png);
    frames.push({
      index: frame.index,
      time: frame.time,
      path: join(dir, file),
      sha256: recordOf(png).sha256,
    });
  }
  await writeFileAtomic(
    indexPath,
    JSON.stringify({
      key: v.samplingKey,
      frames: frames.map((f) => ({
        index: f.index,
        time: f.time,
        file: `${String(f.index).padStart(5, "0")}.png`,
        sha256: f.sha256,
      })),
    }),
  );
  return frames;
}

/** A sampled frame offered to the reference stage, with the names a report gives it. */
export interface ReferenceCandidate {
  readonly path: string;
  readonly sha256: string;
  /** `cat-t012.5`. */
  readonly stem: string;
  /** `cat.mp4#t=12.5`. */
  readonly file: string;
}

/** A few samples of every video, spread over it, for the automatic reference. */
export function referenceCandidates(
  plan: VideoPlan,
  samples: ReadonlyMap<string, readonly CandidateFrame[]>,
): ReferenceCandidate[] {
  return plan.videos.flatMap((v) =>
    spread(samples.get(v.video.stem) ?? []).map((c) => ({
      path: c.path,
      sha256: c.sha256,
      stem: frameStem(v.video.stem, c.time),
      file: frameRelPath(v.video.relPath, c.time),
    })),
  );
}

function spread(frames: readonly CandidateFrame[]): CandidateFrame[] {
  if (frames.length <= REFERENCE_CANDIDATES) return [...frames];
  return Array.from(
    { length: REFERENCE_CANDIDATES },
    (_, i) => frames[Math.round(((i + 0.5) * frames.length) / REFERENCE_CANDIDATES - 0.5)]!,
  );
}

/** Parameters of {@link chooseVideoFrames}. */
export interface ChooseVideoFramesParams {
  readonly tools: VideoTools;
  readonly video: PlannedVideo;
  readonly candidates: readonly CandidateFrame[];
  readonly encoder: PhotoEncoder;
  readonly loader: PhotoLoader;
  readonly reference: ResolvedReference;
  readonly mode: ResolvedReference["mode"];
  readonly settings: VideoSettings;
  readonly choiceKey: string;
  readonly outDir: string;
  readonly store: StateStore;
  /** Stems already taken by photos (frames never collide with them). */
  readonly taken: ReadonlySet<string>;
  readonly signal?: AbortSignal | undefined;
  readonly onWarning?: ((message: string) => void) | undefined;
}

/**
 * Segment and measure every candidate, choose the frames, decode the chosen ones again at full
 * resolution into `.persam/frames/`, and record the choice in the state.
 * @returns the chosen frames as photos of the set.
 * @throws UserError when ffmpeg cannot decode the video again.
 */
export async function chooseVideoFrames(params: ChooseVideoFramesParams): Promise<ScannedPhoto[]> {
  const { video: v, settings, outDir } = params;
  const started = performance.now();
  const candidates: FrameCandidate[] = [];
  const unreadable: FrameVerdict[] = [];
  for (const c of params.candidates) {
    params.signal?.throwIfAborted();
    let image: Awaited<ReturnType<PhotoLoader["load"]>>;
    try {
      image = await params.loader.load(c.path);
    } catch (error) {
      if (!isUserError(error)) throw error;
      unreadable.push(droppedVerdict(c, `unreadable sample: ${error.toLine()}`));
      continue;
    }
    const outcome = await segmentPhoto({
      encoder: params.encoder,
      photo: { path: c.path, sha256: c.sha256, image },
      reference: params.reference,
      mode: params.mode,
    });
    if (outcome.status === "failed" || outcome.mask === undefined) {
      unreadable.push(droppedVerdict(c, outcome.status === "failed" ? outcome.reason : "no mask"));
      continue;
    }
    const box = maskBox(outcome.mask, image.width, image.height);
    const encoded = await params.encoder.encode({ path: c.path, sha256: c.sha256, image });
    const feature = subjectFeature(
      encoded.encoded.embedding,
      encoded.encoded.inputSize,
      outcome.mask,
      image.width,
      image.height,
    );
    const measure: PhotoMeasure = {
      sharpness: sharpness(image, box),
      hash: differenceHash(image),
      width: image.width,
      height: image.height,
      ...(box ? { box } : {}),
      ...(feature ? { feature: Array.from(feature) } : {}),
    };
    candidates.push({
      index: c.index,
      time: c.time,
      similarity: outcome.similarity.peak64Image,
      confidence: outcome.confidence.confidence,
      doubtful: outcome.doubtful,
      measure,
    });
  }
  const verdicts = [
    ...chooseFrames({
      candidates,
      count: settings.frames,
      minGap: defaultMinGap(v.info.duration, settings.frames),
    }),
    ...unreadable,
  ].sort((a, b) => a.index - b.index);
  const chosen = verdicts.filter((x) => x.chosen);
  const chooseMs = performance.now() - started;

  // The chosen samples again, at the size the video shows them.
  const t1 = performance.now();
  const frames: VideoState["frames"] = [];
  const taken = new Set([...params.taken].map((s) => s.toLowerCase()));
  await mkdir(join(outDir, FRAMES_DIR), { recursive: true });
  for await (const frame of sampleFrames({
    tools: params.tools,
    path: v.video.path,
    shown: v.video.relPath,
    info: v.info,
    fps: settings.fps,
    width: v.info.width,
    height: v.info.height,
    only: chosen.map((c) => c.index),
    signal: params.signal,
    onWarning: params.onWarning,
  })) {
    let stem = frameStem(v.video.stem, frame.time);
    if (taken.has(stem.toLowerCase())) stem = `${stem}-${frame.index}`;
    taken.add(stem.toLowerCase());
    const file = `${FRAMES_DIR}/${stem}.png`;
    const png = await encodePng(frame.image);
    await writeFileAtomic(join(outDir, file), png);
    frames.push({
      stem,
      index: frame.index,
      time: frame.time,
      file,
      record: recordOf(png),
      width: frame.image.width,
      height: frame.image.height,
    });
  }
  const report: VideoReport = {
    file: v.video.relPath,
    duration: round3(v.info.duration),
    width: v.info.width,
    height: v.info.height,
    rotation: v.info.rotation,
    frameRate: round3(v.info.frameRate),
    codec: v.info.codec,
    ...(v.info.hdr ? { hdr: v.info.hdr } : {}),
    fps: settings.fps,
    wanted: settings.frames,
    candidates: verdicts.map((x) => ({
      ...x,
      stem: frames.find((f) => f.index === x.index)?.stem,
    })),
    timingsMs: { chooseMs: Math.round(chooseMs), fullFramesMs: Math.round(performance.now() - t1) },
  };
  const state: VideoState = {
    relPath: v.video.relPath,
    sha256: v.video.sha256,
    sampling: v.samplingKey,
    choice: params.choiceKey,
    frames,
    report: { ...report },
  };
  await params.store.update((s) => {
    s.videos = { ...(s.videos ?? {}), [v.video.stem]: state };
  });
  const placed = framePhotos(v.video, state).map((f) => ({
    ...f,
    path: join(outDir, FRAMES_DIR, `${f.stem}.png`),
  }));
  return placed;
}

function droppedVerdict(c: CandidateFrame, reason: string): FrameVerdict {
  return {
    index: c.index,
    time: c.time,
    chosen: false,
    reason,
    score: 0,
    similarity: 0,
    confidence: 0,
    sharpness: 0,
  };
}

/** A frame's stem: the video's, then the time in tenths of a second (`cat-t012.5`). */
export function frameStem(videoStem: string, time: number): string {
  return `${videoStem}-t${time.toFixed(1).padStart(5, "0")}`;
}

/**
 * Remove what belongs to videos no longer in the input, or to an earlier choice or sampling:
 * frames not in `keepFrames`, candidate folders not in `keepSamplings`, states of gone videos.
 */
export async function removeStaleVideoFiles(params: {
  readonly outDir: string;
  readonly store: StateStore;
  readonly videos: readonly PlannedVideo[];
  readonly keepFrames: ReadonlySet<string>;
}): Promise<void> {
  const { outDir, store } = params;
  const stems = new Set(params.videos.map((v) => v.video.stem));
  const gone = Object.keys(store.state.videos ?? {}).filter((s) => !stems.has(s));
  if (gone.length > 0) {
    await store.update((s) => {
      for (const stem of gone) delete s.videos?.[stem];
    });
  }
  const frames = await readdir(join(outDir, FRAMES_DIR)).catch(() => [] as string[]);
  for (const name of frames) {
    if (!params.keepFrames.has(name.replace(/\.png$/, "")))
      await rm(join(outDir, FRAMES_DIR, name), { force: true });
  }
  const samplings = new Set(params.videos.map((v) => `${v.video.sha256.slice(0, 16)}-${v.samplingKey}`));
  const dirs = await readdir(join(outDir, CANDIDATES_DIR)).catch(() => [] as string[]);
  for (const name of dirs) {
    if (!samplings.has(name)) await rm(join(outDir, CANDIDATES_DIR, name), { recursive: true, force: true });
  }
}

/** Parameters of {@link sampleVideos}. */
export interface SampleVideosParams {
  readonly plan: VideoPlan;
  readonly outDir: string;
  readonly fps: number;
  readonly signal?: AbortSignal | undefined;
  readonly warn: (message: string) => void;
}

/**
 * The candidates of every readable video (cached ones read back). A video ffmpeg cannot decode is
 * left out with one line; the other inputs go on.
 */
export async function sampleVideos(params: SampleVideosParams): Promise<Map<string, CandidateFrame[]>> {
  const samples = new Map<string, CandidateFrame[]>();
  const { tools } = params.plan;
  if (!tools) return samples;
  for (const v of params.plan.videos) {
    params.signal?.throwIfAborted();
    try {
      samples.set(
        v.video.stem,
        await sampleVideo({
          tools,
          video: v,
          outDir: params.outDir,
          fps: params.fps,
          signal: params.signal,
          onWarning: params.warn,
        }),
      );
    } catch (error) {
      if (!isUserError(error)) throw error;
      params.warn(`skipped ${error.toLine()}`);
    }
  }
  return samples;
}

/** Parameters of {@link chooseVideos}. */
export interface ChooseVideosParams {
  readonly plan: VideoPlan;
  readonly samples: ReadonlyMap<string, readonly CandidateFrame[]>;
  readonly encoder: PhotoEncoder;
  readonly loader: PhotoLoader;
  readonly reference: ResolvedReference;
  readonly settings: VideoSettings;
  readonly segmentationKey: string;
  readonly outDir: string;
  readonly store: StateStore;
  /** Stems of the input's photos. */
  readonly taken: ReadonlySet<string>;
  readonly signal?: AbortSignal | undefined;
  readonly warn: (message: string) => void;
  readonly onVideo?: ((file: string, candidates: number, chosen: number) => void) | undefined;
}

/**
 * The frames of every video: the last run's where its choice stands for the resolved reference,
 * else chosen now from the candidates.
 * @returns the frames as photos of the set, video after video.
 */
export async function chooseVideos(params: ChooseVideosParams): Promise<ScannedPhoto[]> {
  const out: ScannedPhoto[] = [];
  const taken = new Set(params.taken);
  const { tools } = params.plan;
  for (const v of params.plan.videos) {
    params.signal?.throwIfAborted();
    const key = choiceKey(v, params.settings, params.segmentationKey)!;
    const last = params.store.state.videos?.[v.video.stem];
    if (v.reused && last?.choice === key) {
      out.push(...v.reused.map((f) => ({ ...f, path: join(params.outDir, FRAMES_DIR, `${f.stem}.png`) })));
      continue;
    }
    const candidates = params.samples.get(v.video.stem);
    if (!tools || !candidates) continue;
    try {
      const frames = await chooseVideoFrames({
        tools,
        video: v,
        candidates,
        encoder: params.encoder,
        loader: params.loader,
        reference: params.reference,
        mode: params.reference.mode,
        settings: params.settings,
        choiceKey: key,
        outDir: params.outDir,
        store: params.store,
        taken,
        signal: params.signal,
        onWarning: params.warn,
      });
      for (const f of frames) taken.add(f.stem);
      params.onVideo?.(v.video.relPath, candidates.length, frames.length);
      out.push(...frames);
    } catch (error) {
      if (!isUserError(error)) throw error;
      params.warn(`skipped ${error.toLine()}`);
    }
  }
  return out;
}

/** The report entries of the videos whose frames are in `frames`' set, from the state. */
export function videoReports(state: PrepareState, videos: readonly PlannedVideo[]): VideoReport[] {
  return videos
    .map((v) => state.videos?.[v.video.stem]?.report as VideoReport | undefined)
    .filter((r): r is VideoReport => r !== undefined);
}
