// The one module that reads environment variables: Hugging Face Hub settings (endpoint, token,
// offline mode, cache folder, download time limit) and persam-db's own cache folder. Everything
// else receives values.

import { readFileSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import { UserError } from "./errors.js";
import { parseByteSize } from "./util/numbers.js";

/** The default Hub endpoint. */
export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";

/** Where the token came from (never the token itself). */
export type TokenSource = "HF_TOKEN" | "HUGGING_FACE_HUB_TOKEN" | "token-file";

/** Hub settings, resolved from the environment the way `huggingface_hub` (Python) does. */
export interface HubConfig {
  /** Base URL without a trailing slash (`HF_ENDPOINT`). */
  readonly endpoint: string;
  /** Access token, or undefined for anonymous access. Never print it (see {@link redact}). */
  readonly token: string | undefined;
  /** Which variable or file gave the token. */
  readonly tokenSource: TokenSource | undefined;
  /**
   * `HF_HUB_OFFLINE=1|true|yes|on` (or, when HF_HUB_OFFLINE is unset, `TRANSFORMERS_OFFLINE`): never
   * touch the network, use only cached files.
   */
  readonly offline: boolean;
  /** Which variable made {@link offline} true. */
  readonly offlineSource: "HF_HUB_OFFLINE" | "TRANSFORMERS_OFFLINE" | undefined;
  /** The Hugging Face hub cache folder (`models--ns--name/...` lives here). */
  readonly cacheDir: string;
  /**
   * Longest wait for the next byte of a Hub reply, in milliseconds (`HF_HUB_DOWNLOAD_TIMEOUT`, in
   * seconds as huggingface_hub reads it); undefined: the Hub client's default.
   */
  readonly idleTimeoutMs: number | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/** A variable's value, with empty strings treated as unset. */
function get(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value;
}

function home(env: Env): string {
  return get(env, "HOME") ?? get(env, "USERPROFILE") ?? homedir();
}

/**
 * `~` and `$VAR` / `${VAR}` in a path, in the order huggingface_hub applies them
 * (`os.path.expandvars(os.path.expanduser(value))` in its constants.py): first a leading `~` or
 * `~<current user>` becomes the home folder, then each variable that is set is replaced; unknown
 * variables and `~otheruser` stay as written, as Python leaves them.
 */
export function expandPath(value: string, env: Env = process.env): string {
  let out = value;
  if (out.startsWith("~")) {
    const slash = out.indexOf("/", 1);
    const end = slash < 0 ? out.length : slash;
    const user = out.slice(1, end);
    const userHome = user === "" ? home(env) : user === currentUser() ? homedir() : undefined;
    if (userHome !== undefined) out = `${userHome.replace(/\/+$/, "")}${out.slice(end)}` || "/";
  }
  return out.replace(/\$(\w+|\{[^}]*\})/g, (match, name: string) => {
    const key = name.startsWith("{") ? name.slice(1, -1) : name;
    const v = env[key];
    return v === undefined ? match : v;
  });
}

function currentUser(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}

/** A path variable, expanded as huggingface_hub expands it; empty counts as unset. */
function getPath(env: Env, name: string): string | undefined {
  const value = get(env, name);
  return value === undefined ? undefined : expandPath(value, env);
}

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (expanded). */
function hfHome(env: Env): string {
  return expandPath(
    get(env, "HF_HOME") ?? join(get(env, "XDG_CACHE_HOME") ?? join(home(env), ".cache"), "huggingface"),
    env,
  );
}

/** True for `1`, `true`, `yes`, `on` (any case), as huggingface_hub parses boolean variables. */
function truthy(value: string | undefined): boolean {
  return value !== undefined && ["1", "true", "yes", "on"].includes(value.trim().toLowerCase());
}

/**
 * Offline mode as huggingface_hub decides it: `HF_HUB_OFFLINE`, and only when that is unset,
 * `TRANSFORMERS_OFFLINE` (`_is_true(HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)` in its constants.py).
 */
function offlineFrom(env: Env): HubConfig["offlineSource"] {
  const hub = get(env, "HF_HUB_OFFLINE");
  if (hub !== undefined) return truthy(hub) ? "HF_HUB_OFFLINE" : undefined;
  return truthy(get(env, "TRANSFORMERS_OFFLINE")) ? "TRANSFORMERS_OFFLINE" : undefined;
}

/**
 * Hub settings from the environment.
 *
 * - endpoint: `HF_ENDPOINT` (trailing slashes removed), default `https://huggingface.co`
 * - token: `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file written by
 *   `huggingface-cli login` (`HF_TOKEN_PATH`, default `$HF_HOME/token`)
 * - offline: `HF_HUB_OFFLINE`, else `TRANSFORMERS_OFFLINE`
 * - cacheDir: `HF_HUB_CACHE` > `HUGGINGFACE_HUB_CACHE` > `$HF_HOME/hub` >
 *   `$XDG_CACHE_HOME/huggingface/hub` > `~/.cache/huggingface/hub`, with `~` and `$VAR` expanded
 * - idleTimeoutMs: `HF_HUB_DOWNLOAD_TIMEOUT` (seconds)
 *
 * @param env the environment to read
 * @default env process.env
 */
export function hubConfig(env: Env = process.env): HubConfig {
  const endpoint = (get(env, "HF_ENDPOINT") ?? DEFAULT_HUB_ENDPOINT).trim().replace(/\/+$/, "");
  let token: string | undefined;
  let tokenSource: TokenSource | undefined;
  const fromEnv = get(env, "HF_TOKEN");
  const legacy = get(env, "HUGGING_FACE_HUB_TOKEN");
  if (fromEnv !== undefined) {
    token = fromEnv.trim();
    tokenSource = "HF_TOKEN";
  } else if (legacy !== undefined) {
    token = legacy.trim();
    tokenSource = "HUGGING_FACE_HUB_TOKEN";
  } else {
    const file = getPath(env, "HF_TOKEN_PATH") ?? join(hfHome(env), "token");
    try {
      const text = readFileSync(file, "utf8").trim();
      if (text !== "") {
        token = text;
        tokenSource = "token-file";
      }
    } catch {
      // No token file: anonymous access.
    }
  }
  const cacheDir =
    getPath(env, "HF_HUB_CACHE") ?? getPath(env, "HUGGINGFACE_HUB_CACHE") ?? join(hfHome(env), "hub");
  const offlineSource = offlineFrom(env);
  const timeout = Number(get(env, "HF_HUB_DOWNLOAD_TIMEOUT"));
  return {
    endpoint,
    token,
    tokenSource,
    offline: offlineSource !== undefined,
    offlineSource,
    cacheDir,
    idleTimeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout * 1000 : undefined,
  };
}

/**
 * persam-db's own cache folder (decoder weights extracted from checkpoints, built decoder graphs,
 * embeddings): `PERSAM_DB_CACHE`, else `$XDG_CACHE_HOME/persam-db`, else `~/.cache/persam-db`.
 *
 * @default env process.env
 */
export function persamCacheDir(env: Env = process.env): string {
  return (
    get(env, "PERSAM_DB_CACHE") ?? join(get(env, "XDG_CACHE_HOME") ?? join(home(env), ".cache"), "persam-db")
  );
}

/**
 * Replace every occurrence of `token` in `text` by `hf_***` so that a message, a URL or a log line
 * can be printed. Also hides any other `hf_` token-looking word.
 */
export function redact(text: string, token: string | undefined): string {
  let out = text;
  if (token !== undefined && token.length > 0) out = out.split(token).join("hf_***");
  return out.replace(/\bhf_[A-Za-z0-9]{8,}\b/g, "hf_***");
}

/**
 * The size limit of the embedding cache from `PERSAM_DB_EMBEDDING_CACHE` (`2G`, `500M`, `0` turns it
 * off), or undefined when unset.
 * @throws UserError naming the variable when its value is not a size
 */
export function embeddingCacheBytes(env: Env = process.env): number | undefined {
  const value = get(env, "PERSAM_DB_EMBEDDING_CACHE");
  if (value === undefined) return undefined;
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    throw new UserError(`PERSAM_DB_EMBEDDING_CACHE=${value} is not a size`, {
      hint: "give bytes with an optional unit, e.g. 2G or 500M (0 turns the cache off)",
    });
  }
  return bytes;
}

