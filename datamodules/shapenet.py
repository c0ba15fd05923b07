"""ShapeNetCore meshes, with their rendered views where given (ShapeNetRendering) or views drawn
by the project's rasterizer where not.

Layout (ShapeNetCore v2 as it unpacks; v1's ``<model>/model.obj`` is read too)::

    <root>/taxonomy.json                          optional: [{"synsetId": "02691156",
                                                  "name": "airplane,aeroplane,plane"}, ...]
    <root>/<synset_id>/<model_id>/models/model_normalized.obj

    <renderings>/<synset_id>/<model_id>/rendering/    optional (3D-R2N2's ShapeNetRendering)
        renderings.txt             the view files, one a line (00.png ...); else every *.png
        rendering_metadata.txt     one line per view: azimuth elevation in-plane distance fov
                                   (degrees; only azimuth and elevation are used)
        00.png ...                 RGBA renders, transparent background

    split_file (optional CSV, ShapeNet's all.csv):  id,synsetId,subSynsetId,modelId,split
                                   with split train / val / test; synset ids may have lost
                                   their leading 0 (2691156); models not listed are left out

Classes are the synset folders (``synsets`` picks some), named by the first name in
``taxonomy.json`` when present, else by their ids. Without ``split_file`` the models are split
by seed, stratified by class (``val_fraction``, ``test_fraction``); every view of a model lands
in its model's split. ``models_per_class`` keeps the first models of each class (sorted ids).

Views: with ``renderings``, the first ``views_per_model`` views of each model; the 3D targets
are turned into the view's frame (x right, y up, z toward the camera) for a camera at
``(cos el cos az, sin el, cos el sin az)`` looking at the origin with y up (Pixel2Mesh's reading
of the metadata; :func:`renderings_rotation`); the renderer's perspective is not modelled.
Without ``renderings``, ``views_per_model`` views per
model are rendered here (orthographic silhouette + shading, grey on black; seeded azimuth in
[0, 2 pi), elevation in [0.3, 0.7] rad). Meshes are normalized into the unit ball
(:mod:`~visionflow.datamodules.mesh_collection`). ``shapenet_points`` takes ``voxel_size``
(unit-ball units): each cloud of ``num_points`` samples is replaced by the means of its occupied
voxels (an even density, fewer points), padded back to ``num_points`` by repeating them, the
count in the batch's ``lengths``.

    shapenet_points        PointCloudBatch           pointcloud_classification (no views)
    shapenet_views         ImageToPointCloudBatch    image_to_pointcloud, image_to_mesh
    shapenet_view_voxels   ImageToVoxelBatch         image_to_voxel
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionflow.batches import ImageToPointCloudBatch, ImageToVoxelBatch, PointCloudBatch
from visionflow.datamodules.mesh_collection import (
    MeshView,
    folder_of_data,
    group_seed,
    split_groups,
)
from visionflow.datamodules.mesh_collection_data import (
    MeshCollectionDataModule,
    PointsOutput,
    ViewPointsOutput,
    ViewVoxelsOutput,
)
from visionflow.datamodules.pointcloud_data import checked_voxel_size, downsample_points_field
from visionflow.datamodules.shapes3d import ELEVATION
from visionflow.datamodules.shapes3d_render import rotation_matrix
from visionflow.errors import DataError, SpecError
from visionflow.registry import DATAMODULES

MESH_FILES = ("models/model_normalized.obj", "model.obj")  # ShapeNetCore v2, v1
SPLIT_COLUMNS = ("synsetId", "modelId", "split")


class ShapeNetDataModule(MeshCollectionDataModule):
    """ShapeNetCore read as the module docstring says; an output class builds the batches."""

    def __init__(
        self,
        root: str = "data/ShapeNetCore.v2",
        renderings: str | None = None,
        split_file: str | None = None,
        synsets: list[str] | None = None,
        models_per_class: int | None = None,
        views_per_model: int = 1,
        **settings: Any,
    ):
        super().__init__(**settings)
        if views_per_model < 1:
            raise SpecError(f"views_per_model: must be >= 1, got {views_per_model}")
        if models_per_class is not None and models_per_class < 1:
            raise SpecError(f"models_per_class: must be >= 1 or null, got {models_per_class}")
        self.root = Path(root)
        self.renderings = Path(renderings) if renderings is not None else None
        self.split_file = Path(split_file) if split_file is not None else None
        self.synsets, self.models_per_class = synsets, models_per_class
        self.views_per_model = views_per_model

    @property
    def source(self) -> str:
        return str(self.root)

    @property
    def synset_ids(self) -> tuple[str, ...]:
        hint = "root must hold one folder per synset id (ShapeNetCore's layout)"
        folders = folder_of_data(self.root, hint).iterdir()
        found = sorted(p.name for p in folders if p.is_dir() and p.name.isdigit())
        if self.synsets is not None:
            missing = sorted(set(self.synsets) - set(found))
            if missing:
                raise DataError(f"{self.root}: no synset folder {missing[0]} (synsets)")
            found = sorted(self.synsets)
        if not found:
            raise DataError(f"{self.root}: no synset folder (named by its numeric id)")
        return tuple(found)

    @property
    def class_names(self) -> tuple[str, ...]:
        names = read_taxonomy(self.root / "taxonomy.json")
        return tuple(names.get(synset, synset) for synset in self.synset_ids)

    def samples(self) -> tuple[list[MeshView], dict[str, str]]:
        views = []
        labels: dict[str, int] = {}
        for label, synset in enumerate(self.synset_ids):
            models = sorted(p.name for p in (self.root / synset).iterdir() if p.is_dir())
            for model in models[: self.models_per_class]:
                group = f"{synset}/{model}"
                labels[group] = label
                views += self.model_views(group, label)
        if self.split_file is None:
            split_of = split_groups(labels, self.val_fraction, self.test_fraction, self.data_seed)
        else:
            split_of = read_split_file(self.split_file)
        return views, split_of

    def model_views(self, group: str, label: int) -> list[MeshView]:
        """The samples of one model: its object frame alone when the batch needs no view."""
        mesh = mesh_file(self.root / group)
        if not self.uses_views:
            return [MeshView(mesh, label, group, np.eye(3))]
        if self.renderings is None:
            rng = np.random.default_rng(group_seed(self.data_seed, group))
            angles = [
                (rng.uniform(0, 2 * math.pi), rng.uniform(*ELEVATION))
                for _ in range(self.views_per_model)
            ]
            return [MeshView(mesh, label, group, rotation_matrix(*a)) for a in angles]
        return [
            MeshView(mesh, label, group, renderings_rotation(az, el), image)
            for image, (az, el) in read_renderings(self.renderings / group / "rendering")[
                : self.views_per_model
            ]
        ]


def renderings_rotation(azimuth: float, elevation: float) -> np.ndarray:
    """``[3, 3]``: ShapeNet's frame -> the frame of a camera at azimuth and elevation (degrees)
    as the module docstring says: :func:`rotation_matrix` turns the camera's direction to +z
    when its azimuth is ``az - 90`` degrees."""
    return rotation_matrix(math.radians(azimuth - 90), math.radians(elevation))


def mesh_file(folder: Path) -> Path:
    """The model's OBJ file (v2, else v1 layout); a DataError naming the expected file."""
    for name in MESH_FILES:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder / MESH_FILES[0]}: no such file (nor {MESH_FILES[1]})")


