// Load-time rewrite of an image encoder's large attentions so that their score tensors exist one
// slice at a time. SAM's global-attention blocks compute softmax(Q·Kᵀ + rel_pos)·V over 64 × 64
// tokens: one fp32 score tensor is [heads, 4096, 4096] = 768 MiB for 12 heads, written by the
// Q·Kᵀ MatMul, rewritten by the relative-position Adds and the Softmax, and two of them are alive at
// once, which sets the encoder's peak RSS (bench/README.md, case `encoder`). Every head (more
// generally: every index of the batch × heads axis) is independent from the Q·Kᵀ MatMul to the
// probabilities·V MatMul, so the region can be computed as `chunks` pieces along that axis (Slice
// its inputs, repeat the region per piece, Concat the outputs): the same arithmetic on the same
// numbers, piece by piece, and only one piece's scores alive at a time.
//
// The pattern is recognised structurally, not by node names: a Softmax over the last axis whose
// input is at least `minScoreBytes`, its probabilities (through Cast/Identity) feeding input 0 of a
// MatMul; from that MatMul backwards, every producer whose output is as large as a quarter of the
// scores and is consumed only inside the region (the Q·Kᵀ MatMul, the rel-pos Adds, the Reshapes
// between them, and an export's materialised `rel_h + rel_w` sum) is pulled into the region; what
// is left (Q, Kᵀ, V, the small rel-pos terms) is sliced. Each op maps the chunk axis by its own rule
// (broadcast alignment, MatMul batch axes, the prefix product of a Reshape, a Transpose's perm); an
// op without a rule, a region without a Q·Kᵀ MatMul, external weights or shapes that cannot be
// inferred leave the model untouched, with a note saying why.
//
// Shapes are inferred statically (shape-inference.ts) with every symbolic input dimension taken as 1, and the
// Reshapes inside a rewritten region get constant target shapes: the rewritten model is for one
// image at a time, which is how SamEncoder feeds it (its input is checked as [1, 3, 1024, 1024]).
//
// The model is edited as bytes: every field of the original (opsets, metadata, attributes of every
// kind, value_info, initializers) is copied verbatim except the removed nodes; the new nodes and the
// small int64 initializers they use are appended as one more `ModelProto.graph` piece (protobuf
// merges repeated occurrences of a message field, as vit-encoder.ts relies on too).

import {
  type AttributeProtoData,
  DataType,
  int64Bytes,
  ProtoWriter,
  writeNode,
  writeTensor,
} from "./proto.js";
import { externalDataFiles, fieldSpans, type ReadModel, type ReadNode, readModel } from "./proto-reader.js";
import { inferShapes } from "./shape-inference.js";

/** Options of {@link chunkAttention}. */
export interface AttentionChunkingOptions {
  /**
   * Pieces per attention along its batch × heads axis (at most the axis length; sizes differ by at
   * most one). 12 = one SAM head at a time.
   */
  readonly chunks: number;
  /** Only Softmax inputs of at least this many bytes (as fp32) are rewritten. @default 64 MiB */
  readonly minScoreBytes?: number;
  /** `readModel(bytes)`, when the caller has parsed it already (a large model is then parsed once). */
  readonly model?: ReadModel | undefined;
}

/** What {@link chunkAttention} returns. */
export interface AttentionChunkingResult {
  /** The rewritten model, or the input bytes themselves when nothing was rewritten. */
  readonly bytes: Uint8Array;
  /**
   * The same model as consecutive pieces, mostly views into the input (no copy of the weights):
   * what to write to a file when the model is large. `[bytes]` when nothing was rewritten.
   */
  readonly parts: readonly Uint8Array[];
  /** Attentions rewritten. */
  readonly rewritten: number;
  /**
   * Attentions whose score tensor reaches `minScoreBytes` or has an unknown size (the candidates);
   * -1 when the graph could not be examined at all (unparsable, external data, old opset).
   */
  readonly large: number;
  /** Nodes removed from the original graph (all of them re-emitted per chunk). */
  readonly removedNodes: number;
  /** Why a candidate was left alone, or why nothing was attempted. */
  readonly notes: readonly string[];
  /** The external data files the model names (such a model is left unchanged); absent when none. */
  readonly externalData?: readonly string[];
}

type Shape = readonly number[];

