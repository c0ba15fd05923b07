"""A small Vision Transformer (Dosovitskiy et al., 2021), written out so it reads top to bottom.

Defaults are ViT-Tiny (dim 192, depth 12, 3 heads) with 4x4 patches, which suits 32 px images
(64 tokens). Pre-norm encoder blocks from ``nn.TransformerEncoderLayer``; a class token; learned
position embeddings, so the image size is fixed at build time.
"""

from __future__ import annotations

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.classic import image_hw
from visionflow.tasks.nets.families import CLASSIFICATION_NETS
from visionflow.tasks.nets.transfer import mark_head


class VisionTransformer(nn.Module):
    """``images [B, C, H, W] -> logits [B, K]`` through ``N = (H/p)(W/p)`` patch tokens."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
    ):
        super().__init__()
        num_patches = (image_size[0] // patch_size) * (image_size[1] // patch_size)
        self.patch_embedding = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position_embedding = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        block = nn.TransformerEncoderLayer(
            dim,
            heads,
            int(dim * mlp_ratio),
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        nn.init.trunc_normal_(self.class_token, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(images).flatten(2).transpose(1, 2)  # [B, N, D]
        class_token = self.class_token.expand(patches.shape[0], -1, -1)  # [B, 1, D]
        tokens = torch.cat([class_token, patches], dim=1) + self.position_embedding  # [B, N+1, D]
        features = self.norm(self.encoder(tokens)[:, 0])  # [B, D]
        return self.head(features)  # [B, K]


@CLASSIFICATION_NETS.register("vit_tiny")
def vit_tiny(
    *,
    num_classes: int,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    dropout: float = 0.0,
    patch_size: int = 4,
    dim: int = 192,
    depth: int = 12,
    heads: int = 3,
    mlp_ratio: float = 4.0,
) -> nn.Module:
    """Small Vision Transformer (ViT-Tiny sizes, 4x4 patches for 32 px images)."""
    height, width = image_hw(image_size, "vit_tiny")
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise SpecError(
            f"net_args.patch_size: {patch_size} must divide the image size {height}x{width}"
        )
    if min(dim, depth, heads) < 1 or dim % heads:
        raise SpecError(
            f"net_args.heads: dim {dim} must be a positive multiple of "
            f"heads {heads} (and depth >= 1)"
        )
    model = VisionTransformer(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=(height, width),
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_ratio=mlp_ratio,
        dropout=dropout,
    )
    return mark_head(model, "head")
