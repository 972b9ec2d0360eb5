// Finding ffmpeg and ffprobe, the one pair of programs that reads videos: an explicit binary
// (PERSAM_DB_FFMPEG), then PATH, then the static builds of the optional npm packages. Photos never
// need them; a video without them is one line saying how to install ffmpeg.

import { spawn } from "node:child_process";
import { access, constants, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type VideoToolsConfig, videoToolsConfig } from "../config.js";
import { UserError } from "../errors.js";

/** The two programs, as absolute paths. */
export interface VideoTools {
  readonly ffmpeg: string;
  readonly ffprobe: string;
  /** Where they were found. */
  readonly source: "PERSAM_DB_FFMPEG" | "PATH" | "npm package";
}

/** The one line for a video and no ffmpeg. */
export const FFMPEG_INSTALL_HINT =
  "install ffmpeg (Debian/Ubuntu: sudo apt install ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg), or npm install @ffmpeg-installer/ffmpeg @ffprobe-installer/ffprobe beside persam-db";

/** Parameters of {@link findVideoTools}. */
export interface FindVideoToolsParams {
  /** @default videoToolsConfig() (the process environment) */
  readonly config?: VideoToolsConfig | undefined;
  /**
   * Also look in the optional npm packages `@ffmpeg-installer/ffmpeg` and `@ffprobe-installer/ffprobe`.
   * @default true
   */
  readonly packages?: boolean | undefined;
}

const EXE = process.platform === "win32" ? ".exe" : "";

/**
 * Find ffmpeg and ffprobe: `PERSAM_DB_FFMPEG` (ffprobe beside it, else on PATH), else both on PATH,
 * else the optional npm packages' static builds. Undefined when there is no pair.
 * @throws UserError when PERSAM_DB_FFMPEG names something that is not a program.
 */
export async function findVideoTools(params: FindVideoToolsParams = {}): Promise<VideoTools | undefined> {
  const config = params.config ?? videoToolsConfig();
  const onPath = async (name: string): Promise<string | undefined> => {
    for (const dir of config.path) {
      const candidate = join(dir, `${name}${EXE}`);
      if (await isProgram(candidate)) return candidate;
    }
    return undefined;
  };
  if (config.ffmpeg !== undefined) {
    if (!(await isProgram(config.ffmpeg))) {
      throw new UserError(`PERSAM_DB_FFMPEG=${config.ffmpeg} is not a program`, {
        hint: "point it at an ffmpeg binary (with ffprobe beside it), or unset it to use the one on PATH",
      });
    }
    const beside = join(dirname(config.ffmpeg), `ffprobe${EXE}`);
    const ffprobe = (await isProgram(beside)) ? beside : await onPath("ffprobe");
    if (ffprobe === undefined) {
      throw new UserError(`No ffprobe beside PERSAM_DB_FFMPEG=${config.ffmpeg} nor on PATH`, {
        hint: "ffmpeg's builds ship ffprobe with it: put it in the same folder",
      });
    }
    return { ffmpeg: config.ffmpeg, ffprobe, source: "PERSAM_DB_FFMPEG" };
  }
  const ffmpeg = await onPath("ffmpeg");
  const ffprobe = await onPath("ffprobe");
  if (ffmpeg !== undefined && ffprobe !== undefined) return { ffmpeg, ffprobe, source: "PATH" };
  if (params.packages ?? true) {
    const fromPackages = await packagedTools();
    if (fromPackages) return fromPackages;
  }
  return undefined;
}

/**
 * {@link findVideoTools}, or the one line saying how to install ffmpeg.
 * @throws UserError naming `file` (the video that needs it) when there is no ffmpeg.
 */
export async function requireVideoTools(
  file: string,
  params: FindVideoToolsParams = {},
): Promise<VideoTools> {
  const tools = await findVideoTools(params);
  if (tools === undefined) throw noFfmpegError(file);
  return tools;
}

/** The one line for a video `file` and no ffmpeg. */
export function noFfmpegError(file: string): UserError {
  return new UserError(`${file} is a video, and reading videos needs ffmpeg, which was not found`, {
    hint: FFMPEG_INSTALL_HINT,
  });
}

