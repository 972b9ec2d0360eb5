// WebAssembly SIMD kernels for the bit-exact PIL bilinear resize of RGB photos (persam-spec §1.1.3),
// several times faster than the TypeScript kernels in preprocess.ts (bench/README.md, case
// `preprocess`: `resize` against `resize-ts`), which stay the reference, the fallback and the path
// for other channel counts. The module is assembled here, at first use, from the instruction lists
// below by a few lines of encoder: no toolchain, no opaque binary blob.
//
// The arithmetic is the TypeScript kernels' exactly: int32 lanes, accumulators starting at 2^21,
// products pixel × 22-bit weight summed in any order (exact, see pilResizeBilinear), then `>> 22`
// and saturating narrows i32 → u16 → u8, which is PIL's clip8 for these accumulators.

import { HALF, PRECISION_BITS } from "./sam-constants.js";

/** Precomputed taps of one PIL resample axis: output `o` reads `count[o]` inputs from `start[o]`. */
export interface PilTaps {
  readonly start: Int32Array;
  readonly count: Int32Array;
  /** Fixed-point weights, `ksize` slots per output index. */
  readonly weight: Int32Array;
  readonly ksize: number;
}

// --- A minimal WebAssembly binary encoder (only what the two kernels use) -----------------------

type Bytes = readonly number[];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (items: readonly Bytes[]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: Bytes): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...new TextEncoder().encode(s)].map((b) => [b]));

const I32 = 0x7f;
const V128 = 0x7b;
const get = (i: number): Bytes => [0x20, ...uleb(i)];
const set = (i: number): Bytes => [0x21, ...uleb(i)];
const tee = (i: number): Bytes => [0x22, ...uleb(i)];
const i32 = (n: number): Bytes => [0x41, ...sleb(n)];
const add: Bytes = [0x6a];
const eqz: Bytes = [0x45];
const ltU: Bytes = [0x49];
const geU: Bytes = [0x4f];
/** `i32.load` of a naturally aligned int32 table entry. */
const load: Bytes = [0x28, 2, 0];
const block = (...body: Bytes[]): Bytes => [0x02, 0x40, ...body.flat(), 0x0b];
const loop = (...body: Bytes[]): Bytes => [0x03, 0x40, ...body.flat(), 0x0b];
const brIf = (depth: number): Bytes => [0x0d, depth];
const simd = (op: number, ...imm: number[]): Bytes => [0xfd, ...uleb(op), ...imm];
/** 16 bytes, unaligned (memarg: align 2^4 hint, offset 0). */
const v128Load = simd(0x00, 4, 0);
const v128Store = simd(0x0b, 4, 0);
/** 4 bytes into lane 0, zeros elsewhere. */
const load32Zero = simd(0x5c, 2, 0);
/** 4 bytes into all four lanes: a weight, broadcast. */
const load32Splat = simd(0x09, 2, 0);
/** The low 4 bytes of a vector to memory (memarg, then lane 0). */
const store32Lane0 = simd(0x5a, 2, 0, 0);
const i32x4Splat = simd(0x11);
const u8ToU16Low = simd(0x89);
const u8ToU16High = simd(0x8a);
const u16ToU32Low = simd(0xa9);
const u16ToU32High = simd(0xaa);
const i32x4Add = simd(0xae);
const i32x4Mul = simd(0xb5);
const i32x4ShrS = simd(0xac);
/** i32x4 × 2 → u16x8, saturating (negative → 0, > 65535 → 65535). */
const narrowI32ToU16 = simd(0x86);
/** i16x8 × 2 → u8x16, saturating: with the above, PIL's clip8 of `acc >> 22`. */
const narrowI16ToU8 = simd(0x66);

function func(locals: readonly [count: number, type: number][], ...body: Bytes[]): number[] {
  const code = [...vec(locals.map(([n, t]) => [...uleb(n), t])), ...body.flat(), 0x0b];
  return [...uleb(code.length), ...code];
}

/**
 * `hrow(src, out, outWidth, start, count, weight, weightStride)`: horizontal pass of one RGB row.
 * `start` and `count` point at int32 tables (byte offset of each output's first pixel in `src`,
 * number of taps), `weight` at the first output's int32 weights, `weightStride` bytes apart.
 * Each tap loads one pixel as [R, G, B, next R] into int32 lanes, multiplies by the broadcast
 * weight and adds; the result's first 3 bytes are stored with a 4-byte store (the 4th byte is
 * overwritten by the next pixel, or lands in the row's slack after the last one).
 */
