"""The fault corpus: each case injects one fault into a real (tiny) run and checks that the user
gets one clear line and that nothing already written is lost. LeNet-5 on the real 8x8 digits, two
epochs, ``backend: local``."""

from __future__ import annotations

import pytest

from tests.pipelines.conftest import TINY_DIGITS
from visionflow.spec import parse_spec

TINY = {**TINY_DIGITS, "name": "fault", "trainer": {**TINY_DIGITS["trainer"], "max_epochs": 2}}


@pytest.fixture
def fault_spec(tmp_path):
    """A two-epoch LeNet-5 run on the real digits, writing into ``tmp_path/runs``."""

    def make(**changes):
        return parse_spec({**TINY, "output_dir": str(tmp_path / "runs"), **changes})

    return make
