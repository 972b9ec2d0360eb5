// Progress for long work: a redrawn bar on a terminal, plain lines otherwise, nothing with --json.

import type { DownloadProgress } from "../segment/models/model-store.js";
import type { Reporter } from "./io.js";

/** Escape sequence that returns to the start of the line and clears it. */
const CLEAR_LINE = "\r\x1b[2K";

/** A 24-cell bar filled to `fraction` (0–1). */
function bar(fraction: number, width = 24): string {
  const filled = Math.round(fraction * width);
  return `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
}

/** A counter of finished items with an ETA. */
export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private lastPlain = 0;

  constructor(
    private readonly reporter: Reporter,
    private readonly label: string,
    private readonly total: number,
  ) {}

  /** Mark one more item finished; `what` names it on plain-line output. */
  tick(what?: string): void {
    this.done += 1;
    this.draw(what);
  }

  /** Clear the bar line (terminal only). */
  finish(): void {
    if (this.reporter.canDrawProgress) this.reporter.stderr.write(CLEAR_LINE);
  }

  private draw(what?: string): void {
    const { done, total } = this;
    const elapsed = (Date.now() - this.started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : 0;
    if (this.reporter.canDrawProgress) {
      this.reporter.stderr.write(
        `${CLEAR_LINE}${this.label} ${bar(total > 0 ? done / total : 1)} ${done}/${total}  ${elapsed.toFixed(1)}s elapsed, ~${eta.toFixed(0)}s left`,
      );
      return;
    }
    // Plain lines: one per item, but at most one per second for big batches.
    const now = Date.now();
    if (done === total || total <= 50 || now - this.lastPlain > 1000) {
      this.lastPlain = now;
      this.reporter.info(`${this.label} ${done}/${total}${what ? ` ${what}` : ""}`);
    }
  }
}

/** A download's byte-progress line, redrawn on a terminal (nothing otherwise), at most every 100 ms. */
export function byteProgress(reporter: Reporter): { update(p: DownloadProgress): void; clear(): void } {
  let last = 0;
  return {
    update(p) {
      if (!reporter.canDrawProgress) return;
      const now = Date.now();
      if (!p.done && now - last < 100) return;
      last = now;
      const fraction = p.total ? Math.min(1, p.loaded / p.total) : 0;
      const total = p.total === undefined ? "" : `/${formatBytes(p.total)}`;
      reporter.stderr.write(
        `${CLEAR_LINE}${p.file} ${bar(fraction)} ${formatBytes(p.loaded)}${total} ${formatBytes(p.bytesPerSecond)}/s`,
      );
    },
    clear() {
      if (reporter.canDrawProgress) reporter.stderr.write(CLEAR_LINE);
    },
  };
}

/** Human-readable byte counts (1.5 MB). */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
