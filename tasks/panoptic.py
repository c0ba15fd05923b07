"""Panoptic segmentation: things from a Mask R-CNN head, stuff from a semantic FPN head (Panoptic
FPN), merged by :func:`merge_panoptic`.

    task = PanopticSegmentationTask(num_classes=5, thing_classes=[True, True, True, False, False])
    trainer.fit(task, datamodule)    # PanopticBatch(images [B, 3, H, W], targets)

Loss: the Mask R-CNN losses (RPN, box, class, mask) plus ``semantic_weight`` times the
cross-entropy of the stuff head (class 0 "any thing", then each stuff class; void ignored).
Validation and test merge the heads' outputs into panoptic id maps and score them with
:class:`PanopticEvaluator` (panopticapi's PQ, exact): ``val|test/PQ``, ``SQ``, ``RQ`` and their
``_things`` / ``_stuff`` variants, logged once per epoch over all processes' images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from visionflow.batches import IGNORE_INDEX, PanopticBatch, PanopticTarget
from visionflow.errors import SpecError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.panoptic_maps import PanopticEvaluator, PanopticImage
from visionflow.plots import save_figure
from visionflow.registry import TASKS
from visionflow.rundir import atomic_write_text
from visionflow.tasks.base import LabelledDataTask
from visionflow.tasks.detection import gather
from visionflow.tasks.nets.panoptic import PanopticFPN
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.panoptic_merge import merge_panoptic

SHOWN_SAMPLES = 4
PALETTE_SIZE = 20  # tab20: segments share a colour only 20 ids apart


@TASKS.register("panoptic_segmentation", batch=PanopticBatch)
class PanopticSegmentationTask(LabelledDataTask):
    """Panoptic FPN over ``num_classes`` labels, ``thing_classes[i]`` telling whether label ``i``
    is a thing; ``category_ids``: the dataset ids of the labels (default 1..num_classes)."""

    checkpoint_monitor = ("val/PQ", "max")

    def __init__(
        self,
        num_classes: int,
        thing_classes: Sequence[bool] = (),
        category_ids: Sequence[int] = (),
        backbone: str = "resnet18",
        semantic_weight: float = 1.0,
        score_threshold: float = 0.5,
        overlap_threshold: float = 0.5,
        stuff_area: int = 64,
        optimizer: OptimizerConfig = OptimizerConfig(name="adamw", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **data)
        self.save_hyperparameters()
        things = [bool(t) for t in thing_classes]
        if len(things) != num_classes or all(things) or not any(things):
            raise SpecError(
                f"thing_classes: one flag per class ({num_classes}) with at least one thing and "
                f"one stuff class, got {list(thing_classes)}"
            )
        self.category_ids = list(category_ids) or list(range(1, num_classes + 1))
        if len(self.category_ids) != num_classes:
            raise SpecError(f"category_ids: {len(self.category_ids)} ids for {num_classes} classes")
        if self.hparams.image_size is None:
            raise SpecError("image_size: the panoptic task needs the data's fixed [H, W]")
        self.thing_labels = [i for i, t in enumerate(things) if t]
        self.stuff_labels = [i for i, t in enumerate(things) if not t]
        # per dataset label: its R-CNN class (1..T, 0 for stuff) and its semantic class (0 thing)
        rcnn = torch.zeros(num_classes, dtype=torch.int64)
        semantic = torch.zeros(num_classes, dtype=torch.int64)
        for index, label in enumerate(self.thing_labels, start=1):
            rcnn[label] = index
        for index, label in enumerate(self.stuff_labels, start=1):
            semantic[label] = index
        self.register_buffer("rcnn_class", rcnn, persistent=False)
        self.register_buffer("semantic_class", semantic, persistent=False)
        self.net = PanopticFPN(
            len(self.thing_labels), len(self.stuff_labels), tuple(self.hparams.image_size), backbone
        )
        self.train_loss = MeanMetric()
        self._pairs: list[tuple[PanopticImage, PanopticImage]] = []
        self._samples: list[tuple[torch.Tensor, Any, Any]] = []  # image, true ids, predicted ids

    # ------------------------------------------------------------------------- training

    def training_step(self, batch: PanopticBatch, batch_idx: int) -> torch.Tensor:
        rcnn_targets = [self._rcnn_target(target) for target in batch.targets]
        semantic = torch.stack([self._semantic_target(target) for target in batch.targets])
        losses, _, logits = self.net(batch.images, rcnn_targets)
        semantic_loss = F.cross_entropy(logits, semantic, ignore_index=IGNORE_INDEX)
        loss = sum(losses.values()) + self.hparams.semantic_weight * semantic_loss
        self.train_loss.update(loss.detach(), weight=len(batch.images))
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        return loss

    def _rcnn_target(self, target: PanopticTarget) -> dict[str, torch.Tensor]:
        """torchvision's target of the thing segments still visible after augmentation."""
        from torchvision.ops import masks_to_boxes

        masks = target.segment_masks()
        keep = (self.rcnn_class[target.labels] > 0) & masks.flatten(1).any(dim=1)
        masks = masks[keep]
        boxes = masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0], device=masks.device)
        return {
            "boxes": boxes,
            "labels": self.rcnn_class[target.labels[keep]],
            "masks": masks.to(torch.uint8),
        }

    def _semantic_target(self, target: PanopticTarget) -> torch.Tensor:
        """int64 ``[H, W]``: 0 on things, ``1 + s`` on stuff class ``s``, ignore on void."""
        void = torch.tensor([IGNORE_INDEX], device=target.labels.device)
        return torch.cat([void, self.semantic_class[target.labels]])[target.segments]

    # ------------------------------------------------------------------------- inference

    def predict_panoptic(self, images: torch.Tensor) -> list[PanopticImage]:
        """Per image ``[B, 3, H, W]``: the merged id map ``[H, W]`` and its ``[(segment id,
        dataset category id)]``."""
        h = self.hparams
        _, detections, logits = self.net(images)
        stuff = logits.argmax(dim=1).cpu()
        results = []
        for detection, semantic in zip(detections, stuff):
            labels = torch.tensor(self.thing_labels)[detection["labels"].cpu() - 1]
            ids, segments = merge_panoptic(
                detection["masks"][:, 0].cpu() > 0.5,
                detection["scores"].cpu(),
                labels,
                torch.tensor([-1, *self.stuff_labels])[semantic],
                self.stuff_labels,
                score_threshold=h.score_threshold,
                overlap_threshold=h.overlap_threshold,
                stuff_area=h.stuff_area,
            )
            results.append(
                (ids.numpy(), [(s.id, self.category_ids[s.category_id]) for s in segments])
            )
        return results

    def _truth(self, target: PanopticTarget) -> PanopticImage:
        segments = [
            (k, self.category_ids[int(label)])
            for k, label in enumerate(target.labels.tolist(), start=1)
        ]
        return target.segments.cpu().numpy(), segments

    # --------------------------------------------------------------- evaluation contract

    def make_evaluator(self) -> PanopticEvaluator:
        return PanopticEvaluator(self.category_ids, self.class_names, self.hparams.thing_classes)

    def evaluation_step(
        self, batch: PanopticBatch
    ) -> tuple[list[PanopticImage], list[PanopticImage]]:
        """(predicted panoptic images, true ones), plain CPU data."""
        return self.predict_panoptic(batch.images), [self._truth(t) for t in batch.targets]

    def validation_step(self, batch: PanopticBatch, batch_idx: int) -> None:
        self._pairs.extend(zip(*self.evaluation_step(batch)))

    def test_step(self, batch: PanopticBatch, batch_idx: int) -> None:
        pairs = list(zip(*self.evaluation_step(batch)))
        self._pairs.extend(pairs)
        for image, (predicted, truth) in zip(batch.images, pairs):
            if len(self._samples) < SHOWN_SAMPLES:
                self._samples.append((image.detach().cpu(), truth[0], predicted[0]))

    def on_validation_epoch_start(self) -> None:
        self._pairs = []

    def on_test_epoch_start(self) -> None:
        self._pairs, self._samples = [], []

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def _score(self, stage: str) -> None:
        """PQ of the epoch's images over all ranks; logs ``<stage>/PQ`` etc."""
        pairs = gather(self._pairs)
        evaluator = self.make_evaluator()
        evaluator.process([p for p, _ in pairs], [t for _, t in pairs])
        evaluation: Evaluation = evaluator.evaluate()
        self.last_result = evaluation.details
        for name, value in evaluation.metrics.items():
            self.log(f"{stage}/{name}", value, sync_dist=True)
        self._pairs = []

    # ------------------------------------------------------------------------ artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After validate or test: the per-class PQ/SQ/RQ table (CSV) and panopticapi's
        summary lines of the last scored epoch."""
        result = getattr(self, "last_result", None)
        if stage not in ("validate", "test") or result is None:
            return []
        paths = self.save_evaluation(Evaluation({}, 0, result), directory)
        if stage == "test" and self._samples:
            paths.append(save_figure(self._sample_figure(), directory / "panoptic_samples.png"))
        return paths

    def _sample_figure(self):
        """image | ground truth | prediction rows; each segment its own colour, void white."""
        from visionflow.tasks.segmentation_plots import plot_samples

        def colors(ids: Any) -> torch.Tensor:
            ids = torch.as_tensor(ids)
            return torch.where(ids == 0, IGNORE_INDEX, (ids - 1) % PALETTE_SIZE)

        images, truths, predictions = zip(*self._samples)
        self._samples = []
        return plot_samples(
            torch.stack(images),
            torch.stack([colors(t) for t in truths]),
            torch.stack([colors(p) for p in predictions]),
            PALETTE_SIZE,
        )

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        result = evaluation.details
        rows = ["category_id,name,isthing,pq,sq,rq,tp,fp,fn"]
        things = dict(zip(self.category_ids, self.hparams.thing_classes))
        for category_id, row in sorted(result.per_class.items()):
            values = [f"{100 * float(row[k]):.2f}" for k in ("pq", "sq", "rq")]
            counts = [str(int(row[k])) for k in ("tp", "fp", "fn")]
            thing = int(things.get(category_id, False))
            rows.append(",".join([str(category_id), row["name"], str(thing), *values, *counts]))
        return [
            atomic_write_text(directory / "panoptic_per_class.csv", "\n".join(rows) + "\n"),
            atomic_write_text(directory / "panoptic_summary.txt", "\n".join(result.lines) + "\n"),
        ]
