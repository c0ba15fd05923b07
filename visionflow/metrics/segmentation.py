"""Semantic segmentation scoring for the evaluation contract: mIoU, per-class IoU, pixel accuracy.

    evaluator = SegmentationEvaluator(num_classes=21)
    evaluator.process(predicted_labels, masks)   # per batch: [B, H, W] int class indices each
    evaluation = evaluator.evaluate()            # metrics mIoU, pixel_acc, mean_acc; details [K, K]

Everything comes from one integer confusion matrix over the pixels whose mask is not
``IGNORE_INDEX``, so shards, batches and their order cannot change the result. mIoU averages the
classes that occur in the masks or the predictions (a class absent from both has no IoU), as
torchmetrics' ``MulticlassJaccardIndex`` and mmsegmentation do.
"""

from __future__ import annotations

import torch

from visionflow.batches import IGNORE_INDEX
from visionflow.errors import DataError
from visionflow.evaluation import Evaluation
from visionflow.metrics.classification import confusion_counts


class SegmentationEvaluator:
    """Scores predicted label maps [B, H, W] against masks [B, H, W] (``ignore_index`` skipped)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self._confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self._images = 0

    def process(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        predicted = torch.as_tensor(predictions).to(torch.int64).cpu()
        masks = torch.as_tensor(targets).to(torch.int64).cpu()
        if predicted.shape != masks.shape:
            raise DataError(f"segmentation evaluator: predictions {tuple(predicted.shape)} and "
                            f"masks {tuple(masks.shape)} differ; both are [B, H, W] class indices")
        counted = masks != self.ignore_index
        truth, guess = masks[counted], predicted[counted]
        for name, values in (("mask", truth), ("prediction", guess)):
            if len(values) and (values.min() < 0 or values.max() >= self.num_classes):
                raise DataError(f"segmentation evaluator: a {name} label is outside "
                                f"0..{self.num_classes - 1} (and is not ignore_index "
                                f"{self.ignore_index})")
        self._confusion += confusion_counts(truth, guess, self.num_classes)
        self._images += int(masks.shape[0]) if masks.ndim == 3 else 1

    def evaluate(self) -> Evaluation:
        """``mIoU``, ``pixel_acc`` (all counted pixels), ``mean_acc`` (per-class recall averaged),
        and ``IoU/<class index>``; NaN where nothing was counted. ``details``: the confusion
        matrix [K, K], rows = true class."""
        confusion = self._confusion.double()
        true_pixels, predicted_pixels = confusion.sum(dim=1), confusion.sum(dim=0)
        hits = confusion.diagonal()
        union = true_pixels + predicted_pixels - hits
        iou = torch.where(union > 0, hits / union.clamp(min=1), torch.nan)
        recall = torch.where(true_pixels > 0, hits / true_pixels.clamp(min=1), torch.nan)
        total = confusion.sum()
        metrics = {"mIoU": _nanmean(iou),
                   "pixel_acc": float(hits.sum() / total) if total > 0 else float("nan"),
                   "mean_acc": _nanmean(recall),
                   **{f"IoU/{k}": float(value) for k, value in enumerate(iou)}}
        return Evaluation(metrics, self._images, self._confusion.clone())


def _nanmean(values: torch.Tensor) -> float:
    present = values[~values.isnan()]
    return float(present.mean()) if len(present) else float("nan")
