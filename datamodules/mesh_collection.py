"""What the readers of mesh collections share (``shapenet.py``, ``pix3d.py``): a list of
samples, each a mesh file seen in one view, turned into the fields a batch needs.

A :class:`MeshView` names the mesh file, its class, the group it is split by (its model: every
view of a model lands in the same split), the rotation ``[3, 3]`` that turns the mesh into the
view's frame, and the view: an image file (optionally with a mask file and a crop box) or none,
in which case the project's rasterizer (:mod:`visionflow.datamodules.shapes3d_render`) draws it.

Every mesh is read once per ``setup`` (:func:`visionflow.datamodules.mesh_io.read_mesh`),
centred on its bounding box and scaled so that its farthest vertex lies on the unit sphere (so
it fits the voxel cube ``[-1, 1]^3`` in any rotation), then per view rotated and turned into
the fields the datamodule asks for (:func:`view_fields`):

    points, normals  float32 [P, 3]     area-weighted surface samples (seed fixed per mesh)
    images           uint8 [S, S, 3]    the view: cropped to its box (squared), masked, resized
    voxels           bool [R, R, R]     surface cells, plus the inside where ``fill`` and the
                                        mesh is closed (:func:`grid_of_mesh`)
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from visionflow.datamodules.base import holdout_split, mix_seed
from visionflow.datamodules.mesh_io import read_mesh
from visionflow.datamodules.shapes3d_render import render
from visionflow.errors import DataError
from visionflow.ops import open_edge_count, sample_points_from_mesh, voxelize_mesh

#: colour of a rendered object (on black, as masked photographs are)
RENDER_COLOR = (200, 200, 200)
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MeshView:
    """One sample: ``mesh`` seen in one view (see the module docstring). ``box``: the crop
    ``(x0, y0, x1, y1)`` in pixels of ``image``; ``mask``: a file whose pixels >= 128 keep the
    image's pixels (the others go black); an image with an alpha channel is masked by it."""

    mesh: Path
    label: int
    group: str
    rotation: np.ndarray
    image: Path | None = None
    mask: Path | None = None
    box: Box | None = None


def group_seed(seed: int, group: str) -> int:
    """A seed fixed per ``(seed, group)``, independent of the order the groups are read in."""
    return mix_seed(seed, zlib.crc32(group.encode()))


