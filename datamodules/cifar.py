"""CIFAR-10 and CIFAR-100 (32x32 RGB; 50k train / 10k test) from torchvision's files under ``root``.

Two formats are read: the python version (``cifar-10-batches-py/``, ``cifar-100-python/``: pickled
dicts) and the binary version (``cifar-10-batches-bin/``, ``cifar-100-binary/``: fixed-size
records of label byte(s) + 3,072 pixel bytes, channel-major). The pickles are opened with
:class:`RestrictedUnpickler`, which builds numpy arrays, lists, dicts and strings and refuses
every other global, so a tampered file cannot run code. ``download: true`` fetches the python
version with torchvision's downloader (checksum verified).
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules.tensor_data import FileTensorDataModule
from visionflow.errors import DataError
from visionflow.registry import DATAMODULES

PIXELS = 3 * 32 * 32  # bytes per image: 1024 red, 1024 green, 1024 blue, row-major


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles what CIFAR's files hold (numpy arrays, lists, dicts, strings, numbers) and
    raises DataError for any other global, before anything is called."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how protocol 2 writes bytes (the array data)
        }
    )

    def __init__(self, file: Any, path: Path):
        super().__init__(file, encoding="latin1")  # the original files were written by Python 2
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataError(
                f"{self.path}: refusing to unpickle {module}.{name}: a CIFAR file "
                "holds only arrays, lists and strings",
                hint="the file is not a CIFAR batch or was tampered with; fetch it "
                "again from the official archive",
            )
        with warnings.catch_warnings():  # numpy 2 warns about its old module names
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def load_pickle(path: Path) -> dict[str, Any]:
    """The dict in a CIFAR pickle, keys as str; DataError for anything else."""
    try:
        with path.open("rb") as file:
            record = RestrictedUnpickler(file, path).load()
    except DataError:
        raise
    except Exception as error:  # unpickling fails in many ways; each means a bad file
        raise DataError(
            f"{path}: cannot unpickle ({type(error).__name__}: {error})",
            hint="the file is truncated or damaged; fetch it again",
        ) from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(record).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in record.items()}


@dataclass(frozen=True)
class CIFARLayout:
    """Where one CIFAR variant keeps its files and how its records read."""

    num_classes: int
    pickle_folder: str
    pickle_files: dict[str, tuple[str, ...]]
    label_key: str
    meta_file: str
    names_key: str
    binary_folder: str
    binary_files: dict[str, tuple[str, ...]]
    label_bytes: int  # label bytes per binary record; the class label is the last of them
    names_file: str

    @property
    def title(self) -> str:
        """The variant's name, ``CIFAR-10`` or ``CIFAR-100``."""
        return f"CIFAR-{self.num_classes}"

    @property
    def torchvision_class(self) -> str:
        """The name of its ``torchvision.datasets`` class."""
        return f"CIFAR{self.num_classes}"

    def split_files(self, binary: bool) -> dict[str, tuple[str, ...]]:
        """``{split: batch file names}`` of one format."""
        return self.binary_files if binary else self.pickle_files

    def files(self, binary: bool) -> list[str]:
        """Every file of one format, relative to its folder."""
        names = [name for names in self.split_files(binary).values() for name in names]
        return [*names, self.names_file if binary else self.meta_file]


CIFAR10 = CIFARLayout(
    num_classes=10,
    pickle_folder="cifar-10-batches-py",
    label_key="labels",
    pickle_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    meta_file="batches.meta",
    names_key="label_names",
    binary_folder="cifar-10-batches-bin",
    label_bytes=1,
    names_file="batches.meta.txt",
    binary_files={
        "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        "test": ("test_batch.bin",),
    },
)

CIFAR100 = CIFARLayout(
    num_classes=100,
    pickle_folder="cifar-100-python",
    label_key="fine_labels",
    pickle_files={"train": ("train",), "test": ("test",)},
    meta_file="meta",
    names_key="fine_label_names",
    binary_folder="cifar-100-binary",
    label_bytes=2,
    names_file="fine_label_names.txt",
    binary_files={"train": ("train.bin",), "test": ("test.bin",)},
)


