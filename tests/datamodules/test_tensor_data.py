"""The one-tensor fast path: execution plans, batched augmentation, samplers, seeds, splits."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from lightning.pytorch.utilities.data import _is_dataloader_shuffled, _update_dataloader
from torch.utils.data import DistributedSampler

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules.base import EpochShuffleSampler, holdout_split
from visionflow.datamodules.tensor_data import (
    BatchedFlip,
    BatchedRandomCrop,
    ExecutionPlan,
    TensorClassificationDataset,
    TensorDataModule,
)
from visionflow.datamodules.transforms import TransformContext
from visionflow.errors import SpecError

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def random_images(count: int, size: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, channels), np.uint8)


def cifar_like(size: int = 8, pad: int = 2) -> A.Compose:
    return A.Compose(
        [
            A.PadIfNeeded(size + 2 * pad, size + 2 * pad, border_mode=0, fill=0),
            A.RandomCrop(size, size),
            A.HorizontalFlip(p=0.5),
            A.Normalize(mean=MEAN, std=STD),
        ]
    )


class Synthetic(TensorDataModule):
    """A tensor datamodule over random 8x8 RGB images: 60 train, 20 test, 4 classes."""

    default_transforms = {
        "train": [
            {"name": "PadIfNeeded", "min_height": 12, "min_width": 12, "border_mode": 0},
            {"name": "RandomCrop", "height": 8, "width": 8},
            {"name": "HorizontalFlip"},
            "normalize",
        ],
        "eval": "normalize",
    }

    def __init__(
        self,
        batch_size: int = 16,
        seed: int = 0,
        val_fraction: float = 0.2,
        limit: int | None = None,
        transforms: dict | None = None,
        device: str = "cpu",
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__(
            TransformContext(mean=MEAN, std=STD, image_size=(8, 8), source_size=(8, 8)),
            batch_size=batch_size,
            seed=seed,
            val_fraction=val_fraction,
            limit=limit,
            transforms=transforms,
            device=device,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )

    class_names = ("a", "b", "c", "d")

    def load_sources(self):
        labels = np.arange(80) % 4
        images = random_images(80)
        return {"train": (images[:60], labels[:60]), "test": (images[60:], labels[60:])}


# ------------------------------------------------------------------------------------ plans


def test_crop_and_flip_are_batched_and_normalize_joins_the_cache():
    plan = ExecutionPlan.of(cifar_like())
    assert [type(t).__name__ for t in plan.cached] == ["PadIfNeeded", "Normalize"]
    assert plan.batched == (BatchedRandomCrop(8, 8), BatchedFlip(0.5, -1))
    assert plan.per_sample is None


@pytest.mark.parametrize(
    "transforms, cached, per_sample",
    [
        (
            [A.Resize(16, 16), A.ColorJitter(p=1), A.Normalize()],
            ["Resize"],
            ["ColorJitter", "Normalize"],
        ),
        ([A.RandomCrop(6, 6), A.Resize(8, 8)], [], ["RandomCrop", "Resize"]),  # resize after a crop
        (
            [A.Normalize(normalization="image"), A.HorizontalFlip()],
            ["Normalize"],
            [],
        ),  # first: fine
        (
            [A.HorizontalFlip(), A.Normalize(normalization="image")],
            [],
            ["HorizontalFlip", "Normalize"],
        ),
        ([A.Resize(8, 8, p=0.5)], [], ["Resize"]),  # random application
    ],
)
def test_anything_else_random_falls_back_to_per_sample(transforms, cached, per_sample):
    plan = ExecutionPlan.of(A.Compose(transforms))
    assert plan.describe()["cached"] == cached
    assert plan.describe()["per_sample"] == per_sample


def test_batched_augmentation_matches_albumentations_for_some_parameters():
    """Each output is a window of the cached padded image, flipped or not: what albumentations'
    pipeline gives for some crop offset and flip."""
    images = random_images(32)
    dataset = TensorClassificationDataset(images, np.zeros(32), cifar_like(), seed=3)
    batch = dataset.__getitems__(list(range(32)))
    assert batch.images.shape == (32, 3, 8, 8) and batch.images.dtype == torch.float32
    reference = A.Compose(
        [A.PadIfNeeded(12, 12, border_mode=0, fill=0), A.Normalize(mean=MEAN, std=STD)]
    )
    choices = set()
    for image, out in zip(images, batch.images):
        padded = torch.from_numpy(reference(image=image)["image"]).permute(2, 0, 1)
        matches = [
            (top, left, flip)
            for top in range(5)
            for left in range(5)
            for flip in (False, True)
            if torch.equal(
                out,
                (lambda w: w.flip(-1) if flip else w)(padded[:, top : top + 8, left : left + 8]),
            )
        ]
        assert matches, "a batched sample is no crop/flip of its padded image"
        choices.add(matches[0])
    assert len(choices) > 5  # offsets and flips vary within the batch


def test_per_sample_fallback_gives_float_chw_batches_reproducibly():
    pipeline = A.Compose([A.Resize(10, 10), A.ColorJitter(p=1), A.Normalize(mean=MEAN, std=STD)])
    batches = [
        TensorClassificationDataset(random_images(6), np.arange(6), pipeline, seed=1).__getitems__(
            [0, 3, 5]
        )
        for _ in range(2)
    ]
    assert batches[0].images.shape == (3, 3, 10, 10)
    assert batches[0].images.dtype == torch.float32
    assert torch.equal(batches[0].images, batches[1].images)
    assert batches[0].targets.tolist() == [0, 3, 5]


# ----------------------------------------------------------------------------- dataloaders


def test_loaders_never_call_getitem(monkeypatch):
    dm = Synthetic()
    dm.setup()
    calls = {"getitems": 0}
    original = TensorClassificationDataset.__getitems__

    def counting(self, indices):
        calls["getitems"] += 1
        return original(self, indices)

    def refuse(self, index):
        raise AssertionError("per-sample __getitem__ called in the hot path")

    monkeypatch.setattr(TensorClassificationDataset, "__getitem__", refuse)
    monkeypatch.setattr(TensorClassificationDataset, "__getitems__", counting)
    loaders = [
        dm.train_dataloader(),
        dm.val_dataloader(),
        dm.test_dataloader(),
        dm.predict_dataloader(),
    ]
    batches = [batch for loader in loaders for batch in loader]
    assert calls["getitems"] == len(batches) == sum(len(loader) for loader in loaders)
    assert all(type(b) is ImageClassificationBatch for b in batches)


def test_a_batch_already_on_the_device_is_not_walked_again(monkeypatch):
    from lightning.pytorch import LightningDataModule

    dm = Synthetic()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    monkeypatch.setattr(
        LightningDataModule,
        "transfer_batch_to_device",
        lambda *a: pytest.fail("Lightning's generic transfer ran"),
    )
    assert dm.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = []
    monkeypatch.setattr(
        LightningDataModule,
        "transfer_batch_to_device",
        lambda self, b, device, index: moved.append(device) or b,
    )
    dm.transfer_batch_to_device(batch, torch.device("meta"), 0)  # elsewhere: Lightning moves it
    assert moved == [torch.device("meta")]


def test_batch_shapes_dtypes_and_sizes():
    dm = Synthetic()
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert [len(b) for b in batches] == [16, 16, 16]  # 60 train - 12 val = 48
    assert batches[0].images.shape == (16, 3, 8, 8)
    assert batches[0].images.dtype == torch.float32 and batches[0].targets.dtype == torch.int64
    assert sum(len(b) for b in dm.val_dataloader()) == 12
    assert dm.info.image_size == (8, 8) and dm.info.in_channels == 3


def test_lightning_sees_a_shuffled_train_loader_and_can_shard_it_for_ddp(monkeypatch):
    dm = Synthetic(batch_size=8)
    dm.setup("fit")
    train = dm.train_dataloader()
    assert _is_dataloader_shuffled(train) and not _is_dataloader_shuffled(dm.val_dataloader())
    served: list[list[int]] = []
    original = TensorClassificationDataset.__getitems__

    def recording(self, indices):
        served.append(list(indices))
        return original(self, indices)

    monkeypatch.setattr(TensorClassificationDataset, "__getitems__", recording)
    shards = []
    for rank in (0, 1):  # what Lightning does for each of 2 DDP ranks
        sampler = DistributedSampler(train.dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = _update_dataloader(train, sampler)
        assert loader.collate_fn is train.collate_fn and loader.batch_size == 8
        batches = list(loader)
        assert [len(b) for b in batches] == [8, 8, 8]
        assert all(type(b) is ImageClassificationBatch for b in batches)
        shards.append({i for indices in served[-3:] for i in indices})
    assert shards[0].isdisjoint(shards[1]) and shards[0] | shards[1] == set(range(48))


def first_epoch(dm: Synthetic) -> ImageClassificationBatch:
    return next(iter(dm.train_dataloader()))


def test_same_seed_same_batches_other_seed_or_epoch_other_batches():
    a, b, c = Synthetic(seed=5), Synthetic(seed=5), Synthetic(seed=6)
    first = first_epoch(a)
    assert torch.equal(first.images, first_epoch(b).images)
    assert torch.equal(first.targets, first_epoch(b).targets)
    assert not torch.equal(first.images, first_epoch(c).images)
    loader = a.train_dataloader()
    loader.sampler.set_epoch(1)
    second = next(iter(loader))
    assert not torch.equal(first.images, second.images)
    loader.sampler.set_epoch(0)
    assert torch.equal(first.images, next(iter(loader)).images)  # resumable by epoch


def test_shuffle_sampler_advances_its_epoch_without_lightning():
    sampler = EpochShuffleSampler(range(50), seed=0)
    epochs = [list(sampler) for _ in range(3)]
    assert sorted(epochs[0]) == list(range(50))
    assert epochs[0] != epochs[1] != epochs[2]
    sampler.set_epoch(1)
    assert list(sampler) == epochs[1]


def test_workers_serve_whole_batches():
    dm = Synthetic(num_workers=1)
    batches = list(dm.val_dataloader())
    assert [len(b) for b in batches] == [12] and batches[0].images.shape == (12, 3, 8, 8)


def test_limit_caps_each_split_stratified():
    dm = Synthetic(limit=8)
    dm.setup()
    for split in ("train", "val", "test"):
        dataset = dm.dataset(split)
        assert len(dataset) == 8
        assert sorted(dataset.targets.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"batch_size": 0}, "batch_size: must be >= 1"),
        ({"val_fraction": 1.0}, r"val_fraction: must be in \[0, 1\)"),
        ({"limit": 0}, "limit: must be >= 1"),
        ({"device": "gpu0"}, "device: 'gpu0' is not a torch device"),
        ({"num_workers": -1}, "num_workers: must be >= 0"),
        (
            {"transforms": {"train": [{"name": "RandomCrop", "height": 9, "width": 9}]}},
            "transforms.train: the pipeline fails on a 8x8 image",
        ),
    ],
)
def test_bad_common_arguments_fail_at_construction(arguments, message):
    with pytest.raises(SpecError, match=message):
        Synthetic(**arguments)


def test_cuda_without_a_gpu_is_a_spec_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    dm = Synthetic(device="cuda")
    with pytest.raises(SpecError, match="CUDA is not available"):
        dm.setup("fit")


@pytest.mark.gpu
def test_cuda_keeps_the_split_and_its_batches_on_the_gpu():
    dm = Synthetic(device="cuda")
    dm.setup("fit")
    assert dm.dataset("train").images.is_cuda
    batch = first_epoch(dm)
    assert batch.images.is_cuda and batch.targets.is_cuda and batch.images.shape == (16, 3, 8, 8)
    cpu = first_epoch(Synthetic())
    assert torch.allclose(batch.images.cpu(), cpu.images)  # same augmentation on both devices


@pytest.mark.gpu
def test_pin_memory_pins_plain_batches():
    batch = next(iter(Synthetic(pin_memory=True).train_dataloader()))
    assert type(batch) is ImageClassificationBatch and batch.images.is_pinned()


# ---------------------------------------------------------------------------------- splits


def test_holdout_split_is_exact_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(5), [40, 30, 20, 8, 2])
    kept, held = holdout_split(labels, 0.25, seed=0)
    assert len(held) == 25 and len(kept) == 75
    assert np.intersect1d(kept, held).size == 0
    per_class = np.bincount(labels[held], minlength=5)
    assert np.abs(per_class - 0.25 * np.array([40, 30, 20, 8, 2])).max() <= 1
    assert np.array_equal(held, holdout_split(labels, 0.25, seed=0)[1])
    assert not np.array_equal(held, holdout_split(labels, 0.25, seed=1)[1])
    assert not np.array_equal(held, holdout_split(labels, 0.25, seed=0, salt=1)[1])


def test_holdout_split_keeps_at_least_one_on_each_side():
    labels = np.arange(5)
    assert len(holdout_split(labels, 0.05, seed=0)[1]) == 1
    assert len(holdout_split(labels, 0.99, seed=0)[0]) == 1
    assert len(holdout_split(labels, 0.0, seed=0)[1]) == 0