def split_groups(
    groups: dict[str, int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """``{group: split}``: a seeded split of the groups (``{group: label}``), stratified by label
    (:func:`visionflow.datamodules.base.holdout_split`): ``test_fraction`` of them to ``test``,
    ``val_fraction`` of them to ``val``, the rest to ``train``."""
    names = sorted(groups)
    labels = np.array([groups[name] for name in names])
    rest, test = holdout_split(labels, test_fraction, seed, salt=1)
    share = val_fraction / (1 - test_fraction) if test_fraction < 1 else 0.0
    train, val = holdout_split(labels[rest], min(share, 1.0), seed, salt=2)
    split = {names[i]: "test" for i in test}
    split.update({names[i]: "val" for i in rest[val]})
    split.update({names[i]: "train" for i in rest[train]})
    return split


@dataclass
class FieldSettings:
    """What :func:`view_fields` computes: ``fields`` among points, normals, images, voxels."""

    fields: tuple[str, ...]
    num_points: int
    image_size: int
    resolution: int
    fill: bool
    seed: int


class MeshReader:
    """Reads the mesh files normalized (see the module docstring), holding only the last one
    (the views of a model come one after another), and keeps each mesh's surface samples;
    counts the open meshes that ``fill`` could not fill."""

    def __init__(self, settings: FieldSettings):
        self.settings = settings
        self.last: tuple[Path, tuple[np.ndarray, np.ndarray]] | None = None
        self.samples: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        self.closed: dict[Path, bool] = {}

    def mesh(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """``(verts float32 [V, 3], faces int64 [F, 3])`` in the unit ball."""
        if self.last is None or self.last[0] != path:
            verts, faces = read_mesh(path)
            verts = verts - (verts.max(0) + verts.min(0)) / 2
            radius = float(np.linalg.norm(verts, axis=1).max())
            if radius == 0:
                raise DataError(f"{path}: every vertex is at one point")
            self.last = (path, ((verts / radius).astype(np.float32), faces))
        return self.last[1]

    def surface(self, path: Path, group: str) -> tuple[np.ndarray, np.ndarray]:
        """``(points [P, 3], normals [P, 3])`` sampled on the normalized mesh."""
        if path not in self.samples:
            verts, faces = self.mesh(path)
            generator = torch.Generator().manual_seed(group_seed(self.settings.seed, group))
            try:
                points, normals = sample_points_from_mesh(
                    torch.from_numpy(verts),
                    torch.from_numpy(faces),
                    self.settings.num_points,
                    generator,
                )
            except ValueError as error:
                raise DataError(f"{path}: {error}") from None
            self.samples[path] = (points.numpy(), normals.numpy())
        return self.samples[path]

    def grid(self, path: Path, rotation: np.ndarray) -> np.ndarray:
        """bool ``[R, R, R]``: the mesh turned by ``rotation``, voxelized (:func:`grid_of_mesh`)."""
        verts, faces = self.mesh(path)
        fill = self.settings.fill and self.is_closed(path)
        return grid_of_mesh(verts @ rotation.T, faces, self.settings.resolution, fill)

    def is_closed(self, path: Path) -> bool:
        if path not in self.closed:
            verts, faces = self.mesh(path)
            self.closed[path] = (
                open_edge_count(torch.from_numpy(verts), torch.from_numpy(faces)) == 0
            )
        return self.closed[path]

    def warn_open_meshes(self) -> None:
        """:func:`warn_open_meshes` for the meshes voxelized with ``fill``."""
        warn_open_meshes(
            [path for path, closed in self.closed.items() if not closed], len(self.closed)
        )


def folder_of_data(path: Path, hint: str) -> Path:
    """``path`` when it is a folder, else a DataError naming it (``hint``: what it must hold)."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder", hint=hint)
    return path


def warn_open_meshes(opened: list[Path], total: int) -> None:
    """One warning saying how many of the ``total`` meshes voxelized with ``fill`` were open
    (``opened``), and so hold their surface cells only."""
    if opened:
        warnings.warn(
            f"fill: {len(opened)} of {total} meshes are not closed (an edge borders an odd "
            f"number of faces), so their grids hold the surface cells only, e.g. {min(opened)}",
            stacklevel=3,
        )


def grid_of_mesh(verts: np.ndarray, faces: np.ndarray, resolution: int, fill: bool) -> np.ndarray:
    """bool ``[R, R, R]`` over ``[-1, 1]^3``: :func:`visionflow.ops.voxelize_mesh` of
    ``(verts [V, 3], faces [F, 3])``, solid with ``fill`` (meant for closed meshes)."""
    grid = voxelize_mesh(torch.from_numpy(verts), torch.from_numpy(faces), resolution, fill=fill)
    return grid.numpy()


def view_fields(views: list[MeshView], reader: MeshReader) -> dict[str, torch.Tensor]:
    """The fields ``[N, ...]`` that ``reader.settings`` names, for the samples ``views``
    (module doc); ``reader`` keeps each mesh read once across the splits."""
    settings = reader.settings
    columns: dict[str, list[np.ndarray]] = {name: [] for name in settings.fields}
    for view in views:
        for name, value in fields_of_view(view, reader, settings):
            columns[name].append(value)
    fields = {name: torch.from_numpy(np.stack(values)) for name, values in columns.items()}
    fields["labels"] = torch.tensor([view.label for view in views], dtype=torch.int64)
    return fields


def fields_of_view(
    view: MeshView, reader: MeshReader, settings: FieldSettings
) -> Iterable[tuple[str, np.ndarray]]:
    rotation = view.rotation.astype(np.float32)
    if "points" in settings.fields:
        points, normals = reader.surface(view.mesh, view.group)
        yield "points", points @ rotation.T
        if "normals" in settings.fields:
            yield "normals", normals @ rotation.T
    if "voxels" in settings.fields:
        yield "voxels", reader.grid(view.mesh, rotation)
    if "images" in settings.fields:
        if view.image is None:
            verts, faces = reader.mesh(view.mesh)
            yield "images", render(verts @ rotation.T, faces, settings.image_size, RENDER_COLOR).rgb
        else:
            yield "images", load_view(view, settings.image_size)


def load_view(view: MeshView, size: int) -> np.ndarray:
    """uint8 ``[size, size, 3]``: the view's image, masked, cropped to its box made square
    about its centre (outside the image is black), resized."""
    rgb, mask = open_image(view.image)
    if view.mask is not None:
        mask = open_image(view.mask)[0].convert("L")
        if mask.size != rgb.size:
            raise DataError(
                f"{view.mask}: mask of {mask.size[0]}x{mask.size[1]} pixels for an image of "
                f"{rgb.size[0]}x{rgb.size[1]} ({view.image})"
            )
    if mask is not None:
        rgb = Image.composite(
            rgb, Image.new("RGB", rgb.size), mask.point(lambda v: 255 * (v >= 128))
        )
    if view.box is not None:
        rgb = rgb.crop(square_box(view.box))
    return np.asarray(rgb.resize((size, size), Image.BILINEAR))


def open_image(path: Path) -> tuple[Image.Image, Image.Image | None]:
    """``(RGB image, its alpha channel or None)``; a DataError naming a missing or unreadable
    file."""
    try:
        with Image.open(path) as image:
            image.load()
            alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
            return image.convert("RGB"), alpha
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as error:
        raise DataError(f"{path}: unreadable image ({error})") from None


def square_box(box: Box) -> tuple[int, int, int, int]:
    """The square ``(x0, y0, x1, y1)`` with the centre of ``box`` and its longer side."""
    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
