"""`protocol="lvis"` against lvis-api's LVISEval run live (federated: negative and not-exhaustive
categories per image, rare/common/frequent AP, 300 detections per image)."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from benchmarks.coco_data import synthetic_coco
from visionflow.evaluation.coco import evaluate_coco

LVIS_ORDER = [
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "APr",
    "APc",
    "APf",
    "AR@300",
    "ARs@300",
    "ARm@300",
    "ARl@300",
]


def lvis_case(seed: int) -> tuple[dict, list[dict]]:
    """Synthetic COCO data made LVIS-like: frequencies, and per image the categories known absent
    (neg) and those not exhaustively labelled."""
    gt, dt = synthetic_coco(seed=seed, images=30, categories=6, dets_per_image=40, gt_per_image=4)
    rng = np.random.default_rng(seed)
    for index, category in enumerate(gt["categories"]):
        category["frequency"] = "rfc"[index % 3]
    present = {}
    for annotation in gt["annotations"]:
        present.setdefault(annotation["image_id"], set()).add(annotation["category_id"])
        annotation.pop("iscrowd")
    ids = [c["id"] for c in gt["categories"]]
    for image in gt["images"]:
        absent = [c for c in ids if c not in present.get(image["id"], set())]
        image["neg_category_ids"] = [c for c in absent if rng.random() < 0.5]
        image["not_exhaustive_category_ids"] = [
            c for c in present.get(image["id"], set()) if rng.random() < 0.2
        ]
    return gt, dt


@pytest.mark.parametrize("seed", range(3))
def test_equals_lvis_api(seed, tmp_path, monkeypatch):
    lvis = pytest.importorskip("lvis")
    monkeypatch.setattr(
        np, "float", float, raising=False
    )  # lvis-api 0.5.3 still spells np.float (numpy < 1.24)
    gt, dt = lvis_case(seed)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        reference_gt = lvis.LVIS(str(tmp_path / "gt.json"))
        reference = lvis.LVISEval(
            reference_gt, lvis.LVISResults(reference_gt, copy.deepcopy(dt)), "bbox"
        )
        reference.run()
    ours = evaluate_coco(gt, dt, "bbox", protocol="lvis")
    expected = reference.get_results()
    assert list(ours.stat_names) == LVIS_ORDER
    np.testing.assert_allclose(
        ours.stats, [expected[name] for name in LVIS_ORDER], rtol=0, atol=1e-12
    )
