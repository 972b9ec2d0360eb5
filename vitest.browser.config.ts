import { defineConfig } from "vitest/config";

// Tests that drive a real browser (Debian's Chromium, see .ci/install-chromium); run on their own:
// npx vitest run -c vitest.browser.config.ts
export default defineConfig({
  test: {
    pool: "forks",
    globalSetup: ["test/support/global-setup.ts"],
    include: ["test/browser/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