class CIFARDataModule(FileTensorDataModule):
    """CIFAR from ``root``; subclasses pick the :class:`CIFARLayout` and statistics."""

    layout: ClassVar[CIFARLayout]
    mean: ClassVar[tuple[float, float, float]]
    std: ClassVar[tuple[float, float, float]]
    source_size = (32, 32)
    default_transforms = {"train": "cifar_train", "eval": "cifar_eval"}

    def __init__(
        self, root: str = "data", download: bool = False, image_size: int = 32, **loader: Any
    ):
        super().__init__(root, download, image_size, **loader)

    def prepare_data(self) -> None:
        if self.download and self._find_format() is None:
            self._download()

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        folder, binary = self._located()
        if binary:
            path = folder / self.layout.names_file
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        else:
            path = folder / self.layout.meta_file
            names = list(load_pickle(path).get(self.layout.names_key, []))
        if len(names) != self.layout.num_classes:
            raise DataError(
                f"{path}: lists {len(names)} class names, expected {self.layout.num_classes}"
            )
        return tuple(str(name) for name in names)

    def load_sources(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        folder, binary = self._located()
        read = self._read_binary if binary else self._read_pickle
        sources = {}
        for split, names in self.layout.split_files(binary).items():
            parts = [read(folder / name) for name in names]
            sources[split] = (
                np.concatenate([images for images, _ in parts]),
                np.concatenate([labels for _, labels in parts]),
            )
        return sources

    def _read_pickle(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 [N, 32, 32, 3], labels int64 [N])`` of one pickled batch."""
        record = load_pickle(path)
        data, labels = record.get("data"), record.get(self.layout.label_key)
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != PIXELS
        ):
            found = (
                f"{data.dtype} {data.shape}"
                if isinstance(data, np.ndarray)
                else type(data).__name__
            )
            raise DataError(
                f"{path}: 'data' must be a uint8 array of shape [N, {PIXELS}], found {found}"
            )
        if labels is None or len(labels) != len(data):
            raise DataError(
                f"{path}: {len(data)} images but "
                f"{'no' if labels is None else len(labels)} '{self.layout.label_key}'"
            )
        return _to_images(data), self._checked_labels(path, np.asarray(labels, dtype=np.int64))

    def _read_binary(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of one binary batch: records of label byte(s) + 3,072 pixels."""
        record_size = self.layout.label_bytes + PIXELS
        try:
            raw = np.fromfile(path, dtype=np.uint8)
        except OSError as error:
            raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
        if raw.size == 0 or raw.size % record_size:
            raise DataError(
                f"{path}: {raw.size} bytes is not a whole number of {record_size}-byte "
                f"{self.layout.title} records",
                hint="the file is truncated or damaged",
            )
        records = raw.reshape(-1, record_size)
        labels = records[:, self.layout.label_bytes - 1].astype(np.int64)
        return _to_images(records[:, self.layout.label_bytes :]), self._checked_labels(path, labels)

    def _checked_labels(self, path: Path, labels: np.ndarray) -> np.ndarray:
        bad = np.flatnonzero((labels < 0) | (labels >= self.layout.num_classes))
        if len(bad):
            raise DataError(
                f"{path}: record {bad[0]} has label {labels[bad[0]]}, expected "
                f"0-{self.layout.num_classes - 1}"
            )
        return labels

    def _find_format(self) -> tuple[Path, bool] | None:
        """``(folder, binary)`` of the first complete format under root (python first)."""
        for binary in (False, True):
            layout = self.layout
            folder = self.root / (layout.binary_folder if binary else layout.pickle_folder)
            if all((folder / name).is_file() for name in self.layout.files(binary)):
                return folder, binary
        return None

    def _located(self) -> tuple[Path, bool]:
        found = self._find_format()
        if found is None:
            folder = self.root / self.layout.pickle_folder
            missing = [n for n in self.layout.files(False) if not (folder / n).is_file()]
            raise DataError(
                f"{self.layout.title} files not found: missing {', '.join(missing)} in {folder}",
                hint=f"pass download: true, or extract the python version "
                f"({self.layout.pickle_folder}/) or the binary version "
                f"({self.layout.binary_folder}/) into {self.root}/",
            )
        return found

    def _download(self) -> None:
        from torchvision import datasets
        from torchvision.datasets.utils import download_and_extract_archive

        source = getattr(datasets, self.layout.torchvision_class)
        try:
            download_and_extract_archive(
                source.url, self.root, filename=source.filename, md5=source.tgz_md5
            )
        except Exception as error:  # urllib, ssl, socket, checksum: all mean "not downloaded"
            raise DataError(
                f"downloading {self.layout.title} to {self.root} failed: {error}",
                hint=f"without a network, extract {source.filename} into {self.root}/",
            ) from None


def _to_images(rows: np.ndarray) -> np.ndarray:
    """``[N, 3072]`` channel-major rows -> uint8 ``[N, 32, 32, 3]``."""
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


@DATAMODULES.register("cifar10", batch=ImageClassificationBatch)
class CIFAR10DataModule(CIFARDataModule):
    """CIFAR-10: 32x32 RGB photos of 10 classes (50k train / 10k test)."""

    layout = CIFAR10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)


@DATAMODULES.register("cifar100", batch=ImageClassificationBatch)
class CIFAR100DataModule(CIFARDataModule):
    """CIFAR-100: 32x32 RGB photos of 100 fine classes (50k train / 10k test)."""

    layout = CIFAR100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
