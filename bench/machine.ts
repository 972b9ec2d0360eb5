// What a benchmark figure was measured on: CPU model and flags, cores, memory, load, versions, date.
// Read from /proc/cpuinfo and package.json files, so no native addon is loaded just to describe it.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import { dirname, join } from "node:path";

/** The machine and software a run was measured on. */
export interface MachineInfo {
  /** ISO 8601 time of the start of the run. */
  readonly date: string;
  readonly hostname: string;
  /** CPU model name from /proc/cpuinfo (or os.cpus() elsewhere). */
  readonly cpuModel: string;
  /** Logical CPUs visible to this process (os.availableParallelism()). */
  readonly cores: number;
  /** SIMD flags of interest found in /proc/cpuinfo (avx2, fma, avx512f, avx512_vnni, …). */
  readonly cpuFlags: readonly string[];
  readonly memoryGiB: number;
  /** 1, 5 and 15 minute load averages when the run started (other work on the machine). */
  readonly loadAverage: readonly number[];
  readonly platform: string;
  readonly arch: string;
  readonly osRelease: string;
  readonly node: string;
  /** Versions of the native dependencies, from their package.json (undefined when not found). */
  readonly onnxruntimeNode: string | undefined;
  readonly sharp: string | undefined;
}

const FLAGS_OF_INTEREST = [
  "sse4_2",
  "avx",
  "avx2",
  "fma",
  "f16c",
  "avx512f",
  "avx512bw",
  "avx512_vnni",
  "avx512_bf16",
  "amx_tile",
  "neon",
  "asimd",
];

/** Collect {@link MachineInfo} for this process. */
export function machineInfo(): MachineInfo {
  const cpuinfo = readOrEmpty("/proc/cpuinfo");
  const model =
    /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model?.trim() ?? "unknown";
  const flagLine = /^(?:flags|Features)\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "";
  const flags = new Set(flagLine.split(/\s+/));
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    cpuModel: model,
    cores: os.availableParallelism(),
    cpuFlags: FLAGS_OF_INTEREST.filter((f) => flags.has(f)),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    platform: os.platform(),
    arch: os.arch(),
    osRelease: os.release(),
    node: process.version,
    onnxruntimeNode: packageVersion("onnxruntime-node"),
    sharp: packageVersion("sharp"),
  };
}

/** One line per fact, for the console. */
export function formatMachineInfo(m: MachineInfo): string {
  return [
    `date      ${m.date}`,
    `cpu       ${m.cpuModel} (${m.cores} logical cores, ${m.memoryGiB} GiB)`,
    `flags     ${m.cpuFlags.join(" ") || "none of interest"}`,
    `load      ${m.loadAverage.join(" ")} (1/5/15 min at start)`,
    `software  node ${m.node}, onnxruntime-node ${m.onnxruntimeNode ?? "?"}, sharp ${m.sharp ?? "?"}, ${m.platform}-${m.arch} ${m.osRelease}`,
  ].join("\n");
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** A dependency's version from its package.json, found through its resolved entry point. */
function packageVersion(name: string): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    let dir = dirname(require.resolve(name));
    // Walk up from the entry point to the package root (its "exports" may hide package.json).
    for (let i = 0; i < 6; i++) {
      const pkg = readOrEmpty(join(dir, "package.json"));
      if (pkg !== "") {
        const parsed = JSON.parse(pkg) as { name?: unknown; version?: unknown };
        if (parsed.name === name && typeof parsed.version === "string") return parsed.version;
      }
      dir = dirname(dir);
    }
  } catch {
    // Not installed or not resolvable: reported as unknown.
  }
  return undefined;
}