/** Ops applied element by element with numpy broadcasting over all data inputs. */
const ELEMENTWISE = new Set([
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Pow",
  "Max",
  "Min",
  "Where",
  "Cast",
  "Identity",
  "Exp",
  "Erf",
  "Neg",
  "Sqrt",
  "Reciprocal",
  "Relu",
  "Tanh",
  "Sigmoid",
  "Abs",
]);
/** Ops that only reinterpret the shape (row-major order kept); re-emitted as Reshape. */
const SHAPE_ONLY = new Set(["Reshape", "Flatten", "Squeeze", "Unsqueeze"]);
/** Ops that normalise along one axis, which must not be the chunk axis. */
const AXIS_OPS = new Set(["Softmax", "LogSoftmax"]);

const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);
const normAxis = (a: number, rank: number): number => (a < 0 ? a + rank : a);

/** One node as read plus its position in the graph's node list. */
interface Indexed {
  readonly node: ReadNode;
  readonly index: number;
}

/** A rewrite of one attention: the region's nodes and the chunk axis of every value involved. */
interface Plan {
  /** Region nodes, in graph order. */
  readonly nodes: readonly Indexed[];
  /** Chunk axis of region outputs and sliced leaves; -1 = shared by every chunk. */
  readonly axis: ReadonlyMap<string, number>;
  /** Length of the chunk axis. */
  readonly length: number;
  /** The final MatMul (its output is re-assembled with Concat). */
  readonly last: Indexed;
}

/**
 * Rewrite every large attention of an ONNX model into `chunks` pieces along its batch × heads
 * axis. The result computes the same values (each piece runs the same ops on the same numbers);
 * a model without the pattern comes back unchanged, with notes.
 * @param bytes the model file's bytes (weights inline; external data is not supported).
 */
