"""The ``understand`` and ``adversarial`` stages on a tiny untrained LeNet-5 over real digits."""

import json

import pytest
import torch

from visionflow.errors import SpecError
from visionflow.pipelines import run
from visionflow.pipelines.understanding import METHODS

FAST = {"steps": 2, "num_images": 2, "layer": "net.features.3"}


@pytest.mark.slow
def test_understand_writes_a_png_per_method(tiny_spec):
    methods = [m for m in METHODS if m != "cam"]  # LeNet-5 has no global pooling
    results = run(
        tiny_spec(
            stages=[{"understand": {"methods": methods, **FAST}}],
            data={"name": "digits", "args": {"image_size": 16, "limit": 60}},
        )
    )
    folder = results.run_dir / "plots" / "understanding"
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(methods)
    arrays = torch.load(folder / "understanding.pt", weights_only=True)
    assert arrays["saliency"].shape == (2, 16, 16) and arrays["filters"].shape == (6, 1, 5, 5)
    metrics = results.stages["understand"]
    assert metrics["understanding/figures"] == len(methods)
    assert 0 <= metrics["understanding/neighbour_label_agreement"] <= 1


def test_understand_skips_cam_only_when_methods_are_left_to_it(tiny_spec):
    with pytest.raises(SpecError, match="global pooling"):
        run(tiny_spec(stages=[{"understand": {"methods": ["cam"], **FAST}}]))
    with pytest.raises(SpecError, match="did you mean 'saliency'"):
        run(tiny_spec(stages=[{"understand": {"methods": ["salency"]}}]))


@pytest.mark.slow
def test_adversarial_stage_reports_accuracy_per_epsilon(tiny_spec):
    stage = {"epsilons": [0.3], "steps": 3, "black_box_queries": 30, "max_images": 24}
    results = run(
        tiny_spec(
            stages=["fit", {"adversarial": stage}],
            data={"name": "digits", "args": {"image_size": 16}},
        )
    )
    metrics = results.stages["adversarial"]
    assert metrics["adversarial/acc@eps=0"] == metrics["adversarial/clean_acc"] > 0.3
    assert metrics["adversarial/acc@eps=0.3"] < metrics["adversarial/clean_acc"] / 2
    assert metrics["adversarial/success@eps=0.3"] > 0.5
    assert 1 <= metrics["adversarial/black_box_mean_queries"] <= 30
    report = json.loads((results.run_dir / "adversarial.json").read_text())
    assert report["curve"]["epsilons"] == [0.0, 0.3] and report["num_images"] == 24
    plots = results.run_dir / "plots" / "adversarial"
    assert {p.name for p in plots.glob("*.png")} == {"accuracy_vs_epsilon.png", "examples.png"}
