"""Object detection: a torchvision detector trained on ``DetectionBatch``, scored with COCO mAP.

    task = ObjectDetectionTask(num_classes=3, net="fasterrcnn_mobilenet_v3_large_fpn",
                               net_args={"min_size": 128, "max_size": 128}, category_ids=[1, 2, 3])
    trainer.fit(task, datamodule)   # batches: DetectionBatch(images [C, H, W] list, targets)

Training sums the detector's losses. Logged: ``train/loss`` and ``train/<each loss>`` (e.g.
``train/loss_classifier``) as epoch means, ``train/loss_step`` each step (loggers only). Validation
and test run inference and feed the COCO evaluator with a ground truth built from the batches'
targets (boxes become COCO XYWH there, labels become ``category_ids``; crowd regions are ignored,
as in COCO); at epoch end they log ``val/mAP val/AP50 val/AP75 val/APs val/APm val/APl val/AR100``
(``test/...`` likewise). Prediction writes the COCO results file ``predictions_file`` (relative to
the trainer's ``default_root_dir``). After test or predict, ``save_artifacts(stage, dir)`` draws
predicted boxes on up to ``overlay_images`` images. Nothing in a training step waits for the GPU
beyond what torchvision's detectors do themselves (tests/pipelines/test_host_reads.py).

Contiguous labels ``0..K-1`` are the detector's labels ``1..K`` (0 is its background). With a
fixed data ``image_size`` the detector resizes to it (not to torchvision's 800 px) unless
``net_args`` sets ``min_size``/``max_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from visionflow.batches import DetectionBatch
from visionflow.errors import RunError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.detection import DetectionEvaluator, ground_truth_entry
from visionflow.registry import TASKS
from visionflow.rundir import atomic_write_json
from visionflow.tasks.base import EpochScoring, LabelledDataTask, LateFiniteCheck, gather
from visionflow.tasks.detection_io import (
    check_task_arguments,
    compact,
    detector_args,
    from_model_output,
    to_model_target,
    without_crowds,
)
from visionflow.tasks.nets.detectors import build_detector
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig


@TASKS.register("object_detection", batch=DetectionBatch)
class ObjectDetectionTask(EpochScoring, LabelledDataTask):
    """Detect objects of ``num_classes`` classes with a torchvision detector (``net``).

    ``net_args`` configure it (weights, anchors, thresholds, sizes: see
    :mod:`visionflow.tasks.nets.detectors`); ``category_ids`` are the dataset ids of the labels
    (default: the labels themselves). ``freeze_backbone`` trains everything but the backbone
    (feature extractor and FPN), whose batch-norm statistics stay fixed.
    ``optimizer`` and ``scheduler``: see :mod:`visionflow.tasks.optim`; ``in_channels``,
    ``image_size``, ``class_names``: see :class:`LabelledDataTask`.
    """

    checkpoint_monitor = ("val/mAP", "max")
    #: what the net predicts beyond boxes (its ``predicts`` tag), which the targets then carry
    predicts: ClassVar[str | None] = None
    #: the COCO iou types that validation and test score
    iou_types: ClassVar[tuple[str, ...]] = ("bbox",)

    def __init__(
        self,
        num_classes: int,
        category_ids: list[int] | None = None,
        net: str = "fasterrcnn_mobilenet_v3_large_fpn",
        net_args: dict[str, Any] | None = None,
        optimizer: OptimizerConfig = OptimizerConfig(weight_decay=1e-4),
        scheduler: SchedulerConfig = SchedulerConfig(),
        freeze_backbone: bool = False,
        overlay_images: int = 4,
        overlay_score: float = 0.3,
        predictions_file: str = "predictions.json",
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **data)
        self.save_hyperparameters()
        check_task_arguments(self.hparams)
        self.category_ids = list(category_ids or range(num_classes))
        image_size = self.hparams.image_size
        self.model = build_detector(
            net,
            num_classes=num_classes + 1,
            **detector_args(net, net_args, image_size, self.restoring_checkpoint, self.predicts),
            **self.net_settings(),
        )
        if freeze_backbone:
            self.model.backbone.requires_grad_(False)
        self.reset_epoch()
        self._samples: list[dict[str, torch.Tensor]] = []
        self._loss_check = LateFiniteCheck()
        self.predictions_path: Path | None = None

    def net_settings(self) -> dict[str, Any]:
        """Arguments of :func:`build_detector` that the task sets from its own (none here)."""
        return {}

    def skeleton(self) -> list[tuple[int, int]]:
        """Pairs of keypoint indices (0-based) that overlays join (none here)."""
        return []

    def train(self, mode: bool = True) -> ObjectDetectionTask:
        super().train(mode)
        if mode and self.hparams.freeze_backbone:
            self.model.backbone.eval()
        return self

    # ------------------------------------------------------------------------------- steps

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections per image: ``boxes`` [N, 4] XYXY pixels, ``scores`` [N], ``labels`` [N]
        (contiguous ``0..K-1``) and what the net predicts besides (``masks`` bool [N, H, W]), for
        images ``[C, H, W]`` in ``[0, 1]`` (eval mode)."""
        return [from_model_output(output) for output in self.model(images)]

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training drops crowd regions here, on the host: selecting them on the GPU (a boolean
        mask) would wait for it every step."""
        if self.trainer.training and isinstance(batch, DetectionBatch):
            return DetectionBatch(batch.images, [without_crowds(t) for t in batch.targets])
        return batch

    def training_step(self, batch: DetectionBatch, batch_idx: int) -> torch.Tensor:
        fields = () if self.predicts is None else (self.predicts,)
        losses = self.model(batch.images, [to_model_target(t, fields) for t in batch.targets])
        loss = sum(losses.values())
        self._check_finite(losses)
        self._log_losses(loss, losses, len(batch))
        return loss

    def _log_losses(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], size: int) -> None:
        """Epoch means (averaged over processes once an epoch) for the loggers and the progress
        bar, and the step's loss for the loggers alone: Lightning turns a progress-bar value into
        a Python number after every step, which would wait for the GPU each time."""
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=size)
        for name, value in {"loss": loss, **losses}.items():
            self.log(
                f"train/{name}",
                value,
                on_step=False,
                on_epoch=True,
                sync_dist=True,
                prog_bar=name == "loss",
                batch_size=size,
            )

    def _check_finite(self, losses: dict[str, torch.Tensor] | None) -> None:
        """Raise RunError if a loss of the step before was NaN or infinite, and queue this step's
        for the next call: read one step late through a :class:`DeviceReadback`, the check never
        waits for the GPU (the fit's last step is checked at the end of its epoch)."""
        bad = self._loss_check.pop_non_finite()
        if losses is not None:
            values = torch.stack([v.float() for v in losses.values()])
            self._loss_check.queue(values, context=(self.global_step, list(losses)))
        if bad is not None:
            (step, names), values = bad
            raise RunError(
                f"the detection loss is {sum(values)} at step {step} "
                f"({ {name: round(value, 4) for name, value in zip(names, values)} })",
                hint="lower optimizer.lr or raise scheduler.warmup_epochs",
            )

    def on_train_epoch_end(self) -> None:
        self._check_finite(None)

    def test_step(self, batch: DetectionBatch, batch_idx: int) -> None:
        detections = [compact(d) for d in self._detect(batch, keep_samples=True)]
        self.keep_pairs(detections, self._ground_truth_entries(batch))

    def predict_step(self, batch: DetectionBatch, batch_idx: int) -> list[dict[str, Any]]:
        """COCO result dicts (XYWH boxes, dataset category ids, masks as RLE, keypoints) of the
        batch's images."""
        detections = self._detect(batch, keep_samples=True)
        evaluator = self.make_evaluator()
        results = [
            result
            for target, detection in zip(batch.targets, detections)
            for result in evaluator.results_of(detection, target.image_id)
        ]
        self._predictions.extend(results)
        return results

    def _detect(self, batch: DetectionBatch, keep_samples: bool) -> list[dict[str, torch.Tensor]]:
        detections = [{k: v.detach().cpu() for k, v in d.items()} for d in self(batch.images)]
        if keep_samples:
            self._keep_samples(batch, detections)
        return detections

    def _ground_truth_entries(self, batch: DetectionBatch) -> list[dict[str, Any]]:
        masks, keypoints = "segm" in self.iou_types, "keypoints" in self.iou_types
        return [
            ground_truth_entry(target, image.shape[-2:], self.category_ids, masks, keypoints)
            for image, target in zip(batch.images, batch.targets)
        ]

    # ------------------------------------------------------------- evaluation contract

    def make_evaluator(self) -> DetectionEvaluator:
        """COCO mAP of ``iou_types`` against the batches' targets (:mod:`visionflow.evaluation`)."""
        return DetectionEvaluator(self.category_ids, self.class_names, self.iou_types)

    def evaluation_step(
        self, batch: DetectionBatch
    ) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, Any]]]:
        """(per-image detections on CPU, their COCO ground-truth entries)."""
        detections = [compact(d) for d in self._detect(batch, keep_samples=False)]
        return detections, self._ground_truth_entries(batch)

    def _keep_samples(
        self, batch: DetectionBatch, detections: list[dict[str, torch.Tensor]]
    ) -> None:
        for image, target, detection in zip(batch.images, batch.targets, detections):
            if len(self._samples) >= self.hparams.overlay_images:
                return
            confident = detection["scores"] >= self.hparams.overlay_score
            self._samples.append(
                {
                    "image": image.detach().cpu(),
                    "truth": target.boxes.cpu(),
                    "truth_labels": target.labels.cpu(),
                    **{
                        f"truth_{name}": value.cpu()
                        for name in ("masks", "keypoints")
                        if (value := getattr(target, name)) is not None
                    },
                    **{k: v[confident] for k, v in detection.items()},
                }
            )

    # ---------------------------------------------------------------------- epoch boundaries

    def reset_epoch(self) -> None:
        """Forget the last epoch's pairs (:class:`EpochScoring`) and COCO results (predict)."""
        super().reset_epoch()
        self._predictions: list[dict[str, Any]] = []

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._samples = []

    def on_predict_epoch_start(self) -> None:
        self.reset_epoch()
        self._samples = []

    def on_predict_epoch_end(self) -> None:
        results = gather(self._predictions)
        self.predictions_path = Path(self.trainer.default_root_dir) / self.hparams.predictions_file
        if self.trainer.is_global_zero:
            atomic_write_json(self.predictions_path, results)
        self.reset_epoch()

    # --------------------------------------------------------------------------- artifacts

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        """The ``evaluate`` stage's PR curves, confusion matrix and TIDE breakdown (PNG)."""
        from visionflow.tasks.detection_plots import plot_results

        return plot_results(evaluation.details, directory)

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """PNG overlays of the samples kept by the last test or predict epoch (ground truth and
        predictions in two colours, captioned), and after a test the evaluation's plots."""
        from visionflow.tasks.detection_plots import save_detection_artifacts

        paths = save_detection_artifacts(
            stage, directory, self._samples, self.class_names, self.last_result, self.skeleton()
        )
        self._samples = []
        return paths
