// For the review tests: a set prepared with the tiny random model from generated photos, and plain
// HTTP requests (node:http, so that any Host, Origin or body can be sent as a browser or an attacker
// would).

import { mkdir } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import sharp from "sharp";
import { cropAndResize } from "../../src/dataset/crop.js";
import { prepare } from "../../src/dataset/prepare.js";
import { readState } from "../../src/dataset/prepare-state.js";
import { loadRgb } from "../../src/image/image-io.js";
import { writeTinyModel } from "../../src/segment/models/tiny-model.js";
import { EmbeddingCache } from "../../src/segment/sam/embedding-cache.js";
import { SamModel } from "../../src/segment/sam/sam-model.js";
import { type Pixels, scene, writeJpeg, writeSceneMask } from "./photos.js";

/** A prepared set and the model it was made with. */
export interface ReviewFixture {
  readonly photosDir: string;
  readonly outDir: string;
  readonly model: SamModel;
  readonly cache: EmbeddingCache;
}

/**
 * `count` scene photos in `<root>/<name>/` (the first with its mask beside it), prepared into
 * `<root>/<name>.persam/` with the tiny model (doubtful photos kept unless `keepDoubtful` is false).
 * The model is loaded here: dispose it.
 */
export async function preparedForReview(params: {
  root: string;
  name: string;
  count?: number;
  keepDoubtful?: boolean;
  photo?: (i: number) => Pixels;
}): Promise<ReviewFixture> {
  const files = await writeTinyModel({ dir: join(params.root, "model") });
  const model = await SamModel.load({ files: { ...files, label: "local files" }, threads: 1 });
  const photosDir = join(params.root, params.name);
  await mkdir(photosDir, { recursive: true });
  const count = params.count ?? 3;
  for (let i = 0; i < count; i++) {
    const pixels = params.photo?.(i) ?? scene({ at: [0.35 + 0.1 * i, 0.5], seed: i });
    await writeJpeg(join(photosDir, `photo-${i + 1}.jpg`), pixels);
  }
  if (params.photo === undefined)
    await writeSceneMask(join(photosDir, "photo-1.mask.png"), { at: [0.35, 0.5] });
  const cache = new EmbeddingCache({ dir: join(params.root, `${params.name}.embeddings`) });
  const result = await prepare({
    inputDir: photosDir,
    model,
    className: "ball",
    keepDoubtful: params.keepDoubtful ?? true,
    resolution: 64,
    embeddingCache: cache,
  });
  return { photosDir, outDir: result.outDir, model, cache };
}

/** An HTTP answer. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json(): unknown;
}

/** One HTTP request to 127.0.0.1:port with exactly these headers (Host included when given). */
export function http(params: {
  port: number;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port: params.port,
        path: params.path,
        method: params.method ?? "GET",
        headers: { host: `127.0.0.1:${params.port}`, ...params.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body.toString("utf8")),
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (params.body !== undefined) req.end(params.body);
    else req.end();
  });
}

/** A POST the way the page sends it: JSON, the token in its header. */
export function post(port: number, token: string, path: string, body: unknown): Promise<HttpAnswer> {
  return http({
    port,
    path,
    method: "POST",
    headers: { "content-type": "application/json", "x-persam-token": token },
    body: JSON.stringify(body),
  });
}

/** A GET the way the page sends it (the token in the query). */
export function get(port: number, token: string, path: string): Promise<HttpAnswer> {
  return http({ port, path: `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` });
}

/**
 * Whether the training mask `masks/<stem>.png` is `fullMask` (the photo's full-size mask) cut and
 * resized as prepare cuts it (its recorded crop and output size): read as trainers read it, a PNG
 * whose non-zero pixels are the subject. Returns the number of differing pixels.
 */
export async function trainingMaskDifference(params: {
  outDir: string;
  stem: string;
  photoPath: string;
  fullMask: Uint8Array;
}): Promise<number> {
  const { state } = await readState(params.outDir);
  const outputs = state.photos[params.stem]!.outputs!;
  const photo = await loadRgb(params.photoPath);
  const expected = await cropAndResize({
    image: photo,
    mask: params.fullMask,
    crop: outputs.crop,
    width: outputs.width,
    height: outputs.height,
  });
  const { data, info } = await sharp(join(params.outDir, "masks", `${params.stem}.png`))
    .extractChannel(0)
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== outputs.width || info.height !== outputs.height) return Number.POSITIVE_INFINITY;
  let differ = 0;
  for (let i = 0; i < expected.mask.length; i++) if ((data[i]! > 0 ? 1 : 0) !== expected.mask[i]) differ++;
  return differ;
}
