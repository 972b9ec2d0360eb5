// The version of persam-db itself, read from its package.json (the one source of the version).

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_NAME = "persam-db";

let cached: string | undefined;

/**
 * persam-db's version (`version` of its package.json), read once. The package.json is the first
 * one named persam-db above this module: two folders up from src/util/ and dist/util/, three from
 * the benchmarks' dist-bench/src/util/.
 * @throws Error when no such package.json is found or it has no version (a broken installation).
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++) {
    dir = dirname(dir);
    let text: string;
    try {
      text = readFileSync(join(dir, "package.json"), "utf8");
    } catch {
      continue;
    }
    // Checked by hand rather than with zod: `persam-db --version` loads no validation library.
    const manifest = JSON.parse(text) as { name?: unknown; version?: unknown };
    if (manifest.name !== PACKAGE_NAME) continue;
    if (typeof manifest.version !== "string" || manifest.version === "") {
      throw new Error(
        `Expected a version string in ${join(dir, "package.json")} but received ${JSON.stringify(manifest.version)}`,
      );
    }
    cached = manifest.version;
    return cached;
  }
  throw new Error(
    `Expected the ${PACKAGE_NAME} package.json above ${fileURLToPath(import.meta.url)} but found none`,
  );
}
