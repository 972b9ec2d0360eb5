// Debian's Chromium driven by playwright-core, for tests that need a real browser (report.html).
// No browser is downloaded: .ci/install-chromium installs the distribution package first.

import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/** The distribution's Chromium launcher (`apt-get install chromium`). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Flags for a quiet, offline, headless run in a container (no sandbox, GPU, sync or updates). */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** True when Chromium is installed where {@link launchChromium} looks. */
export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/**
 * Launch headless Chromium. playwright-core gives every `launch()` a fresh temporary user data dir
 * (profile) and deletes it on `close()`, so runs never share cookies, cache or settings.
 * @param timeoutMs how long to wait for the browser to start. @default 30000
 */
export async function launchChromium(timeoutMs = 30_000): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS],
    timeout: timeoutMs,
  });
}
