// The version of persam-db itself, read from its package.json (the one source of the version).

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// src/util/ and dist/util/ both sit two folders below the package root.
const PACKAGE_JSON = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "package.json");

let cached: string | undefined;

/**
 * persam-db's version (`version` of its package.json), read once.
 * @throws Error when package.json is missing or has no version (a broken installation).
 */
export function packageVersion(): string {
  // Checked by hand rather than with zod: `persam-db --version` loads no validation library.
  if (cached === undefined) {
    const version = (JSON.parse(readFileSync(PACKAGE_JSON, "utf8")) as { version?: unknown }).version;
    if (typeof version !== "string" || version === "") {
      throw new Error(`Expected a version string in ${PACKAGE_JSON} but received ${JSON.stringify(version)}`);
    }
    cached = version;
  }
  return cached;
}
