"""MNIST and Fashion-MNIST from their IDX files (28x28 grayscale, 10 classes, 60k train/10k test).

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped or not) are looked for, in
order, in torchvision's layout ``root/MNIST/raw/`` (``root/FashionMNIST/raw/``), in ``root``
itself (a flat folder), and for Fashion-MNIST in ``/usr/share/datasets/fashion-mnist`` where
Debian's ``dataset-fashion-mnist`` package installs them. ``download: true`` fetches missing
files with torchvision's downloader. IDX is parsed here with numpy; every header field is checked
against the file's size.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules.tensor_data import FileTensorDataModule
from visionflow.errors import DataError
from visionflow.registry import DATAMODULES

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file (``.gz`` or raw) with ``ndim`` dimensions.

    Header: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then
    each dimension as a big-endian uint32; the data follows, C order.
    """
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path}: cannot read ({error})",
            hint="the file is damaged: delete it and fetch it again",
        ) from None
    header = 4 + 4 * ndim
    if len(data) < header or data[:2] != b"\0\0" or data[2] != IDX_UBYTE or data[3] != ndim:
        raise DataError(
            f"{path}: not an IDX file of {ndim}-d unsigned bytes (magic number "
            f"{data[:4].hex() or 'missing'}, expected 0000080{ndim})",
            hint="the file is damaged or is not an MNIST-style IDX file",
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise DataError(
            f"{path}: header promises {'x'.join(map(str, shape))} = "
            f"{int(np.prod(shape))} bytes of data but the file has "
            f"{len(data) - header}",
            hint="the file is truncated or damaged",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


class IDXDataModule(FileTensorDataModule):
    """MNIST-style data from IDX files; subclasses set the names, folders and statistics."""

    title: ClassVar[str]
    folder: ClassVar[str]  # torchvision's folder under root, e.g. "MNIST"
    system_folders: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]
    names: ClassVar[tuple[str, ...]]
    source_size = (28, 28)
    default_transforms = {"train": "mnist_train", "eval": "mnist_eval"}

    def __init__(
        self, root: str = "data", download: bool = False, image_size: int = 28, **loader: Any
    ):
        super().__init__(root, download, image_size, **loader)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.names

    def search_folders(self) -> list[Path]:
        """Where the files may be, in the order they are looked for."""
        return [self.root / self.folder / "raw", self.root, *map(Path, self.system_folders)]

    def prepare_data(self) -> None:
        if self.download and self._find_files() is None:
            self._download()

    def load_sources(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        files = self._find_files()
        if files is None:
            raise self._missing_files_error()
        return {
            split: self._read_split(files[images], files[labels])
            for split, (images, labels) in IDX_FILES.items()
        }

    def _read_split(self, images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
        if len(images) != len(labels):
            raise DataError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{len(labels)} labels",
                hint="the two files come from different sets",
            )
        if images.shape[1:] != (28, 28):
            raise DataError(
                f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28"
            )
        bad = np.flatnonzero(labels >= len(self.names))
        if len(bad):
            raise DataError(
                f"{labels_path}: record {bad[0]} has label {labels[bad[0]]}, "
                f"expected 0-{len(self.names) - 1}"
            )
        return images[..., None], labels.astype(np.int64)  # [N, 28, 28, 1], [N]

    def _find_files(self) -> dict[str, Path] | None:
        """``{name: path}`` of the four files from the first folder that has all of them."""
        for folder in self.search_folders():
            found = {name: _either(folder / name) for names in IDX_FILES.values() for name in names}
            if all(found.values()):
                return found
        return None

    def _missing_files_error(self) -> DataError:
        folder = self.root / self.folder / "raw"
        names = [name for names in IDX_FILES.values() for name in names]
        missing = [n for n in names if _either(folder / n) is None]
        searched = ", ".join(str(f) for f in self.search_folders())
        return DataError(
            f"{self.title} files not found: missing {', '.join(f'{n}[.gz]' for n in missing)} in "
            f"{folder} (also searched {searched})",
            hint=f"put the four IDX files (gzipped or not) in {folder}/ or flat in {self.root}/, "
            f"or pass download: true{self.install_hint}",
        )

    def _download(self) -> None:
        from torchvision import datasets
        from torchvision.datasets.utils import download_and_extract_archive

        source = getattr(datasets, self.folder)
        target = self.root / self.folder / "raw"
        try:
            for filename, md5 in source.resources:
                if _either(target / filename.removesuffix(".gz")) is None:
                    download_and_extract_archive(
                        source.mirrors[0] + filename, target, filename=filename, md5=md5
                    )
        except Exception as error:  # urllib, ssl, socket, checksum: all mean "not downloaded"
            raise DataError(
                f"downloading {self.title} to {target} failed: {error}",
                hint=f"without a network, copy the four files into {target}/{self.install_hint}",
            ) from None


def _either(path: Path) -> Path | None:
    """``path`` or ``path.gz``, whichever exists."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


@DATAMODULES.register("mnist", batch=ImageClassificationBatch)
class MNISTDataModule(IDXDataModule):
    """MNIST handwritten digits (28x28 grayscale, 60k train / 10k test) from IDX files."""

    title = "MNIST"
    folder = "MNIST"
    mean = (0.1307,)
    std = (0.3081,)
    names = tuple(str(digit) for digit in range(10))


@DATAMODULES.register("fashion_mnist", batch=ImageClassificationBatch)
class FashionMNISTDataModule(IDXDataModule):
    """Fashion-MNIST clothing images (28x28 grayscale, 60k train / 10k test) from IDX files."""

    title = "Fashion-MNIST"
    folder = "FashionMNIST"
    system_folders = ("/usr/share/datasets/fashion-mnist",)
    install_hint = (
        ", or `apt-get install dataset-fashion-mnist` (installs them in "
        "/usr/share/datasets/fashion-mnist, searched automatically)"
    )
    mean = (0.2860,)
    std = (0.3530,)
    names = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
