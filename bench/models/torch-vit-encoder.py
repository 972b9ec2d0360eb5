#!/usr/bin/env python3
"""BENCHMARK MODEL: SAM's ViT image encoder with deterministic RANDOM weights, exported by
torch.onnx.export (opset 17), so that the encoder benchmark can measure a graph written by PyTorch's
exporter rather than by persam-db's own graph builder. It segments nothing.

Usage (Debian: apt-get install -y python3-torch python3-onnx; the packages are for /usr/bin/python3):

    /usr/bin/python3 bench/models/torch-vit-encoder.py OUT.onnx [--size vit-b|tiny] [--seed N]
    npm run bench -- encoder --encoder OUT.onnx

The file is about 360 MB for vit-b and is never committed. Architecture facts from
facebookresearch/segment-anything `modeling/image_encoder.py` (ImageEncoderViT with SAM ViT-B's
settings: 1024 input, patch 16, width 768, 12 blocks of 12 heads, MLP 3072, windows of 14 with
global attention in blocks 2, 5, 8 and 11, decomposed relative positions, neck to 256 channels);
the interface is optimum's SAM vision-encoder export: `pixel_values` [batch_size, 3, 1024, 1024] ->
`image_embeddings` and `image_positional_embeddings` [batch_size, 256, 64, 64], the latter the dense
positional encoding of a random Gaussian matrix G repeated over the batch, as transformers'
SamModel computes it.
"""

import argparse
import math
import os

import onnx
import torch
import torch.nn.functional as F

SIZES = {
    "vit-b": dict(width=768, depth=12, heads=12, mlp=3072, window=14, global_blocks=(2, 5, 8, 11)),
    "tiny": dict(width=48, depth=2, heads=2, mlp=96, window=14, global_blocks=(1,)),
}
IMAGE = 1024
PATCH = 16
GRID = IMAGE // PATCH
OUT_CHANNELS = 256


def relative_positions(size, table):
    """(2*size - 1, d) -> (size, size, d): entry [q, k] is table[q - k + size - 1]."""
    index = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
    return table[index]


class Attention(torch.nn.Module):
    def __init__(self, width, heads, side):
        super().__init__()
        self.heads = heads
        head_width = width // heads
        self.scale = head_width**-0.5
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.rel_pos_h = torch.nn.Parameter(0.02 * torch.randn(2 * side - 1, head_width))
        self.rel_pos_w = torch.nn.Parameter(0.02 * torch.randn(2 * side - 1, head_width))

    def forward(self, x):
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.heads, h * w, -1).unbind(0)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        rows = q.reshape(b * self.heads, h, w, -1)
        bias_h = rows @ relative_positions(h, self.rel_pos_h).permute(0, 2, 1)
        bias_w = (rows.permute(0, 2, 1, 3) @ relative_positions(w, self.rel_pos_w).permute(0, 2, 1)).permute(
            0, 2, 1, 3
        )
        scores = (scores.view(b * self.heads, h, w, h, w) + bias_h[..., None] + bias_w[:, :, :, None, :]).view(
            b * self.heads, h * w, h * w
        )
        out = (scores.softmax(dim=-1) @ v).view(b, self.heads, h, w, -1).permute(0, 2, 3, 1, 4)
        return self.proj(out.reshape(b, h, w, -1))


class Block(torch.nn.Module):
    def __init__(self, width, heads, mlp, window):
        super().__init__()
        self.window = window
        self.norm1 = torch.nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads, window if window > 0 else GRID)
        self.norm2 = torch.nn.LayerNorm(width, eps=1e-6)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, mlp), torch.nn.GELU(), torch.nn.Linear(mlp, width))

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            b, h, w, c = x.shape
            s = self.window
            pad_h, pad_w = (s - h % s) % s, (s - w % s) % s
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
            hp, wp = h + pad_h, w + pad_w
            x = x.view(b, hp // s, s, wp // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s, s, c)
            x = self.attn(x)
            x = x.view(b, hp // s, wp // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
            x = x[:, :h, :w, :]
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ChannelNorm(torch.nn.Module):
    """LayerNorm over the channels of an NCHW tensor (SAM's LayerNorm2d)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(channels))
        self.bias = torch.nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class VisionEncoder(torch.nn.Module):
    def __init__(self, width, depth, heads, mlp, window, global_blocks):
        super().__init__()
        self.patch_embed = torch.nn.Conv2d(3, width, kernel_size=PATCH, stride=PATCH)
        self.pos_embed = torch.nn.Parameter(0.02 * torch.randn(1, GRID, GRID, width))
        self.blocks = torch.nn.ModuleList(
            [Block(width, heads, mlp, 0 if i in global_blocks else window) for i in range(depth)]
        )
        self.neck = torch.nn.Sequential(
            torch.nn.Conv2d(width, OUT_CHANNELS, kernel_size=1, bias=False),
            ChannelNorm(OUT_CHANNELS),
            torch.nn.Conv2d(OUT_CHANNELS, OUT_CHANNELS, kernel_size=3, padding=1, bias=False),
            ChannelNorm(OUT_CHANNELS),
        )
        # The checkpoint's Gaussian matrix G (scale 1), shared with the prompt encoder in SAM.
        self.register_buffer("positional_embedding", torch.randn(2, OUT_CHANNELS // 2))

    def dense_positional_encoding(self):
        grid = torch.ones(GRID, GRID)
        y = (grid.cumsum(dim=0) - 0.5) / GRID
        x = (grid.cumsum(dim=1) - 0.5) / GRID
        theta = 2 * math.pi * ((2 * torch.stack([x, y], dim=-1) - 1) @ self.positional_embedding)
        return torch.cat([torch.sin(theta), torch.cos(theta)], dim=-1).permute(2, 0, 1).unsqueeze(0)

    def forward(self, pixel_values):
        x = self.patch_embed(pixel_values).permute(0, 2, 3, 1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        embeddings = self.neck(x.permute(0, 3, 1, 2))
        positional = self.dense_positional_encoding().repeat(pixel_values.shape[0], 1, 1, 1)
        return embeddings, positional


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the .onnx file to write")
    parser.add_argument("--size", choices=sorted(SIZES), default="vit-b")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = VisionEncoder(**SIZES[args.size]).eval()
    tmp = f"{args.out}.tmp-{os.getpid()}"
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.randn(1, 3, IMAGE, IMAGE),),
            tmp,
            opset_version=17,
            input_names=["pixel_values"],
            output_names=["image_embeddings", "image_positional_embeddings"],
            dynamic_axes={
                "pixel_values": {0: "batch_size"},
                "image_embeddings": {0: "batch_size"},
                "image_positional_embeddings": {0: "batch_size"},
            },
            do_constant_folding=True,
        )
    onnx.checker.check_model(tmp)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
