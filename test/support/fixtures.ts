// Where the shared real-photo fixtures live, and a visible skip when a fresh clone lacks them.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `../shared/fixtures/perseg-mini` beside the checkout (PerSeg layout: Images/, Annotations/). */
export const persegMiniDir = join(repoRoot, "..", "shared", "fixtures", "perseg-mini");

/** True when the shared fixtures are present; otherwise prints why the dependent tests skip. */
export function haveSharedFixtures(suite: string): boolean {
  if (existsSync(persegMiniDir)) return true;
  console.warn(`[skip] ${suite}: ../shared/fixtures/perseg-mini is absent (fresh clone without shared/)`);
  return false;
}

/** The three objects of perseg-mini. */
export const persegObjects = ["cat", "colorful_sneaker", "duck_toy"] as const;

/** Absolute path of one fixture photo or annotation. */
export function persegPath(kind: "Images" | "Annotations", object: string, index: string): string {
  return join(persegMiniDir, kind, object, `${index}.${kind === "Images" ? "jpg" : "png"}`);
}
