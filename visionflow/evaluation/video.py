"""Clip and video accuracy of video classification (top-1 and top-k).

    evaluator = VideoAccuracyEvaluator(num_classes=6)
    evaluator.process({"scores": probs [B, K], "loss": 0.7}, {"labels": [B], "video": [B]})
    evaluator.evaluate().metrics   # clip_acc, clip_acc_top5, video_acc, video_acc_top5, loss

A clip is scored by its class probabilities; a video by the mean of its clips' probabilities
(the multi-clip evaluation of C3D, I3D and SlowFast). No library computes this, so it is ours.
Clips are kept in the order they arrive and videos are averaged in that order, so evaluating
in shards (joined in dataset order) gives the very same numbers.
"""

from __future__ import annotations

from typing import Any

import torch

from visionflow.errors import DataError
from visionflow.evaluation import Evaluation


class VideoAccuracyEvaluator:
    """Accumulates clip probabilities ``[B, K]`` with their labels and video ids ``[B]``."""

    def __init__(self, num_classes: int, top_k: int = 5):
        self.num_classes, self.top_k = num_classes, top_k
        self.reset()

    def reset(self) -> None:
        self._scores: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._videos: list[torch.Tensor] = []
        self._loss_sum = 0.0

    def process(self, predictions: dict[str, Any], targets: dict[str, Any]) -> None:
        scores = torch.as_tensor(predictions["scores"], dtype=torch.float64)  # [B, K]
        labels = torch.as_tensor(targets["labels"], dtype=torch.int64)  # [B]
        videos = torch.as_tensor(targets["video"], dtype=torch.int64)  # [B]
        if (
            scores.ndim != 2
            or scores.shape[1] != self.num_classes
            or not len(scores) == len(labels) == len(videos)
        ):
            raise DataError(
                f"video evaluator: scores {tuple(scores.shape)}, labels "
                f"{tuple(labels.shape)}, videos {tuple(videos.shape)}; expected "
                f"[B, {self.num_classes}], [B], [B]"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(f"video evaluator: a label is outside 0..{self.num_classes - 1}")
        self._scores.append(scores)
        self._labels.append(labels)
        self._videos.append(videos)
        self._loss_sum += float(predictions.get("loss", 0.0)) * len(labels)

    def evaluate(self) -> Evaluation:
        """``clip_acc``, ``video_acc``, their ``_top<k>`` (when K > k) and ``loss`` (mean per
        clip); NaN without clips. ``details``: the video-level confusion matrix ``[K, K]``."""
        if not self._scores:
            nan = float("nan")
            return Evaluation(
                {"clip_acc": nan, "video_acc": nan, "loss": nan},
                0,
                torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64),
            )
        scores, labels = torch.cat(self._scores), torch.cat(self._labels)
        video_scores, video_labels = self._per_video(scores, labels, torch.cat(self._videos))
        metrics = {
            "clip_acc": _top1(scores, labels),
            "video_acc": _top1(video_scores, video_labels),
        }
        if self.num_classes > self.top_k:
            metrics[f"clip_acc_top{self.top_k}"] = _top_k(scores, labels, self.top_k)
            metrics[f"video_acc_top{self.top_k}"] = _top_k(video_scores, video_labels, self.top_k)
        metrics["loss"] = self._loss_sum / len(labels)
        pairs = video_labels * self.num_classes + video_scores.argmax(dim=1)
        confusion = torch.bincount(pairs, minlength=self.num_classes**2)
        return Evaluation(metrics, len(labels), confusion.view(self.num_classes, -1))

    def _per_video(
        self, scores: torch.Tensor, labels: torch.Tensor, videos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean clip scores ``[V, K]`` and the label ``[V]`` of each video, in first-seen order."""
        ids, slot = torch.unique(videos, sorted=False, return_inverse=True)
        order = torch.full((len(ids),), len(videos), dtype=torch.int64)
        order.scatter_reduce_(0, slot, torch.arange(len(videos)), "amin")
        sums = torch.zeros(len(ids), self.num_classes, dtype=torch.float64).index_add_(
            0, slot, scores
        )
        counts = torch.bincount(slot, minlength=len(ids)).to(torch.float64)
        video_labels = labels[order]  # its first clip's
        mixed = video_labels[slot] != labels
        if mixed.any():
            video = int(videos[mixed.nonzero()[0, 0]])
            raise DataError(f"video evaluator: the clips of video {video} have different labels")
        first_seen = order.argsort()
        return (sums / counts[:, None])[first_seen], video_labels[first_seen]


def _top1(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return float((scores.argmax(dim=1) == labels).double().mean())


def _top_k(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return float((scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1).double().mean())
