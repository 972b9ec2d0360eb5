// Every test run gets a cache folder of its own (PERSAM_DB_CACHE): tests never read or fill the
// user's persam-db cache, and the folder is removed when the run ends.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "persam-test-cache-"));
  process.env.PERSAM_DB_CACHE = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
