// The one module that reads environment variables: Hugging Face Hub settings (endpoint, token,
// offline mode, cache folder) and persam-db's own cache folder. Everything else receives values.

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
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
  /** `HF_HUB_OFFLINE=1|true|yes|on`: never touch the network, use only cached files. */
  readonly offline: boolean;
  /** The Hugging Face hub cache folder (`models--ns--name/...` lives here). */
  readonly cacheDir: string;
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

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
function hfHome(env: Env): string {
  return get(env, "HF_HOME") ?? join(get(env, "XDG_CACHE_HOME") ?? join(home(env), ".cache"), "huggingface");
}

/** True for `1`, `true`, `yes`, `on` (any case), as huggingface_hub parses boolean variables. */
function truthy(value: string | undefined): boolean {
  return value !== undefined && ["1", "true", "yes", "on"].includes(value.trim().toLowerCase());
}

/**
 * Hub settings from the environment.
 *
 * - endpoint: `HF_ENDPOINT` (trailing slashes removed), default `https://huggingface.co`
 * - token: `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file written by
 *   `huggingface-cli login` (`HF_TOKEN_PATH`, default `$HF_HOME/token`)
 * - offline: `HF_HUB_OFFLINE`
 * - cacheDir: `HF_HUB_CACHE` > `HUGGINGFACE_HUB_CACHE` > `$HF_HOME/hub` >
 *   `$XDG_CACHE_HOME/huggingface/hub` > `~/.cache/huggingface/hub`
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
    const file = get(env, "HF_TOKEN_PATH") ?? join(hfHome(env), "token");
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
  const cacheDir = get(env, "HF_HUB_CACHE") ?? get(env, "HUGGINGFACE_HUB_CACHE") ?? join(hfHome(env), "hub");
  return { endpoint, token, tokenSource, offline: truthy(get(env, "HF_HUB_OFFLINE")), cacheDir };
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
