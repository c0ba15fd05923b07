"""ImageFolder on the shared real photos (imagenet10, skimage_photos) and on generated folders:
layouts, channels, splits by seed, bad files (error or skip), workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.utilities.data import _update_dataloader
from PIL import Image
from torch.utils.data import DistributedSampler

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules import ImageFolderDataModule
from visionflow.errors import DataError, SpecError

SHARED = Path(__file__).resolve().parents[2] / "../shared/data" / "classification"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")


def write_image(path: Path, mode: str = "RGB", size=(40, 30), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    image.save(path)
    return path


def write_folder(root: Path, classes=("ant", "bee", "cat"), per_class: int = 6) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            suffix = ".png" if i % 2 else ".jpg"
            mode = {0: "RGB", 1: "RGBA", 2: "L", 3: "P"}[i % 4] if suffix == ".png" else "RGB"
            write_image(root / name / f"{name}_{i}{suffix}", mode, seed=10 * c + i)
    (root / "ant" / "notes.txt").write_text("not an image")
    return root


@needs_shared
def train_only(root: Path, batch_size: int = 32, **changes) -> ImageFolderDataModule:
    """The folder at ``root`` with every image in the train split, at 16 px."""
    return ImageFolderDataModule(
        root=str(root),
        image_size=16,
        batch_size=batch_size,
        val_fraction=0.0,
        test_fraction=0.0,
        **changes,
    )


def test_imagenet10_train_val_layout_tests_on_val():
    dm = ImageFolderDataModule(root=str(SHARED / "imagenet10"), image_size=64, batch_size=4)
    assert dm.info.num_classes == 10 and dm.info.class_names[0] == "cock"
    assert dm.info.image_size == (64, 64) and dm.info.in_channels == 3
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [10, 10, 10]
    assert dm.dataset("test").samples == dm.dataset("val").samples
    batches = list(dm.train_dataloader())
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(type(b) is ImageClassificationBatch for b in batches)
    assert batches[0].images.shape == (4, 3, 64, 64) and batches[0].images.dtype == torch.float32
    labels = torch.cat([b.targets for b in list(dm.val_dataloader())])
    assert sorted(labels.tolist()) == list(range(10))


@needs_shared
@pytest.mark.parametrize("channels", [3, 1])
def test_skimage_photos_flat_layout_with_a_grayscale_png(channels):
    dm = ImageFolderDataModule(
        root=str(SHARED / "skimage_photos"),
        image_size=48,
        channels=channels,
        batch_size=8,
        val_fraction=0.25,
        test_fraction=0.2,
    )
    assert dm.info.in_channels == channels and "camera" in dm.info.class_names
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [3, 1, 1]
    images = torch.cat(
        [
            b.images
            for split in ("train", "val", "test")
            for b in list(dm._dataloader(split, shuffle=False))
        ]
    )
    assert images.shape == (5, channels, 48, 48) and torch.isfinite(images).all()


def test_generated_folder_converts_every_mode_and_ignores_other_files(tmp_path):
    dm = ImageFolderDataModule(
        root=str(write_folder(tmp_path)),
        image_size=32,
        batch_size=64,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    dm.setup("fit")
    assert len(dm.dataset("train")) == 18
    (batch,) = list(dm.train_dataloader())
    assert batch.images.shape == (18, 3, 32, 32)
    assert sorted(batch.targets.tolist()) == [0] * 6 + [1] * 6 + [2] * 6


def test_splits_are_stratified_and_fixed_by_seed(tmp_path):
    root = str(write_folder(tmp_path, per_class=10))

    def splits(seed):
        dm = ImageFolderDataModule(
            root=root, image_size=16, batch_size=4, seed=seed, test_fraction=0.2, val_fraction=0.25
        )
        return {s: [p for p, _ in dm._splits[s]] for s in ("train", "val", "test")}

    first = splits(0)
    assert [len(first[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    train, val, test = (set(first[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert (
        sorted(Path(p).parent.name for p in first["test"])
        == ["ant"] * 2 + ["bee"] * 2 + ["cat"] * 2
    )
    assert splits(0) == first and splits(1) != first


def test_train_only_layout_holds_out_val_and_tests_on_it(tmp_path):
    write_folder(tmp_path / "train")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=4, val_fraction=0.5)
    assert len(dm._splits["train"]) == 9 and dm._splits["test"] == dm._splits["val"]


def test_a_corrupt_file_is_an_error_naming_it(tmp_path):
    root = write_folder(tmp_path)
    bad = root / "bee" / "bee_9.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is no jpeg")
    dm = train_only(root)
    with pytest.raises(DataError, match=f"{bad}: cannot decode image") as caught:
        list(dm.train_dataloader())
    assert "skip_bad_files: true" in str(caught.value)


def test_a_truncated_file_is_an_error_in_a_worker_too_without_a_torch_traceback(tmp_path):
    root = write_folder(tmp_path)
    good = (root / "cat" / "cat_2.jpg").read_bytes()
    bad = root / "cat" / "cat_2.jpg"
    bad.write_bytes(good[: len(good) // 2])
    dm = train_only(root, num_workers=1)
    with pytest.raises(DataError) as caught:
        list(dm.train_dataloader())
    assert str(caught.value).startswith(f"{bad}: cannot decode image")
    assert "Traceback" not in str(caught.value) and "worker" not in str(caught.value)


def test_skip_bad_files_drops_them_with_a_warning(tmp_path):
    root = write_folder(tmp_path)
    bad = root / "ant" / "ant_1.png"
    bad.write_bytes(b"garbage")
    dm = train_only(root, skip_bad_files=True)
    with pytest.warns(UserWarning, match=f"skipping {bad}: cannot decode image"):
        (batch,) = list(dm.train_dataloader())
    assert len(batch) == 17 and batch.targets.tolist().count(0) == 5


def test_the_loader_survives_lightnings_ddp_rebuild(tmp_path):
    root = write_folder(tmp_path)
    dm = train_only(root, batch_size=4)
    train = dm.train_dataloader()
    rebuilt = _update_dataloader(train, DistributedSampler(train.dataset, num_replicas=2, rank=1))
    assert type(rebuilt) is type(train)
    assert [len(b) for b in rebuilt] == [4, 4, 1]
    (root / "ant" / "ant_0.jpg").write_bytes(b"broken")
    with pytest.raises(DataError, match="ant_0.jpg: cannot decode"):
        list(_update_dataloader(train, DistributedSampler(train.dataset, num_replicas=1, rank=0)))
    pickle.dumps(iter(train))  # Lightning pickles its loop state with live iterators in it


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "no such folder"),
        (lambda root: root.mkdir(), "no class folders found"),
        (lambda root: (root / "ant").mkdir(parents=True), r"no images \(.jpg"),
        (
            lambda root: (
                write_folder(root / "train"),
                write_image(root / "val" / "dog" / "d.png"),
            ),
            "class 'dog' is not among the train classes",
        ),
    ],
)
def test_bad_layouts_are_data_errors(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=message):
        ImageFolderDataModule(root=str(root), batch_size=4).setup()


def test_pipelines_must_give_one_size_and_arguments_are_checked(tmp_path):
    with pytest.raises(
        SpecError,
        match=r"transforms.eval: the pipeline's output size depends on "
        r"the input size",
    ):
        ImageFolderDataModule(root=str(tmp_path), batch_size=4, transforms={"eval": "normalize"})
    with pytest.raises(SpecError, match="channels: must be 1 or 3"):
        ImageFolderDataModule(root=str(tmp_path), batch_size=4, channels=2)
    with pytest.raises(SpecError, match=r"mean: 2 values for 3 channel\(s\)"):
        ImageFolderDataModule(root=str(tmp_path), batch_size=4, mean=[0.5, 0.5])


def test_transform_summary_is_the_imagenet_recipe_as_plain_data(tmp_path):
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=96, batch_size=4)
    summary = dm.transform_summary()
    assert yaml.safe_load(yaml.safe_dump(summary)) == summary
    train = [t["__class_fullname__"] for t in summary["train"]["transform"]["transforms"]]
    assert train == ["RandomResizedCrop", "HorizontalFlip", "ColorJitter", "Normalize"]
    evaluation = summary["eval"]["transform"]["transforms"]
    assert [t["__class_fullname__"] for t in evaluation] == [
        "SmallestMaxSize",
        "CenterCrop",
        "Normalize",
    ]
    assert evaluation[0]["max_size"] == 110 and evaluation[1]["height"] == 96