const HROW = func(
  [
    [4, I32], // 7 o, 8 p, 9 k (weight address), 10 kEnd
    [1, V128], // 11 acc
  ],
  i32(0),
  set(7),
  block(
    get(2),
    eqz,
    brIf(0),
    loop(
      [...get(0), ...get(3), ...load, ...add, ...set(8)],
      [...get(5), ...set(9)],
      [...get(5), ...get(4), ...load, ...i32(2), 0x74 /* i32.shl */, ...add, ...set(10)],
      [...i32(HALF), ...i32x4Splat, ...set(11)],
      block(
        [...get(9), ...get(10), ...geU, ...brIf(0)],
        loop(
          get(11),
          [...get(8), ...load32Zero, ...u8ToU16Low, ...u16ToU32Low],
          [...get(9), ...load32Splat, ...i32x4Mul, ...i32x4Add, ...set(11)],
          [...get(8), ...i32(3), ...add, ...set(8)],
          [...get(9), ...i32(4), ...add, ...tee(9), ...get(10), ...ltU, ...brIf(0)],
        ),
      ),
      get(1),
      [...get(11), ...i32(PRECISION_BITS), ...i32x4ShrS, ...tee(11), ...get(11), ...narrowI32ToU16],
      [...tee(11), ...get(11), ...narrowI16ToU8, ...store32Lane0],
      [...get(1), ...i32(3), ...add, ...set(1)],
      [...get(3), ...i32(4), ...add, ...set(3)],
      [...get(4), ...i32(4), ...add, ...set(4)],
      [...get(5), ...get(6), ...add, ...set(5)],
      [...get(7), ...i32(1), ...add, ...tee(7), ...get(2), ...ltU, ...brIf(0)],
    ),
  ),
);

/**
 * `vrow(rows, weight, n, rowLen, out)`: vertical pass of one output row. `rows` points at `n` int32
 * addresses of the input rows, `weight` at their `n` int32 weights. Columns go 16 bytes at a time
 * (four int32x4 accumulators kept in locals across the taps), so `out` and every input row need
 * 15 bytes of slack after `rowLen`.
 */
const VROW = func(
  [
    [2, I32], // 5 i (column), 6 t (tap)
    [8, V128], // 7–10 accumulators, 11 pixels, 12 weight, 13 low 8 pixels, 14 high 8 pixels
  ],
  i32(0),
  set(5),
  block(
    get(2),
    eqz,
    brIf(0),
    loop(
      [...i32(HALF), ...i32x4Splat, ...tee(7), ...tee(8), ...tee(9), ...set(10)],
      i32(0),
      set(6),
      loop(
        [...get(0), ...get(6), ...i32(2), 0x74 /* i32.shl */, ...add, ...load, ...get(5), ...add],
        [...v128Load, ...tee(11), ...u8ToU16Low, ...set(13), ...get(11), ...u8ToU16High, ...set(14)],
        [...get(1), ...get(6), ...i32(2), 0x74 /* i32.shl */, ...add, ...load32Splat, ...set(12)],
        [...get(7), ...get(13), ...u16ToU32Low, ...get(12), ...i32x4Mul, ...i32x4Add, ...set(7)],
        [...get(8), ...get(13), ...u16ToU32High, ...get(12), ...i32x4Mul, ...i32x4Add, ...set(8)],
        [...get(9), ...get(14), ...u16ToU32Low, ...get(12), ...i32x4Mul, ...i32x4Add, ...set(9)],
        [...get(10), ...get(14), ...u16ToU32High, ...get(12), ...i32x4Mul, ...i32x4Add, ...set(10)],
        [...get(6), ...i32(1), ...add, ...tee(6), ...get(2), ...ltU, ...brIf(0)],
      ),
      [...get(4), ...get(5), ...add],
      [
        ...get(7),
        ...i32(PRECISION_BITS),
        ...i32x4ShrS,
        ...get(8),
        ...i32(PRECISION_BITS),
        ...i32x4ShrS,
        ...narrowI32ToU16,
      ],
      [
        ...get(9),
        ...i32(PRECISION_BITS),
        ...i32x4ShrS,
        ...get(10),
        ...i32(PRECISION_BITS),
        ...i32x4ShrS,
        ...narrowI32ToU16,
      ],
      [...narrowI16ToU8, ...v128Store],
      [...get(5), ...i32(16), ...add, ...tee(5), ...get(3), ...ltU, ...brIf(0)],
    ),
  ),
);

/** The module: imports `env.mem`, exports `hrow` and `vrow`. */
export function resizeModuleBytes(): Uint8Array<ArrayBuffer> {
  const params = (n: number): number[] => [0x60, ...vec(Array.from({ length: n }, () => [I32])), 0];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, vec([params(7), params(5)])),
    ...section(2, vec([[...name("env"), ...name("mem"), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([[0], [1]])),
    ...section(
      7,
      vec([
        [...name("hrow"), 0x00, 0],
        [...name("vrow"), 0x00, 1],
      ]),
    ),
    ...section(10, vec([HROW, VROW])),
  ]);
}

