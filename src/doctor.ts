// `persam-db doctor`: checks the things a first run needs — Node, the native addons (onnxruntime,
// sharp), the caches and their free space, the Hub, the token (never printed) and the cached models —
// and says for each what is wrong and what to do. No check throws: a failure becomes a row.

import { constants } from "node:fs";
import { access, mkdtemp, rm, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { hubConfig, persamCacheDir, redact, videoToolsConfig } from "./config.js";
import { errorCodes, firstLine, isUserError } from "./errors.js";
import { HubUserError, hubWhoAmI } from "./hub/hub-api.js";
import { HubTransportError } from "./hub/hub-errors.js";
import { createHubFetch } from "./hub/hub-fetch.js";
import { encodePng, probeImage, sharpVersions } from "./image/image-io.js";
import { loadModelRegistry, type ModelRegistry } from "./segment/models/model-registry.js";
import { modelCacheStatus } from "./segment/models/model-store.js";
import { GraphBuilder } from "./segment/onnx/graph-builder.js";
import { createSession, onnxruntimeVersion, ortFloat32 } from "./segment/sam/ort.js";
import { packageVersion } from "./util/package-version.js";
import { FFMPEG_INSTALL_HINT, ffmpegVersion, findVideoTools } from "./video/video-tools.js";

/** The lowest supported Node.js major version (package.json `engines`). */
export const MIN_NODE_MAJOR = 20;

/** Below this much free space in a cache folder, the cache check fails (a model is 0.05–2.5 GB). */
export const MIN_FREE_BYTES = 1024 ** 3;

/** How one check came out: `warn` is a failed informational check, `skip` one not run. */
export type DoctorLevel = "ok" | "warn" | "fail" | "skip";

/** One line of the doctor's report. Nothing in it contains the token. */
export interface DoctorCheck {
  readonly name: string;
  /** True when the check passed (or was skipped on purpose, e.g. offline mode). */
  readonly ok: boolean;
  /** Required checks decide the exit code; the others (Hub, token, models) only inform. */
  readonly required: boolean;
  readonly level: DoctorLevel;
  readonly detail: string;
  /** What to do about it. */
  readonly hint?: string;
}

/** Parameters of {@link runDoctor}. */
export interface DoctorOptions {
  /** The environment to read (HF_*, PERSAM_DB_CACHE, HOME…). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** A fetch to use instead of the global one. @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
  /** Limit of each network request, in milliseconds. */
  readonly timeoutMs: number;
  /** The model registry. @default the bundled models/registry.json */
  readonly registry?: ModelRegistry | undefined;
  /** Node.js version to judge (tests). @default process.versions.node */
  readonly nodeVersion?: string | undefined;
}

/** True when every required check passed. */
export function doctorPassed(checks: readonly DoctorCheck[]): boolean {
  return checks.every((c) => c.ok || !c.required);
}

function check(
  name: string,
  required: boolean,
  ok: boolean | "skip",
  detail: string,
  hint?: string,
): DoctorCheck {
  const level: DoctorLevel = ok === "skip" ? "skip" : ok ? "ok" : required ? "fail" : "warn";
  return { name, ok: ok !== false, required, level, detail, ...(hint === undefined ? {} : { hint }) };
}

/** Run one check; an exception becomes a failed row with its message (redacted). */
async function guarded(
  name: string,
  required: boolean,
  token: string | undefined,
  fn: () => Promise<DoctorCheck>,
): Promise<DoctorCheck> {
  try {
    const c = await fn();
    return {
      ...c,
      detail: redact(c.detail, token),
      ...(c.hint === undefined ? {} : { hint: redact(c.hint, token) }),
    };
  } catch (error) {
    const hint = isUserError(error) ? error.hint : undefined;
    return check(
      name,
      required,
      false,
      redact(firstLine(error), token),
      hint === undefined ? undefined : redact(hint, token),
    );
  }
}

/**
 * Run every check, in order: persam-db (its version), Node.js, onnxruntime, sharp (each with its
 * version), ffmpeg (for videos only: not required), HF cache, persam-db cache, Hub, token, models. Never throws; never prints or returns
 * the token.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorCheck[]> {
  const hub = hubConfig(options.env);
  const token = hub.token;
  const doFetch = options.fetch ?? globalThis.fetch;
  const checks: DoctorCheck[] = [];
  checks.push(
    await guarded("persam-db", true, token, async () => check("persam-db", true, true, packageVersion())),
  );
  checks.push(await guarded("Node.js", true, token, async () => nodeCheck(options.nodeVersion)));
  checks.push(await guarded("onnxruntime", true, token, onnxCheck));
  checks.push(await guarded("sharp", true, token, sharpCheck));
  checks.push(await guarded("ffmpeg", false, token, () => ffmpegCheck(options.env)));
  checks.push(await guarded("HF cache", true, token, () => cacheCheck("HF cache", hub.cacheDir)));
  checks.push(
    await guarded("persam-db cache", true, token, () =>
      cacheCheck("persam-db cache", persamCacheDir(options.env)),
    ),
  );
  const hubRow = await guarded("Hub", false, token, () =>
    hubCheck(hub.endpoint, hub.offline, doFetch, options.timeoutMs),
  );
  checks.push(hubRow);
  checks.push(
    await guarded("token", false, token, () =>
      tokenCheck({ ...hub, reachable: hubRow.level === "ok", fetch: doFetch, timeoutMs: options.timeoutMs }),
    ),
  );
  checks.push(
    await guarded("models", false, token, () =>
      modelsCheck(options.registry, hub.cacheDir, persamCacheDir(options.env)),
    ),
  );
  return checks;
}

async function nodeCheck(version: string | undefined): Promise<DoctorCheck> {
  const v = version ?? process.versions.node;
  const major = Number.parseInt(v.replace(/^v/, ""), 10);
  if (Number.isFinite(major) && major >= MIN_NODE_MAJOR) {
    return check("Node.js", true, true, `v${v.replace(/^v/, "")} (≥ ${MIN_NODE_MAJOR} required)`);
  }
  return check(
    "Node.js",
    true,
    false,
    `v${v.replace(/^v/, "")} is too old (≥ ${MIN_NODE_MAJOR} required)`,
    `install Node.js ${MIN_NODE_MAJOR} or newer (https://nodejs.org, or nvm install --lts)`,
  );
}

const NATIVE_HINT =
  "reinstall persam-db so npm fetches the prebuilt binary for this platform (npm install -g persam-db); supported: Linux x64/arm64 (glibc), macOS, Windows x64";

/** Build `y = a + b` and run it on [1, 2] + [3, 4]. */
async function onnxCheck(): Promise<DoctorCheck> {
  let session: Awaited<ReturnType<typeof createSession>>;
  try {
    const g = new GraphBuilder("doctor_add");
    const a = g.input("a", "float", [2]);
    const b = g.input("b", "float", [2]);
    g.output(g.op("Add", [a, b]), "y", "float", [2]);
    session = await createSession(g.toModel(), { threads: 1 });
  } catch (error) {
    return check(
      "onnxruntime",
      true,
      false,
      `cannot load onnxruntime-node (${firstLine(error)})`,
      NATIVE_HINT,
    );
  }
  try {
    const out = await session.run({
      a: ortFloat32(new Float32Array([1, 2]), [2]),
      b: ortFloat32(new Float32Array([3, 4]), [2]),
    });
    const y = Object.values(out)[0]?.data as Float32Array | undefined;
    if (y === undefined || y[0] !== 4 || y[1] !== 6) {
      return check("onnxruntime", true, false, `a one-node model gave a wrong result (${y?.join(", ")})`);
    }
    return check(
      "onnxruntime",
      true,
      true,
      `${onnxruntimeVersion()}: onnxruntime-node loads and runs a one-node model (CPU)`,
    );
  } finally {
    await session.release();
  }
}

/** Encode a 1×1 PNG and read its header back. */
/** ffmpeg and ffprobe for videos: where they were found and the version, or how to install them. */
async function ffmpegCheck(env: Readonly<Record<string, string | undefined>>): Promise<DoctorCheck> {
  const tools = await findVideoTools({ config: videoToolsConfig(env) });
  if (!tools) {
    return check(
      "ffmpeg",
      false,
      false,
      "not found: videos cannot be read (photos need no ffmpeg)",
      FFMPEG_INSTALL_HINT,
    );
  }
  const version = (await ffmpegVersion(tools)).replace(/^ffmpeg version /, "").split(" ")[0] ?? "unknown";
  return check("ffmpeg", false, true, `${version} (${tools.source}: ${tools.ffmpeg}): videos can be read`);
}

async function sharpCheck(): Promise<DoctorCheck> {
  const dir = await mkdtemp(join(tmpdir(), "persam-doctor-"));
  try {
    let png: Buffer;
    try {
      png = await encodePng({ data: new Uint8Array([200, 100, 50]), width: 1, height: 1, channels: 3 });
    } catch (error) {
      return check("sharp", true, false, `cannot load sharp (${firstLine(error)})`, NATIVE_HINT);
    }
    const file = join(dir, "pixel.png");
    await writeFile(file, png);
    const probe = await probeImage(file);
    if (probe.format !== "png" || probe.width !== 1 || probe.height !== 1) {
      return check(
        "sharp",
        true,
        false,
        `a 1×1 PNG read back as ${probe.format} ${probe.width}×${probe.height}`,
        NATIVE_HINT,
      );
    }
    const v = sharpVersions();
    return check(
      "sharp",
      true,
      true,
      `${v.sharp} (libvips ${v.libvips}): sharp loads, encodes and reads a PNG`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The folder itself when it exists, else its nearest existing ancestor. */
async function nearestExisting(path: string): Promise<string> {
  let p = path;
  for (;;) {
    try {
      await access(p, constants.F_OK);
      return p;
    } catch {
      const up = dirname(p);
      if (up === p) return p;
      p = up;
    }
  }
}

/** Human bytes: 1.2 GB, 350 MB. */
export function formatFree(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${Math.round(bytes / 1e6)} MB`;
  return `${Math.round(bytes / 1e3)} kB`;
}

async function cacheCheck(name: string, dir: string): Promise<DoctorCheck> {
  const existing = await nearestExisting(dir);
  const created = existing === dir ? "" : " (not created yet)";
  try {
    await access(existing, constants.W_OK);
  } catch {
    return check(
      name,
      true,
      false,
      `${dir}${created}: ${existing} is not writable`,
      name === "HF cache"
        ? "set HF_HUB_CACHE (or HF_HOME) to a writable folder"
        : "set PERSAM_DB_CACHE to a writable folder",
    );
  }
  const fs = await statfs(existing);
  const free = Number(fs.bavail) * Number(fs.bsize);
  const detail = `${dir}${created}, ${formatFree(free)} free`;
  if (free < MIN_FREE_BYTES) {
    return check(
      name,
      true,
      false,
      detail,
      `free at least ${formatFree(MIN_FREE_BYTES)} there, or point ${name === "HF cache" ? "HF_HUB_CACHE" : "PERSAM_DB_CACHE"} at a bigger disk`,
    );
  }
  return check(name, true, true, detail);
}

async function hubCheck(
  endpoint: string,
  offline: boolean,
  doFetch: typeof fetch,
  timeoutMs: number,
): Promise<DoctorCheck> {
  if (offline) {
    return check("Hub", false, "skip", `skipped: HF_HUB_OFFLINE is set (only cached models are used)`);
  }
  const started = performance.now();
  // One try, bounded by the doctor's own limit, through the Hub fetch like every Hub request.
  const hubFetch = createHubFetch({
    endpoint,
    base: doFetch,
    tries: 1,
    idleTimeoutMs: timeoutMs,
    requestTimeoutMs: timeoutMs,
  });
  try {
    // Any HTTP answer (401 without a token included) proves the Hub is reachable.
    const res = await hubFetch(`${endpoint}/api/whoami-v2`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    const ms = Math.round(performance.now() - started);
    if (res.status >= 500) {
      return check(
        "Hub",
        false,
        false,
        `${endpoint} answered ${res.status} (server error)`,
        "try again later (https://status.huggingface.co)",
      );
    }
    return check("Hub", false, true, `${endpoint} reachable (${ms} ms)`);
  } catch (error) {
    if (error instanceof HubTransportError && error.failure === "retries-exhausted") {
      return check(
        "Hub",
        false,
        false,
        `${endpoint} answered ${error.status} (server error)`,
        "try again later (https://status.huggingface.co)",
      );
    }
    const timedOut =
      (error instanceof HubTransportError &&
        (error.failure === "idle-timeout" || error.failure === "total-timeout")) ||
      (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError"));
    const why = timedOut
      ? `no answer within ${(timeoutMs / 1000).toFixed(timeoutMs < 1000 ? 1 : 0)} s`
      : (errorCodes(error)[0] ?? firstLine(error));
    return check(
      "Hub",
      false,
      false,
      `${endpoint} unreachable (${why})`,
      "check the network, a proxy or HF_ENDPOINT; offline, set HF_HUB_OFFLINE=1 to use cached models only",
    );
  }
}

async function tokenCheck(params: {
  endpoint: string;
  token: string | undefined;
  tokenSource: string | undefined;
  offline: boolean;
  reachable: boolean;
  fetch: typeof fetch;
  timeoutMs: number;
}): Promise<DoctorCheck> {
  const from = params.tokenSource === undefined ? "" : ` (from ${params.tokenSource})`;
  if (params.token === undefined) {
    return check(
      "token",
      false,
      true,
      "no token set: anonymous access (public models only, lower rate limits)",
      "for gated or private models or uploads, set HF_TOKEN (https://huggingface.co/settings/tokens)",
    );
  }
  if (params.offline) return check("token", false, "skip", `skipped: HF_HUB_OFFLINE is set${from}`);
  if (!params.reachable) return check("token", false, "skip", `not checked: the Hub is unreachable${from}`);
  try {
    const me = await hubWhoAmI({
      endpoint: params.endpoint,
      token: params.token,
      fetch: params.fetch,
      signal: AbortSignal.timeout(params.timeoutMs),
      quiet: true,
    });
    return check("token", false, true, `token OK for user ${me.name}${from}`);
  } catch (error) {
    if (error instanceof HubUserError && (error.status === 401 || error.kind === "auth")) {
      const why = error.status === 401 ? "rejected (401)" : "malformed (does not start with hf_)";
      return check(
        "token",
        false,
        false,
        `token ${why}${from}`,
        "create a new token at https://huggingface.co/settings/tokens and set HF_TOKEN (or run 'huggingface-cli login')",
      );
    }
    throw error;
  }
}

async function modelsCheck(
  registry: ModelRegistry | undefined,
  cacheDir: string,
  persamDir: string,
): Promise<DoctorCheck> {
  const reg = registry ?? loadModelRegistry();
  const cached: string[] = [];
  const damaged: string[] = [];
  for (const m of reg.models) {
    const status = await modelCacheStatus({
      modelId: m.id,
      cacheDir,
      persamCacheDir: persamDir,
      registry: reg,
    });
    if (status.cached) cached.push(m.id);
    else if (status.files.some((f) => f.state === "damaged")) damaged.push(m.id);
  }
  const parts = [cached.length === 0 ? "none cached" : `cached: ${cached.join(", ")}`];
  if (damaged.length > 0) parts.push(`damaged: ${damaged.join(", ")}`);
  const detail = `${parts.join("; ")} (default ${reg.defaultId}, fp32)`;
  if (damaged.length > 0) {
    return check(
      "models",
      false,
      false,
      detail,
      `run 'persam-db models verify', then 'persam-db models pull ${damaged[0]}'`,
    );
  }
  if (!cached.includes(reg.defaultId)) {
    return check(
      "models",
      false,
      false,
      detail,
      `run 'persam-db models pull ${reg.defaultId}' (or let the first run download it)`,
    );
  }
  return check("models", false, true, detail);
}
