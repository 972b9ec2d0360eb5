// The version of persam-db itself, read from its package.json (the one source of the version).

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

// src/util/ and dist/util/ both sit two folders below the package root.
const PACKAGE_JSON = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "package.json");

let cached: string | undefined;

/**
 * persam-db's version (`version` of its package.json), read once.
 * @throws Error when package.json is missing or has no version (a broken installation).
 */
export function packageVersion(): string {
  cached ??= z
    .object({ version: z.string().min(1) })
    .parse(JSON.parse(readFileSync(PACKAGE_JSON, "utf8"))).version;
  return cached;
}
