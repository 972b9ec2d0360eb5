import { defineConfig } from "vitest/config";

// Native addons (onnxruntime-node, sharp) are safest in child processes, not worker threads.
export default defineConfig({
  test: {
    pool: "forks",
    globalSetup: ["test/support/global-setup.ts"],
    include: ["test/**/*.test.ts"],
    // The browser test needs Chromium; .ci/run installs it and runs vitest.browser.config.ts.
    exclude: ["test/browser/**", "**/node_modules/**"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