def read_taxonomy(path: Path) -> dict[str, str]:
    """``{synset id: first name}`` of ShapeNet's ``taxonomy.json``; empty when absent."""
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        return {e["synsetId"]: e["name"].split(",")[0].strip() for e in entries}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(
            f"{path}: not a ShapeNet taxonomy ({error!r})",
            hint='expected a list of {"synsetId": ..., "name": ...}',
        ) from None


def read_split_file(path: Path) -> dict[str, str]:
    """``{"<synset>/<model>": split}`` of a ShapeNet split CSV (see the module docstring)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: unreadable split file ({error})") from None
    missing = [column for column in SPLIT_COLUMNS if not rows or column not in rows[0]]
    if missing:
        raise DataError(
            f"{path}: no rows, or no column {missing[0]!r}",
            hint="the header must name synsetId, modelId and split (ShapeNet's all.csv)",
        )
    split_of = {}
    for line, row in enumerate(rows, start=2):
        if row["split"] not in ("train", "val", "test"):
            raise DataError(f"{path}:{line}: split {row['split']!r} is not train, val or test")
        split_of[f"{row['synsetId'].zfill(8)}/{row['modelId']}"] = row["split"]
    return split_of


def read_renderings(folder: Path) -> list[tuple[Path, tuple[float, float]]]:
    """``[(image file, (azimuth, elevation) in degrees)]`` of a ShapeNetRendering folder."""
    metadata = folder / "rendering_metadata.txt"
    if not metadata.is_file():
        raise DataError(
            f"{metadata}: no such file",
            hint="pick synsets that the renderings cover, or leave renderings unset to render views",
        )
    listing = folder / "renderings.txt"
    if listing.is_file():
        names = listing.read_text().split()
    else:
        names = sorted(p.name for p in folder.glob("*.png"))
    try:
        angles = [
            tuple(float(x) for x in line.split()[:2])
            for line in metadata.read_text().splitlines()
            if line.strip()
        ]
    except ValueError:
        raise DataError(
            f"{metadata}: a line does not start with two numbers (azimuth elevation)"
        ) from None
    if len(angles) != len(names) or any(len(a) != 2 for a in angles):
        raise DataError(
            f"{metadata}: {len(angles)} view lines for {len(names)} view images in {folder}"
        )
    return [(folder / name, angle) for name, angle in zip(names, angles)]


@DATAMODULES.register("shapenet_points", batch=PointCloudBatch)
class ShapeNetPointsDataModule(PointsOutput, ShapeNetDataModule):
    """ShapeNet models as surface samples ``[B, P, 3]`` labelled by synset (no views);
    ``voxel_size``: downsampled as the module docstring says."""

    def __init__(self, voxel_size: float | None = None, **settings: Any):
        super().__init__(**settings)
        self.voxel_size = checked_voxel_size(voxel_size)

    def hold_split(self, split: str, fields: dict[str, torch.Tensor], rank: int) -> None:
        super().hold_split(split, downsample_points_field(fields, self.voxel_size), rank)


@DATAMODULES.register("shapenet_views", batch=ImageToPointCloudBatch)
class ShapeNetViewsDataModule(ViewPointsOutput, ShapeNetDataModule):
    """ShapeNet views ``[B, 3, S, S]`` with the surface samples and normals ``[B, P, 3]`` they
    show (in the view's frame)."""


@DATAMODULES.register("shapenet_view_voxels", batch=ImageToVoxelBatch)
class ShapeNetViewVoxelsDataModule(ViewVoxelsOutput, ShapeNetDataModule):
    """ShapeNet views ``[B, 3, S, S]`` with the grids ``[B, R, R, R]`` they show (view frame)."""
