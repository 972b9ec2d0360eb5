// TEST-ONLY random SAM decoder weights and image embeddings, deterministic from a seed, for unit
// and parity tests that must run without downloading a checkpoint. Never use these to segment.

import { gaussian, mulberry32 } from "../../util/seeded-random.js";
import { numel, type Tensor } from "../../util/tensor.js";
import { decoderWeightShapes, POSITIONAL_EMBEDDING_KEY } from "../sam/safetensors.js";
import { GRID_SIDE } from "../sam/sam-constants.js";

/** Parameters of {@link randomDecoderWeights}. */
export interface RandomDecoderWeightsParams {
  /** Width C, a multiple of 16 (8 heads over the C/2 cross-attention width); 256 is SAM's. */
  embedDim: number;
  /** Transformer MLP width. @default 2048 when C = 256, else 8·C */
  mlpDim?: number;
  /** Seed of the generator; the same seed gives the same weights. */
  seed: number;
}

const EMBEDDINGS = /(iou_token|mask_tokens|point_embed\.\d|not_a_point_embed|no_mask_embed)\.weight$/;
const NORMS = /(layer_norm\d?|layer_norm_final_attn|upscale_layer_norm)\.(weight|bias)$/;

/**
 * TEST WEIGHTS — random prompt-encoder + mask-decoder weights with every tensor of persam-spec §10
 * in HF naming (G under `shared_image_embedding.positional_embedding`, `[2, C/2]`), deterministic
 * from `seed`. Scaled like PyTorch's default init so activations stay in a sensible range:
 * Linear/Conv weights and biases uniform in ±1/√fan_in (fan_in = product of dims after the first,
 * as PyTorch computes it, also for ConvTranspose); embeddings and G ~ N(0, 1); LayerNorm weight
 * 1 + 0.1·N(0,1) and bias 0.1·N(0,1) so that the affine part is exercised.
 * Cross-attention width C/2, upscaling C/4 then C/8, hypernetwork output C/8 (§0.1 scaled to C).
 * @throws {Error} when C is not a positive multiple of 16.
 */
export function randomDecoderWeights(params: RandomDecoderWeightsParams): Map<string, Tensor> {
  const c = params.embedDim;
  if (!Number.isInteger(c) || c < 16 || c % 16 !== 0) {
    throw new Error(`Expected a positive multiple of 16 for embedDim but received ${c}`);
  }
  const mlpDim = params.mlpDim ?? (c === 256 ? 2048 : 8 * c);
  const shapes = decoderWeightShapes({ embedDim: c, mlpDim, crossDim: c / 2 });
  const uniform = mulberry32(params.seed);
  const normal = gaussian(uniform);
  const out = new Map<string, Tensor>();
  for (const [name, dims] of shapes) {
    const data = new Float32Array(numel(dims));
    if (name === POSITIONAL_EMBEDDING_KEY || EMBEDDINGS.test(name)) {
      for (let i = 0; i < data.length; i++) data[i] = normal();
    } else if (NORMS.test(name)) {
      const base = name.endsWith(".weight") ? 1 : 0;
      for (let i = 0; i < data.length; i++) data[i] = base + 0.1 * normal();
    } else {
      // A bias takes the fan-in of its weight.
      const weightDims = name.endsWith(".bias") ? shapes.get(`${name.slice(0, -5)}.weight`)! : dims;
      const bound = 1 / Math.sqrt(numel(weightDims.slice(1)));
      for (let i = 0; i < data.length; i++) data[i] = (2 * uniform() - 1) * bound;
    }
    out.set(name, { data, dims });
  }
  return out;
}

/**
 * TEST DATA — a random `[1, C, 64, 64]` image embedding, deterministic from `seed`: per channel a
 * smooth random wave plus N(0, 0.5²) noise, about unit variance like SAM's LayerNorm-ed neck
 * output, with spatial structure so the masks are not pure noise.
 */
export function randomEmbedding(embedDim: number, seed: number): Tensor {
  const uniform = mulberry32(seed ^ 0x9e3779b9);
  const normal = gaussian(uniform);
  const cells = GRID_SIDE * GRID_SIDE;
  const data = new Float32Array(embedDim * cells);
  for (let ch = 0; ch < embedDim; ch++) {
    const fx = (uniform() * 4 * Math.PI) / GRID_SIDE;
    const fy = (uniform() * 4 * Math.PI) / GRID_SIDE;
    const phase = uniform() * 2 * Math.PI;
    for (let r = 0; r < GRID_SIDE; r++) {
      for (let col = 0; col < GRID_SIDE; col++) {
        data[ch * cells + r * GRID_SIDE + col] =
          Math.SQRT2 * Math.sin(fx * col + fy * r + phase) * 0.85 + 0.5 * normal();
      }
    }
  }
  return { data, dims: [1, embedDim, GRID_SIDE, GRID_SIDE] };
}
