"""Shapes3D: procedural spheres, boxes, cylinders, cones and tori, rendered offline.

    make_shapes3d_dataset("data/shapes3d/train", samples=400, seed=0, image_size=64)

writes, for sample ``k``, ``meshes/00000k.obj`` (the primitive, turned to face the camera),
``images/00000k.png`` (its view by the project's software rasterizer:
:mod:`visionflow.datamodules.shapes3d_render`), and for the whole split ``samples.npz``:
``images`` uint8 ``[N, S, S, 3]``, ``depth`` float32 ``[N, S, S]``, ``masks`` bool
``[N, S, S]``, ``points``/``normals`` float32 ``[N, P, 3]`` (area-weighted surface samples,
in the camera frame of the image), ``labels`` int64 ``[N]``, and the meshes themselves
(``mesh_verts`` float32 ``[sum V, 3]``, ``mesh_faces`` int64 ``[sum F, 3]`` indexing each
mesh's own vertices, ``mesh_sizes`` int64 ``[N, 2]`` = (V, F)); ``info.json`` says how it was
made. The same seed writes the same files.

Two datamodules here read it: ``shapes3d_points`` (point clouds labelled by primitive, for
``pointcloud_classification``) and ``shapes3d_views`` (image -> point cloud, for
``image_to_pointcloud``); ``shapes3d_voxels.py`` adds the voxel ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionflow.batches import (
    DatasetInfo,
    ImageToPointCloudBatch,
    PointCloudBatch,
    PointCloudDatasetInfo,
)
from visionflow.datamodules.generated_splits import SPLITS, GeneratedSplits, split_seed
from visionflow.datamodules.mesh_io import write_mesh
from visionflow.datamodules.pointcloud_data import (
    NO_TRANSFORMS,
    PointCloudDataModule,
)
from visionflow.datamodules.shapes import png_bytes
from visionflow.datamodules.shapes3d_render import (
    PRIMITIVES,
    primitive_mesh,
    render,
    rotation_matrix,
)
from visionflow.datamodules.view_batches import refuse_view_transforms, view_points_batch
from visionflow.errors import check_minimums
from visionflow.ops import sample_points_from_mesh
from visionflow.registry import DATAMODULES
from visionflow.rundir import atomic_write_arrays, atomic_write_bytes, atomic_write_json

GENERATOR = "visionflow.shapes3d/2"
ELEVATION = (0.3, 0.7)  # radians the camera looks down on the object
#: a split's per-sample files (``write_files``): folder -> suffix of ``000001<suffix>`` ...
SAMPLE_FILES = {"meshes": ".obj", "images": ".png"}
#: files derived from a split and cached beside it (``shapes3d_voxels.py``)
DERIVED_FILES = ("voxels_*.npy", "occupancy_*.npz")


def seeded_split(
    samples: int, num_points: int, seed: int
) -> tuple[np.random.Generator, torch.Generator, np.ndarray]:
    """The numpy and torch generators of one split's ``seed``, and its objects' primitives
    (int64 ``[samples]`` indices into :data:`PRIMITIVES`, the generator's first draw); checks
    ``samples`` and ``num_points`` >= 1."""
    check_minimums({"samples": (samples, 1), "num_points": (num_points, 1)})
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(PRIMITIVES), size=samples)
    return rng, torch.Generator().manual_seed(seed), labels


def make_shapes3d_dataset(
    out_dir: str | Path,
    samples: int,
    seed: int = 0,
    image_size: int = 64,
    num_points: int = 1024,
    write_files: bool = True,
) -> Path:
    """Write one split (see the module docstring); return the path of ``samples.npz``.
    ``write_files=False`` skips the per-sample PNG and OBJ files. The files of a split written
    there before go first (:func:`remove_old_split_files`)."""
    check_minimums({"samples": (samples, 1), "image_size": (image_size, 16)})
    out_dir = Path(out_dir)
    rng, generator, labels = seeded_split(samples, num_points, seed)
    remove_old_split_files(out_dir, SAMPLE_FILES)
    fields: dict[str, list[np.ndarray]] = {
        k: [] for k in ("images", "depth", "masks", "points", "normals", "verts", "faces")
    }
    for index, label in enumerate(labels.tolist()):
        verts, faces = primitive_mesh(PRIMITIVES[label], rng)
        turn = rotation_matrix(rng.uniform(0, 2 * np.pi), rng.uniform(*ELEVATION))
        verts = verts @ turn.T
        color = rng.integers(90, 256, size=3)
        view = render(verts, faces, image_size, color, background=rng.integers(0, 60, size=3))
        points, normals = sample_points_from_mesh(
            torch.from_numpy(verts), torch.from_numpy(faces), num_points, generator
        )
        for key, value in (
            ("images", view.rgb),
            ("depth", view.depth),
            ("masks", view.mask),
            ("points", points.numpy()),
            ("normals", normals.numpy()),
            ("verts", verts),
            ("faces", faces),
        ):
            fields[key].append(value)
        if write_files:
            name = f"{index + 1:06d}"
            write_mesh(out_dir / "meshes" / f"{name}.obj", verts, faces)
            atomic_write_bytes(out_dir / "images" / f"{name}.png", png_bytes(view.rgb))
    verts_list, faces_list = fields.pop("verts"), fields.pop("faces")
    meshes = {
        "mesh_verts": np.concatenate(verts_list).astype(np.float32),
        "mesh_faces": np.concatenate(faces_list),
        "mesh_sizes": np.array([[len(v), len(f)] for v, f in zip(verts_list, faces_list)]),
    }
    arrays = {k: np.stack(v) for k, v in fields.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_samples(
        out_dir,
        {"labels": labels.astype(np.int64), **arrays, **meshes},
        generator_info(samples, seed, image_size, num_points),
    )


def generator_info(samples: int, seed: int, image_size: int, num_points: int) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "samples": samples,
        "seed": seed,
        "image_size": image_size,
        "num_points": num_points,
        "class_names": list(PRIMITIVES),
    }


def remove_old_split_files(out_dir: Path, sample_files: dict[str, str]) -> None:
    """Delete what a split written in ``out_dir`` before left there: its per-sample files
    (``sample_files``: folder -> suffix) and the files derived from it (:data:`DERIVED_FILES`),
    so that a split with fewer samples, or without the files, leaves none of the old ones."""
    patterns = [f"{folder}/{'[0-9]' * 6}{suffix}" for folder, suffix in sample_files.items()]
    for pattern in (*patterns, *DERIVED_FILES):
        for stale in out_dir.glob(pattern):
            stale.unlink()


def has_sample_files(folder: Path, sample_files: dict[str, str], samples: int) -> bool:
    """Whether ``folder`` holds the per-sample files (``sample_files``: folder -> suffix) of
    each of its ``samples`` samples."""
    return all(
        (folder / name / f"{index:06d}{suffix}").is_file()
        for name, suffix in sample_files.items()
        for index in range(1, samples + 1)
    )


def write_samples(out_dir: Path, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> Path:
    """Write a split's ``samples.npz`` (``arrays``), then its ``info.json`` (``info``, which
    marks the split whole), into ``out_dir``; return the path of ``samples.npz``."""
    samples = atomic_write_arrays(out_dir / "samples.npz", arrays)
    atomic_write_json(out_dir / "info.json", info)
    return samples


def read_split(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "samples.npz") as data:
        return {key: data[key] for key in data.files}


class Shapes3DDataModule(GeneratedSplits, PointCloudDataModule):
    """Writes the splits into ``data_dir`` on ``prepare_data`` when missing or made with other
    settings, then holds them as tensors. Subclasses choose what a batch holds."""

    info_file, count_unit = "info.json", "samples"
    #: what the labels index (``labels``, or ``point_labels`` where a subclass has them)
    class_names: tuple[str, ...] = PRIMITIVES
    #: coordinates per point of a point-cloud batch; channels of an image batch
    in_channels = 3
    #: ``(H, W)`` of the images a batch holds; None when it holds none
    provided_image_size: tuple[int, int] | None = None
    #: the info's class, and its field (an attribute of the datamodule) past DatasetInfo's
    info_type: type[DatasetInfo] = PointCloudDatasetInfo
    info_fields: tuple[str, ...] = ("num_points",)
    #: the per-sample files ``write_files`` writes into a split: folder -> suffix
    sample_files: dict[str, str] = SAMPLE_FILES

    def __init__(
        self,
        data_dir: str = "data/shapes3d",
        train_samples: int = 500,
        val_samples: int = 100,
        test_samples: int = 100,
        image_size: int = 64,
        num_points: int = 1024,
        resolution: int = 32,
        data_seed: int = 0,
        write_files: bool = True,
        **loader: Any,
    ):
        counts = {"train": train_samples, "val": val_samples, "test": test_samples}
        minimums = {
            "image_size": (image_size, 16),
            "num_points": (num_points, 1),
            "resolution": (resolution, 1),
        }
        super().__init__(data_dir, counts, data_seed, minimums, **loader)
        self.image_size, self.num_points = image_size, num_points
        self.resolution = resolution  # cells per side of voxel grids (the voxel datamodules)
        self.write_files = write_files

    @property
    def info(self) -> DatasetInfo:
        return self.info_type(
            num_classes=len(self.class_names),
            class_names=self.class_names,
            in_channels=self.in_channels,
            image_size=self.provided_image_size,
            **{name: getattr(self, name) for name in self.info_fields},
        )

    def wanted_info(self, split: str) -> dict[str, Any]:
        return generator_info(
            self.counts[split], split_seed(self.data_seed, split), self.image_size, self.num_points
        )

    def stored_info(self, folder: Path) -> dict[str, Any] | None:
        """The whole ``info.json`` of the split in ``folder``; None without its ``samples.npz``,
        or, with ``write_files``, without its per-sample files (a split made without them)."""
        try:
            stored = json.loads((folder / self.info_file).read_text())
        except (OSError, ValueError):
            return None
        whole = (folder / "samples.npz").is_file() and (
            not self.write_files
            or has_sample_files(folder, self.sample_files, self.counts[folder.name])
        )
        return stored if whole else None

    def prepare_data(self) -> None:
        """Write each split that is missing or was made with other settings, and what
        subclasses derive from it (:meth:`derived_fields`, cached)."""
        super().prepare_data()
        for split in SPLITS:
            self.derived_fields(self.generated_dir / split)  # computed and cached before setup

    def write_split(self, folder: Path, wanted: dict[str, Any]) -> None:
        make_shapes3d_dataset(
            folder,
            wanted["samples"],
            wanted["seed"],
            self.image_size,
            self.num_points,
            self.write_files,
        )

    def setup(self, stage: str | None = None) -> None:
        """Hold the splits as tensors, after writing those missing or made with other settings
        (``setup`` without ``prepare_data`` never holds a split made with other arguments)."""
        rank = self.trainer.global_rank if self.trainer is not None else 0
        super().prepare_data()  # the splits only: setup derives the fields below
        for split in SPLITS:
            arrays = {
                k: torch.from_numpy(v)
                for k, v in read_split(self.generated_dir / split).items()
                if not k.startswith("mesh_")  # ragged: the voxel datamodules derive grids
            }
            arrays.update(self.derived_fields(self.generated_dir / split))
            self.hold_split(split, arrays, rank)

    def derived_fields(self, folder: Path) -> dict[str, torch.Tensor]:
        """Fields ``[N, ...]`` a subclass computes from the split in ``folder`` (none here)."""
        return {}

    def make_batch(self, fields, transform, generator):
        raise NotImplementedError


@DATAMODULES.register("shapes3d_points", batch=PointCloudBatch)
class Shapes3DPointsDataModule(Shapes3DDataModule):
    """Shapes3D surface samples ``[B, P, 3]`` labelled by primitive (point-cloud classification)."""

    def make_batch(self, fields, transform, generator) -> PointCloudBatch:
        return PointCloudBatch(
            points=transform(fields["points"], generator), labels=fields["labels"]
        )


@DATAMODULES.register("shapes3d_views", batch=ImageToPointCloudBatch)
class Shapes3DViewsDataModule(Shapes3DDataModule):
    """Shapes3D rendered views ``[B, 3, S, S]`` with the surface samples and their normals
    ``[B, P, 3]`` they show (camera frame, not augmented: the image fixes the pose)."""

    default_transforms = NO_TRANSFORMS

    @property
    def provided_image_size(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    def derived_fields(self, folder: Path) -> dict[str, torch.Tensor]:
        refuse_view_transforms(self.pipelines)
        return {}

    def make_batch(self, fields, transform, generator) -> ImageToPointCloudBatch:
        return view_points_batch(fields)
