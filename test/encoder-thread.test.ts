// The image encoder in a worker thread (src/segment/sam/encoder-thread.ts). A worker needs compiled
// JavaScript, so these tests load the compiled modules of test/support/built-cli.ts (./dist when it
// is fresh, else a private transpiled copy) and compare the threaded encoder with the same
// SamEncoder run on this thread: the same numbers to the bit, errors that keep their one-line form,
// requests served one at a time, and a process that can still exit when nobody disposes the encoder.

import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as ErrorsModule from "../src/errors.js";
import { type TinyModelFiles, writeTinyModel } from "../src/segment/models/tiny-model.js";
import type * as EncoderSessionModule from "../src/segment/sam/encoder-session.js";
import type * as EncoderThreadModule from "../src/segment/sam/encoder-thread.js";
import { mulberry32 } from "../src/util/seeded-random.js";
import type { Tensor } from "../src/util/tensor.js";
import { type BuiltCli, builtCli } from "./support/built-cli.js";

let root: string;
let cli: BuiltCli;
let model: TinyModelFiles;
let compiled: string;
let threadModule: typeof EncoderThreadModule;
let sessionModule: typeof EncoderSessionModule;
let errorsModule: typeof ErrorsModule;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-encoder-thread-"));
  [cli, model] = await Promise.all([builtCli(), writeTinyModel({ dir: join(root, "model") })]);
  compiled = dirname(dirname(cli.binPath));
  const load = (rel: string) => import(pathToFileURL(join(compiled, rel)).href);
  [threadModule, sessionModule, errorsModule] = await Promise.all([
    load("segment/sam/encoder-thread.js"),
    load("segment/sam/encoder-session.js"),
    load("errors.js"),
  ]);
});

afterAll(async () => {
  await cli?.dispose();
  if (root) await rm(root, { recursive: true, force: true });
});

function pixels(seed: number): Tensor {
  const next = mulberry32(seed);
  const data = new Float32Array(3 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = next() * 4 - 2;
  return { data, dims: [1, 3, 1024, 1024] };
}

describe("image encoder thread", () => {
  it("runs in a worker and gives the same embedding, to the bit, as on this thread", async () => {
    const threaded = await threadModule.createImageEncoder({ path: model.encoderPath, threads: 1 }, true);
    const local = await sessionModule.SamEncoder.create({ path: model.encoderPath, threads: 1 });
    try {
      expect(threaded.threaded).toBe(true);
      expect(threaded.embedDim).toBe(local.embedDim);
      expect(threaded.hasPositional).toBe(local.hasPositional);
      expect(threaded.loadNotes).toEqual(local.loadNotes);
      expect(threaded.positionalPrecision).toBe("float32");
      expect(local.positionalPrecision).toBe("float32");
      for (const seed of [1, 2]) {
        const expected = await local.encode(pixels(seed));
        const input = pixels(seed);
        const got = await threaded.encode(input);
        expect(input.data.length).toBe(0); // handed over to the worker, not copied
        expect(got.embedding.dims).toEqual(expected.embedding.dims);
        expect(
          Buffer.from(got.embedding.data.buffer).equals(Buffer.from(expected.embedding.data.buffer)),
        ).toBe(true);
        expect(got.positional?.dims).toEqual(expected.positional?.dims);
        if (expected.positional) {
          expect(Array.from(got.positional!.data)).toEqual(Array.from(expected.positional.data));
        }
      }
    } finally {
      await threaded.dispose();
      await local.dispose();
    }
  });

  it("answers requests made at once, each with its own result, in order", async () => {
    const threaded = await threadModule.createImageEncoder({ path: model.encoderPath, threads: 1 }, true);
    const local = await sessionModule.SamEncoder.create({ path: model.encoderPath, threads: 1 });
    try {
      const seeds = [3, 4, 5];
      const finished: number[] = [];
      const got = await Promise.all(
        seeds.map((seed) =>
          threaded.encode(pixels(seed)).then((out) => {
            finished.push(seed);
            return out;
          }),
        ),
      );
      expect(finished).toEqual(seeds);
      for (const [i, seed] of seeds.entries()) {
        const expected = await local.encode(pixels(seed));
        expect(Array.from(got[i]!.embedding.data)).toEqual(Array.from(expected.embedding.data));
      }
      // A view into a larger buffer is copied, not taken over.
      const whole = pixels(3);
      const view = new Float32Array(whole.data.length + 8);
      view.set(whole.data, 8);
      const sub: Tensor = { data: view.subarray(8), dims: whole.dims };
      const out = await threaded.encode(sub);
      expect(view.length).toBe(whole.data.length + 8);
      expect(Array.from(out.embedding.data)).toEqual(Array.from(got[0]!.embedding.data));
    } finally {
      await threaded.dispose();
      await local.dispose();
    }
  });

  it("reports a file that is not an encoder as the same one-line user error", async () => {
    const notModel = join(root, "not-a-model.onnx");
    await writeFile(notModel, "this is not an onnx file");
    const lineOf = async (thread: boolean): Promise<string> => {
      const error = await threadModule.createImageEncoder({ path: notModel }, thread).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(errorsModule.isUserError(error)).toBe(true);
      return (error as ErrorsModule.UserError).toLine();
    };
    const threadedLine = await lineOf(true);
    expect(threadedLine).toContain(notModel);
    expect(threadedLine).toContain("pass a SAM image-encoder .onnx file");
    expect(threadedLine).toBe(await lineOf(false));
  });

  it("refuses work after dispose", async () => {
    const threaded = await threadModule.createImageEncoder({ path: model.encoderPath, threads: 1 }, true);
    await threaded.dispose();
    await threaded.dispose(); // twice is harmless
    await expect(threaded.encode(pixels(1))).rejects.toThrow(/disposed/);
  });

  it("does not keep the process alive when idle and not disposed", async () => {
    const script = join(root, "forgets-dispose.mjs");
    const moduleUrl = pathToFileURL(join(compiled, "segment", "sam", "encoder-thread.js")).href;
    await writeFile(
      script,
      [
        `import { createImageEncoder } from ${JSON.stringify(moduleUrl)};`,
        `const encoder = await createImageEncoder({ path: ${JSON.stringify(model.encoderPath)}, threads: 1 }, true);`,
        "const out = await encoder.encode({ data: new Float32Array(3 * 1024 * 1024), dims: [1, 3, 1024, 1024] });",
        "console.log(encoder.threaded, out.embedding.dims.join('x'));",
      ].join("\n"),
    );
    const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(null);
      }, 60_000);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout.trim()).toBe(`true 1x${model.embedDim}x64x64`);
  });
});