export function chunkAttention(
  bytes: Uint8Array,
  options: AttentionChunkingOptions,
): AttentionChunkingResult {
  const unchanged = (notes: string[], large = -1): AttentionChunkingResult => ({
    bytes,
    parts: [bytes],
    rewritten: 0,
    large,
    removedNodes: 0,
    notes,
  });
  if (!Number.isInteger(options.chunks) || options.chunks < 1) {
    throw new Error(`Expected a positive integer for chunks but received ${options.chunks}`);
  }
  if (options.chunks === 1) return unchanged(["chunks = 1: nothing to do"], 0);
  let model: ReadModel;
  try {
    model = options.model ?? readModel(bytes);
  } catch (error) {
    return unchanged([`not rewritten: the model could not be parsed (${String(error)})`]);
  }
  const g = model.graph;
  const externalFiles = externalDataFiles(model);
  if (externalFiles.length > 0) {
    return {
      ...unchanged([
        `not rewritten: the model keeps weights in external data files (${externalFiles.join(", ")})`,
      ]),
      externalData: externalFiles,
    };
  }
  const opset = model.opsets.get("") ?? model.opsets.get("ai.onnx") ?? 0;
  if (opset < 13) return unchanged([`not rewritten: opset ${opset} < 13`]);
  const shapes = inferShapes(model);
  const minBytes = options.minScoreBytes ?? 64 * 2 ** 20;

  const nodes: Indexed[] = g.nodes.map((node, index) => ({ node, index }));
  const producer = new Map<string, Indexed>();
  const consumers = new Map<string, Indexed[]>();
  for (const n of nodes) {
    for (const o of n.node.outputs) if (o) producer.set(o, n);
    for (const i of n.node.inputs) {
      if (!i) continue;
      const list = consumers.get(i) ?? [];
      list.push(n);
      consumers.set(i, list);
    }
  }
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const soleConsumer = (value: string): Indexed | undefined => {
    const c = consumers.get(value) ?? [];
    return c.length === 1 && !graphOutputs.has(value) ? c[0] : undefined;
  };

  const notes: string[] = [];
  const plans: Plan[] = [];
  const taken = new Set<number>();
  let large = 0;
  for (const s of nodes) {
    if (s.node.opType !== "Softmax" || s.node.domain !== "") continue;
    const scores = shapes.get(s.node.inputs[0] ?? "");
    const label = `Softmax ${s.node.name || s.node.outputs[0]}`;
    if (!scores) {
      large++;
      notes.push(`${label}: input shape unknown, left alone`);
      continue;
    }
    if (numel(scores) * 4 < minBytes) continue;
    large++;
    const axisAttr = s.node.attributes.get("axis")?.i ?? -1;
    if (normAxis(axisAttr, scores.length) !== scores.length - 1) {
      notes.push(`${label}: softmax axis ${axisAttr} is not the last, left alone`);
      continue;
    }
    // Probabilities → (Cast | Identity)* → MatMul input 0.
    let value = s.node.outputs[0]!;
    let next = soleConsumer(value);
    while (next && (next.node.opType === "Cast" || next.node.opType === "Identity")) {
      value = next.node.outputs[0]!;
      next = soleConsumer(value);
    }
    if (next?.node.opType !== "MatMul" || next.node.inputs[0] !== value) {
      notes.push(`${label}: its probabilities do not feed a MatMul alone, left alone`);
      continue;
    }
    const plan = planRegion(next, shapes, producer, consumers, graphOutputs, numel(scores) / 4);
    if (typeof plan === "string") {
      notes.push(`${label}: ${plan}, left alone`);
      continue;
    }
    if (!plan.nodes.some((n) => n.index === s.index)) {
      notes.push(`${label}: the softmax could not be included in the chunked region, left alone`);
      continue;
    }
    if (!plan.nodes.some((n) => n.node.opType === "MatMul" && n !== plan.last)) {
      notes.push(`${label}: no Q·Kᵀ MatMul found before the softmax, left alone`);
      continue;
    }
    if (plan.nodes.some((n) => taken.has(n.index))) continue;
    for (const n of plan.nodes) taken.add(n.index);
    plans.push(plan);
  }
  if (plans.length === 0) {
    return unchanged(notes.length > 0 ? notes : ["no attention with a large score tensor found"], large);
  }

  const used = new Set<string>();
  for (const n of nodes) {
    for (const v of [...n.node.inputs, ...n.node.outputs]) used.add(v);
    used.add(n.node.name);
  }
  for (const name of g.initializers.keys()) used.add(name);
  for (const v of g.inputs) used.add(v.name);
  const fresh = (base: string): string => {
    let name = base;
    for (let k = 1; used.has(name); k++) name = `${base}_${k}`;
    used.add(name);
    return name;
  };

  const extra = new ProtoWriter(); // the appended GraphProto piece
  const emittedInputs = new Set<string>();
  const int64Init = (base: string, values: readonly number[]): string => {
    const name = fresh(base);
    const rawData = int64Bytes(values);
    extra.message(5, writeTensor({ name, dataType: DataType.INT64, dims: [values.length], rawData }));
    return name;
  };
  const emitNode = (
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    name: string,
    copyFrom?: Uint8Array,
    attributes: readonly AttributeProtoData[] = [],
  ): void => {
    for (const i of inputs) emittedInputs.add(i);
    if (!copyFrom) {
      extra.message(1, writeNode({ opType, inputs, outputs, name, attributes }));
      return;
    }
    // The original node's other fields (op_type, attributes, domain, ...) verbatim.
    const w = new ProtoWriter();
    for (const i of inputs) w.string(1, i);
    for (const o of outputs) w.string(2, o);
    w.string(3, name);
    copyNodeFieldsExceptIo(copyFrom, w);
    extra.message(1, w);
  };

  const rawNodes = nodeByteRanges(bytes);
  const removed = new Set<number>();
  plans.forEach((plan, p) => {
    const k = Math.min(options.chunks, plan.length);
    const bounds: number[] = [0];
    for (let c = 1; c <= k; c++) bounds.push(Math.round((c * plan.length) / k));
    const tag = `attention_chunk${p}`;
    const ones = new Map<number, string>(); // axes initializer per axis
    const axesInit = (axis: number): string => {
      let name = ones.get(axis);
      if (!name) {
        name = int64Init(`${tag}/axes${axis}`, [axis]);
        ones.set(axis, name);
      }
      return name;
    };
    const regionOutputs = new Set(plan.nodes.flatMap((n) => n.node.outputs));
    const pieces: string[] = [];
    for (let c = 0; c < k; c++) {
      const start = bounds[c]!;
      const end = bounds[c + 1]!;
      const starts = int64Init(`${tag}/c${c}/start`, [start]);
      const ends = int64Init(`${tag}/c${c}/end`, [end]);
      const local = new Map<string, string>();
      const inChunk = (v: string): string => {
        if (!v) return v;
        const mapped = local.get(v);
        if (mapped) return mapped;
        const axis = plan.axis.get(v) ?? -1;
        if (axis < 0 || regionOutputs.has(v)) return v;
        const sliced = fresh(`${v}/${tag}/c${c}`);
        emitNode("Slice", [v, starts, ends, axesInit(axis)], [sliced], fresh(`${tag}/c${c}/slice`));
        local.set(v, sliced);
        return sliced;
      };
      for (const n of plan.nodes) {
        const outs = n.node.outputs.map((o) => (o ? fresh(`${o}/${tag}/c${c}`) : o));
        if (SHAPE_ONLY.has(n.node.opType)) {
          const full = shapes.get(n.node.outputs[0]!)!;
          const axis = plan.axis.get(n.node.outputs[0]!)!;
          const target = full.map((d, j) => (j === axis ? end - start : d));
          const shapeName = int64Init(`${tag}/c${c}/shape`, target);
          emitNode("Reshape", [inChunk(n.node.inputs[0]!), shapeName], outs, fresh(`${tag}/c${c}/reshape`));
        } else {
          const range = rawNodes[n.index];
          if (!range) throw new Error(`Expected node ${n.index} in the model bytes`);
          emitNode(
            n.node.opType,
            n.node.inputs.map(inChunk),
            outs,
            fresh(`${n.node.name || n.node.opType}/${tag}/c${c}`),
            bytes.subarray(range[0], range[1]),
          );
        }
        n.node.outputs.forEach((o, j) => {
          if (o) local.set(o, outs[j]!);
        });
        removed.add(n.index);
      }
      pieces.push(local.get(plan.last.node.outputs[0]!)!);
    }
    const outAxis = plan.axis.get(plan.last.node.outputs[0]!)!;
    emitNode("Concat", pieces, [plan.last.node.outputs[0]!], fresh(`${tag}/concat`), undefined, [
      { name: "axis", kind: "int", value: outAxis },
    ]);
  });

  // The removed nodes' own constants (Reshape shapes) would be left unused: onnxruntime warns about
  // each one on every load, so they go too, Constant nodes and initializers alike.
  const referenced = new Set<string>([...graphOutputs, ...emittedInputs]);
  const orphan = (value: string): boolean =>
    !referenced.has(value) && (consumers.get(value) ?? []).every((u) => removed.has(u.index));
  for (const n of nodes) {
    if (n.node.opType === "Constant" && !removed.has(n.index) && n.node.outputs.every(orphan)) {
      removed.add(n.index);
    }
  }
  const droppedInitializers = new Set([...g.initializers.keys()].filter(orphan));
  const parts = spliceModel(bytes, removed, droppedInitializers, extra);
  const rewrittenNote = `rewrote ${plans.length} attention(s) into ≤ ${options.chunks} chunks along the batch × heads axis`;
  let assembled: Uint8Array | undefined;
  return {
    // Assembled on first use only: a caller that writes `parts` out never holds a second copy.
    get bytes(): Uint8Array {
      assembled ??= Buffer.concat(parts);
      return assembled;
    },
    parts,
    rewritten: plans.length,
    large,
    removedNodes: removed.size,
    notes: [rewrittenNote, ...notes],
  };
}

