"""MNIST / Fashion-MNIST from IDX files written here (gzipped, raw; torchvision and flat layouts),
their errors, and Debian's real Fashion-MNIST files where installed."""

from __future__ import annotations

import gzip
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from visionflow.datamodules import FashionMNISTDataModule, MNISTDataModule
from visionflow.datamodules.mnist import read_idx
from visionflow.errors import DataError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(path.name + ".gz") if gz else path
    target.write_bytes(gzip.compress(data) if gz else data)
    return target


def write_idx_set(folder: Path, gz: bool = True, sizes=(40, 12), seed: int = 0) -> dict:
    """Four IDX files of random 28x28 images; returns ``{split: (images, labels)}``."""
    rng = np.random.default_rng(seed)
    written = {}
    for (split, (images_name, labels_name)), count in zip(FILES.items(), sizes):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        write_file(folder / images_name, idx_bytes(images), gz)
        write_file(folder / labels_name, idx_bytes(labels), gz)
        written[split] = (images, labels)
    return written


def test_torchvision_layout_gzipped(tmp_path):
    written = write_idx_set(tmp_path / "MNIST" / "raw", gz=True)
    dm = MNISTDataModule(
        root=str(tmp_path), batch_size=8, val_fraction=0.25, transforms={"train": "normalize"}
    )
    dm.prepare_data()
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [30, 10, 12]
    images, labels = written["test"]
    expected = (torch.from_numpy(images).float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(dm.dataset("test").images[:, 0], expected, atol=1e-5)
    assert dm.dataset("test").targets.tolist() == labels.tolist()
    batch = next(iter(dm.train_dataloader()))
    assert batch.images.shape == (8, 1, 28, 28) and batch.targets.dtype == torch.int64


def test_flat_folder_of_raw_files_and_fashion_names(tmp_path):
    write_idx_set(tmp_path, gz=False)
    dm = FashionMNISTDataModule(root=str(tmp_path), batch_size=4, image_size=32)
    dm.setup("test")
    assert dm.info.class_names[0] == "T-shirt/top" and dm.info.image_size == (32, 32)
    assert next(iter(dm.test_dataloader())).images.shape == (4, 1, 32, 32)


def test_gzipped_and_raw_files_mix(tmp_path):
    write_idx_set(tmp_path, gz=True)
    raw_images = tmp_path / "t10k-images-idx3-ubyte.gz"
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(gzip.decompress(raw_images.read_bytes()))
    raw_images.unlink()
    dm = MNISTDataModule(root=str(tmp_path), batch_size=4)
    dm.setup("test")
    assert len(dm.dataset("test")) == 12


def test_missing_files_are_named_with_where_to_put_them(tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    dm = MNISTDataModule(root=str(tmp_path), batch_size=4)
    dm.prepare_data()  # no download asked: nothing to do
    with pytest.raises(DataError) as caught:
        dm.setup("fit")
    message = str(caught.value)
    assert "MNIST files not found: missing t10k-labels-idx1-ubyte[.gz] in " in message
    assert str(tmp_path / "MNIST" / "raw") in message and "download: true" in message
    assert "train-images" not in message.splitlines()[0] and "apt-get" not in message


def test_fashion_mnist_missing_files_mention_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNISTDataModule, "system_folders", ())  # even where installed
    dm = FashionMNISTDataModule(root=str(tmp_path), batch_size=4)
    with pytest.raises(
        DataError,
        match=r"(?s)missing train-images-idx3-ubyte\[.gz\], "
        r"train-labels.*apt-get install dataset-fashion-mnist",
    ):
        dm.setup("fit")


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda data: b"\x00\x00\x08\x01" + data[4:],
            r"not an IDX file of 3-d unsigned bytes "
            r"\(magic number 00000801, expected 00000803\)",
        ),
        (lambda data: b"\x12\x34\x56\x78" + data[4:], r"not an IDX file .*magic number 12345678"),
        (
            lambda data: data[:-5],
            r"header promises 40x28x28 = 31360 bytes of data but the file has "
            r"31355",
        ),
        (lambda data: b"", r"not an IDX file .*magic number missing"),
    ],
)
def test_a_corrupt_file_is_named(tmp_path, damage, message):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=f"{path}: {message}"):
        MNISTDataModule(root=str(tmp_path), batch_size=4).setup("fit")


def test_broken_gzip_is_named(tmp_path):
    write_idx_set(tmp_path, gz=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=f"{path}: cannot read"):
        read_idx(path, 1)


def test_mismatched_counts_and_bad_labels_are_named(tmp_path):
    write_idx_set(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(39, np.uint8)))
    with pytest.raises(DataError, match="holds 40 images but .*holds 39 labels"):
        MNISTDataModule(root=str(tmp_path), batch_size=4).setup("fit")
    labels.write_bytes(idx_bytes(np.array([1] * 7 + [10] + [2] * 32, np.uint8)))
    with pytest.raises(DataError, match=f"{labels}: record 7 has label 10, expected 0-9"):
        MNISTDataModule(root=str(tmp_path), batch_size=4).setup("fit")


def test_download_uses_torchvisions_downloader_and_reports_failure(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    fetched = []

    def fake_download(url, download_root, filename, md5):
        fetched.append(filename)
        name = filename.removesuffix(".gz")
        array = np.zeros((5, 28, 28) if "images" in name else (5,), np.uint8)
        write_file(Path(download_root) / name, idx_bytes(array), gz=False)

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    dm = MNISTDataModule(root=str(tmp_path), download=True, batch_size=4)
    dm.prepare_data()
    assert sorted(fetched) == sorted(f"{n}.gz" for names in FILES.values() for n in names)
    dm.setup("test")
    assert len(dm.dataset("test")) == 5

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    monkeypatch.setattr(FashionMNISTDataModule, "system_folders", ())
    with pytest.raises(DataError, match="downloading Fashion-MNIST to .* failed: .*no network"):
        FashionMNISTDataModule(
            root=str(tmp_path / "empty"), download=True, batch_size=4
        ).prepare_data()


@pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed "
    "(apt-get install dataset-fashion-mnist)",
)
def test_debian_fashion_mnist_files():
    dm = FashionMNISTDataModule(root=str(DEBIAN_FASHION), batch_size=32, limit=200)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [200, 200, 200]
    train_labels = dm.sources["train"][1]
    assert len(train_labels) == 60000 and np.bincount(train_labels).tolist() == [6000] * 10
    batch = next(iter(dm.train_dataloader()))
    assert batch.images.shape == (32, 1, 28, 28)
    found = FashionMNISTDataModule(root="/nonexistent", batch_size=4)  # searched automatically
    assert len(found.sources["test"][1]) == 10000