/** The static builds of the optional packages, when both are installed and runnable here. */
async function packagedTools(): Promise<VideoTools | undefined> {
  const require = createRequire(import.meta.url);
  const pathOf = (name: string): string | undefined => {
    try {
      const value = (require(name) as { path?: unknown }).path;
      return typeof value === "string" ? value : undefined;
    } catch {
      // Not installed (it is optional) or no build for this platform.
      return undefined;
    }
  };
  const ffmpeg = pathOf("@ffmpeg-installer/ffmpeg");
  const ffprobe = pathOf("@ffprobe-installer/ffprobe");
  if (ffmpeg === undefined || ffprobe === undefined) return undefined;
  if (!(await isProgram(ffmpeg)) || !(await isProgram(ffprobe))) return undefined;
  return { ffmpeg, ffprobe, source: "npm package" };
}

async function isProgram(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first line of `ffmpeg -version` ("ffmpeg version 5.1.6 …"), for doctor and the bench. */
export async function ffmpegVersion(tools: VideoTools): Promise<string> {
  const out = await runTool({ program: tools.ffmpeg, args: ["-hide_banner", "-version"], timeoutMs: 10_000 });
  return out.stdout.toString("utf8").split("\n")[0]?.trim() ?? "unknown";
}

const filterCache = new Map<string, Promise<ReadonlySet<string>>>();

/** The filters this ffmpeg has (`ffmpeg -filters`), asked once per binary. */
export function ffmpegFilters(tools: VideoTools): Promise<ReadonlySet<string>> {
  let cached = filterCache.get(tools.ffmpeg);
  if (!cached) {
    cached = runTool({ program: tools.ffmpeg, args: ["-hide_banner", "-filters"], timeoutMs: 10_000 })
      .then((out) => {
        const names = new Set<string>();
        for (const line of out.stdout.toString("utf8").split("\n")) {
          const m = /^\s*[A-Z.|]{2,4}\s+(\w+)\s/.exec(line);
          if (m) names.add(m[1]!);
        }
        return names as ReadonlySet<string>;
      })
      .catch(() => new Set<string>());
    filterCache.set(tools.ffmpeg, cached);
  }
  return cached;
}

/** Parameters of {@link runTool}. */
export interface RunToolParams {
  readonly program: string;
  /** Arguments, passed as they are (no shell). */
  readonly args: readonly string[];
  /** Killed after this long. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

/** What a finished program printed. */
export interface ToolOutput {
  readonly code: number | null;
  readonly stdout: Buffer;
  /** The last 8 KiB of stderr. */
  readonly stderr: string;
}

/**
 * Run a program to the end with a time limit, collecting its output (for short answers such as
 * ffprobe's; frames are streamed by read-frames.ts). Killed on timeout or abort.
 * @throws UserError on timeout; AbortError when `signal` aborts; the spawn error when it cannot start.
 */
export function runTool(params: RunToolParams): Promise<ToolOutput> {
  return new Promise((resolvePromise, reject) => {
    params.signal?.throwIfAborted();
    const child = spawn(params.program, params.args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      params.signal?.removeEventListener("abort", onAbort);
      fn();
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish(() =>
        reject(
          new UserError(`${params.program} did not finish within ${Math.round(params.timeoutMs / 1000)} s`, {
            hint: "the file may be damaged or on a slow drive; copy it to a local disk and try again",
          }),
        ),
      );
    }, params.timeoutMs);
    const onAbort = (): void => {
      child.kill("SIGKILL");
      finish(() => reject(params.signal!.reason ?? new DOMException("aborted", "AbortError")));
    };
    params.signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => {
      err = (err + chunk.toString("utf8")).slice(-8192);
    });
    child.on("error", (error) => finish(() => reject(error)));
    child.on("close", (code) =>
      finish(() => resolvePromise({ code, stdout: Buffer.concat(out), stderr: err })),
    );
  });
}
