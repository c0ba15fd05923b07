"""CIFAR-10/100 from files written here in the real formats (pickled batches, binary records),
and the restricted unpickler refusing anything but arrays, lists and strings."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from visionflow.datamodules import CIFAR10DataModule, CIFAR100DataModule
from visionflow.datamodules.cifar import load_pickle
from visionflow.errors import DataError

CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def rows(count: int, seed: int) -> np.ndarray:
    """``count`` random images as CIFAR rows: uint8 ``[N, 3072]``, channel-major."""
    return np.random.default_rng(seed).integers(0, 256, (count, 3072), dtype=np.uint8)


def write_pickle(path: Path, record: dict, protocol: int = 2, numpy1: bool = False) -> None:
    """``numpy1``: name numpy's array constructor as numpy 1 (and the original files) did."""
    data = pickle.dumps(record, protocol=protocol)
    if numpy1:
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_cifar10(root: Path, per_batch: int = 6, test: int = 6, **pickle_options) -> dict:
    """The python version: 5 train batches, a test batch, batches.meta. Returns the rows/labels."""
    folder = root / "cifar-10-batches-py"
    written = {"train": [], "test": []}
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        count = test if name == "test_batch" else per_batch
        data, labels = rows(count, index), [(index + i) % 10 for i in range(count)]
        record = {
            "batch_label": name,
            "labels": labels,
            "data": data,
            "filenames": [f"{name}_{i}.png" for i in range(count)],
        }
        if index == 1:  # keys as bytes, as a Python 2 pickle loaded with encoding="bytes" has
            record = {k.encode(): v for k, v in record.items()}
        write_pickle(folder / name, record, **pickle_options)
        written["test" if name == "test_batch" else "train"].append((data, labels))
    write_pickle(folder / "batches.meta", {"label_names": CIFAR10_NAMES, "num_vis": 3072})
    return {
        split: (
            np.concatenate([d for d, _ in parts]),
            np.concatenate([labels for _, labels in parts]),
        )
        for split, parts in written.items()
    }


