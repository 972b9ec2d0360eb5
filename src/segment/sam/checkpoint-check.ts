// The check that an image encoder and decoder weights come from the same SAM checkpoint: the
// encoder's positional output against the dense encoding computed from the decoder's matrix G.

import { UserError } from "../../errors.js";
import type { Tensor } from "../../util/tensor.js";
import type { DecoderWeights } from "./decoder-types.js";
import { pointEncoding } from "./positional-encoding.js";
import { POSITIONAL_EMBEDDING_KEY, TIED_POSITIONAL_EMBEDDING_KEY } from "./safetensors.js";

/**
 * Check that an encoder and a decoder come from the same checkpoint (hub.md §1.5): the encoder's
 * `image_positional_embeddings[0]` must equal the dense positional encoding computed from the
 * decoder's Gaussian matrix G (persam-spec §2.4), which differs between checkpoints.
 * @param params.tolerance largest allowed absolute difference. @default 1e-4
 * @returns the largest absolute difference found
 * @throws {UserError} naming both files when they do not match
 */
export function checkCheckpointMatch(params: {
  /** `[1, C, S, S]` or `[C, S, S]` positional output of the encoder. */
  encoderPositional: Tensor;
  decoderWeights: DecoderWeights;
  encoderPath?: string;
  decoderPath?: string;
  tolerance?: number;
}): { maxAbsDiff: number } {
  const enc = params.encoderPositional;
  const dims = enc.dims.length === 4 ? enc.dims.slice(1) : enc.dims;
  const [channels, rows, cols] = dims;
  const encoderName = params.encoderPath ?? "the encoder";
  const decoderName = params.decoderPath ?? "the decoder weights";
  const g =
    params.decoderWeights.get(POSITIONAL_EMBEDDING_KEY) ??
    params.decoderWeights.get(TIED_POSITIONAL_EMBEDDING_KEY);
  if (!g) {
    throw new UserError(`${decoderName} has no ${POSITIONAL_EMBEDDING_KEY}`, {
      hint: "use a complete Hugging Face transformers SAM checkpoint",
    });
  }
  if (
    dims.length !== 3 ||
    channels === undefined ||
    rows === undefined ||
    cols === undefined ||
    rows !== cols
  ) {
    throw new UserError(`${encoderName} gave positional embeddings of shape [${enc.dims.join(",")}]`, {
      hint: "expected [1, C, S, S] from a SAM vision encoder export",
    });
  }
  if (g.dims[1] === undefined || 2 * g.dims[1] !== channels) {
    throw new UserError(
      `${encoderName} (${channels} channels) and ${decoderName} (G [${g.dims.join(",")}]) are not the same SAM checkpoint`,
      { hint: "use the encoder and decoder of one model (persam-db models list)" },
    );
  }
  const side = rows;
  const cells = side * side;
  let maxAbsDiff = 0;
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      const pe = pointEncoding(g, (c + 0.5) / side, (r + 0.5) / side);
      const p = r * side + c;
      for (let k = 0; k < channels; k++) {
        const diff = Math.abs(pe[k]! - enc.data[k * cells + p]!);
        if (!(diff <= maxAbsDiff)) maxAbsDiff = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff;
      }
    }
  }
  const tolerance = params.tolerance ?? 1e-4;
  if (maxAbsDiff > tolerance) {
    throw new UserError(
      `${encoderName} and ${decoderName} come from different SAM checkpoints (positional encodings differ by up to ${maxAbsDiff.toExponential(2)})`,
      { hint: "use the encoder and decoder of one model (persam-db models list), never mix checkpoints" },
    );
  }
  return { maxAbsDiff };
}
