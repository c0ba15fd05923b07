"""Pixel2Mesh-style mesh deformation (Wang et al. 2018): an ico-sphere template is moved, in
``stages`` steps, by graph convolutions over its edges on per-vertex features pooled from a CNN's
feature maps at the vertices' projections (:func:`visionflow.ops.vert_align`)."""

from __future__ import annotations

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.ops import ico_sphere, vert_align
from visionflow.ops.mesh_edges import unique_edges
from visionflow.ops.mesh_normal_consistency import adjacent_pairs
from visionflow.tasks.nets.families import IMAGE_TO_MESH_NETS
from visionflow.tasks.nets.pointnet import conv_block


class GraphConv(nn.Module):
    """``[B, V, I] -> [B, V, O]``: ``W0 x_i + mean over neighbours j of W1 x_j`` over the
    undirected ``edges [E, 2]`` (PyTorch3D's ``GraphConv`` sums; the mean keeps the scale of
    the features independent of the vertex degree, which kept training stable here)."""

    def __init__(self, width_in: int, width_out: int):
        super().__init__()
        self.own = nn.Linear(width_in, width_out)
        self.neighbours = nn.Linear(width_in, width_out, bias=False)

    def forward(self, features: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        messages = self.neighbours(features)  # [B, V, O]
        both = torch.cat([edges, edges.flip(1)])  # (i, j) and (j, i)
        gathered = torch.zeros_like(messages).index_add_(1, both[:, 0], messages[:, both[:, 1]])
        degree = torch.bincount(both[:, 0], minlength=features.shape[1]).clamp(min=1)
        return self.own(features) + gathered / degree[:, None].to(messages.dtype)


class DeformStage(nn.Module):
    """Vertex features (pooled image features, positions, previous hidden state) -> ``blocks``
    residual graph convolutions -> hidden ``[B, V, H]`` and an offset ``[B, V, 3]`` (zero at
    initialization, so the net starts from the template)."""

    def __init__(self, width_in: int, hidden: int, blocks: int):
        super().__init__()
        self.entry = GraphConv(width_in, hidden)
        self.blocks = nn.ModuleList(GraphConv(hidden, hidden) for _ in range(blocks))
        self.offset = GraphConv(hidden, 3)
        for layer in (self.offset.own, self.offset.neighbours):  # start at the template
            nn.init.zeros_(layer.weight)
        nn.init.zeros_(self.offset.own.bias)

    def forward(
        self, features: torch.Tensor, edges: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.relu(self.entry(features, edges))
        for block in self.blocks:
            hidden = hidden + torch.relu(block(hidden, edges))
        return hidden, self.offset(hidden, edges)


#: the buffers holding ``adjacent_pairs(faces)``: the mesh losses' topology, found once
FACE_PAIR_BUFFERS = ("pair_edges", "pair_first", "pair_second")


class ImageToMesh(nn.Module):
    """``images [B, C, H, W] -> [verts [B, V, 3] after each stage]``, faces ``self.faces [F, 3]``
    (the ico-sphere's, scaled by ``radius``), their ``self.edges [E, 2]`` and
    ``adjacent_pairs`` in the :data:`FACE_PAIR_BUFFERS`."""

    def __init__(
        self,
        in_channels: int,
        level: int,
        width: int,
        depth: int,
        hidden: int,
        blocks: int,
        stages: int,
        radius: float,
    ):
        super().__init__()
        verts, faces = ico_sphere(level)
        self.register_buffer("template", verts * radius, persistent=False)
        self.register_buffer("faces", faces, persistent=False)
        self.register_buffer("edges", unique_edges(faces), persistent=False)
        for name, value in zip(FACE_PAIR_BUFFERS, adjacent_pairs(faces)):
            self.register_buffer(name, value, persistent=False)
        self.levels = nn.ModuleList()
        channels, pooled = in_channels, 0
        for level_index in range(depth):
            out = width * 2**level_index
            self.levels.append(conv_block(channels, out))
            channels, pooled = out, pooled + out
        self.stages = nn.ModuleList(
            DeformStage(pooled + 3 + (hidden if index else 0), hidden, blocks)
            for index in range(stages)
        )

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps, features = [], images
        for level in self.levels:
            features = level(features)
            maps.append(features)
        verts = self.template.expand(len(images), -1, -1)
        hidden, meshes = None, []
        for stage in self.stages:
            pooled = torch.cat([vert_align(m, verts) for m in maps] + [verts], dim=-1)
            if hidden is not None:
                pooled = torch.cat([pooled, hidden], dim=-1)
            hidden, offset = stage(pooled, self.edges)
            verts = verts + offset
            meshes.append(verts)
        return meshes


@IMAGE_TO_MESH_NETS.register("pixel2mesh")
def pixel2mesh(
    *,
    in_channels: int,
    level: int = 2,
    width: int = 16,
    depth: int = 3,
    hidden: int = 64,
    blocks: int = 2,
    stages: int = 3,
    radius: float = 0.5,
) -> nn.Module:
    """An ico-sphere of ``level`` subdivisions (radius ``radius``) deformed in ``stages``
    stages of ``blocks`` residual graph convolutions of ``hidden`` features, on image features
    of ``depth`` stride-2 conv blocks from ``width`` channels."""
    if min(width, depth, hidden, stages) < 1 or blocks < 0 or not 0 <= level <= 5 or radius <= 0:
        raise SpecError(
            "net_args: need width, depth, hidden, stages >= 1, blocks >= 0, level in 0..5 and "
            f"radius > 0, got {width}, {depth}, {hidden}, {stages}, {blocks}, {level}, {radius}"
        )
    return ImageToMesh(in_channels, level, width, depth, hidden, blocks, stages, radius)
