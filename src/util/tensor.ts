// Plain typed tensors and geometry tuples shared by the maths modules (no native addons here).

/** A dense float32 tensor, row-major, with its shape. */
export interface Tensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** A point `(x, y)` = (column, row), in pixels of whatever frame the caller names. */
export type Point = readonly [x: number, y: number];

/** A box `[x0, y0, x1, y1]`: top-left and bottom-right corners, inclusive pixel extents. */
export type Box = readonly [x0: number, y0: number, x1: number, y1: number];

/** Image height and width, in that order (as SAM's `original_size` / `input_size`). */
export type Size = readonly [height: number, width: number];

/** Number of elements of a shape. */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Make a tensor, checking that the data length matches the shape. */
export function tensor(data: Float32Array, dims: readonly number[]): Tensor {
  const n = numel(dims);
  if (data.length !== n) {
    throw new Error(`Expected ${n} elements for shape [${dims.join(",")}] but received ${data.length}`);
  }
  return { data, dims: [...dims] };
}

/** A zero-filled tensor of the given shape. */
export function zeros(dims: readonly number[]): Tensor {
  return { data: new Float32Array(numel(dims)), dims: [...dims] };
}

/**
 * Index of the largest value, the first one on ties (as torch/numpy argmax; persam-spec §9 item 21).
 * NaN never wins.
 * @throws Error for an empty array.
 */
export function argmax(values: ArrayLike<number>): number {
  if (values.length === 0) throw new Error("Expected at least one value for argmax but received none");
  let best = 0;
  for (let i = 1; i < values.length; i++) {
    const v = values[i]!;
    const b = values[best]!;
    if (v > b || (Number.isNaN(b) && !Number.isNaN(v))) best = i;
  }
  return best;
}

/** A copy of `a` in a new array of its type and `length` elements (the rest zero): growing a buffer. */
export function grown<T extends Int32Array | Uint8Array | Float64Array>(a: T, length: number): T {
  const out = new (a.constructor as new (length: number) => T)(length);
  out.set(a);
  return out;
}
