"""pyproject's dependency floors are true ones, and constraints.txt locks the whole resolved set
that `make install` gets, every direct dependency within its declared range (issue 12 item 5)."""

from __future__ import annotations

import inspect
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = Version(version.split("+")[0])
    return pins


def floor(requirement: Requirement) -> Version:
    return max(Version(s.version) for s in requirement.specifier if s.operator == ">=")


def test_every_direct_dependency_has_a_floor_and_a_pin_inside_its_range():
    pins = locked()
    for requirement in declared():
        name = requirement.name.lower()
        assert any(s.operator == ">=" for s in requirement.specifier), f"{name}: no floor"
        if requirement.marker is None or requirement.marker.evaluate():
            assert name in pins, f"{name}: not locked in constraints.txt"
            assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_the_lightning_floor_has_what_the_fits_call():
    """pipelines/stages.py and cluster/train_worker.py call Trainer.fit(weights_only=...), which
    Lightning has from 2.6 on: an older floor lets every fit fail."""
    from lightning.pytorch import Trainer

    assert "weights_only" in inspect.signature(Trainer.fit).parameters
    (lightning,) = [r for r in declared() if r.name == "lightning"]
    assert floor(lightning) >= Version("2.6")


def test_the_lock_holds_the_transitive_set_too():
    pins = locked()
    assert {"lightning-utilities", "pytorch-lightning", "protobuf", "grpcio", "requests"} <= set(
        pins
    )
