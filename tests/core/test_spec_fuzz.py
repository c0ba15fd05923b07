"""The whole spec, fuzzed (issue 12 item 8): for every key of each example's resolved spec, a
wrong-type, out-of-range or garbage value gives exit code 2 and one line naming the key, with no
traceback, before any backend starts and before a run directory exists.

Values are drawn by hypothesis from what is wrong for the key's current value: text or
containers for a number, containers for a text, a negative count, an unknown name. The command
runs in this process up to the point where the runner would create the run directory (after it
has built the datamodule and the task, whose constructors check their own arguments); the fit
backend is a stub, so no Ray starts. The generated-data examples generate tiny datasets and the COCO
example reads a two-image stand-in, both in a temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_examples import shrink
from visionflow import cli
from visionflow.cli import run as run_command
from visionflow.pipelines import run as run_pipeline
from visionflow.pipelines.build import resolve_spec
from visionflow.rundir import RunDirectory
from visionflow.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
#: Keys whose text is a registered name or one of a fixed set: garbage text must be refused.
NAMED = {
    "task.name",
    "data.name",
    "task.args.net",
    "task.args.optimizer",
    "task.args.scheduler",
    "task.args.loss",
    "resources.backend",
    "resources.placement",
    "resources.strategy",
    "data.args.device",
    "stages.knn.distance",
}
#: Counts that must be positive: a negative one must be refused.
COUNTS = {
    "trainer.max_epochs",
    "resources.num_workers",
    "resources.cpus_per_worker",
    "resources.max_failures",
    "data.args.batch_size",
    "data.args.num_workers",
    "data.args.image_size",
    "stages.knn.k",
    "task.args.warmup_epochs",
    "task.args.step_size",
    "task.args.overlay_images",
    "data.args.train_images",
    "data.args.val_images",
    "data.args.test_images",
}
#: A count or a list of values (the RL datamodule's seeds): only text is surely wrong.
COUNT_OR_LIST = {"data.args.val_seeds", "data.args.test_seeds"}
#: Reals that must be positive (or in [0, 1)) and a negative one must be refused.
POSITIVE = {
    "task.args.lr",
    "task.args.weight_decay",
    "task.args.gamma",
    "task.args.dropout",
    "task.args.label_smoothing",
    "task.args.overlay_score",
    "data.args.test_fraction",
    "data.args.val_fraction",
    "resources.gpus_per_worker",
    "task.args.backbone_lr_scale",
}
TEXT = st.text(string.ascii_letters, min_size=1, max_size=6).map(
    lambda s: f"zz{s}"
)  # never a YAML bool/number
CONTAINERS = st.lists(st.integers(-3, 3), min_size=1, max_size=3) | st.dictionaries(
    TEXT, st.integers(0, 3), min_size=1, max_size=2
)


def leaves(data: Any, path: str = ""):
    """(dotted key, value) of every leaf; a stage ``{knn: {k: 3}}`` is ``stages.knn.k``."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list) and path == "stages":
        for stage in data:
            if isinstance(stage, dict):
                yield from leaves(stage, path)
    else:
        yield path, data


def bad_values(key: str, value: Any) -> st.SearchStrategy | None:
    """Values that are wrong for ``key`` whose current value is ``value``; None: no sure wrong one."""
    if isinstance(value, bool):
        return TEXT | CONTAINERS | st.integers(2, 9)
    if isinstance(value, (int, float)):
        wrong = TEXT if key in COUNT_OR_LIST else TEXT | CONTAINERS
        if key in COUNTS or key in POSITIVE:
            wrong |= st.integers(-1000, -2) | st.floats(-1e6, -1e-3)
        return wrong
    if isinstance(value, str):
        return CONTAINERS | TEXT if key in NAMED else CONTAINERS
    return None


def override_key(key: str, example: Path, spec: dict) -> str:
    """``--set`` path of ``key`` (a stage argument is ``stages.N.args.K``)."""
    if not key.startswith("stages."):
        return key
    _, name, arg = key.split(".")
    index = [s if isinstance(s, str) else next(iter(s)) for s in spec["stages"]].index(name)
    return f"stages.{index}.{name}.{arg}"


CASES = [
    pytest.param(example, key, value, id=f"{example.stem}:{key}")
    for example in EXAMPLES
    for key, value in leaves(resolve_spec(load_spec(example)).to_dict())
    if bad_values(key, value) is not None
]


