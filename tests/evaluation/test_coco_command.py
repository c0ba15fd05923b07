"""`visionflow eval coco`: coco_command.add_arguments + run(), on files, against pycocotools."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from benchmarks.coco_data import synthetic_coco
from benchmarks.coco_reference import pycocotools_evaluate
from visionflow.errors import DataError
from visionflow.evaluation import coco_command
from visionflow.evaluation.coco import evaluate_coco


def run_coco(args: argparse.Namespace) -> int:
    return coco_command.report(evaluate_coco(args.gt, args.dt, args.iou_type, args.protocol), args)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="visionflow eval coco")
    coco_command.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture
def files(tmp_path):
    gt, dt = synthetic_coco(seed=31, images=10, categories=4, dets_per_image=20, adversarial=True)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    return gt_path, dt_path, gt


def test_summary_json_table_and_plots(files, tmp_path, capsys, caplog):
    gt_path, dt_path, gt = files
    out = tmp_path / "out" / "metrics.json"
    args = parse(
        "--gt",
        gt_path,
        "--dt",
        dt_path,
        "--iou-type",
        "bbox",
        "--json",
        out,
        "--per-category",
        "--plots",
        tmp_path / "plots",
    )
    assert run_coco(args) == 0
    printed = capsys.readouterr().out
    assert not [r for r in caplog.records if "findfont" in r.getMessage()], (
        "matplotlib's font fallback lines are not shown"
    )
    reference = pycocotools_evaluate(gt_path, dt_path, "bbox")

    written = json.loads(out.read_text())
    np.testing.assert_allclose(written["stats"], reference.stats, rtol=0, atol=1e-9)
    assert written["stat_names"][:3] == ["AP", "AP50", "AP75"] and len(written["stat_names"]) == 12
    assert written["iou_type"] == "bbox" and written["timing"]["total_s"] > 0
    assert set(written["per_category"]) == {str(c["id"]) for c in gt["categories"]}
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"], (
        "no temporary file is left behind"
    )

    assert printed.count("Average Precision") == 6 and printed.count("Average Recall") == 6
    assert f"= {reference.stats[0]:0.3f}" in printed.splitlines()[0]
    for category in gt["categories"]:
        assert category["name"] in printed
    for name in ("pr_by_iou.png", "pr_by_area.png", "confusion_matrix.png", "tide_errors.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keypoints_prints_ten_lines(tmp_path, capsys):
    gt, dt = synthetic_coco(seed=32, images=6, iou_type="keypoints", dets_per_image=10)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    assert (
        run_coco(
            parse(
                "--gt",
                tmp_path / "gt.json",
                "--dt",
                tmp_path / "dt.json",
                "--iou-type",
                "keypoints",
            )
        )
        == 0
    )
    summary = [line for line in capsys.readouterr().out.splitlines() if line.startswith(" Average")]
    assert len(summary) == 10 and all("maxDets= 20" in line for line in summary)


def test_bad_input_raises_data_error_for_the_cli(files, tmp_path):
    gt_path, _, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_id": 123456789, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]')
    out = tmp_path / "metrics.json"
    with pytest.raises(DataError) as caught:
        run_coco(parse("--gt", gt_path, "--dt", bad, "--json", out))
    assert (
        caught.value.exit_code == 2
        and "bad.json" in caught.value.message
        and "detection #0" in caught.value.message
    )
    assert not out.exists()


def test_arguments():
    with pytest.raises(SystemExit):
        parse("--gt", "a.json")  # --dt is required
    with pytest.raises(SystemExit):
        parse("--gt", "a.json", "--dt", "b.json", "--shards", "0")
    with pytest.raises(SystemExit):
        parse("--gt", "a.json", "--dt", "b.json", "--iou-type", "mask")
    args = parse("--gt", "a.json", "--dt", "b.json")
    assert (
        args.iou_type,
        args.protocol,
        args.shards,
        args.json,
        args.per_category,
        args.plots,
    ) == ("bbox", "coco", None, None, False, None)
