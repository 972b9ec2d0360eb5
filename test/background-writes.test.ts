// BackgroundWrites: jobs run while the caller goes on, never more than the limit at once; a
// failure is thrown by the next add or by flush, never lost and never unhandled.

import { describe, expect, it } from "vitest";
import { BackgroundWrites } from "../src/util/background-writes.js";

const tick = (ms = 5) => new Promise<void>((r) => setTimeout(r, ms));

describe("BackgroundWrites", () => {
  it("runs at most `limit` jobs at once and flush waits for all of them", async () => {
    const writes = new BackgroundWrites(2);
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    for (let i = 0; i < 6; i++) {
      await writes.add(async () => {
        running++;
        peak = Math.max(peak, running);
        await tick(5 + (i % 3));
        running--;
        done.push(i);
      });
    }
    await writes.flush();
    expect(peak).toBe(2);
    expect(done.sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("returns from add before the job ends", async () => {
    const writes = new BackgroundWrites(1);
    let ended = false;
    await writes.add(async () => {
      await tick(20);
      ended = true;
    });
    expect(ended).toBe(false);
    await writes.flush();
    expect(ended).toBe(true);
  });

  it("throws the first failure at the next add, and at flush", async () => {
    const writes = new BackgroundWrites(1);
    await writes.add(async () => {
      throw new Error("disk full");
    });
    await tick();
    await expect(writes.add(async () => {})).rejects.toThrow("disk full");
    await expect(writes.flush()).rejects.toThrow("disk full");
  });

  it("settle waits without throwing", async () => {
    const writes = new BackgroundWrites(1);
    let ended = false;
    await writes.add(async () => {
      await tick(10);
      ended = true;
      throw new Error("late failure");
    });
    await expect(writes.settle()).resolves.toBeUndefined();
    expect(ended).toBe(true);
  });
});
