"""The datamodules over mesh collections (ShapeNet, Pix3D): a source class lists the samples
(:class:`~visionflow.datamodules.mesh_collection.MeshView`) and the split of each model; an
output class says what a batch holds. A registered datamodule is one of each:

    PointsOutput        PointCloudBatch(points [B, P, 3], labels)          pointcloud_classification
    ViewPointsOutput    ImageToPointCloudBatch(images [B, 3, S, S], points, normals [B, P, 3])
                                                                    image_to_pointcloud, image_to_mesh
    ViewVoxelsOutput    ImageToVoxelBatch(images, voxels [B, R, R, R])      image_to_voxel

Only point clouds without views are augmented (the point-cloud ``transforms``); a view fixes
the pose of what it shows, so the view outputs refuse ``transforms`` by name.
"""

from __future__ import annotations

from typing import Any

from visionflow.batches import (
    ImageToPointCloudBatch,
    ImageToVoxelBatch,
    PointCloudBatch,
    PointCloudDatasetInfo,
    VoxelDatasetInfo,
)
from visionflow.datamodules.mesh_collection import (
    FieldSettings,
    MeshReader,
    MeshView,
    view_fields,
)
from visionflow.datamodules.pointcloud_data import (
    NO_TRANSFORMS,
    PointCloudDataModule,
)
from visionflow.datamodules.splits import SPLITS
from visionflow.datamodules.view_batches import (
    refuse_view_transforms,
    view_points_batch,
    view_voxels_batch,
)
from visionflow.errors import DataError, SpecError


class MeshCollectionDataModule(PointCloudDataModule):
    """Reads the samples of :meth:`samples` on ``setup`` into :class:`TensorBatches` per split.

    ``num_points`` surface samples per mesh, views of ``image_size`` pixels, grids of
    ``resolution`` cells per side (``fill``: solid where the mesh is closed, with a warning
    counting the open ones); ``data_seed`` fixes the samples, rendered views and seeded split
    (``val_fraction`` and ``test_fraction`` of the models, stratified by class)."""

    #: the fields a batch is built from (:func:`~visionflow.datamodules.mesh_collection.view_fields`)
    fields: tuple[str, ...] = ("points",)

    def __init__(
        self,
        num_points: int = 1024,
        image_size: int = 64,
        resolution: int = 32,
        fill: bool = False,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        data_seed: int = 0,
        **loader: Any,
    ):
        super().__init__(**loader)
        for key, value, least in (
            ("num_points", num_points, 1),
            ("image_size", image_size, 16),
            ("resolution", resolution, 1),
        ):
            if value < least:
                raise SpecError(f"{key}: must be >= {least}, got {value}")
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise SpecError(f"{key}: must be in [0, 1), got {value}")
        if val_fraction + test_fraction >= 1:
            raise SpecError(
                f"val_fraction + test_fraction: must be < 1, got {val_fraction + test_fraction}"
            )
        self.num_points, self.image_size, self.resolution = num_points, image_size, resolution
        self.fill, self.data_seed = fill, data_seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def samples(self) -> tuple[list[MeshView], dict[str, str]]:
        """The samples, and the split (train, val or test) of each sample's group."""
        raise NotImplementedError

    @property
    def uses_views(self) -> bool:
        return "images" in self.fields

    def setup(self, stage: str | None = None) -> None:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        views, split_of = self.samples()
        reader = MeshReader(
            FieldSettings(
                self.fields,
                self.num_points,
                self.image_size,
                self.resolution,
                self.fill,
                self.data_seed,
            )
        )
        for split in SPLITS:
            chosen = [view for view in views if split_of.get(view.group) == split]
            chosen.sort(key=lambda view: view.group)  # a model's views together, in order
            if not chosen:
                raise DataError(
                    f"{self.source}: the {split} split has no samples ({len(views)} in all)",
                    hint="add models, or change val_fraction / test_fraction or the split file",
                )
            self.hold_split(split, view_fields(chosen, reader), rank)
        reader.warn_open_meshes()

    @property
    def source(self) -> str:
        """The folder or file the samples come from, for messages."""
        raise NotImplementedError

    def make_batch(self, fields, transform, generator):
        raise NotImplementedError


class PointsOutput(MeshCollectionDataModule):
    """Surface samples ``[B, P, 3]`` of each model (no views), labelled by class, augmented by
    the point-cloud ``transforms``."""

    fields = ("points",)

    @property
    def info(self) -> PointCloudDatasetInfo:
        names = self.class_names
        return PointCloudDatasetInfo(
            num_classes=len(names), class_names=names, in_channels=3, num_points=self.num_points
        )

    def make_batch(self, fields, transform, generator) -> PointCloudBatch:
        return PointCloudBatch(
            points=transform(fields["points"], generator),
            labels=fields["labels"],
            lengths=fields.get("lengths"),
        )


class ViewOutput(MeshCollectionDataModule):
    """Base of the image -> 3D outputs: views ``[B, 3, S, S]``, not augmented (a view fixes
    the pose); ``info_fields`` name the sizes of the 3D target that the info reports."""

    default_transforms = NO_TRANSFORMS
    info_type: type[PointCloudDatasetInfo] | type[VoxelDatasetInfo]
    info_fields: tuple[str, ...]

    @property
    def info(self) -> PointCloudDatasetInfo | VoxelDatasetInfo:
        names = self.class_names
        return self.info_type(
            num_classes=len(names),
            class_names=names,
            in_channels=3,
            image_size=(self.image_size, self.image_size),
            **{name: getattr(self, name) for name in self.info_fields},
        )

    def setup(self, stage: str | None = None) -> None:
        refuse_view_transforms(self.pipelines)
        super().setup(stage)


class ViewPointsOutput(ViewOutput):
    """Views ``[B, 3, S, S]`` with the surface samples ``[B, P, 3]`` and normals they show."""

    fields = ("images", "points", "normals")
    info_type, info_fields = PointCloudDatasetInfo, ("num_points",)

    def make_batch(self, fields, transform, generator) -> ImageToPointCloudBatch:
        return view_points_batch(fields)


class ViewVoxelsOutput(ViewOutput):
    """Views ``[B, 3, S, S]`` with the occupancy grids ``[B, R, R, R]`` they show."""

    fields = ("images", "voxels")
    info_type, info_fields = VoxelDatasetInfo, ("resolution",)

    def make_batch(self, fields, transform, generator) -> ImageToVoxelBatch:
        return view_voxels_batch(fields)
