"""Image-classification datamodules; each registers itself in ``visionflow.registry.DATAMODULES``.

    from visionflow.datamodules import CIFAR10DataModule
    dm = CIFAR10DataModule(root="data", batch_size=128)
    dm.prepare_data(); dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))   # ImageClassificationBatch

=================  ==========================  ============================================
name               class                       source
=================  ==========================  ============================================
``digits``         DigitsDataModule            scikit-learn's bundled 8x8 digits (offline)
``mnist``          MNISTDataModule             IDX files, torchvision or flat layout
``fashion_mnist``  FashionMNISTDataModule      IDX files; Debian's dataset-fashion-mnist
``cifar10``        CIFAR10DataModule           python pickles or binary batches
``cifar100``       CIFAR100DataModule          python pickles or binary batches
``image_folder``   ImageFolderDataModule       class subfolders of JPEG/PNG files
=================  ==========================  ============================================
"""

from visionflow.datamodules.base import VisionDataModule
from visionflow.datamodules.cifar import CIFAR10DataModule, CIFAR100DataModule
from visionflow.datamodules.digits import DigitsDataModule
from visionflow.datamodules.image_folder import ImageFolderDataModule
from visionflow.datamodules.mnist import FashionMNISTDataModule, MNISTDataModule
from visionflow.datamodules.tensor_data import TensorClassificationDataset, TensorDataModule

__all__ = [
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "TensorClassificationDataset",
    "TensorDataModule",
    "VisionDataModule",
]