/**
 * The region ending at MatMul `last`: walking backwards in graph order, a producer is pulled in
 * when its output is at least `pullElements` large, consumed only inside the region, and its op
 * has a rule for the chunk axis; every other input on the chunk axis is sliced.
 * @returns the plan, or why there is none.
 */
function planRegion(
  last: Indexed,
  shapes: ReadonlyMap<string, Shape>,
  producer: ReadonlyMap<string, Indexed>,
  consumers: ReadonlyMap<string, readonly Indexed[]>,
  graphOutputs: ReadonlySet<string>,
  pullElements: number,
): Plan | string {
  const outShape = shapes.get(last.node.outputs[0]!);
  if (!outShape || outShape.length < 3) return "the final MatMul's output shape is unknown or of rank < 3";
  const outAxis = outShape.length - 3;
  const length = outShape[outAxis]!;
  if (length < 2) return `the batch × heads axis has length ${length}`;
  const axis = new Map<string, number>([[last.node.outputs[0]!, outAxis]]);
  const region = new Map<number, Indexed>([[last.index, last]]);
  // Pending region nodes, processed in decreasing graph order (consumers before producers).
  const pending: Indexed[] = [last];
  const require = (value: string, a: number): string | undefined => {
    const known = axis.get(value);
    if (known !== undefined && known !== a) return `value ${value} would need two chunk axes`;
    axis.set(value, a);
    return undefined;
  };
  while (pending.length > 0) {
    pending.sort((x, y) => y.index - x.index);
    const n = pending.shift()!;
    const out = n.node.outputs[0]!;
    const ao = axis.get(out)!;
    const inputAxes = inputAxesOf(n.node, ao, shapes);
    if (typeof inputAxes === "string") return inputAxes;
    for (const [value, a] of inputAxes) {
      if (a < 0) {
        if (axis.get(value) === undefined) axis.set(value, -1);
        else if (axis.get(value)! >= 0) return `value ${value} is both sliced and shared`;
        continue;
      }
      const problem = require(value, a);
      if (problem) return problem;
      const p = producer.get(value);
      if (!p || region.has(p.index)) continue;
      const size = numel(shapes.get(value) ?? []);
      const users = consumers.get(value) ?? [];
      const pull =
        (size >= pullElements || fusesIntoMatMul(p.node, n.node, shapes)) &&
        p.node.outputs.length === 1 &&
        !graphOutputs.has(value) &&
        p.index < n.index &&
        users.every((u) => region.has(u.index) || pending.includes(u) || u === n) &&
        typeof inputAxesOf(p.node, a, shapes) !== "string";
      if (pull) {
        region.set(p.index, p);
        pending.push(p);
      }
    }
  }
  // Every consumer of a region value must be in the region (else the value is needed whole).
  for (const r of region.values()) {
    if (r === last) continue;
    for (const o of r.node.outputs) {
      if ((consumers.get(o) ?? []).some((u) => !region.has(u.index)) || graphOutputs.has(o)) {
        return `value ${o} is also used outside the attention`;
      }
    }
  }
  const ordered = [...region.values()].sort((x, y) => x.index - y.index);
  return { nodes: ordered, axis, length, last };
}

