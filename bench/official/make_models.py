"""Random but identical SAM weights for persam-db and the official Personalize-SAM code.

Builds the official code's own model (per_segment_anything's builder, e.g. vit_t: MobileSAM's
TinyViT encoder) with PyTorch's default random initialisation from a fixed seed, and writes:

  OUT/weights/<name>.pt        the state dict, for the official persam.py (weights/mobile_sam.pt for vit_t)
  OUT/encoder.onnx             the image encoder (input pixel_values [1,3,1024,1024], already
                               normalised and padded; output image_embeddings [1,256,64,64])
  OUT/decoder.safetensors      prompt encoder + mask decoder in Hugging Face transformers naming,
                               the names persam-db reads (src/segment/sam/safetensors.ts)

The weights are RANDOM: the masks mean nothing; only the work is that of the real model.

Usage: python3 make_models.py --persam /path/to/Personalize-SAM --out DIR [--type vit_t] [--seed 0]
"""

import argparse
import json
import os
import struct
import sys

import torch


def hf_name(name):
    """The transformers name of a prompt-encoder / mask-decoder tensor of the original SAM."""
    rules = [
        ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "shared_image_embedding.positional_embedding"),
        ("prompt_encoder.point_embeddings.", "prompt_encoder.point_embed."),
        ("prompt_encoder.mask_downscaling.0.", "prompt_encoder.mask_embed.conv1."),
        ("prompt_encoder.mask_downscaling.1.", "prompt_encoder.mask_embed.layer_norm1."),
        ("prompt_encoder.mask_downscaling.3.", "prompt_encoder.mask_embed.conv2."),
        ("prompt_encoder.mask_downscaling.4.", "prompt_encoder.mask_embed.layer_norm2."),
        ("prompt_encoder.mask_downscaling.6.", "prompt_encoder.mask_embed.conv3."),
        ("mask_decoder.output_upscaling.0.", "mask_decoder.upscale_conv1."),
        ("mask_decoder.output_upscaling.1.", "mask_decoder.upscale_layer_norm."),
        ("mask_decoder.output_upscaling.3.", "mask_decoder.upscale_conv2."),
        ("mask_decoder.transformer.norm_final_attn.", "mask_decoder.transformer.layer_norm_final_attn."),
    ]
    for old, new in rules:
        if name.startswith(old):
            return new + name[len(old):]
    for i in range(1, 5):
        name = name.replace(f".norm{i}.", f".layer_norm{i}.")
    # MLP heads: layers.0 / layers.1 / layers.2 -> proj_in / layers.0 / proj_out.
    for head in ("output_hypernetworks_mlps.", "iou_prediction_head"):
        if head in name:
            name = name.replace(".layers.0.", ".proj_in.").replace(".layers.2.", ".proj_out.")
            name = name.replace(".layers.1.", ".layers.0.")
    return name


def write_safetensors(path, tensors, metadata):
    """The safetensors format: u64 header length, JSON header, raw little-endian F32 data."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf8")
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(path + ".tmp", path)


class Encoder(torch.nn.Module):
    def __init__(self, image_encoder):
        super().__init__()
        self.image_encoder = image_encoder

    def forward(self, pixel_values):
        return self.image_encoder(pixel_values)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--persam", required=True, help="a checkout of ZrrSkywalker/Personalize-SAM")
    parser.add_argument("--out", required=True)
    parser.add_argument("--type", default="vit_t", choices=["vit_t", "vit_b"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.persam))
    # timm is not installable here; its three helpers that TinyViT imports come from shim/.
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
    from per_segment_anything import sam_model_registry

    torch.manual_seed(args.seed)
    sam = sam_model_registry[args.type](checkpoint=None).eval()
    os.makedirs(os.path.join(args.out, "weights"), exist_ok=True)
    checkpoint = "mobile_sam.pt" if args.type == "vit_t" else "sam_vit_b_01ec64.pth"
    torch.save(sam.state_dict(), os.path.join(args.out, "weights", checkpoint))

    decoder = {
        hf_name(k): v
        for k, v in sam.state_dict().items()
        if k.startswith("prompt_encoder.") or k.startswith("mask_decoder.")
    }
    write_safetensors(
        os.path.join(args.out, "decoder.safetensors"),
        decoder,
        {"note": f"RANDOM {args.type} weights (seed {args.seed}) for timing comparisons; segments nothing"},
    )

    pixels = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        torch.onnx.export(
            Encoder(sam.image_encoder).eval(),
            (pixels,),
            os.path.join(args.out, "encoder.onnx"),
            input_names=["pixel_values"],
            output_names=["image_embeddings"],
            opset_version=17,
            do_constant_folding=True,
        )
    print(json.dumps({"out": args.out, "type": args.type, "seed": args.seed, "decoderTensors": len(decoder)}))


if __name__ == "__main__":
    main()