class RunDirectoryCreated(Exception):
    """The runner accepted the spec, built its datamodule and task, and would now write."""


class NoFit:
    def fit(self, context, ckpt_path):
        raise AssertionError("the fit started")


class NoBackend:
    """In place of ``visionflow.pipelines``/``visionflow.cluster``: the local runner with a stub
    fit backend (so a ``backend: ray`` example starts no Ray), stopped at the run directory."""

    def run(self, spec):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(RunDirectory, "create", classmethod(_refuse_to_create))
            run_pipeline(spec, fit_backend=NoFit())


def _refuse_to_create(cls, *args, **kwargs):
    raise RunDirectoryCreated


def run_cli(*argv: str) -> tuple[int, str]:
    """``visionflow ARGV`` in this process, stopped where the run directory would be created:
    (exit code, stderr); 0 when the spec got that far."""
    errors = io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stderr(errors),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        patch.setattr(run_command, "backend_module", lambda backend: NoBackend())
        try:
            code = cli.main(list(argv))
        except RunDirectoryCreated:
            code = 0
    return code, errors.getvalue()


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> dict[str, list[str]]:
    """Example file -> overrides that point its data at something small in a temporary folder:
    the smoke runs' tiny generated sets (tests/test_examples.py; the examples' own sizes would
    generate tens of MB into the checkout's data/ folder), a two-image COCO stand-in for the
    shared panopticapi sample."""
    folder = tmp_path_factory.mktemp("fuzz_data")
    coco = resolve_spec(load_spec(ROOT / "examples" / "coco_evaluate.yaml")).data.args
    (folder / "coco" / coco["images"]).mkdir(parents=True)
    (folder / "coco" / coco["test_annotations"]).write_text(
        json.dumps(
            {
                "images": [
                    {"id": i, "file_name": f"{i}.png", "height": 32, "width": 32} for i in (1, 2)
                ],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 2, 9, 9]}],
                "categories": [{"id": 7, "name": "thing"}, {"id": 9, "name": "other"}],
            }
        )
    )
    small = {
        example.stem: [
            setting
            for setting in shrink(example.name, folder / example.stem)
            if setting.startswith("data.args.")
        ]
        for example in EXAMPLES
    }
    return {**small, "coco_evaluate": [f"data.args.root={folder / 'coco'}"]}


def flow(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=1000)
        .strip()
        .removesuffix("...")
        .strip()
    )


@pytest.mark.parametrize(("example", "key", "value"), CASES)
def test_a_bad_value_of_any_key_is_one_line_naming_it(example, key, value, small_data):
    spec = resolve_spec(load_spec(example)).to_dict()
    path = override_key(key, example, spec)
    context = [
        arg
        for setting in small_data.get(example.stem, [])
        if not setting.startswith(f"{key}=")
        for arg in ("--set", setting)
    ]

    @settings(
        max_examples=2,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(bad_values(key, value))
    def refused(bad):
        code, errors = run_cli("run", str(example), *context, "--set", f"{path}={flow(bad)}")
        lines = errors.strip().splitlines()
        assert code == 2, f"--set {path}={flow(bad)} was accepted"
        assert "Traceback" not in errors and lines[0].startswith("visionflow: error: ")
        assert key.rsplit(".", 1)[-1] in lines[0], lines[0]
        assert len([line for line in lines if not line.startswith("  hint:")]) == 1

    refused()


def test_trainer_values_are_checked_against_lightnings_signature(tmp_path):
    """`--set trainer.max_epochs=ten` died 50 lines deep in Lightning, after the run started."""
    example = str(ROOT / "examples" / "digits_classification.yaml")
    for setting, message in (
        ("max_epochs=ten", "trainer.max_epochs: expected int or null, got a str ('ten')"),
        ("max_epochs=-5", "trainer.max_epochs: must be >= -1"),
        ("limit_train_batches=1.5", "trainer.limit_train_batches: must be a count"),
        ("precision=17", "trainer.precision: expected 64 or 32"),
        ("accelerator=5", "trainer.accelerator: expected str, got an int"),
    ):
        code, errors = run_cli(
            "run", example, "--set", f"trainer.{setting}", "--set", f"output_dir={tmp_path}"
        )
        assert code == 2 and message in errors, errors
    assert run_cli("run", example, "--set", "trainer.max_time=00:00:05:00")[0] == 0
    assert not list(tmp_path.iterdir())
