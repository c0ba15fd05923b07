"""On a GPU: training steps never wait for the device, and bf16 + channels_last train."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from visionflow.batches import ImageClassificationBatch
from visionflow.tasks import ImageClassificationTask

pytestmark = pytest.mark.gpu


class SyncCheckedTask(ImageClassificationTask):
    """Raises if anything in training_step (forward, loss, metrics, logging) syncs with the GPU."""

    def training_step(self, batch, batch_idx):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return super().training_step(batch, batch_idx)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("num_classes", [4, 10])
def test_training_step_never_synchronizes(num_classes):
    generator = torch.Generator().manual_seed(0)

    def batch() -> ImageClassificationBatch:
        return ImageClassificationBatch(
            torch.randn(32, 3, 32, 32, generator=generator).cuda(),
            torch.randint(0, num_classes, (32,), generator=generator).cuda(),
        )

    batches = [batch() for _ in range(3)]
    task = SyncCheckedTask(
        num_classes=num_classes,
        image_size=[32, 32],
        net="resnet18",
        net_args={"small_input": True},
        channels_last=True,
        warmup_epochs=1,
    )
    trainer = Trainer(
        accelerator="gpu",
        devices=1,
        max_epochs=2,
        precision="bf16-mixed",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(batches, batch_size=None)
    trainer.fit(task, loader, loader)
    assert trainer.global_step == 6
    assert {"train/loss", "train/acc", "val/acc"} <= trainer.callback_metrics.keys()
    results = trainer.test(task, loader, verbose=False)[0]
    assert 0.0 <= results["test/acc"] <= 1.0
    assert int(task.test_confusion_matrix.sum()) == 96
