"""The fault corpus: each case injects one fault into a real (tiny) run and checks that the user
gets one clear line and that nothing already written is lost. LeNet-5 on the real 8x8 digits, one
or two epochs, ``backend: local``."""

from __future__ import annotations

import pytest

from visionflow.spec import parse_spec

TINY = {
    "name": "fault",
    "seed": 0,
    "task": {"name": "image_classification", "args": {"net": "lenet5", "lr": 0.003}},
    "data": {"name": "digits", "args": {"batch_size": 64}},
    "trainer": {"max_epochs": 2, "accelerator": "cpu", "enable_progress_bar": False},
    "stages": ["fit", "test"],
    "resources": {"backend": "local"},
}


@pytest.fixture
def fault_spec(tmp_path):
    """A two-epoch LeNet-5 run on the real digits, writing into ``tmp_path/runs``."""
    def make(**changes):
        return parse_spec({**TINY, "output_dir": str(tmp_path / "runs"), **changes})
    return make