/**
 * True for a small producer that onnxruntime fuses into the consuming MatMul (a Transpose becomes
 * FusedMatMul's transA/transB, a Mul or Div by a scalar its alpha). Such a producer joins the region
 * so that the slice goes before it and every chunk's MatMul is fused exactly as the original was:
 * a Slice in between would prevent the fusion and change the rounding (FusedMatMul scales the
 * product, the unfused graph scales Q).
 */
function fusesIntoMatMul(p: ReadNode, consumer: ReadNode, shapes: ReadonlyMap<string, Shape>): boolean {
  if (consumer.opType !== "MatMul") return false;
  if (p.opType === "Transpose") return true;
  if (p.opType !== "Mul" && p.opType !== "Div") return false;
  const scalar = (v: string | undefined): boolean => v !== undefined && numel(shapes.get(v) ?? [0]) === 1;
  return p.opType === "Mul" ? scalar(p.inputs[0]) || scalar(p.inputs[1]) : scalar(p.inputs[1]);
}

/**
 * For a node whose (first) output is chunked along axis `ao`: each data input with the axis it is
 * chunked along, or -1 when every chunk uses it whole (broadcast). A string says why the op cannot
 * be chunked.
 */
function inputAxesOf(
  node: ReadNode,
  ao: number,
  shapes: ReadonlyMap<string, Shape>,
): [string, number][] | string {
  const op = node.opType;
  const so = shapes.get(node.outputs[0] ?? "");
  if (!so) return `${op} ${node.name}: output shape unknown`;
  const len = so[ao]!;
  const broadcastAxis = (value: string, batchOnly: boolean): number | string => {
    const si = shapes.get(value);
    if (!si) return `${op} ${node.name}: shape of ${value} unknown`;
    const ai = ao - (so.length - si.length);
    if (ai < 0) return -1;
    if (batchOnly && ai >= si.length - 2) return `${op} ${node.name}: the chunk axis is a matrix axis`;
    if (si[ai] === len) return ai;
    if (si[ai] === 1) return -1;
    return `${op} ${node.name}: ${value} has ${si[ai]} along the chunk axis, expected ${len} or 1`;
  };
  if (node.domain !== "" && node.domain !== "ai.onnx") return `${op} ${node.name}: domain ${node.domain}`;
  if (node.outputs.filter((o) => o).length !== 1) return `${op} ${node.name}: several outputs`;
  const result: [string, number][] = [];
  if (op === "MatMul" || ELEMENTWISE.has(op) || AXIS_OPS.has(op)) {
    if (op === "MatMul" && ao >= so.length - 2) return `MatMul ${node.name}: the chunk axis is a matrix axis`;
    if (AXIS_OPS.has(op)) {
      const a = normAxis(node.attributes.get("axis")?.i ?? -1, so.length);
      if (a === ao) return `${op} ${node.name}: normalises along the chunk axis`;
    }
    for (const value of node.inputs) {
      if (!value) continue;
      const a = broadcastAxis(value, op === "MatMul");
      if (typeof a === "string") return a;
      result.push([value, a]);
    }
    return result;
  }
  if (SHAPE_ONLY.has(op)) {
    const value = node.inputs[0]!;
    const si = shapes.get(value);
    if (!si) return `${op} ${node.name}: input shape unknown`;
    const prefix = numel(so.slice(0, ao));
    for (let ai = 0; ai < si.length; ai++) {
      if (numel(si.slice(0, ai)) === prefix && si[ai] === len) return [[value, ai]];
      if (numel(si.slice(0, ai)) > prefix) break;
    }
    return `${op} ${node.name}: the chunk axis is merged with or split from another axis`;
  }
  if (op === "Transpose") {
    const si = shapes.get(node.inputs[0]!);
    if (!si) return `${op} ${node.name}: input shape unknown`;
    const perm = node.attributes.get("perm")?.ints ?? si.map((_, k) => si.length - 1 - k);
    return [[node.inputs[0]!, perm[ao]!]];
  }
  return `${op} ${node.name}: no chunking rule for this op`;
}

