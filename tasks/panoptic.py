"""Panoptic segmentation: things from a Mask R-CNN head, stuff from a semantic FPN head (Panoptic
FPN), merged by :func:`merge_panoptic`.

    task = PanopticSegmentationTask(num_classes=5, thing_classes=[True, True, True, False, False])
    trainer.fit(task, datamodule)    # PanopticBatch(images [B, 3, H, W], targets)

Loss: the Mask R-CNN losses (RPN, box, class, mask) plus ``semantic_weight`` times the
cross-entropy of the stuff head (class 0 "any thing", then each stuff class; void ignored).
Validation and test merge the heads' outputs into panoptic id maps and score them with
:class:`PanopticEvaluator` (panopticapi's PQ, exact): ``val|test/PQ``, ``SQ``, ``RQ`` and their
``_things`` / ``_stuff`` variants, logged once per epoch over all processes' images
(:class:`~visionflow.tasks.base.EpochScoring`). A training step reads nothing back from the
device: the thing instances it trains on are picked on the host, before the batch's transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from visionflow.batches import IGNORE_INDEX, PanopticBatch, PanopticTarget
from visionflow.errors import SpecError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.panoptic_maps import PanopticEvaluator, PanopticImage
from visionflow.plots import save_figure
from visionflow.registry import TASKS
from visionflow.rundir import atomic_write_text
from visionflow.tasks.base import EpochScoring, LabelledDataTask
from visionflow.tasks.nets.panoptic import PanopticFPN
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.panoptic_merge import merge_panoptic

SHOWN_SAMPLES = 4


@dataclass
class ThingsBatch(PanopticBatch):
    """A training :class:`PanopticBatch` whose images' thing instances were picked on the host:
    per image ``things[i]`` holds ``ids`` int64 ``[M]`` (visible thing segments of
    ``targets[i].segments``), ``boxes`` float32 ``[M, 4]`` (XYXY, pixel edges) and ``labels`` int64
    ``[M]`` (the R-CNN classes 1..T)."""

    things: list[dict[str, torch.Tensor]] = field(default_factory=list)


@TASKS.register("panoptic_segmentation", batch=PanopticBatch)
class PanopticSegmentationTask(EpochScoring, LabelledDataTask):
    """Panoptic FPN over ``num_classes`` labels, ``thing_classes[i]`` telling whether label ``i``
    is a thing; ``category_ids``: the dataset ids of the labels (default 1..num_classes);
    ``detector``: the detection family's Mask R-CNN entry that finds the things (or its backbone:
    ``resnet18`` means ``maskrcnn_resnet18_fpn``)."""

    checkpoint_monitor = ("val/PQ", "max")

    def __init__(
        self,
        num_classes: int,
        thing_classes: Sequence[bool] = (),
        category_ids: Sequence[int] = (),
        detector: str = "maskrcnn_resnet18_fpn",
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
        # per dataset label: its R-CNN class (1..T, 0 for stuff; read on the host) and its
        # semantic class (0 for things; a buffer on the device)
        self.rcnn_class = torch.zeros(num_classes, dtype=torch.int64)
        semantic = torch.zeros(num_classes, dtype=torch.int64)
        for index, label in enumerate(self.thing_labels, start=1):
            self.rcnn_class[label] = index
        for index, label in enumerate(self.stuff_labels, start=1):
            semantic[label] = index
        self.register_buffer("semantic_class", semantic, persistent=False)
        self.net = PanopticFPN(
            len(self.thing_labels), len(self.stuff_labels), tuple(self.hparams.image_size), detector
        )
        self.reset_epoch()
        self._samples: list[tuple[torch.Tensor, Any, Any]] = []  # image, true, predicted panoptic

    # ------------------------------------------------------------------------- training

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training picks the thing instances here, on the host: selecting them on the GPU (a
        boolean mask, boxes of masks) would wait for it every step."""
        if self.trainer.training and isinstance(batch, PanopticBatch):
            return self.with_things(batch)
        return batch

    def with_things(self, batch: PanopticBatch) -> ThingsBatch:
        """``batch`` with the thing instances of its host targets (:class:`ThingsBatch`)."""
        return ThingsBatch(batch.images, batch.targets, [self._things(t) for t in batch.targets])

    def _things(self, target: PanopticTarget) -> dict[str, torch.Tensor]:
        """The thing segments still visible after augmentation: ids, boxes and R-CNN labels."""
        from torchvision.ops import masks_to_boxes

        masks = target.segment_masks()
        rcnn = self.rcnn_class.to(target.labels.device)[target.labels]
        keep = torch.nonzero((rcnn > 0) & masks.flatten(1).any(dim=1))[:, 0]
        boxes = masks_to_boxes(masks[keep])
        return {
            "ids": keep + 1,
            "boxes": boxes + boxes.new_tensor([0, 0, 1, 1]),
            "labels": rcnn[keep],
        }

    def training_step(self, batch: PanopticBatch, batch_idx: int) -> torch.Tensor:
        if not isinstance(batch, ThingsBatch):  # called outside a Trainer
            batch = self.with_things(batch)
        rcnn_targets = [
            self._rcnn_target(target, things) for target, things in zip(batch.targets, batch.things)
        ]
        semantic = torch.stack([self._semantic_target(target) for target in batch.targets])
        losses, _, logits = self.net(batch.images, rcnn_targets)
        semantic_loss = F.cross_entropy(logits, semantic, ignore_index=IGNORE_INDEX)
        loss = sum(losses.values()) + self.hparams.semantic_weight * semantic_loss
        self.log(
            "train/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(batch)
        )
        return loss

    @staticmethod
    def _rcnn_target(
        target: PanopticTarget, things: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """torchvision's target of the picked ``things`` (:meth:`with_things`)."""
        masks = target.segments.unsqueeze(0) == things["ids"][:, None, None]
        return {
            "boxes": things["boxes"],
            "labels": things["labels"],
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

    def test_step(self, batch: PanopticBatch, batch_idx: int) -> None:
        predictions, truths = self.evaluation_step(batch)
        self.keep_pairs(predictions, truths)
        for image, predicted, truth in zip(batch.images, predictions, truths):
            if len(self._samples) < SHOWN_SAMPLES:
                self._samples.append((image.detach().cpu(), truth, predicted))

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._samples = []

    # ------------------------------------------------------------------------ artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After validate or test: the per-class PQ/SQ/RQ table (CSV) and panopticapi's
        summary lines of the last scored epoch."""
        result = self.last_result
        if stage not in ("validate", "test") or result is None:
            return []
        paths = self.save_evaluation(Evaluation({}, 0, result), directory)
        if stage == "test" and self._samples:
            paths.append(save_figure(self._sample_figure(), directory / "panoptic_samples.png"))
        return paths

    def _sample_figure(self):
        """image | ground truth | prediction rows, each pixel in its class's colour (the same in
        both columns, so they compare at a glance), void white."""
        from visionflow.tasks.segmentation_plots import plot_samples

        label_of = {category: label for label, category in enumerate(self.category_ids)}

        def class_map(panoptic: Any) -> torch.Tensor:
            ids, segments = torch.as_tensor(panoptic[0]), panoptic[1]
            labels = torch.full_like(ids, IGNORE_INDEX)
            for segment, category in segments:
                labels[ids == segment] = label_of[category]
            return labels

        images, truths, predictions = zip(*self._samples)
        self._samples = []
        return plot_samples(
            torch.stack(images),
            torch.stack([class_map(t) for t in truths]),
            torch.stack([class_map(p) for p in predictions]),
            self.hparams.num_classes,
        )

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        """``panoptic_per_class.csv`` (pq, sq, rq x100 and tp, fp, fn a category; the scores of a
        category in no image, true or predicted, are empty: undefined, as panopticapi leaves it
        out of every average, where the engine gives -1) and ``panoptic_summary.txt``."""
        result = evaluation.details
        rows = ["category_id,name,isthing,pq,sq,rq,tp,fp,fn"]
        things = dict(zip(self.category_ids, self.hparams.thing_classes))
        for category_id, row in sorted(result.per_class.items()):
            counts = [str(int(row[k])) for k in ("tp", "fp", "fn")]
            seen = any(int(row[k]) for k in ("tp", "fp", "fn"))
            values = [f"{100 * float(row[k]):.2f}" if seen else "" for k in ("pq", "sq", "rq")]
            thing = int(things.get(category_id, False))
            rows.append(",".join([str(category_id), row["name"], str(thing), *values, *counts]))
        return [
            atomic_write_text(directory / "panoptic_per_class.csv", "\n".join(rows) + "\n"),
            atomic_write_text(directory / "panoptic_summary.txt", "\n".join(result.lines) + "\n"),
        ]
