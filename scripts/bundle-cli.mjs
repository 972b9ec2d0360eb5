#!/usr/bin/env node
// Bundle the compiled CLI: `node scripts/bundle-cli.mjs [DIST]` (default ./dist, after tsc).
//
// Every `persam-db` process would otherwise resolve, read and compile some 300 module files (its own
// and those of zod, yargs and their helpers) before doing anything. esbuild joins them into
// DIST/cli/bin.js and a few chunks beside it (`bundle-*.js`), still split so that each command's
// modules load only when that command runs. The library face (DIST/index.js) is not bundled.
//
// Left outside the bundle and loaded from node_modules as they are: packages with native parts or
// files of their own (onnxruntime-node, sharp, the ffmpeg builds) and the Hub client, which is
// loaded on first use only. The chunks stay in DIST/cli/ because modules find files from their own
// location (configs/ two folders up, see src/export/presets.ts), and encoder-thread.ts and
// attention-chunking-file.ts start worker threads on their own compiled file: in the bundle that
// file is the chunk holding them, whose top-level code runs the worker side.
//
// yargs looks for its message translations next to its own file; from the bundle it finds none and
// prints its messages in English, which are the keys of those translations.

import { readdir, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const dist = resolve(process.argv[2] ?? "dist");
const cli = join(dist, "cli");

// Chunks of an earlier bundle would stay beside the new ones, unused.
for (const name of await readdir(cli)) {
  if (name.startsWith("bundle-") && name.endsWith(".js")) await rm(join(cli, name));
}

await build({
  entryPoints: [join(cli, "bin.js")],
  outdir: cli,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  chunkNames: "bundle-[name]-[hash]",
  // Packages come from this project's node_modules, also for a DIST outside it (the package test).
  nodePaths: [join(dirname(fileURLToPath(import.meta.url)), "..", "node_modules")],
  external: [
    "onnxruntime-node",
    "sharp",
    "@huggingface/hub",
    "@ffmpeg-installer/ffmpeg",
    "@ffprobe-installer/ffprobe",
  ],
  // Bundled CommonJS code calls require(); ES modules have none of their own.
  banner: {
    js: 'import { createRequire as __persamDbRequire } from "node:module"; const require = __persamDbRequire(import.meta.url);',
  },
  logLevel: "warning",
});
