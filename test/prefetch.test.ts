// Decoding the next photo ahead (PhotoLoader.prefetch, PhotoEncoder.prefetch): a photo is still
// decoded once, errors surface where the photo is used, a cached embedding is read instead of
// decoding, and segment's photos come out the same as without prefetching.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isUserError } from "../src/errors.js";
import { loadRgb } from "../src/image/image-io.js";
import { PhotoLoader } from "../src/image/photo-loader.js";
import { writeTinyModel } from "../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../src/segment/sam/embedding-cache.js";
import { PhotoEncoder } from "../src/segment/sam/photo-encoder.js";
import { SamModel } from "../src/segment/sam/sam-model.js";
import { hashFile } from "../src/util/hash-file.js";
import { scene, writeJpeg } from "./support/photos.js";

let root: string;
let model: SamModel;
const photos: string[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "persam-prefetch-"));
  const files = await writeTinyModel({ dir: join(root, "model") });
  model = await SamModel.load({ files: { ...files, label: "tiny-test" }, threads: 1 });
  for (let i = 0; i < 3; i++) {
    const path = join(root, `p${i}.jpg`);
    await writeJpeg(path, scene({ width: 96 + 16 * i, height: 72, seed: i + 1 }));
    photos.push(path);
  }
}, 60_000);

afterAll(async () => {
  await model?.dispose();
  await rm(root, { recursive: true, force: true });
});

describe("PhotoLoader.prefetch", () => {
  it("hands the prefetched decode to load: one decode, the same pixels", async () => {
    const decodes: string[] = [];
    const loader = new PhotoLoader({ onDecode: (p) => decodes.push(p) });
    loader.prefetch(photos[0]!);
    loader.prefetch(photos[0]!); // the same photo again starts nothing new
    const image = await loader.load(photos[0]!);
    expect(decodes).toEqual([photos[0]]);
    expect(Buffer.from(image.data).equals(Buffer.from((await loadRgb(photos[0]!)).data))).toBe(true);
    // Taken once: the next load decodes again.
    await loader.load(photos[0]!);
    expect(decodes).toEqual([photos[0], photos[0]]);
  });

  it("keeps one photo ahead: a new prefetch drops the previous one", async () => {
    const decodes: string[] = [];
    const loader = new PhotoLoader({ onDecode: (p) => decodes.push(p) });
    loader.prefetch(photos[0]!);
    loader.prefetch(photos[1]!);
    await loader.load(photos[1]!);
    await loader.load(photos[0]!);
    // photos[0] was decoded ahead and then again by its own load; photos[1] once.
    expect(decodes.filter((p) => p === photos[1]).length).toBe(1);
  });

  it("reports a bad photo at its load, as a user error naming the file, and never unhandled", async () => {
    const bad = join(root, "bad.jpg");
    await writeFile(bad, "not a jpeg");
    const loader = new PhotoLoader();
    loader.prefetch(bad);
    await new Promise((r) => setTimeout(r, 50)); // the decode fails while nobody waits for it
    const error = await loader.load(bad).catch((e: unknown) => e);
    expect(isUserError(error)).toBe(true);
    expect((error as Error).message).toContain("bad.jpg");
  });
});

describe("PhotoEncoder.prefetch", () => {
  it("starts the decode of a photo that is not cached, which encode then uses", async () => {
    const decodes: string[] = [];
    const encoder = new PhotoEncoder({
      model,
      loader: new PhotoLoader({ onDecode: (p) => decodes.push(p) }),
    });
    const sha256 = (await hashFile(photos[2]!)).sha256;
    await encoder.prefetch({ path: photos[2]!, sha256 });
    const outcome = await encoder.encode({ path: photos[2]!, sha256 });
    expect(outcome.cached).toBe(false);
    expect(decodes).toEqual([photos[2]]);
    const direct = await new PhotoEncoder({ model }).encode({ path: photos[2]! });
    expect(
      Buffer.from(outcome.encoded.embedding.data.buffer).equals(
        Buffer.from(direct.encoded.embedding.data.buffer),
      ),
    ).toBe(true);
  });

  it("reads a cached embedding into memory instead of decoding", async () => {
    const cache = new EmbeddingCache({ dir: join(root, "cache") });
    const sha256 = (await hashFile(photos[1]!)).sha256;
    await new PhotoEncoder({ model, cache }).encode({ path: photos[1]!, sha256 });
    const decodes: string[] = [];
    const encoder = new PhotoEncoder({
      model,
      cache,
      loader: new PhotoLoader({ onDecode: (p) => decodes.push(p) }),
    });
    // Not awaited, as segment does: encode waits for the prefetch's look into the cache.
    void encoder.prefetch({ path: photos[1]!, sha256 });
    const outcome = await encoder.encode({ path: photos[1]!, sha256 });
    expect(outcome.cached).toBe(true);
    expect(decodes).toEqual([]);
  });

  it("never throws: a missing photo is left to its encode", async () => {
    const encoder = new PhotoEncoder({ model });
    const gone = join(root, "gone.jpg");
    await expect(encoder.prefetch({ path: gone, sha256: "0".repeat(64) })).resolves.toBeUndefined();
    await expect(encoder.encode({ path: gone, sha256: "0".repeat(64) })).rejects.toThrow(/gone\.jpg/);
  });
});
