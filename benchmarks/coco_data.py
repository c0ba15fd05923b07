"""Seeded synthetic COCO ground truth and detections, for the benchmark and the tests.

``synthetic_coco(seed=0, images=5000)`` is shaped like val2017 with a detector's output: about 7 GT
objects per image over 80 categories with skewed frequencies and non-contiguous ids, small, medium
and large boxes, some ``iscrowd`` regions, and up to ``dets_per_image`` detections per image made of
jittered copies of the GT (sometimes with the wrong label) plus false positives.

``adversarial=True`` adds the cases where a re-implementation usually drifts from pycocotools:
areas exactly on the range bounds (32**2, 96**2), many score ties, more detections than maxDets,
duplicate boxes (IoU ties), zero-size boxes, crowd regions covered by detections,
images without GT or without detections, and categories without GT.
"""

from __future__ import annotations

import numpy as np

from benchmarks.coco_data_shapes import add_keypoints, add_masks

_BOUND_SIDES = np.array([32.0, 96.0])  # boxes of these sides have areas exactly on the range bounds


def synthetic_coco(
    *,
    seed: int = 0,
    images: int = 100,
    categories: int = 80,
    gt_per_image: float = 7.0,
    dets_per_image: int = 100,
    iou_type: str = "bbox",
    crowd_fraction: float = 0.01,
    score_decimals: int = 5,
    adversarial: bool = False,
) -> tuple[dict, list[dict]]:
    """(GT dataset dict, list of result dicts), the way they would be read from COCO JSON files.

    For keypoints there are two categories: 1 ("person") has all the GT, 2 only wrong-label detections.
    """
    rng = np.random.default_rng(seed)
    size_range = (48, 160) if iou_type == "segm" else (300, 640)  # small images keep masks cheap
    sizes = rng.integers(*size_range, size=(images, 2), endpoint=True)  # [I, 2] width, height
    image_ids = np.sort(rng.choice(10 * images + 10, size=images, replace=False)) + 1
    if iou_type == "keypoints":
        category_ids, weights = np.array([1, 2]), np.array([1.0, 0.0])
    else:  # non-contiguous ids, like COCO's 1..90 with gaps; Zipf-like frequencies
        category_ids = np.sort(
            rng.choice(np.arange(1, categories + categories // 8 + 2), categories, replace=False)
        )
        weights = 1.0 / np.arange(1, categories + 1)
        if adversarial and categories > 2:
            weights[-1] = 0.0  # a category without GT
    weights /= weights.sum()

    gt_counts = rng.poisson(gt_per_image, size=images)
    if adversarial:
        gt_counts[rng.random(images) < 0.15] = 0  # images without GT
    gt_images = np.repeat(np.arange(images), gt_counts)
    gt_boxes = _random_boxes(rng, sizes[gt_images], adversarial)
    gt_cats = category_ids[rng.choice(len(category_ids), size=len(gt_images), p=weights)]
    crowd = rng.random(len(gt_boxes)) < (0.15 if adversarial else crowd_fraction)
    gt = _gt_dataset(
        rng, image_ids, sizes, category_ids, gt_boxes, gt_images, gt_cats, crowd, adversarial
    )

    dt_images, dt_cats, dt_boxes, dt_scores = _detections(
        rng,
        gt_boxes,
        gt_images,
        gt_cats,
        sizes,
        category_ids,
        dets_per_image,
        score_decimals,
        adversarial,
    )
    records = [
        {
            "image_id": int(image_ids[i]),
            "category_id": int(c),
            "bbox": box.tolist(),
            "score": float(s),
        }
        for i, c, box, s in zip(dt_images, dt_cats, dt_boxes, dt_scores)
    ]
    if iou_type == "segm":
        add_masks(gt, records, rng, adversarial)
    elif iou_type == "keypoints":
        add_keypoints(gt, records, rng, adversarial)
    return gt, records


def _random_boxes(rng: np.random.Generator, sizes: np.ndarray, adversarial: bool) -> np.ndarray:
    """One XYWH box [N, 4] inside each image size [N, 2]: log-uniform sides from 4 to 400 pixels
    (small, medium and large objects), aspect ratios from 1:4 to 4:1."""
    n = len(sizes)
    side = np.exp(rng.uniform(np.log(4), np.log(400), n))
    aspect = np.exp(rng.uniform(-0.7, 0.7, n))
    wh = np.stack([side * aspect, side / aspect], axis=1)
    if adversarial:
        on_bound = rng.random(n) < 0.2
        wh[on_bound] = rng.choice(_BOUND_SIDES, size=(on_bound.sum(), 1))
    wh = np.minimum(wh, sizes - 1)
    boxes = np.round(np.concatenate([rng.random((n, 2)) * (sizes - wh), wh], axis=1), 2)
    if adversarial:
        boxes[rng.random(n) < 0.02, 2:] = 0.0  # zero-size boxes
    return boxes


def _detections(
    rng, gt_boxes, gt_images, gt_cats, sizes, category_ids, per_image, score_decimals, adversarial
):
    """(image index [N], category id [N], XYWH box [N, 4], score [N]): jittered copies of the GT
    (10% with a random label) and false positives, at most ``per_image`` per image, in random order."""
    copies = rng.poisson(0.7, len(gt_boxes)) + (rng.random(len(gt_boxes)) < 0.9)
    source = np.repeat(np.arange(len(gt_boxes)), copies)
    boxes = gt_boxes[source].copy()
    jitter = rng.normal(0.0, 0.08, (len(source), 4)) * boxes[:, [2, 3, 2, 3]]
    if adversarial:
        jitter[rng.random(len(source)) < 0.2] = 0.0  # exact copies of the GT: IoU ties
    boxes[:, :2] += jitter[:, :2]
    boxes[:, 2:] = np.maximum(
        boxes[:, 2:] * np.exp(jitter[:, 2:] / np.maximum(boxes[:, 2:], 1)), 0.0
    )
    cats = np.where(
        rng.random(len(source)) < 0.1, rng.choice(category_ids, len(source)), gt_cats[source]
    )

    fp_counts = np.full(
        len(sizes), per_image
    )  # more than needed: the cap below keeps the top scores
    if adversarial:
        fp_counts[rng.random(len(sizes)) < 0.1] = 0
        fp_counts[rng.random(len(sizes)) < 0.1] = 150  # more detections than maxDets
    fp_images = np.repeat(np.arange(len(sizes)), fp_counts)
    images = np.concatenate([gt_images[source], fp_images])
    cats = np.concatenate([cats, rng.choice(category_ids, len(fp_images))])
    boxes = np.round(np.concatenate([boxes, _random_boxes(rng, sizes[fp_images], False)]), 2)
    scores = np.concatenate([rng.beta(5, 2, len(source)), rng.beta(1, 4, len(fp_images))])
    scores = np.round(scores, 1 if adversarial else score_decimals)  # adversarial: many ties
    order = rng.permutation(len(images))  # results files list detections in any order
    return _cap_per_image(
        images[order], cats[order], boxes[order], scores[order], 150 if adversarial else per_image
    )


def _cap_per_image(images, cats, boxes, scores, cap):
    """Keep at most ``cap`` detections per image (the highest scores), like a detector's top-k."""
    order = np.lexsort((-scores, images))
    starts = np.searchsorted(images[order], images[order], side="left")
    keep = order[np.arange(len(order)) - starts < cap]
    keep.sort()
    return images[keep], cats[keep], boxes[keep], scores[keep]


def _gt_dataset(rng, image_ids, sizes, category_ids, boxes, gt_images, gt_cats, crowd, adversarial):
    ann_ids = (
        rng.permutation(len(boxes)) + 1
    )  # ids >= 1: the checks refuse id 0 (pycocotools miscounts it)
    mask_fraction = rng.uniform(0.55, 0.95, len(boxes))
    area = np.round(boxes[:, 2] * boxes[:, 3] * mask_fraction, 2)
    if adversarial:
        on_bound = rng.random(len(boxes)) < 0.15
        area[on_bound] = rng.choice(_BOUND_SIDES**2, size=on_bound.sum())
    annotations = [
        {
            "id": int(a),
            "image_id": int(image_ids[i]),
            "category_id": int(c),
            "bbox": b.tolist(),
            "area": float(ar),
            "iscrowd": int(cr),
        }
        for a, i, c, b, ar, cr in zip(ann_ids, gt_images, gt_cats, boxes, area, crowd)
    ]
    if adversarial:  # pycocotools overwrites an annotation's 'ignore' with its 'iscrowd'
        for ann in annotations[::7]:
            ann["ignore"] = 1
    images = [
        {"id": int(i), "width": int(w), "height": int(h), "file_name": f"{i:012d}.jpg"}
        for i, (w, h) in zip(image_ids, sizes)
    ]
    categories = [
        {"id": int(c), "name": f"class_{c}", "supercategory": "thing"} for c in category_ids
    ]
    return {
        "info": {"description": "visionflow synthetic"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
