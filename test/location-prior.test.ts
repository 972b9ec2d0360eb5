import { describe, expect, it } from "vitest";
import { locationPrior } from "../src/segment/persam/location-prior.js";

describe("locationPrior", () => {
  it("returns (x = column, y = row) of the global max and min (§7.2.4)", () => {
    // width 3, height 2: max at row 1, column 2 → index 5; min at row 0, column 1 → index 1.
    const sim = Float32Array.of(0.5, -0.9, 0.1, 0.2, 0.3, 0.95);
    const p = locationPrior({ sim, width: 3, height: 2 });
    expect(p.positive).toEqual([2, 1]);
    expect(p.negative).toEqual([1, 0]);
    expect(p.positiveValue).toBeCloseTo(0.95, 6);
    expect(p.negativeValue).toBeCloseTo(-0.9, 6);
  });

  it("keeps the first row-major index on ties", () => {
    const sim = Float32Array.of(0, 1, 1, -1, 0, -1);
    const p = locationPrior({ sim, width: 2, height: 3 });
    expect(p.positive).toEqual([1, 0]);
    expect(p.negative).toEqual([1, 1]);
  });

  it("rejects a map of the wrong size", () => {
    expect(() => locationPrior({ sim: new Float32Array(5), width: 3, height: 2 })).toThrow(/Expected 3×2/);
  });
});
