// Parsers for the small value formats of the command line (x,y points, boxes), with messages that
// name the option and the value.

import { UserError } from "../errors.js";
import type { Box, Point } from "../util/tensor.js";

function numbers(option: string, value: string, count: number, example: string): number[] {
  const parts = value.split(",").map((p) => p.trim());
  const nums = parts.map(Number);
  if (parts.length !== count || nums.some((n) => !Number.isFinite(n) || n < 0)) {
    throw new UserError(`Expected ${count} non-negative numbers for ${option} but received '${value}'`, {
      hint: `write it like ${option} ${example}`,
    });
  }
  return nums;
}

/** Parse `x,y` (pixels, column then row). */
export function parsePoint(option: string, value: string): Point {
  const [x, y] = numbers(option, value, 2, "120,340");
  return [x!, y!];
}

/** Parse `x0,y0,x1,y1` with x0 ≤ x1 and y0 ≤ y1. */
export function parseBox(option: string, value: string): Box {
  const [x0, y0, x1, y1] = numbers(option, value, 4, "10,20,300,400");
  if (x1! < x0! || y1! < y0!) {
    throw new UserError(`Expected x0 ≤ x1 and y0 ≤ y1 for ${option} but received '${value}'`, {
      hint: "give the top-left corner first, then the bottom-right corner",
    });
  }
  return [x0!, y0!, x1!, y1!];
}

/** A yargs option value that may be a string or an array of strings. */
export function asList(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}