/**
 * The few members of the WebAssembly JS API used here, declared locally: the project's `lib`
 * (ES2023, node types) has no WebAssembly declarations, and DOM types would bring far more.
 */
declare const WebAssembly: {
  validate(bytes: Uint8Array<ArrayBuffer>): boolean;
  Module: new (bytes: Uint8Array<ArrayBuffer>) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { readonly exports: object };
  Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
};

/** An opaque compiled module. */
interface WasmModule {
  readonly __brand: "WebAssembly.Module";
}

interface Kernels {
  hrow(
    src: number,
    out: number,
    outWidth: number,
    start: number,
    count: number,
    weight: number,
    stride: number,
  ): void;
  vrow(rows: number, weight: number, n: number, rowLen: number, out: number): void;
}

/** Compiled module, `null` where WebAssembly SIMD is unavailable; `undefined` until first use. */
let compiled: WasmModule | null | undefined;

function resizeModule(): WasmModule | null {
  if (compiled === undefined) {
    const bytes = resizeModuleBytes();
    compiled =
      typeof WebAssembly === "object" && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiled;
}

/** Whether the SIMD kernels can run here (Node ≥ 16.4 has WebAssembly SIMD on by default). */
export function simdAvailable(): boolean {
  return resizeModule() !== null;
}

/** Bytes after every buffer in wasm memory: 16-byte loads and stores may run past a row's end. */
const SLACK = 16;
const align16 = (n: number): number => (n + SLACK + 15) & ~15;

/**
 * PIL bilinear resize of interleaved RGB when both axes change, on the SIMD kernels: the same
 * row-interleaved passes as preprocess.ts (horizontal rows computed once into a ring of
 * `vertical.ksize` rows, in input order, as the vertical pass first needs them). Each call uses a
 * fresh, small wasm memory (taps, one input row, the ring, one output row: ~150 kB for a 12 MP
 * photo), so nothing is retained between calls and calls cannot interfere. Writes every byte of
 * `out` (`outWidth × outHeight × 3`) and returns `true`, or returns `false` without touching it
 * where WebAssembly SIMD is unavailable.
 */
export function resizeRgbSimd(
  src: Uint8Array,
  width: number,
  horizontal: PilTaps,
  vertical: PilTaps,
  out: Uint8Array,
): boolean {
  const module = resizeModule();
  if (module === null) return false;
  const outWidth = horizontal.start.length;
  const outHeight = vertical.start.length;
  const inRow = width * 3;
  const rowLen = outWidth * 3;
  const ringRows = vertical.ksize;
  const ringStride = align16(rowLen);
  let end = 0;
  const alloc = (bytes: number): number => {
    const at = end;
    end += align16(bytes);
    return at;
  };
  const hStart = alloc(outWidth * 4);
  const hCount = alloc(outWidth * 4);
  const hWeight = alloc(horizontal.weight.length * 4);
  const vWeight = alloc(vertical.weight.length * 4);
  const rowTable = alloc(ringRows * 4);
  const inBuf = alloc(inRow);
  const ring = alloc(ringRows * ringStride);
  const outBuf = alloc(rowLen);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(end / 65536) });
  const { hrow, vrow } = new WebAssembly.Instance(module, { env: { mem: memory } })
    .exports as unknown as Kernels;
  const bytes = new Uint8Array(memory.buffer);
  const ints = new Int32Array(memory.buffer);
  for (let o = 0; o < outWidth; o++) {
    ints[hStart / 4 + o] = horizontal.start[o]! * 3;
    ints[hCount / 4 + o] = horizontal.count[o]!;
  }
  ints.set(horizontal.weight, hWeight / 4);
  ints.set(vertical.weight, vWeight / 4);
  let next = 0; // first input row not yet resampled horizontally
  for (let o = 0; o < outHeight; o++) {
    const first = vertical.start[o]!;
    const n = vertical.count[o]!;
    for (next = Math.max(next, first); next < first + n; next++) {
      bytes.set(src.subarray(next * inRow, (next + 1) * inRow), inBuf);
      hrow(
        inBuf,
        ring + (next % ringRows) * ringStride,
        outWidth,
        hStart,
        hCount,
        hWeight,
        horizontal.ksize * 4,
      );
    }
    if (n === 0) {
      out.fill(0, o * rowLen, (o + 1) * rowLen); // never for PIL's windows (≥ 1 tap); PIL gives 0
      continue;
    }
    for (let t = 0; t < n; t++) ints[rowTable / 4 + t] = ring + ((first + t) % ringRows) * ringStride;
    vrow(rowTable, vWeight + o * vertical.ksize * 4, n, rowLen, outBuf);
    out.set(bytes.subarray(outBuf, outBuf + rowLen), o * rowLen);
  }
  return true;
}
