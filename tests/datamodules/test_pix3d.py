"""Pix3DDataModule on a small Pix3D layout written here: a pix3d.json, photos, masks, OBJ models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.datamodules.test_shapenet import CUBE, TETRAHEDRON
from visionflow.batches import ImageToPointCloudBatch, ImageToVoxelBatch
from visionflow.datamodules import Pix3DViewsDataModule, Pix3DViewVoxelsDataModule, mesh_collection
from visionflow.errors import DataError

#: a quarter turn about z: x -> y
QUARTER_TURN = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]


def pix3d_entry(category: str, model: str, index: int) -> dict:
    return {
        "img": f"img/{category}/{index:04d}.png",
        "mask": f"mask/{category}/{index:04d}.png",
        "model": f"model/{category}/{model}/model.obj",
        "category": category,
        "bbox": [10, 20, 30, 30],  # 20 x 10 pixels; squared: rows 15..35
        "rot_mat": QUARTER_TURN if index % 2 else np.eye(3).tolist(),
        "trans_mat": [0, 0, 2],
        "focal_length": 35.0,
        "img_size": [40, 50],
    }


def write_pix3d(root: Path, models: int = 3, photos: int = 2) -> Path:
    """Two categories (bed: tetrahedra, chair: cubes), ``models`` models with ``photos`` photos
    each: grey 40 x 50 PNGs, white in the bbox's left half, masked to the bbox's left 3/4."""
    entries = []
    pixels = np.full((50, 40, 3), 90, np.uint8)
    pixels[20:30, 10:20] = 255
    mask = np.zeros((50, 40), np.uint8)
    mask[20:30, 10:25] = 255
    for category, text in (("bed", TETRAHEDRON), ("chair", CUBE)):
        for model in range(models):
            for _ in range(photos):
                entries.append(pix3d_entry(category, f"M{model}", len(entries)))
            mesh = root / "model" / category / f"M{model}" / "model.obj"
            mesh.parent.mkdir(parents=True)
            mesh.write_text(text)
    for entry in entries:
        for key, array in (("img", pixels), ("mask", mask)):
            (root / entry[key]).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / entry[key])
    (root / "pix3d.json").write_text(json.dumps(entries))
    return root


def small(**arguments) -> dict:
    return {"num_points": 32, "image_size": 20, "batch_size": 4, **arguments}


def test_photos_are_masked_cropped_and_paired_with_their_turned_meshes(tmp_path):
    datamodule = Pix3DViewsDataModule(root=str(write_pix3d(tmp_path)), **small())
    assert datamodule.info.class_names == ("bed", "chair")
    datamodule.setup("fit")
    assert {s: len(d) for s, d in datamodule.splits.items()} == {"train": 8, "val": 2, "test": 2}
    fields = datamodule.splits["train"].fields
    image = fields["images"][0].numpy()  # the 20 x 20 square about the bbox, 1:1
    assert (image[5:15, :10] == 255).all() and (image[5:15, 10:15] == 90).all()
    assert (image[5:15, 15:] == 0).all() and (image[:5] == 0).all()  # masked out
    # photos 0 and 1 of a model: rot_mat identity, then x -> y; then Pix3D's camera frame
    # (x left, z away) turned into the view frame: (x, y, z) -> (-x, y, -z)
    first, second = fields["points"][0], fields["points"][1]
    torch.testing.assert_close(second[:, 1], -first[:, 0])
    torch.testing.assert_close(second[:, 2], first[:, 2])
    torch.testing.assert_close(fields["normals"][1][:, 1], -fields["normals"][0][:, 0])
    batch = next(iter(datamodule.train_dataloader()))
    assert isinstance(batch, ImageToPointCloudBatch) and batch.images.shape == (4, 3, 20, 20)


def test_a_model_never_straddles_two_splits(tmp_path):
    datamodule = Pix3DViewsDataModule(root=str(write_pix3d(tmp_path, models=5)), **small())
    views, split_of = datamodule.samples()
    assert len(views) == 20 and len(split_of) == 10  # split by model, not by photo
    assert sorted(split_of.values()) == ["test"] + ["train"] * 8 + ["val"]


def test_voxels_of_the_photographed_objects(tmp_path):
    datamodule = Pix3DViewVoxelsDataModule(
        root=str(write_pix3d(tmp_path)), resolution=8, fill=True, **small()
    )
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()))
    assert isinstance(batch, ImageToVoxelBatch) and batch.voxels.shape == (2, 8, 8, 8)
    assert datamodule.info.resolution == 8 and datamodule.info.image_size == (20, 20)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.pop("bbox"), r"entry 3 \(img/bed/0003.png\): missing key 'bbox'"),
        (lambda e: e.pop("model"), "entry 3 .*missing key 'model'"),
        (lambda e: e.update(bbox=[5, 5, 5, 9]), "entry 3 .*bbox .* is not"),
        (lambda e: e.update(rot_mat=[[1, 0], [0, 1]]), "entry 3 .*rot_mat .* not a finite 3 x 3"),
    ],
)
def test_bad_entries_name_the_entry_and_key(tmp_path, change, message):
    root = write_pix3d(tmp_path)
    entries = json.loads((root / "pix3d.json").read_text())
    change(entries[3])
    (root / "pix3d.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match=message):
        Pix3DViewsDataModule(root=str(root), **small()).setup("fit")


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        ("model/chair/M1/model.obj", None, "M1/model.obj: no such file"),
        ("model/chair/M1/model.obj", "v 0 0 0\nf 1 2 3 x\n", "M1/model.obj: malformed OBJ"),
        ("model/chair/M1/model.obj", "v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "M1/.* NaN"),
        ("img/bed/0001.png", "not a png", "0001.png: unreadable image"),
        ("mask/bed/0002.png", None, "0002.png: no such file"),
        ("pix3d.json", "{", "pix3d.json: unreadable JSON"),
    ],
)
def test_bad_files_name_the_file(tmp_path, path, text, message):
    root = write_pix3d(tmp_path)
    (root / path).unlink() if text is None else (root / path).write_text(text)
    with pytest.raises(DataError, match=message):
        Pix3DViewsDataModule(root=str(root), **small()).setup("fit")


def test_a_mask_of_another_size_is_refused(tmp_path):
    root = write_pix3d(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "mask/bed/0000.png")
    with pytest.raises(DataError, match="0000.png: mask of 8x8 pixels for an image of 40x50"):
        Pix3DViewsDataModule(root=str(root), **small()).setup("fit")


def test_each_mesh_is_read_once_however_the_entries_are_ordered(tmp_path, monkeypatch):
    root = write_pix3d(tmp_path, photos=3)
    entries = json.loads((root / "pix3d.json").read_text())
    (root / "pix3d.json").write_text(json.dumps(entries[::2] + entries[1::2]))  # interleaved
    reads = []
    original = mesh_collection.read_mesh
    monkeypatch.setattr(
        mesh_collection, "read_mesh", lambda path: reads.append(path) or original(path)
    )
    Pix3DViewVoxelsDataModule(root=str(root), resolution=8, **small()).setup("fit")
    assert len(reads) == len(set(reads)) == 6
