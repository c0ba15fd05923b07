"""What every batch contract shares: :class:`DatasetInfo` and the :class:`Batch` base.

Batches are plain (mutable) dataclasses so Lightning's ``move_data_to_device`` handles them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

IGNORE_INDEX = 255


@dataclass(frozen=True)
class DatasetInfo:
    """What a task needs to know about the data to build itself.

    Every field is a constructor argument that the pipeline passes to the task unless the spec
    sets it, so this class (and its subclasses per family) is the one place that says which
    arguments the data provides. ``image_size`` is ``(H, W)`` after the eval transform, or
    ``None`` when sizes vary.
    """

    num_classes: int
    class_names: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int] | None = None

    def task_kwargs(self) -> dict[str, Any]:
        """``{field: value}`` for every field, tuples as lists (as a spec would write them)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class Batch:
    """Base of the batch dataclasses: ``len(batch)`` and ``first, second = batch``.

    ``images, targets = batch`` yields the first two fields (the input and what is learnt from
    it, as torchvision's datasets do), or the two that ``unpacked`` names where a subclass sets
    it; ``info_type`` is the ``DatasetInfo`` class that datamodules of this batch type describe
    their data with."""

    unpacked: ClassVar[tuple[str, str] | None] = None
    info_type: ClassVar[type[DatasetInfo]] = DatasetInfo

    def __iter__(self) -> Iterator[Any]:
        return iter(tuple(getattr(self, name) for name in self.unpacked_fields()))

    def __len__(self) -> int:
        first = getattr(self, self.unpacked_fields()[0])
        return len(first) if isinstance(first, list) else int(first.shape[0])

    @classmethod
    def unpacked_fields(cls) -> tuple[str, str]:
        """The names of the two fields that ``first, second = batch`` yields."""
        first, second = cls.unpacked or [f.name for f in dataclasses.fields(cls)[:2]]
        return first, second


def provided_arguments(batch_type: type | None) -> tuple[str, ...]:
    """The task arguments that a datamodule of ``batch_type`` provides (its info's fields)."""
    info_type = getattr(batch_type, "info_type", DatasetInfo)
    return tuple(f.name for f in dataclasses.fields(info_type))
