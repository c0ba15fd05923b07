"""Shapes3D parts: the Shapes3D primitives' surface samples, labelled point by point by part.

    make_shapes3d_parts_dataset("data/shapes3d_parts/train", samples=400, seed=0)

writes ``samples.npz``: ``points`` float32 ``[S, P, 3]`` (area-weighted surface samples of one
primitive of :mod:`visionflow.datamodules.shapes3d_render`, turned to a random pose as Shapes3D
turns them), ``point_labels`` int64 ``[S, P]`` (the part each point lies on, an index into
:data:`PART_NAMES`), ``labels`` int64 ``[S]`` (the primitive); ``info.json`` (how it was made);
and, with ``write_files``, ``clouds/00000k.ply``, each cloud coloured by part. The same seed
writes the same files.

Parts, decided on the primitive before it is turned: a sphere is one part; a box's faces are
ranked by area (small, middle, large pair); a cylinder has caps and a side, a cone a base and a
side (a face is a cap where its normal is within 26 degrees of the axis); a torus an inner and
an outer half (nearer to or farther from the axis than its centre ring). Every rule depends on
the shape only, never on the pose, so a net can learn it from the coordinates.

``shapes3d_parts`` serves them as :class:`PointCloudSegmentationBatch` for
``pointcloud_segmentation``; the point-cloud presets augment them, with the labels following
their points through dropout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionflow.batches import IGNORE_INDEX, PointCloudSegmentationBatch
from visionflow.datamodules.generated_splits import SPLITS, split_seed
from visionflow.datamodules.shapes3d import (
    ELEVATION,
    Shapes3DDataModule,
    remove_old_split_files,
    seeded_split,
    write_samples,
)
from visionflow.datamodules.shapes3d_render import PRIMITIVES, primitive_mesh, rotation_matrix
from visionflow.errors import DataError
from visionflow.mesh_files import write_point_cloud
from visionflow.ops import sample_points_from_mesh
from visionflow.registry import DATAMODULES

GENERATOR = "visionflow.shapes3d_parts/1"
#: a split's per-sample files (``write_files``): folder -> suffix of ``000001<suffix>`` ...
CLOUD_FILES = {"clouds": ".ply"}
PART_NAMES = (
    "sphere",
    "box_small_faces",
    "box_middle_faces",
    "box_large_faces",
    "cylinder_caps",
    "cylinder_side",
    "cone_base",
    "cone_side",
    "torus_inner",
    "torus_outer",
)
#: the first part label of each primitive
FIRST_PART = {"sphere": 0, "box": 1, "cylinder": 4, "cone": 6, "torus": 8}
#: |cos| of the angle between a face's normal and a lathe's axis above which the face is a cap
CAP_COSINE = 0.9


def part_labels(
    primitive: str, verts: np.ndarray, points: np.ndarray, normals: np.ndarray
) -> np.ndarray:
    """The part ``[P]`` int64 of each of ``points [P, 3]`` (with its face's ``normals [P, 3]``)
    on ``primitive`` as :func:`primitive_mesh` made it (``verts [V, 3]``, lathes about y)."""
    first = FIRST_PART[primitive]
    if primitive == "sphere":
        return np.full(len(points), first, dtype=np.int64)
    if primitive == "box":
        sides = verts.max(0) - verts.min(0)  # [3]
        face_areas = sides.prod() / sides  # of the faces across each axis
        rank = np.argsort(np.argsort(face_areas))  # 0 = smallest
        return first + rank[np.abs(normals).argmax(1)]
    if primitive == "torus":
        radial = np.hypot(points[:, 0], points[:, 2])
        vert_radial = np.hypot(verts[:, 0], verts[:, 2])
        ring = (vert_radial.max() + vert_radial.min()) / 2
        return first + (radial > ring).astype(np.int64)
    return first + (np.abs(normals[:, 1]) <= CAP_COSINE).astype(np.int64)  # cylinder, cone


def make_shapes3d_parts_dataset(
    out_dir: str | Path,
    samples: int,
    seed: int = 0,
    num_points: int = 1024,
    write_files: bool = True,
) -> Path:
    """Write one split (see the module docstring); return the path of ``samples.npz``. The
    files of a split written there before go first (its clouds among them)."""
    out_dir = Path(out_dir)
    rng, generator, labels = seeded_split(samples, num_points, seed)
    remove_old_split_files(out_dir, CLOUD_FILES)
    clouds, parts = [], []
    for label in labels.tolist():
        verts, faces = primitive_mesh(PRIMITIVES[label], rng)
        points, normals = (
            t.numpy()
            for t in sample_points_from_mesh(
                torch.from_numpy(verts), torch.from_numpy(faces), num_points, generator
            )
        )
        parts.append(part_labels(PRIMITIVES[label], verts, points, normals))
        turn = rotation_matrix(rng.uniform(0, 2 * np.pi), rng.uniform(*ELEVATION))
        clouds.append(points @ turn.T)
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_files:
        from matplotlib import colormaps

        for index, (cloud, part) in enumerate(zip(clouds, parts)):
            colors = colormaps["tab10"](part % 10)[:, :3]
            write_point_cloud(out_dir / "clouds" / f"{index + 1:06d}.ply", cloud, colors)
    arrays = {
        "points": np.stack(clouds).astype(np.float32),
        "point_labels": np.stack(parts),
        "labels": labels.astype(np.int64),
    }
    return write_samples(out_dir, arrays, generator_info(samples, seed, num_points))


def generator_info(samples: int, seed: int, num_points: int) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "samples": samples,
        "seed": seed,
        "num_points": num_points,
        "class_names": list(PART_NAMES),
    }


def check_point_labels(path: Path, fields: dict[str, torch.Tensor], num_classes: int) -> None:
    """DataError naming ``path`` unless ``fields["point_labels"]`` holds one label in
    ``0..num_classes - 1`` (or ``IGNORE_INDEX``) for every point of ``fields["points"]``."""
    points, point_labels = fields.get("points"), fields.get("point_labels")
    if points is None or point_labels is None:
        raise DataError(f"{path}: needs the arrays points and point_labels")
    if tuple(point_labels.shape) != tuple(points.shape[:2]):
        raise DataError(
            f"{path}: point_labels {tuple(point_labels.shape)} do not match points "
            f"{tuple(points.shape)}: one label per point is needed",
            hint="delete the split's folder to have it generated again",
        )
    outside = (point_labels != IGNORE_INDEX) & ((point_labels < 0) | (point_labels >= num_classes))
    if outside.any():
        cloud, point = (int(i) for i in outside.nonzero()[0])
        raise DataError(
            f"{path}: cloud {cloud}, point {point}: label {int(point_labels[cloud, point])} "
            f"is outside 0..{num_classes - 1}",
            hint="delete the split's folder to have it generated again",
        )


@DATAMODULES.register("shapes3d_parts", batch=PointCloudSegmentationBatch)
class Shapes3DPartsDataModule(Shapes3DDataModule):
    """Shapes3D surface samples ``[B, P, 3]`` with the part of every point ``[B, P]``
    (point-cloud segmentation; :data:`PART_NAMES`). Writes the splits into ``data_dir`` on
    ``prepare_data`` when missing or made with other settings. The base's ``image_size`` and
    ``resolution`` (views, voxel grids) play no part here."""

    class_names = PART_NAMES
    sample_files = CLOUD_FILES

    def __init__(self, data_dir: str = "data/shapes3d_parts", **generator_and_loader: Any):
        super().__init__(data_dir, **generator_and_loader)

    def wanted_info(self, split: str) -> dict[str, Any]:
        return generator_info(
            self.counts[split], split_seed(self.data_seed, split), self.num_points
        )

    def write_split(self, folder: Path, wanted: dict[str, Any]) -> None:
        make_shapes3d_parts_dataset(
            folder, wanted["samples"], wanted["seed"], self.num_points, self.write_files
        )

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        for split in SPLITS:
            check_point_labels(
                self.generated_dir / split / "samples.npz",
                self.splits[split].fields,
                len(PART_NAMES),
            )

    def make_batch(self, fields, transform, generator) -> PointCloudSegmentationBatch:
        points, point_labels = transform.with_point_labels(
            fields["points"], fields["point_labels"], generator
        )
        return PointCloudSegmentationBatch(points=points, point_labels=point_labels)
