"""Careless input to every command: one line naming the file, option or value, exit code 2.

Each case here printed a traceback from deep inside a library (or hung) before it was fixed.
"""

import re

import numpy as np
import pytest
import yaml
from PIL import Image

from visionflow.cli import main

SPEC = {
    "name": "bad_input",
    "task": {"name": "image_classification", "args": {"net": "linear"}},
    "data": {"name": "digits", "args": {"batch_size": 128}},
    "trainer": {"max_epochs": 1, "enable_progress_bar": False},
    "stages": ["fit"],
    "resources": {"backend": "local"},
}
GT = (
    '{"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}], '
    '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], '
    '"area": 16, "iscrowd": 0}]}'
)
DT = '[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9}]'
HUGE = "99999999999999999999"  # beyond a C long


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A folder of good and bad inputs, the working directory of the command."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "output_dir": "runs"}))
    (tmp_path / "binary.yaml").write_bytes(b"name: \xff\xfe\x00\x81 spec\n")
    (tmp_path / "binary.txt").write_bytes(b"\x89\xff\xfe\x00\x81token")
    (tmp_path / "gt.json").write_text(GT)
    (tmp_path / "dt.json").write_text(DT)
    (tmp_path / "folder").mkdir()
    for folder in ("labels", "broken_labels", "videos/frames"):
        (tmp_path / folder).mkdir(parents=True)
    label_map = Image.fromarray(np.array([[0, 1], [1, 2]], dtype=np.uint8))
    label_map.save(tmp_path / "labels" / "a.png")
    (tmp_path / "broken_labels" / "a.png").write_bytes(b"\x89PNG not really")
    for index in range(2):
        Image.new("RGB", (16, 16), (index * 90, 0, 0)).save(
            tmp_path / "videos" / "frames" / f"{index}.jpg"
        )
    return tmp_path


EVAL_COCO = ["eval", "coco", "--gt", "gt.json", "--dt", "dt.json"]
EVAL_SEMANTIC = ["eval", "semantic", "--gt-folder", "labels", "--pred-folder", "labels"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "binary.yaml"], r"binary\.yaml: not UTF-8 text \(byte 0xff at offset 6\)"),
        (["eval", "run", "spec.yaml", "--data", "binary.yaml"], r"binary\.yaml: not UTF-8"),
        (["run", "spec.yaml", "--set", "seed=-1"], r"seed: must be 0\.\.4294967295, got -1"),
        (["run", "spec.yaml", "--set", "seed=99999999999"], r"seed: must be 0\.\.4294967295"),
        (
            ["run", "spec.yaml", "--set", "seed=4294967295", "--seeds", "2"],
            r"--seeds 2: the seeds 4294967295\.\.4294967296 go past 4294967295",
        ),
        ([*EVAL_COCO, "--json", "folder"], r"--json folder: cannot write there \(Is a directory"),
        ([*EVAL_COCO, "--plots", "gt.json"], r"--plots gt\.json: cannot write there"),
        ([*EVAL_SEMANTIC, "--num-classes", "3", "--json", "folder"], r"--json folder: cannot"),
        (
            [*EVAL_SEMANTIC[:3], "broken_labels", "--pred-folder", "labels", "--num-classes", "3"],
            r"broken_labels/a\.png: cannot decode the label map",
        ),
        ([*EVAL_SEMANTIC, "--num-classes", HUGE], r"--num-classes: must be 1\.\.4096, got 9999"),
        (["data", "make-shapes", "gt.json", "--images", "1"], r"OUT_DIR gt\.json: cannot write"),
        (["data", "make-shapes", "out", "--images", "1", "--seed", "-1"], r"--seed: must be >= 0"),
        (
            ["data", "make-shapes", "out", "--images", "1", "--image-size", HUGE],
            r"image_size <= 4096, got 1 and 9999",
        ),
        (
            ["data", "precompute-flow", "videos", "--flow-dir", "gt.json"],
            r"--flow-dir gt\.json: cannot write there",
        ),
        (["cluster", "start", "--port", HUGE], r"--port: must be 1\.\.65535, got 9999"),
        (["cluster", "start", "--dashboard-port", "-1"], r"--dashboard-port: must be 1\.\.65535"),
        (["cluster", "stop", "--temp-dir", "gt.json"], r"--temp-dir: gt\.json: not a folder"),
        (
            [
                "jobs",
                "status",
                "x",
                "--address",
                "http://127.0.0.1:1",
                "--token-file",
                "binary.txt",
            ],
            r"--token-file binary\.txt: not UTF-8 text",
        ),
    ],
)
def test_bad_input_is_one_line_naming_it_and_exit_2(files, capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exit:  # an argparse error: usage, then one line
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert not (files / "runs").exists()


def test_more_workers_than_videos_is_as_many_workers_as_videos(files, capsys):
    assert main(["data", "precompute-flow", "videos", "--workers", HUGE]) == 0
    assert "1 videos: 1 flow files written" in capsys.readouterr().out
