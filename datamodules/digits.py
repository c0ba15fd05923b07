"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 grayscale images, 10 classes, offline.

The demo dataset. Pixels (0-16) are scaled to uint8, then upsampled once, at setup, to
``image_size`` (32 by default, so LeNet-5 fits). The test split (``test_fraction``) is held out
first, stratified and fixed by ``seed``; val is held out of the rest, so changing
``val_fraction`` never moves an image into or out of test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules.base import check_fraction, holdout_split, square
from visionflow.datamodules.tensor_data import TensorDataModule
from visionflow.datamodules.transforms import TransformContext
from visionflow.registry import DATAMODULES

DIGITS_MEAN = (0.3053,)  # of the 8x8 pixels scaled to [0, 1]
DIGITS_STD = (0.3759,)


@DATAMODULES.register("digits", batch=ImageClassificationBatch)
class DigitsDataModule(TensorDataModule):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), upsampled to image_size."""

    default_transforms = {"train": "digits_train", "eval": "digits_eval"}

    def __init__(
        self,
        image_size: int = 32,
        test_fraction: float = 0.2,
        *,
        batch_size: int = 64,
        **loader: Any,
    ):
        check_fraction("test_fraction", test_fraction)
        context = TransformContext(
            mean=DIGITS_MEAN, std=DIGITS_STD, image_size=square(image_size), source_size=(8, 8)
        )
        super().__init__(context, batch_size=batch_size, **loader)
        self.test_fraction = test_fraction

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(digit) for digit in range(10))

    def load_sources(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]  # [N, 8, 8, 1]
        labels = digits.target.astype(np.int64)
        kept, test = holdout_split(labels, self.test_fraction, self.seed, salt=0)
        return {"train": (images[kept], labels[kept]), "test": (images[test], labels[test])}
