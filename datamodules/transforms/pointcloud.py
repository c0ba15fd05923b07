"""Point-cloud augmentation: batched torch ops on ``points [B, N, 3]``, composable like the image
presets and registered in ``TRANSFORMS`` (family ``pointcloud``).

A datamodule's ``transforms`` argument picks one pipeline per phase, a preset name or a list::

    transforms:
      train: [{name: RandomRotation, axis: y}, {name: RandomScale, low: 0.8, high: 1.25},
              {name: Jitter, sigma: 0.01}, pointcloud_normalize]
      eval: pointcloud_normalize

Each op draws its parameters per cloud from the generator it is given (seeded per epoch by the
datamodule) and transforms the coordinates; further channels (normals, features) ride along,
rotated with the points where they are normals (``RandomRotation`` rotates channels 3:6 too).
Per-point labels ``[B, N]`` follow their points through ops that move points between slots
(``RandomDropout``): :meth:`PointCloudCompose.with_point_labels`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from visionflow.errors import SpecError
from visionflow.registry import TRANSFORMS, did_you_mean

FAMILY = "pointcloud"
AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class RandomRotation:
    """Rotate each cloud by a uniform angle in ``[-max_degrees, max_degrees]`` about ``axis``."""

    axis: str = "y"
    max_degrees: float = 180.0

    def __post_init__(self):
        if self.axis not in AXES:
            raise SpecError(f"axis: must be one of x, y, z, got {self.axis!r}")

    def __call__(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        angles = torch.rand(points.shape[0], generator=generator) * 2 - 1
        angles = angles.to(points.device) * math.radians(self.max_degrees)
        cos, sin = angles.cos(), angles.sin()
        first, second = [a for a in range(3) if a != AXES[self.axis]]
        rotation = torch.eye(3, device=points.device).repeat(points.shape[0], 1, 1)  # [B, 3, 3]
        rotation[:, first, first], rotation[:, first, second] = cos, -sin
        rotation[:, second, first], rotation[:, second, second] = sin, cos
        rotated = points.clone()
        for start in range(0, min(points.shape[2], 6), 3):
            rotated[..., start : start + 3] = points[..., start : start + 3] @ rotation.transpose(
                1, 2
            )
        return rotated


@dataclass(frozen=True)
class RandomScale:
    """Scale each cloud's coordinates by a uniform factor in ``[low, high]``."""

    low: float = 0.8
    high: float = 1.25

    def __post_init__(self):
        if not 0 < self.low <= self.high:
            raise SpecError(f"low, high: need 0 < low <= high, got {self.low}, {self.high}")

    def __call__(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        factors = torch.empty(points.shape[0]).uniform_(self.low, self.high, generator=generator)
        scaled = points.clone()
        scaled[..., :3] = points[..., :3] * factors.to(points.device)[:, None, None]
        return scaled


@dataclass(frozen=True)
class Jitter:
    """Add Gaussian noise of ``sigma`` (clipped to ``clip``) to every coordinate."""

    sigma: float = 0.01
    clip: float = 0.05

    def __call__(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(*points.shape[:2], 3, generator=generator) * self.sigma
        jittered = points.clone()
        jittered[..., :3] += noise.clamp(-self.clip, self.clip).to(points.device)
        return jittered


@dataclass(frozen=True)
class RandomDropout:
    """Replace a random fraction (up to ``max_ratio``) of each cloud's points with its first
    point, as PointNet++ trains: the count stays N."""

    max_ratio: float = 0.875

    def __call__(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gather_points(points, self.source_index(points, generator))

    def source_index(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[B, N]``: the point each slot of ``points [B, N, C]`` takes (0 where dropped)."""
        batch, count = points.shape[:2]
        ratios = torch.rand(batch, 1, generator=generator) * self.max_ratio
        dropped = (torch.rand(batch, count, generator=generator) < ratios).to(points.device)
        kept = torch.arange(count, device=points.device).expand(batch, count)
        return torch.where(dropped, 0, kept)


def gather_points(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values [B, N, ...]`` at ``index [B, N]`` along the points."""
    expanded = index.view(*index.shape, *[1] * (values.ndim - 2)).expand_as(values)
    return values.gather(1, expanded)


@dataclass(frozen=True)
class Normalize:
    """Centre each cloud on its centroid and scale it into the unit ball."""

    def __call__(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        normalized = points.clone()
        xyz = points[..., :3] - points[..., :3].mean(1, keepdim=True)
        radius = xyz.norm(dim=2).amax(1).clamp_min(1e-12)
        normalized[..., :3] = xyz / radius[:, None, None]
        return normalized


OPS = {op.__name__: op for op in (RandomRotation, RandomScale, Jitter, RandomDropout, Normalize)}


@dataclass(frozen=True)
class PointCloudCompose:
    """Ops applied in order to ``points [B, N, C]``."""

    ops: tuple[Any, ...] = ()

    def __call__(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for op in self.ops:
            points = op(points, generator)
        return points

    def with_point_labels(
        self, points: torch.Tensor, point_labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ops on ``points [B, N, C]``, with ``point_labels [B, N]`` following their
        points wherever an op moves points between slots (``source_index``: dropout)."""
        for op in self.ops:
            if hasattr(op, "source_index"):
                index = op.source_index(points, generator)
                points, point_labels = gather_points(points, index), point_labels.gather(1, index)
            else:
                points = op(points, generator)
        return points, point_labels

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": type(op).__name__, **vars(op)} for op in self.ops]


@TRANSFORMS.register("pointcloud_normalize", family=FAMILY)
def pointcloud_normalize(*, context: Any = None) -> PointCloudCompose:
    """Centre and scale each cloud into the unit ball."""
    return PointCloudCompose((Normalize(),))


@TRANSFORMS.register("pointcloud_none", family=FAMILY)
def pointcloud_none(*, context: Any = None) -> PointCloudCompose:
    """No change."""
    return PointCloudCompose()


@TRANSFORMS.register("pointcloud_train", family=FAMILY)
def pointcloud_train(*, context: Any = None) -> PointCloudCompose:
    """PointNet's training augmentation: rotation about the up axis (y), scaling, jitter."""
    return PointCloudCompose((RandomRotation("y"), RandomScale(0.8, 1.25), Jitter(0.01, 0.05)))


def build_pointcloud_transform(spec: str | Sequence[Any], where: str) -> PointCloudCompose:
    """The pipeline ``spec`` names (a preset, or a list of presets and ``{name: Op, ...}``)."""
    entries = [spec] if isinstance(spec, str) else spec
    if not isinstance(entries, Sequence):
        raise SpecError(f"{where}: expected a preset name or a list, got {type(spec).__name__}")
    ops: list[Any] = []
    for index, entry in enumerate(entries):
        place = where if isinstance(spec, str) else f"{where}[{index}]"
        if isinstance(entry, str):
            preset = TRANSFORMS.get(entry)
            if preset.tags.get("family") != FAMILY:
                presets = [e.name for e in TRANSFORMS.entries() if e.tags.get("family") == FAMILY]
                raise SpecError(
                    f"{place}: {entry!r} is not a point-cloud preset{did_you_mean(entry, presets)}"
                )
            ops += preset.builder().ops
        else:
            ops.append(_build_op(entry, place))
    return PointCloudCompose(tuple(ops))


def _build_op(entry: Any, where: str) -> Any:
    name = entry.get("name") if isinstance(entry, dict) else None
    if name not in OPS:
        raise SpecError(
            f"{where}: unknown point-cloud op {name!r}{did_you_mean(str(name), list(OPS))}",
            hint="entries are preset names or {name: <op>, ...} with op one of " + ", ".join(OPS),
        )
    arguments = {k: v for k, v in entry.items() if k != "name"}
    allowed = list(inspect.signature(OPS[name]).parameters)
    for key in arguments:
        if key not in allowed:
            raise SpecError(
                f"{where} ({name}): unknown argument {key!r}{did_you_mean(key, allowed)}"
            )
    try:
        return OPS[name](**arguments)
    except SpecError as error:
        raise SpecError(f"{where} ({name}): {error.message}") from None
