// The CLI entry itself: overview, unknown commands, and arguments after `--`.

import { describe, expect, it } from "vitest";
import { positionalsAfterDoubleDash } from "../src/cli/main.js";
import { runCli } from "./support/cli.js";

describe("persam-db (no command)", () => {
  it("shows the overview with every command and exits 0", async () => {
    const run = await runCli([]);
    expect(run.code).toBe(0);
    for (const c of ["prepare", "segment", "eval", "mask", "push", "models", "doctor"]) {
      expect(run.stdout).toContain(`persam-db ${c}`);
    }
  });

  it("refuses an unknown command with one line and a pointer to --help", async () => {
    const run = await runCli(["prepair", "./x"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("Run 'persam-db --help' for usage.");
  });
});

describe("positionalsAfterDoubleDash", () => {
  it("keeps arguments after -- positional, even when they start with a dash", () => {
    expect(positionalsAfterDoubleDash(["mask", "--point", "1,2", "--", "-a.jpg", "b.jpg"])).toEqual([
      "mask",
      "--point",
      "1,2",
      "./-a.jpg",
      "b.jpg",
    ]);
    expect(positionalsAfterDoubleDash(["mask", "a.jpg"])).toEqual(["mask", "a.jpg"]);
  });
});