// ---------------------------------------------------------------------------------------------
// Byte-level editing (fields located by proto-reader.ts, copied or dropped verbatim)

const textDecoder = new TextDecoder();

/** Byte ranges `[start, end)` of every NodeProto payload, in the order readModel lists nodes. */
function nodeByteRanges(bytes: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  for (const f of fieldSpans(bytes)) {
    if (f.field !== 7 || f.wire !== 2) continue;
    for (const gf of fieldSpans(bytes, f.payloadStart, f.end)) {
      if (gf.field === 1 && gf.wire === 2) out.push([gf.payloadStart, gf.end]);
    }
  }
  return out;
}

/** Copy every field of a NodeProto except input (1), output (2) and name (3). */
function copyNodeFieldsExceptIo(node: Uint8Array, w: ProtoWriter): void {
  for (const f of fieldSpans(node)) {
    if (f.field === 1 || f.field === 2 || f.field === 3) continue;
    w.raw(node.subarray(f.start, f.end));
  }
}

/** Name (field 8) of a serialised TensorProto: the last occurrence, as protobuf (and readModel) reads it. */
function tensorName(buf: Uint8Array, start: number, end: number): string {
  let name = "";
  for (const f of fieldSpans(buf, start, end)) {
    if (f.field === 8 && f.wire === 2) name = textDecoder.decode(buf.subarray(f.payloadStart, f.end));
  }
  return name;
}

/**
 * The model bytes without the nodes at `removed` (graph order) and the initializers named in
 * `droppedInitializers`, plus `extra` as one more graph piece, as pieces (mostly views of `bytes`).
 */
function spliceModel(
  bytes: Uint8Array,
  removed: ReadonlySet<number>,
  droppedInitializers: ReadonlySet<string>,
  extra: ProtoWriter,
): readonly Uint8Array[] {
  const w = new ProtoWriter();
  let index = 0;
  for (const f of fieldSpans(bytes)) {
    if (f.field !== 7 || f.wire !== 2) {
      w.raw(bytes.subarray(f.start, f.end));
      continue;
    }
    const graph = new ProtoWriter();
    for (const gf of fieldSpans(bytes, f.payloadStart, f.end)) {
      if (gf.field === 1 && gf.wire === 2 && removed.has(index++)) continue;
      if (
        gf.field === 5 &&
        gf.wire === 2 &&
        droppedInitializers.has(tensorName(bytes, gf.payloadStart, gf.end))
      ) {
        continue;
      }
      graph.raw(bytes.subarray(gf.start, gf.end));
    }
    w.message(7, graph);
  }
  w.message(7, extra);
  return w.parts();
}
