// The external-data files an ONNX model names: a small, read-only walk over the protobuf of a model
// file that visits only the messages where tensors live (graph initializers, sparse initializers,
// node attributes, nested graphs) and skips every other field by its length, so a large model is
// never read whole. Used to know which files a model needs beside its .onnx.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { UserError } from "../../errors.js";

// Field numbers of onnx.proto (onnx/onnx, onnx/onnx.proto3) that lead to tensors.
const MODEL_GRAPH = 7;
const MODEL_FUNCTIONS = 25;
const FUNCTION_NODE = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_SPARSE_INITIALIZER = 15;
const NODE_ATTRIBUTE = 5;
const ATTRIBUTE_T = 5;
const ATTRIBUTE_G = 6;
const ATTRIBUTE_TENSORS = 10;
const ATTRIBUTE_GRAPHS = 11;
const ATTRIBUTE_SPARSE_TENSOR = 22;
const ATTRIBUTE_SPARSE_TENSORS = 23;
const SPARSE_VALUES = 1;
const SPARSE_INDICES = 2;
const TENSOR_EXTERNAL_DATA = 13;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_I32 = 5;

/** Reads bytes of a file at any offset through a small window (sequential walks read each byte once). */
class WindowReader {
  private window: Uint8Array = new Uint8Array(0);
  private windowStart = 0;

  constructor(
    private readonly read: (position: number, length: number) => Uint8Array,
    readonly size: number,
    private readonly windowBytes = 1 << 16,
  ) {}

  byte(pos: number): number {
    if (pos < this.windowStart || pos >= this.windowStart + this.window.length) {
      this.window = this.read(pos, Math.min(this.windowBytes, this.size - pos));
      this.windowStart = pos;
      if (this.window.length === 0) throw new RangeError("read past the end");
    }
    return this.window[pos - this.windowStart]!;
  }

  bytes(pos: number, length: number): Uint8Array {
    if (pos >= this.windowStart && pos + length <= this.windowStart + this.window.length) {
      return this.window.subarray(pos - this.windowStart, pos - this.windowStart + length);
    }
    return this.read(pos, length);
  }
}

class Malformed extends Error {}

interface Field {
  readonly number: number;
  readonly wire: number;
  /** Start of the value (for LEN: of the payload). */
  readonly start: number;
  /** End of the value. */
  readonly end: number;
}

function varint(r: WindowReader, pos: number, end: number): { value: number; next: number } {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new Malformed("truncated varint");
    const b = r.byte(pos++);
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return { value, next: pos };
  }
  throw new Malformed("varint longer than 10 bytes");
}

/** Every field of the message in `[start, end)`, values skipped by their wire type. */
function* fields(r: WindowReader, start: number, end: number): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const tag = varint(r, pos, end);
    const number = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    pos = tag.next;
    let valueStart = pos;
    switch (wire) {
      case WIRE_VARINT:
        pos = varint(r, pos, end).next;
        break;
      case WIRE_I64:
        pos += 8;
        break;
      case WIRE_I32:
        pos += 4;
        break;
      case WIRE_LEN: {
        const length = varint(r, pos, end);
        valueStart = length.next;
        pos = length.next + length.value;
        break;
      }
      case WIRE_START_GROUP:
        pos = skipGroup(r, pos, end, number);
        break;
      default:
        throw new Malformed(`wire type ${wire}`);
    }
    if (pos > end || number === 0) throw new Malformed("field runs past its message");
    yield { number, wire, start: valueStart, end: pos };
  }
}

/** The position after the end-group tag that closes group `number` (groups may nest). */
function skipGroup(r: WindowReader, pos: number, end: number, number: number): number {
  let p = pos;
  while (p < end) {
    const tag = varint(r, p, end);
    const n = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    p = tag.next;
    if (wire === WIRE_END_GROUP) {
      if (n !== number) throw new Malformed("unbalanced group");
      return p;
    }
    if (wire === WIRE_VARINT) p = varint(r, p, end).next;
    else if (wire === WIRE_I64) p += 8;
    else if (wire === WIRE_I32) p += 4;
    else if (wire === WIRE_LEN) {
      const length = varint(r, p, end);
      p = length.next + length.value;
    } else if (wire === WIRE_START_GROUP) p = skipGroup(r, p, end, n);
    else throw new Malformed(`wire type ${wire}`);
  }
  throw new Malformed("unterminated group");
}

function text(r: WindowReader, f: Field): string {
  return new TextDecoder().decode(r.bytes(f.start, f.end - f.start));
}