/** Where to look for ffmpeg and ffprobe (src/video/video-tools.ts). */
export interface VideoToolsConfig {
  /** `PERSAM_DB_FFMPEG`: an explicit ffmpeg binary (ffprobe is looked up beside it). */
  readonly ffmpeg: string | undefined;
  /** The `PATH` folders, in order. */
  readonly path: readonly string[];
}

/**
 * ffmpeg settings from the environment: `PERSAM_DB_FFMPEG` (an ffmpeg binary, with ffprobe beside
 * it) and the folders of `PATH`.
 * @default env process.env
 */
export function videoToolsConfig(env: Env = process.env): VideoToolsConfig {
  const path = get(env, "PATH") ?? get(env, "Path") ?? "";
  const sep = process.platform === "win32" ? ";" : ":";
  return {
    ffmpeg: getPath(env, "PERSAM_DB_FFMPEG"),
    path: path.split(sep).filter((p) => p !== ""),
  };
}

/**
 * The file that receives a command's timing trace (`PERSAM_DB_TIMINGS`: one JSON document of named
 * spans, util/timing-trace.ts), or undefined when unset: no trace is gathered then.
 */
export function timingTracePath(env: Env = process.env): string | undefined {
  return get(env, "PERSAM_DB_TIMINGS");
}
