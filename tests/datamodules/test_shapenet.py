"""ShapeNetDataModule on small ShapeNetCore-layout folders of OBJ files written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionflow.batches import ImageToPointCloudBatch, ImageToVoxelBatch, PointCloudBatch
from visionflow.datamodules import (
    ShapeNetPointsDataModule,
    ShapeNetViewsDataModule,
    ShapeNetViewVoxelsDataModule,
)
from visionflow.errors import DataError, SpecError
from visionflow.mesh_files import voxel_downsample

TETRAHEDRON = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"
CUBE = (
    "".join(f"v {x} {y} {z}\n" for x in (0, 1) for y in (0, 1) for z in (0, 1))
    + "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 7\nf 1 3 7 5\nf 2 6 8 4\n"
)
SQUARE = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n"
SYNSETS = {"02691156": ("airplane,aeroplane", TETRAHEDRON), "03001627": ("chair", CUBE)}


def write_shapenet(root: Path, models: int = 5, taxonomy: bool = True) -> Path:
    """Two synsets of ``models`` models each (tetrahedra; cubes of quads), ShapeNetCore v2."""
    for synset, (_, text) in SYNSETS.items():
        for index in range(models):
            path = root / synset / f"model{index:02d}" / "models" / "model_normalized.obj"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if taxonomy:
        entries = [{"synsetId": s, "name": name} for s, (name, _) in SYNSETS.items()]
        (root / "taxonomy.json").write_text(json.dumps(entries))
    return root


def write_renderings(root: Path, shapenet: Path, views: int = 2, size: int = 20) -> Path:
    """ShapeNetRendering folders for every model of ``shapenet``: RGBA PNGs, a square of
    colour 200 inside a transparent border, and their metadata."""
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[5:15, 5:15] = 200
    for model in shapenet.glob("*/*/models"):
        folder = root / model.parent.relative_to(shapenet) / "rendering"
        folder.mkdir(parents=True)
        names = [f"{k:02d}.png" for k in range(views)]
        for name in names:
            Image.fromarray(pixels, "RGBA").save(folder / name)
        (folder / "renderings.txt").write_text("\n".join(names) + "\n")
        lines = [f"{90.0 * k} 0 0 0.8 25" for k in range(views)]
        (folder / "rendering_metadata.txt").write_text("\n".join(lines) + "\n")
    return root


def small(**arguments) -> dict:
    return {"num_points": 32, "image_size": 16, "batch_size": 4, **arguments}


def test_points_name_classes_from_the_taxonomy_and_split_by_model(tmp_path):
    datamodule = ShapeNetPointsDataModule(
        root=str(write_shapenet(tmp_path)), val_fraction=0.2, test_fraction=0.2, **small()
    )
    assert datamodule.info.class_names == ("airplane", "chair")
    datamodule.setup("fit")
    assert {s: len(d) for s, d in datamodule.splits.items()} == {"train": 6, "val": 2, "test": 2}
    batch = next(iter(datamodule.test_dataloader()))
    assert isinstance(batch, PointCloudBatch) and batch.points.shape == (2, 32, 3)
    assert sorted(batch.labels.tolist()) == [0, 1]  # stratified
    assert batch.points.norm(dim=2).max() <= 1 + 1e-6


def test_class_names_are_the_ids_without_a_taxonomy(tmp_path):
    root = write_shapenet(tmp_path, taxonomy=False)
    assert ShapeNetPointsDataModule(root=str(root)).info.class_names == tuple(SYNSETS)
    picked = ShapeNetPointsDataModule(root=str(root), synsets=["03001627"])
    assert picked.info.class_names == ("03001627",)


def test_split_file_decides_the_splits(tmp_path):
    root = write_shapenet(tmp_path, models=2)
    rows = ["id,synsetId,subSynsetId,modelId,split"]
    for synset in SYNSETS:  # leading zero dropped, as in ShapeNet's all.csv
        for model, split in (("model00", "train"), ("model01", "test")):
            rows.append(f"x,{int(synset)},0,{model},{split}")
    rows.append(f"x,{int('03001627')},0,model00,val")  # the later line wins
    (tmp_path / "all.csv").write_text("\n".join(rows) + "\n")
    datamodule = ShapeNetPointsDataModule(
        root=str(root), split_file=str(tmp_path / "all.csv"), **small()
    )
    datamodule.setup("fit")
    labels = {s: d.fields["labels"].tolist() for s, d in datamodule.splits.items()}
    assert labels == {"train": [0], "val": [1], "test": [0, 1]}


def test_views_without_renderings_are_rendered_in_the_view_frame(tmp_path):
    datamodule = ShapeNetViewsDataModule(
        root=str(write_shapenet(tmp_path)), views_per_model=2, **small(image_size=24)
    )
    datamodule.setup("fit")
    assert len(datamodule.splits["train"]) == 16  # 8 models x 2 views
    batch = next(iter(datamodule.train_dataloader()))
    assert isinstance(batch, ImageToPointCloudBatch)
    assert batch.images.shape == (4, 3, 24, 24) and batch.normals.shape == (4, 32, 3)
    torch.testing.assert_close(batch.normals.norm(dim=2), torch.ones(4, 32))
    fields = datamodule.splits["train"].fields
    assert (fields["images"][0] != fields["images"][1]).any()  # two angles of one model
    assert not torch.equal(fields["points"][0], fields["points"][1])
    # the silhouette covers where the points project (orthographic camera down -z)
    image = fields["images"][0].numpy().any(-1)
    columns = ((fields["points"][0, :, 0] + 1) * 12 - 0.5).round().long().clamp(0, 23)
    rows = ((1 - fields["points"][0, :, 1]) * 12 - 0.5).round().long().clamp(0, 23)
    assert image[rows, columns].mean() > 0.9


def test_renderings_give_the_views_and_their_angles(tmp_path):
    shapenet = write_shapenet(tmp_path / "core", models=3)
    renderings = write_renderings(tmp_path / "rendering", shapenet)
    datamodule = ShapeNetViewsDataModule(
        root=str(shapenet), renderings=str(renderings), views_per_model=2, **small()
    )
    datamodule.setup("fit")
    fields = datamodule.splits["train"].fields
    first, second = fields["images"][0], fields["images"][1]
    assert first[8, 8].tolist() == [200, 200, 200] and first[0, 0].tolist() == [0, 0, 0]
    # view 1 (azimuth 90): the camera on +z, the view frame is ShapeNet's own
    points = ShapeNetPointsDataModule(root=str(shapenet), **small())
    points.setup("fit")
    torch.testing.assert_close(fields["points"][1], points.splits["train"].fields["points"][0])
    # view 0 (azimuth 0): the camera on +x, so +x comes toward the viewer (+z)
    torch.testing.assert_close(fields["points"][0][:, 2], fields["points"][1][:, 0])
    torch.testing.assert_close(fields["points"][0][:, 0], -fields["points"][1][:, 2])
    assert torch.equal(first, second)


def test_view_voxels_fill_closed_meshes_and_warn_about_open_ones(tmp_path):
    root = write_shapenet(tmp_path, models=3)
    arguments = {"root": str(root), "resolution": 8, **small()}
    surface = ShapeNetViewVoxelsDataModule(**arguments)
    surface.setup("fit")
    solid = ShapeNetViewVoxelsDataModule(fill=True, **arguments)
    solid.setup("fit")
    batch = next(iter(solid.train_dataloader()))
    assert isinstance(batch, ImageToVoxelBatch) and batch.voxels.shape[1:] == (8, 8, 8)
    hollow, filled = (
        surface.splits["train"].fields["voxels"],
        solid.splits["train"].fields["voxels"],
    )
    assert (filled >= hollow).all() and filled.sum() > hollow.sum()
    open_mesh = root / "03001627" / "model01" / "models" / "model_normalized.obj"
    open_mesh.write_text(SQUARE)
    with pytest.warns(UserWarning, match=r"fill: 1 of 6 meshes are not closed.*model01"):
        ShapeNetViewVoxelsDataModule(fill=True, **arguments).setup("fit")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "model_normalized.obj: no such file"),
        ("v 0 0 0\nv 1 x 0\n", "malformed OBJ line"),
        ("v 0 0 0\nv 1 0 0\n", "empty mesh"),
        ("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n", "vertex 1 has a NaN"),
    ],
)
def test_bad_models_name_the_file(tmp_path, text, message):
    root = write_shapenet(tmp_path, models=3)
    bad = root / "02691156" / "model01" / "models" / "model_normalized.obj"
    bad.unlink() if text is None else bad.write_text(text)
    with pytest.raises(DataError, match=f"model01.*{message}"):
        ShapeNetPointsDataModule(root=str(root), **small()).setup("fit")


def test_bad_layouts_and_arguments(tmp_path):
    with pytest.raises(DataError, match="absent: no such folder"):
        _ = ShapeNetPointsDataModule(root=str(tmp_path / "absent")).info
    root = write_shapenet(tmp_path, models=3)
    with pytest.raises(DataError, match="no synset folder 01234567"):
        _ = ShapeNetPointsDataModule(root=str(root), synsets=["01234567"]).info
    with pytest.raises(DataError, match="rendering_metadata.txt: no such file"):
        ShapeNetViewsDataModule(root=str(root), renderings=str(tmp_path / "none")).setup("fit")
    renderings = write_renderings(tmp_path / "rendering", root)
    metadata = next(renderings.glob("*/*/rendering/rendering_metadata.txt"))
    metadata.write_text("0 0 0 0.8 25\n")
    with pytest.raises(DataError, match="rendering_metadata.txt: 1 view lines for 2 view images"):
        ShapeNetViewsDataModule(root=str(root), renderings=str(renderings)).setup("fit")
    (tmp_path / "split.csv").write_text("synsetId,modelId\n2691156,model00\n")
    with pytest.raises(DataError, match="split.csv: no rows, or no column 'split'"):
        ShapeNetPointsDataModule(root=str(root), split_file=str(tmp_path / "split.csv")).setup()
    (root / "taxonomy.json").write_text('{"synsetId": 1}')
    with pytest.raises(DataError, match="taxonomy.json: not a ShapeNet taxonomy"):
        _ = ShapeNetPointsDataModule(root=str(root)).info
    with pytest.raises(SpecError, match="views_per_model"):
        ShapeNetViewsDataModule(root=str(root), views_per_model=0)
    with pytest.raises(SpecError, match="val_fraction \\+ test_fraction"):
        ShapeNetViewsDataModule(root=str(root), val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(SpecError, match="transforms: the 3D targets of views"):
        ShapeNetViewsDataModule(root=str(root), transforms={"train": "pointcloud_train"}).setup()


def test_real_meshes_as_a_shapenet_layout(tmp_path, shared_data):
    shared = shared_data / "meshes"
    for index, name in enumerate(("suzanne.obj", "teapot.obj", "pytorch3d_cow/cow.obj")):
        for synset in SYNSETS:
            path = tmp_path / synset / f"m{index}" / "models" / "model_normalized.obj"
            path.parent.mkdir(parents=True)
            path.write_bytes((shared / name).read_bytes())
    datamodule = ShapeNetViewVoxelsDataModule(
        root=str(tmp_path), fill=True, resolution=16, test_fraction=0.34, val_fraction=0.3
    )
    with pytest.warns(UserWarning, match="fill: .* not closed"):  # the teapot is open
        datamodule.setup("fit")
    voxels = datamodule.splits["train"].fields["voxels"]
    assert voxels.flatten(1).sum(1).min() > 100


def test_points_voxel_size_keeps_one_point_per_voxel(tmp_path):
    root = str(write_shapenet(tmp_path))
    plain = ShapeNetPointsDataModule(root=root, **small(num_points=128))
    thinned = ShapeNetPointsDataModule(root=root, voxel_size=0.4, **small(num_points=128))
    plain.setup("test")
    thinned.setup("test")
    batch = next(iter(thinned.test_dataloader()))
    assert batch.points.shape[1:] == (128, 3) and (batch.lengths < 128).all()
    for cloud, kept, length in zip(
        plain.splits["test"].fields["points"], batch.points, batch.lengths
    ):
        expected = voxel_downsample(cloud.numpy(), 0.4).points
        torch.testing.assert_close(kept[:length], torch.from_numpy(expected))
        torch.testing.assert_close(kept, kept[torch.arange(128) % length])
    with pytest.raises(SpecError, match="voxel_size: must be > 0 or null"):
        ShapeNetPointsDataModule(root=root, voxel_size=-1.0)
