import pytest

from visionflow.spec import parse_spec

TINY_DIGITS = {
    "name": "tiny_digits",
    "seed": 0,
    "task": {"name": "image_classification", "args": {"net": "lenet5", "lr": 0.003}},
    "data": {"name": "digits", "args": {"batch_size": 64}},
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False},
    "stages": ["fit", "test"],
    "resources": {"backend": "local"},
}


@pytest.fixture
def tiny_spec(tmp_path):
    """A one-epoch LeNet-5 run on the real digits, writing into a temp folder."""

    def make(**changes):
        raw = {**TINY_DIGITS, "output_dir": str(tmp_path / "runs"), **changes}
        return parse_spec(raw)

    return make