def write_cifar10_binary(root: Path, written: dict) -> None:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    data, labels = written["train"]
    for i in range(5):
        part = slice(i * len(data) // 5, (i + 1) * len(data) // 5)
        records = np.concatenate([labels[part, None].astype(np.uint8), data[part]], axis=1)
        (folder / f"data_batch_{i + 1}.bin").write_bytes(records.tobytes())
    data, labels = written["test"]
    (folder / "test_batch.bin").write_bytes(
        np.concatenate([labels[:, None].astype(np.uint8), data], axis=1).tobytes()
    )
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")


def write_cifar100(root: Path, binary: bool, train: int = 20, test: int = 5) -> dict:
    names = [f"class_{i:02d}" for i in range(100)]
    written = {}
    for split, count, seed in (("train", train, 0), ("test", test, 1)):
        data, fine = rows(count, seed), (np.arange(count) * 7 % 100).astype(np.uint8)
        coarse = fine // 5
        written[split] = (data, fine)
        if binary:
            folder = root / "cifar-100-binary"
            folder.mkdir(parents=True, exist_ok=True)
            records = np.concatenate([coarse[:, None], fine[:, None], data], axis=1)
            (folder / f"{split}.bin").write_bytes(records.tobytes())
        else:
            write_pickle(
                root / "cifar-100-python" / split,
                {"data": data, "fine_labels": fine.tolist(), "coarse_labels": coarse.tolist()},
                protocol=5,
            )
    if binary:
        (root / "cifar-100-binary" / "fine_label_names.txt").write_text("\n".join(names))
    else:
        write_pickle(
            root / "cifar-100-python" / "meta",
            {"fine_label_names": names, "coarse_label_names": names[:20]},
        )
    return written


def test_cifar10_python_version_reads_channel_major_rows(tmp_path):
    written = write_cifar10(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=8)
    dm.prepare_data()
    assert dm.info.class_names == tuple(CIFAR10_NAMES) and dm.info.in_channels == 3
    assert dm.info.image_size == (32, 32)
    images, labels = dm.split_arrays("test")
    data, expected_labels = written["test"]
    assert labels.tolist() == list(expected_labels)
    y, x = 5, 17
    assert images[2, y, x].tolist() == [data[2, c * 1024 + y * 32 + x] for c in range(3)]
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [27, 3, 6]
    batch = next(iter(dm.train_dataloader()))
    assert batch.images.shape == (8, 3, 32, 32) and batch.images.dtype == torch.float32
    assert dm.transform_summary()["execution"]["train"] == {
        "cached": ["PadIfNeeded", "Normalize"],
        "per_sample": [],
        "batched": ["BatchedRandomCrop(height=32, width=32)", "BatchedFlip(p=0.5, dim=-1)"],
    }


@pytest.mark.parametrize("options", [{"numpy1": True}, {"protocol": 4}, {"protocol": 5}])
def test_pickles_from_other_numpy_versions_and_protocols(tmp_path, options):
    written = write_cifar10(tmp_path, **options)
    images, labels = CIFAR10DataModule(root=str(tmp_path), batch_size=4).split_arrays("test")
    assert labels.tolist() == list(written["test"][1]) and images.shape == (6, 32, 32, 3)


def test_binary_version_reads_the_same_images(tmp_path):
    written = write_cifar10(tmp_path)
    python = CIFAR10DataModule(root=str(tmp_path), batch_size=4)
    write_cifar10_binary(tmp_path / "bin", written)
    binary = CIFAR10DataModule(root=str(tmp_path / "bin"), batch_size=4)
    assert binary.info.class_names == tuple(CIFAR10_NAMES)
    for split in ("train", "test"):
        assert np.array_equal(python.split_arrays(split)[0], binary.split_arrays(split)[0])
        assert np.array_equal(python.split_arrays(split)[1], binary.split_arrays(split)[1])


@pytest.mark.parametrize("binary", [False, True])
def test_cifar100_uses_the_fine_labels(tmp_path, binary):
    written = write_cifar100(tmp_path, binary)
    dm = CIFAR100DataModule(root=str(tmp_path), batch_size=4, val_fraction=0.0)
    assert dm.info.num_classes == 100 and dm.info.class_names[7] == "class_07"
    dm.setup()
    assert dm.dataset("test").targets.tolist() == written["test"][1].tolist()
    assert len(dm.dataset("train")) == 20
    assert next(iter(dm.test_dataloader())).images.shape == (4, 3, 32, 32)


class RunsACommand:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_refused_before_it_runs(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    payload = RunsACommand()
    payload.marker = marker
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps({"data": payload, "labels": []}, protocol=2))
    with pytest.raises(DataError, match=f"{path}: refusing to unpickle posix.system"):
        CIFAR10DataModule(root=str(tmp_path), batch_size=4).setup("fit")
    assert not marker.exists()
    path.write_bytes(b"cbuiltins\neval\n(V__import__('os').getcwd()\ntR.")
    with pytest.raises(DataError, match="refusing to unpickle builtins.eval"):
        load_pickle(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda data: data[: len(data) // 2], r"cannot unpickle"),
        (lambda data: pickle.dumps(["not", "a", "dict"]), r"expected a pickled dict, found list"),
        (
            lambda data: pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}),
            r"'data' must be a uint8 array of shape \[N, 3072\], found uint8 \(2, 100\)",
        ),
        (
            lambda data: pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}),
            r"2 images but 1 'labels'",
        ),
        (
            lambda data: pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}),
            r"record 1 has label 10, expected 0-9",
        ),
    ],
)
def test_a_damaged_pickle_is_named(tmp_path, content, message):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(content(path.read_bytes()))
    with pytest.raises(DataError, match=f"{path}: {message}"):
        CIFAR10DataModule(root=str(tmp_path), batch_size=4).setup("test")


def test_a_damaged_binary_file_is_named(tmp_path):
    write_cifar10_binary(tmp_path, write_cifar10(tmp_path / "source"))
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    records = path.read_bytes()
    path.write_bytes(records[:-1])
    with pytest.raises(
        DataError,
        match=f"{path}: {len(records) - 1} bytes is not a whole number "
        f"of 3073-byte CIFAR-10 records",
    ):
        CIFAR10DataModule(root=str(tmp_path), batch_size=4).setup("test")
    path.write_bytes(records[:3073] + bytes([12]) + records[3074:])
    with pytest.raises(DataError, match=f"{path}: record 1 has label 12"):
        CIFAR10DataModule(root=str(tmp_path), batch_size=4).setup("test")


def test_missing_files_say_which_and_where(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=4)
    with pytest.raises(
        DataError,
        match=r"(?s)CIFAR-10 files not found: missing data_batch_4 in "
        r".*cifar-10-batches-py.*download: true.*"
        r"cifar-10-batches-bin",
    ):
        dm.info  # noqa: B018  (the class names live in the files)


def test_download_uses_torchvisions_archive(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    calls = []

    def fake_download(url, download_root, filename, md5):
        calls.append((url, filename, md5))
        write_cifar100(Path(download_root), binary=False)

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    dm = CIFAR100DataModule(root=str(tmp_path), download=True, batch_size=4)
    dm.prepare_data()
    dm.prepare_data()  # already there: no second download
    assert calls == [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        )
    ]
    assert dm.info.num_classes == 100

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(
        DataError,
        match=r"(?s)downloading CIFAR-10 to .* failed: Network is "
        r"unreachable.*extract cifar-10-python.tar.gz",
    ):
        CIFAR10DataModule(root=str(tmp_path / "none"), download=True, batch_size=4).prepare_data()