function tensor(r: WindowReader, f: Field, out: Set<string>): void {
  for (const t of fields(r, f.start, f.end)) {
    if (t.number !== TENSOR_EXTERNAL_DATA || t.wire !== WIRE_LEN) continue;
    let key: string | undefined;
    let value: string | undefined;
    for (const e of fields(r, t.start, t.end)) {
      if (e.wire !== WIRE_LEN) continue;
      if (e.number === ENTRY_KEY) key = text(r, e);
      else if (e.number === ENTRY_VALUE) value = text(r, e);
    }
    if (key === "location" && value !== undefined) out.add(value);
  }
}

function sparseTensor(r: WindowReader, f: Field, out: Set<string>): void {
  for (const s of fields(r, f.start, f.end)) {
    if ((s.number === SPARSE_VALUES || s.number === SPARSE_INDICES) && s.wire === WIRE_LEN) tensor(r, s, out);
  }
}

function node(r: WindowReader, f: Field, out: Set<string>): void {
  for (const a of fields(r, f.start, f.end)) {
    if (a.number !== NODE_ATTRIBUTE || a.wire !== WIRE_LEN) continue;
    for (const v of fields(r, a.start, a.end)) {
      if (v.wire !== WIRE_LEN) continue;
      if (v.number === ATTRIBUTE_T || v.number === ATTRIBUTE_TENSORS) tensor(r, v, out);
      else if (v.number === ATTRIBUTE_G || v.number === ATTRIBUTE_GRAPHS) graph(r, v, out);
      else if (v.number === ATTRIBUTE_SPARSE_TENSOR || v.number === ATTRIBUTE_SPARSE_TENSORS) {
        sparseTensor(r, v, out);
      }
    }
  }
}

function graph(r: WindowReader, f: Field, out: Set<string>): void {
  for (const g of fields(r, f.start, f.end)) {
    if (g.wire !== WIRE_LEN) continue;
    if (g.number === GRAPH_INITIALIZER) tensor(r, g, out);
    else if (g.number === GRAPH_SPARSE_INITIALIZER) sparseTensor(r, g, out);
    else if (g.number === GRAPH_NODE) node(r, g, out);
  }
}

/**
 * The external-data locations an ONNX model names (`external_data` entries with key `location` of
 * every tensor in the main graph, nested graphs and functions), in first-seen order. Locations are
 * as written: paths relative to the folder of the model file.
 * @throws {UserError} naming the file when it is not a readable ONNX protobuf
 */
export async function externalDataLocations(path: string): Promise<string[]> {
  // Synchronous reads: the walk touches a few bytes per tensor, and a promise per read would cost
  // more than the reads themselves.
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw new UserError(`cannot open ONNX model ${path}`, { hint: "check the path", cause: error });
  }
  try {
    const { size } = fstatSync(fd);
    const reader = new WindowReader((position, length) => {
      const buffer = new Uint8Array(length);
      const bytesRead = readSync(fd, buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    }, size);
    const out = new Set<string>();
    try {
      for (const f of fields(reader, 0, size)) {
        if (f.wire !== WIRE_LEN) continue;
        if (f.number === MODEL_GRAPH) graph(reader, f, out);
        else if (f.number === MODEL_FUNCTIONS) {
          for (const n of fields(reader, f.start, f.end)) {
            if (n.number === FUNCTION_NODE && n.wire === WIRE_LEN) node(reader, n, out);
          }
        }
      }
    } catch (error) {
      if (!(error instanceof Malformed || error instanceof RangeError)) throw error;
      throw new UserError(`${path} is not a valid ONNX model (${error.message})`, {
        hint: "download it again, or export it again",
        cause: error,
      });
    }
    return [...out];
  } finally {
    closeSync(fd);
  }
}

/**
 * The repo path of an external-data location named by the model at `modelPath` (both `/`
 * separated): the location joined to the model's folder.
 * @throws {UserError} for an absolute location or one that leaves the repo
 */
export function externalDataRepoPath(params: { modelPath: string; location: string }): string {
  const { location } = params;
  const parts = [...params.modelPath.split("/").slice(0, -1)];
  if (location.startsWith("/") || /^[A-Za-z]:/.test(location) || location.includes("\\")) {
    throw new UserError(`${params.modelPath} names external data at '${location}', an absolute path`, {
      hint: "external data must sit beside the model, named by a relative path",
    });
  }
  for (const segment of location.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (parts.length === 0) {
        throw new UserError(`${params.modelPath} names external data at '${location}', outside its repo`, {
          hint: "external data must sit beside the model, named by a relative path",
        });
      }
      parts.pop();
    } else parts.push(segment);
  }
  return parts.join("/");
}
