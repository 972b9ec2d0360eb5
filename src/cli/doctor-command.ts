// `persam-db doctor`: is this machine ready? One row per check (see src/doctor.ts), a hint under each
// problem, exit 1 when a required check fails. The Hub, token and model rows only inform.

import type { Argv } from "yargs";
import { type DoctorCheck, type DoctorLevel, doctorPassed, runDoctor } from "../doctor.js";
import { ExitCode, UserError } from "../errors.js";
import { defineCommand, type GlobalOptions } from "./command.js";

/** Options of `persam-db doctor`. */
export interface DoctorCommandOptions {
  /** Seconds to wait for each Hub request. */
  timeout: number;
}

const MARK: Record<DoctorLevel, string> = { ok: "ok", warn: "warn", fail: "FAIL", skip: "skip" };

/** The human table: `status  name  detail`, with `→ hint` under rows that have one and are not ok. */
export function formatDoctorTable(checks: readonly DoctorCheck[]): string[] {
  const nameWidth = Math.max(...checks.map((c) => c.name.length));
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${MARK[c.level].padEnd(4)}  ${c.name.padEnd(nameWidth)}  ${c.detail}`);
    if (c.hint !== undefined && c.level !== "ok" && c.level !== "skip") {
      lines.push(`${"".padEnd(6 + nameWidth)}  → ${c.hint}`);
    }
  }
  return lines;
}

export const doctorCommand = defineCommand<DoctorCommandOptions>({
  command: "doctor",
  describe: "Check that this machine is ready: Node, onnxruntime, sharp, caches, Hub, token, models",
  builder: (yargs) =>
    yargs
      .option("timeout", {
        type: "number",
        default: 5,
        describe: "Seconds to wait for each Hub request",
      })
      .example("$0 doctor", "check everything; exit code 0 when the required checks pass")
      .example("$0 doctor --json", "the same as one JSON document (for bug reports and scripts)")
      .example("HF_HUB_OFFLINE=1 $0 doctor", "skip the network checks")
      .example("$0 doctor --timeout 15", "allow a slow network or proxy more time")
      .epilogue(
        "Required: Node.js ≥ 20, onnxruntime, sharp, writable caches with ≥ 1 GB free. Informational: Hub reachability, token (never printed), cached models.",
      ) as unknown as Argv<DoctorCommandOptions & GlobalOptions>,
  async handler(options, context) {
    if (!Number.isFinite(options.timeout) || options.timeout <= 0) {
      throw new UserError(
        `Expected a positive number of seconds for --timeout but received ${options.timeout}`,
        {
          hint: "for example --timeout 10",
        },
      );
    }
    const reporter = context.reporter(options);
    const checks = await runDoctor({ env: context.io.env, timeoutMs: Math.round(options.timeout * 1000) });
    const ok = doctorPassed(checks);
    reporter.emitJson({ ok, checks });
    for (const line of formatDoctorTable(checks)) reporter.result(line);
    const failed = checks.filter((c) => c.required && !c.ok).length;
    const warned = checks.filter((c) => c.level === "warn").length;
    reporter.result(
      ok
        ? `All required checks passed${warned > 0 ? ` (${warned} warning${warned === 1 ? "" : "s"})` : ""}.`
        : `${failed} required check${failed === 1 ? "" : "s"} failed.`,
    );
    if (!ok) context.setExitCode(ExitCode.userError);
  },
});
