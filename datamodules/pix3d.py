"""Pix3D: photographs of furniture, each with its object's mask and mesh, aligned.

Layout (as the Pix3D archive unpacks)::

    <root>/pix3d.json          a list of entries, one per image:
        {"img": "img/bed/0001.png", "mask": "mask/bed/0001.png",
         "model": "model/bed/IKEA_MALM_2/model.obj", "category": "bed",
         "bbox": [x0, y0, x1, y1],                        pixels of the object in img
         "rot_mat": [[...], [...], [...]],                model -> camera rotation
         "trans_mat": [tx, ty, tz], "focal_length": 35.0, "img_size": [w, h], ...}
    <root>/img/<category>/*.{png,jpg}
    <root>/mask/<category>/*.png
    <root>/model/<category>/<model>/model.obj

Read: ``img``, ``mask``, ``model``, ``category``, ``bbox`` and ``rot_mat`` (required: an entry
without one raises a DataError naming the entry and the key); the other keys are ignored (the
crop centres the object, so ``trans_mat`` and ``focal_length`` are not needed). Each sample is
the image masked (background black), cropped to its ``bbox`` made square, resized to
``image_size``, with its mesh turned by ``rot_mat`` into Pix3D's camera frame, then by a half
turn about y into the project's view frame (x right, y up as in the image, z toward the
viewer; :data:`PIX3D_TO_VIEW`), and normalized into the unit ball
(:mod:`~visionflow.datamodules.mesh_collection`); the perspective is not modelled. Classes are the
categories (``categories`` picks some). Pix3D ships no split: the models are split by seed,
stratified by category (``val_fraction``, ``test_fraction``), so a model's photos never straddle
two splits.

    pix3d_views         ImageToPointCloudBatch    image_to_pointcloud, image_to_mesh
    pix3d_view_voxels   ImageToVoxelBatch         image_to_voxel
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.batches import ImageToPointCloudBatch, ImageToVoxelBatch
from visionflow.datamodules.mesh_collection import MeshView, split_groups
from visionflow.datamodules.mesh_collection_data import (
    MeshCollectionDataModule,
    ViewPointsOutput,
    ViewVoxelsOutput,
)
from visionflow.errors import DataError
from visionflow.registry import DATAMODULES

REQUIRED_KEYS = ("img", "mask", "model", "category", "bbox", "rot_mat")
#: Pix3D's camera frame (x to the image's left, y up, z away from the camera: Mesh R-CNN
#: projects ``col = w - 1 - (f x / z + px)``, ``row = h - 1 - (f y / z + py)``) -> the view
#: frame of the project (x right, y up, z toward the viewer): a half turn about y
PIX3D_TO_VIEW = np.diag([-1.0, 1.0, -1.0])


class Pix3DDataModule(MeshCollectionDataModule):
    """Pix3D read as the module docstring says; an output class builds the batches."""

    def __init__(
        self, root: str = "data/pix3d", categories: list[str] | None = None, **settings: Any
    ):
        super().__init__(**settings)
        self.root, self.categories = Path(root), categories
        self._entries: list[dict[str, Any]] | None = None

    @property
    def source(self) -> str:
        return str(self.root / "pix3d.json")

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The checked entries of ``pix3d.json`` of the chosen categories (read once)."""
        if self._entries is None:
            entries = [
                checked_entry(entry, index, self.source)
                for index, entry in enumerate(read_annotations(Path(self.source)))
            ]
            if self.categories is not None:
                entries = [e for e in entries if e["category"] in self.categories]
            if not entries:
                raise DataError(f"{self.source}: no entry of the categories {self.categories}")
            self._entries = entries
        return self._entries

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted({entry["category"] for entry in self.entries}))

    def samples(self) -> tuple[list[MeshView], dict[str, str]]:
        label_of = {name: label for label, name in enumerate(self.class_names)}
        views = [
            MeshView(
                mesh=self.root / entry["model"],
                label=label_of[entry["category"]],
                group=entry["model"],
                rotation=PIX3D_TO_VIEW @ np.asarray(entry["rot_mat"], dtype=np.float64),
                image=self.root / entry["img"],
                mask=self.root / entry["mask"],
                box=tuple(entry["bbox"]),
            )
            for entry in self.entries
        ]
        groups = {view.group: view.label for view in views}
        return views, split_groups(groups, self.val_fraction, self.test_fraction, self.data_seed)


def read_annotations(path: Path) -> list:
    """The entries of ``pix3d.json``; a DataError naming the file when it is missing or not a
    JSON list."""
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no such file", hint="root must hold Pix3D's pix3d.json") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: unreadable JSON ({error})") from None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a list of entries, got {type(entries).__name__}")
    return entries


def checked_entry(entry: Any, index: int, source: str) -> dict[str, Any]:
    """``entry`` when it has the keys and values this reader needs; else a DataError naming
    the entry (its index and image) and the key."""
    name = f"{source}: entry {index}"
    if not isinstance(entry, dict):
        raise DataError(f"{name}: expected an object, got {type(entry).__name__}")
    name += f" ({entry.get('img', 'no img')})"
    missing = [key for key in REQUIRED_KEYS if key not in entry]
    if missing:
        raise DataError(
            f"{name}: missing key {missing[0]!r}", hint="keys read: " + ", ".join(REQUIRED_KEYS)
        )
    try:
        box = np.asarray(entry["bbox"], dtype=np.float64)
        rotation = np.asarray(entry["rot_mat"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: bbox and rot_mat must be numbers") from None
    if box.shape != (4,) or not np.isfinite(box).all() or not (box[2:] > box[:2]).all():
        raise DataError(
            f"{name}: bbox {entry['bbox']} is not [x0, y0, x1, y1] with x0 < x1, y0 < y1"
        )
    if rotation.shape != (3, 3) or not np.isfinite(rotation).all():
        raise DataError(f"{name}: rot_mat {entry['rot_mat']} is not a finite 3 x 3 matrix")
    return entry


@DATAMODULES.register("pix3d_views", batch=ImageToPointCloudBatch)
class Pix3DViewsDataModule(ViewPointsOutput, Pix3DDataModule):
    """Pix3D photographs ``[B, 3, S, S]`` (masked, cropped) with the surface samples and normals
    ``[B, P, 3]`` of the object they show (camera orientation)."""


@DATAMODULES.register("pix3d_view_voxels", batch=ImageToVoxelBatch)
class Pix3DViewVoxelsDataModule(ViewVoxelsOutput, Pix3DDataModule):
    """Pix3D photographs ``[B, 3, S, S]`` with the grids ``[B, R, R, R]`` of their objects."""
