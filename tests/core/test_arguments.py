"""``parameters_of`` follows a constructor's ``**kwargs`` to its base class's keyword parameters,
so datamodules share their loader arguments and the spec checker still sees every key."""

from __future__ import annotations

from typing import Any

import pytest

from visionflow.arguments import check_arguments, parameters_of
from visionflow.errors import SpecError


class Loader:
    def __init__(self, context: str, /, *, batch_size: int, num_workers: int = 0, seed: int = 0):
        self.context, self.batch_size, self.num_workers, self.seed = (
            context,
            batch_size,
            num_workers,
            seed,
        )


class Source(Loader):
    def __init__(self, root: str, batch_size: int = 128, **loader: Any):
        super().__init__("context", batch_size=batch_size, **loader)


class Renamed(Source):
    def __init__(self, folder: str = "data", **source: Any):
        super().__init__(folder, **source)


class Open:
    def __init__(self, **anything: Any):
        self.anything = anything


def test_kwargs_stand_for_the_base_keyword_parameters_not_named_again():
    parameters = parameters_of(Source)
    assert [p.name for p in parameters] == ["root", "batch_size", "num_workers", "seed"]
    assert parameters[1].default == 128  # the subclass's default wins
    assert parameters[2].annotation is int  # evaluated from the base's annotations


def test_forwarding_is_followed_up_the_mro_and_skips_positional_only_parameters():
    names = [p.name for p in parameters_of(Renamed)]
    assert names == ["folder", "root", "batch_size", "num_workers", "seed"]
    assert "context" not in names


def test_the_checker_names_forwarded_keys_and_checks_their_types():
    check_arguments(Source, {"root": "r", "num_workers": 2}, "data.args")
    with pytest.raises(SpecError, match=r"data.args.num_workres: unknown key.*num_workers"):
        check_arguments(Source, {"root": "r", "num_workres": 2}, "data.args")
    with pytest.raises(SpecError, match=r"data.args.seed: expected int"):
        check_arguments(Source, {"root": "r", "seed": "zero"}, "data.args")
    with pytest.raises(SpecError, match="data.args.root: required key is missing"):
        check_arguments(Source, {}, "data.args")


def test_kwargs_that_reach_no_base_constructor_accept_any_key():
    check_arguments(Open, {"whatever": 1}, "data.args")
