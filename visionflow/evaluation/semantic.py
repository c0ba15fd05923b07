"""Semantic segmentation scoring on hotcoco's ``SemanticEval``: mIoU, per-class IoU, pixel accuracy.

    evaluator = SegmentationEvaluator(num_classes=21)
    evaluator.process(predicted_labels, masks)   # per batch: [B, H, W] int class indices each
    evaluation = evaluator.evaluate()            # mIoU, fwIoU, pixel_acc, mean_acc; details [K, K]

    evaluation = evaluate_label_folders("annotations/val", "predictions/", num_classes=150)

Everything comes from one integer confusion matrix over the pixels whose mask is not
``ignore_index``, so shards, batches and their order cannot change the result. mIoU averages the
classes that occur in the masks or the predictions (a class absent from both has no IoU), as
torchmetrics' ``MulticlassJaccardIndex`` and mmsegmentation do. Labels are checked here first:
the engine never sees a map of the wrong shape or a label outside ``0..K-1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionflow.batches import IGNORE_INDEX
from visionflow.errors import DataError
from visionflow.evaluation import Evaluation


class SegmentationEvaluator:
    """Scores predicted label maps [B, H, W] against masks [B, H, W] (``ignore_index`` skipped)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        import hotcoco.semantic

        # the engine skips a label of its own, one no class has: it takes no negative label,
        # and ignore_index may be one (-100 is PyTorch's cross-entropy default)
        self._engine = hotcoco.semantic.SemanticEval(
            self.num_classes, ignore_index=self.num_classes
        )
        self._images = 0

    def process(
        self, predictions: Any, targets: Any, where: str = "segmentation evaluator"
    ) -> None:
        predicted, masks = _labels(predictions), _labels(targets)
        if predicted.shape != masks.shape:
            raise DataError(
                f"{where}: predictions {tuple(predicted.shape)} and masks {tuple(masks.shape)} "
                "differ; both are [B, H, W] class indices"
            )
        counted = masks != self.ignore_index
        for name, values in (("mask", masks[counted]), ("prediction", predicted[counted])):
            if len(values) and (values.min() < 0 or values.max() >= self.num_classes):
                raise DataError(
                    f"{where}: a {name} label is outside 0..{self.num_classes - 1} "
                    f"(and is not ignore_index {self.ignore_index})"
                )
        self._engine.update(
            np.where(counted, masks, self.num_classes), np.where(counted, predicted, 0)
        )
        self._images += int(masks.shape[0]) if masks.ndim == 3 else 1

    def evaluate(self) -> Evaluation:
        """The scores of :func:`semantic_scores`. ``details``: the confusion matrix [K, K]
        int64, rows = true class."""
        confusion = self._engine.confusion().astype(np.int64)
        return Evaluation(semantic_scores(confusion), self._images, confusion)


def semantic_scores(confusion: Any) -> dict[str, float]:
    """``mIoU``, ``fwIoU``, ``pixel_acc`` (all counted pixels), ``mean_acc`` (per-class recall
    averaged) and ``IoU/<class index>`` of ``confusion`` [K, K] (numpy or torch, rows = true
    class); NaN where nothing was counted. The evaluator and the semantic segmentation task's
    epoch metrics both score here, so training logs and ``visionflow eval`` agree exactly.
    Frequency-weighted IoU weights each class's IoU by its share of the true pixels (FCN, Long
    et al. 2015)."""
    confusion = np.asarray(
        confusion.cpu() if hasattr(confusion, "cpu") else confusion, dtype=np.float64
    )
    true_pixels, predicted_pixels = confusion.sum(axis=1), confusion.sum(axis=0)
    hits = np.diagonal(confusion)
    union = true_pixels + predicted_pixels - hits
    iou = np.where(union > 0, hits / np.maximum(union, 1), np.nan)
    recall = np.where(true_pixels > 0, hits / np.maximum(true_pixels, 1), np.nan)
    total = confusion.sum()
    present = true_pixels > 0  # a class with true pixels has a union: IoU known
    return {
        "mIoU": _nanmean(iou),
        "fwIoU": float((true_pixels[present] * iou[present]).sum() / total)
        if total
        else float("nan"),
        "pixel_acc": float(hits.sum() / total) if total else float("nan"),
        "mean_acc": _nanmean(recall),
        **{f"IoU/{k}": float(value) for k, value in enumerate(iou)},
    }


def evaluate_label_folders(
    gt_folder: str | Path,
    pred_folder: str | Path,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> Evaluation:
    """Score every PNG label map of ``gt_folder`` against the PNG of the same name in
    ``pred_folder`` (pixel value or palette index = class)."""
    gt_folder, pred_folder = Path(gt_folder), Path(pred_folder)
    for folder in (gt_folder, pred_folder):
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder", hint="give a folder of PNG label maps")
    names = sorted(path.name for path in gt_folder.glob("*.png"))
    if not names:
        raise DataError(
            f"{gt_folder}: no PNG label maps",
            hint="label maps are PNGs whose pixel values are classes",
        )
    evaluator = SegmentationEvaluator(num_classes, ignore_index)
    for name in names:
        if not (pred_folder / name).is_file():
            raise DataError(
                f"{pred_folder / name}: no prediction for {gt_folder / name}",
                hint="name each prediction PNG like its ground-truth label map",
            )
        maps = [read_label_map(folder / name) for folder in (gt_folder, pred_folder)]
        evaluator.process(maps[1][None], maps[0][None], where=str(pred_folder / name))
    return evaluator.evaluate()


def read_label_map(path: Path) -> np.ndarray:
    """The class indices [H, W] of the PNG at ``path``; a DataError naming it where it cannot be
    decoded or holds more than one channel."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            labels = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"{path}: cannot decode the label map ({error})", hint="re-export it as a PNG"
        ) from None
    if labels.ndim != 2:
        raise DataError(
            f"{path}: a label map has one channel, this one has shape {labels.shape}",
            hint="save class indices as a grayscale or palette PNG",
        )
    return labels


def _labels(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values).astype(np.int64)


def _nanmean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if len(present) else float("nan")
