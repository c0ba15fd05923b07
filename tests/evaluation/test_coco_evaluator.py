"""CocoEvaluator: reset / process / evaluate with model outputs (tensors) and with result dicts,
against pycocotools run on the equivalent result dicts; and the DDP gather on two gloo ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from benchmarks.coco_data import synthetic_coco
from benchmarks.coco_reference import pycocotools_evaluate
from visionflow.evaluation.coco import CocoEvaluator


def model_outputs(
    gt: dict, dt: list[dict], iou_type: str
) -> tuple[list[dict], list[dict], list[dict]]:
    """(per-image predictions as tensors, targets with image ids, the result dicts they stand for).

    Labels are positions in the sorted category ids; boxes are float32 XYXY; the expected results
    convert them the documented way (float64, then w = x2 - x1).
    """
    category_ids = sorted(c["id"] for c in gt["categories"])
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    predictions, targets, expected = [], [], []
    for image_id in sorted({d["image_id"] for d in dt}):
        records = [d for d in dt if d["image_id"] == image_id]
        xywh = torch.tensor([d["bbox"] for d in records], dtype=torch.float32)
        prediction = {
            "boxes": torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1),
            "scores": torch.tensor([d["score"] for d in records], dtype=torch.float32),
            "labels": torch.tensor([category_ids.index(d["category_id"]) for d in records]),
        }
        boxes = prediction["boxes"].double()
        boxes[:, 2:] -= boxes[:, :2]
        results = [
            {"image_id": image_id, "category_id": d["category_id"], "bbox": box, "score": score}
            for d, box, score in zip(
                records, boxes.tolist(), prediction["scores"].double().tolist()
            )
        ]
        if iou_type == "segm":
            masks = np.stack(
                [ellipse_mask(d["bbox"], *sizes[image_id]) for d in records]
            )  # [N, H, W]
            prediction["masks"] = (
                torch.from_numpy(masks.astype(np.float32))[:, None] * 0.9
            )  # probabilities
            for result, mask in zip(results, masks):
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                result["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
        if iou_type == "keypoints":
            prediction["keypoints"] = torch.tensor([d["keypoints"] for d in records]).reshape(
                len(records), 17, 3
            )
            for result, points in zip(
                results, prediction["keypoints"].double().reshape(len(records), -1).tolist()
            ):
                result["keypoints"] = points
        predictions.append(prediction)
        targets.append({"image_id": torch.tensor(image_id)})
        expected.extend(results)
    return predictions, targets, expected


def ellipse_mask(box: list[float], height: int, width: int) -> np.ndarray:
    x, y, w, h = box
    rows, columns = np.mgrid[0:height, 0:width] + 0.5
    return ((columns - x - w / 2) / max(w / 2, 0.5)) ** 2 + (
        (rows - y - h / 2) / max(h / 2, 0.5)
    ) ** 2 <= 1


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
def test_model_outputs_match_pycocotools(iou_type):
    gt, dt = synthetic_coco(seed=21, images=12, categories=5, dets_per_image=15, iou_type=iou_type)
    predictions, targets, expected = model_outputs(gt, dt, iou_type)
    category_ids = sorted(c["id"] for c in gt["categories"])
    evaluator = CocoEvaluator(gt, iou_type, label_to_category=category_ids)
    for start in range(0, len(predictions), 5):  # batches of 5 images
        evaluator.process(predictions[start : start + 5], targets[start : start + 5])
    result = evaluator.evaluate()
    reference = pycocotools_evaluate(gt, expected, iou_type)
    np.testing.assert_allclose(result.stats, reference.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.precision, reference.precision, rtol=0, atol=1e-9)


def test_result_dicts_reset_and_repeat():
    gt, dt = synthetic_coco(seed=22, images=10, categories=4, dets_per_image=20, adversarial=True)
    evaluator = CocoEvaluator(gt, "bbox")
    evaluator.process(
        [
            {
                "image_id": gt["images"][0]["id"],
                "category_id": gt["categories"][0]["id"],
                "bbox": [0, 0, 5, 5],
                "score": 1.0,
            }
        ]
    )
    evaluator.reset()
    evaluator.process(dt[: len(dt) // 2])
    evaluator.process(dt[len(dt) // 2 :])
    first, second = evaluator.evaluate(), evaluator.evaluate()
    reference = pycocotools_evaluate(gt, dt, "bbox")
    np.testing.assert_allclose(first.stats, reference.stats, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(first.precision, second.precision)
    assert len(first.summary_lines()) == 12 and set(first.per_category_ap) == {
        c["id"] for c in gt["categories"]
    }


def test_nothing_processed_scores_zero_where_there_is_gt():
    gt, _ = synthetic_coco(seed=23, images=4, categories=2)
    result = CocoEvaluator(gt, "bbox").evaluate()
    has_gt = result.recall[0, :, 0, -1] > -1
    assert has_gt.any() and (result.recall[:, has_gt] <= 0).all()
    assert result.stats[0] == 0.0


def _rank_main(rank: int, init_file: str, gt: dict, shards: list, out: str) -> None:
    """One of two real gloo ranks: process this rank's batch of result dicts, evaluate, save stats."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        evaluator = CocoEvaluator(gt, "bbox")
        evaluator.process(shards[rank])
        np.save(f"{out}{rank}.npy", evaluator.evaluate().stats)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_with_padding_count_each_image_once(tmp_path):
    """Two real processes: rank 1's split ends with an image of rank 0 again (DistributedSampler's
    padding, with other detections); both ranks return the stats of the dataset, each image once."""
    import torch.multiprocessing as mp

    gt, dt = synthetic_coco(seed=24, images=16, categories=4, dets_per_image=20, adversarial=True)
    images = sorted({d["image_id"] for d in dt})
    shards = [[d for d in dt if images.index(d["image_id"]) % 2 == rank] for rank in range(2)]
    repeated = shards[0][0]["image_id"]
    shards[1] = shards[1] + [
        dict(d, score=1.0, bbox=[0, 0, 3, 3]) for d in dt if d["image_id"] == repeated
    ]
    mp.spawn(
        _rank_main, args=(str(tmp_path / "init"), gt, shards, str(tmp_path / "stats")), nprocs=2
    )
    expected = pycocotools_evaluate(gt, dt, "bbox").stats
    for rank in range(2):
        np.testing.assert_allclose(
            np.load(tmp_path / f"stats{rank}.npy"), expected, rtol=0, atol=1e-9
        )
