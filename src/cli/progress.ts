// Progress for long work: a redrawn bar on a terminal, plain lines otherwise, nothing with --json.

import type { Reporter } from "./io.js";

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
    if (this.reporter.canDrawProgress) this.reporter.stderr.write("\r\x1b[2K");
  }

  private draw(what?: string): void {
    const { done, total } = this;
    const elapsed = (Date.now() - this.started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : 0;
    if (this.reporter.canDrawProgress) {
      const width = 24;
      const filled = total > 0 ? Math.round((done / total) * width) : width;
      const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
      this.reporter.stderr.write(
        `\r\x1b[2K${this.label} ${bar} ${done}/${total}  ${elapsed.toFixed(1)}s elapsed, ~${eta.toFixed(0)}s left`,
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
