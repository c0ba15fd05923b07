from typing import Literal

import pytest

from visionflow.typecheck import check_value


@pytest.mark.parametrize(
    "value, annotation",
    [
        (3, int),
        (3, float),
        (2.5, float),
        ("a", str),
        (True, bool),
        (None, None),
        ("l1", Literal["l1", "l2"]),
        (None, int | None),
        ([1, 2], list[int]),
        ((1, 2), tuple[int, int]),
        ({"a": 1.0}, dict[str, float]),
        ([32, 32], list[int] | tuple[int, int] | None),
    ],
)
def test_values_that_fit(value, annotation):
    assert check_value(value, annotation) is None


@pytest.mark.parametrize(
    "value, annotation, message",
    [
        ("ten", int, "expected int, got a str ('ten')"),
        (True, int, "expected int, got a bool (True)"),
        (1.5, int, "expected int, got a float (1.5)"),
        ("l3", Literal["l1", "l2"], "expected 'l1' or 'l2', got a str ('l3')"),
        ([1, "x"], list[int], "expected list, got a list ([1, 'x'])"),
        ((1, 2, 3), tuple[int, int], "expected tuple"),
        ({"a": "b"}, dict[str, float], "expected dict"),
        (5, str, "expected str, got an int (5)"),
    ],
)
def test_values_that_do_not_fit(value, annotation, message):
    assert message in check_value(value, annotation)
